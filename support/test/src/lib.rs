//! A peercam platform on loopback for tests and benchmarks.
//!
//! [`Cluster::start`] runs a CMU (TLS, SQLite file, SMS outbox) and SCU nodes on ephemeral
//! ports of 127.0.0.1 with a fresh private CA; [`Cluster::start_postgres`] runs the same
//! with the CMU on a fresh PostgreSQL database ([`postgres`]). Units talk over real sockets exactly as when
//! deployed apart; the harness only wires their configurations together and plays operator
//! and users through the public API.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

pub mod natlab;
pub mod playback;
pub mod postgres;
pub mod s3;
pub mod tone;
pub mod web;
pub mod webrtc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use ed25519_dalek::SigningKey;
use peercam_base::DeviceId;
use peercam_cu::Client;
use peercam_net::Shutdown;
use peercam_net::pki::{Pki, PkiFiles};
use peercam_signal::cm::ProvisionDevice;
use peercam_signal::identity::{BindCode, DeviceIdentity};
use peercam_signal::ps::DeviceKind;

pub use peercam_cu::CuError;
pub use peercam_net::skip::skip;

/// Logs to the test output when `PEERCAM_LOG` is set.
pub fn init_logs() {
    if let Ok(f) = std::env::var("PEERCAM_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(f))
            .with_test_writer()
            .try_init();
    }
}

/// The password of every account [`Cluster::owner`] makes.
pub const PASSWORD: &str = "correct horse battery";

/// A running platform.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub pki: PkiFiles,
    pub ca_pem: Vec<u8>,
    pub cmu_addr: SocketAddr,
    pub api: String,
    pub scu_secret: String,
    pub scus: Vec<peercam_scu::Running>,
    pub scu_shutdowns: Vec<Shutdown>,
    pub shutdown: Shutdown,
    pub admin: Client,
    /// The address every unit of the cluster listens on (127.0.0.1 unless started with
    /// [`Cluster::start_at`], e.g. inside a NAT lab namespace).
    pub host: std::net::IpAddr,
    /// Where the CMU serves `GET /metrics`, when its `metrics_listen` was set.
    pub cmu_metrics: Option<SocketAddr>,
    cmu_task: Option<tokio::task::JoinHandle<()>>,
    /// The CMU's configuration as started (for more instances on its database).
    cmu_config: peercam_cmu::Config,
    /// The CMU's PostgreSQL database, kept while the cluster lives (declared last: dropped
    /// after the units).
    postgres: Option<postgres::PgDatabase>,
}

impl Cluster {
    /// A CMU and `scu_nodes` SCU nodes.
    pub async fn start(scu_nodes: usize) -> anyhow::Result<Self> {
        Self::start_with(scu_nodes, |_| {}).await
    }

    /// Like [`Cluster::start`], with a chance to adjust the CMU's configuration.
    pub async fn start_with(
        scu_nodes: usize,
        adjust: impl FnOnce(&mut peercam_cmu::Config),
    ) -> anyhow::Result<Self> {
        Self::start_full([127, 0, 0, 1].into(), scu_nodes, adjust).await
    }

    /// Like [`Cluster::start`] with the CMU on a fresh PostgreSQL database; `None` (after
    /// [`skip`], which fails under CI) where PostgreSQL is not installed. `test` names the
    /// test in that message.
    pub async fn start_postgres(scu_nodes: usize, test: &str) -> anyhow::Result<Option<Self>> {
        Self::start_postgres_with(scu_nodes, test, |_| {}).await
    }

    /// [`Cluster::start_postgres`] with a chance to adjust the CMU's configuration.
    pub async fn start_postgres_with(
        scu_nodes: usize,
        test: &str,
        adjust: impl FnOnce(&mut peercam_cmu::Config),
    ) -> anyhow::Result<Option<Self>> {
        let test = test.to_owned();
        let Some(db) = tokio::task::spawn_blocking(move || postgres::database(&test)).await? else {
            return Ok(None);
        };
        let url = db.url.clone();
        let mut c = Self::start_full([127, 0, 0, 1].into(), scu_nodes, |cfg| {
            cfg.database_url = url;
            adjust(cfg);
        })
        .await?;
        c.postgres = Some(db);
        Ok(Some(c))
    }

