//! The authorisation matrix of docs/security.md ("Authorisation matrix") for every route that exists, in a
//! small world, exhaustively: 2 owners x 2 devices x sub-accounts x operator x anonymous.
//! Zero cross-tenant access, and "not yours" is byte-for-byte "does not exist".
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;

use peercam_base::{Scope, ScopeSet};
use peercam_cmu::api::{Access, RouteInfo, routes};
use peercam_cu::Client;
use peercam_test::Cluster;
use reqwest::Method;
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Anonymous,
    A,
    B,
    A1,
    A2,
    B1,
    Operator,
}

const EVERYONE: [Who; 7] = [
    Who::Anonymous,
    Who::A,
    Who::B,
    Who::A1,
    Who::A2,
    Who::B1,
    Who::Operator,
];

fn role_allowed(who: Who, access: Access) -> bool {
    match access {
        Access::Public | Access::Node => true,
        Access::Account => who != Who::Anonymous,
        Access::Customer => matches!(who, Who::A | Who::B | Who::A1 | Who::A2 | Who::B1),
        Access::Owner => matches!(who, Who::A | Who::B),
        Access::Operator => who == Who::Operator,
    }
}

/// The model: what `who` holds on device `d` (0 = D1 of A, 1 = D2 of B, 2 = absent).
fn relation(who: Who, d: usize) -> Option<(bool, ScopeSet)> {
    match (who, d) {
        (Who::A, 0) | (Who::B, 1) => Some((true, ScopeSet::all())),
        (Who::A1, 0) => Some((false, [Scope::Live].into_iter().collect())),
        (Who::B1, 1) => Some((false, ScopeSet::all())),
        _ => None,
    }
}

