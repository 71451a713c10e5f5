//! `peercam cu clip share`, `clip list`, `clip revoke`: shared clip links (issue 17 item 9, H.626.4
//! 8.7.1 download). `share` exports the range from the chosen recorder with the existing
//! export, uploads it to the camera's cloud storage unit with a progress bar and prints the
//! link; anyone with the link plays and downloads the clip in a browser until it expires or
//! is revoked.

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use peercam_cu::{ShareSpec, ShareStep};
use peercam_record::time::{format_rfc3339, parse_rfc3339};
use peercam_signal::cm_clip::ClipView;

use super::cu::{Conn, print};

/// Shared clip commands.
#[derive(Subcommand)]
pub(crate) enum ShareCmd {
    /// Share a clip of a camera by link (at most 15 minutes): export it from a recorder,
    /// upload it to the camera's cloud storage and print the link.
    Share {
        device: String,
        /// Start, RFC 3339 (e.g. 2026-11-24T03:00:00Z).
        #[arg(long)]
        from: String,
        /// End, RFC 3339.
        #[arg(long)]
        to: String,
        /// `sd`, an NVR id, `cloud`, or nothing for the camera's NVR (else its SD card).
        #[arg(long)]
        recorder: Option<String>,
        /// How long the link works: `90s`, `30m`, `12h`, `7d` (1 minute to 30 days).
        #[arg(long, default_value = "7d")]
        expires: String,
        /// A note shown on the page and in your list.
        #[arg(long)]
        label: Option<String>,
    },
    /// Your shared clip links, newest first.
    List,
    /// Revoke a shared clip link: it stops working at once and the clip is deleted.
    Revoke {
        /// The clip's id (see `clip list`).
        id: String,
    },
}

/// `90s`, `30m`, `12h`, `7d` (or plain seconds) as seconds.
fn parse_life(v: &str) -> anyhow::Result<u64> {
    let (n, unit) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&v[..i], c),
        _ => (v, 's'),
    };
    let n: u64 = n.parse().with_context(|| format!("--expires {v}"))?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => bail!("--expires {v}: use s, m, h or d"),
    };
    n.checked_mul(mult)
        .with_context(|| format!("--expires {v}: too long"))
}

fn line(c: &ClipView) {
    println!(
        "{}  {:<8} {}  {} to {}  until {}  views {} downloads {}{}",
        c.id,
        c.state,
        c.camera,
        format_rfc3339(c.from_ms),
        format_rfc3339(c.to_ms),
        format_rfc3339(c.expires_at * 1000),
        c.views,
        c.downloads,
        c.label
            .as_deref()
            .map_or_else(String::new, |l| format!("  \"{l}\""))
    );
    println!("    {}", c.link);
}

pub(crate) async fn run(conn: &Conn, cmd: ShareCmd) -> anyhow::Result<()> {
    let json = conn.json;
    let c = conn.client().await?;
    match cmd {
        ShareCmd::Share {
            device,
            from,
            to,
            recorder,
            expires,
            label,
        } => {
            let from_ms = parse_rfc3339(&from).context("--from")?;
            let to_ms = parse_rfc3339(&to).context("--to")?;
            let life = parse_life(&expires)?;
            let bar = indicatif::ProgressBar::new(1);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:10} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            if json {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            } else {
                bar.set_message("exporting");
                bar.enable_steady_tick(Duration::from_millis(200));
            }
            let b = bar.clone();
            let spec = ShareSpec {
                camera: &device,
                recorder: recorder.as_deref(),
                from_ms,
                to_ms,
                expires_in_s: Some(life),
                label: label.as_deref(),
            };
            let clip = c
                .share_range(&spec, &std::env::temp_dir(), move |step| match step {
                    ShareStep::Export(n, total) => {
                        if let Some(t) = total {
                            b.set_length(t);
                        }
                        b.set_position(n);
                    }
                    ShareStep::Upload(n, total) => {
                        if n <= 256 * 1024 {
                            b.set_message("uploading");
                        }
                        b.set_length(total);
                        b.set_position(n);
                    }
                })
                .await?;
            bar.finish_and_clear();
            print(json, &clip, |c| {
                println!("{}", c.link);
                println!(
                    "works until {} (revoke: peercam cu clip revoke {})",
                    format_rfc3339(c.expires_at * 1000),
                    c.id
                );
            })?;
        }
        ShareCmd::List => {
            let all = c.clips().await?;
            print(json, &all, |all| {
                if all.is_empty() {
                    println!("no shared clips");
                }
                all.iter().for_each(line);
            })?;
        }
        ShareCmd::Revoke { id } => {
            let clip = c.revoke_clip(&id).await?;
            print(json, &clip, |c| println!("{} revoked", c.id))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h626_8_7_1_share_lives_parse() {
        assert_eq!(parse_life("7d").ok(), Some(604_800));
        assert_eq!(parse_life("90s").ok(), Some(90));
        assert_eq!(parse_life("90").ok(), Some(90));
        assert_eq!(parse_life("30m").ok(), Some(1800));
        assert_eq!(parse_life("12h").ok(), Some(43_200));
        assert!(parse_life("3w").is_err() && parse_life("d").is_err());
    }
}
