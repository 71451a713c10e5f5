//! Spent one-time play tokens (8.4, docs/security.md D4), kept until they would expire.

use super::{Store, StoreError, spend_once};

/// Spends the token `jti` (valid until `expires_at`); false if it was spent before.
/// Forgets tokens expired by `now`.
pub(crate) async fn spend(
    db: &Store,
    jti: &str,
    expires_at: u64,
    now: u64,
) -> Result<bool, StoreError> {
    spend_once(db, ("used_play_tokens", "jti"), jti, expires_at, now).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;

    on_both_backends! {
    #[tokio::test]
    async fn a_token_is_spent_once(db) {
        assert!(spend(&db, "j", 10, 5).await.unwrap());
        assert!(!spend(&db, "j", 10, 5).await.unwrap());
        // Once expired and forgotten, the row is gone (the token itself is refused as expired).
        assert!(spend(&db, "k", 20, 11).await.unwrap());
        assert!(spend(&db, "j", 10, 11).await.unwrap());
    }
    }
}
