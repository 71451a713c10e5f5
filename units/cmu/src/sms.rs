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

    /// Whether [`SmsGateway::send_mms`] works (H.626.4 6.1.12: timed snapshots go as MMS
    /// with the JPEG where the gateway can). Default false.
    fn mms(&self) -> bool {
        false
    }

    /// Sends `text` with a JPEG attached to `to`. By default unsupported.
    fn send_mms<'a>(
        &'a self,
        _to: &'a Phone,
        _text: &'a str,
        _jpeg: &'a [u8],
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), SmsError>> + Send + 'a>> {
        Box::pin(async { Err(SmsError("this gateway sends no MMS".into())) })
    }
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
    /// An MMS's attachment: the file written beside the message (outbox only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<PathBuf>,
}

impl SmsMessage {
    /// A message to `to`, stamped now.
    fn now(to: &Phone, text: &str, attachment: Option<PathBuf>) -> Self {
        Self {
            to: to.as_str().to_owned(),
            text: text.to_owned(),
            at: crate::now_s(),
            attachment,
        }
    }
}

/// Writes messages as `<seq>.json` files into a directory.
pub struct OutboxSms {
    dir: PathBuf,
    seq: AtomicU64,
    mms: bool,
}

impl OutboxSms {
    /// An outbox in `dir` (created if missing).
    pub fn new(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            seq: AtomicU64::new(0),
            mms: false,
        })
    }

    /// Also takes MMS (the JPEG written as `<name>.jpg` beside the message).
    #[must_use]
    pub fn with_mms(mut self, mms: bool) -> Self {
        self.mms = mms;
        self
    }

    async fn write(&self, msg: &SmsMessage, name: &str) -> Result<(), SmsError> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let body = serde_json::to_vec_pretty(msg).map_err(|e| SmsError(e.to_string()))?;
        tokio::fs::write(&tmp, body)
            .await
            .map_err(|e| SmsError(e.to_string()))?;
        tokio::fs::rename(&tmp, self.dir.join(name))
            .await
            .map_err(|e| SmsError(e.to_string()))
    }

    fn next_name(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n:06}", crate::now_ms())
    }
}

impl SmsGateway for OutboxSms {
    fn send<'a>(
        &'a self,
        to: &'a Phone,
        text: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), SmsError>> + Send + 'a>> {
        Box::pin(async move {
            let msg = SmsMessage::now(to, text, None);
            self.write(&msg, &format!("{}.json", self.next_name()))
                .await
        })
    }

    fn mms(&self) -> bool {
        self.mms
    }

    fn send_mms<'a>(
        &'a self,
        to: &'a Phone,
        text: &'a str,
        jpeg: &'a [u8],
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), SmsError>> + Send + 'a>> {
        Box::pin(async move {
            if !self.mms {
                return Err(SmsError("this outbox sends no MMS".into()));
            }
            let name = self.next_name();
            let picture = self.dir.join(format!("{name}.jpg"));
            tokio::fs::write(&picture, jpeg)
                .await
                .map_err(|e| SmsError(e.to_string()))?;
            let msg = SmsMessage::now(to, text, Some(picture));
            self.write(&msg, &format!("{name}.json")).await
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
            let msg = SmsMessage::now(to, text, None);
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

/// Sends `text` to `to` (as MMS with `jpeg` attached when given), trying the gateway up to
/// `attempts` times with a growing pause (1 s, then 4 s, ...); the last error when every
/// attempt failed.
pub(crate) async fn send_retrying(
    gateway: &dyn SmsGateway,
    to: &Phone,
    (text, jpeg): (&str, Option<&[u8]>),
    attempts: u32,
) -> Result<(), SmsError> {
    let mut pause = std::time::Duration::from_secs(1);
    let mut attempt = 1;
    loop {
        let sent = match jpeg {
            Some(j) => gateway.send_mms(to, text, j).await,
            None => gateway.send(to, text).await,
        };
        match sent {
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

/// The attachments of every MMS an [`OutboxSms`] in `dir` sent to `phone`, oldest first.
pub fn attachments_to(dir: &std::path::Path, phone: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    let mut found = Vec::new();
    for p in entries {
        if let Ok(msg) = serde_json::from_slice::<SmsMessage>(&std::fs::read(p)?)
            && msg.to == phone
            && let Some(a) = msg.attachment
        {
            found.push(a);
        }
    }
    Ok(found)
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
