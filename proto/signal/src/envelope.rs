//! The frame every platform message travels in.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The major version of the platform protocol this crate speaks.
///
/// A peer that sends another major version is refused; within a major version new optional
/// fields may appear and are ignored by older peers.
pub const PROTOCOL_VERSION: u16 = 1;

/// The largest frame accepted, in bytes (64 KiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The deepest JSON nesting accepted.
pub const MAX_DEPTH: usize = 16;

/// One platform message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<B> {
    /// Protocol major version; always [`PROTOCOL_VERSION`] when sent by this crate.
    pub v: u16,
    /// Request id, unique per sender and connection; 0 for notifications that expect no reply.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub id: u64,
    /// For a reply: the `id` of the request it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub re: Option<u64>,
    /// The typed message.
    pub body: B,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl<B> Envelope<B> {
    /// A request or notification.
    pub fn new(id: u64, body: B) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            id,
            re: None,
            body,
        }
    }

    /// A reply to request `re`.
    pub fn reply(id: u64, re: u64, body: B) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            id,
            re: Some(re),
            body,
        }
    }
}

/// Why a frame was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// JSON nesting deeper than [`MAX_DEPTH`].
    #[error("message nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// The peer speaks another major version.
    #[error("unsupported protocol version {0} (this peer speaks {PROTOCOL_VERSION})")]
    Version(u16),
    /// Not a valid message.
    #[error("malformed message at line {line} column {column}: {message}")]
    Malformed {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the parser expected.
        message: String,
    },
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u16,
}

/// Decodes one frame, enforcing size, depth and version before the body is interpreted.
pub fn decode<B: DeserializeOwned>(bytes: &[u8]) -> Result<Envelope<B>, DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    check_depth(bytes)?;
    let malformed = |e: serde_json::Error| DecodeError::Malformed {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    };
    let version: VersionOnly = serde_json::from_slice(bytes).map_err(malformed)?;
    if version.v != PROTOCOL_VERSION {
        return Err(DecodeError::Version(version.v));
    }
    serde_json::from_slice(bytes).map_err(malformed)
}

/// Encodes one frame as JSON text.
pub fn encode<B: Serialize>(env: &Envelope<B>) -> Vec<u8> {
    // Serialising our own plain data types cannot fail (no maps with non-string keys, no
    // custom serialisers that error).
    serde_json::to_vec(env).unwrap_or_default()
}

/// Rejects nesting deeper than [`MAX_DEPTH`] with a single linear scan that skips strings.
fn check_depth(bytes: &[u8]) -> Result<(), DecodeError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(DecodeError::TooDeep);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        let deep = format!("{{\"v\":1,\"body\":{}{}}}", "[".repeat(40), "]".repeat(40));
        assert!(matches!(
            decode::<serde_json::Value>(deep.as_bytes()),
            Err(DecodeError::TooDeep)
        ));
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            decode::<serde_json::Value>(&big),
            Err(DecodeError::TooLarge(_))
        ));
        let v2 = br#"{"v":2,"body":null}"#;
        assert!(matches!(
            decode::<serde_json::Value>(v2),
            Err(DecodeError::Version(2))
        ));
        let nested_in_string = format!("{{\"v\":1,\"body\":\"{}\"}}", "[".repeat(40));
        assert!(decode::<serde_json::Value>(nested_in_string.as_bytes()).is_ok());
        let bad = br#"{"v":1,"body":"#;
        assert!(matches!(
            decode::<serde_json::Value>(bad),
            Err(DecodeError::Malformed { .. })
        ));
    }
}
