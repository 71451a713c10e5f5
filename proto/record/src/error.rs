/// Why input to this crate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A strategy that cannot be run; `field` names the offending value.
    #[error("invalid strategy: {field}: {reason}")]
    Strategy {
        /// Which value, e.g. `mode.windows[2].end_min`.
        field: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A sample index that does not decode.
    #[error("sample index corrupt at byte {offset}: {reason}")]
    Index {
        /// Offset into the index bytes.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A sample that cannot be added to an index.
    #[error("sample refused by the index: {0}")]
    Sample(&'static str),
    /// A time or range that does not parse.
    #[error("bad time or range {text:?}: {reason}")]
    Time {
        /// The input (truncated to 64 characters).
        text: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A playback speed this server does not offer.
    #[error("unsupported scale {0:?} (use 1/4, 1/2, 1, 2, 4, 8, 16, or their negatives)")]
    Scale(String),
}

impl Error {
    pub(crate) fn time(text: &str, reason: &'static str) -> Self {
        Self::Time {
            text: text.chars().take(64).collect(),
            reason,
        }
    }
}
