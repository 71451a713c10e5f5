use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

/// Run the centre management unit.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Configuration file (TOML); see docs/config.md.
    #[arg(long, short, default_value = "cmu.toml")]
    config: PathBuf,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config: peercam_cmu::Config = super::load_config(&args.config)?;
    let shutdown = super::shutdown_on_signal();
    let running = peercam_cmu::start(config, shutdown)
        .await
        .context("starting the CMU")?;
    if let Some(f) = &running.admin_password_file {
        eprintln!(
            "created the operator account `admin`; its password is in {}",
            f.display()
        );
    }
    running.task.await.context("CMU task")?;
    Ok(ExitCode::SUCCESS)
}
