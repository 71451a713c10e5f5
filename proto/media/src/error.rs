//! The crate's error type.

/// What went wrong while parsing or muxing media.
///
/// Faults in the input (`Truncated`, `Invalid`, `Unsupported`, `TooLarge`) are kept apart
/// from mistakes of the caller (`Misuse`, `NonMonotonicPts`) and from a stream change the
/// muxer cannot follow (`ParameterSetsChanged`). Offsets are byte offsets from the start of
/// the buffer handed to the failing function (for an SPS: of its RBSP, after the NAL header).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended in the middle of a structure.
    #[error("truncated {context} at byte {offset}")]
    Truncated {
        /// The structure being read, e.g. `"stsz"` or `"sps"`.
        context: &'static str,
        /// Where the missing bytes should have been.
        offset: u64,
    },
    /// A field holds a value the format forbids or that contradicts another field.
    #[error("invalid {context} at byte {offset}: {reason}")]
    Invalid {
        /// The structure being read.
        context: &'static str,
        /// Where the bad field is (approximately, for bit fields).
        offset: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Well-formed input this crate does not handle.
    #[error("unsupported {context}: {reason}")]
    Unsupported {
        /// The structure being read.
        context: &'static str,
        /// What is not supported.
        reason: &'static str,
    },
    /// The input or the output would exceed a size limit.
    #[error("{context} exceeds the limit of {limit}")]
    TooLarge {
        /// What grew too large.
        context: &'static str,
        /// The limit, in the unit of `context` (bytes, samples or ticks).
        limit: u64,
    },
    /// A timestamp did not advance. The sample was not added.
    #[error("{track} pts {pts} does not advance past {prev}")]
    NonMonotonicPts {
        /// `"video"` or `"audio"`.
        track: &'static str,
        /// The rejected timestamp.
        pts: u64,
        /// The previous timestamp of that track.
        prev: u64,
    },
    /// An in-band SPS or PPS differs from the one in the sample entry. The sample was not
    /// added; start a new file with the new parameter sets.
    #[error("in-band parameter sets differ from the sample entry; start a new file")]
    ParameterSetsChanged,
    /// The caller broke the API contract.
    #[error("misuse: {0}")]
    Misuse(&'static str),
}

impl Error {
    pub(crate) fn truncated(context: &'static str, offset: usize) -> Self {
        Self::Truncated {
            context,
            offset: offset as u64,
        }
    }

    pub(crate) fn invalid(context: &'static str, offset: usize, reason: &'static str) -> Self {
        Self::Invalid {
            context,
            offset: offset as u64,
            reason,
        }
    }
}
