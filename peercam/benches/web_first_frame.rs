//! Click-to-first-frame in the browser (issue 7): headless Chromium drives the web client
//! the CMU serves; each play is timed from the click on Play to the first painted frame
//! (`requestVideoFrameCallback`), with the platform's authorisation and signalling in the
//! path (ICE servers from the CMU, offer -> CMU -> SCU -> camera, token judged, answer).
//! Direct and forced through the MTU's TURN relay, and, in the same run, the client against
//! a second browser page answering with a canvas stream (no platform: the floor the
//! browser itself sets). p50 / p95 of N plays each.
//!
//! `cargo bench --bench web_first_frame -- 30`
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::path::Path;
use std::time::Duration;

use peercam_test::Cluster;
use serde_json::Value;

async fn scenario(dir: &Path, script: &str, env: &[(&str, String)]) -> Value {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(dir.join(script))
        .current_dir(dir)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(600), cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "{script}: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(json["ok"] == true, "{script}: {json}");
    json
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let plays: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web-tests");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "npm ci --prefix web-tests first"
    );
    const SECRET: &str = "bench-turn-secret";
    let c = Cluster::start_with(1, |cfg| cfg.turn_secret = Some(SECRET.into()))
        .await
        .unwrap();
    let ids = c.provision(1).await.unwrap();
    let _pu = c.start_pu_online(&ids[0], 0).await.unwrap();
    // Everything is on loopback here; production keeps loopback denied.
    let _mtu = c.start_turn_mtu(SECRET, &["127.0.0.0/8"]).await.unwrap();
    let phone = "+15550990001";
    let owner = c.owner(phone).await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let dev = ids[0].device_id.to_string();
    for _ in 0..100 {
        if !owner.ice(&dev).await.unwrap().ice_servers.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shots = tempfile::tempdir().unwrap();
    let env = |relay: &str| {
        vec![
            ("PEERCAM_WEB_URL", c.api.clone()),
            ("PEERCAM_WEB_USER", phone.to_owned()),
            ("PEERCAM_WEB_PASSWORD", "correct horse battery".to_owned()),
            ("PEERCAM_DEVICE", dev.clone()),
            ("PEERCAM_WEB_RELAY", relay.to_owned()),
            ("PEERCAM_WEB_PLAYS", plays.to_string()),
            ("PEERCAM_WEB_SHOTS", shots.path().display().to_string()),
        ]
    };
    let direct = scenario(&dir, "live.mjs", &env("0")).await;
    let relayed = scenario(&dir, "live.mjs", &env("1")).await;
    let floor = scenario(
        &dir,
        "live-loopback.mjs",
        &[
            ("PEERCAM_WEB_PLAYS", plays.to_string()),
            ("PEERCAM_WEB_SHOTS", shots.path().display().to_string()),
        ],
    )
    .await;
    println!(
        "Chromium {}, {plays} plays each, click on Play -> first painted frame:",
        direct["browser"]
    );
    println!();
    println!("| path | first frame p50 | p95 | max | connected p50 | p50 vs browser floor |");
    println!("|---|---:|---:|---:|---:|---:|");
    let floor_p50 = floor["first_frame_ms"]["p50"].as_f64().unwrap_or(f64::NAN);
    for (name, r) in [
        ("direct (camera -> browser)", &direct),
        ("forced through TURN", &relayed),
        ("browser page as the camera (floor)", &floor),
    ] {
        let ff = &r["first_frame_ms"];
        let p50 = ff["p50"].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {name} | {} ms | {} ms | {} ms | {} ms | {:.2}x |",
            ff["p50"],
            ff["p95"],
            ff["max"],
            r["connect_ms"]["p50"],
            p50 / floor_p50
        );
    }
    c.stop().await;
}
