//! The cloud storage unit joins the platform (H.626.4 8.7.1, interface Su), end to end over
//! real sockets: a CS provisioned by the operator registers with an SCU as a device of
//! kind `cs`, the CMU sends it `cs_config` (its grant key) at every registration, and the
//! CS's Cp then accepts grants signed with the CMU's key and refuses others.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use ed25519_dalek::SigningKey;
use peercam_base::{Scope, ScopeSet};
use peercam_cloud::Prefix;
use peercam_cloud::grant::{self, Claims, Kind, Op, Ops};
use peercam_signal::cmd::{DeviceCommand, DeviceReply};
use peercam_signal::identity::DeviceIdentity;
use peercam_signal::ps::DeviceKind;
use peercam_signal::record::{Mode, Strategy};
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

/// A camera's device grant claims (put, prune, state) for the CS `aud`, valid now.
fn device_claims(aud: &DeviceIdentity, camera: &str, pfx: Prefix, kid: &str) -> Claims {
    let now = now_s();
    Claims {
        v: grant::VERSION,
        aud: aud.device_id.to_string(),
        kind: Kind::Device,
        sub: camera.into(),
        pfx,
        ops: Ops::of(&[Op::Put, Op::Prune, Op::State]),
        from_ms: None,
        to_ms: None,
        iat: now - 10,
        exp: now + 900,
        epoch: 1,
        jti: "j1".into(),
        kid: kid.into(),
    }
}

