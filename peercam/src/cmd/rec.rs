//! `peercam cu` recording commands (H.626.4 8.7.2 NVR, 8.7.3 SD card): attach cameras to
//! NVRs, set strategies, list recordings with a day timeline, export with a progress bar,
//! and play back with trick modes.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use peercam_record::strategy::{Mode, Retention, Strategy, Window};
use peercam_record::time::{format_rfc3339, parse_rfc3339};

use super::cu::{Conn, print};

/// Recording commands.
#[derive(Subcommand)]
pub(crate) enum RecCmd {
    /// Attach one of your cameras to one of your NVRs, or detach it (H.626.4 8.7.2.1).
    #[command(subcommand)]
    Nvr(NvrCmd),
    /// Show or set a camera's record strategy on its NVR, SD card or cloud storage.
    #[command(subcommand)]
    Record(RecordCmd),
    /// List what was recorded (a timeline of the day, the spans and the events).
    Recordings {
        device: String,
        /// `sd`, an NVR id, `cloud` (8.7.1), or nothing for one timeline over every recorder
        /// (each span with the recorders holding it, nearest first; `*` back-filled).
        #[arg(long)]
        recorder: Option<String>,
        /// The UTC day to show, YYYY-MM-DD (default: today).
        #[arg(long)]
        day: Option<String>,
        /// Or an explicit start, RFC 3339 (with --to).
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// End, RFC 3339.
        #[arg(long, requires = "from")]
        to: Option<String>,
    },
    /// Export a time range to an MP4 file, cut at key frames (H.626.4 8.7.2.2).
    Export {
        device: String,
        /// Start, RFC 3339 (e.g. 2026-11-24T03:00:00Z).
        #[arg(long)]
        from: String,
        /// End, RFC 3339.
        #[arg(long)]
        to: String,
        /// The MP4 file to write.
        #[arg(long)]
        out: PathBuf,
        /// `sd`, an NVR id, `cloud` (8.7.1), or nothing for the camera's NVR (else its SD
        /// card).
        #[arg(long)]
        recorder: Option<String>,
    },
    /// Play a recording and print each frame received: seek, speed (0.25 to 16, negative
    /// for reverse), or frame steps.
    Playback {
        device: String,
        /// Where to start, RFC 3339.
        #[arg(long)]
        from: String,
        /// Speed: 0.25, 0.5, 1, 2, 4, 8, 16 or their negatives (reverse).
        #[arg(long, default_value = "1", allow_hyphen_values = true)]
        speed: String,
        /// Frames to receive.
        #[arg(long, default_value_t = 25)]
        frames: usize,
        /// Pause and step this many frames instead (negative: backwards).
        #[arg(long, allow_hyphen_values = true)]
        step: Option<i32>,
        /// `sd`, an NVR id, `cloud` (8.7.1), or nothing for the camera's NVR (else its SD
        /// card).
        #[arg(long)]
        recorder: Option<String>,
    },
    /// Your cloud storage plan and usage, and the plans to choose from (6.1.13).
    #[command(subcommand)]
    Cloud(super::plan::CloudCmd),
    /// Mark an event on a camera's timeline; `alarm` makes alarm strategies record.
    Event {
        device: String,
        /// alarm or manual.
        #[arg(long, default_value = "manual")]
        kind: String,
        #[arg(long, default_value = "")]
        detail: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum NvrCmd {
    /// Attach CAMERA to NVR; the NVR looks for it on its LAN and records per strategy.
    Attach { nvr: String, camera: String },
    /// Detach CAMERA from NVR.
    Detach {
        nvr: String,
        camera: String,
        /// Also delete what the NVR recorded of it.
        #[arg(long)]
        wipe: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum RecordCmd {
    /// Show the strategy and state.
    Show {
        device: String,
        /// `sd`, an NVR id, `cloud` (8.7.1), or nothing for the camera's NVR (else its SD card).
        #[arg(long)]
        recorder: Option<String>,
    },
    /// Set the strategy.
    Set {
        device: String,
        /// `sd`, an NVR id, `cloud` (the camera uploads to its cloud storage, 8.7.1), or
        /// nothing for the camera's NVR (else its SD card).
        #[arg(long)]
        recorder: Option<String>,
        /// off, continuous, weekly, periodic or alarm.
        #[arg(long)]
        mode: String,
        /// weekly: a window like `mon-fri 08:00-18:00` (repeatable).
        #[arg(long = "window")]
        windows: Vec<String>,
        /// periodic: the period, seconds.
        #[arg(long, default_value_t = 600)]
        every: u32,
        /// periodic: seconds recorded each period.
        #[arg(long = "for", default_value_t = 60)]
        record_for: u32,
        /// alarm: seconds kept from before the alarm.
        #[arg(long, default_value_t = 5)]
        pre: u32,
        /// alarm: seconds recorded after the last alarm.
        #[arg(long, default_value_t = 30)]
        post: u32,
        /// Space for this camera, MiB (0: the disk's).
        #[arg(long, default_value_t = 0)]
        quota_mb: u64,
        /// When the quota is full, stop instead of overwriting the oldest.
        #[arg(long)]
        no_cyclic: bool,
        /// Delete recordings older than this many days (0: never by age).
        #[arg(long, default_value_t = 0)]
        max_age_days: u32,
        /// Minutes east of UTC the weekly windows are in.
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        utc_offset_min: i16,
    },
}

fn day_bits(spec: &str) -> anyhow::Result<u8> {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let idx = |d: &str| {
        NAMES
            .iter()
            .position(|n| d.eq_ignore_ascii_case(n))
            .ok_or_else(|| anyhow::anyhow!("unknown day {d:?} (mon..sun)"))
    };
    let mut bits = 0u8;
    for part in spec.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (idx(a)?, idx(b)?);
                if a > b {
                    bail!("day range {part:?} runs backwards");
                }
                for d in a..=b {
                    bits |= 1 << d;
                }
            }
            None if part.eq_ignore_ascii_case("daily") => bits = 0x7f,
            None => bits |= 1 << idx(part)?,
        }
    }
    Ok(bits)
}

fn minutes(hhmm: &str) -> anyhow::Result<u16> {
    let (h, m) = hhmm
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("time {hhmm:?} is not HH:MM"))?;
    let (h, m): (u16, u16) = (h.parse()?, m.parse()?);
    if h > 24 || m > 59 || (h == 24 && m > 0) {
        bail!("time {hhmm:?} is not HH:MM");
    }
    Ok(h * 60 + m)
}

