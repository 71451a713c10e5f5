//! H.626.4 8.5 for an existing camera wrapped by a PU: PTZ orders from the CU reach the
//! camera as ONVIF PTZ calls (SOAP with a WS-Security password digest). The camera here is a
//! small ONVIF responder that checks the digest and keeps a position.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use peercam_signal::control::PtzCommand;
use peercam_test::Cluster;

#[derive(Default)]
struct Camera {
    calls: Vec<String>,
    pan: f32,
    tilt: f32,
    base: String,
}

type Shared = Arc<Mutex<Camera>>;

fn between<'a>(s: &'a str, a: &str, b: &str) -> Option<&'a str> {
    let i = s.find(a)? + a.len();
    let j = s[i..].find(b)? + i;
    Some(&s[i..j])
}

/// The WS-Security check a camera does: digest = Base64(SHA-1(nonce + created + password)).
fn authorised(body: &str) -> bool {
    let (Some(user), Some(digest), Some(nonce), Some(created)) = (
        between(body, "<wsse:Username>", "</wsse:Username>"),
        between(body, "#PasswordDigest\">", "</wsse:Password>"),
        between(body, "#Base64Binary\">", "</wsse:Nonce>"),
        between(body, "<wsu:Created>", "</wsu:Created>"),
    ) else {
        return false;
    };
    let nonce = STANDARD.decode(nonce).unwrap_or_default();
    let h = sha1(&nonce, created.as_bytes(), b"camsecret");
    user == "operator" && STANDARD.encode(h) == digest
}

/// SHA-1 of `a + b + c`, computed by coreutils' `sha1sum`: an implementation independent of
/// the PU's.
fn sha1(a: &[u8], b: &[u8], c: &[u8]) -> Vec<u8> {
    let mut input = a.to_vec();
    input.extend_from_slice(b);
    input.extend_from_slice(c);
    let mut child = std::process::Command::new("sha1sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    let hex = String::from_utf8_lossy(&out.stdout);
    let hex = hex.split_whitespace().next().unwrap_or("");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn soap(body: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl"><s:Body>{body}</s:Body></s:Envelope>"#
    )
}

async fn onvif(State(cam): State<Shared>, body: String) -> (StatusCode, String) {
    if !authorised(&body) {
        return (
            StatusCode::BAD_REQUEST,
            soap("<s:Fault><s:Reason><s:Text>Sender not authorized</s:Text></s:Reason></s:Fault>"),
        );
    }
    let op = between(&body, "<s:Body><", " ")
        .or_else(|| between(&body, "<s:Body><", ">"))
        .unwrap_or("")
        .trim_end_matches('/')
        .to_owned();
    let mut c = cam.lock().unwrap();
    c.calls.push(op.clone());
    let base = c.base.clone();
    let answer = match op.as_str() {
        "GetCapabilities" => format!(
            "<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Media><tt:XAddr>{base}/onvif/media</tt:XAddr></tt:Media><tt:PTZ><tt:XAddr>{base}/onvif/ptz</tt:XAddr></tt:PTZ></tds:Capabilities></tds:GetCapabilitiesResponse>"
        ),
        "GetProfiles" => r#"<trt:GetProfilesResponse><trt:Profiles token="main_profile" fixed="true"><tt:Name>main</tt:Name></trt:Profiles></trt:GetProfilesResponse>"#.into(),
        "AbsoluteMove" => {
            let x = between(&body, "PanTilt xmlns=\"http://www.onvif.org/ver10/schema\" x=\"", "\"").unwrap_or("0");
            let y = between(&body, &format!("x=\"{x}\" y=\""), "\"").unwrap_or("0");
            c.pan = x.parse().unwrap_or(0.0);
            c.tilt = y.parse().unwrap_or(0.0);
            "<tptz:AbsoluteMoveResponse/>".into()
        }
        "SetPreset" => "<tptz:SetPresetResponse><tptz:PresetToken>preset-7</tptz:PresetToken></tptz:SetPresetResponse>".into(),
        "GetStatus" => format!(
            r#"<tptz:GetStatusResponse><tptz:PTZStatus><tt:Position><tt:PanTilt x="{}" y="{}"/><tt:Zoom x="0"/></tt:Position><tt:MoveStatus><tt:PanTilt>IDLE</tt:PanTilt></tt:MoveStatus></tptz:PTZStatus></tptz:GetStatusResponse>"#,
            c.pan, c.tilt
        ),
        other => format!("<tptz:{other}Response/>"),
    };
    // The preset token must be the camera's, and the profile the one it listed.
    if op == "GotoPreset" {
        assert!(
            body.contains("<PresetToken>preset-7</PresetToken>"),
            "{body}"
        );
    }
    if body.contains("ProfileToken") {
        assert!(
            body.contains("<ProfileToken>main_profile</ProfileToken>"),
            "{body}"
        );
    }
    (StatusCode::OK, soap(&answer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_5_wrapped_camera_is_turned_over_onvif() {
    let cam: Shared = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    cam.lock().unwrap().base = format!("http://{addr}");
    let app = Router::new()
        .route("/onvif/device_service", post(onvif))
        .route("/onvif/media", post(onvif))
        .route("/onvif/ptz", post(onvif))
        .with_state(cam.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(2).await.unwrap();
    let url = format!("http://operator:camsecret@{addr}/onvif/device_service");
    let u2 = url.clone();
    let _pu = c
        .start_pu_with(&ids[0], 0, move |cfg| cfg.onvif_url = Some(u2))
        .await
        .unwrap();
    // Another PU with the wrong camera password.
    let bad = format!("http://operator:wrong@{addr}/onvif/device_service");
    let _pu2 = c
        .start_pu_with(&ids[1], 0, move |cfg| cfg.onvif_url = Some(bad))
        .await
        .unwrap();
    for id in &ids {
        c.wait_online(&id.device_id, true, Duration::from_secs(10))
            .await
            .unwrap();
    }
    let owner = c.owner("+15550850001").await.unwrap();
    for id in &ids {
        c.bind(&owner, id).await.unwrap();
    }
    let dev = ids[0].device_id.to_string();

    let s = owner
        .ptz(
            &dev,
            &PtzCommand::Absolute {
                pan: 0.5,
                tilt: -0.25,
                zoom: 1.0,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (s.pan, s.tilt, s.zoom),
        (0.5, -0.25, 1.0),
        "position read back from the camera"
    );
    owner
        .ptz(
            &dev,
            &PtzCommand::Move {
                pan: 0.3,
                tilt: 0.0,
                zoom: 0.0,
                timeout_ms: 2000,
            },
        )
        .await
        .unwrap();
    owner.ptz(&dev, &PtzCommand::Stop).await.unwrap();
    let s = owner
        .ptz(
            &dev,
            &PtzCommand::PresetSet {
                slot: 1,
                name: "gate".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(s.presets.len(), 1);
    owner
        .ptz(&dev, &PtzCommand::PresetGoto { slot: 1 })
        .await
        .unwrap();
    let calls = cam.lock().unwrap().calls.clone();
    for op in [
        "GetCapabilities",
        "GetProfiles",
        "AbsoluteMove",
        "ContinuousMove",
        "Stop",
        "SetPreset",
        "GotoPreset",
        "GetStatus",
    ] {
        assert!(calls.iter().any(|c| c == op), "{op} not called: {calls:?}");
    }
    // The camera refuses a wrong password; the CU is told the camera refused.
    let e = owner
        .ptz(ids[1].device_id.as_str(), &PtzCommand::Stop)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not authorized"), "{e}");
    c.stop().await;
}