fn grant_of(cs: &DeviceIdentity, kid: &str, key: &SigningKey) -> String {
    grant::sign(&device_claims(cs, "cam-1", CAM, kid), key).unwrap()
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
        max_age_days: None,
        plan: None,
        plan_epoch: 0,
        prune_excess_after_s: None,
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

// ---------------------------------------------------------------------------------------
// The whole flow (8.7.1 recording steps): strategy CU -> CMU -> SCU -> PU, the CS and a
// prefix assigned by the CMU, Su to the CS, Cp uploads from a real PU's synthetic camera.
// ---------------------------------------------------------------------------------------

/// A column of the CMU's database.
async fn cmu_query_blob(c: &Cluster, sql: &'static str, arg: &str) -> Option<Vec<u8>> {
    let url = format!("sqlite://{}?mode=ro", c.db_path().display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let row = sqlx::query(sql)
        .bind(arg)
        .fetch_optional(&pool)
        .await
        .unwrap();
    pool.close().await;
    row.map(|r| {
        r.try_get::<Vec<u8>, _>(0)
            .unwrap_or_else(|_| r.get::<String, _>(0).into_bytes())
    })
}

/// The prefix the CMU assigned to `camera`.
async fn prefix_of(c: &Cluster, camera: &str) -> Prefix {
    let raw = cmu_query_blob(
        c,
        "SELECT prefix FROM cloud_cameras WHERE camera_id = ?1",
        camera,
    )
    .await
    .expect("the CMU assigned no prefix");
    String::from_utf8(raw).unwrap().parse().unwrap()
}

/// The camera's data key, unwrapped with the CMU's key-encryption key (as its key
/// service does).
async fn dek_of(c: &Cluster, prefix: &Prefix) -> [u8; 32] {
    let kek = cmu_query_blob(
        c,
        "SELECT key FROM link_keys WHERE purpose = ?1",
        "cloud-kek",
    )
    .await
    .unwrap();
    let wrapped = cmu_query_blob(
        c,
        "SELECT wrapped FROM cloud_keys WHERE prefix = ?1 AND kid = 'd1'",
        &prefix.to_string(),
    )
    .await
    .unwrap();
    peercam_cloud::envelope::unwrap_dek(&kek.try_into().unwrap(), prefix, "d1", &wrapped).unwrap()
}

/// (seq, key) of the objects the CS index holds for `prefix`, read from its `index.db`.
async fn indexed(index_db: &std::path::Path, prefix: &Prefix) -> Vec<(u64, String)> {
    let url = format!("sqlite://{}?mode=ro", index_db.display());
    let Ok(pool) = sqlx::SqlitePool::connect(&url).await else {
        return Vec::new();
    };
    let rows = sqlx::query("SELECT seq, key FROM objects WHERE prefix = ?1 ORDER BY seq")
        .bind(prefix.to_string())
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
    pool.close().await;
    rows.iter()
        .map(|r| (r.get::<i64, _>(0) as u64, r.get::<String, _>(1)))
        .collect()
}

fn continuous() -> Strategy {
    Strategy {
        mode: Mode::Continuous,
        ..Strategy::default()
    }
}

struct World {
    c: Cluster,
    owner: peercam_cu::Client,
    cam: DeviceIdentity,
    cs_id: DeviceIdentity,
}

/// A cluster with `quota` bytes of free cloud storage, an owner, a camera (bound when first
/// started) and a provisioned CS (not started).
async fn world(quota: u64, phone: &str) -> World {
    world_with(quota, phone, |_| {}).await
}

/// [`world`] with more of the CMU's `[cloud]` settings (plans, grace).
async fn world_with(
    quota: u64,
    phone: &str,
    cloud: impl FnOnce(&mut peercam_cmu::CloudConfig),
) -> World {
    let c = Cluster::start_with(1, |cfg| {
        cfg.cloud.free_quota_bytes = quota;
        cloud(&mut cfg.cloud);
    })
    .await
    .unwrap();
    let cam = c.provision(1).await.unwrap().remove(0);
    let cs_id = new_identity(DeviceKind::Cs);
    c.provision_these(std::slice::from_ref(&cs_id))
        .await
        .unwrap();
    let owner = c.owner(phone).await.unwrap();
    World {
        c,
        owner,
        cam,
        cs_id,
    }
}

/// Starts the camera with 2 s cloud objects.
async fn start_camera(w: &World) -> (peercam_pu::Running, peercam_net::Shutdown) {
    let r =
        w.c.start_pu_with(&w.cam, 0, |cfg| {
            cfg.cloud_object_s = 2;
            cfg.sd_card = false;
        })
        .await
        .unwrap();
    w.c.wait_online(&w.cam.device_id, true, Duration::from_secs(15))
        .await
        .unwrap();
    // Bound at the first start (binding needs a registered camera).
    let _ = w.c.bind(&w.owner, &w.cam).await;
    r
}

/// Waits until the index holds at least `n` objects of `prefix`.
async fn wait_indexed(
    db: &std::path::Path,
    prefix: &Prefix,
    n: usize,
    within: Duration,
) -> Vec<(u64, String)> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = indexed(db, prefix).await;
        if got.len() >= n {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} objects indexed: {got:?}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn contiguous(seqs: &[(u64, String)]) -> bool {
    seqs.windows(2).all(|w| w[1].0 == w[0].0 + 1)
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_strategy_reaches_camera_and_segments_upload() {
    let w = world(1 << 30, "+15550871001").await;
    let (cs, cs_sd) = w.c.start_cs_with(&w.cs_id, 0, |_| {}).await.unwrap();
    w.c.wait_online(&w.cs_id.device_id, true, Duration::from_secs(15))
        .await
        .unwrap();
    kids_when_configured(&cs).await;
    let (_pu, pu_sd) = start_camera(&w).await;
    let cam = w.cam.device_id.as_str();

    // 8.7.1: the strategy goes CU -> CMU -> SCU -> PU; the answer is the camera's.
    let state = w
        .owner
        .set_recording(cam, Some("cloud"), &continuous())
        .await
        .unwrap();
    assert_eq!(state.strategy, continuous());
    let prefix = prefix_of(&w.c, cam).await;
    let db =
        w.c.path()
            .join(format!("cs-{}/index.db", w.cs_id.device_id));
    let got = wait_indexed(&db, &prefix, 4, Duration::from_secs(40)).await;
    assert_eq!(got[0].0, 0, "{got:?}");
    assert!(contiguous(&got), "{got:?}");
    for (_, key) in &got {
        assert!(key.starts_with(&format!("{prefix}/")), "{key}");
    }

    // The state through the platform: recording, acknowledged objects, the pool.
    let s = w.owner.recording_state(cam, Some("cloud")).await.unwrap();
    assert!(s.recording, "{s:?}");
    assert_eq!(s.strategy.mode, Mode::Continuous);
    assert!(s.used_bytes > 0, "{s:?}");
    // The CLI shows the uploads.
    let (ok, out, err) =
        w.c.cu_cli(
            env!("CARGO_BIN_EXE_peercam"),
            "+15550871001",
            &["record", "show", cam, "--recorder", "cloud"],
        )
        .await;
    assert!(ok, "{err}");
    assert!(
        out.contains("uploaded: ") && out.contains("backlog: "),
        "{out}"
    );

    // The whole flow stored nothing readable: see h626_8_7_1_objects_hold_no_h264.
    no_h264_in(&w.c, &cs_dir(&w), &prefix).await;

    // A restarted camera gets its strategy again and continues the sequence.
    pu_sd.trigger();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = indexed(&db, &prefix).await.len();
    let (_pu, pu_sd) = start_camera(&w).await;
    let got = wait_indexed(&db, &prefix, before + 3, Duration::from_secs(40)).await;
    let seqs: std::collections::BTreeSet<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(seqs.len(), got.len(), "no seq twice");
    pu_sd.trigger();
    cs_sd.trigger();
    drop(cs);
}

fn cs_dir(w: &World) -> std::path::PathBuf {
    w.c.path().join(format!("cs-{}/objects", w.cs_id.device_id))
}

/// No raw object holds the camera's SPS, an Annex B parameter set or IDR, or the SEI frame
/// tag; decrypted with the camera's data key, they hold the SPS and IDR samples.
async fn no_h264_in(c: &Cluster, dir: &std::path::Path, prefix: &Prefix) {
    let dek = dek_of(c, prefix).await;
    let objects: Vec<_> = files(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    assert!(
        !objects.is_empty(),
        "no object files under {}",
        dir.display()
    );
    let mut sps = Vec::new();
    let mut tagged = false;
    for p in &objects {
        let raw = std::fs::read(p).unwrap();
        let plain = peercam_cloud::envelope::open(|_| Some(dek), &raw).unwrap();
        let (obj, _) = peercam_cloud::object::Object::decode(&plain).unwrap();
        sps.clone_from(&obj.sps);
        assert!(
            find(&plain, &obj.sps),
            "control: the plaintext holds the SPS"
        );
        tagged |= find(&plain, &peercam_media::sei::FRAME_TAG_UUID);
        for nal in [0x67u8, 0x68, 0x65] {
            assert!(
                !find(&raw, &[0, 0, 0, 1, nal]),
                "{}: start code + {nal:#x}",
                p.display()
            );
            assert!(
                !find(&raw, &[0, 0, 1, nal]),
                "{}: start code + {nal:#x}",
                p.display()
            );
        }
        assert!(!find(&raw, &obj.sps), "{}: the SPS in clear", p.display());
        assert!(
            !find(&raw, &peercam_media::sei::FRAME_TAG_UUID),
            "{}: the SEI tag in clear",
            p.display()
        );
    }
    assert!(sps.len() >= 4, "an SPS was found");
    assert!(tagged, "control: the plaintext holds the SEI frame tags");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_objects_hold_no_h264() {
    let w = world(1 << 30, "+15550871004").await;
    let (cs, cs_sd) = w.c.start_cs_with(&w.cs_id, 0, |_| {}).await.unwrap();
    kids_when_configured(&cs).await;
    let (_pu, pu_sd) = start_camera(&w).await;
    let cam = w.cam.device_id.as_str();
    w.owner
        .set_recording(cam, Some("cloud"), &continuous())
        .await
        .unwrap();
    let prefix = prefix_of(&w.c, cam).await;
    let db =
        w.c.path()
            .join(format!("cs-{}/index.db", w.cs_id.device_id));
    wait_indexed(&db, &prefix, 3, Duration::from_secs(40)).await;
    no_h264_in(&w.c, &cs_dir(&w), &prefix).await;
    pu_sd.trigger();
    cs_sd.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_quota_full_prunes_oldest() {
    // A pool of about a handful of 2 s objects of the synthetic camera.
    let w = world(400_000, "+15550871002").await;
    let (cs, cs_sd) = w.c.start_cs_with(&w.cs_id, 0, |_| {}).await.unwrap();
    kids_when_configured(&cs).await;
    let (_pu, pu_sd) = start_camera(&w).await;
    let cam = w.cam.device_id.as_str();
    w.owner
        .set_recording(cam, Some("cloud"), &continuous())
        .await
        .unwrap();
    let prefix = prefix_of(&w.c, cam).await;
    let db =
        w.c.path()
            .join(format!("cs-{}/index.db", w.cs_id.device_id));

    // 8.7.1: the CS is full, the camera asks for the oldest to be deleted, recording goes
    // on: the first objects are gone, newer ones keep arriving, the pool holds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (mut pruned, mut last) = (0, Vec::new());
    while tokio::time::Instant::now() < deadline {
        // The camera's state through the platform answers throughout.
        w.owner.recording_state(cam, Some("cloud")).await.unwrap();
        last = indexed(&db, &prefix).await;
        if last.first().is_some_and(|f| f.0 >= 3) && last.last().is_some_and(|l| l.0 >= 8) {
            pruned = last[0].0;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(pruned >= 3, "the oldest were not pruned: {last:?}");
    assert!(contiguous(&last), "only the oldest go: {last:?}");
    let used: i64 = {
        let url = format!("sqlite://{}?mode=ro", db.display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let (used, quota): (i64, i64) = sqlx::query_as("SELECT used, quota FROM accounts LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        assert!(used <= quota, "{used} > {quota}");
        used
    };
    assert!(used > 0);

    // The prune answer lists what was deleted, by key, for the camera's own prefix.
    let key = cmu_grant_key(&w.c).await;
    let kid = cs.su.grant_kids().remove(0);
    let claims = device_claims(&w.cs_id, cam, prefix, &kid);
    let g = grant::sign(&claims, &key).unwrap();
    let before = indexed(&db, &prefix).await;
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{}/cp/v1/prune", cs.addr))
        .bearer_auth(&g)
        .json(&serde_json::json!({ "need_bytes": 1 << 30 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let deleted = answer["deleted"].as_array().unwrap();
    assert!(!deleted.is_empty(), "{answer}");
    let oldest = deleted[0]["key"].as_str().unwrap();
    assert!(oldest.starts_with(&format!("{prefix}/")), "{answer}");
    assert!(
        before.iter().any(|(_, k)| k == oldest),
        "{oldest} was stored"
    );
    // Recording continues after the pool was emptied.
    let after = wait_indexed(&db, &prefix, 1, Duration::from_secs(30)).await;
    assert!(after[0].0 > before.last().unwrap().0, "{after:?}");
    pu_sd.trigger();
    cs_sd.trigger();
}

/// The `peercam cs` binary on `dir`, registering with the cluster.
async fn spawn_cs_binary(
    c: &Cluster,
    cs_id: &DeviceIdentity,
    dir: &std::path::Path,
    port: u16,
) -> tokio::process::Child {
    spawn_cs_binary_with(c, cs_id, dir, port, "").await
}

/// [`spawn_cs_binary`] with `extra` top-level lines in `cs.toml` (a `store`).
async fn spawn_cs_binary_with(
    c: &Cluster,
    cs_id: &DeviceIdentity,
    dir: &std::path::Path,
    port: u16,
    extra: &str,
) -> tokio::process::Child {
    std::fs::create_dir_all(dir).unwrap();
    let identity = dir.join("identity.toml");
    std::fs::write(&identity, cs_id.to_toml()).unwrap();
    let config = dir.join("cs.toml");
    std::fs::write(
        &config,
        format!(
            "device_id = {:?}\nlisten = \"127.0.0.1:{port}\"\nstore_dir = {:?}\n{extra}\n[platform]\nidentity = {:?}\nscu_url = {:?}\nplatform_ca = {:?}\nreconnect_initial_ms = 100\nreconnect_max_ms = 500\n",
            cs_id.device_id.to_string(),
            dir.join("objects"),
            identity,
            c.scu_url(0),
            c.pki.ca_cert,
        ),
    )
    .unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_peercam"))
        .args(["cs", "--config"])
        .arg(&config)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_kill_9_cs_loses_no_acknowledged_segment() {
    let w = world(1 << 30, "+15550871003").await;
    let dir = w.c.path().join("cs-bin");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = spawn_cs_binary(&w.c, &w.cs_id, &dir, port).await;
    w.c.wait_online(&w.cs_id.device_id, true, Duration::from_secs(20))
        .await
        .unwrap();
    let (_pu, pu_sd) = start_camera(&w).await;
    let cam = w.cam.device_id.as_str();
    w.owner
        .set_recording(cam, Some("cloud"), &continuous())
        .await
        .unwrap();
    let prefix = prefix_of(&w.c, cam).await;
    let db = dir.join("index.db");
    let mut acknowledged: Vec<(u64, String)> = Vec::new();
    for round in 0..2u64 {
        let have = wait_indexed(
            &db,
            &prefix,
            acknowledged.len() + 2,
            Duration::from_secs(40),
        )
        .await;
        // kill -9 at a point that moves from round to round (objects are ~2 s apart).
        tokio::time::sleep(Duration::from_millis(300 + 900 * round)).await;
        let before_kill = indexed(&db, &prefix).await;
        assert!(before_kill.len() >= have.len());
        child.kill().await.unwrap();
        let _ = child.wait().await;
        acknowledged = before_kill;
        // The camera keeps recording into its backlog while the CS is down.
        tokio::time::sleep(Duration::from_secs(2)).await;
        child = spawn_cs_binary(&w.c, &w.cs_id, &dir, port).await;
        let after = wait_indexed(
            &db,
            &prefix,
            acknowledged.len() + 2,
            Duration::from_secs(60),
        )
        .await;
        for a in &acknowledged {
            assert!(after.contains(a), "round {round}: acknowledged {a:?} lost");
        }
    }
    // The backlog drains: the index is the sequence 0..n without a gap or a repeat.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got = indexed(&db, &prefix).await;
        if got.first().map(|g| g.0) == Some(0)
            && contiguous(&got)
            && got.len() > acknowledged.len() + 2
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the backlog did not drain in order: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    pu_sd.trigger();
    let _ = child.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_refuses_other_prefix_and_subaccount_without_config() {
    let w = world(1 << 30, "+15550871005").await;
    let (cs, cs_sd) = w.c.start_cs_with(&w.cs_id, 0, |_| {}).await.unwrap();
    kids_when_configured(&cs).await;
    let (_pu, pu_sd) = start_camera(&w).await;
    let cam = w.cam.device_id.as_str();

    // A sub-account with every scope but `config` cannot set the cloud strategy.
    let kid = w.c.sub(&w.owner, "cloudkid").await.unwrap();
    let scopes: ScopeSet = ScopeSet::all()
        .iter()
        .filter(|s| *s != Scope::Config)
        .collect();
    w.owner.share(cam, "cloudkid", scopes).await.unwrap();
    match kid.set_recording(cam, Some("cloud"), &continuous()).await {
        Err(peercam_cu::CuError::Api { status, .. }) => assert_eq!(status, 403),
        other => panic!("a sub-account without config set a strategy: {other:?}"),
    }
    assert!(
        cmu_query_blob(
            &w.c,
            "SELECT prefix FROM cloud_cameras WHERE camera_id = ?1",
            cam
        )
        .await
        .is_none(),
        "nothing was assigned"
    );

    // The owner can.
    w.owner
        .set_recording(cam, Some("cloud"), &continuous())
        .await
        .unwrap();
    let prefix = prefix_of(&w.c, cam).await;

    // Another camera's prefix: a grant for this camera does not reach it (403).
    let key = cmu_grant_key(&w.c).await;
    let kid = cs.su.grant_kids().remove(0);
    let mut claims = device_claims(&w.cs_id, cam, prefix, &kid);
    let mine = grant::sign(&claims, &key).unwrap();
    let other = Prefix::from_bytes([7; 16]);
    let status = reqwest::Client::new()
        .post(format!("http://{}/cp/v1/hello", cs.addr))
        .bearer_auth(&mine)
        .json(&serde_json::json!({ "prefix": other }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 403);

    // The key service answers only the CS the prefix is assigned to: a second CS that is
    // told (wrongly) to hold this camera gets no data key and stores nothing.
    let cs2_id = new_identity(DeviceKind::Cs);
    w.c.provision_these(std::slice::from_ref(&cs2_id))
        .await
        .unwrap();
    let (cs2, cs2_sd) = w.c.start_cs_with(&cs2_id, 0, |_| {}).await.unwrap();
    kids_when_configured(&cs2).await;
    let account = DeviceCommand::CsAccount {
        account: "intruder".into(),
        quota_bytes: 1 << 30,
        max_age_days: None,
        plan: None,
        plan_epoch: 0,
        prune_excess_after_s: None,
    };
    assert_eq!(cs2.su.apply(&account).await, DeviceReply::Done);
    let camera = DeviceCommand::CsCamera {
        camera: w.cam.device_id.clone(),
        prefix: prefix.to_string(),
        account: "intruder".into(),
        epoch: 1,
        write_kid: "d1".into(),
    };
    assert_eq!(cs2.su.apply(&camera).await, DeviceReply::Done);
    claims.aud = cs2_id.device_id.to_string();
    let for_cs2 = grant::sign(&claims, &key).unwrap();
    let obj = peercam_cloud::object::Object {
        prefix,
        seq: 999,
        audio: None,
        sps: vec![0x67, 1, 2, 3],
        pps: vec![0x68, 1],
        segments: vec![peercam_cloud::object::build::segment(
            now_s() * 1000 * 90,
            10,
            100,
            false,
        )],
    };
    let body = obj.encode().unwrap();
    let okey = obj.key().unwrap().to_string();
    let sha = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&body))
    };
    let r = reqwest::Client::new()
        .put(format!("http://{}/cp/v1/o/{okey}", cs2.addr))
        .bearer_auth(&for_cs2)
        .header("x-pc-sha256", sha)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503, "{:?}", r.text().await);
    assert!(cs2.index.objects_of(&prefix).await.unwrap().is_empty());
    pu_sd.trigger();
    cs_sd.trigger();
    cs2_sd.trigger();
}

/// Starts the camera with 2 s cloud objects and its SD card in `sd_dir`.
async fn start_with_card(
    w: &World,
    sd_dir: &std::path::Path,
) -> (peercam_pu::Running, peercam_net::Shutdown) {
    let sd_dir = sd_dir.to_path_buf();
    let r =
        w.c.start_pu_with(&w.cam, 0, move |cfg| {
            cfg.cloud_object_s = 2;
            cfg.sd_dir = Some(sd_dir);
        })
        .await
        .unwrap();
    w.c.wait_online(&w.cam.device_id, true, Duration::from_secs(15))
        .await
        .unwrap();
    r
}

/// Starts the camera with its card in `sd_dir`, binds it and sets the cloud strategy; waits
/// until the CS (started by the caller) holds two of its objects. Answers the camera, its
/// prefix and the CS's index database.
async fn cloud_on_card(
    w: &World,
    sd_dir: &std::path::Path,
) -> (
    peercam_pu::Running,
    peercam_net::Shutdown,
    Prefix,
    std::path::PathBuf,
) {
    let (pu, pu_sd) = start_with_card(w, sd_dir).await;
    let _ = w.c.bind(&w.owner, &w.cam).await;
    let cam = w.cam.device_id.as_str();
    w.owner
        .set_recording(cam, Some("cloud"), &continuous())
        .await
        .unwrap();
    let prefix = prefix_of(&w.c, cam).await;
    let db =
        w.c.path()
            .join(format!("cs-{}/index.db", w.cs_id.device_id));
    wait_indexed(&db, &prefix, 2, Duration::from_secs(40)).await;
    (pu, pu_sd, prefix, db)
}

/// Stops a CS and waits until it is gone, its index closed.
async fn stop_cs(cs: peercam_cs::Running, sd: peercam_net::Shutdown) {
    sd.trigger();
    cs.task.await.unwrap();
    if let Some(a) = cs.agent {
        a.await.unwrap();
    }
    cs.index.close().await;
}

/// Waits until the card's cloud spool holds at least `n` objects (a loaded machine may pack
/// later than the clock says, so this waits for them rather than for a fixed time).
async fn wait_spooled(sd_dir: &std::path::Path, n: usize) -> usize {
    let spool = sd_dir.join("cloud-outbox");
    let count = || {
        files(&spool)
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "pco"))
            .count()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while count() < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let spooled = count();
    assert!(spooled >= n, "{spooled} objects spooled on the card");
    spooled
}

/// With an SD card the backlog is spooled on the card: objects packed while the CS is down
/// survive a restart of the camera and are back-filled in order when the CS returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_card_backlog_survives_a_camera_restart_while_the_cs_is_down() {
    let w = world(1 << 30, "+15550871006").await;
    let (cs, cs_sd) = w.c.start_cs_with(&w.cs_id, 0, |_| {}).await.unwrap();
    kids_when_configured(&cs).await;
    let sd_dir = w.c.path().join("cam.sd");
    let (pu, pu_sd, prefix, db) = cloud_on_card(&w, &sd_dir).await;

    // The CS goes away; the camera keeps recording into its card's spool, then restarts.
    stop_cs(cs, cs_sd).await;
    let stored = indexed(&db, &prefix).await;
    // At least two objects packed while the CS is away (2 s objects; a loaded machine may
    // pack later than the clock says, so wait for them rather than for a fixed time).
    let spooled = wait_spooled(&sd_dir, 2).await;
    pu_sd.trigger();
    pu.task.await.unwrap();
    let (_pu, pu_sd) = start_with_card(&w, &sd_dir).await;

    // The CS returns: what was spooled arrives, in order, with what follows.
    let (cs, cs_sd) = w.c.start_cs_with(&w.cs_id, 0, |_| {}).await.unwrap();
    kids_when_configured(&cs).await;
    let want = stored.len() + spooled + 2;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let got = indexed(&db, &prefix).await;
        if got.len() >= want && got[0].0 == 0 && contiguous(&got) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the card's backlog was not back-filled in order: {got:?} (had {}, spooled {spooled})",
            stored.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    pu_sd.trigger();
    cs_sd.trigger();
}

/// The camera refreshes its device grant (Ps `cloud_grant`) before it expires: uploads go
/// on well past the first grant's life.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_camera_refreshes_its_grant() {
    let c = Cluster::start_with(1, |cfg| cfg.cloud.grant_ttl_s = 10)
        .await
        .unwrap();
    let cam = c.provision(1).await.unwrap().remove(0);
    let cs_id = new_identity(DeviceKind::Cs);
    c.provision_these(std::slice::from_ref(&cs_id))
        .await
        .unwrap();
    let owner = c.owner("+15550871007").await.unwrap();
    let w = World {
        c,
        owner,
        cam,
        cs_id,
    };
    let (cs, cs_sd) = w.c.start_cs_with(&w.cs_id, 0, |_| {}).await.unwrap();
    kids_when_configured(&cs).await;
    let (_pu, pu_sd) = start_camera(&w).await;
    let cam = w.cam.device_id.as_str();
    w.owner
        .set_recording(cam, Some("cloud"), &continuous())
        .await
        .unwrap();
    let set_at = std::time::Instant::now();
    let prefix = prefix_of(&w.c, cam).await;
    let db =
        w.c.path()
            .join(format!("cs-{}/index.db", w.cs_id.device_id));
    // 20 s of 2 s objects: twice the grant's life.
    let got = wait_indexed(&db, &prefix, 10, Duration::from_secs(60)).await;
    assert!(set_at.elapsed() > Duration::from_secs(12), "{got:?}");
    assert!(contiguous(&got), "{got:?}");
    pu_sd.trigger();
    cs_sd.trigger();
}

/// Starts the CS and the camera and sets a continuous cloud strategy that does not overwrite
/// (not cyclic). Answers the CS, the camera, its prefix and the CS's index database.
async fn not_cyclic_to_the_cloud(
    w: &World,
) -> (
    peercam_cs::Running,
    peercam_net::Shutdown,
    peercam_pu::Running,
    peercam_net::Shutdown,
    Prefix,
    std::path::PathBuf,
) {
    let (cs, cs_sd) = w.c.start_cs_with(&w.cs_id, 0, |_| {}).await.unwrap();
    kids_when_configured(&cs).await;
    let (pu, pu_sd) = start_camera(w).await;
    let cam = w.cam.device_id.as_str();
    let mut strategy = continuous();
    strategy.retention.cyclic = false;
    w.owner
        .set_recording(cam, Some("cloud"), &strategy)
        .await
        .unwrap();
    let prefix = prefix_of(&w.c, cam).await;
    let db =
        w.c.path()
            .join(format!("cs-{}/index.db", w.cs_id.device_id));
    (cs, cs_sd, pu, pu_sd, prefix, db)
}

/// Without overwriting (a non-cyclic strategy) a full pool stops cloud recording and the
/// camera reports `full` (6.1.9), deleting nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_full_without_cyclic_stops_and_reports_full() {
    let w = world(300_000, "+15550871008").await;
    let (_cs, cs_sd, _pu, pu_sd, prefix, db) = not_cyclic_to_the_cloud(&w).await;
    let cam = w.cam.device_id.as_str();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = w.owner.recording_state(cam, Some("cloud")).await.unwrap();
        if s.full {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never full: {s:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let kept = indexed(&db, &prefix).await;
    assert!(
        !kept.is_empty() && kept[0].0 == 0,
        "nothing pruned: {kept:?}"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        indexed(&db, &prefix).await,
        kept,
        "stopped: nothing more stored"
    );
    pu_sd.trigger();
    cs_sd.trigger();
}

/// A paid plan of 1 GiB beside the free one, and a hidden one.
fn paid_plans(c: &mut peercam_cmu::CloudConfig) {
    let plan = |id: &str, quota_bytes, public| peercam_cmu::PlanConfig {
        id: id.into(),
        name: id.to_uppercase(),
        quota_bytes,
        max_age_days: Some(30),
        price: Some("EUR 2.99/month".into()),
        public,
        ..Default::default()
    };
    c.plans = vec![plan("plus", 1 << 30, true), plan("staff", 1 << 40, false)];
}

/// The account's pool as the CS's index holds it: (quota, used).
async fn cs_pool(db: &std::path::Path) -> (i64, i64) {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let row: (i64, i64) = sqlx::query_as("SELECT quota, used FROM accounts LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    row
}

/// H.626.4 6.1.13: the free pool is full and the camera (not cyclic) has stopped; the owner
/// chooses a paid plan and the camera's next upload is accepted at once: the CS holds the
/// new quota when `PUT /me/plan` answers, and the camera resumes without its back-off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_13_paid_plan_raises_quota_at_once() {
    let w = world_with(300_000, "+15550613101", paid_plans).await;
    let (_cs, cs_sd, _pu, pu_sd, prefix, db) = not_cyclic_to_the_cloud(&w).await;
    let cam = w.cam.device_id.as_str();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !w
        .owner
        .recording_state(cam, Some("cloud"))
        .await
        .unwrap()
        .full
    {
        assert!(tokio::time::Instant::now() < deadline, "never full");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Stay stopped past the camera's first back-off, so only the plan change can wake it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = indexed(&db, &prefix).await;
    let last = before.last().unwrap().0;
    let free = w.owner.my_plan().await.unwrap();
    assert_eq!((free.plan.id.as_str(), free.epoch), ("free", 0));
    assert_eq!(free.usage.units, 1);
    assert!(free.usage.used_bytes > 0 && free.usage.used_bytes <= 300_000);

    let t0 = tokio::time::Instant::now();
    let paid = w.owner.set_plan("plus").await.unwrap();
    assert_eq!((paid.plan.id.as_str(), paid.epoch), ("plus", 1));
    assert_eq!(paid.plan.quota_bytes, 1 << 30);
    assert!(paid.since.is_some());
    // At once: the CS holds the new quota when the answer comes.
    assert_eq!(cs_pool(&db).await.0, 1 << 30);
    // The next upload is accepted: no waiting for a back-off (objects are 2 s long and
    // the camera kept a backlog while stopped).
    let after = wait_indexed(&db, &prefix, before.len() + 1, Duration::from_secs(5)).await;
    assert!(after.last().unwrap().0 > last, "{after:?}");
    tracing::info!(elapsed = ?t0.elapsed(), "first upload after the plan change");
    let s = w.owner.recording_state(cam, Some("cloud")).await.unwrap();
    assert!(!s.full, "resumed: {s:?}");
    // Choosing the same plan again changes nothing.
    assert_eq!(w.owner.set_plan("plus").await.unwrap().epoch, 1);
    pu_sd.trigger();
    cs_sd.trigger();
}

/// H.626.4 6.1.13: a downgrade (here without grace) makes the CS delete the oldest objects
/// beyond the new quota at once; what is kept is the newest, contiguous.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_13_downgrade_prunes_oldest_beyond_the_new_quota() {
    let w = world_with(250_000, "+15550613102", |c| {
        paid_plans(c);
        c.downgrade_grace_days = 0;
    })
    .await;
    let (cs, cs_sd) = w.c.start_cs_with(&w.cs_id, 0, |_| {}).await.unwrap();
    kids_when_configured(&cs).await;
    w.owner.set_plan("plus").await.unwrap();
    let (_pu, pu_sd) = start_camera(&w).await;
    let cam = w.cam.device_id.as_str();
    let mut strategy = continuous();
    strategy.retention.cyclic = false;
    w.owner
        .set_recording(cam, Some("cloud"), &strategy)
        .await
        .unwrap();
    let prefix = prefix_of(&w.c, cam).await;
    let db =
        w.c.path()
            .join(format!("cs-{}/index.db", w.cs_id.device_id));
    // The CS learnt the paid quota with the camera's configuration.
    assert_eq!(cs_pool(&db).await.0, 1 << 30);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while cs_pool(&db).await.1 < 600_000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "too little recorded"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let before = indexed(&db, &prefix).await;
    assert_eq!(before[0].0, 0);

    let free = w.owner.set_plan("free").await.unwrap();
    assert_eq!((free.plan.id.as_str(), free.epoch), ("free", 2));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (quota, used) = loop {
        let (quota, used) = cs_pool(&db).await;
        if used <= quota {
            break (quota, used);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not pruned: {used} > {quota}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(quota, 250_000);
    assert!(used > 0, "only the excess goes");
    let kept = indexed(&db, &prefix).await;
    assert!(kept[0].0 > 0, "the oldest went first: {kept:?}");
    assert!(contiguous(&kept), "{kept:?}");
    assert!(
        before.iter().any(|b| b.0 == kept[0].0),
        "what is kept was stored before: {kept:?}"
    );
    let usage = w.owner.my_plan().await.unwrap().usage;
    assert!(usage.used_bytes <= 250_000, "{usage:?}");
    pu_sd.trigger();
    cs_sd.trigger();
}

/// H.626.4 6.1.13 refusals: an unknown or hidden plan, a sub-account choosing (it sees its
/// owner's plan), and owners are apart. Each change is audited for the owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_13_plan_refusals() {
    let c = Cluster::start_with(0, |cfg| paid_plans(&mut cfg.cloud))
        .await
        .unwrap();
    let a = c.owner("+15550613103").await.unwrap();
    let b = c.owner("+15550613104").await.unwrap();
    let ids: Vec<String> = a.plans().await.unwrap().into_iter().map(|p| p.id).collect();
    assert_eq!(ids, ["free", "plus"], "the hidden plan is not listed");
    for bad in ["gold", "staff", ""] {
        match a.set_plan(bad).await {
            Err(peercam_cu::CuError::Api { status, code, .. }) => {
                assert_eq!((status, code.as_str()), (404, "unknown_plan"), "{bad}");
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert_eq!(a.my_plan().await.unwrap().epoch, 0, "nothing changed");
    // A sub-account cannot choose; it sees its owner's plan.
    let kid = c.sub(&a, "plankid").await.unwrap();
    match kid.set_plan("plus").await {
        Err(peercam_cu::CuError::Api { status, .. }) => assert_eq!(status, 403),
        other => panic!("a sub-account chose a plan: {other:?}"),
    }
    a.set_plan("plus").await.unwrap();
    assert_eq!(kid.my_plan().await.unwrap().plan.id, "plus");
    // Owners are apart.
    let bs = b.my_plan().await.unwrap();
    assert_eq!((bs.plan.id.as_str(), bs.epoch), ("free", 0));
    assert_eq!(bs.usage.units, 0);
    // Audited for the owner.
    let audit: serde_json::Value = a
        .call::<(), _>(reqwest::Method::GET, "/api/v1/audit", None)
        .await
        .unwrap();
    assert!(
        audit.to_string().contains("cloud.plan.set") && audit.to_string().contains("free -> plus"),
        "{audit}"
    );
    c.stop().await;
}

/// H.626.4 6.1.13 in the web client: the recordings page shows the plan and the pool's use
/// on the CS; the owner chooses the paid plan there and the CS holds its quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_13_web_client_shows_plan_and_usage() {
    let Some(dir) =
        peercam_test::web::web_tests_or_skip("h626_6_1_13_web_client_shows_plan_and_usage")
    else {
        return;
    };
    let phone = "+15550613105";
    let w = world_with(1 << 30, phone, paid_plans).await;
    let (cs, cs_sd) = w.c.start_cs_with(&w.cs_id, 0, |_| {}).await.unwrap();
    kids_when_configured(&cs).await;
    let (_pu, pu_sd) = start_camera(&w).await;
    let cam = w.cam.device_id.as_str();
    w.owner
        .set_recording(cam, Some("cloud"), &continuous())
        .await
        .unwrap();
    let prefix = prefix_of(&w.c, cam).await;
    let db =
        w.c.path()
            .join(format!("cs-{}/index.db", w.cs_id.device_id));
    wait_indexed(&db, &prefix, 1, Duration::from_secs(30)).await;
    let r = peercam_test::web::scenario(
        &dir,
        "cloud-plan.mjs",
        &[
            ("PEERCAM_WEB_URL", w.c.api.clone()),
            ("PEERCAM_WEB_USER", phone.to_owned()),
            ("PEERCAM_WEB_PASSWORD", peercam_test::PASSWORD.to_owned()),
            ("PEERCAM_DEVICE", cam.to_owned()),
            ("PEERCAM_PLAN", "plus".to_owned()),
        ],
        None,
    )
    .await;
    assert!(r["after"].as_str().unwrap().contains("PLUS"), "{r}");
    assert_eq!(w.owner.my_plan().await.unwrap().plan.id, "plus");
    assert_eq!(cs_pool(&db).await.0, 1 << 30);
    pu_sd.trigger();
    cs_sd.trigger();
}

/// An alarm strategy to the cloud (the SD card's code): nothing is uploaded before an
/// event; after one, the pre-roll and the post-roll are, and then uploads stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_alarm_strategy_uploads_pre_and_post_roll() {
    let w = world(1 << 30, "+15550871009").await;
    let (cs, cs_sd) = w.c.start_cs_with(&w.cs_id, 0, |_| {}).await.unwrap();
    kids_when_configured(&cs).await;
    let (_pu, pu_sd) = start_camera(&w).await;
    let cam = w.cam.device_id.as_str();
    let strategy = Strategy {
        mode: Mode::Alarm {
            pre_s: 2,
            post_s: 3,
        },
        ..Strategy::default()
    };
    w.owner
        .set_recording(cam, Some("cloud"), &strategy)
        .await
        .unwrap();
    let prefix = prefix_of(&w.c, cam).await;
    let db =
        w.c.path()
            .join(format!("cs-{}/index.db", w.cs_id.device_id));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        indexed(&db, &prefix).await.is_empty(),
        "uploaded without an event"
    );

    let at = now_s() * 1000;
    let took = w.owner.record_event(cam, "alarm", "door").await.unwrap();
    assert_eq!(took.recorders, vec!["cloud".to_owned()]);
    let got = wait_indexed(&db, &prefix, 2, Duration::from_secs(30)).await;
    // The first object starts before the event: the pre-roll.
    let first_start: u64 = got[0].1.rsplit('/').next().unwrap()[..13].parse().unwrap();
    assert!(
        first_start < at,
        "no pre-roll: starts {first_start}, event {at}"
    );
    // After the post-roll, nothing more.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let settled = indexed(&db, &prefix).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        indexed(&db, &prefix).await,
        settled,
        "still uploading after the post-roll"
    );
    assert!(contiguous(&settled), "{settled:?}");
    pu_sd.trigger();
    cs_sd.trigger();
}

const BUCKET: &str = "peercam-cloud";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `store` line of a CS on the S3 `endpoint`, and a client of the same bucket.
fn s3_store(dir: &std::path::Path, endpoint: &str) -> (String, peercam_cs::S3Store) {
    std::fs::create_dir_all(dir).unwrap();
    let creds = peercam_test::s3::credentials_file(dir).unwrap();
    let line = format!(
        "store = {{ kind = \"s3\", endpoint = {endpoint:?}, bucket = {BUCKET:?}, credentials_file = {creds:?} }}\n"
    );
    let mut cfg = peercam_cs::S3Config::new(endpoint, BUCKET);
    cfg.credentials_file = Some(creds);
    (line, peercam_cs::S3Store::open(&cfg).unwrap())
}

/// Copies every object of `prefix` out of the bucket into `out` (as files named by key).
async fn download(s3: &peercam_cs::S3Store, prefix: &Prefix, out: &std::path::Path) -> Vec<String> {
    use peercam_cs::Backend as _;
    let listed = s3.list(&format!("{prefix}/")).await.unwrap();
    for (key, len) in &listed {
        let bytes = s3.get_range(key, None).await.unwrap();
        assert_eq!(bytes.len() as u64, *len, "{key}");
        let path = out.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    listed.into_iter().map(|(k, _)| k).collect()
}

/// The real `peercam cs` on an S3 store, a real camera uploading: every indexed object is
/// in the bucket (read back through the S3 API), and none holds H.264 in clear.
async fn record_and_upload_s3(w: &World, endpoint: &str) {
    let dir = w.c.path().join("cs-bin");
    let (store, s3) = s3_store(&dir, endpoint);
    let port = free_port();
    let mut child = spawn_cs_binary_with(&w.c, &w.cs_id, &dir, port, &store).await;
    w.c.wait_online(&w.cs_id.device_id, true, Duration::from_secs(20))
        .await
        .unwrap();
    let (_pu, pu_sd) = start_camera(w).await;
    let cam = w.cam.device_id.as_str();
    w.owner
        .set_recording(cam, Some("cloud"), &continuous())
        .await
        .unwrap();
    let prefix = prefix_of(&w.c, cam).await;
    let got = wait_indexed(&dir.join("index.db"), &prefix, 3, Duration::from_secs(40)).await;
    assert!(contiguous(&got), "{got:?}");
    let keys = download(&s3, &prefix, &dir.join("downloaded")).await;
    for (_, key) in &got {
        assert!(keys.contains(key), "{key} not in the bucket: {keys:?}");
    }
    // The LocalDir store was not used.
    assert!(files(&dir.join("objects")).is_empty());
    no_h264_in(&w.c, &dir.join("downloaded"), &prefix).await;
    pu_sd.trigger();
    let _ = child.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_record_and_upload_s3s() {
    let w = world(1 << 30, "+15550871011").await;
    let server = peercam_test::s3::S3sFs::start(&w.c.path().join("s3s"), BUCKET)
        .await
        .unwrap();
    record_and_upload_s3(&w, &server.endpoint()).await;
    // s3s-fs holds the bucket as a directory: the objects are files there too.
    assert!(
        files(&w.c.path().join("s3s").join(BUCKET))
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "seg"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_record_and_upload_moto() {
    let Some(moto) =
        peercam_test::s3::moto_server_path(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
    else {
        peercam_net::skip::skip(
            "h626_8_7_1_record_and_upload_moto",
            "no .ci/venv/bin/moto_server (.ci/run installs it) and no PEERCAM_MOTO_SERVER",
        );
        return;
    };
    let w = world(1 << 30, "+15550871012").await;
    let server = peercam_test::s3::Moto::start(&moto, BUCKET).await.unwrap();
    record_and_upload_s3(&w, &server.endpoint()).await;
}

/// Not a test of its own: run with `PEERCAM_TEST_S3FS=<dir>` and `PEERCAM_TEST_S3FS_PORT`
/// (by [`h626_8_7_1_kill_9_s3_loses_no_acknowledged_segment`], which re-runs this test
/// binary as a child), it serves s3s-fs on that directory until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3s_fs_child_server() {
    let (Some(dir), Some(port)) = (
        std::env::var_os("PEERCAM_TEST_S3FS"),
        std::env::var("PEERCAM_TEST_S3FS_PORT")
            .ok()
            .and_then(|p| p.parse::<u16>().ok()),
    ) else {
        return;
    };
    let _server = peercam_test::s3::S3sFs::start_on(
        std::path::Path::new(&dir),
        BUCKET,
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
    )
    .await
    .unwrap();
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// This test binary as a child serving s3s-fs on `dir` at `port`, once it listens.
async fn spawn_s3s_fs_child(dir: &std::path::Path, port: u16) -> tokio::process::Child {
    let child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "h626_8_7_1_cloud::s3s_fs_child_server",
            "--nocapture",
        ])
        .env("PEERCAM_TEST_S3FS", dir)
        .env("PEERCAM_TEST_S3FS_PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the s3s-fs child does not listen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_kill_9_s3_loses_no_acknowledged_segment() {
    use peercam_cs::Backend as _;
    let w = world(1 << 30, "+15550871013").await;
    let s3_dir = w.c.path().join("s3s-child");
    let s3_port = free_port();
    let mut s3_child = spawn_s3s_fs_child(&s3_dir, s3_port).await;
    let dir = w.c.path().join("cs-bin");
    let (store, s3) = s3_store(&dir, &format!("http://127.0.0.1:{s3_port}"));
    let mut cs = spawn_cs_binary_with(&w.c, &w.cs_id, &dir, free_port(), &store).await;
    w.c.wait_online(&w.cs_id.device_id, true, Duration::from_secs(20))
        .await
        .unwrap();
    let (_pu, pu_sd) = start_camera(&w).await;
    let cam = w.cam.device_id.as_str();
    w.owner
        .set_recording(cam, Some("cloud"), &continuous())
        .await
        .unwrap();
    let prefix = prefix_of(&w.c, cam).await;
    let db = dir.join("index.db");
    let mut acknowledged: Vec<(u64, String)> = Vec::new();
    for round in 0..2u64 {
        wait_indexed(
            &db,
            &prefix,
            acknowledged.len() + 2,
            Duration::from_secs(40),
        )
        .await;
        // kill -9 of the S3 server at a point that moves from round to round.
        tokio::time::sleep(Duration::from_millis(300 + 900 * round)).await;
        s3_child.kill().await.unwrap();
        let _ = s3_child.wait().await;
        acknowledged = indexed(&db, &prefix).await;
        // The CS answers 5xx while the store is down; the camera keeps its backlog.
        tokio::time::sleep(Duration::from_secs(3)).await;
        s3_child = spawn_s3s_fs_child(&s3_dir, s3_port).await;
        let after = wait_indexed(
            &db,
            &prefix,
            acknowledged.len() + 2,
            Duration::from_secs(60),
        )
        .await;
        for a in &acknowledged {
            assert!(after.contains(a), "round {round}: acknowledged {a:?} lost");
            assert!(
                s3.head(&a.1).await.unwrap().is_some(),
                "round {round}: acknowledged {} not in the bucket",
                a.1
            );
        }
    }
    // The backlog drains in order, and every indexed object is in the bucket.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let got = loop {
        let got = indexed(&db, &prefix).await;
        if got.first().map(|g| g.0) == Some(0)
            && contiguous(&got)
            && got.len() > acknowledged.len() + 2
        {
            break got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the backlog did not drain in order: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let keys = download(&s3, &prefix, &dir.join("downloaded")).await;
    for (_, key) in &got {
        assert!(keys.contains(key), "{key} indexed but not in the bucket");
    }
    no_h264_in(&w.c, &dir.join("downloaded"), &prefix).await;
    pu_sd.trigger();
    let _ = cs.kill().await;
    let _ = s3_child.kill().await;
}

// ---------------------------------------------------------------------------------------
// Cc: record list, playback with trick modes, download (8.7.1 playback steps), slice 3.
// ---------------------------------------------------------------------------------------

/// The camera's cloud record list over the last 10 minutes, once it covers `ms`.
async fn cloud_recorded(w: &World, ms: u64) -> peercam_signal::record::RecordingList {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let now = now_s() * 1000;
        let list = w
            .owner
            .recordings(
                w.cam.device_id.as_str(),
                Some("cloud"),
                now - 600_000,
                now + 60_000,
            )
            .await
            .unwrap();
        let total: u64 = list.spans.iter().map(|s| s.end_ms - s.start_ms).sum();
        if total >= ms {
            return list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {total} ms in the cloud: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn seen_frames(
    p: &mut peercam_cu::playback::Playback,
    n: usize,
) -> Vec<peercam_cu::playback::Seen> {
    peercam_test::playback::frames(p, n, Duration::from_secs(8)).await
}

use peercam_test::playback::counters as sei_counters;

/// A camera recording to the CS `cs` until 12 s are in the cloud, then the record list
/// and RTSP playback through the platform with every trick mode, checked by the SEI frame
/// counters the camera wrote (as the NVR's and the card's playback are).
async fn list_and_play(w: &World, cs: &peercam_cs::Running) {
    let cam = w.cam.device_id.as_str();
    w.owner
        .set_recording(cam, Some("cloud"), &continuous())
        .await
        .unwrap();
    let list = cloud_recorded(w, 12_000).await;
    let span = list.spans[0];
    assert!(span.bytes > 0, "{list:?}");

    // 1x from 3 s in: every frame, in order, within a GOP of the time asked.
    let start = span.start_ms + 3000;
    let play = w
        .owner
        .playback_url(cam, Some("cloud"), start)
        .await
        .unwrap();
    assert_eq!(play.recorder, "cloud");
    let mut p = peercam_cu::playback::Playback::open(&play.url)
        .await
        .unwrap();
    p.play(None, None).await.unwrap();
    let normal = seen_frames(&mut p, 30).await;
    let c = sei_counters(&normal);
    assert!(c.windows(2).all(|x| x[1] == x[0] + 1), "1x: {c:?}");
    let first_ms = normal[0].tag.as_ref().unwrap().capture_unix_us / 1000;
    assert!(
        first_ms <= start + 40 && start - first_ms <= 2040,
        "started {first_ms}, asked {start}"
    );
    // 4x: key frames only, ascending, across objects.
    p.play(Some(span.start_ms), Some("4")).await.unwrap();
    let fast = seen_frames(&mut p, 4).await;
    let c = sei_counters(&fast);
    assert!(fast.iter().all(|f| f.key), "4x sends key frames");
    assert!(c.windows(2).all(|x| x[1] > x[0]), "4x ascending: {c:?}");
    // Reverse: descending, back across objects.
    p.play(Some(span.start_ms + 9000), Some("-1"))
        .await
        .unwrap();
    let rev = seen_frames(&mut p, 3).await;
    let c = sei_counters(&rev);
    assert!(c.windows(2).all(|x| x[1] < x[0]), "reverse: {c:?}");
    // Pause and frame steps: one frame each; a step back is re-encoded as an IDR.
    p.play(Some(start), Some("1")).await.unwrap();
    let _ = seen_frames(&mut p, 5).await;
    p.pause().await.unwrap();
    let a = p.step(true).await.unwrap();
    let b = p.step(true).await.unwrap();
    let (ca, cb) = (a.tag.unwrap().frame, b.tag.unwrap().frame);
    assert_eq!(cb, ca + 1, "a step forward shows the next frame");
    let back = p.step(false).await.unwrap();
    assert!(back.key, "a step back is sent as an IDR");
    assert_eq!(
        back.tag.unwrap().frame,
        ca,
        "a step back shows the previous frame"
    );
    assert!(
        p.next_frame(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none()
    );
    p.teardown().await.unwrap();
    // The objects came from the store once and then from the cache.
    let stats = cs.source.stats();
    assert!(stats.fetched > 0 && stats.hits > 0, "{stats:?}");
    // The playback URL is one-time (D4): its second use is refused.
    assert!(
        peercam_cu::playback::Playback::open(&play.url)
            .await
            .is_err(),
        "a spent token played again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_record_list_play_dir() {
    let w = world(1 << 30, "+15550871021").await;
    let (cs, cs_sd) = w.c.start_cs_with(&w.cs_id, 0, |_| {}).await.unwrap();
    kids_when_configured(&cs).await;
    let (_pu, pu_sd) = start_camera(&w).await;
    list_and_play(&w, &cs).await;
    // The CLI lists the cloud's spans.
    let now = now_s() * 1000;
    let (ok, out, err) =
        w.c.cu_cli(
            env!("CARGO_BIN_EXE_peercam"),
            "+15550871021",
            &[
                "recordings",
                w.cam.device_id.as_str(),
                "--recorder",
                "cloud",
                "--from",
                &peercam_record::time::format_rfc3339(now - 600_000),
                "--to",
                &peercam_record::time::format_rfc3339(now + 60_000),
            ],
        )
        .await;
    assert!(ok, "{err}");
    assert!(out.contains("MiB") || out.contains(" s "), "{out}");
    pu_sd.trigger();
    cs_sd.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_record_list_play_s3s() {
    let w = world(1 << 30, "+15550871022").await;
    let server = peercam_test::s3::S3sFs::start(&w.c.path().join("s3s"), BUCKET)
        .await
        .unwrap();
    let dir = w.c.path().join("cs-s3");
    let (_, s3) = s3_store(&dir, &server.endpoint());
    let mut cfg = peercam_cs::S3Config::new(server.endpoint(), BUCKET);
    cfg.credentials_file = Some(peercam_test::s3::credentials_file(&dir).unwrap());
    let (cs, cs_sd) =
        w.c.start_cs_with(&w.cs_id, 0, |c| {
            c.store = Some(peercam_cs::StoreConfig::S3(cfg));
        })
        .await
        .unwrap();
    kids_when_configured(&cs).await;
    let (_pu, pu_sd) = start_camera(&w).await;
    list_and_play(&w, &cs).await;
    // What played came from the bucket.
    let prefix = prefix_of(&w.c, w.cam.device_id.as_str()).await;
    use peercam_cs::Backend as _;
    assert!(!s3.list(&format!("{prefix}/")).await.unwrap().is_empty());
    pu_sd.trigger();
    cs_sd.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_record_list_play_moto() {
    let Some(moto) =
        peercam_test::s3::moto_server_path(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
    else {
        peercam_net::skip::skip(
            "h626_8_7_1_record_list_play_moto",
            "no .ci/venv/bin/moto_server (.ci/run installs it) and no PEERCAM_MOTO_SERVER",
        );
        return;
    };
    let w = world(1 << 30, "+15550871023").await;
    let server = peercam_test::s3::Moto::start(&moto, BUCKET).await.unwrap();
    let dir = w.c.path().join("cs-moto");
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = peercam_cs::S3Config::new(server.endpoint(), BUCKET);
    cfg.credentials_file = Some(peercam_test::s3::credentials_file(&dir).unwrap());
    let (cs, cs_sd) =
        w.c.start_cs_with(&w.cs_id, 0, |c| {
            c.store = Some(peercam_cs::StoreConfig::S3(cfg));
        })
        .await
        .unwrap();
    kids_when_configured(&cs).await;
    let (_pu, pu_sd) = start_camera(&w).await;
    list_and_play(&w, &cs).await;
    pu_sd.trigger();
    cs_sd.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_export_ffprobe() {
    let w = world(1 << 30, "+15550871024").await;
    let (cs, cs_sd) = w.c.start_cs_with(&w.cs_id, 0, |_| {}).await.unwrap();
    kids_when_configured(&cs).await;
    let (_pu, pu_sd) = start_camera(&w).await;
    let cam = w.cam.device_id.as_str();
    w.owner
        .set_recording(cam, Some("cloud"), &continuous())
        .await
        .unwrap();
    let span = cloud_recorded(&w, 10_000).await.spans[0];

    // 6 s from one second in, through a viewer grant on the CS.
    let (from, to) = (span.start_ms + 1000, span.start_ms + 7000);
    let ex = w
        .owner
        .export_url(cam, Some("cloud"), from, to)
        .await
        .unwrap();
    assert!(
        ex.url.contains("/cc/v1/export/") && ex.url.contains("grant=pcg1."),
        "{}",
        ex.url
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clip.mp4");
    let n = w
        .owner
        .fetch_export(&ex.url, &file, |_, total| {
            assert!(total.is_some(), "the length is known first");
        })
        .await
        .unwrap();
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(n, bytes.len() as u64);
    let movie = peercam_media::mp4::Movie::parse(&bytes).unwrap();
    let video = movie.video().unwrap();
    let count = video.sample_count();
    assert!(
        (150..=205).contains(&count),
        "{count} frames for 6 s at 25 fps"
    );
    let tags: Vec<u64> = video
        .samples()
        .map(|s| {
            let nals = peercam_media::annexb::split_avcc(s.data(&bytes).unwrap(), 4).unwrap();
            nals.iter()
                .find_map(|n| peercam_media::sei::parse_sei(n))
                .unwrap()
                .frame
        })
        .collect();
    assert!(tags.windows(2).all(|p| p[1] == p[0] + 1), "gap in {tags:?}");
    assert_eq!(
        peercam_test::playback::ffprobe_frames(&file),
        count,
        "ffprobe decoded every frame"
    );

    // The grant serves several requests while it lives: a resumed download (Range).
    let http = reqwest::Client::new();
    let r = http
        .get(&ex.url)
        .header("range", "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 206);
    let total = bytes.len();
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes 100-{}/{total}", total - 1)
    );
    assert_eq!(&r.bytes().await.unwrap()[..], &bytes[100..]);
    // A range outside the grant's is refused; so is a made-up grant.
    let wider = ex.url.replace(
        &peercam_record::time::format_clock(to),
        &peercam_record::time::format_clock(to + 60_000),
    );
    let status = http.get(&wider).send().await.unwrap().status().as_u16();
    assert_eq!(status, 403, "a range outside the grant");
    let forged = ex.url.split("&grant=").next().unwrap().to_owned() + "&grant=pcg1.e30.AAAA";
    let status = http.get(&forged).send().await.unwrap().status().as_u16();
    assert!(status == 401 || status == 403, "{status}");

    // The CLI exports with its progress bar (hidden with --json).
    let out_file = dir.path().join("cli.mp4");
    let (ok, out, err) =
        w.c.cu_cli(
            env!("CARGO_BIN_EXE_peercam"),
            "+15550871024",
            &[
                "--json",
                "export",
                cam,
                "--recorder",
                "cloud",
                "--from",
                &peercam_record::time::format_rfc3339(from),
                "--to",
                &peercam_record::time::format_rfc3339(to),
                "--out",
                out_file.to_str().unwrap(),
            ],
        )
        .await;
    assert!(ok, "{out} {err}");
    assert_eq!(peercam_test::playback::ffprobe_frames(&out_file), count);
    pu_sd.trigger();
    cs_sd.trigger();
    drop(cs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_playback_refusals() {
    let w = world(1 << 30, "+15550871025").await;
    let (cs, cs_sd) = w.c.start_cs_with(&w.cs_id, 0, |_| {}).await.unwrap();
    let kids = kids_when_configured(&cs).await;
    let (_pu, pu_sd) = start_camera(&w).await;
    let cam = w.cam.device_id.as_str();
    w.owner
        .set_recording(cam, Some("cloud"), &continuous())
        .await
        .unwrap();
    let span = cloud_recorded(&w, 4000).await.spans[0];
    let (from, to) = (span.start_ms, span.start_ms + 3000);
    let status_of = |r: Result<_, peercam_cu::CuError>| match r {
        Err(peercam_cu::CuError::Api { status, .. }) => status,
        Ok(_) => 200,
        Err(e) => panic!("{e}"),
    };

    // Another user's camera: exactly as a camera that does not exist (404).
    let other = w.c.owner("+15550871026").await.unwrap();
    for s in [
        status_of(
            other
                .recordings(cam, Some("cloud"), from, to)
                .await
                .map(|_| ()),
        ),
        status_of(
            other
                .playback_url(cam, Some("cloud"), from)
                .await
                .map(|_| ()),
        ),
        status_of(
            other
                .export_url(cam, Some("cloud"), from, to)
                .await
                .map(|_| ()),
        ),
    ] {
        assert_eq!(s, 404);
    }
    // A sub-account without `playback` (403); with it, it plays.
    let sub = w.c.sub(&w.owner, "cloudlive").await.unwrap();
    w.owner
        .share(cam, "cloudlive", [Scope::Live].into_iter().collect())
        .await
        .unwrap();
    for s in [
        status_of(
            sub.recordings(cam, Some("cloud"), from, to)
                .await
                .map(|_| ()),
        ),
        status_of(sub.playback_url(cam, Some("cloud"), from).await.map(|_| ())),
        status_of(
            sub.export_url(cam, Some("cloud"), from, to)
                .await
                .map(|_| ()),
        ),
    ] {
        assert_eq!(s, 403);
    }
    w.owner
        .share(
            cam,
            "cloudlive",
            [Scope::Live, Scope::Playback].into_iter().collect(),
        )
        .await
        .unwrap();
    let url = sub
        .playback_url(cam, Some("cloud"), from)
        .await
        .unwrap()
        .url;
    let mut p = peercam_cu::playback::Playback::open(&url).await.unwrap();
    p.play(None, None).await.unwrap();
    let _ = seen_frames(&mut p, 5).await;
    p.teardown().await.unwrap();

    // An expired viewer grant, well signed by the CMU's key, is refused by the CS (401).
    let prefix = prefix_of(&w.c, cam).await;
    let key = cmu_grant_key(&w.c).await;
    let now = now_s();
    let claims = Claims {
        v: grant::VERSION,
        aud: w.cs_id.device_id.to_string(),
        kind: Kind::Viewer,
        sub: "u1".into(),
        pfx: prefix,
        ops: Ops::of(&[Op::Read]),
        from_ms: Some(from),
        to_ms: Some(to),
        iat: now - 600,
        exp: now - 300,
        epoch: 1,
        jti: "old".into(),
        kid: kids[0].clone(),
    };
    let expired = grant::sign(&claims, &key).unwrap();
    let url = format!(
        "http://{}/cc/v1/export/{cam}.mp4?from={}&to={}&grant={expired}",
        cs.addr,
        peercam_record::time::format_clock(from),
        peercam_record::time::format_clock(to)
    );
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "{:?}", r.text().await);
    // The same grant, valid now, is served: only its age was wrong.
    let fresh = grant::sign(
        &Claims {
            iat: now,
            exp: now + 60,
            ..claims.clone()
        },
        &key,
    )
    .unwrap();
    let r = reqwest::get(url.replace(&expired, &fresh)).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A grant for another camera's prefix does not read this one (403).
    let elsewhere = grant::sign(
        &Claims {
            iat: now,
            exp: now + 60,
            pfx: Prefix::from_bytes([7; 16]),
            ..claims
        },
        &key,
    )
    .unwrap();
    let r = reqwest::get(url.replace(&expired, &elsewhere))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    pu_sd.trigger();
    cs_sd.trigger();
}

/// 8.7.1 playback for browsers: the CS answers a WebRTC offer through the platform (the
/// NVR's session code, over the cloud source): every frame at 1x, key frames ascending at
/// 4x, and a step back re-encoded with its SEI tag kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_webrtc_playback() {
    use peercam_test::webrtc::Viewer;
    fn tags(frames: &[(std::time::Instant, Vec<u8>)]) -> Vec<u64> {
        frames
            .iter()
            .filter_map(|(_, au)| {
                peercam_media::annexb::split(au).find_map(peercam_media::sei::parse_sei)
            })
            .map(|t| t.frame)
            .collect()
    }
    let w = world(1 << 30, "+15550871027").await;
    let (cs, cs_sd) = w.c.start_cs_with(&w.cs_id, 0, |_| {}).await.unwrap();
    kids_when_configured(&cs).await;
    let (_pu, pu_sd) = start_camera(&w).await;
    let cam = w.cam.device_id.as_str();
    w.owner
        .set_recording(cam, Some("cloud"), &continuous())
        .await
        .unwrap();
    let span = cloud_recorded(&w, 10_000).await.spans[0];
    let (mut v, offer) = Viewer::offer(true).await;
    let answer = w
        .owner
        .playback_webrtc(cam, Some("cloud"), span.start_ms + 2000, offer)
        .await
        .unwrap();
    assert_eq!(answer.session, "cloud");
    v.accept(&answer.answer).unwrap();
    v.run_until(20, Duration::from_secs(15)).await;
    let c = tags(&v.frames);
    assert!(c.len() >= 20, "{c:?}");
    assert!(c.windows(2).all(|p| p[1] == p[0] + 1), "gap at 1x: {c:?}");
    assert!(v.send_text(r#"{"op":"play","scale":"4"}"#));
    v.run_while(Duration::from_millis(500), |_| false).await;
    let n0 = v.frames.len();
    v.run_while(Duration::from_secs(2), |_| false).await;
    let fast = tags(&v.frames[n0..]);
    assert!(
        fast.len() >= 2 && fast.windows(2).all(|p| p[1] > p[0]),
        "{fast:?}"
    );
    assert!(v.send_text(r#"{"op":"pause"}"#));
    v.run_while(Duration::from_millis(500), |_| false).await;
    let n1 = v.frames.len();
    let shown = *tags(&v.frames).last().unwrap();
    assert!(v.send_text(r#"{"op":"step","forward":false}"#));
    v.run_until(n1 + 1, Duration::from_secs(5)).await;
    let back = tags(&v.frames[n1..]);
    assert_eq!(back.first(), Some(&(shown - 1)), "a step back: {back:?}");
    pu_sd.trigger();
    cs_sd.trigger();
}

/// H.626.4 8.7.1 with 6.3.2: what the camera recorded while the CS was away reaches the
/// cloud late, from its card, and the one timeline (and the cloud's own list) marks that
/// stretch back-filled, apart from what arrived on time.
///
/// The acceptance's "offline from the CS for 60 s", as it says: the CS stays away for a
/// full 60 s (this camera packs 2 s objects, so about 30 objects wait on the card); all of
/// them must arrive, in sequence, and the back-filled stretch must cover them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_offline_stretch_is_backfilled_on_the_timeline() {
    let w = world(1 << 30, "+15550871020").await;
    let fast = |c: &mut peercam_cs::CsConfig| c.backfill_after_ms = 1500;
    let (cs, cs_sd) = w.c.start_cs_with(&w.cs_id, 0, fast).await.unwrap();
    kids_when_configured(&cs).await;
    let sd_dir = w.c.path().join("cam.sd");
    let (_pu, pu_sd, prefix, db) = cloud_on_card(&w, &sd_dir).await;
    let cam = w.cam.device_id.as_str();

    // The CS goes away for 60 s.
    stop_cs(cs, cs_sd).await;
    let stored = indexed(&db, &prefix).await.len();
    let away = tokio::time::Instant::now();
    wait_spooled(&sd_dir, 6).await;
    tokio::time::sleep_until(away + Duration::from_secs(60)).await;
    let spooled = wait_spooled(&sd_dir, 25).await;
    let outage_ms = away.elapsed().as_millis() as u64;

    // It returns; the backlog drains in order and new objects arrive on time again.
    let (cs, cs_sd) = w.c.start_cs_with(&w.cs_id, 0, fast).await.unwrap();
    kids_when_configured(&cs).await;
    let got = wait_indexed(&db, &prefix, stored + spooled + 2, Duration::from_secs(90)).await;
    assert!(
        got[0].0 == 0 && contiguous(&got),
        "a gap after the outage: {got:?}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let now = now_s() * 1000;
        let (from, to) = (now - 600_000, now + 60_000);
        let cloud = w.owner.recordings(cam, Some("cloud"), from, to).await;
        let t = w.owner.timeline(cam, from, to).await;
        if let (Ok(cloud), Ok(t)) = (cloud, t) {
            let late = t
                .spans
                .iter()
                .filter(|s| s.backfilled && s.sources.iter().any(|x| x == "cloud"))
                .count();
            let on_time = t
                .spans
                .iter()
                .filter(|s| !s.backfilled && s.sources.iter().any(|x| x == "cloud"))
                .count();
            // The back-filled stretch covers the outage's objects (within one object).
            let late_ms: u64 = cloud
                .spans
                .iter()
                .filter(|s| s.backfilled)
                .map(|s| s.end_ms - s.start_ms)
                .sum();
            if late >= 1 && on_time >= 1 && late_ms + 2000 >= outage_ms.min(spooled as u64 * 2000) {
                // A back-filled stretch lies between what arrived on time.
                let first_late = t.spans.iter().position(|s| s.backfilled).unwrap();
                assert!(
                    t.spans[..first_late].iter().any(|s| !s.backfilled),
                    "{:?}",
                    t.spans
                );
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no back-filled stretch on the timeline: {:?} / {:?}",
                t.spans,
                cloud.spans
            );
        } else {
            assert!(tokio::time::Instant::now() < deadline, "timeline refused");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    pu_sd.trigger();
    cs_sd.trigger();
}

/// H.626.4 6.3.2 with 8.7.1 playback: playing a moment without naming a recorder plays
/// from the nearest recorder holding it. A moment only the cloud holds plays from the CS; a
/// moment the card holds too plays from the card (nearest first: NVR, card, cloud); a
/// moment nobody holds keeps the old choice (the first NVR, else the card).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_play_without_recorder_picks_the_nearest_holder() {
    let w = world(1 << 30, "+15550871021").await;
    let (cs, cs_sd) = w.c.start_cs_with(&w.cs_id, 0, |_| {}).await.unwrap();
    kids_when_configured(&cs).await;
    let sd_dir = w.c.path().join("cam.sd");
    // Cloud only: the card has no strategy yet.
    let (_pu, pu_sd, _prefix, _db) = cloud_on_card(&w, &sd_dir).await;
    let cam = w.cam.device_id.as_str();
    let from = now_s() * 1000 - 600_000;
    let cloud = w
        .owner
        .recordings(cam, Some("cloud"), from, now_s() * 1000 + 60_000)
        .await
        .unwrap();
    let early = cloud.spans[0].start_ms + 500;

    // The card records too; wait for a stretch both hold.
    w.owner
        .set_recording(cam, Some("sd"), &continuous())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let both = loop {
        let t = w
            .owner
            .timeline(cam, from, now_s() * 1000 + 60_000)
            .await
            .unwrap();
        let held = t.spans.iter().find(|s| {
            s.end_ms >= s.start_ms + 1000
                && s.sources.iter().any(|x| x == "sd")
                && s.sources.iter().any(|x| x == "cloud")
        });
        if let Some(s) = held {
            assert_eq!(s.sources[0], "sd", "{:?}", t.spans);
            break s.start_ms + (s.end_ms - s.start_ms) / 2;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no stretch on card and cloud: {:?}",
            t.spans
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // Only the cloud holds `early`: the URL is the CS's, and it plays.
    let play = w.owner.playback_url(cam, None, early).await.unwrap();
    assert_eq!(play.recorder, "cloud");
    let mut p = peercam_cu::playback::Playback::open(&play.url)
        .await
        .unwrap();
    p.play(None, None).await.unwrap();
    let seen = peercam_test::playback::frames(&mut p, 3, Duration::from_secs(8)).await;
    let first_ms = seen[0].tag.as_ref().unwrap().capture_unix_us / 1000;
    assert!(
        first_ms <= early + 40 && early - first_ms <= 2040,
        "started {first_ms}, asked {early}"
    );
    drop(p);
    // Both hold `both`: the card, nearer.
    let play = w.owner.playback_url(cam, None, both).await.unwrap();
    assert_eq!(play.recorder, "sd");
    // Nobody holds an hour ago: the card, as before.
    let play = w
        .owner
        .playback_url(cam, None, from - 3_600_000)
        .await
        .unwrap();
    assert_eq!(play.recorder, "sd");
    // Naming a recorder still wins.
    let play = w
        .owner
        .playback_url(cam, Some("cloud"), both)
        .await
        .unwrap();
    assert_eq!(play.recorder, "cloud");
    pu_sd.trigger();
    cs_sd.trigger();
}
