//! A throwaway PostgreSQL server for tests: one cluster per test process, one fresh
//! database per test.
//!
//! The cluster is made with Debian's PostgreSQL (`initdb` and `pg_ctl` under
//! `/usr/lib/postgresql/VERSION/bin`, or on `PATH`) in a temporary directory, listens on
//! 127.0.0.1 and a free port with trust authentication and no fsync, and is stopped when
//! the last [`PgDatabase`] of the process is dropped. `initdb` and the server refuse to run
//! as root, so as root (CI) they run as the `postgres` user the package creates, on a
//! directory that user owns.
//!
//! Where PostgreSQL is missing, [`database`] calls [`peercam_net::skip::skip`] and returns
//! `None`: the test returns on a developer's machine and fails under CI.
//!
//! This file uses only std, `tempfile` and `peercam_net`, so the CMU's store tests include
//! it by path (`#[path]`) instead of depending on this crate.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// A running cluster; stopped and deleted on drop.
#[derive(Debug)]
struct Server {
    bin: PathBuf,
    /// Owned by the `postgres` user when run as root.
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

/// A fresh, empty database on the process's cluster; the cluster lives while one does.
#[derive(Debug, Clone)]
pub struct PgDatabase {
    /// `postgres://postgres@127.0.0.1:PORT/NAME`.
    pub url: String,
    server: Arc<Server>,
}

static SERVER: Mutex<Weak<Server>> = Mutex::new(Weak::new());
static NEXT_DB: AtomicU64 = AtomicU64::new(0);

/// A fresh database for `test`, or `None` (after [`peercam_net::skip::skip`]) where
/// PostgreSQL is not installed.
///
/// # Panics
/// When PostgreSQL is installed but the cluster or the database cannot be made.
pub fn database(test: &str) -> Option<PgDatabase> {
    let server = {
        let mut slot = SERVER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = slot.upgrade() {
            s
        } else {
            let Some(bin) = find_bin() else {
                peercam_net::skip::skip(
                    test,
                    "PostgreSQL is not installed (Debian package postgresql: initdb, pg_ctl)",
                );
                return None;
            };
            let s = Arc::new(Server::start(bin).unwrap_or_else(|e| panic!("PostgreSQL: {e}")));
            *slot = Arc::downgrade(&s);
            s
        }
    };
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    server
        .run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &server.port.to_string(),
                "-U",
                "postgres",
                &name,
            ],
        )
        .unwrap_or_else(|e| panic!("createdb {name}: {e}"));
    Some(PgDatabase {
        url: format!("postgres://postgres@127.0.0.1:{}/{name}", server.port),
        server,
    })
}

impl PgDatabase {
    /// Restarts the cluster (fast shutdown: open connections are cut), as an operator's
    /// restart of PostgreSQL would; returns when it accepts connections again.
    ///
    /// # Panics
    /// When the server does not come back.
    pub fn restart_server(&self) {
        let data = self.server.data();
        let log = self
            .server
            .dir
            .path()
            .join("server.log")
            .display()
            .to_string();
        // `-l`: the server must not hold this process's output pipes open.
        self.server
            .run(
                "pg_ctl",
                &[
                    "-D", &data, "-l", &log, "-m", "fast", "-w", "-t", "60", "restart",
                ],
            )
            .unwrap_or_else(|e| panic!("restarting PostgreSQL: {e}"));
    }
}

