/// Why input to this crate was refused.
///
/// Grant checks have their own type, [`crate::grant::Refusal`], because each refusal is
/// counted separately by the CS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An object key or prefix that does not parse, or values that have no key.
    #[error("bad object key: {0}")]
    Key(&'static str),
    /// Grant claims that cannot be signed (a field out of range).
    #[error("bad grant claims: {0}")]
    Claims(&'static str),
    /// An upload object whose bytes are malformed; `at` is the byte offset where reading
    /// stopped.
    #[error("bad object at byte {at}: {reason}")]
    Object {
        /// Byte offset into the object.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// An upload object over one of the limits of [`crate::object`].
    #[error("object too large: {what} over {max}")]
    ObjectLimit {
        /// Which limit.
        what: &'static str,
        /// The limit.
        max: u64,
    },
    /// An upload object whose segments do not add up (times, frames, offsets, lengths).
    #[error("bad object segment {segment}: {reason}")]
    Segment {
        /// Segment number in the object's table, from 0.
        segment: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A segment's sample index that `peercam_record::index` refuses.
    #[error("bad object segment {segment}: {source}")]
    SegmentIndex {
        /// Segment number in the object's table, from 0.
        segment: usize,
        /// The index decoder's refusal.
        source: peercam_record::Error,
    },
    /// An envelope whose plaintext header is malformed or not of this version.
    #[error("bad envelope: {0}")]
    Envelope(&'static str),
    /// An envelope sealed under a key id the caller does not have.
    #[error("no data key for kid {0:?}")]
    UnknownKid(String),
    /// Authentication failed: wrong key, or the bytes were changed, truncated, reordered or
    /// spliced. Nothing of the plaintext is returned.
    #[error("authentication failed")]
    Unauthentic,
}
