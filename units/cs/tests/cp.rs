//! Cp over real sockets on loopback (H.626.4 8.7.1): upload, retries, refusals, quota and
//! prune, recovery after a crash, and encryption at rest.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use peercam_cloud::grant::{self, Claims, Kind, Op, Ops};
use peercam_cloud::object::{Object, build};
use peercam_cloud::{Prefix, SegmentKey, envelope};
use peercam_cs::index::Opened;
use peercam_cs::{
    AccountConfig, Backend as _, CameraConfig, CsConfig, GrantKey, Index, LocalDir, Running,
};
use peercam_net::Shutdown;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const CS_ID: &str = "cs-test-1";
const CAM: Prefix = Prefix::from_bytes([0x11; 16]);
const OTHER: Prefix = Prefix::from_bytes([0x22; 16]);
const DEK: [u8; 32] = [0x5a; 32];
const OTHER_DEK: [u8; 32] = [0x6b; 32];

/// Test SPS and PPS (a real 640x480 baseline SPS's bytes).
const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8];
const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

fn cmu_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

struct Fx {
    dir: tempfile::TempDir,
    quota: u64,
}

impl Fx {
    fn new(quota: u64) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            quota,
        }
    }

    fn store_dir(&self) -> PathBuf {
        self.dir.path().join("objects")
    }

    fn config(&self) -> CsConfig {
        let mut c = CsConfig::new(CS_ID.into(), self.store_dir());
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.grant_keys = vec![GrantKey {
            kid: "g1".into(),
            public_key: URL_SAFE_NO_PAD.encode(cmu_key().verifying_key().as_bytes()),
        }];
        c.accounts = vec![AccountConfig {
            account: "acc-1".into(),
            quota_bytes: self.quota,
        }];
        c.cameras = [CAM, OTHER]
            .into_iter()
            .map(|p| CameraConfig {
                prefix: p,
                account: "acc-1".into(),
                epoch: 2,
                write_kid: "d1".into(),
                camera: None,
            })
            .collect();
        c.data_keys = vec![
            peercam_cs::DataKeyConfig {
                prefix: CAM,
                kid: "d1".into(),
                key: URL_SAFE_NO_PAD.encode(DEK),
            },
            peercam_cs::DataKeyConfig {
                prefix: OTHER,
                kid: "d1".into(),
                key: URL_SAFE_NO_PAD.encode(OTHER_DEK),
            },
        ];
        c
    }

    async fn start(&self) -> Cs {
        let config = self.config();
        let keys = Arc::new(config.static_keys().unwrap());
        let shutdown = Shutdown::new();
        let running = peercam_cs::start(config, keys, shutdown.clone())
            .await
            .unwrap();
        Cs {
            base: format!("http://{}", running.addr),
            running,
            shutdown,
            http: reqwest::Client::new(),
        }
    }
}

struct Cs {
    base: String,
    running: Running,
    shutdown: Shutdown,
    http: reqwest::Client,
}

impl Cs {
    async fn stop(self) {
        self.shutdown.trigger();
        self.running.task.await.unwrap();
        self.running.index.close().await;
    }

    async fn put(&self, key: &str, body: &[u8], grant: &str) -> (u16, Value) {
        let sha = hex::encode(Sha256::digest(body));
        let r = self
            .http
            .put(format!("{}/cp/v1/o/{key}", self.base))
            .bearer_auth(grant)
            .header("x-pc-sha256", sha)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    async fn post(&self, path: &str, body: Value, grant: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(grant)
            .json(&body)
            .send()
            .await
            .unwrap();
        answer(r).await
    }
}

async fn answer(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, v)
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(pfx: Prefix, ops: &[Op]) -> Claims {
    let now = now_s();
    Claims {
        v: grant::VERSION,
        aud: CS_ID.into(),
        kind: Kind::Device,
        sub: "cam-1".into(),
        pfx,
        ops: Ops::of(ops),
        from_ms: None,
        to_ms: None,
        iat: now - 10,
        exp: now + 900,
        epoch: 2,
        jti: "j1".into(),
        kid: "g1".into(),
    }
}

fn grant_for(pfx: Prefix) -> String {
    grant::sign(&claims(pfx, &[Op::Put, Op::Prune, Op::State]), &cmu_key()).unwrap()
}

/// Annex B patterns hidden in the frames' payload, so the encryption test has plaintext
/// to look for: a start code before an SPS, a PPS and an IDR NAL header.
fn patterns() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for nal in [SPS, PPS, &[0x65, 0x88, 0x84][..]] {
        let mut p = vec![0, 0, 0, 1];
        p.extend_from_slice(nal);
        v.push(p);
    }
    v.push(SPS.to_vec());
    v
}

