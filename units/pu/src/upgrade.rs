//! Signed upgrades on the PU (H.626.4 8.11.1, docs/security.md D9): check the release, download the
//! payload (resumable, capped at the manifest's size, verified by SHA-256), install it into
//! its own slot directory and ask the supervisor to restart into it. The supervisor
//! (`peercam pu` with release keys configured) starts the new slot on trial, commits it only
//! when it registers with the platform within the health time, and otherwise goes back to the
//! previous slot by itself.
//!
//! Files in the firmware directory:
//! - `committed.json`: the slot in service (absent: the factory binary);
//! - `max_version`: the highest version ever committed (anti-rollback);
//! - `pending.json`: the slot to try next;
//! - `health`: written by a trial agent once registered;
//! - `last.json`: how the last upgrade ended;
//! - `VERSION/peercam`: installed payloads, `VERSION.part`: a download under way.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use peercam_signal::upgrade::{Policy, SignedManifest, UpgradeError, UpgradeStatus, Version};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

/// Environment variable naming the slot's version (set by the supervisor).
pub const ENV_SLOT_VERSION: &str = "PEERCAM_SLOT_VERSION";
/// Environment variable marking a trial run (set by the supervisor).
pub const ENV_TRIAL: &str = "PEERCAM_TRIAL";
/// Exit code with which the agent asks the supervisor to restart into the pending slot.
pub const EXIT_RESTART: u8 = 75;

/// A slot: a version and its executable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// Version.
    pub version: String,
    /// Executable.
    pub exe: PathBuf,
}

/// A slot to try, and the one to return to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The new slot.
    pub slot: Slot,
    /// Where to go back to.
    pub previous: Slot,
}

/// The firmware directory.
#[derive(Debug, Clone)]
pub struct Firmware {
    dir: PathBuf,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

impl Firmware {
    /// The directory `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn read<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Option<T> {
        let bytes = std::fs::read(self.dir.join(name)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn write<T: Serialize>(&self, name: &str, value: &T) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
        write_atomic(&self.dir.join(name), &bytes)
    }

    /// The slot in service, if an upgrade was ever committed.
    pub fn committed(&self) -> Option<Slot> {
        self.read("committed.json")
    }

    /// The slot to try next.
    pub fn pending(&self) -> Option<Pending> {
        self.read("pending.json")
    }

    /// How the last upgrade ended.
    pub fn last(&self) -> Option<UpgradeStatus> {
        self.read("last.json")
    }

    /// Records how an upgrade ended.
    pub fn set_last(&self, status: &UpgradeStatus) -> std::io::Result<()> {
        self.write("last.json", status)
    }

