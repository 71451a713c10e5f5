//! A scripted device for the platform's flow tests: a real Ps link (the shared
//! `peercam_net::agent` driver, registration signed with its identity, through a real SCU),
//! behind which a script answers commands and records them, and sends requests (an alarm
//! up, H.626.4 8.8; a storage-full report, 6.1.9) when the test says.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use peercam_alarm::{Alarm, AlarmState, AlarmStrategy};
use peercam_net::Shutdown;
use peercam_net::agent::{self, Device, LinkConfig, LinkStatus, PlatformReq, ReplyFuture};
use peercam_signal::cmd::{DeviceCommand, DeviceReply, DeviceRequest, PlatformAnswer};
use peercam_signal::identity::DeviceIdentity;
use peercam_signal::link::DeviceLink;
use peercam_test::Cluster;
use tokio::sync::{mpsc, oneshot, watch};

/// A JPEG-looking payload the device answers snapshots with.
pub(crate) const JPEG: &[u8] = b"\xff\xd8\xff\xe0scripted-snapshot\xff\xd9";

/// What the script holds.
#[derive(Default)]
pub(crate) struct Script {
    /// Every command received, in order.
    pub(crate) commands: Mutex<Vec<DeviceCommand>>,
    /// The alarm state it reports.
    pub(crate) state: Mutex<Option<AlarmState>>,
}

impl Script {
    fn state(&self) -> AlarmState {
        self.state
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| AlarmState {
                strategy: AlarmStrategy::default(),
                active: Vec::new(),
                output_on: false,
                inputs: Vec::new(),
                pending: 0,
            })
    }

    /// The commands received so far.
    pub(crate) fn seen(&self) -> Vec<DeviceCommand> {
        self.commands.lock().unwrap().clone()
    }
}

impl Device for Script {
    fn prepare(&self, _link: &mut DeviceLink) {}

    fn command(&self, command: DeviceCommand, _connected_s: u64) -> ReplyFuture {
        self.commands.lock().unwrap().push(command.clone());
        let mut state = self.state();
        let reply = match command {
            DeviceCommand::Snapshot { .. } => DeviceReply::Snapshot {
                jpeg: base64::engine::general_purpose::STANDARD.encode(JPEG),
                width: 64,
                height: 48,
                taken_ms: 1,
            },
            DeviceCommand::SetAlarmStrategy { strategy } => {
                state.strategy = strategy;
                *self.state.lock().unwrap() = Some(state.clone());
                DeviceReply::Alarms { state }
            }
            DeviceCommand::ResetAlarm { id } => {
                state
                    .active
                    .retain(|a| id.as_ref().is_some_and(|i| *i != a.id));
                state.output_on = !state.active.is_empty();
                *self.state.lock().unwrap() = Some(state.clone());
                DeviceReply::Alarms { state }
            }
            DeviceCommand::GetAlarms | DeviceCommand::TripInput { .. } => {
                DeviceReply::Alarms { state }
            }
            // Its SD card is full (8.7.3), so 6.1.9's storage-full alarm can be seen.
            DeviceCommand::GetRecording { camera } => DeviceReply::Recording {
                state: peercam_signal::record::RecordingState {
                    camera,
                    strategy: serde_json::from_value(serde_json::json!({"mode": {"kind": "off"}}))
                        .unwrap(),
                    recording: false,
                    used_bytes: 1 << 30,
                    full: true,
                    oldest_ms: None,
                    last_error: None,
                },
            },
            // As an NVR (8.7.2.1 steps 1-8): it takes any camera, found on no LAN.
            DeviceCommand::RecorderAttach { camera, .. } => {
                DeviceReply::Attached { camera, lan: None }
            }
            _ => DeviceReply::Done,
        };
        Box::pin(async move { reply })
    }
}

/// A running scripted device.
pub(crate) struct Scripted {
    pub(crate) script: Arc<Script>,
    pub(crate) status: watch::Receiver<LinkStatus>,
    requests: mpsc::Sender<PlatformReq>,
    pub(crate) shutdown: Shutdown,
}

impl Scripted {
    /// Connects `id` to SCU node `scu` of the cluster and waits for its registration.
    pub(crate) async fn start(c: &Cluster, id: &DeviceIdentity, scu: usize) -> Self {
        Self::start_version(c, id, scu, "scripted-1").await
    }