/// An upload object of `prefix` number `seq` starting `start_ms`: one segment of
/// `frames` frames of `frame_bytes`.
fn object(
    prefix: Prefix,
    seq: u64,
    start_ms: u64,
    frames: u32,
    frame_bytes: usize,
) -> (String, Vec<u8>) {
    let mut seg = build::segment(start_ms * 90, frames, frame_bytes.max(64), false);
    // The first access unit: 4-byte length, IDR NAL header, then payload we may fill.
    let mut at = 5;
    for p in patterns() {
        seg.data[at..at + p.len()].copy_from_slice(&p);
        at += p.len();
    }
    let obj = Object {
        prefix,
        seq,
        audio: None,
        sps: SPS.to_vec(),
        pps: PPS.to_vec(),
        segments: vec![seg],
    };
    let key = SegmentKey::new(prefix, start_ms, seq).unwrap().to_string();
    (key, obj.encode().unwrap())
}

fn recent_ms(back_s: u64) -> u64 {
    (now_s() - back_s) * 1000
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn h626_8_7_1_upload_and_idempotent_retry() {
    let fx = Fx::new(1 << 30);
    let cs = fx.start().await;
    let g = grant_for(CAM);
    // A camera with nothing stored yet.
    let (s, h) = cs
        .post("/cp/v1/hello", serde_json::json!({"prefix": CAM}), &g)
        .await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["last_seq"], Value::Null);
    assert_eq!(h["missing"], serde_json::json!([]));
    assert_eq!(h["used"], 0);
    let (key, body) = object(CAM, 1, recent_ms(60), 25, 400);
    let (s, v) = cs.put(&key, &body, &g).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["key"], key.as_str());
    let stored = v["bytes"].as_u64().unwrap();
    assert!(
        stored > body.len() as u64,
        "the envelope adds a header and tags"
    );
    // A retry with the same key and body: 200, the same answer, still one row.
    let (s, v2) = cs.put(&key, &body, &g).await;
    assert_eq!(s, 200, "{v2}");
    assert_eq!(v2, v);
    let rows = cs.running.index.objects_of(&CAM).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].backfilled, "ended over 30 s before it arrived");
    assert_eq!(rows[0].body_sha256, hex::encode(Sha256::digest(&body)));
    // hello: where the camera's uploads stand.
    let (key3, body3) = object(CAM, 3, recent_ms(30), 25, 400);
    assert_eq!(cs.put(&key3, &body3, &g).await.0, 201);
    let (s, h) = cs
        .post("/cp/v1/hello", serde_json::json!({"prefix": CAM}), &g)
        .await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["last_seq"], 3);
    assert_eq!(h["missing"], serde_json::json!([[2, 2]]));
    assert_eq!(h["quota"], 1u64 << 30);
    assert!(h["used"].as_u64().unwrap() > 0);
    assert_eq!(h["object_max"], 8 << 20);
    // An object sent as it ends is live, not back-filled.
    let (key4, body4) = object(CAM, 4, recent_ms(2), 25, 400);
    assert_eq!(cs.put(&key4, &body4, &g).await.0, 201);
    assert!(
        !cs.running
            .index
            .object(&key4)
            .await
            .unwrap()
            .unwrap()
            .backfilled
    );
    cs.stop().await;
}

