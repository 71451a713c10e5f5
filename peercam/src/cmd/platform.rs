use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde::Deserialize;

/// Run the CMU and one SCU node in one process.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Configuration file with `[cmu]` and `[scu]` tables; see docs/config.md.
    #[arg(long, short, default_value = "platform.toml")]
    config: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlatformConfig {
    cmu: peercam_cmu::Config,
    scu: peercam_scu::Config,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config: PlatformConfig = super::load_config(&args.config)?;
    let shutdown = super::shutdown_on_signal();
    let cmu = peercam_cmu::start(config.cmu, shutdown.clone())
        .await
        .context("starting the CMU")?;
    let scu = peercam_scu::start(config.scu, shutdown)
        .await
        .context("starting the SCU")?;
    eprintln!("CMU on {}, SCU on {}", cmu.addr, scu.addr);
    let _ = tokio::join!(cmu.task, scu.task);
    Ok(ExitCode::SUCCESS)
}