    /// The CMU's PostgreSQL database (its URL; restarting its server), when it has one.
    pub fn postgres(&self) -> Option<&postgres::PgDatabase> {
        self.postgres.as_ref()
    }

    /// A CMU and `scu_nodes` SCU nodes listening on `host` (its certificate names it).
    pub async fn start_at(host: std::net::IpAddr, scu_nodes: usize) -> anyhow::Result<Self> {
        Self::start_full(host, scu_nodes, |_| {}).await
    }

    /// [`Cluster::start_at`] with a chance to adjust the CMU's configuration.
    pub async fn start_at_with(
        host: std::net::IpAddr,
        scu_nodes: usize,
        adjust: impl FnOnce(&mut peercam_cmu::Config),
    ) -> anyhow::Result<Self> {
        Self::start_full(host, scu_nodes, adjust).await
    }

    async fn start_full(
        host: std::net::IpAddr,
        scu_nodes: usize,
        adjust: impl FnOnce(&mut peercam_cmu::Config),
    ) -> anyhow::Result<Self> {
        init_logs();
        let dir = tempfile::tempdir()?;
        let host_name = host.to_string();
        let pki = Pki::generate(&["localhost", "127.0.0.1", "::1", host_name.as_str()])?
            .write(&dir.path().join("pki"))?;
        let ca_pem = std::fs::read(&pki.ca_cert)?;
        let scu_secret = "test-scu-secret-0123456789".to_owned();
        let shutdown = Shutdown::new();
        let mut cfg = peercam_cmu::Config::new(
            format!("sqlite://{}", dir.path().join("cmu.db").display()),
            dir.path().to_path_buf(),
            vec![scu_secret.clone()],
            peercam_cmu::SmsConfig::Outbox {
                dir: dir.path().join("sms-outbox"),
                mms: false,
            },
        );
        cfg.listen = SocketAddr::new(host, 0);
        cfg.tls = Some(peercam_cmu::TlsFiles {
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
        });
        adjust(&mut cfg);
        let cmu_config = cfg.clone();
        let cmu = peercam_cmu::start(cfg, shutdown.clone()).await?;
        let api = format!("https://{}", cmu.addr);
        let password = std::fs::read_to_string(dir.path().join("admin.password"))?
            .trim()
            .to_owned();
        let (admin, _) = Client::new(&api, Some(&ca_pem))?
            .login("admin", &password)
            .await?;
        let mut c = Self {
            dir,
            pki,
            ca_pem,
            cmu_addr: cmu.addr,
            api,
            scu_secret,
            scus: Vec::new(),
            scu_shutdowns: Vec::new(),
            shutdown,
            admin,
            host,
            cmu_metrics: cmu.metrics_addr,
            cmu_task: Some(cmu.task),
            cmu_config,
            postgres: None,
        };
        for i in 0..scu_nodes {
            c.add_scu(&format!("scu-{}", i + 1)).await?;
        }
        Ok(c)
    }

    /// The SCU configuration for a node of this cluster.
    pub fn scu_config(&self, node: &str, listen: SocketAddr) -> peercam_scu::Config {
        let mut cfg = peercam_scu::Config::new(
            self.pki.server_cert.clone(),
            self.pki.server_key.clone(),
            self.cmu_url(),
            self.pki.ca_cert.clone(),
            self.scu_secret.clone(),
        );
        cfg.listen = listen;
        cfg.node = node.parse().unwrap();
        cfg
    }

    /// The CMU's platform endpoint for SCUs.
    pub fn cmu_url(&self) -> String {
        format!("wss://{}/platform/v1/scu", self.cmu_addr)
    }

    /// Starts another SCU node.
    pub async fn add_scu(&mut self, node: &str) -> anyhow::Result<String> {
        let sd = Shutdown::new();
        let running = peercam_scu::start(
            self.scu_config(node, SocketAddr::new(self.host, 0)),
            sd.clone(),
        )
        .await?;
        let url = format!("wss://{}/", running.addr);
        self.scus.push(running);
        self.scu_shutdowns.push(sd);
        Ok(url)
    }

    /// The device URL of SCU node `i`.
    pub fn scu_url(&self, i: usize) -> String {
        format!("wss://{}/", self.scus[i].addr)
    }

    /// An anonymous client of the CMU.
    pub fn client(&self) -> Client {
        Client::new(&self.api, Some(&self.ca_pem)).unwrap()
    }