#[tokio::test]
async fn h626_8_7_1_different_content_is_409() {
    let fx = Fx::new(1 << 30);
    let cs = fx.start().await;
    let g = grant_for(CAM);
    let start = recent_ms(60);
    let (key, body) = object(CAM, 1, start, 25, 400);
    assert_eq!(cs.put(&key, &body, &g).await.0, 201);
    let (_, other) = object(CAM, 1, start, 26, 400);
    let (s, v) = cs.put(&key, &other, &g).await;
    assert_eq!((s, v["code"].as_str().unwrap()), (409, "different_content"));
    // Another seq at the same start conflicts too.
    let (key2, body2) = object(CAM, 2, start, 25, 400);
    let (s, v) = cs.put(&key2, &body2, &g).await;
    assert_eq!((s, v["code"].as_str().unwrap()), (409, "different_content"));
    assert_eq!(cs.running.index.objects_of(&CAM).await.unwrap().len(), 1);
    // A body that does not match its hash, an object that does not match its key, a
    // malformed object and a non-canonical key are refused with 400.
    let r = cs
        .http
        .put(format!("{}/cp/v1/o/{key2}", cs.base))
        .bearer_auth(&g)
        .header("x-pc-sha256", "00".repeat(32))
        .body(body2.clone())
        .send()
        .await
        .unwrap();
    let (s, v) = answer(r).await;
    assert_eq!((s, v["code"].as_str().unwrap()), (400, "bad_hash"));
    let (key3, _) = object(CAM, 3, start + 20_000, 25, 400);
    let (s, v) = cs.put(&key3, &body2, &g).await;
    assert_eq!((s, v["code"].as_str().unwrap()), (400, "bad_object"), "{v}");
    let (s, v) = cs.put(&key3, b"PCO1 nonsense", &g).await;
    assert_eq!((s, v["code"].as_str().unwrap()), (400, "bad_object"));
    assert!(v["reason"].is_string());
    let (s, v) = cs
        .put(&format!("{CAM}/2026/1/1/12-3.seg"), &body2, &g)
        .await;
    assert_eq!((s, v["code"].as_str().unwrap()), (400, "bad_key"));
    // Too old for the object window.
    let (key_old, body_old) = object(CAM, 9, recent_ms(31 * 86_400), 25, 400);
    let (s, v) = cs.put(&key_old, &body_old, &g).await;
    assert_eq!((s, v["code"].as_str().unwrap()), (400, "bad_object"));
    cs.stop().await;
}