fn body_for(r: &RouteInfo) -> Option<Value> {
    Some(match r.request? {
        "BindRequest" => json!({"device_id": "pc-0000000000000000", "bind_code": "AAAA-BBBB-CCCC"}),
        "DeviceRename" => json!({"name": "renamed"}),
        "ShareRequest" => json!({"username": "suba1", "scopes": ["live"]}),
        "SubaccountCreate" => json!({"username": "matrix-new", "password": "sub account pass"}),
        "PasswordChange" => {
            json!({"old_password": "wrong wrong wrong", "new_password": "whatever whatever"})
        }
        "ProvisionRequest" => json!({"devices": []}),
        "LoginRequest" => json!({"login": "nobody", "password": "nothing at all"}),
        "SignupRequest" => json!({"phone": "+15559990000", "password": "x"}),
        "SignupConfirm" => json!({"phone": "+15559990000", "code": "000000"}),
        "PlayRequest" => json!({"max_width": 352}),
        "PunchDescription" => {
            json!({"credentials": {"ufrag": "abcd", "pwd": "0123456789012345678901"},
            "candidates": [], "fingerprint": "sha-256 00"})
        }
        "SessionReport" => json!({"path": "lan", "connect_ms": 1, "bytes": 1, "seconds": 1}),
        "PtzCommand" => json!({"op": "stop"}),
        "ResetRequest" => json!({}),
        "WlanConfig" => json!({"ssid": "x", "security": "open"}),
        // Not newer than anything: refused on its merits by whoever may ask.
        "UpgradeOrder" => json!({"version": "0.0.1"}),
        "SignedManifest" => json!({"manifest": {"version": "0.0.1", "model": "m",
            "sha256": "00".repeat(32), "size": 1, "expires_at": 0}, "signatures": []}),
        "SetUserParams" => json!({"permit": "pcp_made_up", "base_revision": 0,
            "params": serde_json::to_value(peercam_signal::control::UserParams::default()).unwrap()}),
        "SetPlatformParams" => json!({"permit": "pcp_made_up", "base_revision": 0,
            "params": {"schema": 1, "play_token_ttl_s": 60, "session_ttl_s": 3600, "signup_open": true}}),
        "ClientUpdateReport" => {
            json!({"platform": "cli-test", "version": "0.1.0", "outcome": "updated"})
        }
        // A made-up permit: even an authorised caller is refused (8.9.1 needs a real one).
        "SetParamsRequest" => json!({
            "permit": "pcp_made_up",
            "base_revision": 0,
            "params": serde_json::to_value(peercam_signal::control::DeviceParams::default()).unwrap()
        }),
        // A camera that does not exist: refused on its merits by whoever may ask.
        "AttachCamera" => json!({"camera": "pc-0000000000000000"}),
        "SetRecordingRequest" => json!({"strategy": {"mode": {"kind": "off"}}}),
        "PlaybackRequest" => json!({"start": "2026-11-24T00:00:00Z"}),
        "ExportRequest" => json!({"from": "2026-11-24T00:00:00Z", "to": "2026-11-24T00:01:00Z"}),
        "EventRequest" => json!({"kind": "manual"}),
        // Not SDP: refused on its merits (400) by whoever may ask.
        "WebRtcOffer" => json!({"offer": "not sdp"}),
        "PlaybackWebRtcRequest" => json!({"offer": "not sdp", "start": "2026-11-24T00:00:00Z"}),
        // Issue 20 trickle ICE: not a candidate, refused on its merits (400).
        "Trickle" => json!({"candidates": ["not a candidate"]}),
        // H.626.4 8.8 / 6.1.9: valid bodies, judged on their merits by whoever may send them.
        "AlarmStrategy" => json!({"armed": false}),
        "AlarmInputRequest" => json!({"input": 1, "active": false}),
        "AlarmTemplates" => json!({"templates": {}}),
        "TemplatePreviewRequest" => json!({"kind": "motion", "template": "{camera}"}),
        "NotificationSettings" => json!({"kinds": {}}),
        // 6.1.9 Web Push: a key that is no P-256 point, refused on its merits (422).
        "PushSubscriptionRequest" => json!({
            "endpoint": "https://push.invalid/x",
            "keys": {"p256dh": "AAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}
        }),
        "PushEndpoint" => json!({"endpoint": "https://push.invalid/x"}),
        // H.626.4 6.1.12: a valid, disabled schedule (nothing is sent).
        "SnapshotScheduleRequest" => {
            json!({"enabled": false, "every_min": 60, "phone": "+15550600009"})
        }
        // H.626.4 6.1.13: a plan that does not exist, refused on its merits (404).
        "PlanChange" => json!({"plan": "no-such-plan"}),
        // Issue 17 item 9: allowed only to the camera's owner, refused on its merits here
        // (no cloud storage unit in this world: 409).
        "ClipRequest" => json!({"from": "2026-11-24T00:00:00Z", "to": "2026-11-24T00:01:00Z"}),
        // H.626.4 6.1.1, 6.2 equipment: an account that does not exist, a vendor that does
        // not exist (refused on their merits); decommissioning is destructive (not sent).
        "AssignRequest" => json!({"account": "+15559990001"}),
        "DecommissionRequest" => json!({"recordings": "keep"}),
        "VendorRequest" => json!({"name": "matrix vendor"}),
        "ModelRequest" => json!({"vendor": "no such vendor", "name": "m"}),
        // Issue 18 item 2: a wrong TOTP code, refused on its merits (401 bad_totp or 400).
        "TotpCode" => json!({"code": "000000"}),
        "PasswordReset" => {
            json!({"phone": "+15559990000", "code": "000000", "new_password": "whatever whatever"})
        }
        "TotpDisable" => json!({"password": "wrong wrong wrong", "code": "000000"}),
        // 8.11.1 campaigns: a package that does not exist (404), and an empty reason.
        "CampaignCreate" => json!({"name": "matrix", "package": "00".repeat(32)}),
        "CampaignAction" => json!({}),
        // Clause 7 / 6.2 announcements: a valid one (operators only).
        "AnnouncementBody" => json!({"title": "matrix", "body": "b"}),
        other => panic!("no body for {other}"),
    })
}

async fn raw(
    c: &Cluster,
    client: &Client,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, String) {
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&c.ca_pem).unwrap()])
        .build()
        .unwrap();
    let mut req = http.request(
        Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{}{path}", c.api),
    );
    if let Some(t) = client.token() {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    if resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
    {
        // The live alarm stream never ends; its status is the answer.
        return (status, String::new());
    }
    (status, resp.text().await.unwrap())
}

#[tokio::test]
async fn h626_8_6_authorisation_matrix_small_world() {
    authorisation_matrix_small_world(Cluster::start(1).await.unwrap()).await;
}

#[tokio::test]
async fn h626_8_6_authorisation_matrix_small_world_postgres() {
    if let Some(c) =
        Cluster::start_postgres(1, "h626_8_6_authorisation_matrix_small_world_postgres")
            .await
            .unwrap()
    {
        authorisation_matrix_small_world(c).await;
    }
}

