//! Issue 19, H.626.4 clause 7 (the CMU, several instances behind a load balancer): two CMU
//! instances on one database (one SQLite file, or one PostgreSQL database) share what
//! matters. Login failures split across the two count together; a play URL minted by one
//! instance is judged good by another that started after it (a restart keeps earlier URLs
//! valid: the token keys are stored); a token spent on one is refused on the other (8.4).
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use peercam_cu::Client;
use peercam_signal::cm::{PlayRequest, PlayResponse};
use peercam_test::{Balancer, Cluster, rtsp_describe};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_cmu_instances_share_tokens_and_limits_sqlite() {
    instances(Cluster::start(1).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_cmu_instances_share_tokens_and_limits_postgres() {
    let test = "h626_7_cmu_instances_share_tokens_and_limits_postgres";
    if let Some(c) = Cluster::start_postgres(1, test).await.unwrap() {
        instances(c).await;
    }
}

/// A play URL, once the camera has reported its media address to the CMU.
async fn play_when_reported(owner: &Client, dev: &str) -> PlayResponse {
    play_within(owner, dev, Duration::from_secs(5)).await
}

/// A play URL within `within`.
async fn play_within(owner: &Client, dev: &str, within: Duration) -> PlayResponse {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match owner.play(dev, &PlayRequest::default()).await {
            Ok(p) => return p,
            Err(e) if tokio::time::Instant::now() > deadline => {
                panic!("no play URL within {within:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits until a command reaches the camera (its node is linked to an instance that is up).
async fn command_within(owner: &Client, dev: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout(Duration::from_secs(1), owner.status(dev)).await {
            Ok(Ok(_)) => return,
            _ if tokio::time::Instant::now() > deadline => {
                panic!("no command reached the camera within {within:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_cmu_instances_share_presence_and_route_commands_sqlite() {
    shared_presence(Cluster::start(1).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_cmu_instances_share_presence_and_route_commands_postgres() {
    let test = "h626_7_cmu_instances_share_presence_and_route_commands_postgres";
    if let Some(c) = Cluster::start_postgres(1, test).await.unwrap() {
        shared_presence(c).await;
    }
}

/// Issue 19: the camera's node links to A; B sees the camera online, mints a play URL
/// with its addresses, and routes a command to it through A (over the bus).
async fn shared_presence(c: Cluster) {
    let b = c.start_another_cmu().await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let pu = c.start_pu_online(&ids[0], 0).await.unwrap();
    let dev = ids[0].device_id.to_string();
    // The owner works through B only: bind (the camera must be online), list, play, command.
    let on_b = b.client();
    let owner = c.owner("+15550719101").await.unwrap();
    let owner_b = on_b.with_token(owner.token().unwrap());
    c.bind(&owner_b, &ids[0]).await.unwrap();
    let seen = owner_b.devices().await.unwrap();
    let d = seen.iter().find(|d| d.id.as_str() == dev).unwrap();
    assert!(d.online, "B sees the camera online: {seen:?}");
    let play = play_when_reported(&owner_b, &dev).await;
    let (status, got) = rtsp_describe(&play.url).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&got));
    // A command through B reaches the camera through A's link, and its answer comes back.
    let started = std::time::Instant::now();
    let st = owner_b.status(&dev).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(!format!("{st:?}").is_empty());

    // 8.8 live alarms: a stream opened on B gets the `camera_offline` that A raises when
    // the camera goes (its node's presence notice reaches A only).
    let mut stream = alarm_stream(&b.api, &c.ca_pem, owner.token().unwrap()).await;
    pu.1.trigger();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut seen = String::new();
    while !seen.contains("camera_offline") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("no camera_offline on B's alarm stream: {seen}"))
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    b.stop().await;
    c.stop().await;
}

/// `GET /api/v1/alarms/stream` on the instance at `api`: the response, read by chunks.
async fn alarm_stream(api: &str, ca_pem: &[u8], token: &str) -> reqwest::Response {
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem).unwrap()])
        .build()
        .unwrap();
    let resp = http
        .get(format!("{api}/api/v1/alarms/stream"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_cmu_instance_killed_node_moves_sqlite() {
    killed(Cluster::start(0).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_cmu_instance_killed_node_moves_postgres() {
    let test = "h626_7_cmu_instance_killed_node_moves_postgres";
    if let Some(c) = Cluster::start_postgres(0, test).await.unwrap() {
        killed(c).await;
    }
}

/// Issue 19: the node links through a load balancer to instance A, which is killed (as by
/// `kill -9`); the node reconnects to the survivor and the camera is online and playable
/// through it within 5 s.
async fn killed(mut c: Cluster) {
    let a = c.start_crashable_cmu().await.unwrap();
    let lb = Balancer::start(vec![a.addr, c.cmu_addr]).await.unwrap();
    let scu = c.add_scu_to("scu-1", lb.addr).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let _pu = c.start_pu_online(&ids[0], scu).await.unwrap();
    let dev = ids[0].device_id.to_string();
    // The survivor serves the owner throughout; the camera is held through A.
    let owner = c.owner("+15550719201").await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    play_when_reported(&owner, &dev).await;
    owner.status(&dev).await.unwrap();

    a.crash();
    let killed_at = std::time::Instant::now();
    // A command needs the node's link: it works again once the node is on the survivor.
    let within = Duration::from_secs(5);
    command_within(&owner, &dev, within).await;
    let play = play_within(&owner, &dev, within.saturating_sub(killed_at.elapsed())).await;
    let (status, got) = rtsp_describe(&play.url).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&got));
    assert!(killed_at.elapsed() < within, "{:?}", killed_at.elapsed());
    let listed = owner.devices().await.unwrap();
    assert!(
        listed.iter().any(|d| d.id.as_str() == dev && d.online),
        "{listed:?}"
    );
    c.stop().await;
}

async fn instances(mut c: Cluster) {
    let ids = c.provision(1).await.unwrap();
    let _pu = c.start_pu_online(&ids[0], 0).await.unwrap();
    let owner = c.owner("+15550719001").await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let dev = ids[0].device_id.to_string();
    let first = play_when_reported(&owner, &dev).await;

    // A second instance on the same database.
    let b = c.start_another_cmu().await.unwrap();

    // Rate limits count across instances: five wrong passwords for one account from one
    // address, split across A and B, close the pair on both (6.1.1).
    let (on_a, on_b) = (c.client(), b.client());
    for i in 0..5 {
        let via = if i % 2 == 0 { &on_a } else { &on_b };
        let e = via
            .login("+15550719999", "wrong password")
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(401), "attempt {i}: {e}");
    }
    for via in [&on_b, &on_a] {
        let e = via
            .login("+15550719999", "wrong password")
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(429), "{e}");
    }
    // The session made on A is good on B (sessions are stored).
    let owner_b = b.client().with_token(owner.token().unwrap());
    let seen = owner_b.devices().await.unwrap();
    assert!(seen.iter().any(|d| d.id.as_str() == dev), "{seen:?}");

    // 8.4: URLs minted by A. One is used now (A judges it)...
    let second = owner.play(&dev, &PlayRequest::default()).await.unwrap();
    let (status, got) = rtsp_describe(&first.url).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&got));

    // ...then A goes and a new instance takes its address; the SCU reconnects to it.
    c.restart_cmu().await.unwrap();
    c.wait_online(&ids[0].device_id, true, Duration::from_secs(15))
        .await
        .unwrap();
    // Online is shared now; the node's link to the new instance is what the camera needs to
    // ask about a token: a command goes through once it is there.
    command_within(&owner, &dev, Duration::from_secs(10)).await;
    // The URL A minted and nobody used is judged good by the new instance.
    let (status, got) = rtsp_describe(&second.url).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&got));
    // The one spent on A is refused by the new instance: a replay.
    assert_eq!(rtsp_describe(&first.url).await.0, 401);
    // The restart lost no presence: the node announced its devices and their addresses
    // again, so the new instance mints URLs at once (docs/design/scale-out.md section 3).
    let third = play_within(&owner, &dev, Duration::from_secs(2)).await;
    let (status, got) = rtsp_describe(&third.url).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&got));

    b.stop().await;
    c.stop().await;
}

