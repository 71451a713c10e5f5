//! Issue 19: a platform of real processes behind a real load balancer.
//!
//! [`Haproxy`] runs Debian's HAProxy in TCP mode (TLS passes through to the units) with a
//! configuration the test writes into a temporary directory, listening on 127.0.0.1; it is
//! stopped by its PID when dropped. [`Unit`] is a `peercam cmu` or `peercam scu` process of
//! the test's binary, ended by [`Unit::kill9`] as `kill -9` would (SIGKILL: no clean-up).
//! [`Cluster::write_cmu_toml`] and [`Cluster::write_scu_toml_to`] write their
//! configurations for a [`Cluster`]'s database, certificates and secrets, and
//! [`Cluster::serve_through`] stops the in-process CMU and points the harness's clients at
//! the balancer.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use peercam_cu::Client;

use crate::Cluster;

/// A free TCP port of 127.0.0.1 (bound and released: another process may take it first,
/// which the caller sees as a failed start).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Waits until something accepts TCP connections at `addr`.
pub async fn wait_listening(addr: SocketAddr, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "nothing listens on {addr} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where HAProxy is installed (`PATH`, then Debian's `/usr/sbin`).
fn find_haproxy() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("haproxy"))
            .find(|f| f.exists())
    });
    on_path.or_else(|| {
        let f = PathBuf::from("/usr/sbin/haproxy");
        f.exists().then_some(f)
    })
}

/// HAProxy in TCP mode in front of groups of backends: frontend `i` listens on
/// [`Haproxy::addr`]`(i)` and spreads connections round-robin over group `i`. A backend is
/// checked every 200 ms (a TCP connect, or `GET path` over TLS for a group with a health
/// path, as docs/deployment.md configures it) and taken out at the first failure; a
/// connection that cannot reach its backend is sent to another (`option redispatch`), so
/// new connections reach a live instance at once after one dies.
pub struct Haproxy {
    child: Child,
    addrs: Vec<SocketAddr>,
    /// Its configuration and log.
    pub dir: tempfile::TempDir,
}

impl Haproxy {
    /// Starts HAProxy for `groups` (backends, and the HTTPS health path of the group if it
    /// has one); `None` (after [`crate::skip`], which fails under CI) where it is not
    /// installed.
    pub async fn start(
        test: &str,
        groups: &[(Vec<SocketAddr>, Option<&str>)],
    ) -> anyhow::Result<Option<Self>> {
        let Some(bin) = find_haproxy() else {
            crate::skip(test, "HAProxy is not installed (Debian package haproxy)");
            return Ok(None);
        };
        let dir = tempfile::tempdir()?;
        let addrs: Vec<SocketAddr> = groups
            .iter()
            .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
            .collect();
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config(&addrs, groups))?;
        let log = std::fs::File::create(dir.path().join("haproxy.log"))?;
        let child = Command::new(bin)
            // -db: in the foreground, not as a daemon; the PID is the child's.
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting haproxy")?;
        let me = Self { child, addrs, dir };
        for a in &me.addrs {
            wait_listening(*a, Duration::from_secs(10))
                .await
                .with_context(|| me.log())?;
        }
        Ok(Some(me))
    }

    /// Where frontend `i` listens.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.addrs[i]
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration: one TCP frontend and backend per group.
fn config(addrs: &[SocketAddr], groups: &[(Vec<SocketAddr>, Option<&str>)]) -> String {
    let mut cfg = String::from(
        "global\n    maxconn 4096\n\ndefaults\n    mode tcp\n    timeout connect 1s\n    \
         timeout check 1s\n    timeout client 1h\n    timeout server 1h\n    retries 3\n    \
         option redispatch 1\n\n",
    );
    for (i, (addr, (group, health))) in addrs.iter().zip(groups).enumerate() {
        cfg.push_str(&format!(
            "frontend f{i}\n    bind {addr}\n    default_backend b{i}\n\nbackend b{i}\n    balance roundrobin\n"
        ));
        let check = match health {
            Some(path) => {
                cfg.push_str(&format!(
                    "    option httpchk GET {path}\n    http-check expect status 200\n"
                ));
                "check check-ssl verify none"
            }
            None => "check",
        };
        for (j, b) in group.iter().enumerate() {
            cfg.push_str(&format!(
                "    server s{j} {b} {check} inter 200ms fall 1 rise 2\n"
            ));
        }
        cfg.push('\n');
    }
    cfg
}

/// A unit running as a process of the `peercam` binary.
pub struct Unit {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its stderr (logs).
    pub log: PathBuf,
}

