//! The operator's device search (H.626.4 6.1.1, 6.2; issue 18 acceptance: p99 at most
//! 50 ms over 100,000 devices) measured end to end: a CMU on loopback with a SQLite file,
//! 100,000 devices imported from CSV (20 models of 5 vendors, every tenth named), then each
//! kind of search asked repeatedly over HTTP as the operator's browser would.
//!
//!   cargo bench -p peercam-cmu --bench device_search            (100,000 devices)
//!   PEERCAM_BENCH_DEVICES=20000 PEERCAM_BENCH_ROUNDS=50 cargo bench ...
//!   PEERCAM_BENCH_DATABASE_URL=postgres://... cargo bench ...   (an empty database)
//!
//! Prints one line per query: p50, p99 and max in milliseconds, and `total` (`+`: capped).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    missing_docs
)]

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use peercam_base::DeviceId;
use peercam_net::Shutdown;
use peercam_signal::cm_equipment::{ImportRow, write_import};
use peercam_signal::ps::DeviceKind;
use serde_json::{Value, json};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let devices = env("PEERCAM_BENCH_DEVICES", 100_000);
    let rounds = env("PEERCAM_BENCH_ROUNDS", 200);
    let dir = tempfile::tempdir().unwrap();
    // PEERCAM_BENCH_DATABASE_URL: an empty PostgreSQL database instead of the SQLite file.
    let database = std::env::var("PEERCAM_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("cmu.db").display()));
    let mut cfg = peercam_cmu::Config::new(
        database,
        dir.path().to_path_buf(),
        vec!["bench-node-secret-0123456789abcdef".into()],
        peercam_cmu::SmsConfig::Outbox {
            dir: dir.path().join("sms-outbox"),
            mms: false,
        },
    );
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    let shutdown = Shutdown::new();
    let cmu = peercam_cmu::start(cfg, shutdown.clone()).await.unwrap();
    let api = format!("http://{}/api/v1", cmu.addr);
    let http = reqwest::Client::new();
    let password = std::fs::read_to_string(dir.path().join("admin.password")).unwrap();
    let login: Value = http
        .post(format!("{api}/login"))
        .json(&json!({"login": "admin", "password": password.trim()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().expect("operator token").to_owned();
    let auth = format!("Bearer {token}");

    // The catalogue: 5 vendors, 4 models each.
    for v in 0..5 {
        let r = http
            .post(format!("{api}/admin/vendors"))
            .header("authorization", &auth)
            .json(&json!({"name": format!("Vendor{v}")}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        for m in 0..4 {
            let r = http
                .post(format!("{api}/admin/models"))
                .header("authorization", &auth)
                .json(&json!({"vendor": format!("Vendor{v}"), "name": format!("Model{v}{m}"), "ptz": m % 2 == 0}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
    }

    // The devices, imported 10,000 a file.
    let started = Instant::now();
    let mut ids = Vec::with_capacity(devices);
    let mut rows = Vec::with_capacity(10_000);
    for n in 0..devices {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(n as u64).to_le_bytes());
        let mut idb = [0u8; 10];
        idb[..8].copy_from_slice(&(n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
        let id = DeviceId::from_random(idb);
        let key = SigningKey::from_bytes(&seed);
        let (v, m) = (n % 5, (n / 5) % 4);
        rows.push(ImportRow {
            line: 0,
            device_id: id.to_string(),
            kind: DeviceKind::Pu,
            public_key: peercam_signal::register::encode_public_key(&key.verifying_key()),
            bind_code_sha256: format!("{:064x}", n),
            vendor: format!("Vendor{v}"),
            model: format!("Model{v}{m}"),
            name: (n % 10 == 0).then(|| format!("Door {n}")),
            account: None,
        });
        ids.push(id);
        if rows.len() == 10_000 || n + 1 == devices {
            let r = http
                .post(format!("{api}/admin/devices/import"))
                .header("authorization", &auth)
                .header("content-type", "text/csv")
                .body(write_import(&rows))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
            rows.clear();
        }
    }
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    println!(
        "{devices} devices imported in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let middle = ids[ids.len() / 2].to_string();
    let fragment = ids[ids.len() / 3].as_str()[3..9].to_owned();
    let queries = [
        ("first page", "limit=50".to_owned()),
        ("page by cursor", format!("limit=50&cursor={middle}")),
        ("name contains", "q=door%2012&limit=50".to_owned()),
        ("id fragment", format!("q={fragment}&limit=50")),
        ("model", "model=Model32&limit=50".to_owned()),
        (
            "vendor + state",
            "vendor=Vendor1&state=unassigned&limit=50".to_owned(),
        ),
        ("offline", "online=false&limit=50".to_owned()),
        ("no match", "q=nothing-like-this&limit=50".to_owned()),
        ("vendor", "vendor=Vendor2&limit=50".to_owned()),
        ("state", "state=unassigned&limit=50".to_owned()),
        ("online", "online=true&limit=50".to_owned()),
        ("text, broad", "q=model3&limit=50".to_owned()),
    ];
    println!(
        "{:<16} {:>8} {:>8} {:>8} {:>8}",
        "query", "p50 ms", "p99 ms", "max ms", "total"
    );
    for (label, q) in &queries {
        let mut times = Vec::with_capacity(rounds);
        let mut total = 0;
        let mut capped = false;
        for _ in 0..rounds {
            let t = Instant::now();
            let r = http
                .get(format!("{api}/admin/devices?{q}"))
                .header("authorization", &auth)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            let page: Value = r.json().await.unwrap();
            times.push(t.elapsed());
            total = page["total"].as_u64().unwrap();
            capped = page["total_capped"].as_bool().unwrap_or(false);
        }
        times.sort();
        let plus = if capped { "+" } else { "" };
        println!(
            "{label:<16} {:>8.2} {:>8.2} {:>8.2} {:>8}",
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            percentile(&times, 1.0),
            format!("{total}{plus}")
        );
    }
    shutdown.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(5), cmu.task).await;
}
