//! Recovery at start (design invariants 4 and 5): finish or undo every write and deletion
//! a crash interrupted, before the CS answers any request.

use sha2::{Digest as _, Sha256};

use crate::CsError;
use crate::backend::{Backend, BackendError};
use crate::index::Index;

/// What recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Intents whose object was in the store with the intended hash: their rows were
    /// committed.
    pub adopted: Vec<String>,
    /// Intents whose object was in the store with other bytes (a torn or foreign write):
    /// the object was deleted and the intent dropped; the camera still holds the data and
    /// retries.
    pub deleted: Vec<String>,
    /// Intents with no object: dropped.
    pub dropped: Vec<String>,
    /// Pending deletions finished.
    pub deletions: Vec<String>,
}

/// Runs recovery over `index` and `backend`.
pub async fn recover(index: &Index, backend: &dyn Backend) -> Result<RecoveryReport, CsError> {
    let mut report = RecoveryReport::default();
    for intent in index.intents().await? {
        let key = intent.key.clone();
        let held = match backend.get_range(&key, None).await {
            Ok(bytes) => Some(hex::encode(Sha256::digest(&bytes))),
            Err(BackendError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        match held {
            Some(h) if h == intent.stored_sha256 => {
                if index.object(&key).await?.is_some() {
                    // Cannot happen (an intent is refused while a row exists); keep the
                    // row and its object.
                    index.drop_intent(&key).await?;
                } else {
                    index.commit_intent(&key).await?;
                }
                report.adopted.push(key);
            }
            Some(_) => {
                backend.delete(&key).await?;
                index.drop_intent(&key).await?;
                report.deleted.push(key);
            }
            None => {
                index.drop_intent(&key).await?;
                report.dropped.push(key);
            }
        }
    }
    for key in index.deletions().await? {
        backend.delete(&key).await?;
        index.finish_deletion(&key).await?;
        report.deletions.push(key);
    }
    if report != RecoveryReport::default() {
        tracing::info!(
            adopted = report.adopted.len(),
            deleted = report.deleted.len(),
            dropped = report.dropped.len(),
            deletions = report.deletions.len(),
            "recovered interrupted writes and deletions"
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use peercam_cloud::Prefix;

    use super::*;
    use crate::backend::LocalDir;
    use crate::index::{Camera, ObjectRow, Opened};

    const P: Prefix = Prefix::from_bytes([5; 16]);

    fn row(seq: u64, stored: &[u8]) -> ObjectRow {
        ObjectRow {
            key: peercam_cloud::SegmentKey::new(P, 1_000_000 + seq * 10_000, seq)
                .unwrap()
                .to_string(),
            prefix: P,
            seq,
            start_ms: 1_000_000 + seq * 10_000,
            end_ms: 1_000_000 + seq * 10_000 + 10_000,
            bytes: stored.len() as u64,
            body_sha256: "b".repeat(64),
            stored_sha256: hex::encode(Sha256::digest(stored)),
            backfilled: false,
            kid: "k1".into(),
        }
    }

    async fn setup(dir: &Path) -> (Index, LocalDir) {
        let i = Index::open(&dir.join("index.db")).await.unwrap();
        i.set_account("acc", 1 << 20).await.unwrap();
        i.set_camera(&Camera {
            prefix: P,
            account: "acc".into(),
            epoch: 1,
            write_kid: "k1".into(),
        })
        .await
        .unwrap();
        (i, LocalDir::open(dir.join("objects")).await.unwrap())
    }

    #[tokio::test]
    async fn adopts_an_object_written_with_the_intended_hash() {
        let dir = tempfile::tempdir().unwrap();
        let (i, b) = setup(dir.path()).await;
        let o = row(1, b"sealed bytes");
        assert_eq!(i.open_intent(&o, "acc", 1).await.unwrap(), Opened::Intent);
        b.put(&o.key, b"sealed bytes".to_vec()).await.unwrap();
        let r = recover(&i, &b).await.unwrap();
        assert_eq!(r.adopted, vec![o.key.clone()]);
        assert_eq!(i.object(&o.key).await.unwrap(), Some(o.clone()));
        let a = i.account("acc").await.unwrap().unwrap();
        assert_eq!((a.used, a.reserved), (o.bytes, 0));
        assert!(i.intents().await.unwrap().is_empty());
        assert_eq!(b.head(&o.key).await.unwrap(), Some(o.bytes));
    }

    #[tokio::test]
    async fn deletes_a_mismatching_object_and_drops_the_intent() {
        let dir = tempfile::tempdir().unwrap();
        let (i, b) = setup(dir.path()).await;
        let o = row(1, b"sealed bytes");
        i.open_intent(&o, "acc", 1).await.unwrap();
        b.put(&o.key, b"sealed by".to_vec()).await.unwrap();
        let r = recover(&i, &b).await.unwrap();
        assert_eq!(r.deleted, vec![o.key.clone()]);
        assert_eq!(i.object(&o.key).await.unwrap(), None);
        assert_eq!(b.head(&o.key).await.unwrap(), None);
        let a = i.account("acc").await.unwrap().unwrap();
        assert_eq!((a.used, a.reserved), (0, 0));
    }

    #[tokio::test]
    async fn drops_an_intent_without_object() {
        let dir = tempfile::tempdir().unwrap();
        let (i, b) = setup(dir.path()).await;
        let o = row(1, b"sealed bytes");
        i.open_intent(&o, "acc", 1).await.unwrap();
        let r = recover(&i, &b).await.unwrap();
        assert_eq!(r.dropped, vec![o.key.clone()]);
        assert!(i.intents().await.unwrap().is_empty());
        let a = i.account("acc").await.unwrap().unwrap();
        assert_eq!((a.used, a.reserved), (0, 0));
    }

    #[tokio::test]
    async fn finishes_pending_deletions() {
        let dir = tempfile::tempdir().unwrap();
        let (i, b) = setup(dir.path()).await;
        let gone = row(1, b"x");
        let kept = row(2, b"y");
        b.put(&gone.key, b"x".to_vec()).await.unwrap();
        b.put(&kept.key, b"y".to_vec()).await.unwrap();
        i.add_deletion(&gone.key, 1).await.unwrap();
        // A deletion whose object is already gone finishes too.
        let never = row(3, b"z");
        i.add_deletion(&never.key, 1).await.unwrap();
        let r = recover(&i, &b).await.unwrap();
        assert_eq!(r.deletions, vec![gone.key.clone(), never.key.clone()]);
        assert_eq!(b.head(&gone.key).await.unwrap(), None);
        assert_eq!(b.head(&kept.key).await.unwrap(), Some(1));
        assert!(i.deletions().await.unwrap().is_empty());
        // A second run has nothing to do.
        assert_eq!(recover(&i, &b).await.unwrap(), RecoveryReport::default());
    }
}
