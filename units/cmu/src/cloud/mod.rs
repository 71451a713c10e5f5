//! The CMU's side of cloud storage (H.626.4 8.7.1, docs/design/cloud-storage.md), first
//! part: the grant signing key and Su `cs_config`.
//!
//! The CMU signs Cp grants (`pcg1`, Ed25519) with one key, made on first start and kept in
//! the database (like the VAPID key), so grants stay valid across restarts. Each time a CS
//! registers, the CMU sends it `cs_config` with the key's public half: a CS accepts no
//! grant of the CMU's before that (and takes the CMU's keys in place of its configured
//! ones).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use peercam_base::DeviceId;
use peercam_signal::cmd::{CsGrantKey, DeviceCommand, DeviceReply};
use peercam_signal::ps::DeviceKind;
use sha2::{Digest as _, Sha256};

use crate::Shared;
use crate::store::{self, Store, StoreError};

/// The `link_keys` purpose under which the grant key's seed is kept.
const GRANT_KEY_PURPOSE: &str = "cloud-grant";

/// The CMU's grant signing key.
pub(crate) struct Cloud {
    key: SigningKey,
    kid: String,
}

impl std::fmt::Debug for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Cloud")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The key id of a grant key: `g` and the first 9 bytes of the SHA-256 of its public key,
/// base64url (so a new key never reuses an old id).
fn kid_of(public: &[u8; 32]) -> String {
    let digest = Sha256::digest(public);
    format!("g{}", URL_SAFE_NO_PAD.encode(&digest[..9]))
}

impl Cloud {
    /// The key kept in the database, made from `fresh` on first use.
    pub(crate) async fn load(store: &Store, fresh: [u8; 32]) -> Result<Self, StoreError> {
        let seed = store::snapshots::link_key(store, GRANT_KEY_PURPOSE, fresh).await?;
        let key = SigningKey::from_bytes(&seed);
        let kid = kid_of(&key.verifying_key().to_bytes());
        Ok(Self { key, kid })
    }

    /// The key id grants name.
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The signing key.
    #[cfg(test)]
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The Su `cs_config` for a CS.
    pub(crate) fn cs_config(&self) -> DeviceCommand {
        DeviceCommand::CsConfig {
            grant_keys: vec![CsGrantKey {
                kid: self.kid.clone(),
                public_key: URL_SAFE_NO_PAD.encode(self.key.verifying_key().to_bytes()),
            }],
        }
    }
}

/// A device came online: a CS gets `cs_config` (Su, re-sent at every registration).
pub(crate) async fn online(st: &Shared, id: &DeviceId) {
    match store::devices::get(&st.store, id).await {
        Ok(Some(d)) if d.kind == DeviceKind::Cs && !d.disabled => {}
        _ => return,
    }
    match st.platform.command(id, st.cloud.cs_config()).await {
        Ok((_, DeviceReply::Done)) => {
            tracing::info!(cs = %id, kid = st.cloud.kid(), "cs_config delivered");
        }
        Ok((_, reply)) => tracing::warn!(cs = %id, ?reply, "the CS refused cs_config"),
        Err(e) => tracing::warn!(cs = %id, error = ?e, "cs_config not delivered"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn h626_8_7_1_the_grant_key_is_kept_across_restarts() {
        let db = store::testing::memory().await;
        let a = Cloud::load(&db, [1; 32]).await.unwrap();
        let b = Cloud::load(&db, [2; 32]).await.unwrap();
        assert_eq!(a.kid(), b.kid());
        assert_eq!(a.signing_key().to_bytes(), [1; 32]);
        assert_eq!(b.signing_key().to_bytes(), [1; 32]);
        let DeviceCommand::CsConfig { grant_keys } = a.cs_config() else {
            unreachable!()
        };
        assert_eq!(grant_keys.len(), 1);
        assert_eq!(grant_keys[0].kid, a.kid());
        a.cs_config().check_su().unwrap();
        // Another key has another id.
        let other = store::testing::memory().await;
        let c = Cloud::load(&other, [3; 32]).await.unwrap();
        assert_ne!(c.kid(), a.kid());
    }
}
