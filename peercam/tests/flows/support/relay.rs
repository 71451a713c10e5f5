//! What the relay tests (7.2, 7.3, and talk through the relay, 6.1.8) share: a registered
//! MTU and a play URL through it.
#![allow(dead_code)]

use std::time::Duration;

use peercam_cu::Client;
use peercam_signal::cm::PlayRequest;
use peercam_signal::ps::DeviceKind;
use peercam_signal::relay::PathKind;
use peercam_test::{Cluster, new_identity, provision_record};

/// A provisioned MTU, started and registered; with its id.
pub(crate) async fn mtu(c: &Cluster) -> (peercam_mtu::Running, peercam_net::Shutdown, String) {
    let id = new_identity(DeviceKind::Mtu);
    c.admin
        .provision(vec![provision_record(&id)])
        .await
        .unwrap();
    let (mut r, sd) = c.start_mtu_with(&id, 0, |_| {}).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        r.status
            .wait_for(|s| matches!(s, peercam_mtu::MtuStatus::Registered { .. })),
    )
    .await
    .unwrap()
    .unwrap();
    (r, sd, id.device_id.to_string())
}

/// A play whose paths include the relay; returns the relay URL.
pub(crate) async fn relay_url(who: &Client, dev: &str) -> String {
    for _ in 0..100 {
        if let Ok(p) = who.play(dev, &PlayRequest::default()).await
            && let Some(r) = p.paths.iter().find(|p| p.kind == PathKind::Relay)
        {
            return r.url.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no relay path offered");
}
