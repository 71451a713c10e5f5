//! The upload object: limits (the codec follows).

/// Longest time an object spans, ms.
pub const MAX_SPAN_MS: u64 = 60_000;