    /// Makes identities and records them in the CMU; writes identity files.
    pub async fn provision(&self, count: usize) -> anyhow::Result<Vec<DeviceIdentity>> {
        let ids: Vec<_> = (0..count).map(|_| new_identity(DeviceKind::Pu)).collect();
        self.provision_these(&ids).await?;
        Ok(ids)
    }

    /// Records given identities in the CMU and writes their files.
    pub async fn provision_these(&self, ids: &[DeviceIdentity]) -> anyhow::Result<()> {
        for chunk in ids.chunks(5000) {
            let devices = chunk.iter().map(provision_record).collect();
            self.admin.provision(devices).await?;
        }
        for i in ids {
            std::fs::write(self.identity_path(&i.device_id), i.to_toml())?;
        }
        Ok(())
    }

    /// Where a device's identity file is written.
    pub fn identity_path(&self, id: &DeviceId) -> PathBuf {
        self.dir.path().join(format!("{id}.identity.toml"))
    }

    /// Starts a PU agent for `id` against SCU node `scu`.
    pub async fn start_pu(
        &self,
        id: &DeviceIdentity,
        scu: usize,
    ) -> anyhow::Result<(peercam_pu::Running, Shutdown)> {
        self.start_pu_with(id, scu, |_| {}).await
    }

    /// Like [`Cluster::start_pu`], with a chance to adjust the PU's configuration.
    pub async fn start_pu_with(
        &self,
        id: &DeviceIdentity,
        scu: usize,
        adjust: impl FnOnce(&mut peercam_pu::Config),
    ) -> anyhow::Result<(peercam_pu::Running, Shutdown)> {
        let mut n = [0u8; 6];
        getrandom::fill(&mut n).unwrap();
        let path = self.dir.path().join(
            format!("pu-{}-{:02x?}.identity.toml", id.device_id, n)
                .replace([' ', ',', '[', ']'], ""),
        );
        std::fs::write(&path, id.to_toml())?;
        let sd = Shutdown::new();
        let mut cfg = peercam_pu::Config::new(path, self.scu_url(scu), self.pki.ca_cert.clone());
        cfg.reconnect_initial_ms = 100;
        cfg.reconnect_max_ms = 2000;
        cfg.rtsp_listen = SocketAddr::from(([127, 0, 0, 1], 0));
        adjust(&mut cfg);
        Ok((peercam_pu::start(cfg, sd.clone()).await?, sd))
    }

    /// Starts an NVR (kind `nvr` identity) on loopback with its store under the cluster's
    /// directory; `adjust` may change the configuration first.
    pub async fn start_nvr_with(
        &self,
        id: &DeviceIdentity,
        scu: usize,
        adjust: impl FnOnce(&mut peercam_nvr::Config),
    ) -> anyhow::Result<(peercam_nvr::Running, Shutdown)> {
        let path = self
            .dir
            .path()
            .join(format!("nvr-{}.identity.toml", id.device_id));
        std::fs::write(&path, id.to_toml())?;
        let sd = Shutdown::new();
        let mut cfg = peercam_nvr::Config::new(path, self.scu_url(scu), self.pki.ca_cert.clone());
        cfg.reconnect_initial_ms = 100;
        cfg.reconnect_max_ms = 2000;
        cfg.media_listen = SocketAddr::from(([127, 0, 0, 1], 0));
        adjust(&mut cfg);
        Ok((peercam_nvr::start(cfg, sd.clone()).await?, sd))
    }

    /// Starts a CS (kind `cs` identity) on loopback, registering with SCU node `scu`, its
    /// object store and index under the cluster's directory (the same on a restart), no
    /// grant keys but the CMU's (Su); `adjust` may change the configuration first.
    pub async fn start_cs_with(
        &self,
        id: &DeviceIdentity,
        scu: usize,
        adjust: impl FnOnce(&mut peercam_cs::CsConfig),
    ) -> anyhow::Result<(peercam_cs::Running, Shutdown)> {
        let base = self.dir.path().join(format!("cs-{}", id.device_id));
        std::fs::create_dir_all(&base)?;
        let path = base.join("identity.toml");
        std::fs::write(&path, id.to_toml())?;
        let sd = Shutdown::new();
        let mut cfg = peercam_cs::CsConfig::new(id.device_id.to_string(), base.join("objects"));
        cfg.listen = SocketAddr::new(self.host, 0);
        cfg.index = Some(base.join("index.db"));
        let mut link =
            peercam_cs::PlatformLink::new(path, self.scu_url(scu), self.pki.ca_cert.clone());
        link.reconnect_initial_ms = 100;
        link.reconnect_max_ms = 2000;
        cfg.platform = Some(link);
        adjust(&mut cfg);
        let keys = std::sync::Arc::new(cfg.static_keys()?);
        Ok((peercam_cs::start(cfg, keys, sd.clone()).await?, sd))
    }

