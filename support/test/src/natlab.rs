//! A NAT lab of Linux network namespaces for tests (docs/security.md "NAT lab").
//!
//! [`NatLab::new`] builds, from a [`LabSpec`]:
//!
//! - a `wan` namespace holding the bridge `br0` of the fake internet 198.51.100.0/24;
//! - a `srv` namespace on that bridge with 198.51.100.10 and 198.51.100.11 (servers, and
//!   the two addresses RFC 4787/5780-style mapping and filtering probes need);
//! - per site `s` (numbered from 1): a router namespace with `wan0` (198.51.100.(1+s), or
//!   the site's [`SiteSpec::public_addr`]) and a LAN bridge `lan0` (10.0.s.1/24) with hosts
//!   `eth0` = 10.0.s.(2+n) behind it, NATed according to [`NatKind`]. Sites of kind
//!   [`NatKind::None`] have no router: their hosts sit on the wan bridge with public
//!   addresses 198.51.100.(100+10s+n).
//!
//! Nothing is attached to the host's namespace, so no lab packet can leave the machine.
//! Namespace names carry the test process's PID and a counter, so parallel tests (and
//! parallel test binaries) never collide; interface names are per namespace. Everything
//! is deleted when the [`NatLab`] is dropped, also while unwinding from a panic; labs left
//! behind by killed test processes are deleted by the next [`NatLab::new`].
//!
//! Code runs inside a namespace either as a process ([`NatLab::command`],
//! [`NatLab::spawn`]: `ip netns exec`) or in-process on a thread moved into the namespace
//! with `setns(CLONE_NEWNET)`, running a future on its own tokio runtime
//! ([`NatLab::run_in`]): sockets that future opens live in the namespace.
//!
//! Needs root, `ip` (iproute2) and `iptables` (or `iptables-legacy`, see
//! [`LabSpec::iptables`]); otherwise [`NatLab::new`] returns [`LabError::Skipped`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::net::Ipv4Addr;
use std::os::fd::AsFd as _;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Errors of the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The lab cannot run here (not root, tools missing); tests should print this and
    /// return.
    #[error("skipped: {0}")]
    Skipped(String),
    /// A command failed.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A site, host or namespace that the lab does not have.
    #[error("no such {0}")]
    NoSuch(String),
    /// The future run by [`NatLab::run_in`] panicked.
    #[error("task in namespace {0} panicked")]
    Panicked(String),
    /// A daemon the lab started did not come up.
    #[error("{0}")]
    Failed(String),
}

impl LabError {
    /// Whether this is [`LabError::Skipped`].
    pub fn is_skip(&self) -> bool {
        matches!(self, Self::Skipped(_))
    }

    fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// The behaviour of a site's router (RFC 4787 terms; docs/security.md "NAT lab").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatKind {
    /// No router: the site's hosts have public addresses on the wan bridge.
    None,
    /// SNAT to the router's address + stateful FORWARD: endpoint-independent mapping,
    /// address-and-port-dependent filtering (Linux keeps the source port where it can).
    PortRestricted,
    /// MASQUERADE `--random-fully` + stateful FORWARD: a new random external port per
    /// destination (endpoint-dependent mapping).
    Symmetric,
    /// Like [`NatKind::PortRestricted`], but every forwarded UDP packet is dropped: only
    /// TCP gets out.
    UdpBlocked,
    /// Like [`NatKind::PortRestricted`], plus a static full-cone pair for UDP port `0` of
    /// the site's first host (external port = internal port).
    FullConeOnePort(u16),
}

/// One site: a router of some kind and hosts behind it.
#[derive(Debug, Clone)]
pub struct SiteSpec {
    /// The router's behaviour.
    pub nat: NatKind,
    /// How many hosts (at least one).
    pub hosts: usize,
    /// The router's WAN address instead of 198.51.100.(1+site). Used for gateways that
    /// refuse documentation addresses as their external address (miniupnpd); every
    /// namespace on the wan bridge reaches any address on-link, so any address works.
    pub public_addr: Option<Ipv4Addr>,
}

