//! H.626.4 8.1 PU registration, over real sockets: PU -> SCU -> CMU -> SCU -> PU.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use peercam_net::tokio_tungstenite::tungstenite::Message;
use peercam_pu::PuStatus;
use peercam_signal::ps::{DeviceKind, DeviceToScu, RefusalCode, ScuToDevice};
use peercam_signal::{Envelope, decode, encode};
use peercam_test::{Cluster, impostor, new_identity};

async fn refusal(pu: &mut peercam_pu::Running) -> RefusalCode {
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        pu.status
            .wait_for(|s| matches!(s, PuStatus::Refused { .. })),
    )
    .await
    .expect("refused in time")
    .expect("status");
    match &*status {
        PuStatus::Refused { code, .. } => *code,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn h626_8_1_provisioned_pu_registers_and_is_online() {
    provisioned_pu_registers_and_is_online(Cluster::start(1).await.unwrap()).await;
}

#[tokio::test]
async fn h626_8_1_provisioned_pu_registers_and_is_online_postgres() {
    if let Some(c) = Cluster::start_postgres(
        1,
        "h626_8_1_provisioned_pu_registers_and_is_online_postgres",
    )
    .await
    .unwrap()
    {
        provisioned_pu_registers_and_is_online(c).await;
    }
}

async fn provisioned_pu_registers_and_is_online(c: Cluster) {
    let ids = c.provision(2).await.unwrap();
    let (_pu, _sd) = c.start_pu_online(&ids[0], 0).await.unwrap();
    let list = c.admin.admin_devices().await.unwrap();
    let d0 = list
        .iter()
        .find(|d| d.id == ids[0].device_id.as_str())
        .unwrap();
    assert!(d0.registered && d0.online);
    assert_eq!(d0.node.as_deref(), Some("scu-1"));
    let d1 = list
        .iter()
        .find(|d| d.id == ids[1].device_id.as_str())
        .unwrap();
    assert!(
        !d1.registered && !d1.online,
        "a device that never connected is neither registered nor online"
    );
    c.stop().await;
}

#[tokio::test]
async fn h626_8_1_unknown_device_is_refused() {
    let c = Cluster::start(1).await.unwrap();
    let stranger = new_identity(DeviceKind::Pu); // never provisioned
    let (mut pu, _sd) = c.start_pu(&stranger, 0).await.unwrap();
    assert_eq!(refusal(&mut pu).await, RefusalCode::UnknownDevice);
    c.stop().await;
}

#[tokio::test]
async fn h626_8_1_wrong_key_is_refused_and_logged() {
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let fake = impostor(&ids[0]);
    let (mut pu, _sd) = c.start_pu(&fake, 0).await.unwrap();
    assert_eq!(refusal(&mut pu).await, RefusalCode::BadSignature);
    let log = c
        .client()
        .login(
            "admin",
            std::fs::read_to_string(c.path().join("admin.password"))
                .unwrap()
                .trim(),
        )
        .await
        .unwrap()
        .0;
    let entries: Vec<peercam_signal::cm::AuditEntry> = log
        .call::<(), _>(reqwest::Method::GET, "/api/v1/admin/audit", None)
        .await
        .unwrap();
    assert!(entries.iter().any(|e| e.action == "device.register"
        && e.outcome == "bad_signature"
        && e.device_id.as_deref() == Some(ids[0].device_id.as_str())));
    // The genuine device still registers afterwards.
    let (_pu, _sd2) = c.start_pu_online(&ids[0], 0).await.unwrap();
    c.stop().await;
}

#[tokio::test]
async fn h626_8_1_device_id_cannot_take_a_second_key() {
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    // Provisioning the same id again with the same key is an idempotent retry...
    c.provision_these(&ids).await.unwrap();
    // ...but with another key it is refused (docs/security.md D1: no "last registration wins").
    let err = c
        .admin
        .provision(vec![peercam_test::provision_record(&impostor(&ids[0]))])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("key_conflict"));
    assert_eq!(err.status(), Some(409));
    c.stop().await;
}

