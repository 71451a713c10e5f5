//! H.626.4 8.11.1 device upgrade, end to end with real processes (docs/security.md D9): the
//! operator signs and uploads a release, the owner orders it, the CMU checks versions and
//! sends it through the SCU, the PU checks the signature, downloads, installs into its own
//! slot and restarts into it under its supervisor, which commits it once it registers again;
//! a release that does not come back is rolled back automatically.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use peercam_cu::Client;
use peercam_signal::upgrade::{Manifest, SignedManifest};
use peercam_test::Cluster;
use sha2::{Digest as _, Sha256};

fn release(
    key: &SigningKey,
    version: &str,
    model: &str,
    payload: &[u8],
    expires_at: u64,
) -> SignedManifest {
    let manifest = Manifest {
        version: version.into(),
        model: model.into(),
        sha256: hex::encode(Sha256::digest(payload)),
        size: payload.len() as u64,
        expires_at,
    };
    SignedManifest {
        signatures: vec![manifest.sign(key)],
        manifest,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn upload(admin: &Client, dir: &std::path::Path, r: &SignedManifest, payload: &[u8]) {
    let path = dir.join(format!("payload-{}", r.manifest.version));
    std::fs::write(&path, payload).unwrap();
    admin.upload_manifest(r).await.unwrap();
    admin
        .upload_payload(&r.manifest.sha256, &path, |_| {})
        .await
        .unwrap();
}

/// Polls the device's upgrade status until `done` says so (the device is offline while it
/// restarts).
async fn wait_status(
    owner: &Client,
    dev: &str,
    done: impl Fn(&peercam_signal::upgrade::UpgradeStatus) -> bool,
) -> peercam_signal::upgrade::UpgradeStatus {
    let mut last = None;
    for _ in 0..240 {
        if let Ok(s) = owner.upgrade_status(dev).await {
            if done(&s) {
                return s;
            }
            last = Some(s);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("upgrade did not end as expected: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_11_1_signed_upgrade_commits_and_a_bad_release_rolls_back() {
    let key = SigningKey::from_bytes(&[42; 32]);
    let public = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
    let p2 = public.clone();
    let c = Cluster::start_with(1, move |cfg| cfg.release_keys = vec![p2])
        .await
        .unwrap();
    let id = c.provision(1).await.unwrap().remove(0);
    let dev = id.device_id.to_string();
    let rtsp_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let toml = format!(
        "identity = {:?}\nscu_url = {:?}\nplatform_ca = {:?}\nrtsp_listen = \"127.0.0.1:{rtsp_port}\"\n\
         reconnect_max_ms = 500\nrelease_keys = [{public:?}]\nupgrade_health_s = 20\nfirmware_dir = {:?}\n",
        c.identity_path(&id.device_id),
        c.scu_url(0),
        c.pki.ca_cert,
        c.path().join("firmware"),
    );
    let cfg = c.path().join("pu.toml");
    std::fs::write(&cfg, toml).unwrap();
    let mut supervisor = tokio::process::Command::new(env!("CARGO_BIN_EXE_peercam"))
        .args(["pu", "--config"])
        .arg(&cfg)
        .env("PEERCAM_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    c.wait_online(&id.device_id, true, Duration::from_secs(20))
        .await
        .unwrap();
    let owner = c.owner("+15550811001").await.unwrap();
    c.bind(&owner, &id).await.unwrap();
    let factory = env!("CARGO_PKG_VERSION");
    assert_eq!(
        owner.status(&dev).await.unwrap().description.sw_version,
        factory
    );

    // The operator's uploads: the CMU checks signatures and payloads.
    // The new build: this program with a release marker appended (a different file and hash
    // that runs the same; compiling a second build in the test suite would take minutes).
    let mut binary = std::fs::read(env!("CARGO_BIN_EXE_peercam")).unwrap();
    binary.extend_from_slice(b"\npeercam release 0.2.0\n");
    let good = release(&key, "0.2.0", "synthetic", &binary, now() + 3600);
    let mut tampered = good.clone();
    tampered.manifest.version = "0.2.1".into();
    let e = c.admin.upload_manifest(&tampered).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(422), Some("bad_signature")));
    let stranger = SigningKey::from_bytes(&[7; 32]);
    let e = c
        .admin
        .upload_manifest(&release(&stranger, "0.2.2", "synthetic", b"x", now() + 60))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("bad_signature"));
    let e = c
        .admin
        .upload_manifest(&release(&key, "0.2.3", "synthetic", b"x", now() - 1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("expired"));
    // A payload that is not the one signed is refused whole.
    let wrong = release(&key, "0.2.4", "synthetic", b"the real payload", now() + 60);
    c.admin.upload_manifest(&wrong).await.unwrap();
    let bogus = c.path().join("bogus");
    std::fs::write(&bogus, b"something else entirely").unwrap();
    let e = c
        .admin
        .upload_payload(&wrong.manifest.sha256, &bogus, |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(e.code(), Some("hash_mismatch" | "payload_too_large")),
        "{e}"
    );
    upload(&c.admin, c.path(), &good, &binary).await;
    // Another model's release is never offered to this device; an older one neither.
    let other = release(&key, "0.9.0", "other-model", b"x", now() + 60);
    upload(&c.admin, c.path(), &other, b"x").await;
    assert_eq!(
        owner.upgrade(&dev, "0.9.0").await.unwrap_err().code(),
        Some("no_package")
    );
    assert_eq!(
        owner.upgrade(&dev, "0.0.1").await.unwrap_err().code(),
        Some("not_newer")
    );
    // A sub-account cannot order upgrades.
    let kid = c.sub(&owner, "kid").await.unwrap();
    owner
        .share(&dev, "kid", peercam_base::ScopeSet::all())
        .await
        .unwrap();
    assert_eq!(
        kid.upgrade(&dev, "0.2.0").await.unwrap_err().status(),
        Some(403)
    );

    // The upgrade: download, install, restart into the new slot, commit.
    let s = owner.upgrade(&dev, "0.2.0").await.unwrap();
    assert_eq!(s.state, "downloading");
    let s = wait_status(&owner, &dev, |s| {
        s.running == "0.2.0" && s.state == "committed"
    })
    .await;
    assert_eq!(s.target.as_deref(), Some("0.2.0"));
    assert_eq!(
        owner.status(&dev).await.unwrap().description.sw_version,
        "0.2.0"
    );
    // Nothing up to the running version is offered again (the device would refuse it too).
    assert_eq!(
        owner.upgrade(&dev, "0.2.0").await.unwrap_err().code(),
        Some("not_newer")
    );

    // A release that never comes back online: the supervisor rolls back by itself.
    let broken = b"#!/bin/sh\nexit 7\n".to_vec();
    let bad = release(&key, "0.3.0", "synthetic", &broken, now() + 3600);
    upload(&c.admin, c.path(), &bad, &broken).await;
    owner.upgrade(&dev, "0.3.0").await.unwrap();
    let s = wait_status(&owner, &dev, |s| s.state == "rolled_back").await;
    assert_eq!(s.running, "0.2.0", "back on the committed release");
    assert_eq!(s.target.as_deref(), Some("0.3.0"));
    assert!(
        s.reason.unwrap_or_default().contains("exited"),
        "reason given"
    );
    // 6.1.9 upgrade result: the owner hears of each upgrade once, the failure included,
    // whoever looked at the status.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let details = loop {
        let list = owner.alarms("kind=upgrade_result").await.unwrap();
        let d: Vec<String> = list.alarms.into_iter().map(|a| a.detail).collect();
        if d.iter().any(|d| d.contains("0.3.0 rolled back")) {
            break d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failure alarm: {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(details.len(), 2, "{details:?}");
    assert!(
        details.iter().any(|d| d == "now 0.2.0 (was 0.1.0)"),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("0.3.0 rolled back, still 0.2.0: it exited")),
        "{details:?}"
    );
    c.wait_online(&id.device_id, true, Duration::from_secs(10))
        .await
        .unwrap();

    let _ = supervisor.kill().await;
    c.stop().await;
}

/// H.626.4 8.11.2: the CLI asks the CMU for the current client release, checks its signature,
/// replaces itself and reports completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_11_2_cli_updates_itself_and_reports() {
    let key = SigningKey::from_bytes(&[43; 32]);
    let public = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
    let p2 = public.clone();
    let c = Cluster::start_with(0, move |cfg| cfg.release_keys = vec![p2])
        .await
        .unwrap();
    let owner = c.owner("+15550811002").await.unwrap();
    // A copy of the CLI to update, and a "new release": the same program with a marker
    // appended (an ELF file runs with trailing bytes).
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("peercam");
    std::fs::copy(env!("CARGO_BIN_EXE_peercam"), &exe).unwrap();
    let mut payload = std::fs::read(env!("CARGO_BIN_EXE_peercam")).unwrap();
    payload.extend_from_slice(b"\npeercam client release 0.5.0\n");
    let platform = format!("cli-{}-{}", std::env::consts::OS, std::env::consts::ARCH);
    let r = release(&key, "0.5.0", &platform, &payload, now() + 3600);
    upload(&c.admin, c.path(), &r, &payload).await;

    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["cu", "--api", &c.api, "--ca"])
            .arg(&c.pki.ca_cert)
            .args([
                "--user",
                "+15550811002",
                "--password",
                "correct horse battery",
            ])
            .args(args)
            .env("PEERCAM_HOME", dir.path());
        cmd.output().unwrap()
    };
    // An untrusted key: refused, nothing replaced.
    let stranger =
        URL_SAFE_NO_PAD.encode(SigningKey::from_bytes(&[9; 32]).verifying_key().as_bytes());
    let out = run(&["self-update", "--release-key", &stranger]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signature"),
        "{out:?}"
    );
    let out = run(&["self-update", "--check", "--release-key", &public]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("0.5.0 is available"));
    let out = run(&["self-update", "--release-key", &public]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read(&exe).unwrap(),
        payload,
        "the executable was replaced"
    );
    // The new program runs and knows it is up to date.
    let out = run(&["self-update", "--release-key", &public]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0.5.0 is up to date"),
        "{out:?}"
    );
    // Completion was reported to the CMU.
    let audit = owner.audit().await.unwrap();
    assert!(
        audit.iter().any(|a| a.action == "client.update"
            && a.outcome == "ok"
            && a.detail.contains("0.5.0"))
    );
    c.stop().await;
}

/// 8.11.2 for the web client: the CMU serves it, so the version it serves is the newest; a
/// page from an older release is told to reload, a current one is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_11_2_web_client_is_told_to_reload_when_older() {
    let c = Cluster::start(1).await.unwrap();
    let anyone = c.client();
    let old = anyone.client_update("web", "0.0.1").await.unwrap();
    assert!(old.update_available);
    assert!(old.url.as_deref().unwrap().ends_with('/'), "{old:?}");
    let current = anyone
        .client_update("web", env!("CARGO_PKG_VERSION"))
        .await
        .unwrap();
    assert!(!current.update_available && current.url.is_none());
    c.stop().await;
}
