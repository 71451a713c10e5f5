use peercam_net::NetError;

/// Why the MTU cannot start or run.
#[derive(Debug, thiserror::Error)]
pub enum MtuError {
    /// A configuration value is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// Sockets, TLS or files.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The MTU's identity file.
    #[error("identity: {0}")]
    Identity(String),
}