/// `mon-fri 08:00-18:00`, `daily 22:00-24:00`, `sat,sun 00:00-24:00`.
fn window(spec: &str) -> anyhow::Result<Window> {
    let (days, span) = spec
        .trim()
        .split_once(' ')
        .ok_or_else(|| anyhow::anyhow!("window {spec:?}: expected `DAYS HH:MM-HH:MM`"))?;
    let (a, b) = span
        .trim()
        .split_once('-')
        .ok_or_else(|| anyhow::anyhow!("window {spec:?}: expected HH:MM-HH:MM"))?;
    Ok(Window {
        days: day_bits(days.trim())?,
        start_min: minutes(a)?,
        end_min: minutes(b)?,
    })
}

fn parse_time(what: &str, v: &str) -> anyhow::Result<u64> {
    parse_rfc3339(v).with_context(|| format!("--{what}"))
}

/// The day's coverage as 96 quarter-hour cells: `#` recorded, `.` not, `!` an event.
fn timeline(list: &peercam_signal::record::RecordingList) -> String {
    let cells = 96u64;
    let span = (list.to_ms - list.from_ms).max(1);
    let mut out = vec!['.'; cells as usize];
    for s in &list.spans {
        let a = (s.start_ms.saturating_sub(list.from_ms)) * cells / span;
        let b = (s.end_ms.saturating_sub(list.from_ms) * cells).div_ceil(span);
        for c in out.iter_mut().take(b.min(cells) as usize).skip(a as usize) {
            *c = '#';
        }
    }
    for e in &list.events {
        let i = (e.at_ms.saturating_sub(list.from_ms) * cells / span).min(cells - 1);
        out[i as usize] = '!';
    }
    out.into_iter().collect()
}

