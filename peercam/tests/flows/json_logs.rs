//! `PEERCAM_LOG_FORMAT=json` (H.626.4 6.1.14, network management: logs a collector can read):
//! a unit started with it writes one JSON object per line, with the event's fields as keys.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};

#[tokio::test]
async fn h626_6_1_14_json_logs_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cmu.toml");
    let d = dir.path().display();
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndatabase_url = \"sqlite://{d}/cmu.db\"\ndata_dir = \"{d}\"\n\
             scu_secrets = [\"0123456789abcdef0123\"]\n[sms]\nkind = \"outbox\"\ndir = \"{d}/sms\"\n"
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_peercam"))
        .args(["cmu", "--config"])
        .arg(&config)
        .env("PEERCAM_LOG_FORMAT", "json")
        .env("PEERCAM_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = tokio::time::timeout(Duration::from_secs(30), async {
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            if !line.starts_with('{') {
                // The operator password notice is printed, not logged.
                assert!(line.contains("operator account"), "a text line: {line}");
                continue;
            }
            let v: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(v["timestamp"].is_string() && v["level"].is_string(), "{v}");
            seen.push(v.clone());
            if v["fields"]["message"] == "CMU listening" {
                return v;
            }
        }
        panic!("the CMU stopped before it listened: {seen:?}");
    })
    .await
    .expect("a JSON line saying the CMU listens");
    assert_eq!(listening["level"], "INFO");
    assert!(
        listening["fields"]["addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{listening}"
    );
    child.start_kill().unwrap();
    let _ = child.wait().await;
}