    /// Starts an MTU (kind `mtu` identity) on loopback; `adjust` may change the
    /// configuration first.
    pub async fn start_mtu_with(
        &self,
        id: &DeviceIdentity,
        scu: usize,
        adjust: impl FnOnce(&mut peercam_mtu::Config),
    ) -> anyhow::Result<(peercam_mtu::Running, Shutdown)> {
        let path = self
            .dir
            .path()
            .join(format!("mtu-{}.identity.toml", id.device_id));
        std::fs::write(&path, id.to_toml())?;
        let sd = Shutdown::new();
        let mut cfg = peercam_mtu::Config::new(
            path,
            self.scu_url(scu),
            self.pki.ca_cert.clone(),
            self.pki.server_cert.clone(),
            self.pki.server_key.clone(),
        );
        cfg.reconnect_initial_ms = 100;
        cfg.reconnect_max_ms = 2000;
        cfg.report_ms = 300;
        cfg.linger_ms = 1000;
        cfg.rtsp_listen = SocketAddr::new(self.host, 0);
        cfg.tunnel_listen = SocketAddr::new(self.host, 0);
        adjust(&mut cfg);
        Ok((peercam_mtu::start(cfg, sd.clone()).await?, sd))
    }

    /// Provisions and starts an MTU serving TURN (UDP and TCP on the cluster's host) with
    /// `secret` (the CMU's `turn_secret`), relaying to `allow_peers` (loopback allowed when
    /// one of them is in 127/8); waits until it is registered.
    pub async fn start_turn_mtu(
        &self,
        secret: &str,
        allow_peers: &[&str],
    ) -> anyhow::Result<(peercam_mtu::Running, Shutdown)> {
        let id = new_identity(DeviceKind::Mtu);
        self.admin.provision(vec![provision_record(&id)]).await?;
        let loopback = allow_peers.iter().any(|p| p.starts_with("127."));
        let host = self.host;
        let (mut m, sd) = self
            .start_mtu_with(&id, 0, |cfg| {
                cfg.turn = Some(peercam_mtu::turn::Config {
                    listen_udp: Some(SocketAddr::new(host, 0)),
                    listen_tcp: Some(SocketAddr::new(host, 0)),
                    secret: secret.into(),
                    allow_loopback_peers: loopback,
                    allow_peers: allow_peers.iter().map(|p| (*p).to_owned()).collect(),
                    threads: Some(1),
                    ..peercam_mtu::turn::Config::default()
                });
            })
            .await?;
        tokio::time::timeout(
            Duration::from_secs(10),
            m.status
                .wait_for(|s| matches!(s, peercam_mtu::MtuStatus::Registered { .. })),
        )
        .await??;
        Ok((m, sd))
    }

    /// Starts a PU and waits until the CMU sees it online.
    pub async fn start_pu_online(
        &self,
        id: &DeviceIdentity,
        scu: usize,
    ) -> anyhow::Result<(peercam_pu::Running, Shutdown)> {
        let r = self.start_pu(id, scu).await?;
        self.wait_online(&id.device_id, true, Duration::from_secs(10))
            .await?;
        Ok(r)
    }

