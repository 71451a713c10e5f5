//! `peercam cu snapshots get|set|off DEVICE`: a camera's timed snapshots to a phone
//! (H.626.4 6.1.12).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use peercam_record::strategy::Window;
use peercam_signal::cm_snapshot::{SnapshotScheduleRequest, SnapshotScheduleState};

use super::cu::{Conn, print};

/// Timed-snapshot commands.
#[derive(Subcommand)]
pub(crate) enum SnapshotsCmd {
    /// The camera's schedule, its last and next due time, snapshots kept, SMS today.
    Get { device: String },
    /// Take a snapshot every N minutes and send each to a phone as an SMS with a link.
    Set {
        device: String,
        /// Minutes between snapshots (1-1440).
        #[arg(long)]
        every_min: u32,
        /// Where the SMS go, E.164 (+ and digits).
        #[arg(long)]
        phone: String,
        /// Weekly windows of local time as JSON, e.g.
        /// '[{"days":31,"start_min":480,"end_min":1080}]' (default: around the clock).
        #[arg(long)]
        schedule: Option<String>,
        /// Or the windows from a JSON file.
        #[arg(long, conflicts_with = "schedule")]
        schedule_file: Option<PathBuf>,
        /// Minutes east of UTC of the windows.
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        utc_offset_min: i16,
        /// Widest picture, pixels.
        #[arg(long, default_value_t = 640)]
        max_width: u16,
        /// Snapshots kept for the camera.
        #[arg(long, default_value_t = 48)]
        keep: u32,
        /// Save it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Stop the camera's timed snapshots.
    Off { device: String },
}

fn show(s: &SnapshotScheduleState) {
    let r = &s.schedule;
    println!(
        "{} every {} min to {} ({} windows, UTC{:+} min), max width {}, keep {}",
        if r.enabled { "on:" } else { "off:" },
        r.every_min,
        r.phone,
        r.schedule.len(),
        r.utc_offset_min,
        r.max_width,
        r.keep
    );
    let ms = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    println!(
        "last due {} ms, next due {} ms; {} kept; {}/{} SMS today",
        ms(s.last_due_ms),
        ms(s.next_due_ms),
        s.kept,
        s.sms_today,
        s.sms_per_day
    );
}

fn windows(inline: Option<String>, file: Option<PathBuf>) -> anyhow::Result<Vec<Window>> {
    let text = match (inline, file) {
        (Some(t), _) => t,
        (None, Some(f)) => {
            std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, None) => return Ok(Vec::new()),
    };
    serde_json::from_str(&text).context("the schedule is not a JSON list of windows")
}

/// Runs a timed-snapshot command.
pub(crate) async fn run(conn: &Conn, cmd: SnapshotsCmd) -> anyhow::Result<()> {
    let json = conn.json;
    let c = conn.client().await?;
    match cmd {
        SnapshotsCmd::Get { device } => {
            let s = c.snapshot_schedule(&device).await?;
            print(json, &s, show)?;
        }
        SnapshotsCmd::Set {
            device,
            every_min,
            phone,
            schedule,
            schedule_file,
            utc_offset_min,
            max_width,
            keep,
            disabled,
        } => {
            let req = SnapshotScheduleRequest {
                enabled: !disabled,
                every_min,
                schedule: windows(schedule, schedule_file)?,
                utc_offset_min,
                phone,
                max_width,
                keep,
            };
            let s = c.set_snapshot_schedule(&device, &req).await?;
            print(json, &s, show)?;
        }
        SnapshotsCmd::Off { device } => {
            c.delete_snapshot_schedule(&device).await?;
            if !json {
                println!("timed snapshots of {device} stopped");
            }
        }
    }
    Ok(())
}