pub(crate) async fn run(conn: &Conn, cmd: RecCmd) -> anyhow::Result<()> {
    let json = conn.json;
    let c = conn.client().await?;
    match cmd {
        RecCmd::Nvr(NvrCmd::Attach { nvr, camera }) => {
            let a = c.attach_camera(&nvr, &camera).await?;
            print(json, &a, |a| match &a.lan {
                Some(lan) => println!(
                    "{} attached to {}; found on the LAN at {lan}",
                    a.camera, a.nvr
                ),
                None => println!(
                    "{} attached to {}; not found on the NVR's LAN (it will use the camera's reported address)",
                    a.camera, a.nvr
                ),
            })?;
        }
        RecCmd::Nvr(NvrCmd::Detach { nvr, camera, wipe }) => {
            c.detach_camera(&nvr, &camera, wipe).await?;
            if !json {
                println!(
                    "{camera} detached from {nvr}{}",
                    if wipe { "; recordings deleted" } else { "" }
                );
            }
        }
        RecCmd::Record(RecordCmd::Show { device, recorder })
            if recorder.as_deref() == Some("cloud") =>
        {
            // H.626.4 8.7.1: the camera's uploads to its CS.
            let s = c.cloud_recording_state(&device).await?;
            print(json, &s, |s| {
                let r = &s.recording;
                println!(
                    "strategy: {}\nrecording now: {}\ncloud storage: {}\nstored: {:.1} MiB{}\nstorage full: {}",
                    serde_json::to_string(&r.strategy).unwrap_or_default(),
                    r.recording,
                    s.cs_url.as_deref().unwrap_or("-"),
                    r.used_bytes as f64 / 1048576.0,
                    s.quota_bytes
                        .map(|q| format!(" of {:.1} MiB", q as f64 / 1048576.0))
                        .unwrap_or_default(),
                    r.full
                );
                println!(
                    "backlog: {} objects, {:.1} MiB\nuploaded: {} objects{}\npruned on a full pool: {}\nlost before upload: {}",
                    s.backlog_objects,
                    s.backlog_bytes as f64 / 1048576.0,
                    s.acked_objects,
                    s.last_ack_ms
                        .map(|t| format!(", last at {}", format_rfc3339(t)))
                        .unwrap_or_default(),
                    s.pruned_objects,
                    s.lost_objects
                );
                if let Some(e) = &r.last_error {
                    println!("last problem: {e}");
                }
            })?;
        }
        RecCmd::Record(RecordCmd::Show { device, recorder }) => {
            let s = c.recording_state(&device, recorder.as_deref()).await?;
            print(json, &s, |s| {
                println!(
                    "strategy: {}\nrecording now: {}\nstored: {:.1} MiB{}\nquota full: {}",
                    serde_json::to_string(&s.strategy).unwrap_or_default(),
                    s.recording,
                    s.used_bytes as f64 / 1048576.0,
                    s.oldest_ms
                        .map(|o| format!(" since {}", format_rfc3339(o)))
                        .unwrap_or_default(),
                    s.full
                );
                if let Some(e) = &s.last_error {
                    println!("last problem: {e}");
                }
            })?;
        }
        RecCmd::Record(RecordCmd::Set {
            device,
            recorder,
            mode,
            windows,
            every,
            record_for,
            pre,
            post,
            quota_mb,
            no_cyclic,
            max_age_days,
            utc_offset_min,
        }) => {
            let mode = match mode.as_str() {
                "off" => Mode::Off,
                "continuous" => Mode::Continuous,
                "weekly" => Mode::Weekly {
                    windows: windows
                        .iter()
                        .map(|w| window(w))
                        .collect::<anyhow::Result<_>>()?,
                },
                "periodic" => Mode::Periodic {
                    every_s: every,
                    record_s: record_for,
                },
                "alarm" => Mode::Alarm {
                    pre_s: pre,
                    post_s: post,
                },
                other => bail!("--mode {other:?}: off, continuous, weekly, periodic or alarm"),
            };
            let strategy = Strategy {
                mode,
                retention: Retention {
                    quota_bytes: quota_mb << 20,
                    cyclic: !no_cyclic,
                    max_age_days,
                },
                utc_offset_min,
            };
            strategy.validate().context("the strategy")?;
            let s = c
                .set_recording(&device, recorder.as_deref(), &strategy)
                .await?;
            print(json, &s, |s| {
                println!(
                    "strategy saved on the recorder; recording now: {}",
                    s.recording
                )
            })?;
        }
        RecCmd::Recordings {
            device,
            recorder,
            day,
            from,
            to,
        } => recordings(&c, json, &device, recorder.as_deref(), day, from, to).await?,
        RecCmd::Export {
            device,
            from,
            to,
            out,
            recorder,
        } => export(&c, json, &device, (&from, &to), &out, recorder.as_deref()).await?,
        RecCmd::Playback {
            device,
            from,
            speed,
            frames,
            step,
            recorder,
        } => {
            playback(
                &c,
                &device,
                &from,
                &speed,
                frames,
                step,
                recorder.as_deref(),
            )
            .await?
        }
        RecCmd::Cloud(cmd) => super::plan::run(&c, json, cmd).await?,
        RecCmd::Event {
            device,
            kind,
            detail,
        } => {
            let r = c.record_event(&device, &kind, &detail).await?;
            print(json, &r, |r| {
                println!("event recorded by {}", r.recorders.join(", "))
            })?;
        }
    }
    Ok(())
}

