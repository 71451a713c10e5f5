//! Issue 19 item 4: `peercam loadgen`, the load harness, against a small cluster (two CMU
//! instances on one database, one SCU node): a few cameras and users for a few seconds,
//! every operation succeeds and none fails.
#![allow(clippy::unwrap_used, missing_docs)]

use peercam_test::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_loadgen_smoke_two_cmus_no_errors() {
    let c = Cluster::start(1).await.unwrap();
    let other = c.start_another_cmu().await.unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_peercam"))
        .args(["loadgen", "--cmu", &c.api, "--cmu", &other.api])
        .args(["--scu", &c.scu_url(0), "--ca"])
        .arg(&c.pki.ca_cert)
        .arg("--operator-password-file")
        .arg(c.path().join("admin.password"))
        .arg("--sms-outbox")
        .arg(c.path().join("sms-outbox"))
        .args(["--cameras", "12", "--users", "3", "--cameras-per-user", "2"])
        .args(["--duration", "3", "--list-rate", "5", "--play-rate", "10"])
        .args(["--ptz-rate", "5", "--json"])
        .arg("--pid")
        .arg(format!("test={}", std::process::id()))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let op = |name: &str| {
        r["ops"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["op"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(op("register")["ok"], 12, "{stdout}");
    for name in [
        "register", "signup", "login", "bind", "share", "list", "play", "ptz",
    ] {
        let o = op(name);
        assert!(o["ok"].as_u64().unwrap() > 0, "{name}: {stdout}");
        assert_eq!(o["errors"], 0, "{name}: {stdout}");
    }
    assert_eq!(op("camera")["errors"], 0, "{stdout}");
    assert_eq!(r["cameras_online_at_end"], 12, "{stdout}");
    let p = &r["processes"][0];
    assert!(p["rss_kib"].as_u64().unwrap() > 0, "{stdout}");
    other.stop().await;
    c.stop().await;
}