    /// The highest version committed on this device (anti-rollback), at least `factory`.
    pub fn max_version(&self, factory: Version) -> Version {
        std::fs::read_to_string(self.dir.join("max_version"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map_or(factory, |v: Version| v.max(factory))
    }

    /// Commits the pending slot: it is the one in service now, and no version up to it will
    /// be accepted again.
    pub fn commit(&self, pending: &Pending) -> std::io::Result<()> {
        self.write("committed.json", &pending.slot)?;
        if let Ok(v) = pending.slot.version.parse::<Version>() {
            let factory = Version::default();
            let max = self.max_version(factory).max(v);
            write_atomic(&self.dir.join("max_version"), max.to_string().as_bytes())?;
        }
        self.clear_pending()
    }

    /// Forgets the pending slot.
    pub fn clear_pending(&self) -> std::io::Result<()> {
        match std::fs::remove_file(self.dir.join("pending.json")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The health mark of a trial run.
    pub fn health_path(&self) -> PathBuf {
        self.dir.join("health")
    }

    /// Marks this (trial) run healthy: it registered with the platform.
    pub fn mark_healthy(&self) -> std::io::Result<()> {
        write_atomic(
            &self.health_path(),
            std::process::id().to_string().as_bytes(),
        )
    }
}

/// How a download attempt failed.
enum Fetch {
    /// Worth resuming (network dropped, server hiccup).
    Broken(String),
    /// Final (more bytes than the manifest says, local disk error).
    Refused(String),
}

/// Why a download or an installation failed; its `Display` is the status's `reason`.
#[derive(Debug, thiserror::Error)]
enum DownloadError {
    /// The agent has no HTTPS client.
    #[error("no HTTPS client for downloads")]
    NoClient,
    /// The firmware directory could not be created.
    #[error("{}: {source}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The download failed (the reason [`Fetch`] gave).
    #[error("{0}")]
    Fetch(String),
    /// Hashing, placing or marking the new firmware failed.
    #[error("{0}")]
    Install(#[source] std::io::Error),
    /// The hashing task failed.
    #[error("{0}")]
    Task(#[source] tokio::task::JoinError),
    /// The payload is not the one the manifest describes.
    #[error("payload SHA-256 {digest} does not match the manifest's {expected}")]
    Digest {
        /// The payload's digest.
        digest: String,
        /// The manifest's.
        expected: String,
    },
}

/// The agent's side of upgrades.
pub struct Upgrader {
    firmware: Firmware,
    keys: Vec<ed25519_dalek::VerifyingKey>,
    threshold: usize,
    model: String,
    running: String,
    status: Mutex<UpgradeStatus>,
    http: Option<reqwest::Client>,
    /// Set when an installed slot waits for a restart.
    pub restart: watch::Sender<bool>,
}

/// Why an upgrade could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The release is refused.
    #[error(transparent)]
    Refused(#[from] UpgradeError),
    /// Upgrades are not configured on this device.
    #[error("no release keys are configured (pu.toml `release_keys`)")]
    Disabled,
    /// Another upgrade is under way.
    #[error("an upgrade to {0} is already under way")]
    Busy(String),
}

impl Upgrader {
    /// An upgrader trusting `keys` (at least `threshold` must sign), for `model`, running
    /// version `running`. `tls` is the client configuration for downloads (the platform CA).
    pub fn new(
        firmware: Firmware,
        keys: Vec<ed25519_dalek::VerifyingKey>,
        threshold: usize,
        model: String,
        running: String,
        tls: Option<peercam_net::rustls::ClientConfig>,
    ) -> Self {
        let http = tls.and_then(|t| {
            reqwest::Client::builder()
                .use_preconfigured_tls(t)
                .connect_timeout(std::time::Duration::from_secs(10))
                .build()
                .ok()
        });
        let status = firmware.last().map_or_else(
            || UpgradeStatus {
                running: running.clone(),
                state: "idle".into(),
                target: None,
                done: 0,
                total: 0,
                reason: None,
            },
            |mut l| {
                l.running.clone_from(&running);
                l
            },
        );
        Self {
            firmware,
            keys,
            threshold,
            model,
            running,
            status: Mutex::new(status),
            http,
            restart: watch::Sender::new(false),
        }
    }

    /// Where the upgrade stands: the download under way, or else how the last one ended
    /// (the supervisor records that while this agent runs).
    pub fn status(&self) -> UpgradeStatus {
        let mut st = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        if !matches!(
            st.state.as_str(),
            "downloading" | "installing" | "restarting"
        ) && let Some(mut last) = self.firmware.last()
        {
            last.running.clone_from(&self.running);
            *st = last;
        }
        st.clone()
    }

    fn set(&self, f: impl FnOnce(&mut UpgradeStatus)) {
        f(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// The firmware directory.
    pub fn firmware(&self) -> &Firmware {
        &self.firmware
    }

    /// H.626.4 8.11.1: checks the release (D9) and, if it passes, downloads, installs and asks
    /// for a restart in the background.
    pub fn start(
        self: &Arc<Self>,
        release: SignedManifest,
        url: String,
        now_s: u64,
    ) -> Result<UpgradeStatus, InstallError> {
        if self.keys.is_empty() {
            return Err(InstallError::Disabled);
        }
        let factory: Version = self.running.parse().unwrap_or_default();
        let installed = self.firmware.max_version(factory).max(factory);
        let version = release.verify(&Policy {
            keys: &self.keys,
            threshold: self.threshold,
            model: &self.model,
            now: now_s,
            installed,
        })?;
        {
            let mut st = self.status.lock().unwrap_or_else(PoisonError::into_inner);
            if matches!(
                st.state.as_str(),
                "downloading" | "installing" | "restarting"
            ) {
                return Err(InstallError::Busy(st.target.clone().unwrap_or_default()));
            }
            *st = UpgradeStatus {
                running: self.running.clone(),
                state: "downloading".into(),
                target: Some(version.to_string()),
                done: 0,
                total: release.manifest.size,
                reason: None,
            };
        }
        let me = self.clone();
        tokio::spawn(async move {
            match me.download_and_install(&release, &url).await {
                Ok(()) => {
                    tracing::warn!(version = %release.manifest.version, "upgrade installed; restarting into it");
                    me.set(|s| s.state = "restarting".into());
                    let _ = me.restart.send(true);
                }
                Err(e) => {
                    let reason = e.to_string();
                    tracing::error!(%reason, "upgrade failed");
                    me.set(|s| {
                        s.state = "failed".into();
                        s.reason = Some(reason);
                    });
                    let _ = me.firmware.set_last(&me.status());
                }
            }
        });
        Ok(self.status())
    }

    async fn download_and_install(
        &self,
        release: &SignedManifest,
        url: &str,
    ) -> Result<(), DownloadError> {
        let m = &release.manifest;
        let http = self.http.as_ref().ok_or(DownloadError::NoClient)?;
        let dir = &self.firmware.dir;
        std::fs::create_dir_all(dir).map_err(|source| DownloadError::Dir {
            path: dir.clone(),
            source,
        })?;
        let part = dir.join(format!("{}.part", m.version));
        // Resume what an earlier attempt left (a dropped network must not restart a download).
        let mut have = std::fs::metadata(&part).map_or(0, |md| md.len());
        if have > m.size {
            let _ = std::fs::remove_file(&part);
            have = 0;
        }
        let mut attempts = 0;
        while have < m.size {
            attempts += 1;
            match self.fetch(http, url, &part, have, m.size).await {
                Ok(n) => have = n,
                Err(Fetch::Refused(e)) => return Err(DownloadError::Fetch(e)),
                Err(Fetch::Broken(e)) if attempts < 5 => {
                    tracing::warn!(error = %e, have, "download interrupted; resuming");
                    tokio::time::sleep(std::time::Duration::from_millis(500 * attempts)).await;
                    have = std::fs::metadata(&part).map_or(0, |md| md.len());
                }
                Err(Fetch::Broken(e)) => return Err(DownloadError::Fetch(e)),
            }
        }
        self.set(|s| s.state = "installing".into());
        let part2 = part.clone();
        let digest = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
            let mut f = std::fs::File::open(&part2)?;
            let mut h = Sha256::new();
            std::io::copy(&mut f, &mut h)?;
            Ok(hex::encode(h.finalize()))
        })
        .await
        .map_err(DownloadError::Task)?
        .map_err(DownloadError::Install)?;
        if digest != m.sha256 {
            let _ = std::fs::remove_file(&part);
            return Err(DownloadError::Digest {
                digest,
                expected: m.sha256.clone(),
            });
        }
        // Into its own slot, then the pending mark: the supervisor takes it from here.
        let slot_dir = dir.join(&m.version);
        std::fs::create_dir_all(&slot_dir).map_err(DownloadError::Install)?;
        let exe = slot_dir.join("peercam");
        std::fs::rename(&part, &exe).map_err(DownloadError::Install)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755))
                .map_err(DownloadError::Install)?;
        }
        std::fs::File::open(&slot_dir)
            .and_then(|d| d.sync_all())
            .map_err(DownloadError::Install)?;
        let previous = self.firmware.committed().unwrap_or(Slot {
            version: self.running.clone(),
            exe: std::env::current_exe().map_err(DownloadError::Install)?,
        });
        let pending = Pending {
            slot: Slot {
                version: m.version.clone(),
                exe,
            },
            previous,
        };
        self.firmware
            .write("pending.json", &pending)
            .map_err(DownloadError::Install)?;
        Ok(())
    }

    /// Downloads from `have` on, appending to `part`, never past `size`. Returns the new
    /// length.
    async fn fetch(
        &self,
        http: &reqwest::Client,
        url: &str,
        part: &Path,
        have: u64,
        size: u64,
    ) -> Result<u64, Fetch> {
        let mut req = http.get(url);
        if have > 0 {
            req = req.header("range", format!("bytes={have}-"));
        }
        let mut resp = req.send().await.map_err(|e| Fetch::Broken(e.to_string()))?;
        let status = resp.status();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(part)
            .map_err(|e| Fetch::Refused(e.to_string()))?;
        let mut have = have;
        if status == reqwest::StatusCode::OK && have > 0 {
            // The server ignored the range: start over.
            file.set_len(0).map_err(|e| Fetch::Refused(e.to_string()))?;
            have = 0;
        } else if !status.is_success() {
            return Err(Fetch::Broken(format!("download refused: HTTP {status}")));
        }
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| Fetch::Broken(e.to_string()))?
        {
            if have + chunk.len() as u64 > size {
                drop(file);
                let _ = std::fs::remove_file(part);
                return Err(Fetch::Refused(format!(
                    "the payload is larger than the manifest's {size} bytes; refused"
                )));
            }
            file.write_all(&chunk)
                .map_err(|e| Fetch::Refused(e.to_string()))?;
            have += chunk.len() as u64;
            self.set(|s| s.done = have);
        }
        file.sync_all().map_err(|e| Fetch::Refused(e.to_string()))?;
        if have < size {
            return Err(Fetch::Broken(format!(
                "the download ended at {have} of {size} bytes"
            )));
        }
        Ok(have)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_raises_the_anti_rollback_mark() {
        let dir = tempfile::tempdir().unwrap();
        let fw = Firmware::new(dir.path().to_owned());
        let factory = Version(0, 1, 0);
        assert_eq!(fw.max_version(factory), factory);
        let p = Pending {
            slot: Slot {
                version: "0.3.0".into(),
                exe: "/x".into(),
            },
            previous: Slot {
                version: "0.1.0".into(),
                exe: "/y".into(),
            },
        };
        fw.write("pending.json", &p).unwrap();
        assert_eq!(fw.pending(), Some(p.clone()));
        fw.commit(&p).unwrap();
        assert_eq!(fw.pending(), None);
        assert_eq!(fw.committed(), Some(p.slot));
        assert_eq!(fw.max_version(factory), Version(0, 3, 0));
    }

    /// A one-shot HTTP server on loopback: each connection gets the next canned answer.
    async fn serve(answers: Vec<Vec<u8>>) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/payload", l.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut requests = Vec::new();
            for a in answers {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap();
                requests.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let _ = s.write_all(&a).await;
                let _ = s.shutdown().await;
            }
            requests
        });
        (url, task)
    }

