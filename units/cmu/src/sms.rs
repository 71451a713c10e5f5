//! The SMS gateway interface (H.626.4 6.2: the platform interfaces to an SMS gateway).
//!
//! Two adapters: [`HttpSms`] posts to an HTTP gateway; [`OutboxSms`] writes each message as a
//! JSON file into a directory (the demo and tests read it).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use peercam_base::Phone;
use serde::Serialize;

/// Sending failed.
#[derive(Debug, thiserror::Error)]
#[error("SMS gateway: {0}")]
pub struct SmsError(pub String);

/// Something that delivers text messages to phones.
pub trait SmsGateway: Send + Sync + 'static {
    /// Sends `text` to `to`.
    fn send<'a>(
        &'a self,
        to: &'a Phone,
        text: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), SmsError>> + Send + 'a>>;
}

/// What the outbox writes and the HTTP adapter posts.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SmsMessage {
    /// E.164 recipient.
    pub to: String,
    /// Text.
    pub text: String,
    /// Unix seconds.
    pub at: u64,
}

/// Writes messages as `<seq>.json` files into a directory.
pub struct OutboxSms {
    dir: PathBuf,
    seq: AtomicU64,
}

impl OutboxSms {
    /// An outbox in `dir` (created if missing).
    pub fn new(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            seq: AtomicU64::new(0),
        })
    }
}

impl SmsGateway for OutboxSms {
    fn send<'a>(
        &'a self,
        to: &'a Phone,
        text: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), SmsError>> + Send + 'a>> {
        Box::pin(async move {
            let msg = SmsMessage {
                to: to.as_str().to_owned(),
                text: text.to_owned(),
                at: crate::now_s(),
            };
            let n = self.seq.fetch_add(1, Ordering::Relaxed);
            let name = format!("{}-{n:06}.json", crate::now_ms());
            let tmp = self.dir.join(format!(".{name}.tmp"));
            let body = serde_json::to_vec_pretty(&msg).map_err(|e| SmsError(e.to_string()))?;
            tokio::fs::write(&tmp, body)
                .await
                .map_err(|e| SmsError(e.to_string()))?;
            tokio::fs::rename(&tmp, self.dir.join(name))
                .await
                .map_err(|e| SmsError(e.to_string()))
        })
    }
}

/// Posts `{"to","text","at"}` as JSON to a gateway URL with a bearer API key.
pub struct HttpSms {
    url: String,
    api_key: String,
    client: reqwest::Client,
}

impl HttpSms {
    /// A gateway at `url`.
    pub fn new(url: String, api_key: String) -> Result<Self, SmsError> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| SmsError(e.to_string()))?;
        Ok(Self {
            url,
            api_key,
            client,
        })
    }
}

impl SmsGateway for HttpSms {
    fn send<'a>(
        &'a self,
        to: &'a Phone,
        text: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), SmsError>> + Send + 'a>> {
        Box::pin(async move {
            let msg = SmsMessage {
                to: to.as_str().to_owned(),
                text: text.to_owned(),
                at: crate::now_s(),
            };
            let resp = self
                .client
                .post(&self.url)
                .bearer_auth(&self.api_key)
                .json(&msg)
                .send()
                .await
                .map_err(|e| SmsError(e.to_string()))?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(SmsError(format!("gateway answered {}", resp.status())))
            }
        })
    }
}

/// Sends `text` to `to`, trying the gateway up to `attempts` times with a growing pause
/// (1 s, then 4 s, ...); the last error when every attempt failed.
pub(crate) async fn send_retrying(
    gateway: &dyn SmsGateway,
    to: &Phone,
    text: &str,
    attempts: u32,
) -> Result<(), SmsError> {
    let mut pause = std::time::Duration::from_secs(1);
    let mut attempt = 1;
    loop {
        match gateway.send(to, text).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < attempts => {
                tracing::info!(attempt, error = %e, "SMS failed; trying again");
                tokio::time::sleep(pause).await;
                pause *= 4;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Every text an [`OutboxSms`] in `dir` sent to `phone`, oldest first (tests of alarm SMS).
pub fn messages_to(dir: &std::path::Path, phone: &str) -> std::io::Result<Vec<String>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    let mut texts = Vec::new();
    for p in entries {
        if let Ok(msg) = serde_json::from_slice::<SmsMessage>(&std::fs::read(p)?)
            && msg.to == phone
        {
            texts.push(msg.text);
        }
    }
    Ok(texts)
}

/// The newest 6-digit code an [`OutboxSms`] in `dir` sent to `phone` (for the demo and tests,
/// which play the user reading the SMS).
pub fn latest_code(dir: &std::path::Path, phone: &str) -> std::io::Result<Option<String>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    for p in entries.iter().rev() {
        let Ok(msg) = serde_json::from_slice::<SmsMessage>(&std::fs::read(p)?) else {
            continue;
        };
        if msg.to == phone
            && let Some(code) = msg
                .text
                .split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6)
        {
            return Ok(Some(code.to_owned()));
        }
    }
    Ok(None)
}