#[tokio::test]
async fn h626_8_7_1_refuses_forged_expired_and_other_prefix_grants() {
    let fx = Fx::new(1 << 30);
    let cs = fx.start().await;
    let (key, body) = object(CAM, 1, recent_ms(60), 25, 400);
    let code = |v: &Value| v["code"].as_str().unwrap().to_owned();
    // No grant.
    let r = cs
        .http
        .put(format!("{}/cp/v1/o/{key}", cs.base))
        .header("x-pc-sha256", hex::encode(Sha256::digest(&body)))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let (s, v) = answer(r).await;
    assert_eq!((s, code(&v).as_str()), (401, "unauthenticated"));
    // Forged: signed by a key that is not the CMU's.
    let forged = grant::sign(&claims(CAM, &[Op::Put]), &SigningKey::from_bytes(&[8; 32])).unwrap();
    let (s, v) = cs.put(&key, &body, &forged).await;
    assert_eq!((s, code(&v).as_str()), (401, "bad_signature"));
    // Expired.
    let mut c = claims(CAM, &[Op::Put]);
    c.iat = now_s() - 2000;
    c.exp = now_s() - 100;
    let expired = grant::sign(&c, &cmu_key()).unwrap();
    let (s, v) = cs.put(&key, &body, &expired).await;
    assert_eq!((s, code(&v).as_str()), (401, "expired"));
    // For another CS.
    let mut c = claims(CAM, &[Op::Put]);
    c.aud = "cs-elsewhere".into();
    let (s, v) = cs
        .put(&key, &body, &grant::sign(&c, &cmu_key()).unwrap())
        .await;
    assert_eq!((s, code(&v).as_str()), (401, "wrong_audience"));
    // Of an older epoch (the camera was reset since).
    let mut c = claims(CAM, &[Op::Put]);
    c.epoch = 1;
    let (s, v) = cs
        .put(&key, &body, &grant::sign(&c, &cmu_key()).unwrap())
        .await;
    assert_eq!((s, code(&v).as_str()), (401, "revoked"));
    // Another camera's grant for this camera's key.
    let (s, v) = cs.put(&key, &body, &grant_for(OTHER)).await;
    assert_eq!((s, code(&v).as_str()), (403, "out_of_scope"));
    // A grant without `put`, and one without `prune`.
    let read_only = grant::sign(&claims(CAM, &[Op::State]), &cmu_key()).unwrap();
    let (s, v) = cs.put(&key, &body, &read_only).await;
    assert_eq!((s, code(&v).as_str()), (403, "operation_not_granted"));
    let (s, v) = cs
        .post(
            "/cp/v1/prune",
            serde_json::json!({"need_bytes": 1}),
            &read_only,
        )
        .await;
    assert_eq!((s, code(&v).as_str()), (403, "operation_not_granted"));
    // hello for another prefix.
    let (s, v) = cs
        .post(
            "/cp/v1/hello",
            serde_json::json!({"prefix": OTHER}),
            &grant_for(CAM),
        )
        .await;
    assert_eq!((s, code(&v).as_str()), (403, "out_of_scope"));
    // A prefix this CS does not hold.
    let stranger = Prefix::from_bytes([0x33; 16]);
    let (key_s, body_s) = object(stranger, 1, recent_ms(60), 25, 400);
    let (s, v) = cs.put(&key_s, &body_s, &grant_for(stranger)).await;
    assert_eq!((s, code(&v).as_str()), (403, "unknown_prefix"));
    // Nothing was stored.
    assert!(cs.running.index.objects_of(&CAM).await.unwrap().is_empty());
    assert!(files(&fx.store_dir()).is_empty());
    cs.stop().await;
}

#[tokio::test]
async fn h626_8_7_1_quota_full_prunes_oldest() {
    // Room for two objects of about 10 KiB, not three.
    let fx = Fx::new(25_000);
    let cs = fx.start().await;
    let g = grant_for(CAM);
    let t0 = recent_ms(600);
    let (k1, b1) = object(OTHER, 1, t0, 25, 400);
    let (k2, b2) = object(CAM, 1, t0 + 20_000, 25, 400);
    let (k3, b3) = object(CAM, 2, t0 + 40_000, 25, 400);
    assert_eq!(cs.put(&k1, &b1, &grant_for(OTHER)).await.0, 201);
    assert_eq!(cs.put(&k2, &b2, &g).await.0, 201);
    let (s, full) = cs.put(&k3, &b3, &g).await;
    assert_eq!(
        (s, full["code"].as_str().unwrap()),
        (507, "quota_full"),
        "{full}"
    );
    let need = full["need"].as_u64().unwrap();
    assert!(need > 0);
    assert_eq!(full["quota"], 25_000);
    // 8.7.1: the camera asks the CS to delete the oldest files; the oldest is the other
    // camera's, which the asking camera sees only as totals.
    let (s, p) = cs
        .post("/cp/v1/prune", serde_json::json!({"need_bytes": need}), &g)
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["deleted"], serde_json::json!([]));
    assert_eq!(p["others"]["objects"], 1);
    assert!(p["freed"].as_u64().unwrap() >= need);
    assert_eq!(p["quota"], 25_000);
    let file1 = fx.store_dir().join(&k1);
    assert!(!file1.exists(), "the pruned object is gone from the store");
    // The retry now succeeds; recording continues.
    assert_eq!(cs.put(&k3, &b3, &g).await.0, 201);
    // Pruning again takes this camera's oldest, and says which.
    let (s, p) = cs
        .post("/cp/v1/prune", serde_json::json!({"need_bytes": 1}), &g)
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["deleted"][0]["key"], k2.as_str());
    assert_eq!(p["deleted"][0]["start_ms"], t0 + 20_000);
    assert_eq!(p["others"]["objects"], 0);
    let acc = cs.running.index.account("acc-1").await.unwrap().unwrap();
    assert_eq!(acc.used, p["used"].as_u64().unwrap());
    assert_eq!(acc.reserved, 0);
    assert!(cs.running.index.deletions().await.unwrap().is_empty());
    cs.stop().await;
}