    fn release(key: &ed25519_dalek::SigningKey, payload: &[u8]) -> SignedManifest {
        let manifest = peercam_signal::upgrade::Manifest {
            version: "9.0.0".into(),
            model: "m1".into(),
            sha256: hex::encode(Sha256::digest(payload)),
            size: payload.len() as u64,
            expires_at: u64::MAX / 2,
        };
        SignedManifest {
            signatures: vec![manifest.sign(key)],
            manifest,
        }
    }

    fn upgrader(dir: &Path, key: &ed25519_dalek::SigningKey) -> Arc<Upgrader> {
        Arc::new(Upgrader::new(
            Firmware::new(dir.to_owned()),
            vec![key.verifying_key()],
            1,
            "m1".into(),
            "1.0.0".into(),
            Some(
                peercam_net::rustls::ClientConfig::builder_with_provider(Arc::new(
                    peercam_net::rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(peercam_net::rustls::RootCertStore::empty())
                .with_no_client_auth(),
            ),
        ))
    }

    async fn finished(u: &Upgrader) -> UpgradeStatus {
        for _ in 0..200 {
            let s = u.status();
            if matches!(s.state.as_str(), "failed" | "restarting") {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no outcome: {:?}", u.status());
    }

    #[tokio::test]
    async fn h626_8_11_1_download_resumes_after_a_drop() {
        let dir = tempfile::tempdir().unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        // First answer breaks off after 40 000 bytes; the second serves the rest on Range.
        let mut first = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            payload.len()
        )
        .into_bytes();
        first.extend_from_slice(&payload[..40_000]);
        let mut second = b"HTTP/1.1 206 Partial Content\r\ncontent-length: 60000\r\ncontent-range: bytes 40000-99999/100000\r\n\r\n"
            .to_vec();
        second.extend_from_slice(&payload[40_000..]);
        let (url, server) = serve(vec![first, second]).await;
        let u = upgrader(dir.path(), &key);
        u.start(release(&key, &payload), url, 1).unwrap();
        let s = finished(&u).await;
        assert_eq!(s.state, "restarting", "{s:?}");
        let requests = server.await.unwrap();
        assert!(
            requests[1].to_lowercase().contains("range: bytes=40000-"),
            "{}",
            requests[1]
        );
        let pending = u.firmware().pending().unwrap();
        assert_eq!(std::fs::read(pending.slot.exe).unwrap(), payload);
    }

    #[tokio::test]
    async fn h626_8_11_1_oversized_and_wrong_payloads_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let payload = vec![7u8; 1000];
        // More bytes than the manifest says.
        let mut big = b"HTTP/1.1 200 OK\r\ncontent-length: 1500\r\n\r\n".to_vec();
        big.extend_from_slice(&[7u8; 1500]);
        let (url, _server) = serve(vec![big]).await;
        let u = upgrader(dir.path(), &key);
        u.start(release(&key, &payload), url, 1).unwrap();
        let s = finished(&u).await;
        assert_eq!(s.state, "failed");
        assert!(s.reason.unwrap().contains("larger than the manifest"));
        assert!(u.firmware().pending().is_none(), "nothing installed");
        // The right size but other bytes: the hash refuses it.
        let dir = tempfile::tempdir().unwrap();
        let mut other = b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n".to_vec();
        other.extend_from_slice(&[8u8; 1000]);
        let (url, _server) = serve(vec![other]).await;
        let u = upgrader(dir.path(), &key);
        u.start(release(&key, &payload), url, 1).unwrap();
        let s = finished(&u).await;
        assert_eq!(s.state, "failed");
        assert!(s.reason.unwrap().contains("SHA-256"));
        assert!(u.firmware().pending().is_none());
        // And a release for an older version than the device runs is refused up front.
        let mut old = release(&key, &payload);
        old.manifest.version = "0.9.0".into();
        old.signatures = vec![old.manifest.sign(&key)];
        assert!(matches!(
            u.start(old, "http://x/".into(), 1),
            Err(InstallError::Refused(_))
        ));
    }
}
