//! The error type of this crate.

/// Why a packet could not be parsed or built.
///
/// [`Truncated`](Self::Truncated), [`Malformed`](Self::Malformed),
/// [`UnsupportedVersion`](Self::UnsupportedVersion) and [`TooLarge`](Self::TooLarge) are
/// faults of the peer that sent the bytes: drop the packet and carry on.
/// [`Unrepresentable`](Self::Unrepresentable) is local misuse: the caller asked to build
/// something the wire format cannot carry. [`Error::is_peer_fault`] tells them apart.
///
/// Byte offsets count from the start of the buffer given to the function that failed: the
/// RTP packet, the RTCP compound packet, or the RTP payload for the depacketizers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ends inside a field.
    #[error("{context}: truncated at byte {offset}: need {needed} bytes, {available} available")]
    Truncated {
        /// The structure being read, e.g. `"RTP fixed header"`.
        context: &'static str,
        /// Where the field starts.
        offset: usize,
        /// How many bytes the field needs from `offset`.
        needed: usize,
        /// How many bytes the input has from `offset`.
        available: usize,
    },
    /// The version bits are not 2 (RFC 3550 5.1, 6.4.1).
    #[error("{context}: version {version} at byte {offset}, expected 2")]
    UnsupportedVersion {
        /// `"RTP header"` or `"RTCP header"`.
        context: &'static str,
        /// Where the header starts.
        offset: usize,
        /// The version found.
        version: u8,
    },
    /// A field holds a value the format forbids.
    #[error("{context}: malformed at byte {offset}: {reason}")]
    Malformed {
        /// The structure being read.
        context: &'static str,
        /// Where the offending field starts.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The peer's data exceeds a limit this crate enforces to bound memory.
    #[error("{context}: exceeds the limit of {limit} bytes")]
    TooLarge {
        /// What grew too large, e.g. `"H.264 access unit"`.
        context: &'static str,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The caller asked to build something the wire format cannot represent.
    #[error("cannot build {context}: {reason}")]
    Unrepresentable {
        /// What was being built.
        context: &'static str,
        /// Which constraint the input breaks.
        reason: &'static str,
    },
}

impl Error {
    /// True when the input bytes are at fault (drop the packet), false for local misuse.
    pub fn is_peer_fault(&self) -> bool {
        !matches!(self, Self::Unrepresentable { .. })
    }

    /// The byte offset of the fault in the input, when there is one.
    pub fn offset(&self) -> Option<usize> {
        match self {
            Self::Truncated { offset, .. }
            | Self::UnsupportedVersion { offset, .. }
            | Self::Malformed { offset, .. } => Some(*offset),
            Self::TooLarge { .. } | Self::Unrepresentable { .. } => None,
        }
    }
}

/// Reads the byte at `offset`, or reports which field was cut short.
pub(crate) fn byte(buf: &[u8], offset: usize, context: &'static str) -> Result<u8, Error> {
    buf.get(offset)
        .copied()
        .ok_or_else(|| truncated(buf, offset, 1, context))
}

/// Reads a big-endian `u16` at `offset`, or reports which field was cut short.
pub(crate) fn be_u16(buf: &[u8], offset: usize, context: &'static str) -> Result<u16, Error> {
    match buf.get(offset..offset.saturating_add(2)) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(truncated(buf, offset, 2, context)),
    }
}

/// Reads a big-endian `u32` at `offset`, or reports which field was cut short.
pub(crate) fn be_u32(buf: &[u8], offset: usize, context: &'static str) -> Result<u32, Error> {
    match buf.get(offset..offset.saturating_add(4)) {
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(truncated(buf, offset, 4, context)),
    }
}

/// Takes `len` bytes at `offset`, or reports which field was cut short.
pub(crate) fn slice<'a>(
    buf: &'a [u8],
    offset: usize,
    len: usize,
    context: &'static str,
) -> Result<&'a [u8], Error> {
    buf.get(offset..offset.saturating_add(len))
        .ok_or_else(|| truncated(buf, offset, len, context))
}

/// A [`Error::Truncated`] for a field of `needed` bytes at `offset` in `buf`.
pub(crate) fn truncated(buf: &[u8], offset: usize, needed: usize, context: &'static str) -> Error {
    Error::Truncated {
        context,
        offset,
        needed,
        available: buf.len().saturating_sub(offset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_report_offsets() {
        let buf = [1, 2, 3];
        assert_eq!(be_u16(&buf, 1, "x"), Ok(0x0203));
        assert_eq!(
            be_u32(&buf, 1, "x"),
            Err(Error::Truncated {
                context: "x",
                offset: 1,
                needed: 4,
                available: 2
            })
        );
        assert_eq!(slice(&buf, 3, 0, "x"), Ok(&[][..]));
        assert!(slice(&buf, usize::MAX, 2, "x").is_err());
        let e = be_u16(&buf, 7, "field").unwrap_err();
        assert_eq!(e.offset(), Some(7));
        assert!(e.is_peer_fault());
        assert_eq!(
            e.to_string(),
            "field: truncated at byte 7: need 2 bytes, 0 available"
        );
        let local = Error::Unrepresentable {
            context: "c",
            reason: "r",
        };
        assert!(!local.is_peer_fault());
        assert_eq!(local.offset(), None);
    }
}
