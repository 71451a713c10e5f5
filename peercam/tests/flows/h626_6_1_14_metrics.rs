//! Metrics of every unit (H.626.4 6.1.14, network management; docs/metrics.md): a platform
//! with a CMU, an SCU node, a camera, an NVR, a CS and an MTU with TURN, each serving
//! `GET /metrics` on its `metrics_listen`; after a little traffic each unit's page is parsed
//! with a third-party parser of the Prometheus text format (`prometheus_client.parser`,
//! Python, installed by `.ci/run` into `.ci/venv`), every metric the documentation lists is
//! there, and the figures the traffic touched have moved.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use peercam_signal::cm::PlayRequest;
use peercam_signal::ps::DeviceKind;
use peercam_test::{Cluster, new_identity, provision_record, rtsp_describe};

const TEST: &str = "h626_6_1_14_metrics_every_unit_parses";

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The venv's Python with `prometheus_client` (`.ci/run`), upwards from this crate.
fn python() -> Option<PathBuf> {
    let py = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join(".ci/venv/bin/python"))
        .find(|p| p.is_file())?;
    let ok = std::process::Command::new(&py)
        .args(["-c", "import prometheus_client.parser"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(py)
}

/// `(unit, metric)` rows of the table in docs/metrics.md.
fn documented() -> Vec<(String, String)> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics.md");
    let text = std::fs::read_to_string(doc).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 6 {
            continue;
        }
        let name = cells[2].trim_matches('`');
        if name.starts_with("peercam_") {
            out.push((cells[1].to_owned(), name.to_owned()));
        }
    }
    assert!(out.len() > 40, "the metrics table was not found");
    out
}

/// One parsed page: family name -> type, and every sample (name, labels, value).
#[derive(Debug, serde::Deserialize)]
struct Parsed {
    families: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Parsed {
    /// Whether `metric` (as documented: a counter with `_total`) is on the page.
    fn has(&self, metric: &str) -> bool {
        let family = metric.strip_suffix("_total").unwrap_or(metric);
        self.families.contains_key(metric) || self.families.contains_key(family)
    }

    /// The sum of the samples named `name` whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }
}

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
fams, samples = {}, []
for f in text_string_to_metric_families(open(sys.argv[1]).read()):
    fams[f.name] = f.type
    for s in f.samples:
        samples.append([s.name, dict(s.labels), s.value])
print(json.dumps({"families": fams, "samples": samples}))
"#;

async fn scrape(py: &Path, dir: &Path, unit: &str, addr: SocketAddr) -> Parsed {
    let resp = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{unit} /metrics");
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        ctype.starts_with("text/plain; version=0.0.4"),
        "{unit}: {ctype}"
    );
    let text = resp.text().await.unwrap();
    let file = dir.join(format!("{unit}.prom"));
    std::fs::write(&file, &text).unwrap();
    let out = tokio::process::Command::new(py)
        .args(["-c", PARSE])
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{unit}: the parser refused the page: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// 6.1.14: every unit's `/metrics` parses, lists every documented metric, and moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h626_6_1_14_metrics_every_unit_parses() {
    let Some(py) = python() else {
        peercam_test::skip(
            TEST,
            "no .ci/venv/bin/python with prometheus_client (.ci/run)",
        );
        return;
    };
    let mut c = Cluster::start_with(0, |cfg| cfg.metrics_listen = Some(any_port()))
        .await
        .unwrap();
    // An SCU node with its metrics.
    let mut scfg = c.scu_config("scu-1", any_port());
    scfg.metrics_listen = Some(any_port());
    let sd = peercam_net::Shutdown::new();
    let scu = peercam_scu::start(scfg, sd.clone()).await.unwrap();
    let scu_metrics = scu.metrics_addr.unwrap();
    c.scus.push(scu);
    c.scu_shutdowns.push(sd);

    // A camera, bound and played (a token minted, then judged by the camera).
    let cam = c.provision(1).await.unwrap().remove(0);
    let (_pu, _pu_sd) = c.start_pu_online(&cam, 0).await.unwrap();
    let owner = c.owner("+15550614001").await.unwrap();
    c.bind(&owner, &cam).await.unwrap();
    let play = owner
        .play(cam.device_id.as_str(), &PlayRequest::default())
        .await
        .unwrap();
    let (status, _) = rtsp_describe(&play.url).await;
    assert_eq!(status, 200);
    // A failed login.
    assert!(c.client().login("nobody", "wrong password").await.is_err());

    // An NVR, a CS and an MTU with TURN, each with its metrics.
    let [nvr_id, cs_id, mtu_id] =
        [DeviceKind::Nvr, DeviceKind::Cs, DeviceKind::Mtu].map(new_identity);
    c.admin
        .provision([&nvr_id, &cs_id, &mtu_id].map(provision_record).to_vec())
        .await
        .unwrap();
    let (nvr, _nvr_sd) = c
        .start_nvr_with(&nvr_id, 0, |cfg| cfg.metrics_listen = Some(any_port()))
        .await
        .unwrap();
    let (cs, _cs_sd) = c
        .start_cs_with(&cs_id, 0, |cfg| cfg.metrics_listen = Some(any_port()))
        .await
        .unwrap();
    let (mtu, _mtu_sd) = c
        .start_mtu_with(&mtu_id, 0, |cfg| {
            cfg.metrics_listen = Some(any_port());
            cfg.turn = Some(peercam_mtu::turn::Config {
                listen_udp: Some(any_port()),
                secret: "metrics-turn-secret".into(),
                threads: Some(1),
                ..peercam_mtu::turn::Config::default()
            });
        })
        .await
        .unwrap();
    for id in [&nvr_id, &cs_id, &mtu_id] {
        c.wait_online(&id.device_id, true, Duration::from_secs(15))
            .await
            .unwrap();
    }
    // A CS request (refused: no grant) and a STUN Binding request to the MTU's TURN.
    let hello = reqwest::Client::new()
        .post(format!("http://{}/cp/v1/hello", cs.addr))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert!(hello.status().is_client_error());
    let turn = mtu.turn.as_ref().unwrap().udp.unwrap();
    let sock = tokio::net::UdpSocket::bind(any_port()).await.unwrap();
    let mut binding = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    binding.extend_from_slice(&[7u8; 12]);
    sock.send_to(&binding, turn).await.unwrap();
    let mut buf = [0u8; 512];
    tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    // TURN shards publish every 200 ms.
    tokio::time::sleep(Duration::from_millis(600)).await;