    /// Waits until the CMU's operator view shows the device online (or offline).
    pub async fn wait_online(
        &self,
        id: &DeviceId,
        online: bool,
        within: Duration,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let list = self.admin.admin_devices().await?;
            if list
                .iter()
                .any(|d| d.id == id.as_str() && d.online == online)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!(
                    "{id} not {} within {within:?}",
                    if online { "online" } else { "offline" }
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The newest SMS code sent to `phone`.
    pub fn sms_code(&self, phone: &str) -> anyhow::Result<String> {
        peercam_cmu::sms::latest_code(&self.dir.path().join("sms-outbox"), phone)?
            .with_context(|| format!("no SMS for {phone}"))
    }

    /// Writes an `scu.toml` for a node of this cluster listening on `127.0.0.1:port`.
    pub fn write_scu_toml(&self, node: &str, port: u16) -> anyhow::Result<PathBuf> {
        let cfg = self.scu_config(node, SocketAddr::from(([127, 0, 0, 1], port)));
        let toml = format!(
            "listen = \"127.0.0.1:{port}\"\nnode = \"{node}\"\ntls_cert = {:?}\ntls_key = {:?}\ncmu_url = {:?}\ncmu_ca = {:?}\nnode_secret = {:?}\n",
            cfg.tls_cert, cfg.tls_key, cfg.cmu_url, cfg.cmu_ca, cfg.node_secret
        );
        let path = self.dir.path().join(format!("{node}.toml"));
        std::fs::write(&path, toml)?;
        Ok(path)
    }

    /// Starts SCU node `node` as a process of its own (`exe scu`, the bench's or test's
    /// `env!("CARGO_BIN_EXE_peercam")`, with `ulimit -n` raised) on a free port of
    /// 127.0.0.1, so that its CPU and memory can be read from /proc; returns the process
    /// and its device URL once it accepts connections (and a moment more to reach the CMU).
    pub async fn spawn_scu(
        &self,
        exe: &str,
        node: &str,
    ) -> anyhow::Result<(std::process::Child, String)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let path = self.write_scu_toml(node, port)?;
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n 1048576 2>/dev/null || ulimit -n 65536; exec {exe} scu --config {}",
                path.display()
            ))
            .env("PEERCAM_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok((child, format!("wss://127.0.0.1:{port}/")))
    }

    /// Runs the CLI `exe cu ARGS` (the test's `env!("CARGO_BIN_EXE_peercam")`) against this
    /// cluster as `user` with the password [`Self::owner`] gives, in a home of its own;
    /// returns (success, stdout, stderr).
    pub async fn cu_cli(&self, exe: &str, user: &str, args: &[&str]) -> (bool, String, String) {
        self.cli(exe, "cu", user, PASSWORD, args).await
    }

    /// Runs `exe admin ARGS` (the test's `env!("CARGO_BIN_EXE_peercam")`) as this cluster's
    /// operator, in a home of its own; returns (success, stdout, stderr).
    pub async fn admin_cli(&self, exe: &str, args: &[&str]) -> (bool, String, String) {
        let password = std::fs::read_to_string(self.dir.path().join("admin.password"))
            .expect("the operator's password file");
        self.cli(exe, "admin", "admin", password.trim(), args).await
    }

