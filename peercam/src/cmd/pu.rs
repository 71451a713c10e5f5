use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

/// Run the camera agent.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Configuration file (TOML); see docs/config.md.
    #[arg(long, short, default_value = "pu.toml")]
    config: PathBuf,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config: peercam_pu::Config = super::load_config(&args.config)?;
    let shutdown = super::shutdown_on_signal();
    let running = peercam_pu::start(config, shutdown)
        .await
        .context("starting the PU")?;
    running.task.await.context("PU task")?;
    Ok(ExitCode::SUCCESS)
}
