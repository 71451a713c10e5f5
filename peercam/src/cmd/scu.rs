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
    raise_nofile();
    let shutdown = super::shutdown_on_signal();
    let running = peercam_scu::start(config, shutdown)
        .await
        .context("starting the SCU")?;
    eprintln!("SCU listening for devices on {}", running.addr);
    running.task.await.context("SCU task")?;
    Ok(ExitCode::SUCCESS)
}

/// Each connected device holds a descriptor: the soft limit goes up to the hard limit at
/// start (issue 19: 100,000 devices on one node; the kernel settings an operator needs are
/// in docs/deployment.md, "Kernel settings").
fn raise_nofile() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!(
            limit = n,
            "descriptor limit (RLIMIT_NOFILE) raised to the hard limit"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the descriptor limit (RLIMIT_NOFILE)")
        }
    }
}