/// What a `kill -9` between the intent's commit and the row's commit leaves: intent rows,
/// with the object written in full, not at all, or torn. Restarting recovers each.
#[tokio::test]
async fn h626_8_7_1_kill_9_cs_recovers_intents() {
    let fx = Fx::new(1 << 30);
    let cs = fx.start().await;
    let g = grant_for(CAM);
    let t0 = recent_ms(300);
    let (k0, b0) = object(CAM, 0, t0, 25, 400);
    assert_eq!(cs.put(&k0, &b0, &g).await.0, 201);
    cs.stop().await;

    let written = object(CAM, 1, t0 + 20_000, 25, 400);
    let missing = object(CAM, 2, t0 + 40_000, 25, 400);
    let torn = object(CAM, 3, t0 + 60_000, 25, 400);
    {
        let index = Index::open(&fx.dir.path().join("index.db")).await.unwrap();
        let store = LocalDir::open(fx.store_dir()).await.unwrap();
        for (i, (key, body)) in [&written, &missing, &torn].into_iter().enumerate() {
            let sealed = envelope::seal(&DEK, "d1", [i as u8; 32], body).unwrap();
            let seg: SegmentKey = key.parse().unwrap();
            let row = peercam_cs::index::ObjectRow {
                key: key.clone(),
                prefix: CAM,
                seq: seg.seq(),
                start_ms: seg.start_ms(),
                end_ms: seg.start_ms() + 1000,
                bytes: sealed.len() as u64,
                body_sha256: hex::encode(Sha256::digest(body)),
                stored_sha256: hex::encode(Sha256::digest(&sealed)),
                backfilled: false,
                kid: "d1".into(),
            };
            assert_eq!(
                index.open_intent(&row, "acc-1", 1).await.unwrap(),
                Opened::Intent
            );
            match i {
                0 => store.put(key, sealed).await.unwrap(),
                1 => {}
                _ => store
                    .put(key, sealed[..sealed.len() / 2].to_vec())
                    .await
                    .unwrap(),
            }
        }
        // And a prune that died after its rows were committed.
        index.add_deletion(&k0, 2).await.unwrap();
        index.close().await;
    }

    let cs = fx.start().await;
    let r = &cs.running.recovery;
    assert_eq!(r.adopted, vec![written.0.clone()]);
    assert_eq!(r.dropped, vec![missing.0.clone()]);
    assert_eq!(r.deleted, vec![torn.0.clone()]);
    assert_eq!(r.deletions, vec![k0.clone()]);
    assert!(!fx.store_dir().join(&torn.0).exists());
    assert!(!fx.store_dir().join(&k0).exists());
    let acc = cs.running.index.account("acc-1").await.unwrap().unwrap();
    assert_eq!(acc.reserved, 0);
    // The camera retries each: the adopted one is already stored (200, no second row);
    // the others are stored now.
    assert_eq!(cs.put(&written.0, &written.1, &g).await.0, 200);
    assert_eq!(cs.put(&missing.0, &missing.1, &g).await.0, 201);
    assert_eq!(cs.put(&torn.0, &torn.1, &g).await.0, 201);
    let seqs: Vec<u64> = cs
        .running
        .index
        .objects_of(&CAM)
        .await
        .unwrap()
        .iter()
        .map(|o| o.seq)
        .collect();
    // Object 0's row was there before the test's fake prune left a deletion for it.
    assert_eq!(seqs, vec![0, 1, 2, 3]);
    let acc = cs.running.index.account("acc-1").await.unwrap().unwrap();
    assert_eq!(acc.reserved, 0);
    cs.stop().await;
}

