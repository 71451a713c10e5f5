//! Killing the SCU (kill -9 of a real `peercam scu` process) and restarting it: every PU is
//! back online within 10 s, with jittered backoff, and with no duplicate device sessions.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use peercam_test::Cluster;

fn spawn_scu(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_peercam"))
        .args(["scu", "--config"])
        .arg(config)
        .env("PEERCAM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn online_count(c: &Cluster) -> usize {
    c.admin
        .admin_devices()
        .await
        .unwrap()
        .iter()
        .filter(|d| d.online)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_1_pus_return_within_10s_after_scu_kill() {
    const N: usize = 20;
    let c = Cluster::start(0).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = c.write_scu_toml("scu-1", port).unwrap();
    let mut scu = spawn_scu(&path);

    let ids = c.provision(N).await.unwrap();
    let mut pus = Vec::new();
    for id in &ids {
        let sd = peercam_net::Shutdown::new();
        let mut pc = peercam_pu::Config::new(
            c.identity_path(&id.device_id),
            format!("wss://127.0.0.1:{port}/"),
            c.pki.ca_cert.clone(),
        );
        pc.reconnect_max_ms = 4000; // the production default
        pc.rtsp_listen = "127.0.0.1:0".parse().unwrap();
        pus.push((peercam_pu::start(pc, sd.clone()).await.unwrap(), sd));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while online_count(&c).await < N {
        assert!(Instant::now() < deadline, "PUs did not come online");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // kill -9: no goodbye to anyone.
    scu.kill().unwrap();
    scu.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while online_count(&c).await > 0 {
        assert!(Instant::now() < deadline, "CMU did not notice the SCU died");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // the PUs are now backing off
    let restarted = Instant::now();
    let mut scu = spawn_scu(&path);
    while online_count(&c).await < N {
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "only {} of {N} back after 10 s",
            online_count(&c).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovery = restarted.elapsed();
    eprintln!("all {N} PUs back online {recovery:?} after the SCU restarted");
    // Let any stragglers settle, then check there is exactly one session per device: each PU
    // registered exactly twice (before and after), none flaps.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(online_count(&c).await, N);
    for (pu, _) in &pus {
        assert_eq!(pu.registrations.load(Ordering::Relaxed), 2);
    }
    scu.kill().unwrap();
    let _ = scu.wait();
    c.stop().await;
}