impl Unit {
    /// Runs `exe UNIT --config CONFIG` (`exe` is the test's `env!("CARGO_BIN_EXE_peercam")`),
    /// its logs (`PEERCAM_LOG`, default `warn`) into `LOG`; waits until it listens on `addr`.
    pub async fn spawn(
        exe: &str,
        unit: &str,
        config: &Path,
        addr: SocketAddr,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let filter = std::env::var("PEERCAM_LOG").unwrap_or_else(|_| "warn".into());
        let child = Command::new(exe)
            .args([unit, "--config"])
            .arg(config)
            .env("PEERCAM_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {exe} {unit}"))?;
        let mut me = Self { child, addr, log };
        if let Err(e) = wait_listening(addr, Duration::from_secs(30)).await {
            let _ = me.child.try_wait();
            anyhow::bail!("{unit}: {e}\n{}", me.logs());
        }
        Ok(me)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ends it as `kill -9` does (SIGKILL) and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What it logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        self.kill9();
    }
}

impl Cluster {
    /// Writes a `cmu.toml` for another CMU instance on this cluster's database (the same
    /// URL, certificate, SCU secrets, SMS outbox and data directory) listening on
    /// `127.0.0.1:port`; `extra` is appended as top-level keys.
    pub fn write_cmu_toml(&self, name: &str, port: u16, extra: &str) -> anyhow::Result<PathBuf> {
        let cfg = &self.cmu_config;
        let tls = cfg.tls.as_ref().context("the cluster's CMU has TLS")?;
        let sms = self.dir.path().join("sms-outbox");
        let toml = format!(
            "listen = \"127.0.0.1:{port}\"\ndatabase_url = {:?}\ndata_dir = {:?}\nscu_secrets = [{:?}]\n{extra}\n\
             [tls]\ncert = {:?}\nkey = {:?}\n\n[sms]\nkind = \"outbox\"\ndir = {:?}\n",
            cfg.database_url, cfg.data_dir, self.scu_secret, tls.cert, tls.key, sms
        );
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, toml)?;
        Ok(path)
    }

    /// Starts `peercam cmu` (`exe`, the test's binary) as [`Cluster::write_cmu_toml`]
    /// configures it, on a free port.
    pub async fn spawn_cmu(&self, exe: &str, name: &str, extra: &str) -> anyhow::Result<Unit> {
        let port = free_port();
        let path = self.write_cmu_toml(name, port, extra)?;
        let log = self.dir.path().join(format!("{name}.log"));
        Unit::spawn(
            exe,
            "cmu",
            &path,
            SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        )
        .await
    }

    /// Writes an `scu.toml` for node `node` on `127.0.0.1:port` whose CMU link goes to
    /// `cmu` (an instance, or a balancer in front of several).
    pub fn write_scu_toml_to(
        &self,
        node: &str,
        port: u16,
        cmu: SocketAddr,
    ) -> anyhow::Result<PathBuf> {
        let path = self.write_scu_toml(node, port)?;
        let toml = std::fs::read_to_string(&path)?.replace(
            &format!("cmu_url = {:?}", self.cmu_url()),
            &format!("cmu_url = {:?}", format!("wss://{cmu}/platform/v1/scu")),
        );
        std::fs::write(&path, toml)?;
        Ok(path)
    }

    /// Starts `peercam scu` (`exe`) as node `node` on `127.0.0.1:port` (see [`free_port`]),
    /// linked to `cmu`.
    pub async fn spawn_scu(
        &self,
        exe: &str,
        node: &str,
        port: u16,
        cmu: SocketAddr,
    ) -> anyhow::Result<Unit> {
        let path = self.write_scu_toml_to(node, port, cmu)?;
        let log = self.dir.path().join(format!("{node}.log"));
        Unit::spawn(
            exe,
            "scu",
            &path,
            SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        )
        .await
    }

    /// Devices the harness starts from now on ([`Cluster::start_pu`], MTUs, ...) connect to
    /// `front` (a balancer in front of SCU processes) whatever node index they are given.
    pub fn devices_through(&mut self, front: SocketAddr) {
        self.device_front = Some(format!("wss://{front}/"));
    }

    /// Stops the in-process CMU (it made the database and the operator's account) and
    /// points [`Cluster::api`], [`Cluster::client`] and [`Cluster::admin`] at `api_addr`
    /// (the balancer in front of the process instances).
    pub async fn serve_through(&mut self, api_addr: SocketAddr) -> anyhow::Result<()> {
        self.shutdown.trigger();
        if let Some(t) = self.cmu_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.api = format!("https://{api_addr}");
        self.cmu_addr = api_addr;
        let password = std::fs::read_to_string(self.dir.path().join("admin.password"))?;
        let (admin, _) = Client::new(&self.api, Some(&self.ca_pem))?
            .login("admin", password.trim())
            .await?;
        self.admin = admin;
        Ok(())
    }
}