/// `cu recordings`: a day's (or a range's) recordings with a text timeline (8.7.2).
async fn recordings(
    c: &peercam_cu::Client,
    json: bool,
    device: &str,
    recorder: Option<&str>,
    day: Option<String>,
    from: Option<String>,
    to: Option<String>,
) -> anyhow::Result<()> {
    let (from, to) = match (from, to, day) {
        (Some(f), Some(t), _) => (parse_time("from", &f)?, parse_time("to", &t)?),
        (_, _, Some(d)) => {
            let f = parse_rfc3339(&format!("{d}T00:00:00Z")).context("--day YYYY-MM-DD")?;
            (f, f + 86_400_000)
        }
        _ => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as u64;
            let f = now - now % 86_400_000;
            (f, f + 86_400_000)
        }
    };
    if recorder.is_none() {
        // 6.3.2: one timeline over every recorder, each span with its sources.
        let t = c.timeline(device, from, to).await?;
        return print(json, &t, |t| {
            let bar = peercam_signal::record::RecordingList {
                camera: t.camera.clone(),
                from_ms: t.from_ms,
                to_ms: t.to_ms,
                spans: t
                    .spans
                    .iter()
                    .map(|s| peercam_signal::record::RecordedSpan {
                        start_ms: s.start_ms,
                        end_ms: s.end_ms,
                        bytes: s.bytes,
                        backfilled: s.backfilled,
                    })
                    .collect(),
                events: t.events.clone(),
            };
            println!(
                "{} .. {}",
                format_rfc3339(t.from_ms),
                format_rfc3339(t.to_ms)
            );
            println!("|{}|", timeline(&bar));
            println!(" 00    03    06    09    12    15    18    21    24  (# recorded, ! event)");
            for s in &t.spans {
                println!(
                    "  {} .. {}  {:>8.1} s  {:>8.1} MiB  {}{}",
                    format_rfc3339(s.start_ms),
                    format_rfc3339(s.end_ms),
                    (s.end_ms - s.start_ms) as f64 / 1000.0,
                    s.bytes as f64 / 1048576.0,
                    s.sources.join(", "),
                    if s.backfilled { " *" } else { "" }
                );
            }
            for e in &t.events {
                println!("  {}  {}  {}", format_rfc3339(e.at_ms), e.kind, e.detail);
            }
            for r in t.recorders.iter().filter(|r| r.state != "ok") {
                println!("  ({}: {})", r.recorder, r.state);
            }
            if t.spans.iter().any(|s| s.backfilled) {
                println!("  * back-filled after an outage");
            }
        });
    }
    let list = c.recordings(device, recorder, from, to).await?;
    print(json, &list, |l| {
        println!(
            "{} .. {}",
            format_rfc3339(l.from_ms),
            format_rfc3339(l.to_ms)
        );
        println!("|{}|", timeline(l));
        println!(" 00    03    06    09    12    15    18    21    24  (# recorded, ! event)");
        for s in &l.spans {
            println!(
                "  {} .. {}  {:>8.1} s  {:>8.1} MiB",
                format_rfc3339(s.start_ms),
                format_rfc3339(s.end_ms),
                (s.end_ms - s.start_ms) as f64 / 1000.0,
                s.bytes as f64 / 1048576.0
            );
        }
        for e in &l.events {
            println!("  {}  {}  {}", format_rfc3339(e.at_ms), e.kind, e.detail);
        }
    })?;
    Ok(())
}

