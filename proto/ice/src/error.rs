//! The crate's error type.

/// What went wrong in the ICE crate.
///
/// Network input never produces an error: malformed or unauthenticated datagrams are
/// dropped by the agent. Errors come from signalling input (a candidate line, credentials)
/// and from API misuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A candidate line (RFC 8839 5.1) could not be parsed.
    #[error("bad candidate: {0}")]
    Candidate(&'static str),
    /// ICE credentials violate RFC 8839 5.4.
    #[error("bad ICE credentials: {0}")]
    Credentials(&'static str),
    /// A STUN message could not be built.
    #[error("STUN: {0}")]
    Stun(#[from] peercam_stun::Error),
    /// The caller broke the API contract.
    #[error("misuse: {0}")]
    Misuse(&'static str),
}
