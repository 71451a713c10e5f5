//! `peercam cu alarms ...`: the alarms of your cameras and account (H.626.4 8.8), a camera's
//! alarm strategy, simulated inputs, and your message templates (6.1.9).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use peercam_alarm::{AlarmKind, AlarmStrategy};
use peercam_signal::cm_alarm::{AlarmStrategyState, AlarmTemplates, AlarmView};

use super::cu::{Conn, print};

/// Alarm commands.
#[derive(Subcommand)]
pub(crate) enum AlarmsCmd {
    /// List alarms, newest first.
    List {
        /// Only this camera's.
        #[arg(long)]
        camera: Option<String>,
        /// Only this kind (motion, input, video_loss, tamper, onvif, manual, login, logout,
        /// storage_full, camera_offline, camera_online, recorder_offline, upgrade_result).
        #[arg(long)]
        kind: Option<String>,
        /// `active` or `reset`.
        #[arg(long)]
        state: Option<String>,
        /// How many (1-500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Older than this alarm id (the `next` of a previous page).
        #[arg(long)]
        before: Option<i64>,
    },
    /// Show one alarm.
    Show { id: i64 },
    /// Reset an alarm; the camera clears it and switches its alarm output off (8.8).
    Reset { id: i64 },
    /// Show or set a camera's alarm strategy (8.8 steps 1-4).
    #[command(subcommand)]
    Strategy(StrategyCmd),
    /// Show your message templates per alarm kind, set one, or preview one (6.1.9).
    Templates {
        /// Set the template of this kind (with --text).
        #[arg(long)]
        kind: Option<String>,
        /// The template, e.g. "Motion on {camera} at {time}. {link}".
        #[arg(long)]
        text: Option<String>,
        /// Only render --text for a sample alarm of --kind: text, encoding, SMS segments.
        #[arg(long)]
        preview: bool,
    },
    /// Switch a simulated alarm input of a camera you own (the demo camera).
    Trip {
        device: String,
        /// The input, 1-8.
        input: u8,
        /// Switch it off instead of on.
        #[arg(long)]
        off: bool,
    },
}

/// Strategy commands.
#[derive(Subcommand)]
pub(crate) enum StrategyCmd {
    /// The strategy saved for the camera, and what the camera reports.
    Get { device: String },
    /// Save a strategy from a JSON file (an `AlarmStrategy`, see docs/protocol.md) and send
    /// it to the camera; an offline camera gets it when it is back.
    Set { device: String, file: PathBuf },
}

fn show(a: &AlarmView) {
    println!(
        "{:>6}  {:<16} {:<7} {:<22} {} {}",
        a.id,
        a.kind.as_str(),
        a.state.as_str(),
        a.camera.as_deref().unwrap_or("-"),
        peercam_record::time::format_rfc3339(a.at_ms),
        a.detail
    );
}

/// Runs an alarm command.
pub(crate) async fn run(conn: &Conn, cmd: AlarmsCmd) -> anyhow::Result<()> {
    let json = conn.json;
    let c = conn.client().await?;
    match cmd {
        AlarmsCmd::List {
            camera,
            kind,
            state,
            limit,
            before,
        } => {
            let mut q = format!("limit={limit}");
            for (k, v) in [("camera", camera), ("kind", kind), ("state", state)] {
                if let Some(v) = v {
                    q.push_str(&format!("&{k}={v}"));
                }
            }
            if let Some(b) = before {
                q.push_str(&format!("&before={b}"));
            }
            let l = c.alarms(&q).await?;
            print(json, &l, |l| {
                l.alarms.iter().for_each(show);
                if let Some(n) = l.next {
                    println!("more: --before {n}");
                }
            })?;
        }
        AlarmsCmd::Show { id } => {
            let a = c.alarm(id).await?;
            print(json, &a, show)?;
        }
        AlarmsCmd::Reset { id } => {
            let a = c.reset_alarm(id).await?;
            print(json, &a, show)?;
        }
        AlarmsCmd::Strategy(s) => strategy(&c, json, s).await?,
        AlarmsCmd::Templates {
            kind,
            text,
            preview,
        } => templates(&c, json, kind, text, preview).await?,
        AlarmsCmd::Trip { device, input, off } => {
            let s = c.trip_input(&device, input, !off).await?;
            print(json, &s, |s| {
                println!("output {}", if s.output_on { "on" } else { "off" });
                for i in &s.inputs {
                    println!(
                        "input {}: {}",
                        i.input,
                        if i.active { "active" } else { "idle" }
                    );
                }
            })?;
        }
    }
    Ok(())
}

async fn strategy(c: &peercam_cu::Client, json: bool, cmd: StrategyCmd) -> anyhow::Result<()> {
    let (device, body) = match cmd {
        StrategyCmd::Get { device } => (device, None),
        StrategyCmd::Set { device, file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let s: AlarmStrategy = serde_json::from_str(&text)
                .with_context(|| format!("{} is not an alarm strategy", file.display()))?;
            (device, Some(s))
        }
    };
    let state: AlarmStrategyState = match &body {
        None => c.alarm_strategy(&device).await?,
        Some(s) => c.set_alarm_strategy(&device, s).await?,
    };
    print(json, &state, |s| {
        println!(
            "revision {} ({})",
            s.revision,
            if s.applied {
                "applied by the camera"
            } else {
                "pending: sent when the camera is online"
            }
        );
        println!(
            "{}",
            serde_json::to_string_pretty(&s.strategy).unwrap_or_default()
        );
    })
}

async fn templates(
    c: &peercam_cu::Client,
    json: bool,
    kind: Option<String>,
    text: Option<String>,
    preview: bool,
) -> anyhow::Result<()> {
    match (kind, text) {
        (Some(kind), Some(text)) if preview => {
            let kind = AlarmKind::parse(&kind).with_context(|| format!("no alarm kind {kind}"))?;
            let p = c.preview_template(kind, &text).await?;
            print(json, &p, |p| {
                println!(
                    "{}\n({}, {} units, {} SMS)",
                    p.text, p.encoding, p.units, p.segments
                )
            })
        }
        (Some(kind), Some(text)) => {
            let mut all = c.alarm_templates().await?;
            all.templates.insert(kind, text);
            let t = c.set_alarm_templates(&all).await?;
            print(json, &t, list_templates)
        }
        (None, None) => {
            let t = c.alarm_templates().await?;
            print(json, &t, list_templates)
        }
        _ => anyhow::bail!("give both --kind and --text (or neither, to list)"),
    }
}

fn list_templates(t: &AlarmTemplates) {
    for (k, v) in &t.templates {
        println!("{k:<16} {v}");
    }
}
