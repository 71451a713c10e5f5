//! The writer's storage-full notices (H.626.4 6.1.9) on a real store.

use std::path::PathBuf;
use std::time::Duration;

use peercam_media::annexb::AccessUnitAssembler;
use peercam_store::StoreConfig;

use super::*;

const STREAM: &[u8] =
    include_bytes!("../../../proto/media/testdata/x264_baseline_320x180_25fps_50f.h264");
const CAMERA: &str = "pc-0123456789abcdef";

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("peercam-recorder-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

/// `count` one-second segments of the fixture (its first 25 frames each), from now.
fn segments(count: usize) -> Vec<Draft> {
    let mut a = AccessUnitAssembler::new();
    a.push(STREAM).unwrap();
    a.finish().unwrap();
    let mut frames = Vec::new();
    while let Some(au) = a.pop() {
        frames.push(au.nals);
    }
    let mut t = now_ms() * 90;
    (0..count)
        .map(|_| {
            let mut b = SegmentBuilder::new(CAMERA, 1, None);
            for (i, nals) in frames.iter().take(25).enumerate() {
                b.push_video(nals, t, i == 0).unwrap();
                t += 3600;
            }
            b.finish(t).unwrap()
        })
        .collect()
}

/// Submits each segment and waits until it is committed (a `forget` of another camera is
/// done only after what was queued before it).
async fn write_each(
    writer: &Writer,
    drafts: Vec<Draft>,
    retention: Retention,
) -> Arc<Mutex<CamStatus>> {
    let status = Arc::new(Mutex::new(CamStatus::default()));
    for d in drafts {
        assert!(writer.submit(Job::new(d, retention, status.clone())));
        writer.forget("pc-zzzzzzzzzzzzzzzz").await.unwrap();
    }
    status
}

#[tokio::test]
async fn h626_6_1_9_full_store_tells_the_owner_once_a_minute() {
    let drafts = segments(6);
    let size = drafts[0].data.len() as u64;
    let root = tmp("disk-full");
    let mut cfg = StoreConfig::new(&root);
    cfg.min_free_bytes = 0;
    // Room for two and a half segments: the third makes the oldest go.
    cfg.disk_quota_bytes = size * 5 / 2;
    let (store, _) = Store::open(cfg).await.unwrap();
    let (tx, mut rx) = Writer::notices();
    let shutdown = Shutdown::new();
    let writer = Writer::start(store.clone(), shutdown.clone(), Some(tx));
    write_each(&writer, drafts, Retention::default()).await;
    let n = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        n,
        StorageFull {
            camera: CAMERA.into(),
            detail: "disk full, oldest deleted".into(),
        }
    );
    // Several segments went since, within the minute: no second notice.
    assert!(rx.try_recv().is_err());
    shutdown.trigger();
    drop(writer);
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn h626_6_1_9_camera_quota_tells_the_owner_once_per_stop() {
    let root = tmp("quota");
    let mut cfg = StoreConfig::new(&root);
    cfg.min_free_bytes = 0;
    let (store, _) = Store::open(cfg).await.unwrap();
    let (tx, mut rx) = Writer::notices();
    let shutdown = Shutdown::new();
    let writer = Writer::start(store.clone(), shutdown.clone(), Some(tx));
    let retention = Retention {
        quota_bytes: 1,
        cyclic: false,
        max_age_days: 0,
    };
    let status = write_each(&writer, segments(3), retention).await;
    assert!(lock(&status).full);
    let n = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.camera, CAMERA);
    assert_eq!(n.detail, "quota full, recording stopped");
    assert!(rx.try_recv().is_err(), "one notice per stop");
    shutdown.trigger();
    drop(writer);
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn h626_6_1_9_a_slow_owner_never_holds_the_writer_up() {
    let drafts = segments(8);
    let size = drafts[0].data.len() as u64;
    let root = tmp("slow-owner");
    let mut cfg = StoreConfig::new(&root);
    cfg.min_free_bytes = 0;
    cfg.disk_quota_bytes = size * 3 / 2;
    let (store, _) = Store::open(cfg).await.unwrap();
    // A full notice queue nobody reads: the writer goes on (the notice is dropped).
    let (tx, _rx) = mpsc::channel(1);
    tx.try_send(StorageFull {
        camera: "filler".into(),
        detail: String::new(),
    })
    .unwrap();
    let shutdown = Shutdown::new();
    let writer = Writer::start(store.clone(), shutdown.clone(), Some(tx));
    tokio::time::timeout(
        Duration::from_secs(20),
        write_each(&writer, drafts, Retention::default()),
    )
    .await
    .expect("the writer kept committing");
    shutdown.trigger();
    drop(writer);
    let _ = std::fs::remove_dir_all(&root);
}
