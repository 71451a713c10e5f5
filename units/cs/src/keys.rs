//! Data keys (DEKs) the CS seals objects with.
//!
//! In the design the CS asks the CMU's key service (`cloud_key {prefix, kid}` over Su) the
//! first time it needs a key and keeps it in memory only. That service is a later step of
//! slice 1 and not built yet: for now the keys come from the configuration or a test
//! through the [`Keys`] trait, and [`StaticKeys`] is the one implementation. When the key
//! service lands, it implements [`Keys`] (likely becoming async) and the Cp code does not
//! change otherwise.

use std::collections::HashMap;
use std::fmt;

use peercam_cloud::Prefix;
use peercam_cloud::envelope::Key32;

/// Gives the data key `kid` of a camera's prefix.
pub trait Keys: Send + Sync + fmt::Debug {
    /// The key, or `None` if the CS has none (the upload is then refused with 503).
    fn dek(&self, prefix: &Prefix, kid: &str) -> Option<Key32>;
}

/// Keys held in memory, from the configuration or a test.
#[derive(Default, Clone)]
pub struct StaticKeys {
    keys: HashMap<(Prefix, String), Key32>,
}

impl StaticKeys {
    /// No keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) key `kid` of `prefix`.
    pub fn insert(&mut self, prefix: Prefix, kid: &str, key: Key32) {
        self.keys.insert((prefix, kid.to_owned()), key);
    }
}

impl fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("StaticKeys")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Keys for StaticKeys {
    fn dek(&self, prefix: &Prefix, kid: &str) -> Option<Key32> {
        self.keys.get(&(*prefix, kid.to_owned())).copied()
    }
}
