//! `peercam nvr`: the network video recorder (H.626.4 8.7.2).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

/// Run the network video recorder.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Configuration file (TOML); see docs/config.md.
    #[arg(long, short, default_value = "nvr.toml")]
    config: PathBuf,
    /// Check the recording store (every segment read back and decoded) and exit: 0 when
    /// it satisfies the invariants of docs/design/recording.md.
    #[arg(long)]
    check: bool,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config: peercam_nvr::Config = super::load_config(&args.config)?;
    if args.check {
        let (store, report) =
            peercam_store::Store::open(peercam_store::StoreConfig::new(config.store_dir()))
                .await
                .context("opening the recording store")?;
        let (segments, problems) = store.check().await.context("checking the store")?;
        println!(
            "{segments} segments; repaired on open: {} unacknowledged files removed, {} rows dropped",
            report.orphans_removed,
            report.rows_dropped.len()
        );
        for p in &problems {
            println!("problem: {p}");
        }
        return Ok(if problems.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let shutdown = super::shutdown_on_signal();
    let running = peercam_nvr::start(config, shutdown)
        .await
        .context("starting the NVR")?;
    tracing::info!(media = %running.media_addr, "NVR running");
    running.task.await.context("NVR task")?;
    Ok(ExitCode::SUCCESS)
}