    /// [`Scripted::start`] reporting software version `version` in its hello.
    pub(crate) async fn start_version(
        c: &Cluster,
        id: &DeviceIdentity,
        scu: usize,
        version: &str,
    ) -> Self {
        let config = LinkConfig {
            scu_url: c.scu_url(scu),
            tls: peercam_net::tls::client_config(&c.ca_pem).unwrap(),
            identity: id.clone(),
            sw_version: version.into(),
            reconnect_initial: Duration::from_millis(100),
            reconnect_max: Duration::from_millis(500),
            tick: Duration::from_secs(5),
        };
        let script = Arc::new(Script::default());
        let (status_tx, status) = watch::channel(LinkStatus::Connecting);
        let (requests, rx) = mpsc::channel(16);
        let shutdown = Shutdown::new();
        tokio::spawn(agent::run(
            config,
            script.clone(),
            status_tx,
            rx,
            shutdown.clone(),
        ));
        let me = Self {
            script,
            status,
            requests,
            shutdown,
        };
        c.wait_online(&id.device_id, true, Duration::from_secs(10))
            .await
            .unwrap();
        me
    }

    /// H.626.4 8.8: sends an alarm up and waits for the platform's answer.
    pub(crate) async fn alarm(&self, alarm: Alarm) -> PlatformAnswer {
        self.request(DeviceRequest::Alarm { alarm }).await
    }

    /// Sends any request for the platform and waits for its answer.
    pub(crate) async fn request(&self, request: DeviceRequest) -> PlatformAnswer {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(PlatformReq::Request { request, reply })
            .await
            .unwrap();
        rx.await.unwrap()
    }

    /// Waits until the script has received a command matching `pred`.
    pub(crate) async fn wait_for(
        &self,
        what: &str,
        pred: impl Fn(&DeviceCommand) -> bool,
    ) -> DeviceCommand {
        for _ in 0..200 {
            if let Some(c) = self.script.seen().into_iter().find(|c| pred(c)) {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the device never received {what}: {:?}", self.script.seen());
    }
}

/// Every SMS the cluster's outbox sent to `phone`.
pub(crate) fn sms_to(c: &Cluster, phone: &str) -> Vec<String> {
    peercam_cmu::sms::messages_to(&c.path().join("sms-outbox"), phone).unwrap_or_default()
}

/// Waits until an SMS to `phone` contains `needle`; returns every SMS to `phone`.
pub(crate) async fn wait_sms(c: &Cluster, phone: &str, needle: &str) -> Vec<String> {
    for _ in 0..200 {
        let all = sms_to(c, phone);
        if all.iter().any(|t| t.contains(needle)) {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "no SMS to {phone} containing {needle:?}: {:?}",
        sms_to(c, phone)
    );
}

/// A request with `client`'s token: (status, body text).
pub(crate) async fn raw(
    c: &Cluster,
    client: &peercam_cu::Client,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, String) {
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&c.ca_pem).unwrap()])
        .build()
        .unwrap();
    let mut req = http.request(
        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
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
    (status, resp.text().await.unwrap())
}

/// An open `GET /api/v1/alarms/stream` of `client`.
pub(crate) struct AlarmStream {
    resp: reqwest::Response,
    buf: String,
}

impl AlarmStream {
    /// Opens the stream.
    pub(crate) async fn open(c: &Cluster, client: &peercam_cu::Client) -> Self {
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&c.ca_pem).unwrap()])
            .build()
            .unwrap();
        let resp = http
            .get(format!("{}/api/v1/alarms/stream", c.api))
            .bearer_auth(client.token().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        Self {
            resp,
            buf: String::new(),
        }
    }

    /// Waits (up to `within`) for an event whose text contains `needle`; returns what was
    /// read up to the end of that event (later events stay for the next wait), or `None` on
    /// timeout.
    pub(crate) async fn wait(&mut self, needle: &str, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(at) = self.buf.find(needle) {
                let end = self.buf[at..]
                    .find("\n\n")
                    .map_or(self.buf.len(), |e| at + e + 2);
                let rest = self.buf.split_off(end);
                return Some(std::mem::replace(&mut self.buf, rest));
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .ok()?;
            match chunk {
                Ok(Some(b)) => self.buf.push_str(&String::from_utf8_lossy(&b)),
                _ => return None,
            }
        }
    }
}

/// A one-node cluster with one scripted camera, bound to a new owner signed up as `phone`.
pub(crate) async fn one_camera(
    phone: &str,
) -> (Cluster, DeviceIdentity, Scripted, peercam_cu::Client) {
    let c = Cluster::start(1).await.unwrap();
    let id = c.provision(1).await.unwrap().remove(0);
    let dev = Scripted::start(&c, &id, 0).await;
    let owner = c.owner(phone).await.unwrap();
    c.bind(&owner, &id).await.unwrap();
    (c, id, dev, owner)
}