/// `cu export`: an MP4 of a range, downloaded with a progress bar (8.7.2).
async fn export(
    c: &peercam_cu::Client,
    json: bool,
    device: &str,
    range: (&str, &str),
    out: &std::path::Path,
    recorder: Option<&str>,
) -> anyhow::Result<()> {
    let (f, t) = (parse_time("from", range.0)?, parse_time("to", range.1)?);
    let ex = c.export_url(device, recorder, f, t).await?;
    let bar = indicatif::ProgressBar::new(ex.bytes.max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "exporting [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    if json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    } else {
        // The recorder builds the file first, then sends it.
        bar.set_message("preparing");
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    let n = c
        .fetch_export(&ex.url, out, |done, total| {
            if let Some(t) = total {
                bar.set_length(t);
            }
            bar.set_position(done);
        })
        .await?;
    bar.finish_and_clear();
    let summary = serde_json::json!({"file": out, "bytes": n, "spans": ex.spans.len()});
    print(json, &summary, |_| {
        println!("wrote {} ({:.1} MiB)", out.display(), n as f64 / 1048576.0)
    })?;
    Ok(())
}

/// `cu playback`: plays from the recorder at a speed, or steps frames, printing each one.
async fn playback(
    c: &peercam_cu::Client,
    device: &str,
    from: &str,
    speed: &str,
    frames: usize,
    step: Option<i32>,
    recorder: Option<&str>,
) -> anyhow::Result<()> {
    let at = parse_time("from", from)?;
    let answer = c.playback_url(device, recorder, at).await?;
    // H.626.4 8.3: the recorder's ladder (LAN, public, mapped, the MTU's pipe), in order;
    // an older CMU gives only `url`.
    let mut p = if answer.paths.is_empty() {
        peercam_cu::playback::Playback::open(&answer.url).await?
    } else {
        let puncher = peercam_cu::live::Puncher {
            client: c.clone(),
            device: device.to_owned(),
            recorder: Some(answer.recorder.clone()),
        };
        let (p, reached) =
            peercam_cu::playback::Playback::open_best(&answer.paths, Some(&puncher)).await?;
        eprintln!("playing over the {} path", reached.kind.as_str());
        p
    };
    let show = |s: &peercam_cu::playback::Seen| {
        let (n, t) = s
            .tag
            .as_ref()
            .map(|t| {
                (
                    t.frame.to_string(),
                    format_rfc3339(t.capture_unix_us / 1000),
                )
            })
            .unwrap_or_default();
        println!(
            "{}  rtp {:>10}  frame {:>8}  {}",
            if s.key { "I" } else { "P" },
            s.rtp_ts,
            n,
            t
        );
    };
    match step {
        Some(k) => {
            let r = p.play(None, Some("1")).await?;
            let _ = r;
            p.pause().await?;
            for _ in 0..k.unsigned_abs() {
                let s = p.step(k > 0).await?;
                show(&s);
            }
        }
        None => {
            let r = p.play(None, Some(speed)).await?;
            println!(
                "playing from {} at {}",
                r.headers.get("range").unwrap_or("?"),
                r.headers.get("scale").unwrap_or("1")
            );
            for _ in 0..frames {
                match p.next_frame(Duration::from_secs(5)).await? {
                    Some(s) => show(&s),
                    None => {
                        println!("(no more frames)");
                        break;
                    }
                }
            }
        }
    }
    p.teardown().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse() {
        let w = window("mon-fri 08:00-18:00").unwrap();
        assert_eq!((w.days, w.start_min, w.end_min), (0b001_1111, 480, 1080));
        assert_eq!(window("daily 22:00-24:00").unwrap().days, 0x7f);
        assert_eq!(window("sat,sun 00:00-24:00").unwrap().days, 0b110_0000);
        assert!(window("fri-mon 00:00-01:00").is_err());
        assert!(window("mon 25:00-26:00").is_err());
    }
}
