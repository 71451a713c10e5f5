//! A wrapper that keeps personal data out of logs.

use std::fmt;

/// Personal or secret data (phone numbers, addresses, tokens).
///
/// `Debug` and `Display` print `<redacted>`; use [`Pii::expose`] where the value is really needed.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Pii<T>(pub T);

impl<T> Pii<T> {
    /// The wrapped value.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
