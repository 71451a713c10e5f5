//! Objects in any S3 endpoint, through `object_store` (design: "Upload invariants").
//!
//! * **Acknowledged means durable** (invariant 1): a single PUT carries
//!   `x-amz-checksum-sha256` (object_store's SHA-256 checksum setting), so the store refuses
//!   a body that does not match and a `200` means it holds these bytes. Objects above
//!   `multipart_threshold_bytes` go as a multipart upload (each part checksummed); after
//!   `CompleteMultipartUpload` a HEAD compares the stored size with the body's, because a
//!   multipart object's checksum is a checksum of part checksums, not of the whole.
//!   [`Backend::put`] resolves only after that.
//! * **Credentials** come from `credentials_file` or the environment (`AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` and the rest of object_store's `AWS_*`
//!   chain), never from the CMU.
//! * **Path style** (`endpoint/bucket/key`) or **virtual-host style**
//!   (`bucket.endpoint-host/key`).
//!
//! Keys are checked as [`crate::LocalDir`] checks them (no empty, `.`-led or `\` components)
//! so both backends accept the same keys.

use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::StreamExt as _;
use object_store::aws::{AmazonS3Builder, Checksum};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt as _, PutPayload, RetryConfig,
};
use serde::Deserialize;

use crate::backend::{Backend, BackendError, BoxFut};

/// `store = { kind = "s3", ... }` in `cs.toml` (docs/config.md).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The endpoint URL, e.g. `https://s3.eu-west-1.amazonaws.com` or
    /// `http://127.0.0.1:9000`. Default: AWS for `region`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The bucket (it must exist).
    pub bucket: String,
    /// The region used for signing. Default `us-east-1`.
    #[serde(default = "default_region")]
    pub region: String,
    /// Path-style requests (`endpoint/bucket/key`); `false` for virtual-host style
    /// (`bucket.host/key`). Default `true`.
    #[serde(default = "default_true")]
    pub path_style: bool,
    /// A TOML file with `access_key_id`, `secret_access_key` and optionally
    /// `session_token`. Default: the environment (`AWS_ACCESS_KEY_ID`, ...).
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Objects larger than this go as a multipart upload, bytes. Default 8 MiB.
    #[serde(default = "default_multipart_threshold")]
    pub multipart_threshold_bytes: usize,
    /// Part size of a multipart upload, bytes (at least 5 MiB, the S3 minimum).
    /// Default 5 MiB.
    #[serde(default = "default_part")]
    pub multipart_part_bytes: usize,
    /// An HTTP proxy for every request to the store. Default none.
    #[serde(default)]
    pub proxy_url: Option<String>,
    /// Retries of one request inside object_store before the upload fails (the camera
    /// then retries the whole object). Default 3.
    #[serde(default = "default_retries")]
    pub max_retries: usize,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("credentials_file", &self.credentials_file)
            .finish_non_exhaustive()
    }
}

/// The S3 minimum part size (except the last part).
pub const MIN_PART: usize = 5 << 20;

fn default_region() -> String {
    "us-east-1".into()
}
fn default_true() -> bool {
    true
}
fn default_multipart_threshold() -> usize {
    8 << 20
}
fn default_part() -> usize {
    MIN_PART
}
fn default_retries() -> usize {
    3
}

