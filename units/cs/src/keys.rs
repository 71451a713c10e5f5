//! Data keys (DEKs) the CS seals objects with.
//!
//! The CS asks the CMU's key service (`cloud_key {prefix, kid}`, Su, over its device link)
//! the first time it needs a key and keeps it in memory only ([`PlatformKeys`]); the CMU
//! answers only for prefixes it assigned to this CS. Keys from the configuration or a test
//! ([`StaticKeys`]) come first: a CS without a platform has only those.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use peercam_cloud::Prefix;
use peercam_cloud::envelope::Key32;
use peercam_net::agent::PlatformReq;
use peercam_signal::cmd::{DeviceRequest, PlatformAnswer};
use tokio::sync::{mpsc, oneshot};

/// A key lookup in progress.
pub type KeyFuture<'a> = Pin<Box<dyn Future<Output = Option<Key32>> + Send + 'a>>;

/// Gives the data key `kid` of a camera's prefix.
pub trait Keys: Send + Sync + fmt::Debug {
    /// The key, or `None` if the CS has none (the upload is then refused with 503).
    fn dek<'a>(&'a self, prefix: &'a Prefix, kid: &'a str) -> KeyFuture<'a>;
}

/// Keys held in memory, from the configuration or a test.
#[derive(Default, Clone)]
pub struct StaticKeys {
    keys: HashMap<(Prefix, String), Key32>,
}

impl StaticKeys {
    /// No keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) key `kid` of `prefix`.
    pub fn insert(&mut self, prefix: Prefix, kid: &str, key: Key32) {
        self.keys.insert((prefix, kid.to_owned()), key);
    }

    fn get(&self, prefix: &Prefix, kid: &str) -> Option<Key32> {
        self.keys.get(&(*prefix, kid.to_owned())).copied()
    }
}

impl fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("StaticKeys")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Keys for StaticKeys {
    fn dek<'a>(&'a self, prefix: &'a Prefix, kid: &'a str) -> KeyFuture<'a> {
        Box::pin(std::future::ready(self.get(prefix, kid)))
    }
}

/// The CMU's key service over the CS's device link, with a memory-only cache; `first`
/// (configured keys) is asked before the platform.
pub struct PlatformKeys {
    first: Arc<dyn Keys>,
    cache: Mutex<StaticKeys>,
    requests: mpsc::Sender<PlatformReq>,
}

impl PlatformKeys {
    /// Keys from `first`, else asked of the platform through `requests`.
    pub fn new(first: Arc<dyn Keys>, requests: mpsc::Sender<PlatformReq>) -> Self {
        Self {
            first,
            cache: Mutex::new(StaticKeys::new()),
            requests,
        }
    }

    async fn ask(&self, prefix: &Prefix, kid: &str) -> Option<Key32> {
        let (reply, answer) = oneshot::channel();
        let request = PlatformReq::Request {
            request: DeviceRequest::CloudKey {
                prefix: prefix.to_string(),
                kid: kid.to_owned(),
            },
            reply,
        };
        self.requests.send(request).await.ok()?;
        match answer.await.ok()? {
            PlatformAnswer::CloudKey { dek } => {
                let key: Option<Key32> = URL_SAFE_NO_PAD
                    .decode(dek)
                    .ok()
                    .and_then(|v| v.try_into().ok());
                if key.is_none() {
                    tracing::warn!(%prefix, kid, "the platform sent a malformed data key");
                }
                key
            }
            other => {
                tracing::warn!(%prefix, kid, answer = ?other, "no data key from the platform");
                None
            }
        }
    }
}

impl fmt::Debug for PlatformKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformKeys").finish_non_exhaustive()
    }
}

impl Keys for PlatformKeys {
    fn dek<'a>(&'a self, prefix: &'a Prefix, kid: &'a str) -> KeyFuture<'a> {
        Box::pin(async move {
            if let Some(k) = self.first.dek(prefix, kid).await {
                return Some(k);
            }
            if let Some(k) = self
                .cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(prefix, kid)
            {
                return Some(k);
            }
            let k = self.ask(prefix, kid).await?;
            self.cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(*prefix, kid, k);
            Some(k)
        })
    }
}
