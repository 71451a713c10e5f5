//! The crate's error type.

/// What went wrong while decoding, encoding or checking STUN and TURN data.
///
/// Faults in the input (`Truncated`, `Invalid`, `TooLarge`) are kept apart from failed
/// checks (`IntegrityMissing`, `IntegrityMismatch`, `FingerprintMissing`,
/// `FingerprintMismatch`, `Expired`, `BadCredential`) and from mistakes of the caller
/// (`Misuse`). Offsets are byte offsets from the start of the buffer handed to the failing
/// function.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended in the middle of a structure.
    #[error("truncated {context} at byte {offset}")]
    Truncated {
        /// The structure being read, e.g. `"header"` or `"attribute"`.
        context: &'static str,
        /// Where the missing bytes should have been.
        offset: usize,
    },
    /// A field holds a value the protocol forbids or that contradicts another field.
    #[error("invalid {context} at byte {offset}: {reason}")]
    Invalid {
        /// The structure being read.
        context: &'static str,
        /// Where the structure starts.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The input or the output would exceed a size limit.
    #[error("{context} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// What grew too large.
        context: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
    /// The message carries neither MESSAGE-INTEGRITY nor MESSAGE-INTEGRITY-SHA256.
    #[error("no MESSAGE-INTEGRITY attribute")]
    IntegrityMissing,
    /// The message integrity does not match the key.
    #[error("MESSAGE-INTEGRITY does not match")]
    IntegrityMismatch,
    /// The message does not end in a FINGERPRINT attribute.
    #[error("no FINGERPRINT attribute")]
    FingerprintMissing,
    /// The FINGERPRINT attribute does not match the message.
    #[error("FINGERPRINT does not match")]
    FingerprintMismatch,
    /// A time-limited credential is past its expiry.
    #[error("credential expired at {expiry}, now {now}")]
    Expired {
        /// The expiry in the credential (Unix seconds).
        expiry: u64,
        /// The time it was checked against (Unix seconds).
        now: u64,
    },
    /// A credential is malformed or does not match.
    #[error("bad credential: {0}")]
    BadCredential(&'static str),
    /// The caller broke the API contract.
    #[error("misuse: {0}")]
    Misuse(&'static str),
}

impl Error {
    pub(crate) fn truncated(context: &'static str, offset: usize) -> Self {
        Self::Truncated { context, offset }
    }

    pub(crate) fn invalid(context: &'static str, offset: usize, reason: &'static str) -> Self {
        Self::Invalid {
            context,
            offset,
            reason,
        }
    }
}