/// What to build.
#[derive(Debug, Clone)]
pub struct LabSpec {
    /// Sites, numbered from 1 in this order.
    pub sites: Vec<SiteSpec>,
    /// The iptables command for the routers: `iptables` (the system's default, nft on
    /// Debian) or `iptables-legacy` (for daemons built on libiptc, like
    /// miniupnpd-iptables).
    pub iptables: String,
}

impl Default for LabSpec {
    fn default() -> Self {
        Self::new()
    }
}

impl LabSpec {
    /// No sites yet; `iptables`.
    pub fn new() -> Self {
        Self {
            sites: Vec::new(),
            iptables: "iptables".to_owned(),
        }
    }

    /// Adds a site with `hosts` hosts behind a router of kind `nat`.
    pub fn site(mut self, nat: NatKind, hosts: usize) -> Self {
        self.sites.push(SiteSpec {
            nat,
            hosts: hosts.max(1),
            public_addr: None,
        });
        self
    }

    /// Adds a site whose router has WAN address `addr`.
    pub fn site_with_public_addr(mut self, nat: NatKind, hosts: usize, addr: Ipv4Addr) -> Self {
        self.sites.push(SiteSpec {
            nat,
            hosts: hosts.max(1),
            public_addr: Some(addr),
        });
        self
    }

    /// Uses another iptables command (e.g. `iptables-legacy`).
    pub fn iptables(mut self, cmd: &str) -> Self {
        cmd.clone_into(&mut self.iptables);
        self
    }
}

/// The first address of the `srv` namespace.
pub const SRV_A: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// The second address of the `srv` namespace.
pub const SRV_B: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);

const NAME_PREFIX: &str = "nl";
static COUNTER: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, Clone)]
struct Site {
    nat: NatKind,
    router: Option<String>,
    wan_addr: Option<Ipv4Addr>,
    hosts: Vec<(String, Ipv4Addr)>,
}

/// A running lab; deleted on drop.
#[derive(Debug)]
pub struct NatLab {
    prefix: String,
    /// Every namespace created, in creation order.
    namespaces: Vec<String>,
    /// Namespace -> its interface towards the wan (or the router).
    uplinks: HashMap<String, &'static str>,
    sites: Vec<Site>,
    iptables: String,
}