impl S3Config {
    /// A path-style configuration with defaults for everything else.
    pub fn new(endpoint: impl Into<String>, bucket: impl Into<String>) -> Self {
        Self {
            endpoint: Some(endpoint.into()),
            bucket: bucket.into(),
            region: default_region(),
            path_style: true,
            credentials_file: None,
            multipart_threshold_bytes: default_multipart_threshold(),
            multipart_part_bytes: default_part(),
            proxy_url: None,
            max_retries: default_retries(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
}

/// The endpoint a virtual-host-style client talks to: the bucket before the host.
pub fn virtual_host_endpoint(endpoint: &str, bucket: &str) -> Result<String, BackendError> {
    let (scheme, rest) = endpoint
        .split_once("://")
        .ok_or_else(|| config_err(format!("endpoint {endpoint:?} has no scheme")))?;
    Ok(format!(
        "{scheme}://{bucket}.{}",
        rest.trim_end_matches('/')
    ))
}

fn config_err(msg: String) -> BackendError {
    BackendError::Io {
        context: "s3 configuration".into(),
        source: io::Error::new(io::ErrorKind::InvalidInput, msg),
    }
}

/// An S3 bucket as a [`Backend`].
#[derive(Debug, Clone)]
pub struct S3Store {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    threshold: usize,
    part: usize,
}

impl S3Store {
    /// Builds the client (no request is made; the first write shows a wrong bucket or
    /// credentials).
    pub fn open(config: &S3Config) -> Result<Self, BackendError> {
        if config.multipart_part_bytes < MIN_PART {
            return Err(config_err(format!(
                "multipart_part_bytes below the S3 minimum of {MIN_PART}"
            )));
        }
        if config.bucket.is_empty() {
            return Err(config_err("empty bucket".into()));
        }
        // The AWS_* environment first (credentials, web identity, container roles), then
        // the file and the configuration, which win.
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_checksum_algorithm(Checksum::SHA256)
            .with_virtual_hosted_style_request(!config.path_style)
            .with_retry(RetryConfig {
                max_retries: config.max_retries,
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &config.endpoint {
            b = b.with_allow_http(endpoint.starts_with("http://"));
            b = if config.path_style {
                b.with_endpoint(endpoint)
            } else {
                b.with_endpoint(virtual_host_endpoint(endpoint, &config.bucket)?)
            };
        }
        if let Some(proxy) = &config.proxy_url {
            b = b.with_proxy_url(proxy);
        }
        if let Some(path) = &config.credentials_file {
            let text = std::fs::read_to_string(path).map_err(|source| BackendError::Io {
                context: format!("read {}", path.display()),
                source,
            })?;
            let c: CredentialsFile = toml::from_str(&text)
                .map_err(|e| config_err(format!("{}: {}", path.display(), e.message())))?;
            b = b
                .with_access_key_id(c.access_key_id)
                .with_secret_access_key(c.secret_access_key);
            if let Some(t) = c.session_token {
                b = b.with_token(t);
            }
        }
        let store = b.build().map_err(store_err("s3 client"))?;
        Ok(Self::with_store(
            Arc::new(store),
            &config.bucket,
            config.multipart_threshold_bytes,
            config.multipart_part_bytes,
        ))
    }

    /// Any `object_store` as a backend (tests use `InMemory`).
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        bucket: &str,
        threshold: usize,
        part: usize,
    ) -> Self {
        Self {
            store,
            bucket: bucket.to_owned(),
            threshold,
            part: part.max(1),
        }
    }

    fn path(key: &str) -> Result<Path, BackendError> {
        if key
            .split('/')
            .any(|p| p.is_empty() || p.starts_with('.') || p.contains('\\'))
        {
            return Err(BackendError::BadKey(key.to_owned()));
        }
        Path::parse(key).map_err(|_| BackendError::BadKey(key.to_owned()))
    }

    async fn put_multipart(&self, path: &Path, bytes: Vec<u8>) -> Result<(), BackendError> {
        let len = bytes.len() as u64;
        let body = bytes::Bytes::from(bytes);
        let mut up = self
            .store
            .put_multipart(path)
            .await
            .map_err(store_err(format!("{}: start multipart", self.bucket)))?;
        let mut sent = Ok(());
        let mut parts = Vec::new();
        for chunk in body.chunks(self.part) {
            parts.push(up.put_part(PutPayload::from(body.slice_ref(chunk))));
        }
        for p in parts {
            if let Err(e) = p.await {
                sent = Err(e);
                break;
            }
        }
        if let Err(e) = sent {
            // Best effort: an upload left open costs storage until the bucket's lifecycle
            // rule aborts it; the camera retries the whole object.
            let _ = up.abort().await;
            return Err(store_err(format!("{}: upload part", self.bucket))(e));
        }
        up.complete()
            .await
            .map_err(store_err(format!("{}: complete multipart", self.bucket)))?;
        let meta = self
            .store
            .head(path)
            .await
            .map_err(store_err(format!("{}: head {path}", self.bucket)))?;
        if meta.size != len {
            return Err(BackendError::Io {
                context: format!("{}: {path} after multipart", self.bucket),
                source: io::Error::other(format!("stored {} of {len} bytes", meta.size)),
            });
        }
        Ok(())
    }
}

fn store_err(context: impl Into<String>) -> impl FnOnce(object_store::Error) -> BackendError {
    let context = context.into();
    move |e| BackendError::Io {
        context,
        source: io::Error::other(e.to_string()),
    }
}

impl Backend for S3Store {
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BoxFut<'a, ()> {
        Box::pin(async move {
            let path = Self::path(key)?;
            if bytes.len() > self.threshold {
                return self.put_multipart(&path, bytes).await;
            }
            self.store
                .put(&path, PutPayload::from(bytes))
                .await
                .map_err(store_err(format!("{}: put {key}", self.bucket)))?;
            Ok(())
        })
    }

    fn get_range<'a>(&'a self, key: &'a str, range: Option<Range<u64>>) -> BoxFut<'a, Vec<u8>> {
        Box::pin(async move {
            let path = Self::path(key)?;
            if let Some(r) = &range {
                // The store clamps or refuses ranges in its own ways; answer as LocalDir.
                let len = match self.store.head(&path).await {
                    Ok(m) => m.size,
                    Err(object_store::Error::NotFound { .. }) => {
                        return Err(BackendError::NotFound(key.to_owned()));
                    }
                    Err(e) => return Err(store_err(format!("{}: head {key}", self.bucket))(e)),
                };
                if r.start > r.end || r.end > len {
                    return Err(BackendError::Range {
                        start: r.start,
                        end: r.end,
                        len,
                    });
                }
                if r.start == r.end {
                    return Ok(Vec::new());
                }
            }
            let opts = GetOptions {
                range: range.clone().map(GetRange::Bounded),
                ..GetOptions::default()
            };
            let got = match self.store.get_opts(&path, opts).await {
                Ok(g) => g,
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(BackendError::NotFound(key.to_owned()));
                }
                Err(e) => return Err(store_err(format!("{}: get {key}", self.bucket))(e)),
            };
            let bytes = got
                .bytes()
                .await
                .map_err(store_err(format!("{}: read {key}", self.bucket)))?;
            if let Some(r) = range
                && bytes.len() as u64 != r.end - r.start
            {
                return Err(BackendError::Io {
                    context: format!("{}: get {key}", self.bucket),
                    source: io::Error::other(format!(
                        "{} bytes for range {}..{}",
                        bytes.len(),
                        r.start,
                        r.end
                    )),
                });
            }
            Ok(bytes.to_vec())
        })
    }

    fn head<'a>(&'a self, key: &'a str) -> BoxFut<'a, Option<u64>> {
        Box::pin(async move {
            let path = Self::path(key)?;
            match self.store.head(&path).await {
                Ok(m) => Ok(Some(m.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(store_err(format!("{}: head {key}", self.bucket))(e)),
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async move {
            let path = Self::path(key)?;
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(store_err(format!("{}: delete {key}", self.bucket))(e)),
            }
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFut<'a, Vec<(String, u64)>> {
        Box::pin(async move {
            // object_store lists by whole path components: list the directory part of the
            // prefix, then keep the keys that start with the prefix as a string.
            let dir = prefix.rsplit_once('/').map_or("", |(d, _)| d);
            let dir = if dir.is_empty() {
                None
            } else {
                Some(Path::parse(dir).map_err(|_| BackendError::BadKey(prefix.to_owned()))?)
            };
            let mut stream = self.store.list(dir.as_ref());
            let mut out = Vec::new();
            while let Some(m) = stream.next().await {
                let m = m.map_err(store_err(format!("{}: list {prefix}", self.bucket)))?;
                let key = m.location.to_string();
                if key.starts_with(prefix) {
                    out.push((key, m.size));
                }
            }
            out.sort();
            Ok(out)
        })
    }
}
