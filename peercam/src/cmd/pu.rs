use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use peercam_pu::upgrade::{ENV_SLOT_VERSION, ENV_TRIAL, EXIT_RESTART, Firmware, Slot};
use peercam_signal::upgrade::UpgradeStatus;

/// Run the camera agent.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Configuration file (TOML); see docs/config.md.
    #[arg(long, short, default_value = "pu.toml")]
    config: PathBuf,
    /// Run the agent itself, without the upgrade supervisor (the supervisor starts the
    /// agent this way; with no `release_keys` configured the agent always runs directly).
    #[arg(long)]
    agent: bool,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config: peercam_pu::Config = super::load_config(&args.config)?;
    if !args.agent && !config.release_keys.is_empty() {
        return supervise(&args.config, &config).await;
    }
    let shutdown = super::shutdown_on_signal();
    if args.agent {
        // Started by the supervisor: do not outlive it.
        #[cfg(unix)]
        {
            let parent = std::os::unix::process::parent_id();
            let s = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if std::os::unix::process::parent_id() != parent {
                        tracing::warn!("the supervisor is gone; stopping");
                        s.trigger();
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        std::process::exit(1);
                    }
                }
            });
        }
    }
    let mut running = peercam_pu::start(config, shutdown)
        .await
        .context("starting the PU")?;
    tokio::select! {
        r = &mut running.task => {
            r.context("PU task")?;
            Ok(ExitCode::SUCCESS)
        }
        // H.626.4 8.11.1: a release is installed; the supervisor restarts into it.
        _ = running.restart.wait_for(|r| *r) => Ok(ExitCode::from(EXIT_RESTART)),
    }
}

fn spawn_agent(
    exe: &Path,
    config: &Path,
    version: &str,
    trial: bool,
) -> std::io::Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(["pu", "--agent", "--config"])
        .arg(config)
        .env(ENV_SLOT_VERSION, version)
        .kill_on_drop(true);
    if trial {
        cmd.env(ENV_TRIAL, "1");
    } else {
        cmd.env_remove(ENV_TRIAL);
    }
    cmd.spawn()
}

fn record(fw: &Firmware, running: &str, state: &str, target: &str, reason: Option<String>) {
    let status = UpgradeStatus {
        running: running.to_owned(),
        state: state.to_owned(),
        target: Some(target.to_owned()),
        done: 0,
        total: 0,
        reason,
    };
    if let Err(e) = fw.set_last(&status) {
        tracing::error!(error = %e, "cannot record the upgrade's outcome");
    }
}

/// The upgrade supervisor (docs/security.md D9): runs the slot in service, starts a newly
/// installed one on trial, commits it once it has registered with the platform, and goes
/// back to the previous slot by itself when it does not.
async fn supervise(config_path: &Path, config: &peercam_pu::Config) -> anyhow::Result<ExitCode> {
    let fw = Firmware::new(config.firmware_dir());
    let factory = Slot {
        version: peercam_pu::SW_VERSION.to_owned(),
        exe: std::env::current_exe().context("locating this executable")?,
    };
    let health_time = Duration::from_secs(config.upgrade_health_s.max(5).into());
    let shutdown = super::shutdown_on_signal();
    let mut crash_backoff = Duration::from_millis(500);
    loop {
        if let Some(pending) = fw.pending() {
            // H.626.4 8.11.1: restart into the new release, on trial.
            tracing::warn!(version = %pending.slot.version, "starting a new release on trial");
            let _ = std::fs::remove_file(fw.health_path());
            let started = Instant::now();
            let outcome =
                match spawn_agent(&pending.slot.exe, config_path, &pending.slot.version, true) {
                    Err(e) => Err((None, format!("cannot start it: {e}"))),
                    Ok(mut child) => loop {
                        if fw.health_path().exists() {
                            break Ok(child);
                        }
                        if started.elapsed() > health_time {
                            break Err((
                                Some(child),
                                format!(
                                    "it did not register with the platform within {} s",
                                    health_time.as_secs()
                                ),
                            ));
                        }
                        if let Ok(Some(status)) = child.try_wait() {
                            break Err((None, format!("it exited ({status}) before registering")));
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    },
                };
            match outcome {
                Ok(child) => {
                    fw.commit(&pending).context("committing the release")?;
                    record(
                        &fw,
                        &pending.slot.version,
                        "committed",
                        &pending.slot.version,
                        None,
                    );
                    tracing::warn!(version = %pending.slot.version, "release committed");
                    if let Some(code) = watch_child(child, &shutdown).await {
                        return Ok(code);
                    }
                }
                Err((child, reason)) => {
                    if let Some(mut c) = child {
                        let _ = c.kill().await;
                    }
                    tracing::error!(version = %pending.slot.version, %reason, "release failed its health check; rolling back");
                    let _ = fw.clear_pending();
                    record(
                        &fw,
                        &pending.previous.version,
                        "rolled_back",
                        &pending.slot.version,
                        Some(reason),
                    );
                }
            }
            continue;
        }
        let slot = fw.committed().unwrap_or_else(|| factory.clone());
        let child = match spawn_agent(&slot.exe, config_path, &slot.version, false) {
            Ok(c) => c,
            Err(e) if slot != factory => {
                tracing::error!(error = %e, exe = %slot.exe.display(), "the committed release does not start; using the factory one");
                spawn_agent(&factory.exe, config_path, &factory.version, false)?
            }
            Err(e) => return Err(e).context("starting the agent"),
        };
        let t0 = Instant::now();
        match watch_child(child, &shutdown).await {
            Some(code) => return Ok(code),
            None if fw.pending().is_some() => crash_backoff = Duration::from_millis(500),
            None => {
                // A crash: restart, slower each time it crashes quickly.
                crash_backoff = if t0.elapsed() > Duration::from_secs(60) {
                    Duration::from_millis(500)
                } else {
                    (crash_backoff * 2).min(Duration::from_secs(30))
                };
                tracing::error!(
                    delay_ms = crash_backoff.as_millis() as u64,
                    "agent stopped; restarting"
                );
                tokio::time::sleep(crash_backoff).await;
            }
        }
    }
}

/// Waits for the agent; `Some(exit code)` when the supervisor should stop too.
async fn watch_child(
    mut child: tokio::process::Child,
    shutdown: &peercam_net::Shutdown,
) -> Option<ExitCode> {
    tokio::select! {
        r = child.wait() => match r {
            Ok(s) if s.code() == Some(i32::from(EXIT_RESTART)) => None,
            Ok(s) if s.success() => Some(ExitCode::SUCCESS),
            Ok(s) => {
                tracing::error!(status = %s, "agent exited");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "waiting for the agent");
                None
            }
        },
        () = shutdown.wait() => {
            // The agent keeps nothing unsaved (state files are written atomically).
            let _ = child.kill().await;
            Some(ExitCode::SUCCESS)
        }
    }
}
