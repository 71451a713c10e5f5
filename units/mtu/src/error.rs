//! The crate's error type.

/// What can go wrong starting or running the MTU.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MtuError {
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// A socket or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// TLS material or another IO-shell failure.
    #[error(transparent)]
    Net(#[from] peercam_net::NetError),
    /// The `[multicast]` section is unusable.
    #[error("configuration: {0}")]
    Multicast(#[from] crate::multicast::MulticastError),
    /// The MTU's identity file.
    #[error("identity: {0}")]
    Identity(String),
    /// The transcoder could not start (codec set-up).
    #[error("transcoder: {0}")]
    Transcode(String),
}

impl MtuError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
