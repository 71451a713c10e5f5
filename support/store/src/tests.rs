//! Store tests on a real directory and a real SQLite index.

use std::path::PathBuf;

use peercam_media::annexb::AccessUnitAssembler;
use peercam_media::mp4::Movie;
use peercam_record::strategy::Retention;

use super::*;

const STREAM: &[u8] =
    include_bytes!("../../../proto/media/testdata/x264_baseline_320x180_25fps_50f.h264");
/// 2026-11-23T00:00:00Z in 90 kHz ticks.
const T0: u64 = 1_795_392_000_000 * 90;

fn frames() -> Vec<(Vec<Vec<u8>>, bool)> {
    let mut a = AccessUnitAssembler::new();
    a.push(STREAM).unwrap();
    a.finish().unwrap();
    let mut out = Vec::new();
    while let Some(au) = a.pop() {
        let key = au.is_key();
        out.push((au.nals, key));
    }
    out
}

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("peercam-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

/// Segments of 25 frames (1 s at 25 fps) from the fixture, looped, with G.711 audio.
fn drafts(camera: &str, run: i64, start_90k: u64, count: usize) -> Vec<Draft> {
    let fr = frames();
    let keys: Vec<usize> = fr
        .iter()
        .enumerate()
        .filter(|(_, f)| f.1)
        .map(|(i, _)| i)
        .collect();
    assert!(!keys.is_empty());
    let mut out = Vec::new();
    let mut t = start_90k;
    for s in 0..count {
        let mut b = SegmentBuilder::new(camera, run, Some(AudioCodec::Pcmu));
        // Each segment replays the fixture from its first IDR for 25 frames.
        for i in 0..25 {
            let (nals, _) = &fr[(keys[0] + i) % fr.len()];
            let key = i == 0;
            b.push_video(nals, t, key).unwrap();
            assert!(b.push_audio(&[0xff; 320], to_8k(t)));
            t += 3600;
        }
        let _ = s;
        out.push(b.finish(t).unwrap());
    }
    out
}

#[tokio::test]
async fn h626_8_7_2_commit_read_search_and_export() {
    let root = tmp("basic");
    let (store, report) = Store::open(StoreConfig::new(&root)).await.unwrap();
    assert_eq!(report, RepairReport::default());
    let run = 1;
    let results = store.commit(drafts("cam-1", run, T0, 4)).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    // A second run after a 10 s gap.
    let run2 = 2;
    let later = T0 + 14 * 90_000;
    assert!(
        store
            .commit(drafts("cam-1", run2, later, 2))
            .await
            .iter()
            .all(Result::is_ok)
    );

    let t0_ms = T0 / 90;
    let spans = store
        .spans("cam-1", t0_ms, t0_ms + 3_600_000)
        .await
        .unwrap();
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert_eq!((spans[0].start_ms, spans[0].end_ms), (t0_ms, t0_ms + 4000));
    assert_eq!(
        (spans[1].start_ms, spans[1].end_ms),
        (t0_ms + 14_000, t0_ms + 16_000)
    );
    assert!(
        store
            .spans("cam-2", 0, u64::MAX / 100)
            .await
            .unwrap()
            .is_empty()
    );

    let segs = store
        .segments("cam-1", t0_ms + 1500, t0_ms + 2500)
        .await
        .unwrap();
    assert_eq!(segs.len(), 2);
    let media = store.read(&segs[0]).await.unwrap();
    assert_eq!(media.video.len(), 25);
    assert!(media.video[0].key);
    assert_eq!(media.audio.len(), 25);
    assert_eq!(media.video[1].t90k, segs[0].start_90k + 3600);

    // Export 1.5 s .. 3.5 s: starts at the IDR at 1.0 s, ends before 3.5 s.
    let out = root.join("clip.mp4");
    let mut calls = 0;
    let sum = export_mp4(&store, "cam-1", t0_ms + 1500, t0_ms + 3500, &out, |_, _| {
        calls += 1
    })
    .await
    .unwrap();
    assert_eq!(calls, 3);
    assert_eq!(sum.start_ms, t0_ms + 1000);
    assert_eq!(sum.frames, 63, "1.00 s .. 3.48 s at 25 fps");
    let file = std::fs::read(&out).unwrap();
    let movie = Movie::parse(&file).unwrap();
    let v = movie.video().unwrap();
    assert_eq!(v.sample_count(), 63);
    assert_eq!(v.sync_count(), 3);
    assert!(movie.audio().is_some());
    assert!(matches!(
        export_mp4(&store, "cam-1", t0_ms + 5000, t0_ms + 9000, &out, |_, _| {}).await,
        Err(StoreError::Empty { .. })
    ));

    let (n, problems) = store.check().await.unwrap();
    assert_eq!((n, problems), (6, vec![]));
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn h626_8_7_2_open_repairs_to_the_invariants() {
    let root = tmp("repair");
    let (store, _) = Store::open(StoreConfig::new(&root)).await.unwrap();
    let run = 1;
    assert!(
        store
            .commit(drafts("cam-1", run, T0, 3))
            .await
            .iter()
            .all(Result::is_ok)
    );
    let segs = store.segments("cam-1", 0, u64::MAX / 100).await.unwrap();
    drop(store);
    // A write that never committed (crash between fsync and commit) ...
    let orphan = root.join("segments/cam-1/ffffffffffffffff-1.seg");
    std::fs::write(&orphan, b"half a segment").unwrap();
    // ... and an acknowledged file damaged behind our back.
    let damaged = root.join(&segs[1].path);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&damaged)
        .unwrap();
    f.set_len(10).unwrap();
    drop(f);

    let (store, report) = Store::open(StoreConfig::new(&root)).await.unwrap();
    // The interrupted write, and the damaged file once its row was dropped.
    assert_eq!(report.orphans_removed, 2);
    assert_eq!(report.rows_dropped.len(), 1, "{report:?}");
    assert_eq!(report.segments, 2);
    assert!(!orphan.exists());
    let (n, problems) = store.check().await.unwrap();
    assert_eq!((n, problems), (2, vec![]));
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn h626_8_7_2_retention_cyclic_overwrites_and_stop_when_full_reports() {
    let root = tmp("retain");
    let (store, _) = Store::open(StoreConfig::new(&root)).await.unwrap();
    let run = 1;
    assert!(
        store
            .commit(drafts("cam-1", run, T0, 5))
            .await
            .iter()
            .all(Result::is_ok)
    );
    let per = store.usage(Some("cam-1")).await.unwrap() / 5;
    let cyclic = Retention {
        quota_bytes: per * 3,
        cyclic: true,
        max_age_days: 0,
    };
    let r = store.retain("cam-1", &cyclic, T0 / 90).await.unwrap();
    assert_eq!((r.deleted, r.full), (2, false));
    let left = store.segments("cam-1", 0, u64::MAX / 100).await.unwrap();
    assert_eq!(left.len(), 3);
    assert_eq!(left[0].start_90k, T0 + 2 * 90_000, "the oldest went first");
    let stop = Retention {
        quota_bytes: per * 2,
        cyclic: false,
        max_age_days: 0,
    };
    let r = store.retain("cam-1", &stop, T0 / 90).await.unwrap();
    assert_eq!((r.deleted, r.full), (0, true));
    // Max age: a day later everything goes.
    let aged = Retention {
        quota_bytes: 0,
        cyclic: true,
        max_age_days: 1,
    };
    let r = store
        .retain("cam-1", &aged, T0 / 90 + 86_400_000 + 10_000)
        .await
        .unwrap();
    assert_eq!(r.deleted, 3);
    assert_eq!(store.usage(None).await.unwrap(), 0);
    // A disk-wide quota makes room from the oldest, across cameras.
    let mut cfg = StoreConfig::new(&root);
    cfg.disk_quota_bytes = per * 4;
    cfg.min_free_bytes = 0;
    drop(store);
    let (store, _) = Store::open(cfg).await.unwrap();
    let r1 = 1;
    let r2 = 2;
    assert!(
        store
            .commit(drafts("cam-1", r1, T0, 2))
            .await
            .iter()
            .all(Result::is_ok)
    );
    assert!(
        store
            .commit(drafts("cam-2", r2, T0 + 90_000, 2))
            .await
            .iter()
            .all(Result::is_ok)
    );
    let r = store.make_room(per).await.unwrap();
    assert_eq!(r.deleted, 1);
    assert!(store.segments("cam-1", 0, u64::MAX / 100).await.unwrap()[0].start_90k > T0);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn h626_8_7_2_segments_start_at_an_idr() {
    let fr = frames();
    let p = fr.iter().find(|f| !f.1).unwrap();
    let mut b = SegmentBuilder::new("cam", 1, None);
    assert!(b.push_video(&p.0, T0, false).is_err());
    assert!(b.is_empty());
    assert!(b.finish(T0).is_none());
    assert!(!valid_camera("../etc"));
    assert!(valid_camera("pc-0123456789abcdef"));
}

/// Issue 16: a segment whose audio is AAC keeps its AudioSpecificConfig in the index and its
/// access units as chunks; the export writes an `mp4a` track at the AAC's rate; the index
/// column reads G.711 names as before and an unknown name as no audio.
#[tokio::test]
async fn h626_6_1_8_aac_segments_keep_their_config_and_export_mp4a() {
    use peercam_rtp::aac::AacConfig;
    let root = tmp("aac");
    let (store, _) = Store::open(StoreConfig::new(&root)).await.unwrap();
    let aac = AacConfig::aac_lc(16_000, 1).unwrap();
    let fr = frames();
    let mut b = SegmentBuilder::new("cam-a", 1, Some(AudioCodec::Pcmu)).with_aac(Some(aac.clone()));
    let mut t = T0;
    let mut next_au = to_8k(T0);
    let first_key = fr.iter().position(|f| f.1).unwrap();
    for (nals, key) in fr.iter().cycle().skip(first_key).take(50) {
        b.push_video(nals, t, *key).unwrap();
        // 1024 samples at 16 kHz: 512 ticks of 8 kHz per access unit.
        while next_au <= to_8k(t) {
            assert!(b.push_audio(&[0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c], next_au));
            next_au += 512;
        }
        t += 3600;
    }
    let draft = b.finish(t).unwrap();
    assert_eq!((draft.audio, draft.aac.as_ref()), (None, Some(&aac)));
    assert!(store.commit(vec![draft]).await.iter().all(Result::is_ok));
    let rows = store.segments("cam-a", 0, u64::MAX / 90).await.unwrap();
    assert_eq!((rows[0].audio, rows[0].aac.as_ref()), (None, Some(&aac)));
    let media = store.read(&rows[0]).await.unwrap();
    assert!(
        media.audio.len() >= 30,
        "{} access units",
        media.audio.len()
    );

    let out = root.join("aac.mp4");
    let t0_ms = T0 / 90;
    export_mp4(&store, "cam-a", t0_ms, t0_ms + 2000, &out, |_, _| {})
        .await
        .unwrap();
    let movie = Movie::parse(&std::fs::read(&out).unwrap()).unwrap();
    let a = movie.audio().unwrap();
    assert_eq!(a.timescale, 16_000);
    assert!(matches!(
        &a.entry,
        peercam_media::mp4::SampleEntry::Audio { format, channels: 1, sample_rate: 16_000, .. }
            if format.0 == *b"mp4a"
    ));
    assert!(a.sample_count() >= 28, "{} AAC samples", a.sample_count());

    // The column: G.711 names as before; AAC with its config; anything else is no audio.
    use crate::segment::{audio_column, parse_audio_column};
    for codec in [AudioCodec::Pcmu, AudioCodec::Pcma] {
        let col = audio_column(Some(codec), None);
        assert_eq!(parse_audio_column(col.as_deref()), (Some(codec), None));
    }
    let col = audio_column(None, Some(&aac)).unwrap();
    assert_eq!(col, "mpeg4-generic;config=1408");
    assert_eq!(parse_audio_column(Some(&col)), (None, Some(aac)));
    assert_eq!(
        parse_audio_column(Some("PCMU")),
        (Some(AudioCodec::Pcmu), None)
    );
    assert_eq!(parse_audio_column(Some("opus")), (None, None));
    assert_eq!(parse_audio_column(None), (None, None));
    let _ = std::fs::remove_dir_all(&root);
}

/// A sample as the tests compare it: (bytes, decode time, duration, sync).
type SampleSeen = (Vec<u8>, u64, u32, bool);

/// The samples of each track of an MP4 file.
fn samples_of(file: &[u8]) -> Vec<Vec<SampleSeen>> {
    let movie = Movie::parse(file).unwrap();
    movie
        .tracks
        .iter()
        .map(|t| {
            t.samples()
                .map(|s| {
                    let at = s.offset as usize;
                    (
                        file[at..at + s.size as usize].to_vec(),
                        s.dts,
                        s.duration,
                        s.is_sync,
                    )
                })
                .collect()
        })
        .collect()
}

/// A store with 4 + 2 segments of the fixture with G.711 audio (a 10 s gap between runs).
async fn two_runs(name: &str) -> (Store, PathBuf) {
    let root = tmp(name);
    let (store, _) = Store::open(StoreConfig::new(&root)).await.unwrap();
    assert!(
        store
            .commit(drafts("cam-1", 1, T0, 4))
            .await
            .iter()
            .all(Result::is_ok)
    );
    let later = T0 + 14 * 90_000;
    assert!(
        store
            .commit(drafts("cam-1", 2, later, 2))
            .await
            .iter()
            .all(Result::is_ok)
    );
    (store, root)
}

#[tokio::test]
async fn h626_8_7_2_export_plan_holds_the_writers_samples() {
    let (store, root) = two_runs("plan-same").await;
    let t0_ms = T0 / 90;
    // Whole span, a cut inside a GOP at both ends, a cut across the gap, one frame.
    for (from, to) in [
        (0, 20_000),
        (1500, 3500),
        (1_020, 1_100),
        (2_999, 15_020),
        (3_990, 4_000),
    ] {
        let (from, to) = (t0_ms + from, t0_ms + to);
        let old = root.join("old.mp4");
        let new = root.join("new.mp4");
        let a = export_mp4(&store, "cam-1", from, to, &old, |_, _| {})
            .await
            .unwrap();
        let plan = store.plan_export("cam-1", from, to).await.unwrap();
        let b = plan.write_file(&new, |_, _| {}).unwrap();
        let (old, new) = (std::fs::read(&old).unwrap(), std::fs::read(&new).unwrap());
        assert_eq!(b.bytes, new.len() as u64);
        assert_eq!(
            (a.frames, a.start_ms, a.end_ms),
            (b.frames, b.start_ms, b.end_ms)
        );
        // The same boxes, moov moved to the front; the streamed file's `mdat` header is the
        // 64-bit one (its size was unknown when it was written).
        assert_eq!(old.len(), new.len() + 8);
        assert_eq!(samples_of(&old), samples_of(&new), "cut {from}..{to}");
        // moov before mdat: the head alone describes the file.
        let movie = Movie::parse(&new).unwrap();
        let head_len = plan.pieces[1].0;
        for t in &movie.tracks {
            for s in t.samples() {
                assert!(s.offset >= head_len);
            }
        }
        // The same bytes through the reading path (TLS, HTTP bodies).
        let mut read = Vec::new();
        plan.read_range(0, plan.len(), |b| {
            read.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        assert!(read == new);
    }
    assert!(matches!(
        store.plan_export("cam-1", t0_ms + 5000, t0_ms + 9000).await,
        Err(StoreError::Empty { .. })
    ));
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn h626_8_7_2_export_plan_refuses_a_missing_or_truncated_segment() {
    let (store, root) = two_runs("plan-missing").await;
    let t0_ms = T0 / 90;
    let segs = store.segments("cam-1", t0_ms, t0_ms + 4000).await.unwrap();
    let victim = root.join(&segs[1].path);
    let keep = std::fs::read(&victim).unwrap();

    // Truncated before planning: a clear error, no file.
    std::fs::write(&victim, &keep[..keep.len() / 2]).unwrap();
    let e = store
        .plan_export("cam-1", t0_ms, t0_ms + 4000)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Corrupt(m) if m.contains(&segs[1].path)),
        "{e}"
    );
    // Missing.
    std::fs::remove_file(&victim).unwrap();
    let e = store
        .plan_export("cam-1", t0_ms, t0_ms + 4000)
        .await
        .unwrap_err();
    assert!(matches!(&e, StoreError::Io { op: "open", .. }), "{e}");

    // Truncated after planning, while writing: an error and no partial file left.
    std::fs::write(&victim, &keep).unwrap();
    let plan = store
        .plan_export("cam-1", t0_ms, t0_ms + 4000)
        .await
        .unwrap();
    std::fs::write(&victim, &keep[..100]).unwrap();
    let out = root.join("out.mp4");
    let e = plan.write_file(&out, |_, _| {}).unwrap_err();
    assert!(
        matches!(&e, StoreError::Corrupt(m) if m.contains("segment file ends")),
        "{e}"
    );
    assert!(!out.exists());
    let e = plan.read_range(0, plan.len(), |_| Ok(())).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt(_)), "{e}");
    std::fs::write(&victim, &keep).unwrap();
    let _ = std::fs::remove_dir_all(&root);
}

mod plan_props {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Any cut: the pieces add up to the announced length, which is the written file's;
        /// every file range lies inside its segment file; any byte range reads back as
        /// that part of the file.
        #[test]
        fn h626_8_7_2_plan_length_matches_file_and_ranges_are_in_bounds(
            from in 0u64..16_000,
            len in 1u64..17_000,
            a in 0u64..1_000_000,
            b in 0u64..1_000_000,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let (store, root) = two_runs("plan-prop").await;
                let t0_ms = T0 / 90;
                match store.plan_export("cam-1", t0_ms + from, t0_ms + from + len).await {
                    Err(StoreError::Empty { .. }) => {}
                    Err(e) => panic!("{e}"),
                    Ok(plan) => {
                        let sum: u64 = plan.pieces.iter().map(|(_, p)| p.len()).sum();
                        assert_eq!(sum, plan.len());
                        let mut at = 0;
                        for (pos, p) in &plan.pieces {
                            assert_eq!(*pos, at);
                            assert!(!p.is_empty());
                            at += p.len();
                            if let Piece::File { file, offset, len } = *p {
                                assert!(offset + len <= plan.files[file].1);
                            }
                        }
                        let out = root.join("p.mp4");
                        plan.write_file(&out, |_, _| {}).unwrap();
                        let file = std::fs::read(&out).unwrap();
                        assert_eq!(file.len() as u64, plan.len());
                        let (s, e) = (a % plan.len(), b % (plan.len() + 1));
                        let (s, e) = (s.min(e), s.max(e));
                        let mut got = Vec::new();
                        plan.read_range(s, e, |b| { got.extend_from_slice(b); Ok(()) }).unwrap();
                        assert!(got == file[s as usize..e as usize]);
                    }
                }
                let _ = std::fs::remove_dir_all(&root);
            });
        }
    }
}