    async fn cli(
        &self,
        exe: &str,
        command: &str,
        user: &str,
        password: &str,
        args: &[&str],
    ) -> (bool, String, String) {
        let home = tempfile::tempdir().expect("a temporary home");
        let out = tokio::process::Command::new(exe)
            .args([command, "--api", &self.api, "--ca"])
            .arg(&self.pki.ca_cert)
            .args(["--user", user, "--password", password])
            .args(args)
            .env("PEERCAM_HOME", home.path())
            .output()
            .await
            .expect("the peercam binary runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Signs up `phone`, confirms by SMS, has the operator approve, logs in.
    pub async fn owner(&self, phone: &str) -> anyhow::Result<Client> {
        let password = PASSWORD;
        let anon = self.client();
        anon.signup(phone, password).await?;
        anon.confirm(phone, &self.sms_code(phone)?).await?;
        let id = self
            .admin
            .admin_users(Some("pending_approval"))
            .await?
            .into_iter()
            .find(|u| u.login == phone)
            .context("not pending")?
            .id;
        self.admin.approve(id).await?;
        Ok(anon.login(phone, password).await?.0)
    }

    /// Creates a sub-account of `owner` and logs it in.
    pub async fn sub(&self, owner: &Client, username: &str) -> anyhow::Result<Client> {
        owner
            .create_subaccount(username, "sub account pass")
            .await?;
        Ok(self.client().login(username, "sub account pass").await?.0)
    }

    /// Binds with retries while presence propagates.
    pub async fn bind(&self, owner: &Client, id: &DeviceIdentity) -> anyhow::Result<()> {
        owner
            .bind(id.device_id.as_str(), &id.bind_code.display(), None)
            .await?;
        Ok(())
    }

    /// Stops everything.
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        for s in &self.scu_shutdowns {
            s.trigger();
        }
        if let Some(t) = self.cmu_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
    }

    /// Issue 19: another CMU instance on this cluster's database (the same file or
    /// PostgreSQL database, TLS certificate and SCU secrets), listening on a port of its own.
    /// No SCU connects to it; it serves the API and shares every stored state.
    pub async fn start_another_cmu(&self) -> anyhow::Result<OtherCmu> {
        let mut cfg = self.cmu_config.clone();
        cfg.listen = SocketAddr::new(self.host, 0);
        let shutdown = Shutdown::new();
        let cmu = peercam_cmu::start(cfg, shutdown.clone()).await?;
        Ok(OtherCmu {
            api: format!("https://{}", cmu.addr),
            addr: cmu.addr,
            ca_pem: self.ca_pem.clone(),
            shutdown,
            task: Some(cmu.task),
            runtime: None,
        })
    }

    /// Issue 19: another CMU instance like [`Cluster::start_another_cmu`], on a tokio runtime
    /// of its own, so that [`OtherCmu::crash`] can end it at once as `kill -9` would: every
    /// socket closes, nothing is cleaned up, its rows stay behind.
    pub async fn start_crashable_cmu(&self) -> anyhow::Result<OtherCmu> {
        let mut cfg = self.cmu_config.clone();
        cfg.listen = SocketAddr::new(self.host, 0);
        let shutdown = Shutdown::new();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let cmu = rt
            .spawn(peercam_cmu::start(cfg, shutdown.clone()))
            .await??;
        Ok(OtherCmu {
            api: format!("https://{}", cmu.addr),
            addr: cmu.addr,
            ca_pem: self.ca_pem.clone(),
            shutdown,
            task: Some(cmu.task),
            runtime: Some(rt),
        })
    }

    /// Starts an SCU node whose CMU link goes to `cmu` (an address: another instance, or a
    /// [`Balancer`] in front of several); returns its index in [`Cluster::scus`].
    pub async fn add_scu_to(&mut self, node: &str, cmu: SocketAddr) -> anyhow::Result<usize> {
        let mut cfg = self.scu_config(node, SocketAddr::new(self.host, 0));
        cfg.cmu_url = format!("wss://{cmu}/platform/v1/scu");
        let sd = Shutdown::new();
        let running = peercam_scu::start(cfg, sd.clone()).await?;
        self.scus.push(running);
        self.scu_shutdowns.push(sd);
        Ok(self.scus.len() - 1)
    }

    /// Issue 19: stops the CMU and starts a new instance on the same address and database,
    /// as after a crash or an upgrade; the SCU nodes reconnect and announce their devices.
    pub async fn restart_cmu(&mut self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        if let Some(t) = self.cmu_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        let mut cfg = self.cmu_config.clone();
        cfg.listen = self.cmu_addr;
        let shutdown = Shutdown::new();
        // The port was just released; a moment may pass before it can be bound again.
        let mut tries = 0;
        let cmu = loop {
            match peercam_cmu::start(cfg.clone(), shutdown.clone()).await {
                Ok(cmu) => break cmu,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.shutdown = shutdown;
        self.cmu_task = Some(cmu.task);
        Ok(())
    }

    /// The CMU's configuration, to change before [`Cluster::restart_cmu`].
    pub fn cmu_config_mut(&mut self) -> &mut peercam_cmu::Config {
        &mut self.cmu_config
    }

    /// The path of the CMU database file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("cmu.db")
    }

    /// The temporary directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Another CMU instance on a cluster's database ([`Cluster::start_another_cmu`]).
pub struct OtherCmu {
    /// Its API and platform listener.
    pub addr: SocketAddr,
    /// `https://ADDR`.
    pub api: String,
    ca_pem: Vec<u8>,
    shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Its own runtime ([`Cluster::start_crashable_cmu`]).
    runtime: Option<tokio::runtime::Runtime>,
}

impl OtherCmu {
    /// Ends an instance started with [`Cluster::start_crashable_cmu`] at once, as `kill -9`:
    /// its tasks stop where they are and its sockets close.
    pub fn crash(mut self) {
        self.task.take();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }

    /// An anonymous client of this instance.
    pub fn client(&self) -> Client {
        Client::new(&self.api, Some(&self.ca_pem)).unwrap()
    }

    /// Stops it.
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A TCP load balancer for tests (issue 19): each connection goes to the first of its
/// backends that accepts it, as a balancer whose health check has dropped a dead instance.
pub struct Balancer {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Shutdown,
}

impl Balancer {
    /// Listens on a free port of 127.0.0.1 in front of `backends`, in order of preference.
    pub async fn start(backends: Vec<SocketAddr>) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shutdown = Shutdown::new();
        let sd = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = tokio::select! {
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    () = sd.wait() => return,
                };
                let (backends, sd) = (backends.clone(), sd.clone());
                tokio::spawn(async move {
                    for b in backends {
                        if let Ok(mut up) = tokio::net::TcpStream::connect(b).await {
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut conn, &mut up) => {}
                                () = sd.wait() => {}
                            }
                            return;
                        }
                    }
                });
            }
        });
        Ok(Self { addr, shutdown })
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// A fresh device identity.
pub fn new_identity(kind: DeviceKind) -> DeviceIdentity {
    let mut seed = [0u8; 32];
    let mut idb = [0u8; 10];
    let mut code = [0u8; 8];
    getrandom::fill(&mut seed).unwrap();
    getrandom::fill(&mut idb).unwrap();
    getrandom::fill(&mut code).unwrap();
    DeviceIdentity::new(
        DeviceId::from_random(idb),
        kind,
        "peercam".into(),
        "synthetic".into(),
        &SigningKey::from_bytes(&seed),
        BindCode::from_random(code),
    )
}

