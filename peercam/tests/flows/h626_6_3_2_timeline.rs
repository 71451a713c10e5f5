//! One timeline over a camera's recorders (H.626.4 6.3.2; docs/design/cloud-storage.md "One
//! timeline over SD card, NVR and cloud"): the camera records on its SD card and on an NVR;
//! the record list without `recorder` names, per span, the recorders holding it, nearest
//! first (the NVR before the card); with the NVR gone it answers within its deadline with
//! the card's spans and the NVR marked unreachable.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use peercam_signal::ps::DeviceKind;
use peercam_signal::record::{Mode, Strategy};
use peercam_test::{Cluster, new_identity};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_3_2_one_timeline_over_card_and_nvr() {
    let c = Cluster::start(1).await.unwrap();
    let pu = c.provision(1).await.unwrap().remove(0);
    let nvr = new_identity(DeviceKind::Nvr);
    c.provision_these(std::slice::from_ref(&nvr)).await.unwrap();
    let _pu = c.start_pu_online(&pu, 0).await.unwrap();
    let (_nvr_run, nvr_sd) = c.start_nvr_with(&nvr, 0, |_| {}).await.unwrap();
    c.wait_online(&nvr.device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    let owner = c.owner("+15550632001").await.unwrap();
    c.bind(&owner, &pu).await.unwrap();
    c.bind(&owner, &nvr).await.unwrap();
    let (cam, rec) = (pu.device_id.as_str(), nvr.device_id.as_str());
    owner
        .set_params(cam, |p| {
            p.video.max_resolution = peercam_signal::control::Resolution::Cif;
        })
        .await
        .unwrap();
    owner.attach_camera(rec, cam).await.unwrap();
    let continuous = Strategy {
        mode: Mode::Continuous,
        ..Strategy::default()
    };
    owner
        .set_recording(cam, Some(rec), &continuous)
        .await
        .unwrap();
    owner
        .set_recording(cam, Some("sd"), &continuous)
        .await
        .unwrap();

    // Both hold some seconds: a span names both, the NVR first.
    let nvr_name = format!("nvr:{rec}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let t = loop {
        let now = now_ms();
        let t = owner
            .timeline(cam, now - 600_000, now + 60_000)
            .await
            .unwrap();
        let both = t.spans.iter().any(|s| {
            s.sources == [nvr_name.clone(), "sd".to_owned()] && s.end_ms - s.start_ms >= 4000
        });
        if both {
            break t;
        }
        assert!(tokio::time::Instant::now() < deadline, "{t:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        t.recorders.iter().all(|r| r.state == "ok") && t.recorders.len() == 2,
        "{:?}",
        t.recorders
    );
    for w in t.spans.windows(2) {
        assert!(w[0].end_ms <= w[1].start_ms, "{:?}", t.spans);
    }
    // Each span's sources are exactly the recorders whose own lists cover it.
    let now = now_ms();
    let (from, to) = (now - 600_000, now + 60_000);
    let by_nvr = owner.recordings(cam, Some(rec), from, to).await.unwrap();
    let covers = |l: &peercam_signal::record::RecordingList, m: u64| {
        l.spans.iter().any(|s| s.start_ms <= m && m < s.end_ms)
    };
    let s = t.spans.iter().find(|s| s.sources.len() == 2).unwrap();
    assert!(
        covers(&by_nvr, (s.start_ms + s.end_ms) / 2),
        "{s:?} {by_nvr:?}"
    );
    // An old client reads the answer as a record list.
    let old = owner.recordings(cam, None, from, to).await.unwrap();
    assert!(!old.spans.is_empty());

    // The NVR goes: the timeline answers within its 2 s deadline, from the card alone.
    nvr_sd.trigger();
    c.wait_online(&nvr.device_id, false, Duration::from_secs(10))
        .await
        .unwrap();
    let t0 = tokio::time::Instant::now();
    let now = now_ms();
    let t = owner
        .timeline(cam, now - 600_000, now + 60_000)
        .await
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    let nvr_state = t
        .recorders
        .iter()
        .find(|r| r.recorder == nvr_name)
        .map(|r| r.state.as_str());
    assert_eq!(nvr_state, Some("unreachable"), "{:?}", t.recorders);
    assert!(!t.spans.is_empty());
    assert!(t.spans.iter().all(|s| s.sources == ["sd"]), "{:?}", t.spans);
}