impl PgDatabase {
    /// Issue 19: another fresh database on the same server, owned by a new role that may
    /// hold at most `connection_limit` connections at once (`createuser -c`); its URL.
    /// A CMU that keeps that many pooled connections cannot open its bus's `LISTEN`
    /// connection: the bus is unreachable while the database answers.
    ///
    /// # Panics
    /// When the role or the database cannot be made.
    pub fn limited_role_database(&self, connection_limit: u32) -> String {
        let n = NEXT_DB.fetch_add(1, Ordering::Relaxed);
        let (role, name) = (
            format!("r{}_{n}", std::process::id()),
            format!("t{}_{n}", std::process::id()),
        );
        let port = self.server.port.to_string();
        let limit = connection_limit.to_string();
        let base = ["-h", "127.0.0.1", "-p", port.as_str(), "-U", "postgres"];
        let mut args = base.to_vec();
        args.extend(["-c", limit.as_str(), role.as_str()]);
        self.server
            .run("createuser", &args)
            .unwrap_or_else(|e| panic!("createuser {role}: {e}"));
        let mut args = base.to_vec();
        args.extend(["-O", role.as_str(), name.as_str()]);
        self.server
            .run("createdb", &args)
            .unwrap_or_else(|e| panic!("createdb {name}: {e}"));
        format!("postgres://{role}@127.0.0.1:{port}/{name}")
    }
}

/// The directory of `initdb` and `pg_ctl`: the newest Debian version, else `PATH`.
fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p).find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

impl Server {
    fn start(bin: PathBuf) -> Result<Self, String> {
        let as_postgres = is_root();
        let base = base_dir(as_postgres);
        sweep(&base, &bin, as_postgres);
        let dir = tempfile::Builder::new()
            .prefix(PREFIX)
            .tempdir_in(&base)
            .map_err(|e| format!("temporary directory: {e}"))?;
        // Whose cluster this is, for [`sweep`] should this process be killed.
        std::fs::write(dir.path().join("owner"), std::process::id().to_string())
            .map_err(|e| format!("owner file: {e}"))?;
        if as_postgres {
            let out = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .output()
                .map_err(|e| format!("chown: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "chown postgres {}: {}",
                    dir.path().display(),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        let mut server = Self {
            bin,
            dir,
            port: 0,
            as_postgres,
        };
        let data = server.data();
        server.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--no-instructions",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        )?;
        // A free port can be taken between asking and listening: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            server.port = free_port()?;
            let opts = format!(
                "-k {} -p {} -h 127.0.0.1 -F -c max_connections=200 -c shared_buffers=16MB",
                server.dir.path().display(),
                server.port
            );
            let log = server.dir.path().join("server.log");
            match server.run(
                "pg_ctl",
                &[
                    "-D",
                    &data,
                    "-o",
                    &opts,
                    "-l",
                    &log.display().to_string(),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            ) {
                Ok(()) => return Ok(server),
                Err(e) => {
                    last = format!(
                        "{e}; log: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        }
        Err(last)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs `program` of the PostgreSQL binaries, as `postgres` when root.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        // The server's working directory must be one `postgres` may enter.
        cmd.args(args).current_dir(self.dir.path());
        let out = cmd
            .output()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Drop for Server {
    #[allow(clippy::print_stderr)]
    fn drop(&mut self) {
        let data = self.data();
        if let Err(e) = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]) {
            eprintln!("stopping the test PostgreSQL: {e}");
        }
    }
}

/// Where clusters live: the temporary directory, but `/tmp` when they run as `postgres`,
/// which may not enter root's own `TMPDIR`.
fn base_dir(as_postgres: bool) -> PathBuf {
    if as_postgres {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    }
}

/// Prefix of the clusters' temporary directories.
const PREFIX: &str = "peercam-pg-";

/// Stops and deletes the clusters of test processes that were killed before they could
/// (a test timeout, `kill -9`): directories of ours whose owner process is gone.
fn sweep(base: &std::path::Path, bin: &std::path::Path, as_postgres: bool) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let ours = e
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(PREFIX));
        let Some(owner) = ours
            .then(|| std::fs::read_to_string(path.join("owner")).ok())
            .flatten()
        else {
            continue;
        };
        if std::path::Path::new("/proc").join(owner.trim()).exists() {
            continue;
        }
        let mut cmd = if as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join("pg_ctl"));
            c
        } else {
            Command::new(bin.join("pg_ctl"))
        };
        let _ = cmd
            .arg("-D")
            .arg(path.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .current_dir(&path)
            .output();
        let _ = std::fs::remove_dir_all(&path);
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("free port: {e}"))
}