impl NatLab {
    /// Builds the lab of `spec`. [`LabError::Skipped`] when not root or `ip`/iptables are
    /// missing.
    pub fn new(spec: &LabSpec) -> Result<Self, LabError> {
        if !rustix::process::geteuid().is_root() {
            return Err(LabError::Skipped("the NAT lab needs root".into()));
        }
        if !tool_works("ip", &["-V"]) {
            return Err(LabError::Skipped("`ip` (iproute2) not found".into()));
        }
        let needs_iptables = spec.sites.iter().any(|s| s.nat != NatKind::None);
        if needs_iptables && !tool_works(&spec.iptables, &["--version"]) {
            return Err(LabError::Skipped(format!(
                "`{}` not found (apt-get install iptables)",
                spec.iptables
            )));
        }
        if spec.sites.len() > 8 || spec.sites.iter().any(|s| s.hosts > 9) {
            return Err(LabError::NoSuch(
                "room for more than 8 sites of 9 hosts".into(),
            ));
        }
        remove_stale_labs();
        let prefix = format!(
            "{NAME_PREFIX}{}.{}.",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut lab = Self {
            prefix,
            namespaces: Vec::new(),
            uplinks: HashMap::new(),
            sites: Vec::new(),
            iptables: spec.iptables.clone(),
        };
        // On error, `lab` is dropped and deletes what was built so far.
        lab.build(spec)?;
        Ok(lab)
    }

    fn add_ns(&mut self, role: &str, uplink: &'static str) -> Result<String, LabError> {
        let name = format!("{}{role}", self.prefix);
        ip(&["netns", "add", &name])?;
        self.namespaces.push(name.clone());
        self.uplinks.insert(name.clone(), uplink);
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }

    fn build(&mut self, spec: &LabSpec) -> Result<(), LabError> {
        let wan = self.add_ns("wan", "br0")?;
        ip(&["-n", &wan, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &wan, "link", "set", "br0", "up"])?;

        // Servers on the fake internet.
        let srv = self.add_ns("srv", "srv0")?;
        attach_to_wan(&wan, &srv, "srv0", "p-srv")?;
        for a in [SRV_A, SRV_B] {
            ip(&["-n", &srv, "addr", "add", &format!("{a}/24"), "dev", "srv0"])?;
        }
        ip(&["-n", &srv, "link", "set", "srv0", "up"])?;
        // Everything unknown is on-link on the bridge (routers with a `public_addr`).
        ip(&["-n", &srv, "route", "add", "default", "dev", "srv0"])?;

        for (i, s) in spec.sites.iter().enumerate() {
            let site = i + 1;
            let octet = u8::try_from(site).unwrap_or(u8::MAX);
            if s.nat == NatKind::None {
                let mut hosts = Vec::new();
                for n in 0..s.hosts {
                    let h = self.add_ns(&format!("h{site}.{n}"), "eth0")?;
                    let addr = Ipv4Addr::new(198, 51, 100, 100 + 10 * octet + n as u8);
                    attach_to_wan(&wan, &h, "eth0", &format!("p-h{site}.{n}"))?;
                    ip(&[
                        "-n",
                        &h,
                        "addr",
                        "add",
                        &format!("{addr}/24"),
                        "dev",
                        "eth0",
                    ])?;
                    ip(&["-n", &h, "link", "set", "eth0", "up"])?;
                    ip(&["-n", &h, "route", "add", "default", "dev", "eth0"])?;
                    hosts.push((h, addr));
                }
                self.sites.push(Site {
                    nat: s.nat,
                    router: None,
                    wan_addr: None,
                    hosts,
                });
                continue;
            }
            let r = self.add_ns(&format!("r{site}"), "wan0")?;
            attach_to_wan(&wan, &r, "wan0", &format!("p-r{site}"))?;
            let wan_addr = s
                .public_addr
                .unwrap_or_else(|| Ipv4Addr::new(198, 51, 100, 1 + octet));
            let plen = if s.public_addr.is_some() { 32 } else { 24 };
            ip(&[
                "-n",
                &r,
                "addr",
                "add",
                &format!("{wan_addr}/{plen}"),
                "dev",
                "wan0",
            ])?;
            ip(&["-n", &r, "link", "set", "wan0", "up"])?;
            ip(&["-n", &r, "route", "add", "default", "dev", "wan0"])?;
            ip(&["-n", &r, "link", "add", "lan0", "type", "bridge"])?;
            ip(&[
                "-n",
                &r,
                "addr",
                "add",
                &format!("10.0.{site}.1/24"),
                "dev",
                "lan0",
            ])?;
            ip(&["-n", &r, "link", "set", "lan0", "up"])?;
            run(Command::new("ip").args([
                "netns",
                "exec",
                &r,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ]))?;
            let mut hosts = Vec::new();
            for n in 0..s.hosts {
                let h = self.add_ns(&format!("h{site}.{n}"), "eth0")?;
                let addr = Ipv4Addr::new(10, 0, octet, 2 + n as u8);
                let port = format!("l{n}");
                ip(&[
                    "link", "add", "eth0", "netns", &h, "type", "veth", "peer", "name", &port,
                    "netns", &r,
                ])?;
                ip(&["-n", &r, "link", "set", &port, "master", "lan0", "up"])?;
                ip(&[
                    "-n",
                    &h,
                    "addr",
                    "add",
                    &format!("{addr}/24"),
                    "dev",
                    "eth0",
                ])?;
                ip(&["-n", &h, "link", "set", "eth0", "up"])?;
                ip(&[
                    "-n",
                    &h,
                    "route",
                    "add",
                    "default",
                    "via",
                    &format!("10.0.{site}.1"),
                ])?;
                hosts.push((h, addr));
            }
            self.iptables_restore(&r, &rules(s.nat, wan_addr, hosts[0].1))?;
            self.sites.push(Site {
                nat: s.nat,
                router: Some(r),
                wan_addr: Some(wan_addr),
                hosts,
            });
        }
        Ok(())
    }

    fn iptables_restore(&self, ns: &str, rules: &str) -> Result<(), LabError> {
        use std::io::Write as _;
        let bin = format!("{}-restore", self.iptables);
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, &bin])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| LabError::io(format!("spawn {bin}"), e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(rules.as_bytes())
                .map_err(|e| LabError::io(format!("write to {bin}"), e))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| LabError::io(format!("wait for {bin}"), e))?;
        check(&format!("ip netns exec {ns} {bin} <<{rules}"), out)?;
        Ok(())
    }

    /// The `wan` namespace (bridge `br0`).
    pub fn wan(&self) -> &str {
        self.namespaces.first().map_or("", String::as_str)
    }

    /// The `srv` namespace (198.51.100.10 and .11, interface `srv0`).
    pub fn srv(&self) -> &str {
        self.namespaces.get(1).map_or("", String::as_str)
    }

    fn site(&self, site: usize) -> Result<&Site, LabError> {
        site.checked_sub(1)
            .and_then(|i| self.sites.get(i))
            .ok_or_else(|| LabError::NoSuch(format!("site {site}")))
    }

    /// The router namespace of `site` (from 1); interfaces `wan0` and `lan0`.
    pub fn router(&self, site: usize) -> Result<&str, LabError> {
        self.site(site)?
            .router
            .as_deref()
            .ok_or_else(|| LabError::NoSuch(format!("router at site {site} (NatKind::None)")))
    }

    /// The router's WAN (public) address.
    pub fn router_wan_addr(&self, site: usize) -> Result<Ipv4Addr, LabError> {
        self.site(site)?
            .wan_addr
            .ok_or_else(|| LabError::NoSuch(format!("router at site {site} (NatKind::None)")))
    }

    /// The router's LAN address 10.0.site.1, the hosts' default gateway.
    pub fn router_lan_addr(&self, site: usize) -> Result<Ipv4Addr, LabError> {
        self.router(site)?;
        Ok(Ipv4Addr::new(10, 0, u8::try_from(site).unwrap_or(0), 1))
    }

    /// The NAT kind of `site`.
    pub fn nat(&self, site: usize) -> Result<NatKind, LabError> {
        Ok(self.site(site)?.nat)
    }

    /// Host `n` (from 0) of `site` (from 1): its namespace (interface `eth0`).
    pub fn host(&self, site: usize, n: usize) -> Result<&str, LabError> {
        self.site(site)?
            .hosts
            .get(n)
            .map(|h| h.0.as_str())
            .ok_or_else(|| LabError::NoSuch(format!("host {n} at site {site}")))
    }

    /// The address of host `n` of `site` (private behind a router, public for
    /// [`NatKind::None`]).
    pub fn host_addr(&self, site: usize, n: usize) -> Result<Ipv4Addr, LabError> {
        self.site(site)?
            .hosts
            .get(n)
            .map(|h| h.1)
            .ok_or_else(|| LabError::NoSuch(format!("host {n} at site {site}")))
    }

    /// Every namespace of the lab.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    fn check_ns(&self, ns: &str) -> Result<(), LabError> {
        if self.uplinks.contains_key(ns) {
            Ok(())
        } else {
            Err(LabError::NoSuch(format!("namespace {ns} in this lab")))
        }
    }

    /// A command running `program` in namespace `ns` (`ip netns exec ns program`), to be
    /// given arguments and stdio and spawned by the caller.
    pub fn command(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// Spawns `cmd` (program, arguments, environment and working directory; stdio is
    /// inherited) in namespace `ns`. The child is killed when the returned guard drops.
    pub fn spawn(&self, ns: &str, cmd: &Command) -> Result<NsChild, LabError> {
        self.check_ns(ns)?;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(cmd.get_program());
        c.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(d) = cmd.get_current_dir() {
            c.current_dir(d);
        }
        let child = c
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| LabError::io(format!("spawn {:?} in {ns}", cmd.get_program()), e))?;
        Ok(NsChild(Some(child)))
    }

    /// Runs `program args...` in `ns` to completion; an error unless it exits 0.
    pub fn exec(&self, ns: &str, program: &str, args: &[&str]) -> Result<Output, LabError> {
        self.check_ns(ns)?;
        run(self.command(ns, program).args(args))
    }

    /// Runs the lab's iptables command with `args` in `ns`.
    pub fn iptables(&self, ns: &str, args: &[&str]) -> Result<(), LabError> {
        self.exec(ns, &self.iptables, args).map(drop)
    }

    /// The lab's iptables command (`iptables` or `iptables-legacy`).
    pub fn iptables_command(&self) -> &str {
        &self.iptables
    }

    /// Runs the future made by `f` on a new thread inside namespace `ns`, on its own
    /// current-thread tokio runtime (IO and time enabled). Sockets it opens live in `ns`.
    pub fn run_in<F, Fut, T>(&self, ns: &str, f: F) -> NsTask<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ns = ns.to_owned();
        let known = self.check_ns(&ns);
        let name = ns.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("netns {ns}"))
            .spawn(move || {
                let r = known.and_then(|()| enter_netns(&ns)).and_then(|()| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| LabError::io("tokio runtime", e))?;
                    Ok(rt.block_on(f()))
                });
                let _ = tx.send(r);
            });
        if let Err(e) = spawned {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let _ = tx.send(Err(LabError::io("spawn thread", e)));
            return NsTask { rx, ns: name };
        }
        NsTask { rx, ns: name }
    }

    /// Sets the conntrack UDP timeouts of `ns` (both `nf_conntrack_udp_timeout` and
    /// `..._stream`): how long an idle UDP mapping lives.
    pub fn set_conntrack_udp_timeout(&self, ns: &str, secs: u32) -> Result<(), LabError> {
        self.exec(
            ns,
            "sysctl",
            &[
                "-qw",
                &format!("net.netfilter.nf_conntrack_udp_timeout={secs}"),
                &format!("net.netfilter.nf_conntrack_udp_timeout_stream={secs}"),
            ],
        )
        .map(drop)
    }

    /// Takes down the namespace's uplink (`wan0` of a router, `eth0` of a host, `srv0`).
    pub fn link_down(&self, ns: &str) -> Result<(), LabError> {
        self.link_set(ns, "down")
    }

    /// Brings the namespace's uplink back up.
    pub fn link_up(&self, ns: &str) -> Result<(), LabError> {
        self.link_set(ns, "up")
    }

    fn link_set(&self, ns: &str, state: &str) -> Result<(), LabError> {
        let dev = self
            .uplinks
            .get(ns)
            .ok_or_else(|| LabError::NoSuch(format!("namespace {ns} in this lab")))?;
        ip(&["-n", ns, "link", "set", dev, state])
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A process started in a namespace; killed and reaped on drop.
#[derive(Debug)]
pub struct NsChild(Option<Child>);

impl NsChild {
    /// The process.
    pub fn child(&mut self) -> Option<&mut Child> {
        self.0.as_mut()
    }

    /// The process id.
    pub fn id(&self) -> Option<u32> {
        self.0.as_ref().map(Child::id)
    }

    /// Kills the process and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl From<Child> for NsChild {
    /// Guards a child spawned with [`NatLab::command`].
    fn from(c: Child) -> Self {
        Self(Some(c))
    }
}

impl Drop for NsChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The result of [`NatLab::run_in`].
#[derive(Debug)]
pub struct NsTask<T> {
    rx: tokio::sync::oneshot::Receiver<Result<T, LabError>>,
    ns: String,
}

impl<T> NsTask<T> {
    /// Waits for the future's output (from async code).
    pub async fn join(self) -> Result<T, LabError> {
        self.rx
            .await
            .unwrap_or_else(|_| Err(LabError::Panicked(self.ns)))
    }

    /// Waits for the future's output (from a plain thread; panics inside a runtime).
    pub fn join_blocking(self) -> Result<T, LabError> {
        self.rx
            .blocking_recv()
            .unwrap_or_else(|_| Err(LabError::Panicked(self.ns)))
    }
}

/// Moves the calling thread into network namespace `ns` (setns(2), CLONE_NEWNET).
fn enter_netns(ns: &str) -> Result<(), LabError> {
    let path = format!("/run/netns/{ns}");
    let f = std::fs::File::open(&path).map_err(|e| LabError::io(format!("open {path}"), e))?;
    rustix::thread::move_into_link_name_space(
        f.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| LabError::io(format!("setns {path}"), e.into()))
}

fn rules(nat: NatKind, wan_addr: Ipv4Addr, first_host: Ipv4Addr) -> String {
    let mut nat_t = String::from("*nat\n");
    let mut filter = String::from("*filter\n:FORWARD DROP [0:0]\n");
    match nat {
        NatKind::None => {}
        NatKind::Symmetric => {
            nat_t.push_str("-A POSTROUTING -o wan0 -j MASQUERADE --random-fully\n");
        }
        NatKind::PortRestricted | NatKind::UdpBlocked | NatKind::FullConeOnePort(_) => {
            let _ = writeln!(
                nat_t,
                "-A POSTROUTING -o wan0 -j SNAT --to-source {wan_addr}"
            );
        }
    }
    if nat == NatKind::UdpBlocked {
        filter.push_str("-A FORWARD -p udp -j DROP\n");
    }
    if let NatKind::FullConeOnePort(p) = nat {
        // docs/security.md "NAT lab" full_cone_one_port; inserted ahead of the general SNAT.
        nat_t = format!(
            "*nat\n-A PREROUTING -i wan0 -p udp --dport {p} -j DNAT --to-destination {first_host}:{p}\n-A POSTROUTING -o wan0 -p udp -s {first_host} --sport {p} -j SNAT --to-source {wan_addr}:{p}\n{}",
            &nat_t["*nat\n".len()..]
        );
        let _ = writeln!(
            filter,
            "-A FORWARD -i wan0 -o lan0 -p udp -d {first_host} --dport {p} -j ACCEPT"
        );
    }
    // Hosts of one site talk freely (bridged traffic reaches FORWARD when br_netfilter is on).
    filter.push_str("-A FORWARD -i lan0 -o lan0 -j ACCEPT\n");
    filter.push_str("-A FORWARD -i lan0 -o wan0 -j ACCEPT\n");
    filter.push_str(
        "-A FORWARD -i wan0 -o lan0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n",
    );
    format!("{nat_t}COMMIT\n{filter}COMMIT\n")
}

fn attach_to_wan(wan: &str, ns: &str, dev: &str, port: &str) -> Result<(), LabError> {
    ip(&[
        "link", "add", dev, "netns", ns, "type", "veth", "peer", "name", port, "netns", wan,
    ])?;
    ip(&["-n", wan, "link", "set", port, "master", "br0", "up"])
}

fn ip(args: &[&str]) -> Result<(), LabError> {
    run(Command::new("ip").args(args)).map(drop)
}

fn run(cmd: &mut Command) -> Result<Output, LabError> {
    let line = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::io(format!("run {line}"), e))?;
    check(&line, out)
}