    let dir = tempfile::tempdir().unwrap();
    let units: [(&str, SocketAddr); 5] = [
        ("cmu", c.cmu_metrics.unwrap()),
        ("scu", scu_metrics),
        ("mtu", mtu.metrics_addr.unwrap()),
        ("nvr", nvr.metrics_addr.unwrap()),
        ("cs", cs.metrics_addr.unwrap()),
    ];
    let mut pages = BTreeMap::new();
    for (unit, addr) in units {
        pages.insert(unit, scrape(&py, dir.path(), unit, addr).await);
    }

    // Every documented metric is served by its unit(s).
    let mut missing = BTreeSet::new();
    for (unit, metric) in documented() {
        let on: Vec<&str> = match unit.as_str() {
            "all" => units.iter().map(|(u, _)| *u).collect(),
            "mtu turn" => vec!["mtu"],
            u => vec![u],
        };
        for u in on {
            let page = pages
                .get(u)
                .unwrap_or_else(|| panic!("unit {u} in docs/metrics.md"));
            if !page.has(&metric) {
                missing.insert(format!("{u}: {metric}"));
            }
        }
    }
    assert!(missing.is_empty(), "documented but not served: {missing:?}");
    // The Grafana dashboard uses documented names only.
    let names: BTreeSet<String> = documented().into_iter().map(|(_, m)| m).collect();
    let dash = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/peercam.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dash).unwrap()).unwrap();
    let mut used = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for word in expr.split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_')) {
                if let Some(w) = word.strip_prefix("peercam_").map(|_| word) {
                    let base = w.strip_suffix("_bucket").unwrap_or(w);
                    assert!(
                        names.contains(base),
                        "the dashboard uses {w}, not in docs/metrics.md"
                    );
                    used += 1;
                }
            }
        }
    }
    assert!(used > 20);

    // Figures the traffic moved.
    let cmu = &pages["cmu"];
    assert!(cmu.sum("peercam_cmu_logins_total", &[("result", "ok")]) >= 2.0);
    assert!(cmu.sum("peercam_cmu_logins_total", &[("result", "failed")]) >= 1.0);
    assert!(cmu.sum("peercam_cmu_play_tokens_minted_total", &[]) >= 1.0);
    assert!(cmu.sum("peercam_cmu_play_checks_total", &[("verdict", "granted")]) >= 1.0);
    assert!(
        cmu.sum(
            "peercam_cmu_http_requests_total",
            &[("class", "play"), ("status", "2xx")]
        ) >= 1.0
    );
    assert!(
        cmu.sum(
            "peercam_cmu_http_request_duration_seconds_count",
            &[("class", "login")]
        ) >= 3.0
    );
    assert!(cmu.sum("peercam_cmu_devices_online", &[]) >= 4.0);
    assert_eq!(cmu.sum("peercam_cmu_scu_nodes", &[]), 1.0);
    assert!(cmu.sum("peercam_cmu_audit_rows_total", &[]) >= 3.0);
    assert_eq!(cmu.sum("peercam_build_info", &[("unit", "cmu")]), 1.0);
    let scu = &pages["scu"];
    assert!(scu.sum("peercam_scu_registrations_total", &[]) >= 4.0);
    assert!(scu.sum("peercam_scu_devices_connected", &[]) >= 4.0);
    assert!(scu.sum("peercam_scu_device_messages_total", &[("direction", "in")]) >= 4.0);
    assert_eq!(scu.sum("peercam_scu_cmu_connected", &[]), 1.0);
    assert_eq!(scu.sum("peercam_scu_mtus", &[]), 1.0);
    let mtu_page = &pages["mtu"];
    assert_eq!(mtu_page.sum("peercam_mtu_registered", &[]), 1.0);
    assert!(mtu_page.sum("peercam_mtu_turn_binding_requests_total", &[]) >= 1.0);
    let cs_page = &pages["cs"];
    assert!(
        cs_page.sum(
            "peercam_cs_http_requests_total",
            &[("class", "hello"), ("status", "4xx")]
        ) >= 1.0
    );
    // Nothing secret on any page: no device id, no token, no password.
    for (unit, page) in &pages {
        let text = std::fs::read_to_string(dir.path().join(format!("{unit}.prom"))).unwrap();
        for secret in [
            cam.device_id.as_str(),
            play.token.as_str(),
            peercam_test::PASSWORD,
        ] {
            assert!(!text.contains(secret), "{unit} page shows {secret}");
        }
        assert!(!page.samples.is_empty());
    }
    c.stop().await;
}
