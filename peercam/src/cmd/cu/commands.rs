//! The `cu` subcommands that take more than a call and a line of output: one function each,
//! called from [`super::run`].

use super::*;

/// `cu upgrade`: starts or follows a device's upgrade (8.11.1); failure when it failed or
/// rolled back.
pub(super) async fn upgrade(
    conn: &Conn,
    json: bool,
    device: &str,
    to: Option<String>,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    let client = conn.client().await?;
    let mut s = match &to {
        Some(v) => client.upgrade(device, v).await?,
        None => client.upgrade_status(device).await?,
    };
    if wait {
        s = follow_upgrade(&client, device, s, to.as_deref()).await?;
    }
    print(json, &s, |s| {
        println!(
            "running {}; {}{}{}",
            s.running,
            s.state,
            s.target
                .as_deref()
                .map(|t| format!(" (target {t})"))
                .unwrap_or_default(),
            s.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    })?;
    if matches!(s.state.as_str(), "failed" | "rolled_back") {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `cu params get`: the camera's parameter document (8.9.1).
pub(super) async fn params_get(conn: &Conn, json: bool, device: &str) -> anyhow::Result<()> {
    let s = conn.client().await?.params(device).await?;
    print(json, &s, |s| {
        println!(
            "revision {} (night vision: IR lamp {}, light {} %)",
            s.revision,
            if s.ir_lamp_on { "on" } else { "off" },
            s.light_pct
        );
        if let Ok(text) = serde_json::to_string_pretty(&s.params) {
            println!("{text}");
        }
    })?;
    Ok(())
}

/// `cu reset`: factory reset of a camera (8.10), only with `--yes`.
pub(super) async fn reset(
    conn: &Conn,
    device: &str,
    wipe_recordings: bool,
    yes: bool,
) -> anyhow::Result<()> {
    if !yes {
        bail!(
            "a reset cannot be undone: the camera forgets its settings and is unbound; add --yes to go ahead"
        );
    }
    conn.client().await?.reset(device, wipe_recordings).await?;
    println!("{device} acknowledged the reset; it is unbound and registers again in factory state");
    Ok(())
}

/// `cu share`: shares a device with a sub-account (8.6).
pub(super) async fn share(
    conn: &Conn,
    json: bool,
    device: &str,
    to: &str,
    scopes: &str,
) -> anyhow::Result<()> {
    let s = conn
        .client()
        .await?
        .share(device, to, parse_scopes(scopes)?)
        .await?;
    print(json, &s, |s| {
        println!(
            "shared {} with {} ({:?})",
            s.device_id, s.username, s.scopes
        )
    })?;
    Ok(())
}

/// `cu talk`: a WAV file to the camera's speaker over the RTSP back channel (6.1.8).
pub(super) async fn talk(
    conn: &Conn,
    json: bool,
    (device, only): (String, Option<String>),
    file: PathBuf,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let pcm = peercam_cu::talk::read_wav(&bytes).with_context(|| file.display().to_string())?;
    let r = conn
        .client()
        .await?
        .play(&device, &peercam_signal::cm::PlayRequest::default())
        .await?;
    let total = pcm.len() as f64 / f64::from(peercam_cu::talk::RATE);
    let bar = progress(
        (total * 10.0).ceil() as u64,
        "{spinner} talking [{bar:30}] {msg}",
        json,
    );
    let paths = media_paths(&r, only.as_deref())?;
    let puncher = peercam_cu::live::Puncher {
        client: conn.client().await?,
        device: device.clone(),
        recorder: None,
    };
    let talked = peercam_cu::talk::talk(&paths, Some(&puncher), &pcm, |s| {
        bar.set_position((s * 10.0) as u64);
        bar.set_message(format!("{s:.1}/{total:.1} s"));
    })
    .await?;
    bar.finish_and_clear();
    let out = serde_json::json!({
        "device": device,
        "seconds": talked.seconds,
        "packets": talked.packets,
        "codec": talked.codec.encoding_name(),
        "path": talked.reached.kind.as_str(),
    });
    print(json, &out, |_| {
        println!(
            "said {:.1} s to {device} ({} packets of {}, {} path)",
            talked.seconds,
            talked.packets,
            talked.codec.encoding_name(),
            talked.reached.kind.as_str()
        );
    })?;
    Ok(())
}

/// `cu url`: a play URL for any RTSP player, with the other paths on stderr (8.3, 8.4).
pub(super) async fn url(
    conn: &Conn,
    json: bool,
    device: &str,
    caps: &CapsArgs,
) -> anyhow::Result<()> {
    let r = conn.client().await?.play(device, &caps.request()).await?;
    print(json, &r, |r| {
        println!("{}", r.url);
        for p in r.paths.iter().filter(|p| p.url != r.url) {
            eprintln!("  also ({}): {}", p.kind.as_str(), p.url);
        }
    })?;
    Ok(())
}

/// `cu login`: logs in and saves the session for the next commands.
pub(super) async fn login(conn: &Conn, json: bool) -> anyhow::Result<()> {
    let (Some(u), Some(p)) = (&conn.user, &conn.password) else {
        bail!("pass --user and --password")
    };
    let (c, r) = conn
        .anonymous()?
        .login_totp(u, p, conn.totp.as_deref())
        .await?;
    let saved = Saved {
        api: c.api().to_owned(),
        ca: conn.ca.clone().or_else(|| load_saved().and_then(|s| s.ca)),
        token: r.token.clone(),
    };
    let path = saved_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    peercam_net::pki::write_file(&path, &serde_json::to_string_pretty(&saved)?, true)?;
    print(json, &r.user, |u| {
        println!(
            "logged in as {} ({:?}); session saved in {}",
            u.login,
            u.role,
            path.display()
        )
    })?;
    Ok(())
}

/// `cu devices`: the caller's devices as a table.
pub(super) async fn devices(conn: &Conn, json: bool) -> anyhow::Result<()> {
    let list = conn.client().await?.devices().await?;
    print(json, &list, |list| {
        if list.is_empty() {
            println!("no devices yet: bind one with `peercam cu bind DEVICE_ID BIND_CODE`");
            return;
        }
        println!(
            "{:<20} {:<20} {:<8} {:<7} SCOPES",
            "DEVICE", "NAME", "STATE", "ROLE"
        );
        for d in list {
            let scopes: Vec<&str> = d.scopes.iter().map(Scope::as_str).collect();
            println!(
                "{:<20} {:<20} {:<8} {:<7} {}",
                d.id,
                d.name,
                if d.online { "online" } else { "offline" },
                format!("{:?}", d.relation).to_lowercase(),
                scopes.join(",")
            );
        }
    })?;
    Ok(())
}

/// `cu status`: what the device itself says, through CMU -> SCU -> PU.
pub(super) async fn status(conn: &Conn, json: bool, device: &str) -> anyhow::Result<()> {
    let s = conn.client().await?.status(device).await?;
    print(json, &s, |s| {
        let d = &s.description;
        println!(
            "{} via {}: {} {} agent {}, up {} s, connected {} s",
            s.id, s.node, d.vendor, d.model, d.sw_version, d.uptime_s, d.connected_s
        );
        match (d.clock_offset_us, d.clock_jitter_us) {
            (Some(o), Some(j)) => println!(
                "clock: corrected by {:+.1} ms to agree with the SCU (jitter {:.1} ms)",
                o as f64 / 1000.0,
                j as f64 / 1000.0
            ),
            _ => println!("clock: not synchronised yet"),
        }
    })?;
    Ok(())
}

/// `cu play`: records a live view to an MP4, trying the paths best first (8.3, 8.4).
pub(super) async fn play(
    conn: &Conn,
    json: bool,
    (device, only): (String, Option<String>),
    seconds: u64,
    out: PathBuf,
    caps: CapsArgs,
) -> anyhow::Result<()> {
    let r = conn.client().await?.play(&device, &caps.request()).await?;
    let bar = progress(
        seconds,
        "{spinner} recording [{bar:30}] {pos}/{len} s {msg}",
        json,
    );
    let paths = media_paths(&r, only.as_deref())?;
    let puncher = peercam_cu::live::Puncher {
        client: conn.client().await?,
        device: device.clone(),
        recorder: None,
    };
    let (rec, reached) = peercam_cu::live::record_best(
        &paths,
        Some(&puncher),
        std::time::Duration::from_secs(seconds),
        |s| bar.set_position(s as u64),
    )
    .await?;
    bar.finish_and_clear();
    // The operator sees which path live views take (best effort).
    let report = peercam_signal::cm::SessionReport {
        path: reached.kind,
        connect_ms: reached.connect_ms.round() as u32,
        bytes: rec.bytes,
        seconds: rec.seconds.round() as u32,
    };
    if let Err(e) = conn.client().await?.report_session(&device, &report).await {
        tracing::debug!(error = %e, "session report not accepted");
    }
    std::fs::write(&out, &rec.mp4).with_context(|| format!("writing {}", out.display()))?;
    let summary = serde_json::json!({
        "file": out, "frames": rec.frames, "seconds": rec.seconds, "lost_frames": rec.lost, "bytes": rec.mp4.len(),
        "width": r.caps.max_width, "fps": r.caps.max_fps,
        "path": reached.kind, "connect_ms": reached.connect_ms,
    });
    print(json, &summary, |_| {
        println!(
            "wrote {} ({} frames, {:.1} s, {} lost, {} bytes) via the {} path ({} connected in {:.0} ms)",
            out.display(),
            rec.frames,
            rec.seconds,
            rec.lost,
            rec.mp4.len(),
            reached.kind.as_str(),
            if reached.kind.is_direct() {
                "camera"
            } else {
                "relay"
            },
            reached.connect_ms
        );
    })?;
    Ok(())
}

/// `cu ptz`: one PTZ order (8.5) and the position after it.
pub(super) async fn ptz(conn: &Conn, json: bool, device: &str, op: PtzOp) -> anyhow::Result<()> {
    use peercam_signal::control::PtzCommand as P;
    let order = match op {
        PtzOp::Move {
            pan,
            tilt,
            zoom,
            timeout_ms,
        } => P::Move {
            pan,
            tilt,
            zoom,
            timeout_ms,
        },
        PtzOp::Stop => P::Stop,
        PtzOp::To { pan, tilt, zoom } => P::Absolute { pan, tilt, zoom },
        PtzOp::By { pan, tilt, zoom } => P::Relative { pan, tilt, zoom },
        PtzOp::PresetSet { slot, name } => P::PresetSet { slot, name },
        PtzOp::PresetGoto { slot } => P::PresetGoto { slot },
        PtzOp::PresetRemove { slot } => P::PresetRemove { slot },
    };
    let s = conn.client().await?.ptz(device, &order).await?;
    print(json, &s, |s| {
        println!(
            "pan {:+.2} tilt {:+.2} zoom {:.2}x{}",
            s.pan,
            s.tilt,
            s.zoom,
            if s.moving { " (moving)" } else { "" }
        );
        for p in &s.presets {
            println!(
                "  preset {:>2} {:<16} pan {:+.2} tilt {:+.2} zoom {:.2}x",
                p.slot, p.name, p.pan, p.tilt, p.zoom
            );
        }
    })?;
    Ok(())
}

/// `cu wlan`: the camera's WLAN, or a switch to another network (6.1.11).
pub(super) async fn wlan(
    conn: &Conn,
    json: bool,
    device: &str,
    join: Option<String>,
    security: String,
    passphrase: String,
) -> anyhow::Result<()> {
    let client = conn.client().await?;
    let s = match join {
        None => client.wlan(device).await?,
        Some(ssid) => {
            let security = serde_json::from_value(serde_json::Value::String(security))
                .map_err(|_| anyhow::anyhow!("--security: open, wpa2_psk or wpa3_sae"))?;
            let config = peercam_signal::control::WlanConfig {
                ssid,
                security,
                passphrase,
            };
            client.set_wlan(device, &config).await?
        }
    };
    print(json, &s, |s| {
        println!("on: {}", s.current.as_deref().unwrap_or("(none)"));
        for n in &s.networks {
            println!("  {:<32} {:>3} % {:?}", n.ssid, n.signal_pct, n.security);
        }
        if let Some(l) = &s.last_switch {
            println!("last switch to {:?}: {}", l.ssid, l.outcome);
        }
    })?;
    Ok(())
}

/// `cu sub`: sub-accounts (6.1.10).
pub(super) async fn subaccounts(conn: &Conn, json: bool, sub: SubCmd) -> anyhow::Result<()> {
    let c = conn.client().await?;
    match sub {
        SubCmd::List => {
            let l = c.subaccounts().await?;
            print(json, &l, |l| {
                l.iter()
                    .for_each(|s| println!("{} (id {})", s.username, s.id))
            })?;
        }
        SubCmd::Create {
            username,
            new_password,
        } => {
            let s = c.create_subaccount(&username, &new_password).await?;
            print(json, &s, |s| println!("created sub-account {}", s.username))?;
        }
        SubCmd::Delete { username } => {
            c.delete_subaccount(&username).await?;
            println!("deleted sub-account {username}");
        }
    }
    Ok(())
}

/// `cu audit`: the account's audit log.
pub(super) async fn audit(conn: &Conn, json: bool) -> anyhow::Result<()> {
    let l = conn.client().await?.audit().await?;
    print(json, &l, |l| {
        for e in l {
            println!(
                "{} {:<18} {:<22} {:<14} {}",
                e.at,
                e.action,
                e.device_id.as_deref().unwrap_or("-"),
                e.outcome,
                e.detail
            );
        }
    })?;
    Ok(())
}

/// The paths a play answer offers, best first (an older CMU names only one); with `only`,
/// those of that kind (`--path`), or an error naming the ones offered.
fn media_paths(
    r: &peercam_signal::cm::PlayResponse,
    only: Option<&str>,
) -> anyhow::Result<Vec<peercam_signal::relay::MediaPath>> {
    let all = if r.paths.is_empty() {
        vec![peercam_signal::relay::MediaPath {
            kind: r.path,
            url: r.url.clone(),
            stun: None,
        }]
    } else {
        r.paths.clone()
    };
    let Some(only) = only else {
        return Ok(all);
    };
    let kept: Vec<_> = all
        .iter()
        .filter(|p| p.kind.as_str() == only)
        .cloned()
        .collect();
    if kept.is_empty() {
        let offered: Vec<&str> = all.iter().map(|p| p.kind.as_str()).collect();
        bail!(
            "no {only} path to this device (offered: {})",
            offered.join(", ")
        );
    }
    Ok(kept)
}

/// A progress bar of `len` steps drawn with `template`; hidden for `--json`.
fn progress(len: u64, template: &str, json: bool) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}