/// Opens a raw device connection to the SCU and returns (sink+stream, challenge fields).
async fn raw_connect(c: &Cluster) -> peercam_net::ws::ClientWs {
    let tls = peercam_net::tls::client_config(&c.ca_pem).unwrap();
    peercam_net::ws::connect(&c.scu_url(0), tls, Duration::from_secs(5))
        .await
        .unwrap()
}

async fn recv(ws: &mut peercam_net::ws::ClientWs) -> ScuToDevice {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Text(t))) => return decode::<ScuToDevice>(t.as_bytes()).unwrap().body,
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

async fn send(ws: &mut peercam_net::ws::ClientWs, id: u64, body: DeviceToScu) {
    ws.send(Message::text(
        String::from_utf8(encode(&Envelope::new(id, body))).unwrap(),
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn h626_8_1_replayed_registration_is_refused() {
    replayed_registration_is_refused(Cluster::start(1).await.unwrap()).await;
}

#[tokio::test]
async fn h626_8_1_replayed_registration_is_refused_postgres() {
    if let Some(c) =
        Cluster::start_postgres(1, "h626_8_1_replayed_registration_is_refused_postgres")
            .await
            .unwrap()
    {
        replayed_registration_is_refused(c).await;
    }
}

async fn replayed_registration_is_refused(c: Cluster) {
    let ids = c.provision(1).await.unwrap();
    let dev = &ids[0];
    let key = dev.signing_key().unwrap();
    let hello = || DeviceToScu::Hello {
        device_id: dev.device_id.clone(),
        kind: DeviceKind::Pu,
        versions: vec![1],
        sw_version: "t".into(),
    };

    // A genuine registration, recorded by an eavesdropper.
    let mut ws = raw_connect(&c).await;
    send(&mut ws, 1, hello()).await;
    let ScuToDevice::Challenge {
        node,
        nonce,
        issued_at_ms,
    } = recv(&mut ws).await
    else {
        panic!("no challenge")
    };
    let signature =
        peercam_signal::register::sign(&key, &node, &dev.device_id, &nonce, issued_at_ms);
    let captured = DeviceToScu::Register {
        nonce: nonce.clone(),
        signature,
    };
    send(&mut ws, 2, captured.clone()).await;
    let answer = recv(&mut ws).await;
    assert!(
        matches!(answer, ScuToDevice::Registered { .. }),
        "a genuine registration was answered {answer:?}"
    );

    // Replayed on a new connection: the SCU issued another challenge, so it is stale.
    let mut ws2 = raw_connect(&c).await;
    send(&mut ws2, 1, hello()).await;
    let ScuToDevice::Challenge { nonce: other, .. } = recv(&mut ws2).await else {
        panic!()
    };
    assert_ne!(other, nonce);
    send(&mut ws2, 2, captured).await;
    assert!(matches!(
        recv(&mut ws2).await,
        ScuToDevice::Refused {
            code: RefusalCode::StaleChallenge,
            ..
        }
    ));
    c.stop().await;
}

#[tokio::test]
async fn h626_8_1_malformed_and_oversized_frames_are_refused() {
    let c = Cluster::start(1).await.unwrap();
    let mut ws = raw_connect(&c).await;
    ws.send(Message::text("{\"v\":1,\"body\":{\"type\":\"nonsense\"}}"))
        .await
        .unwrap();
    assert!(matches!(
        recv(&mut ws).await,
        ScuToDevice::Refused {
            code: RefusalCode::ProtocolError,
            ..
        }
    ));

    let mut ws = raw_connect(&c).await;
    let big = format!("{{\"v\":1,\"body\":\"{}\"}}", "x".repeat(200_000));
    let _ = ws.send(Message::text(big)).await;
    // The WebSocket layer enforces the 64 KiB limit: the connection is closed, nothing else.
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap();
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
    c.stop().await;
}

#[tokio::test]
async fn h626_8_1_presence_follows_the_connection() {
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let (_pu, sd) = c.start_pu_online(&ids[0], 0).await.unwrap();
    sd.trigger();
    let t = std::time::Instant::now();
    c.wait_online(&ids[0].device_id, false, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    c.stop().await;
}

#[tokio::test]
async fn h626_8_1_second_session_replaces_the_first() {
    let c = Cluster::start(2).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let (mut first, sd1) = c.start_pu_online(&ids[0], 0).await.unwrap();
    // The same device (e.g. after a network change) registers on another node.
    let (_second, _sd2) = c.start_pu(&ids[0], 1).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let d = c
            .admin
            .admin_devices()
            .await
            .unwrap()
            .into_iter()
            .find(|d| d.id == ids[0].device_id.as_str())
            .unwrap();
        if d.node.as_deref() == Some("scu-2") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never moved to scu-2"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first session was told to go (it will try again with backoff).
    tokio::time::timeout(
        Duration::from_secs(5),
        first.status.wait_for(|s| *s == PuStatus::Connecting),
    )
    .await
    .unwrap()
    .unwrap();
    // (Two live agents with one identity would keep replacing each other, which is how a
    // cloned device shows up; stop the old one as a device that moved networks would.)
    sd1.trigger();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let d = c
        .admin
        .admin_devices()
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.id == ids[0].device_id.as_str())
        .unwrap();
    assert_eq!(d.node.as_deref(), Some("scu-2"));
    assert_eq!(
        c.scus[0].online_count() + c.scus[1].online_count(),
        1,
        "exactly one live session for the device"
    );
    c.stop().await;
}

#[tokio::test]
async fn h626_8_1_commands_route_through_each_scu_node() {
    let c = Cluster::start(2).await.unwrap();
    let ids = c.provision(2).await.unwrap();
    let (_p0, _s0) = c.start_pu_online(&ids[0], 0).await.unwrap();
    let (_p1, _s1) = c.start_pu_online(&ids[1], 1).await.unwrap();
    let owner = c.owner("+15550200001").await.unwrap();
    for (i, id) in ids.iter().enumerate() {
        c.bind(&owner, id).await.unwrap();
        let st = owner.status(id.device_id.as_str()).await.unwrap();
        assert_eq!(st.node, format!("scu-{}", i + 1));
        assert_eq!(st.description.model, "synthetic");
    }
    c.stop().await;
}

#[tokio::test]
async fn h626_8_1_scu_with_wrong_secret_is_refused() {
    let c = Cluster::start(0).await.unwrap();
    let mut cfg = c.scu_config("rogue", "127.0.0.1:0".parse().unwrap());
    cfg.node_secret = "not-the-right-secret-at-all".into();
    let sd = peercam_net::Shutdown::new();
    let rogue = peercam_scu::start(cfg, sd.clone()).await.unwrap();
    // A device provisioned in the CMU cannot register through a rogue node.
    let ids = c.provision(1).await.unwrap();
    let tls = peercam_net::tls::client_config(&c.ca_pem).unwrap();
    let mut ws = peercam_net::ws::connect(
        &format!("wss://127.0.0.1:{}/", rogue.addr.port()),
        tls,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    send(
        &mut ws,
        1,
        DeviceToScu::Hello {
            device_id: ids[0].device_id.clone(),
            kind: DeviceKind::Pu,
            versions: vec![1],
            sw_version: "t".into(),
        },
    )
    .await;
    let ScuToDevice::Challenge {
        node,
        nonce,
        issued_at_ms,
    } = recv(&mut ws).await
    else {
        panic!()
    };
    let signature = peercam_signal::register::sign(
        &ids[0].signing_key().unwrap(),
        &node,
        &ids[0].device_id,
        &nonce,
        issued_at_ms,
    );
    send(&mut ws, 2, DeviceToScu::Register { nonce, signature }).await;
    assert!(matches!(
        recv(&mut ws).await,
        ScuToDevice::Refused {
            code: RefusalCode::Unavailable,
            ..
        }
    ));
    sd.trigger();
    c.stop().await;
}
