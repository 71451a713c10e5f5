//! `peercam mtu`: the media transmission unit (H.626.4 7): RTSP relay with fan-out for
//! viewers that cannot reach a camera directly.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

/// Run the media transmission unit.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Configuration file (TOML); see docs/config.md.
    #[arg(long, short, default_value = "mtu.toml")]
    config: PathBuf,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config: peercam_mtu::Config = super::load_config(&args.config)?;
    let shutdown = super::shutdown_on_signal();
    let running = peercam_mtu::start(config, shutdown)
        .await
        .context("starting the MTU")?;
    tracing::info!(rtsp = %running.rtsp_addr, tunnel = %running.tunnel_addr, "MTU running");
    running.task.await.context("MTU task")?;
    Ok(ExitCode::SUCCESS)
}