/// The CMU's provisioning record for an identity.
pub fn provision_record(i: &DeviceIdentity) -> ProvisionDevice {
    ProvisionDevice {
        id: i.device_id.to_string(),
        kind: i.kind,
        public_key: peercam_signal::register::encode_public_key(
            &i.signing_key().unwrap().verifying_key(),
        ),
        bind_code_sha256: i.bind_code.digest(&i.device_id),
        vendor: i.vendor.clone(),
        model: i.model.clone(),
    }
}

/// The same device id with another key (an impostor or a cloned label).
pub fn impostor(of: &DeviceIdentity) -> DeviceIdentity {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    DeviceIdentity::new(
        of.device_id.clone(),
        of.kind,
        of.vendor.clone(),
        of.model.clone(),
        &SigningKey::from_bytes(&seed),
        of.bind_code.clone(),
    )
}

/// Plays `url` (an RTSP URL with its token) over TCP interleaved with a minimal RTSP client:
/// DESCRIBE, SETUP of the video track on channels 0-1, PLAY. Returns the connection right
/// after the PLAY answer, with interleaved media to follow.
pub async fn play_raw(url: &str) -> anyhow::Result<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let hostport = url
        .trim_start_matches("rtsp://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let base = url.split('?').next().unwrap_or(url);
    let mut tcp = tokio::net::TcpStream::connect(&hostport).await?;
    let mut session = String::new();
    for step in 0..3 {
        let req = match step {
            0 => format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            1 => format!(
                "SETUP {base}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
            ),
            _ => format!("PLAY {base}/ RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n"),
        };
        tcp.write_all(req.as_bytes()).await?;
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut b).await?;
            head.push(b[0]);
        }
        let text = String::from_utf8_lossy(&head).to_string();
        anyhow::ensure!(text.starts_with("RTSP/1.0 200"), "refused: {text}");
        let header = |name: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        if let Some(len) = header("content-length") {
            let mut body = vec![0u8; len.parse()?];
            tcp.read_exact(&mut body).await?;
        }
        if let Some(s) = header("session") {
            session = s.split(';').next().unwrap_or_default().to_owned();
        }
    }
    Ok(tcp)
}

/// Sends one DESCRIBE for `url` and returns the status code and every byte that came back
/// (nothing more may follow a refusal).
pub async fn rtsp_describe(url: &str) -> (u16, Vec<u8>) {
    use std::time::Instant;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let hostport = url
        .trim_start_matches("rtsp://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&hostport).await.unwrap();
    let req = format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !got.windows(4).any(|w| w == b"\r\n\r\n") && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    // Anything more that arrives within a moment (there must be no media after a refusal).
    if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut buf)).await {
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, got)
}