fn check(line: &str, out: Output) -> Result<Output, LabError> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(LabError::Command {
            cmd: line.to_owned(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

fn tool_works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Deletes namespaces of labs whose test process is gone (killed before its drop ran).
fn remove_stale_labs() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(NAME_PREFIX)
            .and_then(|r| r.split('.').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        // Only names of the exact shape nl<pid>.<n>.<role>.
        if name.split('.').count() < 3 {
            continue;
        }
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip")
                .args(["netns", "del", &name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A miniupnpd (UPnP IGD, NAT-PMP and PCP gateway daemon) running on a site's router;
/// stopped on drop.
pub struct MiniUpnpd {
    _daemon: NsChild,
    _dir: tempfile::TempDir,
    /// Its log (stderr).
    pub log: std::path::PathBuf,
}

/// Where Debian's `miniupnpd-iptables` installs the daemon, if it is installed.
pub fn miniupnpd_path() -> Option<&'static str> {
    ["/usr/sbin/miniupnpd", "/sbin/miniupnpd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

impl NatLab {
    /// Starts miniupnpd (`daemon`, see [`miniupnpd_path`]) on site `site`'s router: UPnP IGD
    /// on HTTP port 5555, NAT-PMP/PCP on 5351, mapping for the site's hosts (ports >= 1024).
    /// The lab must use `iptables-legacy` (miniupnpd-iptables drives libiptc), and the site a
    /// non-reserved public address ([`LabSpec::site_with_public_addr`]): miniupnpd refuses to
    /// map on documentation or private addresses.
    pub async fn start_miniupnpd(&self, site: usize, daemon: &str) -> Result<MiniUpnpd, LabError> {
        let r = self.router(site)?.to_owned();
        // The chains miniupnpd fills (what Debian's /etc/miniupnpd/iptables_init.sh sets up;
        // its helper miniupnpd_functions.sh is not shipped, so the rules are spelled out).
        for args in [
            &["-t", "nat", "-N", "MINIUPNPD"][..],
            &[
                "-t",
                "nat",
                "-I",
                "PREROUTING",
                "-i",
                "wan0",
                "-j",
                "MINIUPNPD",
            ],
            &["-t", "mangle", "-N", "MINIUPNPD"],
            &[
                "-t",
                "mangle",
                "-I",
                "PREROUTING",
                "-i",
                "wan0",
                "-j",
                "MINIUPNPD",
            ],
            &["-t", "filter", "-N", "MINIUPNPD"],
            &[
                "-t",
                "filter",
                "-I",
                "FORWARD",
                "-i",
                "wan0",
                "!",
                "-o",
                "wan0",
                "-j",
                "MINIUPNPD",
            ],
            &["-t", "nat", "-N", "MINIUPNPD-POSTROUTING"],
            &[
                "-t",
                "nat",
                "-I",
                "POSTROUTING",
                "-o",
                "wan0",
                "-j",
                "MINIUPNPD-POSTROUTING",
            ],
        ] {
            self.iptables(&r, args)?;
        }
        let dir = tempfile::tempdir().map_err(|e| LabError::io("tempdir", e))?;
        let conf = dir.path().join("miniupnpd.conf");
        let log = dir.path().join("miniupnpd.log");
        std::fs::write(
            &conf,
            format!(
                "ext_ifname=wan0\nlistening_ip=lan0\nhttp_port=5555\nenable_natpmp=yes\nenable_upnp=yes\n\
                 secure_mode=yes\nsystem_uptime=yes\nmin_lifetime=2\nlease_file={}\n\
                 uuid=3e2a4b5c-0000-4000-8000-00000000c0de\n\
                 allow 1024-65535 10.0.{site}.0/24 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n",
                dir.path().join("leases").display()
            ),
        )
        .map_err(|e| LabError::io("miniupnpd.conf", e))?;
        let out = std::fs::File::create(dir.path().join("miniupnpd.out"))
            .map_err(|e| LabError::io("miniupnpd.out", e))?;
        let err = std::fs::File::create(&log).map_err(|e| LabError::io("miniupnpd.log", e))?;
        let child = self
            .command(&r, daemon)
            .args(["-d", "-f"])
            .arg(&conf)
            .arg("-P")
            .arg(dir.path().join("miniupnpd.pid"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| LabError::io("spawn miniupnpd", e))?;
        let daemon = NsChild::from(child);
        // Ready once both NAT-PMP/PCP and HTTP listen.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Listening for NAT-PMP/PCP") && text.contains("HTTP listening") {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LabError::Failed(format!(
                    "miniupnpd did not start:\n{text}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(MiniUpnpd {
            _daemon: daemon,
            _dir: dir,
            log,
        })
    }
}
