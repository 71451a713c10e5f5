use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

/// Run one SCU node.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Configuration file (TOML); see docs/config.md.
    #[arg(long, short, default_value = "scu.toml")]
    config: PathBuf,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config: peercam_scu::Config = super::load_config(&args.config)?;
    let shutdown = super::shutdown_on_signal();
    let running = peercam_scu::start(config, shutdown)
        .await
        .context("starting the SCU")?;
    eprintln!("SCU listening for devices on {}", running.addr);
    running.task.await.context("SCU task")?;
    Ok(ExitCode::SUCCESS)
}
