//! Two independent S3 servers for tests, both on 127.0.0.1 and started by the test itself:
//! `s3s-fs` in-process (a Rust crate serving a directory) and `moto` in server mode (Python,
//! installed by `.ci/run` into `.ci/venv`).
//!
//! `units/cs/tests/backends.rs` includes this file with `#[path]`, so it uses only `std`,
//! `tokio`, `hyper`, `hyper-util`, `s3s` and `s3s-fs`.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The access key both servers accept.
pub const ACCESS_KEY: &str = "peercam-test-ak";
/// The secret key both servers accept.
pub const SECRET_KEY: &str = "peercam-test-secret-key";
/// The base domain of the in-process server's virtual hosts (`<bucket>.s3.test`).
pub const S3S_DOMAIN: &str = "s3.test";

/// Writes a credentials file for `cs.toml`'s `credentials_file` and returns its path.
pub fn credentials_file(dir: &Path) -> io::Result<PathBuf> {
    let p = dir.join("s3-credentials.toml");
    std::fs::write(
        &p,
        format!("access_key_id = {ACCESS_KEY:?}\nsecret_access_key = {SECRET_KEY:?}\n"),
    )?;
    Ok(p)
}

/// `s3s-fs` serving `root` (each bucket a directory) on 127.0.0.1.
#[derive(Debug)]
pub struct S3sFs {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The directory it serves.
    pub root: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl S3sFs {
    /// Serves `root` on `addr` (port 0 picks one), with `bucket` created. Path-style
    /// requests to `127.0.0.1:<port>` and virtual-host requests for `<bucket>.s3.test`.
    pub async fn start_on(root: &Path, bucket: &str, addr: SocketAddr) -> io::Result<Self> {
        std::fs::create_dir_all(root.join(bucket))?;
        let fs = s3s_fs::FileSystem::new(root).map_err(|e| io::Error::other(format!("{e:?}")))?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let mut b = s3s::service::S3ServiceBuilder::new(fs);
        b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        // Requests to an IP address are path style; `<bucket>.s3.test:<port>` virtual host.
        b.set_host(
            s3s::host::SingleDomain::new(&format!("{S3S_DOMAIN}:{}", addr.port()))
                .map_err(|e| io::Error::other(e.to_string()))?,
        );
        let service = b.build();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            root: root.to_path_buf(),
            task,
        })
    }

    /// [`S3sFs::start_on`] on a free port.
    pub async fn start(root: &Path, bucket: &str) -> io::Result<Self> {
        Self::start_on(root, bucket, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://s3.test:<port>`: for virtual-host requests, sent through the server itself
    /// as an HTTP proxy (nothing resolves `s3.test`).
    pub fn domain_endpoint(&self) -> String {
        format!("http://{S3S_DOMAIN}:{}", self.addr.port())
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where `moto_server` is: `PEERCAM_MOTO_SERVER`, else `.ci/venv/bin/moto_server` in the
/// workspace (found upwards from `manifest_dir`).
pub fn moto_server_path(manifest_dir: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PEERCAM_MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    manifest_dir
        .ancestors()
        .map(|d| d.join(".ci/venv/bin/moto_server"))
        .find(|p| p.is_file())
}

/// `moto` in server mode on 127.0.0.1 (state in memory), killed on drop.
#[derive(Debug)]
pub struct Moto {
    /// Where it listens.
    pub addr: SocketAddr,
    child: tokio::process::Child,
}

impl Moto {
    /// Starts `moto_server` and creates `bucket`.
    pub async fn start(moto_server: &Path, bucket: &str) -> io::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = tokio::process::Command::new(moto_server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let m = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            // moto accepts unsigned requests: create the bucket once it answers.
            match raw_request(m.addr, "PUT", &format!("/{bucket}")).await {
                Ok(200) => return Ok(m),
                Ok(status) => {
                    return Err(io::Error::other(format!(
                        "moto: create bucket answered {status}"
                    )));
                }
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Kills the server now.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// One HTTP/1.1 request with an empty body; the status code.
async fn raw_request(addr: SocketAddr, method: &str, path: &str) -> io::Result<u16> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let head = String::from_utf8_lossy(&buf);
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other("no HTTP status"))
}
