//! `peercam cs`: the cloud storage unit (H.626.4 8.7.1, docs/design/cloud-storage.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

/// Run the cloud storage unit (CS); the help text is on `Command::Cs` in main.rs.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Configuration file (TOML); see docs/config.md, "cs.toml".
    #[arg(long, short, default_value = "cs.toml")]
    config: PathBuf,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config: peercam_cs::CsConfig = super::load_config(&args.config)?;
    let keys = Arc::new(config.static_keys().context("data keys")?);
    let shutdown = super::shutdown_on_signal();
    let running = peercam_cs::start(config, keys, shutdown)
        .await
        .context("starting the CS")?;
    tracing::info!(
        cp = %running.addr,
        registers = running.agent.is_some(),
        recovered = running.recovery.adopted.len() + running.recovery.dropped.len(),
        "CS running"
    );
    if let Some(agent) = running.agent {
        agent.await.context("CS platform link")?;
    }
    running.task.await.context("CS task")?;
    Ok(ExitCode::SUCCESS)
}
