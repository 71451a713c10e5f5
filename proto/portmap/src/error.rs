//! The crate's error type.

/// What went wrong while decoding or checking a port-mapping message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended in the middle of a structure.
    #[error("truncated {context}: {len} bytes")]
    Truncated {
        /// The structure being read.
        context: &'static str,
        /// How many bytes there were.
        len: usize,
    },
    /// The message has another protocol version than expected.
    #[error("{context}: version {version}")]
    Version {
        /// The structure being read.
        context: &'static str,
        /// The version found in the message.
        version: u8,
    },
    /// A field holds a value the protocol forbids.
    #[error("invalid {context}: {reason}")]
    Invalid {
        /// The structure being read.
        context: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The input exceeds a size limit.
    #[error("{context} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// What is too large.
        context: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
    /// An HTTP answer had a status other than 200 and carried no UPnP fault.
    #[error("HTTP status {0}")]
    HttpStatus(u16),
    /// The gateway answered a SOAP action with a UPnP error (UPnP IGD, UPnPError).
    #[error("UPnP error {code}: {description}")]
    UpnpFault {
        /// The UPnP error code, e.g. 718 ConflictInMappingEntry.
        code: u16,
        /// The gateway's description.
        description: String,
    },
}

impl Error {
    pub(crate) const fn truncated(context: &'static str, len: usize) -> Self {
        Self::Truncated { context, len }
    }

    pub(crate) const fn invalid(context: &'static str, reason: &'static str) -> Self {
        Self::Invalid { context, reason }
    }
}