#[tokio::test]
async fn h626_8_7_1_objects_hold_no_h264() {
    let fx = Fx::new(1 << 30);
    let cs = fx.start().await;
    let t0 = recent_ms(300);
    let mut sent = Vec::new();
    for seq in 0..3 {
        let (k, b) = object(CAM, seq, t0 + seq * 20_000, 25, 600);
        assert_eq!(cs.put(&k, &b, &grant_for(CAM)).await.0, 201);
        sent.push(b);
    }
    let (k, b) = object(OTHER, 0, t0, 25, 600);
    assert_eq!(cs.put(&k, &b, &grant_for(OTHER)).await.0, 201);
    cs.stop().await;
    let raw = files(&fx.store_dir());
    assert_eq!(raw.len(), 4);
    let mut opened = Vec::new();
    for f in &raw {
        let bytes = std::fs::read(f).unwrap();
        assert_eq!(&bytes[..4], b"PCE1");
        for p in patterns() {
            assert!(!contains(&bytes, &p), "{} holds {p:02x?}", f.display());
        }
        let plain = envelope::open(
            |kid| {
                assert_eq!(kid, "d1");
                Some(if f.starts_with(fx.store_dir().join(CAM.to_string())) {
                    DEK
                } else {
                    OTHER_DEK
                })
            },
            &bytes,
        )
        .unwrap();
        // Control: the same search finds every pattern once decrypted.
        for p in patterns() {
            assert!(
                contains(&plain, &p),
                "decrypted {} lacks {p:02x?}",
                f.display()
            );
        }
        opened.push(plain);
    }
    for b in &sent {
        assert!(
            opened.contains(b),
            "a decrypted object is what the camera sent"
        );
    }
}

/// A backend that stops the CS at the moment of the write: with `write_first` after the
/// object is durable in the store, else before anything is written. It then never answers,
/// as a process killed there never would.
#[derive(Debug)]
struct Gate {
    inner: LocalDir,
    write_first: bool,
    reached: tokio::sync::mpsc::UnboundedSender<()>,
}

impl peercam_cs::Backend for Gate {
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> peercam_cs::backend::BoxFut<'a, ()> {
        Box::pin(async move {
            if self.write_first {
                self.inner.put(key, bytes).await?;
            }
            let _ = self.reached.send(());
            std::future::pending().await
        })
    }
    fn get_range<'a>(
        &'a self,
        key: &'a str,
        range: Option<std::ops::Range<u64>>,
    ) -> peercam_cs::backend::BoxFut<'a, Vec<u8>> {
        self.inner.get_range(key, range)
    }
    fn head<'a>(&'a self, key: &'a str) -> peercam_cs::backend::BoxFut<'a, Option<u64>> {
        self.inner.head(key)
    }
    fn delete<'a>(&'a self, key: &'a str) -> peercam_cs::backend::BoxFut<'a, ()> {
        self.inner.delete(key)
    }
    fn list<'a>(&'a self, prefix: &'a str) -> peercam_cs::backend::BoxFut<'a, Vec<(String, u64)>> {
        self.inner.list(prefix)
    }
}

/// Runs a CS in a runtime of its own, uploads `body` under `key` until the backend write
/// is reached, then drops the whole runtime: every task of that CS dies where it stands,
/// between the intent's commit and the row's, as with `kill -9`.
fn crash_mid_upload(fx: &Fx, key: &str, body: &[u8], write_first: bool) {
    let config = fx.config();
    let store = fx.store_dir();
    let (key, body) = (key.to_owned(), body.to_vec());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (tx, mut reached) = tokio::sync::mpsc::unbounded_channel();
            let gate = Gate {
                inner: LocalDir::open(store).await.unwrap(),
                write_first,
                reached: tx,
            };
            let keys = Arc::new(config.static_keys().unwrap());
            let running = peercam_cs::start_with(config, keys, Arc::new(gate), Shutdown::new())
                .await
                .unwrap();
            let url = format!("http://{}/cp/v1/o/{key}", running.addr);
            let sha = hex::encode(Sha256::digest(&body));
            tokio::spawn(async move {
                let _ = reqwest::Client::new()
                    .put(url)
                    .bearer_auth(grant_for(CAM))
                    .header("x-pc-sha256", sha)
                    .body(body)
                    .send()
                    .await;
            });
            reached.recv().await.unwrap();
        });
        rt.shutdown_background();
    })
    .join()
    .unwrap();
}

