//! H.626.4 8.6 media share: an owner shares a device with a sub-account, with scopes.
#![allow(clippy::unwrap_used, missing_docs)]

use peercam_base::{Scope, ScopeSet};
use peercam_signal::cm::Relation;
use peercam_test::Cluster;

#[tokio::test]
async fn h626_8_6_share_scopes_and_unshare() {
    share_scopes_and_unshare(Cluster::start(1).await.unwrap()).await;
}

#[tokio::test]
async fn h626_8_6_share_scopes_and_unshare_postgres() {
    if let Some(c) = Cluster::start_postgres(1, "h626_8_6_share_scopes_and_unshare_postgres")
        .await
        .unwrap()
    {
        share_scopes_and_unshare(c).await;
    }
}

async fn share_scopes_and_unshare(c: Cluster) {
    let ids = c.provision(2).await.unwrap();
    let (_p0, _s0) = c.start_pu_online(&ids[0], 0).await.unwrap();
    let (_p1, _s1) = c.start_pu_online(&ids[1], 0).await.unwrap();
    let alice = c.owner("+15550400001").await.unwrap();
    c.bind(&alice, &ids[0]).await.unwrap();
    c.bind(&alice, &ids[1]).await.unwrap();
    let kid = c.sub(&alice, "kid").await.unwrap();
    let d0 = ids[0].device_id.as_str();
    let d1 = ids[1].device_id.as_str();

    // Nothing is shared yet: the sub-account sees nothing and reaches nothing.
    assert!(kid.devices().await.unwrap().is_empty());
    assert_eq!(kid.device(d0).await.unwrap_err().code(), Some("not_found"));

    // Share D0 with the live scope only (8.6 steps 1-3).
    let s = alice
        .share(d0, "kid", [Scope::Live].into_iter().collect())
        .await
        .unwrap();
    assert_eq!(s.scopes, [Scope::Live].into_iter().collect::<ScopeSet>());
    let list = kid.devices().await.unwrap();
    assert_eq!(list.len(), 1, "only the shared device appears");
    assert_eq!(list[0].id.as_str(), d0);
    assert_eq!(list[0].relation, Relation::Shared);
    assert!(list[0].scopes.contains(Scope::Live) && !list[0].scopes.contains(Scope::Config));
    assert_eq!(kid.device(d1).await.unwrap_err().code(), Some("not_found"));

    // Outside its scopes: status needs `config`; sharing, renaming, unbinding need ownership.
    let e = kid.status(d0).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(403), Some("forbidden")));
    assert_eq!(
        kid.share(d0, "kid", ScopeSet::all())
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    assert_eq!(kid.unbind(d0).await.unwrap_err().status(), Some(403));
    assert_eq!(
        kid.rename(d0, "mine").await.unwrap_err().status(),
        Some(403)
    );
    assert_eq!(kid.shares(d0).await.unwrap_err().status(), Some(403));

    // Widening the share to `config` lets the status request through, to the device and back.
    alice
        .share(
            d0,
            "kid",
            [Scope::Live, Scope::Config].into_iter().collect(),
        )
        .await
        .unwrap();
    let st = kid.status(d0).await.unwrap();
    assert_eq!(st.id.as_str(), d0);

    // Unshare is immediate.
    alice.unshare(d0, "kid").await.unwrap();
    assert!(kid.devices().await.unwrap().is_empty());
    assert_eq!(kid.device(d0).await.unwrap_err().code(), Some("not_found"));
    assert_eq!(kid.status(d0).await.unwrap_err().code(), Some("not_found"));
    assert_eq!(
        alice.unshare(d0, "kid").await.unwrap_err().code(),
        Some("no_share")
    );

    // An owner cannot share with someone else's sub-account, nor share a device it does not own.
    let bob = c.owner("+15550400002").await.unwrap();
    let _bobs_kid = c.sub(&bob, "bobkid").await.unwrap();
    assert_eq!(
        alice
            .share(d0, "bobkid", ScopeSet::all())
            .await
            .unwrap_err()
            .code(),
        Some("no_subaccount")
    );
    assert_eq!(
        bob.share(d0, "bobkid", ScopeSet::all())
            .await
            .unwrap_err()
            .code(),
        Some("not_found")
    );
    c.stop().await;
}

#[tokio::test]
async fn h626_8_6_unbind_and_subaccount_deletion_end_shares() {
    unbind_and_subaccount_deletion_end_shares(Cluster::start(1).await.unwrap()).await;
}

#[tokio::test]
async fn h626_8_6_unbind_and_subaccount_deletion_end_shares_postgres() {
    if let Some(c) = Cluster::start_postgres(
        1,
        "h626_8_6_unbind_and_subaccount_deletion_end_shares_postgres",
    )
    .await
    .unwrap()
    {
        unbind_and_subaccount_deletion_end_shares(c).await;
    }
}

async fn unbind_and_subaccount_deletion_end_shares(c: Cluster) {
    let ids = c.provision(1).await.unwrap();
    let (_p0, _s0) = c.start_pu_online(&ids[0], 0).await.unwrap();
    let alice = c.owner("+15550400011").await.unwrap();
    c.bind(&alice, &ids[0]).await.unwrap();
    let d0 = ids[0].device_id.as_str();
    let kid = c.sub(&alice, "kid2").await.unwrap();
    alice.share(d0, "kid2", ScopeSet::all()).await.unwrap();
    assert_eq!(kid.devices().await.unwrap().len(), 1);
    alice.unbind(d0).await.unwrap();
    assert!(kid.devices().await.unwrap().is_empty());
    // Rebinding does not bring old shares back.
    c.bind(&alice, &ids[0]).await.unwrap();
    assert!(kid.devices().await.unwrap().is_empty());
    alice.share(d0, "kid2", ScopeSet::all()).await.unwrap();
    alice.delete_subaccount("kid2").await.unwrap();
    // The deleted sub-account's session is gone with it.
    assert_eq!(kid.devices().await.unwrap_err().status(), Some(401));
    assert!(alice.shares(d0).await.unwrap().is_empty());
    c.stop().await;
}
