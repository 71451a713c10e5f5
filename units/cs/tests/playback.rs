//! `CloudSource` (H.626.4 8.7.1 playback) over `LocalDir` and `object_store`'s `InMemory`:
//! segments found by time and by neighbour across objects in both directions, read back
//! decrypted, spans joined, the cache counted and bounded, and the shared MP4 export.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use peercam_cloud::object::{Object, build};
use peercam_cloud::{Prefix, SegmentKey, envelope};
use peercam_cs::index::{Camera, ObjectRow, Opened};
use peercam_cs::{Backend, CloudSource, Index, LocalDir, S3Store, StaticKeys};
use peercam_recorder::SegmentSource;
use sha2::{Digest as _, Sha256};

const CAM: Prefix = Prefix::from_bytes([0x11; 16]);
const DEK: [u8; 32] = [0x5a; 32];
/// A recent start, 90 kHz (objects are checked against the clock only on upload).
const T0_MS: u64 = 1_795_392_000_000;

/// `n` objects of two 1 s segments (25 frames, one key frame each), back to back from
/// `T0_MS`, sealed and indexed.
async fn stored(backend: &dyn Backend, index: &Index, n: u64) {
    index.set_account("acc", 1 << 30).await.unwrap();
    index
        .set_camera(&Camera {
            prefix: CAM,
            account: "acc".into(),
            epoch: 1,
            write_kid: "d1".into(),
        })
        .await
        .unwrap();
    for seq in 0..n {
        let start_90k = (T0_MS + seq * 2000) * 90;
        let o = Object {
            prefix: CAM,
            seq,
            audio: None,
            sps: vec![0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8],
            pps: vec![0x68, 0xce, 0x3c, 0x80],
            segments: vec![
                build::segment(start_90k, 25, 200, false),
                build::segment(start_90k + 90_000, 25, 200, false),
            ],
        };
        let plain = o.encode().unwrap();
        let sealed = envelope::seal(&DEK, "d1", [seq as u8; 32], &plain).unwrap();
        let key = SegmentKey::new(CAM, start_90k / 90, seq)
            .unwrap()
            .to_string();
        let row = ObjectRow {
            key: key.clone(),
            prefix: CAM,
            seq,
            start_ms: start_90k / 90,
            end_ms: start_90k / 90 + 2000,
            bytes: sealed.len() as u64,
            body_sha256: hex::encode(Sha256::digest(&plain)),
            stored_sha256: hex::encode(Sha256::digest(&sealed)),
            backfilled: false,
            kid: "d1".into(),
        };
        assert_eq!(
            index.open_intent(&row, "acc", T0_MS).await.unwrap(),
            Opened::Intent
        );
        backend.put(&key, sealed).await.unwrap();
        index.commit_intent(&key).await.unwrap().unwrap();
    }
}

fn source(
    backend: Arc<dyn Backend>,
    index: &Index,
    cache: usize,
    dir: &std::path::Path,
) -> CloudSource {
    let mut keys = StaticKeys::new();
    keys.insert(CAM, "d1", DEK);
    let prefixes = Arc::new(RwLock::new(HashMap::from([("cam-1".to_owned(), CAM)])));
    CloudSource::new(
        index.clone(),
        backend,
        Arc::new(keys),
        prefixes,
        cache,
        dir.join("exports"),
    )
}

/// Every check, over one backend.
async fn suite(backend: Arc<dyn Backend>, dir: &std::path::Path) {
    let index = Index::open(&dir.join("index.db")).await.unwrap();
    stored(backend.as_ref(), &index, 3).await;
    let s = source(backend.clone(), &index, 256 << 20, dir);

    // By time: inside the second segment of the first object, and past the end.
    let seg = s.segment_at("cam-1", T0_MS + 1500).await.unwrap().unwrap();
    assert_eq!(seg.start_90k, (T0_MS + 1000) * 90);
    assert_eq!(seg.frames, 25);
    assert!(s.segment_at("cam-1", T0_MS + 6000).await.unwrap().is_none());
    assert!(
        s.segment_at("cam-2", T0_MS).await.unwrap().is_none(),
        "unknown camera"
    );

    // Forward through every segment of every object, then back.
    let mut at = s.segment_at("cam-1", 0).await.unwrap().unwrap();
    let mut starts = vec![at.start_90k];
    while let Some(n) = s.neighbour("cam-1", at.start_90k, true).await.unwrap() {
        starts.push(n.start_90k);
        at = n;
    }
    let want: Vec<u64> = (0..6).map(|i| (T0_MS + i * 1000) * 90).collect();
    assert_eq!(starts, want);
    let mut back = vec![at.start_90k];
    while let Some(n) = s.neighbour("cam-1", at.start_90k, false).await.unwrap() {
        back.push(n.start_90k);
        at = n;
    }
    back.reverse();
    assert_eq!(back, want);

    // Read: decrypted and decoded, the key frame first.
    let media = s.read(&seg).await.unwrap();
    assert_eq!(media.video.len(), 25);
    assert!(media.video[0].key && !media.video[1].key);
    assert_eq!(media.video[0].t90k, seg.start_90k);
    let stats = s.stats();
    assert_eq!(stats.fetched, 3, "each object fetched once: {stats:?}");
    assert!(stats.hits > 0, "{stats:?}");

    // The record list: one span of 6 s; segments of a range.
    let spans = s
        .spans("cam-1", T0_MS - 1000, T0_MS + 60_000)
        .await
        .unwrap();
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!((spans[0].start_ms, spans[0].end_ms), (T0_MS, T0_MS + 6000));
    let segs = s
        .segments("cam-1", T0_MS + 1500, T0_MS + 3500)
        .await
        .unwrap();
    assert_eq!(segs.len(), 3);

    // The shared exporter writes every frame of the range from key frame to end.
    let out = dir.join("clip.mp4");
    let sum =
        peercam_recorder::source::export_mp4(&s, "cam-1", (T0_MS, T0_MS + 4000), &out, |_, _| {})
            .await
            .unwrap();
    assert_eq!(sum.frames, 100);
    assert_eq!(std::fs::metadata(&out).unwrap().len(), sum.bytes);

    // A cache of one object: walking twice fetches again, and it stays bounded.
    let small = source(backend.clone(), &index, 1, dir);
    for _ in 0..2 {
        let mut at = small.segment_at("cam-1", 0).await.unwrap().unwrap();
        while let Some(n) = small.neighbour("cam-1", at.start_90k, true).await.unwrap() {
            at = n;
        }
    }
    let st = small.stats();
    assert!(st.fetched >= 5, "{st:?}");
    assert!(st.held_bytes < 2 * 25 * 2 * 300, "{st:?}");

    // An object the store lost is an error, not a panic or a silent gap.
    let first = index.objects_of(&CAM).await.unwrap().remove(0);
    backend.delete(&first.key).await.unwrap();
    let cold = source(backend, &index, 1 << 20, dir);
    assert!(cold.segment_at("cam-1", T0_MS).await.is_err());
    index.close().await;
}

#[tokio::test]
async fn h626_8_7_1_cloud_source_on_local_dir() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(LocalDir::open(dir.path().join("objects")).await.unwrap());
    suite(backend, dir.path()).await;
}

#[tokio::test]
async fn h626_8_7_1_cloud_source_on_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(S3Store::with_store(
        Arc::new(object_store::memory::InMemory::new()),
        "mem",
        6 << 20,
        5 << 20,
    ));
    suite(backend, dir.path()).await;
}
