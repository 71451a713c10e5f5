//! WLAN configuration (H.626.4 6.1.11): list the networks the camera sees and move it to
//! another one, through the platform. A switch is confirmed only when the camera registers
//! with the SCU again through the new network within the confirmation time; otherwise it
//! returns to the previous network by itself, so a typo cannot strand a camera.
//!
//! Backends: NetworkManager (`nmcli`, run without a shell, arguments validated first) on Linux
//! devices, and a JSON file that describes the radio environment, for the demo and tests.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use peercam_signal::control::{WlanConfig, WlanNetwork, WlanSecurity, WlanState, WlanSwitch};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Why a WLAN operation failed; its `Display` is the message the platform is answered with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WlanError {
    /// The file backend's radio file could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file backend's radio file is not valid JSON.
    #[error("{}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The radio state could not be encoded.
    #[error("{0}")]
    Encode(#[source] serde_json::Error),
    /// The network asked for is not in range.
    #[error("network {0:?} is not in range")]
    NotInRange(String),
    /// The network refused the passphrase.
    #[error("{0:?} refused the passphrase")]
    Refused(String),
    /// `nmcli` could not be started.
    #[error("nmcli: {0}")]
    Spawn(#[source] std::io::Error),
    /// `nmcli` failed; its standard error.
    #[error("nmcli: {0}")]
    Nmcli(String),
    /// The configuration is not valid.
    #[error("{0:?}")]
    Invalid(Vec<peercam_signal::control::FieldError>),
}

/// A way to drive the camera's radio.
pub trait WlanBackend: Send + Sync {
    /// Networks in range.
    fn scan(&self) -> Result<Vec<WlanNetwork>, WlanError>;
    /// The network joined now.
    fn current(&self) -> Result<Option<String>, WlanError>;
    /// Joins a network with new credentials (saved by the backend for a later return).
    fn connect(&self, config: &WlanConfig) -> Result<(), WlanError>;
    /// Joins a network it has credentials for (the way back after a failed switch).
    fn reconnect(&self, ssid: &str) -> Result<(), WlanError>;
    /// Whether the platform is reachable through the current network, when the backend
    /// knows better than trying (the file backend's simulated networks). Default: try.
    fn reaches_platform(&self) -> bool {
        true
    }
}

/// The demo and test backend: a JSON file lists the networks in range, their passphrases and
/// whether the platform can be reached through them; joining one rewrites `current`.
pub struct FileBackend {
    path: PathBuf,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Radio {
    current: Option<String>,
    networks: Vec<SimNetwork>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SimNetwork {
    ssid: String,
    security: WlanSecurity,
    #[serde(default)]
    passphrase: String,
    #[serde(default = "full")]
    signal_pct: u8,
    #[serde(default = "yes")]
    reaches_platform: bool,
}

fn full() -> u8 {
    80
}
fn yes() -> bool {
    true
}

impl FileBackend {
    /// A backend over the file at `path`.
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    fn load(&self) -> Result<Radio, WlanError> {
        let text = std::fs::read(&self.path).map_err(|source| WlanError::File {
            path: self.path.clone(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| WlanError::Parse {
            path: self.path.clone(),
            source,
        })
    }

    fn store(&self, radio: &Radio) -> Result<(), WlanError> {
        let text = serde_json::to_vec_pretty(radio).map_err(WlanError::Encode)?;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|source| WlanError::File {
                path: self.path.clone(),
                source,
            })
    }

    fn join(&self, ssid: &str, passphrase: Option<&str>) -> Result<(), WlanError> {
        let mut radio = self.load()?;
        let net = radio
            .networks
            .iter()
            .find(|n| n.ssid == ssid)
            .ok_or_else(|| WlanError::NotInRange(ssid.to_owned()))?;
        if let Some(p) = passphrase
            && net.security != WlanSecurity::Open
            && p != net.passphrase
        {
            return Err(WlanError::Refused(ssid.to_owned()));
        }
        radio.current = Some(ssid.to_owned());
        self.store(&radio)
    }
}

impl WlanBackend for FileBackend {
    fn scan(&self) -> Result<Vec<WlanNetwork>, WlanError> {
        Ok(self
            .load()?
            .networks
            .into_iter()
            .map(|n| WlanNetwork {
                ssid: n.ssid,
                security: n.security,
                signal_pct: n.signal_pct,
            })
            .collect())
    }
    fn current(&self) -> Result<Option<String>, WlanError> {
        Ok(self.load()?.current)
    }
    fn connect(&self, config: &WlanConfig) -> Result<(), WlanError> {
        self.join(&config.ssid, Some(&config.passphrase))
    }
    fn reconnect(&self, ssid: &str) -> Result<(), WlanError> {
        self.join(ssid, None)
    }
    fn reaches_platform(&self) -> bool {
        self.load().is_ok_and(|r| {
            r.current
                .and_then(|c| r.networks.into_iter().find(|n| n.ssid == c))
                .is_some_and(|n| n.reaches_platform)
        })
    }
}

/// NetworkManager through `nmcli` (no shell; every argument is a validated value).
pub struct NetworkManager;

fn nmcli(args: &[&str]) -> Result<String, WlanError> {
    let out = Command::new("nmcli")
        .args(args)
        .output()
        .map_err(WlanError::Spawn)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(WlanError::Nmcli(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

/// Splits one line of `nmcli -t` output: fields separated by `:`, with `\:` and `\\` escaped.
pub fn split_terse(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next()
                    && let Some(f) = fields.last_mut()
                {
                    f.push(n);
                }
            }
            ':' => fields.push(String::new()),
            c => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields
}

/// Parses `nmcli -t -f SSID,SECURITY,SIGNAL dev wifi list`.
pub fn parse_scan(text: &str) -> Vec<WlanNetwork> {
    let mut out: Vec<WlanNetwork> = Vec::new();
    for line in text.lines() {
        let f = split_terse(line);
        let (Some(ssid), Some(sec), Some(sig)) = (f.first(), f.get(1), f.get(2)) else {
            continue;
        };
        if ssid.is_empty() || out.iter().any(|n| &n.ssid == ssid) {
            continue; // hidden networks; the strongest of each name comes first
        }
        let security = if sec.contains("WPA3") || sec.contains("SAE") {
            WlanSecurity::Wpa3Sae
        } else if sec.contains("WPA") {
            WlanSecurity::Wpa2Psk
        } else {
            WlanSecurity::Open
        };
        out.push(WlanNetwork {
            ssid: ssid.clone(),
            security,
            signal_pct: sig.parse().unwrap_or(0),
        });
    }
    out
}

impl WlanBackend for NetworkManager {
    fn scan(&self) -> Result<Vec<WlanNetwork>, WlanError> {
        nmcli(&["-t", "-f", "SSID,SECURITY,SIGNAL", "dev", "wifi", "list"]).map(|t| parse_scan(&t))
    }
    fn current(&self) -> Result<Option<String>, WlanError> {
        let t = nmcli(&["-t", "-f", "ACTIVE,SSID", "dev", "wifi"])?;
        Ok(t.lines()
            .map(split_terse)
            .find(|f| f.first().is_some_and(|a| a == "yes"))
            .and_then(|f| f.get(1).cloned()))
    }
    fn connect(&self, config: &WlanConfig) -> Result<(), WlanError> {
        config.validate().map_err(WlanError::Invalid)?;
        let mut args = vec!["dev", "wifi", "connect", config.ssid.as_str()];
        if config.security != WlanSecurity::Open {
            args.extend(["password", config.passphrase.as_str()]);
        }
        nmcli(&args).map(|_| ())
    }
    fn reconnect(&self, ssid: &str) -> Result<(), WlanError> {
        nmcli(&["con", "up", "id", ssid]).map(|_| ())
    }
}

/// The camera's WLAN: a backend, the last switch, and the watchdog that undoes a bad one.
pub struct Wlan {
    backend: Box<dyn WlanBackend>,
    last: Mutex<Option<WlanSwitch>>,
    confirm: Duration,
    /// Bumped when the network changes: the platform link drops and redials through it.
    pub(crate) network: watch::Sender<u64>,
}

impl Wlan {
    /// A controller over `backend`; a switch must be confirmed within `confirm`.
    pub fn new(backend: Box<dyn WlanBackend>, confirm: Duration) -> Self {
        Self {
            backend,
            last: Mutex::new(None),
            confirm,
            network: watch::Sender::new(0),
        }
    }

    /// Whether the platform can be reached through the current network (see
    /// [`WlanBackend::reaches_platform`]).
    pub fn reaches_platform(&self) -> bool {
        self.backend.reaches_platform()
    }

    /// The state, with a scan.
    pub fn state(&self) -> Result<WlanState, WlanError> {
        Ok(WlanState {
            current: self.backend.current()?,
            networks: self.backend.scan()?,
            last_switch: self
                .last
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        })
    }

    fn set_last(&self, ssid: &str, outcome: &str) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(WlanSwitch {
            ssid: ssid.to_owned(),
            outcome: outcome.to_owned(),
        });
    }

    /// Joins `config`'s network and starts the watchdog: unless the device registers with
    /// the platform again (`registrations` grows) within the confirmation time, it returns to
    /// the network it was on.
    pub fn switch(
        self: &Arc<Self>,
        config: &WlanConfig,
        registrations: Arc<AtomicU64>,
    ) -> Result<WlanState, WlanError> {
        let previous = self.backend.current()?;
        let before = registrations.load(Ordering::Acquire);
        self.backend.connect(config)?;
        self.set_last(&config.ssid, "pending");
        tracing::warn!(ssid = %config.ssid, ?previous, "WLAN switched; waiting for the platform");
        let state = self.state()?;
        let me = self.clone();
        let ssid = config.ssid.clone();
        tokio::spawn(async move {
            // Let the reply leave on the old network before the link is dropped.
            tokio::time::sleep(Duration::from_millis(200)).await;
            me.network.send_modify(|g| *g += 1);
            let deadline = tokio::time::Instant::now() + me.confirm;
            while tokio::time::Instant::now() < deadline {
                if registrations.load(Ordering::Acquire) > before {
                    tracing::info!(%ssid, "WLAN switch confirmed: the platform is reachable");
                    me.set_last(&ssid, "confirmed");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tracing::error!(%ssid, ?previous, "the platform is not reachable through the new network; going back");
            if let Some(prev) = &previous
                && let Err(e) = me.backend.reconnect(prev)
            {
                tracing::error!(error = %e, "cannot return to the previous network");
            }
            me.set_last(&ssid, "reverted");
            me.network.send_modify(|g| *g += 1);
        });
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nmcli_terse_output_is_parsed() {
        assert_eq!(split_terse(r"a\:b:WPA2:70"), ["a:b", "WPA2", "70"]);
        let nets = parse_scan("home:WPA2:80\nhome:WPA2:40\n:WPA2:30\ncafe::55\nlab:WPA3 SAE:20\n");
        assert_eq!(nets.len(), 3);
        assert_eq!(nets[0].signal_pct, 80);
        assert_eq!(nets[1].security, WlanSecurity::Open);
        assert_eq!(nets[2].security, WlanSecurity::Wpa3Sae);
    }

    #[test]
    fn file_backend_checks_passphrases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("radio.json");
        std::fs::write(
            &path,
            r#"{"current":"home","networks":[{"ssid":"home","security":"wpa2_psk","passphrase":"homehome1"},{"ssid":"far","security":"open","reaches_platform":false}]}"#,
        )
        .unwrap();
        let b = FileBackend::new(path);
        assert!(b.reaches_platform());
        let wrong = WlanConfig {
            ssid: "home".into(),
            security: WlanSecurity::Wpa2Psk,
            passphrase: "nothomehome".into(),
        };
        assert!(b.connect(&wrong).is_err());
        b.reconnect("far").unwrap();
        assert_eq!(b.current().unwrap().as_deref(), Some("far"));
        assert!(!b.reaches_platform());
    }
}