async fn authorisation_matrix_small_world(c: Cluster) {
    let ids = c.provision(2).await.unwrap();
    let (_p0, _s0) = c.start_pu_online(&ids[0], 0).await.unwrap();
    let (_p1, _s1) = c.start_pu_online(&ids[1], 0).await.unwrap();
    let a = c.owner("+15550600001").await.unwrap();
    let b = c.owner("+15550600002").await.unwrap();
    c.bind(&a, &ids[0]).await.unwrap();
    c.bind(&b, &ids[1]).await.unwrap();
    let a1 = c.sub(&a, "suba1").await.unwrap();
    let a2 = c.sub(&a, "suba2").await.unwrap();
    let b1 = c.sub(&b, "subb1").await.unwrap();
    a.share(
        ids[0].device_id.as_str(),
        "suba1",
        [Scope::Live].into_iter().collect(),
    )
    .await
    .unwrap();
    b.share(ids[1].device_id.as_str(), "subb1", ScopeSet::all())
        .await
        .unwrap();
    let anon = c.client();
    let client = |w: Who| match w {
        Who::Anonymous => &anon,
        Who::A => &a,
        Who::B => &b,
        Who::A1 => &a1,
        Who::A2 => &a2,
        Who::B1 => &b1,
        Who::Operator => &c.admin,
    };
    let devices = [
        ids[0].device_id.to_string(),
        ids[1].device_id.to_string(),
        "pc-0000000000000000".to_owned(),
    ];
    let a_id = a.me().await.unwrap().id;
    // H.626.4 6.1.9: A's login is an alarm of A's account, nobody else's.
    let mut a_alarm = None;
    for _ in 0..100 {
        let list: Value = a
            .call::<(), Value>(Method::GET, "/api/v1/alarms?kind=login", None)
            .await
            .unwrap();
        a_alarm = list["alarms"][0]["id"].as_i64();
        if a_alarm.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let a_alarm = a_alarm.expect("A's login alarm");

    // Device lists are exactly the model's.
    for who in [Who::A, Who::B, Who::A1, Who::A2, Who::B1] {
        let got: BTreeSet<String> = client(who)
            .devices()
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.id.to_string())
            .collect();
        let want: BTreeSet<String> = (0..2)
            .filter(|d| relation(who, *d).is_some())
            .map(|d| devices[d].clone())
            .collect();
        assert_eq!(got, want, "device list of {who:?}");
    }

    let mut checked = 0;
    for r in routes()
        .iter()
        .filter(|r| r.access != Access::Public && r.access != Access::Node)
    {
        let body = body_for(r);
        for who in EVERYONE {
            let device_slots: Vec<usize> = if r.path.contains("/devices/{id}") {
                vec![0, 1, 2]
            } else {
                vec![usize::MAX]
            };
            for d in device_slots {
                let path = r
                    .path
                    .replace(
                        "/devices/{id}",
                        &format!("/devices/{}", devices.get(d).cloned().unwrap_or_default()),
                    )
                    .replace("/users/{id}", &format!("/users/{a_id}"))
                    .replace("/alarms/{id}", &format!("/alarms/{a_alarm}"))
                    .replace("/faults/{id}", "/faults/1")
                    .replace("/vendors/{id}", "/vendors/1")
                    .replace("/models/{id}", "/models/1")
                    .replace("/campaigns/{id}", "/campaigns/1")
                    .replace("/announcements/{id}", "/announcements/1")
                    .replace("{session}", "no-such-session")
                    .replace("{username}", "suba1");
                // Requests the model allows and that would tear the world down are covered by
                // the flow tests; here they are not sent.
                let destructive = r.method == "DELETE"
                    || r.path.ends_with("/reset")
                    || r.path.ends_with("/logout")
                    || r.path.ends_with("/disable")
                    || r.path.ends_with("/decommission");
                let legit = who != Who::Anonymous
                    && role_allowed(who, r.access)
                    && match d {
                        usize::MAX => {
                            !(r.path.contains("{username}") || r.path.contains("/alarms/{id}"))
                                || who == Who::A
                        }
                        // The operator's device routes concern any device.
                        _ if r.access == Access::Operator => true,
                        d => relation(who, d)
                            .is_some_and(|(owner, _)| owner || r.access != Access::Owner),
                    };
                if destructive && legit {
                    continue;
                }
                let (status, text) = raw(&c, client(who), r.method, &path, body.as_ref()).await;
                checked += 1;
                let ctx = format!("{who:?} {} {path} -> {status} {text}", r.method);
                if who == Who::Anonymous {
                    assert_eq!(status, 401, "{ctx}");
                    continue;
                }
                if !role_allowed(who, r.access) {
                    assert_eq!(status, 403, "{ctx}");
                    continue;
                }
                if r.access == Access::Operator {
                    assert!(status < 500, "{ctx}");
                    continue;
                }
                if d == usize::MAX && r.path.contains("/alarms/{id}") {
                    if who == Who::A {
                        assert!(
                            ![401, 403].contains(&status) && !text.contains("no such alarm"),
                            "{ctx}"
                        );
                    } else {
                        // Another's alarm is byte-for-byte one that does not exist (D3).
                        let absent = r.path.replace("{id}", "999999999");
                        let absent = raw(&c, client(who), r.method, &absent, body.as_ref()).await;
                        assert_eq!((status, text.clone()), absent, "{ctx}");
                        assert_eq!(status, 404, "{ctx}");
                    }
                    continue;
                }
                if d == usize::MAX {
                    if r.path.contains("{username}") && who != Who::A {
                        // Another owner's sub-account is as unknown as a missing one.
                        assert_eq!(status, 404, "{ctx}");
                    }
                    assert!(status < 500, "{ctx}");
                    continue;
                }
                match relation(who, d) {
                    None => {
                        // Not yours == does not exist (docs/security.md D3): same status, same body.
                        assert_eq!(status, 404, "{ctx}");
                        let absent = raw(
                            &c,
                            client(who),
                            r.method,
                            &r.path
                                .replace("{id}", &devices[2])
                                .replace("{username}", "suba1"),
                            body.as_ref(),
                        )
                        .await;
                        assert_eq!(
                            (status, text.clone()),
                            absent,
                            "{ctx}: must match the answer for a device that does not exist"
                        );
                    }
                    Some((owner, scopes)) => {
                        let needs_owner = r.access == Access::Owner;
                        let needs_config = r.path.ends_with("/status")
                            || r.path.contains("/params")
                            || r.path.ends_with("/wlan")
                            || (r.path.ends_with("/upgrade") && r.method == "GET")
                            || r.path.ends_with("/events")
                            || (r.path.ends_with("/recording") && r.method == "PUT")
                            || r.path.ends_with("/alarm-strategy")
                            || r.path.ends_with("/snapshot-schedule");
                        let needs_playback = r.path.contains("/recordings")
                            || (r.path.ends_with("/recording") && r.method == "GET");
                        let needs_ptz = r.path.ends_with("/ptz");
                        let denied = (needs_owner && !owner)
                            || (needs_config && !scopes.contains(Scope::Config))
                            || (needs_playback && !scopes.contains(Scope::Playback))
                            || (needs_ptz && !scopes.contains(Scope::Ptz));
                        if denied {
                            assert_eq!(status, 403, "{ctx}");
                            assert!(
                                !text.contains("no_permit"),
                                "denied before the permit check: {ctx}"
                            );
                        } else if r.method == "PUT" && r.path.ends_with("/params") {
                            assert!(status == 403 && text.contains("no_permit"), "{ctx}");
                        } else {
                            assert!(
                                ![401, 403].contains(&status) && !text.contains("no such device"),
                                "{ctx}"
                            );
                        }
                    }
                }
            }
        }
    }
    // H.626.4 8.7.1 playback: the recording routes with `recorder: "cloud"` (the same
    // routes, another recorder) need `playback` exactly like the others, and another's
    // camera is byte-for-byte one that does not exist.
    let range = "from=2026-11-24T00:00:00Z&to=2026-11-24T00:01:00Z";
    let cloud_rows: [(&str, String, Option<Value>); 4] = [
        (
            "GET",
            format!("/api/v1/devices/{{id}}/recordings?recorder=cloud&{range}"),
            None,
        ),
        (
            "POST",
            "/api/v1/devices/{id}/recordings/play".into(),
            Some(json!({"start": "2026-11-24T00:00:00Z", "recorder": "cloud"})),
        ),
        (
            "POST",
            "/api/v1/devices/{id}/recordings/export".into(),
            Some(
                json!({"from": "2026-11-24T00:00:00Z", "to": "2026-11-24T00:01:00Z",
                "recorder": "cloud"}),
            ),
        ),
        (
            "POST",
            "/api/v1/devices/{id}/recordings/webrtc".into(),
            Some(
                json!({"offer": "v=0 not really", "start": "2026-11-24T00:00:00Z",
                "recorder": "cloud"}),
            ),
        ),
    ];
    for (method, route, body) in &cloud_rows {
        for who in EVERYONE {
            for d in 0..3 {
                let path = route.replace("{id}", &devices[d]);
                let (status, text) = raw(&c, client(who), method, &path, body.as_ref()).await;
                checked += 1;
                let ctx = format!("{who:?} {method} {path} -> {status} {text}");
                if who == Who::Anonymous {
                    assert_eq!(status, 401, "{ctx}");
                    continue;
                }
                let access = routes()
                    .iter()
                    .find(|r| r.method == *method && route.split('?').next() == Some(r.path))
                    .unwrap()
                    .access;
                if !role_allowed(who, access) {
                    assert_eq!(status, 403, "{ctx}");
                    continue;
                }
                match relation(who, d) {
                    None => {
                        let absent = route.replace("{id}", &devices[2]);
                        let absent = raw(&c, client(who), method, &absent, body.as_ref()).await;
                        assert_eq!(status, 404, "{ctx}");
                        assert_eq!((status, text.clone()), absent, "{ctx}");
                    }
                    Some((_, scopes)) if !scopes.contains(Scope::Playback) => {
                        assert_eq!(status, 403, "{ctx}");
                    }
                    Some(_) => {
                        // Allowed: refused on its merits (no cloud recordings here).
                        assert!(
                            ![401, 403].contains(&status) && !text.contains("no such device"),
                            "{ctx}"
                        );
                    }
                }
            }
        }
    }
    // Issue 17 item 9: revoking a shared clip is for owners, and a clip that is not yours
    // is one that does not exist; the public link of an unknown clip is 404 for everyone.
    let no_clip = "AAAAAAAAAAAAAAAAAAAAAA";
    for who in EVERYONE {
        let (status, text) = raw(
            &c,
            client(who),
            "DELETE",
            &format!("/api/v1/clips/{no_clip}"),
            None,
        )
        .await;
        checked += 1;
        let want = match who {
            Who::Anonymous => 401,
            Who::A | Who::B => 404,
            _ => 403,
        };
        assert_eq!(status, want, "{who:?} DELETE clip -> {status} {text}");
        let (status, _) = raw(&c, client(who), "GET", &format!("/c/{no_clip}"), None).await;
        checked += 1;
        assert_eq!(status, 404, "{who:?} GET /c/{no_clip}");
    }
    assert!(checked > 150, "only {checked} requests checked");
    // Nothing a denied request did changed the world.
    assert_eq!(b.devices().await.unwrap().len(), 1);
    assert_eq!(a1.devices().await.unwrap().len(), 1);
    c.stop().await;
}