#[tokio::test]
async fn h626_8_7_1_kill_9_cs_mid_upload_loses_nothing() {
    let fx = Fx::new(1 << 30);
    let t0 = recent_ms(300);
    let g = grant_for(CAM);
    // Killed after the object reached the store: recovery adopts it.
    let (k1, b1) = object(CAM, 1, t0, 25, 400);
    crash_mid_upload(&fx, &k1, &b1, true);
    assert!(fx.store_dir().join(&k1).exists());
    let cs = fx.start().await;
    assert_eq!(cs.running.recovery.adopted, vec![k1.clone()]);
    assert!(cs.running.index.object(&k1).await.unwrap().is_some());
    cs.stop().await;
    // Killed before the store write: recovery drops the intent.
    let (k2, b2) = object(CAM, 2, t0 + 20_000, 25, 400);
    crash_mid_upload(&fx, &k2, &b2, false);
    assert!(!fx.store_dir().join(&k2).exists());
    let cs = fx.start().await;
    assert_eq!(cs.running.recovery.dropped, vec![k2.clone()]);
    assert!(cs.running.recovery.adopted.is_empty());
    assert_eq!(cs.running.index.object(&k2).await.unwrap(), None);
    let acc = cs.running.index.account("acc-1").await.unwrap().unwrap();
    assert_eq!(acc.reserved, 0);
    // The camera never got an answer, so it retries both with the same key and bytes.
    assert_eq!(cs.put(&k1, &b1, &g).await.0, 200);
    assert_eq!(cs.put(&k2, &b2, &g).await.0, 201);
    let rows = cs.running.index.objects_of(&CAM).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
    let acc = cs.running.index.account("acc-1").await.unwrap().unwrap();
    assert_eq!(acc.used, rows.iter().map(|r| r.bytes).sum::<u64>());
    // Every acknowledged object reads back and decrypts to what the camera sent.
    for (k, b) in [(&k1, &b1), (&k2, &b2)] {
        let raw = std::fs::read(fx.store_dir().join(k)).unwrap();
        assert_eq!(&envelope::open(|_| Some(DEK), &raw).unwrap(), b);
    }
    cs.stop().await;
}

#[tokio::test]
async fn h626_8_7_1_concurrent_retries_store_once() {
    let fx = Fx::new(1 << 30);
    let cs = Arc::new(fx.start().await);
    let (key, body) = object(CAM, 1, recent_ms(60), 50, 2000);
    let g = grant_for(CAM);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (cs, key, body, g) = (cs.clone(), key.clone(), body.clone(), g.clone());
        tasks.push(tokio::spawn(async move { cs.put(&key, &body, &g).await.0 }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 200, 200, 201]);
    assert_eq!(cs.running.index.objects_of(&CAM).await.unwrap().len(), 1);
    let acc = cs.running.index.account("acc-1").await.unwrap().unwrap();
    assert_eq!(acc.reserved, 0);
}

#[tokio::test]
async fn h626_8_7_1_body_over_8_mib_is_refused() {
    let fx = Fx::new(1 << 30);
    let cs = fx.start().await;
    let (key, _) = object(CAM, 1, recent_ms(60), 25, 400);
    let big = vec![0u8; (8 << 20) + 1];
    let (s, v) = cs.put(&key, &big, &grant_for(CAM)).await;
    assert_eq!((s, v["code"].as_str().unwrap()), (413, "too_large"));
    assert!(files(&fx.store_dir()).is_empty());
    cs.stop().await;
}

/// A backend whose writes wait until the test lets them go.
#[derive(Debug)]
struct Held {
    inner: LocalDir,
    reached: tokio::sync::mpsc::UnboundedSender<()>,
    release: Arc<tokio::sync::Notify>,
}

