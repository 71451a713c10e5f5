//! Issue 19 figures with `peercam loadgen` against a cluster on loopback: two CMU instances
//! (this process) on one throwaway PostgreSQL database, one SCU node (a `peercam scu`
//! process). First registrations per second (N cameras, no users), then play-request
//! latency at a target rate across both CMUs (users alternate between them).
//!
//! `cargo bench --bench cluster_load -- [CAMERAS] [PLAY_RATE] [SECONDS] [POOL]`
//! (defaults 5000, 1000, 20, and the CMU's default `database_max_connections`, 8).
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use peercam_test::Cluster;

/// The PostgreSQL server listening on `port`: the process whose command line has `-p PORT`.
fn postmaster(port: u16) -> Option<u32> {
    let want = format!("-p\0{port}\0");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd);
        (cmd.contains("postgres") && cmd.contains(&want) && !cmd.contains("pg_ctl")).then_some(pid)
    })
}

async fn loadgen(c: &Cluster, cmus: &[&str], scu: &str, pids: &[String], args: &[String]) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_peercam"));
    cmd.arg("loadgen");
    for u in cmus {
        cmd.args(["--cmu", u]);
    }
    cmd.args(["--scu", scu, "--ca"])
        .arg(&c.pki.ca_cert)
        .arg("--operator-password-file")
        .arg(c.path().join("admin.password"))
        .arg("--sms-outbox")
        .arg(c.path().join("sms-outbox"));
    for p in pids {
        cmd.args(["--pid", p]);
    }
    cmd.args(args).env("PEERCAM_LOG", "error");
    println!("$ peercam loadgen ... {}", args.join(" "));
    let out = cmd.output().await.unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        eprintln!(
            "loadgen exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

async fn run(cameras: usize, play_rate: f64, seconds: f64, pool: Option<u32>) {
    let test = "cluster_load";
    let adjust = |cfg: &mut peercam_cmu::Config| {
        if let Some(p) = pool {
            cfg.database_max_connections = p;
        }
    };
    let Some(c) = Cluster::start_postgres_with(0, test, adjust).await.unwrap() else {
        eprintln!("PostgreSQL is not installed: no figures");
        return;
    };
    let other = c.start_another_cmu().await.unwrap();
    let scu_port = peercam_test::procs::free_port();
    let mut scu = c
        .spawn_scu(
            env!("CARGO_BIN_EXE_peercam"),
            "scu-load",
            scu_port,
            c.cmu_addr,
        )
        .await
        .unwrap();
    let scu_url = format!("wss://127.0.0.1:{scu_port}/");
    let pg_port: u16 = c
        .postgres()
        .unwrap()
        .url
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next()?.parse().ok())
        .unwrap();
    let mut pids = vec![
        format!("cmus={}", std::process::id()),
        format!("scu={}", scu.pid()),
    ];
    if let Some(pg) = postmaster(pg_port) {
        pids.push(format!("postgres={pg}+"));
    }
    println!("## registrations per second, CMU on PostgreSQL, {cameras} cameras");
    loadgen(
        &c,
        &[&c.api],
        &scu_url,
        &pids,
        &[
            "--cameras".into(),
            cameras.to_string(),
            "--users".into(),
            "0".into(),
            "--duration".into(),
            "0".into(),
        ],
    )
    .await;
    println!();
    println!("## play requests at {play_rate}/s across two CMUs, {seconds} s");
    loadgen(
        &c,
        &[&c.api, &other.api],
        &scu_url,
        &pids,
        &[
            "--cameras".into(),
            "200".into(),
            "--users".into(),
            "50".into(),
            "--cameras-per-user".into(),
            "4".into(),
            "--duration".into(),
            seconds.to_string(),
            "--play-rate".into(),
            play_rate.to_string(),
            "--list-rate".into(),
            "10".into(),
            "--ptz-rate".into(),
            "10".into(),
        ],
    )
    .await;
    scu.kill9();
    other.stop().await;
    c.stop().await;
}

fn main() {
    let _ = rlimit::increase_nofile_limit(1_048_576);
    let args: Vec<f64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let cameras = args.first().map_or(5000, |v| *v as usize);
    let rate = args.get(1).copied().unwrap_or(1000.0);
    let seconds = args.get(2).copied().unwrap_or(20.0);
    let pool = args.get(3).map(|p| *p as u32);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(cameras, rate, seconds, pool));
}