#[tokio::test]
async fn every_route_is_declared_and_denied_by_default() {
    let c = Cluster::start(0).await.unwrap();
    let anon = c.client();
    let declared: BTreeSet<(String, String)> = routes()
        .iter()
        .map(|r| (r.method.to_lowercase(), r.path.to_owned()))
        .collect();
    // The OpenAPI document is generated from the same table: same routes, no more, no less.
    let doc: Value = anon
        .call::<(), Value>(Method::GET, "/api/v1/openapi.json", None)
        .await
        .unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in item.as_object().unwrap().keys() {
            documented.insert((m.clone(), path.clone()));
        }
    }
    assert_eq!(declared, documented);
    // docs/security.md D7: every route that is not public refuses an anonymous caller, and so do
    // made-up tokens.
    for r in routes() {
        let path = r
            .path
            .replace("{id}", "1")
            .replace("{username}", "x")
            .replace("{session}", "x");
        let (status, _) = raw(&c, &anon, r.method, &path, body_for(&r).as_ref()).await;
        match r.access {
            Access::Public => assert!(status < 500, "{} {path}", r.method),
            // The SCU endpoint speaks only WebSocket and authenticates inside it.
            Access::Node => assert_ne!(status / 100, 2, "{} {path}", r.method),
            _ => {
                assert_eq!(status, 401, "{} {path} reachable without login", r.method);
                let forged = anon
                    .clone()
                    .with_token("pcs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
                assert_eq!(
                    raw(&c, &forged, r.method, &path, body_for(&r).as_ref())
                        .await
                        .0,
                    401
                );
            }
        }
    }
    // Unknown routes are 404, not a handler.
    assert_eq!(raw(&c, &anon, "GET", "/api/v1/nothing", None).await.0, 404);
    c.stop().await;
}