/// Issue 19: PostgreSQL (the store and the bus) restarts under two instances. Within 5 s of
/// its return, a command through B reaches the camera held through A (A listens again),
/// and a camera that registers through A afterwards is online and playable through B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_cmu_instances_recover_after_database_restart_postgres() {
    let test = "h626_7_cmu_instances_recover_after_database_restart_postgres";
    let Some(c) = Cluster::start_postgres(1, test).await.unwrap() else {
        return;
    };
    let b = c.start_another_cmu().await.unwrap();
    let ids = c.provision(2).await.unwrap();
    let _pu = c.start_pu_online(&ids[0], 0).await.unwrap();
    let owner = c.owner("+15550719301").await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let owner_b = b.client().with_token(owner.token().unwrap());
    let dev = ids[0].device_id.to_string();
    command_within(&owner_b, &dev, Duration::from_secs(5)).await;

    let db = c.postgres().unwrap().clone();
    tokio::task::spawn_blocking(move || db.restart_server())
        .await
        .unwrap();
    let back = std::time::Instant::now();
    let within = Duration::from_secs(5);
    // Routing: B's request reaches A over the bus again.
    command_within(&owner_b, &dev, within).await;
    // Presence: a camera that comes online now is seen by B, with its addresses.
    let _pu2 = c.start_pu(&ids[1], 0).await.unwrap();
    let dev2 = ids[1].device_id.to_string();
    // Bound through B: B must see it online (8.2).
    while let Err(e) = c.bind(&owner_b, &ids[1]).await {
        assert!(back.elapsed() < within, "not bound through B in 5 s: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let play = play_within(&owner_b, &dev2, within.saturating_sub(back.elapsed())).await;
    let (status, got) = rtsp_describe(&play.url).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&got));
    assert!(back.elapsed() < within, "{:?}", back.elapsed());
    b.stop().await;
    c.stop().await;
}
