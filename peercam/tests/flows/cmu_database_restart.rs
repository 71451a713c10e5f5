//! The CMU on PostgreSQL when the database server restarts (issue 19): requests in flight
//! fail with a clear 503, never a 500, and succeed when tried again once it is back; the
//! cameras stay online (presence lives in the CMU's memory) and play URLs are minted again.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use peercam_signal::cm::PlayRequest;
use peercam_test::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmu_answers_503_then_recovers_when_the_database_restarts_postgres() {
    let Some(c) = Cluster::start_postgres(
        1,
        "cmu_answers_503_then_recovers_when_the_database_restarts_postgres",
    )
    .await
    .unwrap() else {
        return;
    };
    let ids = c.provision(1).await.unwrap();
    let (_pu, _sd) = c.start_pu_online(&ids[0], 0).await.unwrap();
    let owner = c.owner("+15551900001").await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let dev = ids[0].device_id.to_string();
    assert_eq!(owner.devices().await.unwrap().len(), 1);

    // Requests keep coming while the server restarts.
    let pg = c.postgres().unwrap().clone();
    let restart = tokio::task::spawn_blocking(move || pg.restart_server());
    let (mut ok, mut refused) = (0, 0);
    while !restart.is_finished() {
        match owner.devices().await {
            Ok(list) => {
                assert_eq!(list.len(), 1);
                ok += 1;
            }
            Err(e) => {
                assert_eq!(e.status(), Some(503), "{e}");
                assert!(matches!(e.code(), Some("unavailable" | "busy")), "{e}");
                refused += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    restart.await.unwrap();

    // Back within seconds: reads, a write (the play token's audit) and the camera online.
    let start = Instant::now();
    let play = loop {
        match owner.play(&dev, &PlayRequest::default()).await {
            Ok(p) => break p,
            Err(e) if e.status() == Some(503) && start.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("after the restart ({ok} ok, {refused} refused during it): {e}"),
        }
    };
    assert!(play.url.starts_with("rtsp://"), "{}", play.url);
    let d = owner.device(&dev).await.unwrap();
    assert!(d.online, "the camera stayed online");
    c.stop().await;
}
