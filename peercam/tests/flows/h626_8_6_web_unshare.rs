//! H.626.4 8.6 and docs/security.md D5 in the browser: a sub-account watching a shared camera in
//! the web client is cut off when the owner unshares, and cannot play it again.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use peercam_base::Scope;
use peercam_test::Cluster;
use peercam_test::web::{scenario, web_tests_or_skip};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_6_web_client_unshare_stops_the_live_view() {
    let Some(dir) = web_tests_or_skip("h626_8_6_web_client_unshare_stops_the_live_view") else {
        return;
    };
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let _pu = c.start_pu_online(&ids[0], 0).await.unwrap();
    let phone = "+15550860001";
    let owner = c.owner(phone).await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let dev = ids[0].device_id.to_string();
    c.sub(&owner, "nephew").await.unwrap();
    owner
        .share(&dev, "nephew", [Scope::Live].into_iter().collect())
        .await
        .unwrap();
    let r = scenario(
        &dir,
        "unshare.mjs",
        &[
            ("PEERCAM_WEB_URL", c.api.clone()),
            ("PEERCAM_WEB_USER", "nephew".to_owned()),
            ("PEERCAM_WEB_PASSWORD", "sub account pass".to_owned()),
            ("PEERCAM_OWNER", phone.to_owned()),
            ("PEERCAM_OWNER_PASSWORD", "correct horse battery".to_owned()),
            ("PEERCAM_DEVICE", dev.clone()),
        ],
        None,
    )
    .await;
    let stopped = r["stopped_ms"].as_u64().unwrap();
    assert!(
        stopped < 2000,
        "the view stopped {stopped} ms after the unshare"
    );
    assert!(owner.shares(&dev).await.unwrap().is_empty());
    c.stop().await;
}
