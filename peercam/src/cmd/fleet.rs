//! `peercam admin campaigns ...` (fleet upgrades, H.626.4 8.11.1) and `peercam admin audit
//! ...` (the audit and system logs, 6.1.14).

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use peercam_cu::Client;
use peercam_signal::cm_campaign::{CampaignCreate, CampaignDetail, CampaignTarget, CampaignView};

use super::cu::print;

/// `peercam admin campaigns`.
#[derive(Subcommand)]
pub(crate) enum CampaignCmd {
    /// Start a campaign: upgrade the cameras of the package's model (narrowed by
    /// `--from-version` and `--device`) stage by stage: a canary, then waves; it pauses by
    /// itself when more than `--failure-percent` of a stage's results are failures.
    Create {
        /// The package's SHA-256 (`peercam admin packages list`).
        #[arg(long)]
        package: String,
        /// A name for people.
        #[arg(long, default_value = "fleet upgrade")]
        name: String,
        /// Refuse unless the package is for this model.
        #[arg(long)]
        model: Option<String>,
        /// Only devices running this version now.
        #[arg(long)]
        from_version: Option<String>,
        /// Only these devices (repeat the option; a group).
        #[arg(long = "device")]
        devices: Vec<String>,
        /// The canary's share of the devices, percent (at least one device). Default 5.
        #[arg(long)]
        canary_percent: Option<u32>,
        /// Devices per wave after the canary. Default a quarter of the rest.
        #[arg(long)]
        wave_size: Option<u32>,
        /// Seconds between stages. Default 600.
        #[arg(long)]
        soak_s: Option<u64>,
        /// Pause when more than this percentage of a stage's results failed. Default 20.
        #[arg(long)]
        failure_percent: Option<u32>,
        /// ... once the stage has this many results. Default 3.
        #[arg(long)]
        min_results: Option<u32>,
        /// Seconds before a silent device has failed. Default 1800.
        #[arg(long)]
        device_timeout_s: Option<u64>,
    },
    /// List the campaigns, newest first.
    List,
    /// A campaign's stages and every device's result; `--follow` shows a progress bar until
    /// it completes, pauses or is aborted.
    Show {
        id: i64,
        #[arg(long)]
        follow: bool,
    },
    /// Pause a campaign (devices in flight finish).
    Pause {
        id: i64,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resume a paused campaign (waives the failure threshold of the stage under way).
    Resume { id: i64 },
    /// Abort a campaign: devices not ordered yet are skipped.
    Abort {
        id: i64,
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Filters of `peercam admin audit`.
#[derive(clap::Args)]
pub(crate) struct LogFilter {
    /// The system log (unit starts, SCU node links, faults, campaigns) instead of the audit
    /// log.
    #[arg(long)]
    system: bool,
    /// At or after, Unix seconds.
    #[arg(long)]
    from: Option<u64>,
    /// Before, Unix seconds.
    #[arg(long)]
    to: Option<u64>,
    /// The acting account id (audit log).
    #[arg(long)]
    actor: Option<i64>,
    /// The device (audit log) or subject (system log).
    #[arg(long)]
    device: Option<String>,
    /// The action (audit) or event (system); a trailing `*` matches a prefix: `campaign.*`.
    #[arg(long)]
    action: Option<String>,
    /// The outcome (audit: `ok` or a refusal code) or the unit (system log: `cmu`).
    #[arg(long)]
    outcome: Option<String>,
}

impl LogFilter {
    fn log(&self) -> &'static str {
        if self.system { "syslog" } else { "audit" }
    }

    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(v) = self.from {
            q.push(("from", v.to_string()));
        }
        if let Some(v) = self.to {
            q.push(("to", v.to_string()));
        }
        if let Some(v) = self.actor {
            q.push(("actor", v.to_string()));
        }
        if let Some(v) = &self.device {
            q.push(("device", v.clone()));
        }
        if let Some(v) = &self.action {
            q.push(("action", v.clone()));
        }
        if let Some(v) = &self.outcome {
            q.push((if self.system { "unit" } else { "outcome" }, v.clone()));
        }
        q
    }
}

fn encode(q: &[(&'static str, String)]) -> String {
    q.iter()
        .map(|(k, v)| format!("{k}={}", urlencoding(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes a query value (unreserved characters and `*` stay).
fn urlencoding(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'*') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `peercam admin audit`.
#[derive(Subcommand)]
pub(crate) enum AuditCmd {
    /// Search the audit log (or `--system`, the system log), newest first.
    Search {
        #[command(flatten)]
        filter: LogFilter,
        /// Rows at most (default 200, at most 5000).
        #[arg(long)]
        limit: Option<u32>,
        /// The last id seen: the next page.
        #[arg(long)]
        cursor: Option<i64>,
    },
    /// Export the log as CSV or JSON lines (streamed, with a progress indicator).
    Export {
        #[command(flatten)]
        filter: LogFilter,
        /// `csv` or `jsonl`.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn summary(c: &CampaignView) -> String {
    let total: u32 = c.stages.iter().map(|s| s.devices).sum();
    let done: u32 = c
        .stages
        .iter()
        .map(|s| s.installed + s.failed + s.skipped)
        .sum();
    format!(
        "{:<5} {:<9} stage {}/{}  {done}/{total} done  {} {}  {}{}",
        c.id,
        c.state,
        c.stage + 1,
        c.stages.len(),
        c.model,
        c.version,
        c.name,
        c.reason
            .as_deref()
            .map(|r| format!("  ({r})"))
            .unwrap_or_default()
    )
}

fn show(d: &CampaignDetail) {
    println!("{}", summary(&d.campaign));
    println!(
        "  {:<7} {:>7} {:>7} {:>9} {:>9} {:>6} {:>7} {:>7}",
        "stage", "devices", "pending", "in flight", "installed", "failed", "skipped", "offline"
    );
    for s in &d.campaign.stages {
        println!(
            "  {:<7} {:>7} {:>7} {:>9} {:>9} {:>6} {:>7} {:>7}",
            if s.stage == 0 {
                "canary".to_owned()
            } else {
                s.stage.to_string()
            },
            s.devices,
            s.pending,
            s.in_flight,
            s.installed,
            s.failed,
            s.skipped,
            s.offline
        );
    }
    for x in &d.devices {
        println!(
            "  {:<22} stage {:<3} {:<11} {}",
            x.device_id,
            x.stage,
            x.state,
            x.reason.as_deref().unwrap_or("")
        );
    }
}

/// Follows a campaign with a progress bar until it leaves running/soaking.
async fn follow(c: &Client, id: i64) -> anyhow::Result<CampaignDetail> {
    let bar = indicatif::ProgressBar::new(1);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} devices")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    loop {
        let d = c.campaign(id).await?;
        let v = &d.campaign;
        let total: u32 = v.stages.iter().map(|s| s.devices).sum();
        let done: u32 = v
            .stages
            .iter()
            .map(|s| s.installed + s.failed + s.skipped)
            .sum();
        bar.set_length(u64::from(total));
        bar.set_position(u64::from(done));
        bar.set_message(format!("campaign {id} {} stage {}", v.state, v.stage + 1));
        if !matches!(v.state.as_str(), "running" | "soaking") {
            bar.finish_and_clear();
            return Ok(d);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `peercam admin campaigns ...`.
pub(crate) async fn campaigns(c: &Client, json: bool, cmd: CampaignCmd) -> anyhow::Result<()> {
    match cmd {
        CampaignCmd::Create {
            package,
            name,
            model,
            from_version,
            devices,
            canary_percent,
            wave_size,
            soak_s,
            failure_percent,
            min_results,
            device_timeout_s,
        } => {
            let req = CampaignCreate {
                name,
                package,
                target: CampaignTarget {
                    model,
                    version: from_version,
                    devices,
                },
                canary_percent,
                wave_size,
                soak_s,
                failure_percent,
                min_results,
                device_timeout_s,
            };
            let d = c.campaign_create(&req).await?;
            print(json, &d, show)?;
        }
        CampaignCmd::List => {
            let l = c.campaigns().await?;
            print(json, &l, |l| {
                if l.is_empty() {
                    println!("no campaigns");
                }
                for v in l {
                    println!("{}", summary(v));
                }
            })?;
        }
        CampaignCmd::Show { id, follow: f } => {
            let d = if f {
                follow(c, id).await?
            } else {
                c.campaign(id).await?
            };
            print(json, &d, show)?;
        }
        CampaignCmd::Pause { id, reason } => {
            let v = c.campaign_action(id, "pause", reason).await?;
            print(json, &v, |v| println!("{}", summary(v)))?;
        }
        CampaignCmd::Resume { id } => {
            let v = c.campaign_action(id, "resume", None).await?;
            print(json, &v, |v| println!("{}", summary(v)))?;
        }
        CampaignCmd::Abort { id, reason } => {
            let v = c.campaign_action(id, "abort", reason).await?;
            print(json, &v, |v| println!("{}", summary(v)))?;
        }
    }
    Ok(())
}

/// `peercam admin audit ...`.
pub(crate) async fn audit(c: &Client, json: bool, cmd: AuditCmd) -> anyhow::Result<()> {
    match cmd {
        AuditCmd::Search {
            filter,
            limit,
            cursor,
        } => {
            let mut q = filter.query();
            if let Some(l) = limit {
                q.push(("limit", l.to_string()));
            }
            if let Some(cur) = cursor {
                q.push(("cursor", cur.to_string()));
            }
            let q = encode(&q);
            if filter.system {
                let l = c.syslog(&q).await?;
                print(json, &l, |l| {
                    for e in l {
                        println!(
                            "{:<8} {:<11} {:<5} {:<22} {:<22} {}",
                            e.id,
                            e.at,
                            e.unit,
                            e.event,
                            e.subject.as_deref().unwrap_or("-"),
                            e.detail
                        );
                    }
                })?;
            } else {
                let l = c.audit_search(&q).await?;
                print(json, &l, |l| {
                    for e in l {
                        println!(
                            "{:<8} {:<11} {:<6} {:<20} {:<22} {:<16} {}",
                            e.id,
                            e.at,
                            e.actor.map_or_else(|| "-".into(), |a| a.to_string()),
                            e.action,
                            e.device_id.as_deref().unwrap_or("-"),
                            e.outcome,
                            e.detail
                        );
                    }
                })?;
            }
        }
        AuditCmd::Export {
            filter,
            format,
            out,
        } => {
            let mut q = filter.query();
            q.push(("format", format));
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} exporting {bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            let b2 = bar.clone();
            let progress = move |n| b2.set_position(n);
            let n = match &out {
                Some(path) => {
                    let mut f = std::io::BufWriter::new(
                        std::fs::File::create(path)
                            .with_context(|| format!("creating {}", path.display()))?,
                    );
                    let n = c
                        .export_log(filter.log(), &encode(&q), &mut f, progress)
                        .await?;
                    f.flush()?;
                    n
                }
                None => {
                    let mut o = std::io::BufWriter::new(std::io::stdout());
                    let n = c
                        .export_log(filter.log(), &encode(&q), &mut o, progress)
                        .await?;
                    o.flush()?;
                    n
                }
            };
            bar.finish_and_clear();
            if let Some(path) = out {
                let summary = serde_json::json!({"bytes": n, "file": path});
                print(json, &summary, |_| {
                    eprintln!("{n} bytes written to {}", path.display());
                })?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(urlencoding("campaign.*"), "campaign.*");
        assert_eq!(urlencoding("a b&c"), "a%20b%26c");
    }
}