impl peercam_cs::Backend for Held {
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> peercam_cs::backend::BoxFut<'a, ()> {
        Box::pin(async move {
            let _ = self.reached.send(());
            self.release.notified().await;
            self.inner.put(key, bytes).await
        })
    }
    fn get_range<'a>(
        &'a self,
        key: &'a str,
        range: Option<std::ops::Range<u64>>,
    ) -> peercam_cs::backend::BoxFut<'a, Vec<u8>> {
        self.inner.get_range(key, range)
    }
    fn head<'a>(&'a self, key: &'a str) -> peercam_cs::backend::BoxFut<'a, Option<u64>> {
        self.inner.head(key)
    }
    fn delete<'a>(&'a self, key: &'a str) -> peercam_cs::backend::BoxFut<'a, ()> {
        self.inner.delete(key)
    }
    fn list<'a>(&'a self, prefix: &'a str) -> peercam_cs::backend::BoxFut<'a, Vec<(String, u64)>> {
        self.inner.list(prefix)
    }
}

#[tokio::test]
async fn h626_8_7_1_camera_hanging_up_mid_write_leaves_no_open_intent() {
    let fx = Fx::new(1 << 30);
    let (tx, mut reached) = tokio::sync::mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let held = Held {
        inner: LocalDir::open(fx.store_dir()).await.unwrap(),
        reached: tx,
        release: release.clone(),
    };
    let config = fx.config();
    let keys = Arc::new(config.static_keys().unwrap());
    let shutdown = Shutdown::new();
    let running = peercam_cs::start_with(config, keys, Arc::new(held), shutdown.clone())
        .await
        .unwrap();
    let cs = Cs {
        base: format!("http://{}", running.addr),
        running,
        shutdown,
        http: reqwest::Client::new(),
    };
    let (key, body) = object(CAM, 1, recent_ms(60), 25, 400);
    let g = grant_for(CAM);
    // The camera sends, then gives up (its timeout) while the CS is writing.
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let sent = client
        .put(format!("{}/cp/v1/o/{key}", cs.base))
        .bearer_auth(&g)
        .header("x-pc-sha256", hex::encode(Sha256::digest(&body)))
        .body(body.clone())
        .send();
    let (sent, _) = tokio::join!(sent, async { reached.recv().await.unwrap() });
    assert!(sent.unwrap_err().is_timeout());
    release.notify_one();
    // The write finishes on its own and its row is committed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while cs.running.index.object(&key).await.unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the write never finished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!cs.running.index.has_intent(&key).await.unwrap());
    // The camera's retry is answered at once: stored.
    assert_eq!(cs.put(&key, &body, &g).await.0, 200);
    let acc = cs.running.index.account("acc-1").await.unwrap().unwrap();
    assert_eq!(acc.reserved, 0);
    cs.stop().await;
}

#[tokio::test]
async fn h626_8_7_1_upload_over_tls() {
    let fx = Fx::new(1 << 30);
    let pki = peercam_net::pki::Pki::generate(&["localhost"]).unwrap();
    let files = pki.write(&fx.dir.path().join("pki")).unwrap();
    let mut config = fx.config();
    config.tls = Some(peercam_cs::TlsFiles {
        cert: files.server_cert,
        key: files.server_key,
    });
    let keys = Arc::new(config.static_keys().unwrap());
    let shutdown = Shutdown::new();
    let running = peercam_cs::start(config, keys, shutdown.clone())
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca_cert_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let cs = Cs {
        base: format!("https://localhost:{}", running.addr.port()),
        running,
        shutdown,
        http,
    };
    let (key, body) = object(CAM, 1, recent_ms(60), 25, 400);
    let (s, v) = cs.put(&key, &body, &grant_for(CAM)).await;
    assert_eq!(s, 201, "{v}");
    // Plain HTTP on a TLS port gets no answer.
    let plain = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/cp/v1/hello",
            cs.running.addr.port()
        ))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    cs.stop().await;
}
