//! The cloud storage unit joins the platform (H.626.4 8.7.1, interface Su), end to end over
//! real sockets: a CS provisioned by the operator registers with an SCU as a device of
//! kind `cs`, the CMU sends it `cs_config` (its grant key) at every registration, and the
//! CS's Cp then accepts grants signed with the CMU's key and refuses others.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use ed25519_dalek::SigningKey;
use peercam_cloud::Prefix;
use peercam_cloud::grant::{self, Claims, Kind, Op, Ops};
use peercam_signal::cmd::{DeviceCommand, DeviceReply};
use peercam_signal::identity::DeviceIdentity;
use peercam_signal::ps::DeviceKind;
use peercam_test::{Cluster, new_identity};
use sqlx::Row as _;

const CAM: Prefix = Prefix::from_bytes([0x42; 16]);

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The CMU's grant key, as kept in its database.
async fn cmu_grant_key(c: &Cluster) -> SigningKey {
    let url = format!("sqlite://{}?mode=ro", c.db_path().display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let row = sqlx::query("SELECT key FROM link_keys WHERE purpose = 'cloud-grant'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let seed: Vec<u8> = row.get(0);
    pool.close().await;
    SigningKey::from_bytes(&seed.try_into().unwrap())
}

fn grant_of(cs: &DeviceIdentity, kid: &str, key: &SigningKey) -> String {
    let now = now_s();
    let claims = Claims {
        v: grant::VERSION,
        aud: cs.device_id.to_string(),
        kind: Kind::Device,
        sub: "cam-1".into(),
        pfx: CAM,
        ops: Ops::of(&[Op::Put, Op::Prune, Op::State]),
        from_ms: None,
        to_ms: None,
        iat: now - 10,
        exp: now + 900,
        epoch: 1,
        jti: "j1".into(),
        kid: kid.into(),
    };
    grant::sign(&claims, key).unwrap()
}

/// The status of Cp `hello` for the camera with `grant`.
async fn hello(addr: std::net::SocketAddr, grant: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{addr}/cp/v1/hello"))
        .bearer_auth(grant)
        .json(&serde_json::json!({ "prefix": CAM }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The grant key ids the CS holds, once it holds some (within 15 s).
async fn kids_when_configured(cs: &peercam_cs::Running) -> Vec<String> {
    for _ in 0..300 {
        let kids = cs.su.grant_kids();
        if !kids.is_empty() {
            return kids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the CS got no cs_config");
}

/// The camera's account and storage configuration, applied as Su delivers them.
async fn configure_camera(cs: &peercam_cs::Running) {
    let account = DeviceCommand::CsAccount {
        account: "acc-1".into(),
        quota_bytes: 1 << 20,
    };
    assert_eq!(cs.su.apply(&account).await, DeviceReply::Done);
    let camera = DeviceCommand::CsCamera {
        camera: new_identity(DeviceKind::Pu).device_id,
        prefix: CAM.to_string(),
        account: "acc-1".into(),
        epoch: 1,
        write_kid: "d1".into(),
    };
    assert_eq!(cs.su.apply(&camera).await, DeviceReply::Done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_cs_registers_and_accepts_only_the_cmus_grants() {
    let c = Cluster::start(1).await.unwrap();
    let cs_id = new_identity(DeviceKind::Cs);
    c.provision_these(std::slice::from_ref(&cs_id))
        .await
        .unwrap();
    let (cs, sd) = c.start_cs_with(&cs_id, 0, |_| {}).await.unwrap();
    c.wait_online(&cs_id.device_id, true, Duration::from_secs(15))
        .await
        .unwrap();
    // The CMU lists it as a CS, owned by no user.
    let list = c.admin.admin_devices().await.unwrap();
    let row = list
        .iter()
        .find(|d| d.id == cs_id.device_id.as_str())
        .unwrap();
    assert_eq!(row.kind, DeviceKind::Cs);

    let kids = kids_when_configured(&cs).await;
    assert_eq!(kids.len(), 1, "{kids:?}");
    let key = cmu_grant_key(&c).await;
    configure_camera(&cs).await;

    // A grant of the CMU's key opens Cp; one of another key with the same kid does not,
    // nor one naming a kid the CMU never sent.
    assert_eq!(hello(cs.addr, &grant_of(&cs_id, &kids[0], &key)).await, 200);
    let other = SigningKey::from_bytes(&[9; 32]);
    let forged = hello(cs.addr, &grant_of(&cs_id, &kids[0], &other)).await;
    assert!(forged == 401 || forged == 403, "{forged}");
    let unknown = hello(cs.addr, &grant_of(&cs_id, "g-other", &other)).await;
    assert!(unknown == 401 || unknown == 403, "{unknown}");

    // A restarted CS (no grant keys of its own) gets cs_config again: the same key.
    sd.trigger();
    cs.agent.unwrap().await.unwrap();
    cs.task.await.unwrap();
    cs.index.close().await;
    c.wait_online(&cs_id.device_id, false, Duration::from_secs(15))
        .await
        .unwrap();
    let (cs, sd) = c.start_cs_with(&cs_id, 0, |_| {}).await.unwrap();
    assert_eq!(kids_when_configured(&cs).await, kids);
    // The camera's configuration is in the CS's index: no need to send it again.
    assert_eq!(hello(cs.addr, &grant_of(&cs_id, &kids[0], &key)).await, 200);
    sd.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_cs_config_replaces_configured_keys() {
    let c = Cluster::start(1).await.unwrap();
    let cs_id = new_identity(DeviceKind::Cs);
    c.provision_these(std::slice::from_ref(&cs_id))
        .await
        .unwrap();
    // A key from cs.toml (tests, a CS alone) is in effect only until the CMU's arrives.
    let old = SigningKey::from_bytes(&[5; 32]);
    let (cs, sd) = c
        .start_cs_with(&cs_id, 0, |cfg| {
            use base64::Engine as _;
            cfg.grant_keys = vec![peercam_cs::GrantKey {
                kid: "local".into(),
                public_key: base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(old.verifying_key().as_bytes()),
            }];
        })
        .await
        .unwrap();
    let mut kids = Vec::new();
    for _ in 0..300 {
        kids = cs.su.grant_kids();
        if kids.len() == 1 && kids[0] != "local" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(kids.len() == 1 && kids[0] != "local", "{kids:?}");
    configure_camera(&cs).await;
    let refused = hello(cs.addr, &grant_of(&cs_id, "local", &old)).await;
    assert!(refused == 401 || refused == 403, "{refused}");
    let key = cmu_grant_key(&c).await;
    assert_eq!(hello(cs.addr, &grant_of(&cs_id, &kids[0], &key)).await, 200);
    sd.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_su_refuses_bad_values_and_unknown_accounts() {
    let c = Cluster::start(1).await.unwrap();
    let cs_id = new_identity(DeviceKind::Cs);
    c.provision_these(std::slice::from_ref(&cs_id))
        .await
        .unwrap();
    let (cs, sd) = c.start_cs_with(&cs_id, 0, |_| {}).await.unwrap();
    let before = kids_when_configured(&cs).await;
    // A camera of an account the CS was never sent.
    let camera = DeviceCommand::CsCamera {
        camera: new_identity(DeviceKind::Pu).device_id,
        prefix: CAM.to_string(),
        account: "nobody".into(),
        epoch: 1,
        write_kid: "d1".into(),
    };
    let DeviceReply::Invalid { errors } = cs.su.apply(&camera).await else {
        panic!("accepted a camera of an unknown account");
    };
    assert_eq!(errors[0].field, "account");
    // A grant key that is 32 bytes but no Ed25519 point is refused, the keys unchanged.
    let bad = DeviceCommand::CsConfig {
        grant_keys: vec![peercam_signal::cmd::CsGrantKey {
            kid: "g1".into(),
            public_key: "AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        }],
    };
    let reply = cs.su.apply(&bad).await;
    assert!(matches!(reply, DeviceReply::Invalid { .. }), "{reply:?}");
    assert_eq!(cs.su.grant_kids(), before);
    sd.trigger();
}

/// `peercam cs --config cs.toml`, the binary: it serves Cp and registers with the SCU,
/// and the CMU configures it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_peercam_cs_subcommand_registers() {
    let c = Cluster::start(1).await.unwrap();
    let cs_id = new_identity(DeviceKind::Cs);
    c.provision_these(std::slice::from_ref(&cs_id))
        .await
        .unwrap();
    let dir = c.path().join("cs-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let identity = dir.join("identity.toml");
    std::fs::write(&identity, cs_id.to_toml()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("cs.toml");
    std::fs::write(
        &config,
        format!(
            "device_id = {:?}\nlisten = \"127.0.0.1:{port}\"\nstore_dir = {:?}\n\n[platform]\nidentity = {:?}\nscu_url = {:?}\nplatform_ca = {:?}\nreconnect_initial_ms = 100\n",
            cs_id.device_id.to_string(),
            dir.join("objects"),
            identity,
            c.scu_url(0),
            c.pki.ca_cert,
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_peercam"))
        .args(["cs", "--config"])
        .arg(&config)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    c.wait_online(&cs_id.device_id, true, Duration::from_secs(20))
        .await
        .unwrap();
    // Cp answers; once cs_config has arrived, a grant of the CMU's key (its kid derived as
    // docs/protocol.md says) for a camera the CS does not know is refused for the camera
    // (403 unknown prefix), no longer for the key (401).
    let key = cmu_grant_key(&c).await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let kid = {
        use base64::Engine as _;
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(key.verifying_key().as_bytes());
        format!(
            "g{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..9])
        )
    };
    let grant = grant_of(&cs_id, &kid, &key);
    let mut status = 0;
    for _ in 0..200 {
        status = hello(addr, &grant).await;
        if status != 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let forged = hello(
        addr,
        &grant_of(&cs_id, &kid, &SigningKey::from_bytes(&[9; 32])),
    )
    .await;
    child.kill().await.unwrap();
    assert_eq!(status, 403, "the CMU's key was never accepted");
    assert_eq!(forged, 401);
}
