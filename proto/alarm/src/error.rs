/// Why input to this crate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value out of range; `field` names it (e.g. `zones[1].w`).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which value.
        field: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, reason: &'static str) -> Self {
        Self::Invalid {
            field: field.into(),
            reason,
        }
    }
}

impl From<peercam_record::Error> for Error {
    fn from(e: peercam_record::Error) -> Self {
        match e {
            peercam_record::Error::Strategy { field, reason } => Self::Invalid { field, reason },
            other => Self::Invalid {
                field: other.to_string(),
                reason: "invalid",
            },
        }
    }
}
