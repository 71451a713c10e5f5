//! What a user may do with a device (H.626.4 8.6 sharing scopes).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One permission on a device. An owner holds all of them; a sub-account holds what was shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Watch live media (8.4).
    Live,
    /// Search and play back recordings (8.7).
    Playback,
    /// Pan, tilt, zoom (8.5).
    Ptz,
    /// Two-way audio (6.1.8). Accepted and stored with a share; intercom is not
    /// implemented yet, so no route needs it today.
    Talk,
    /// Read and change device parameters (8.9.1).
    Config,
}

impl Scope {
    /// Every scope, in declaration order.
    pub const ALL: [Self; 5] = [
        Self::Live,
        Self::Playback,
        Self::Ptz,
        Self::Talk,
        Self::Config,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The lower-case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Playback => "playback",
            Self::Ptz => "ptz",
            Self::Talk => "talk",
            Self::Config => "config",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope name that is not one of [`Scope::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}; expected one of live, playback, ptz, talk, config")]
pub struct ScopeParseError(pub String);

impl FromStr for Scope {
    type Err = ScopeParseError;
    fn from_str(s: &str) -> Result<Self, ScopeParseError> {
        Self::ALL
            .into_iter()
            .find(|sc| sc.as_str() == s)
            .ok_or_else(|| ScopeParseError(s.to_owned()))
    }
}

/// A set of [`Scope`]s, stored as a small bit set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScopeSet(u8);

impl ScopeSet {
    /// No scope.
    pub const EMPTY: Self = Self(0);

    /// Every scope (what an owner holds).
    pub fn all() -> Self {
        Self::ALL_BITS
    }

    const ALL_BITS: Self = Self(0b1_1111);

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Adds a scope.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The raw bits (for storage).
    pub fn bits(self) -> u8 {
        self.0
    }

    /// From raw bits; unknown bits are dropped.
    pub fn from_bits(bits: u8) -> Self {
        Self(bits & Self::ALL_BITS.0)
    }

    /// The scopes in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut set = Self::EMPTY;
        for s in iter {
            set.insert(s);
        }
        set
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v: Vec<Scope> = Vec::deserialize(d)?;
        Ok(v.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn scope_set_bits_round_trip(bits in any::<u8>()) {
            let set = ScopeSet::from_bits(bits);
            prop_assert_eq!(ScopeSet::from_bits(set.bits()), set);
            prop_assert_eq!(set.iter().collect::<ScopeSet>(), set);
        }
    }

    #[test]
    fn scope_names_round_trip() {
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>(), Ok(s));
        }
        assert!("admin".parse::<Scope>().is_err());
    }
}
