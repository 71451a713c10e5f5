//! H.626.4 8.2 device binding: success only for a registered, online device not bound to
//! anyone else, and only with its bind code.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use peercam_signal::cm::Relation;
use peercam_test::Cluster;

#[tokio::test]
async fn h626_8_2_bind_succeeds_then_refuses_every_bad_case() {
    bind_succeeds_then_refuses_every_bad_case(Cluster::start(1).await.unwrap()).await;
}

#[tokio::test]
async fn h626_8_2_bind_succeeds_then_refuses_every_bad_case_postgres() {
    if let Some(c) = Cluster::start_postgres(
        1,
        "h626_8_2_bind_succeeds_then_refuses_every_bad_case_postgres",
    )
    .await
    .unwrap()
    {
        bind_succeeds_then_refuses_every_bad_case(c).await;
    }
}

async fn bind_succeeds_then_refuses_every_bad_case(c: Cluster) {
    let ids = c.provision(3).await.unwrap();
    let (online, unregistered, offline) = (&ids[0], &ids[1], &ids[2]);
    let (_p0, _s0) = c.start_pu_online(online, 0).await.unwrap();
    let (_p2, s2) = c.start_pu_online(offline, 0).await.unwrap();
    s2.trigger();
    c.wait_online(&offline.device_id, false, Duration::from_secs(5))
        .await
        .unwrap();

    let alice = c.owner("+15550300001").await.unwrap();
    let bob = c.owner("+15550300002").await.unwrap();

    // Wrong bind code and unknown id give the same answer (no enumeration of device ids).
    let wrong = alice
        .bind(online.device_id.as_str(), "0000-0000-0000", None)
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Some("unknown_device_or_code"));
    let unknown = alice
        .bind("pc-0000000000000000", &online.bind_code.display(), None)
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Some("unknown_device_or_code"));
    assert_eq!(format!("{wrong}"), format!("{unknown}"));
    let garbage = alice.bind("../../etc/passwd", "x", None).await.unwrap_err();
    assert_eq!(garbage.code(), Some("unknown_device_or_code"));

    // With the right code, the CMU says which check failed (8.2 step 3).
    let e = alice
        .bind(
            unregistered.device_id.as_str(),
            &unregistered.bind_code.display(),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("not_registered"));
    let e = alice
        .bind(
            offline.device_id.as_str(),
            &offline.bind_code.display(),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("device_offline"));

    // Success: the code is accepted in any case and without dashes.
    let code = online.bind_code.display().replace('-', "").to_lowercase();
    let d = alice
        .bind(online.device_id.as_str(), &code, Some("Porch"))
        .await
        .unwrap();
    assert_eq!(d.relation, Relation::Owner);
    assert_eq!(d.name, "Porch");
    assert!(d.online);
    assert_eq!(alice.devices().await.unwrap().len(), 1);

    // Already bound: to someone else, and to oneself.
    let e = bob
        .bind(online.device_id.as_str(), &online.bind_code.display(), None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("already_bound"));
    let e = alice
        .bind(online.device_id.as_str(), &online.bind_code.display(), None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("already_yours"));
    assert!(bob.devices().await.unwrap().is_empty());

    // After unbinding, Bob may bind it (he holds the sticker now).
    alice.unbind(online.device_id.as_str()).await.unwrap();
    assert!(alice.devices().await.unwrap().is_empty());
    bob.bind(online.device_id.as_str(), &online.bind_code.display(), None)
        .await
        .unwrap();
    // Alice, the previous owner, no longer reaches it at all.
    let e = alice.device(online.device_id.as_str()).await.unwrap_err();
    assert_eq!(e.code(), Some("not_found"));
    c.stop().await;
}

#[tokio::test]
async fn h626_8_2_bind_guessing_is_throttled() {
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let mallory = c.owner("+15550300009").await.unwrap();
    let mut limited = false;
    for _ in 0..15 {
        if let Err(e) = mallory
            .bind(ids[0].device_id.as_str(), "AAAA-BBBB-CCCC", None)
            .await
            && e.code() == Some("rate_limited")
        {
            limited = true;
            break;
        }
    }
    assert!(limited, "bind attempts must be rate limited");
    c.stop().await;
}

#[tokio::test]
async fn h626_8_2_sub_accounts_and_operators_cannot_bind() {
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let (_p, _s) = c.start_pu_online(&ids[0], 0).await.unwrap();
    let alice = c.owner("+15550300011").await.unwrap();
    let sub = c.sub(&alice, "kid").await.unwrap();
    let e = sub
        .bind(ids[0].device_id.as_str(), &ids[0].bind_code.display(), None)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403));
    let e = c
        .admin
        .bind(ids[0].device_id.as_str(), &ids[0].bind_code.display(), None)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403));
    c.stop().await;
}
