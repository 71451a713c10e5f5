//! Quota arithmetic (H.626.4 6.1.13 free and paid storage, 8.7.1 "when the CS is full the PU
//! asks the CS to delete the oldest files").
//!
//! The pool is the account's: quota, bytes used (ciphertext of objects and clips) and bytes
//! reserved by open write intents. A write that does not fit is refused with [`Full`],
//! whose `need` is what a `prune` must free. A camera with its own cap (the strategy's
//! `retention.quota_bytes`) is checked as a [`Pool`] too.
//!
//! [`prune_plan`] picks what a prune deletes: segment objects of the pool, oldest start
//! first, until `need` bytes are free or nothing is left (clips are never pruned). Its
//! answer names keys and spans only of the asking camera's own objects; of the owner's
//! other cameras it gives a count and a byte total, so a camera learns nothing about other
//! prefixes.

use serde::{Deserialize, Serialize};

use crate::key::{Prefix, SegmentKey};

/// An account's storage pool, or a camera's capped share of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Pool {
    /// Bytes allowed.
    pub quota: u64,
    /// Bytes stored.
    pub used: u64,
    /// Bytes reserved by writes in progress.
    pub reserved: u64,
}

/// A write refused because the pool is full (`507 quota_full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("storage full: {used} of {quota} bytes used, {need} more needed")]
pub struct Full {
    /// Bytes stored.
    pub used: u64,
    /// Bytes allowed.
    pub quota: u64,
    /// Bytes to free before the write fits.
    pub need: u64,
}

impl Pool {
    /// Whether a write of `n` bytes fits beside what is stored and reserved.
    pub fn admit(&self, n: u64) -> Result<(), Full> {
        let after = self.used.saturating_add(self.reserved).saturating_add(n);
        if after <= self.quota {
            Ok(())
        } else {
            Err(Full {
                used: self.used,
                quota: self.quota,
                need: after - self.quota,
            })
        }
    }

    /// Bytes a write can still take.
    pub fn room(&self) -> u64 {
        self.quota
            .saturating_sub(self.used.saturating_add(self.reserved))
    }
}

/// Checks a write of `n` bytes against the account's pool and, if the camera is capped,
/// the camera's share; refused by the tighter of the two.
pub fn admit(pool: &Pool, camera_cap: Option<&Pool>, n: u64) -> Result<(), Full> {
    let a = pool.admit(n);
    let c = camera_cap.map_or(Ok(()), |c| c.admit(n));
    match (a, c) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(f), Ok(())) | (Ok(()), Err(f)) => Err(f),
        (Err(a), Err(c)) => Err(if c.need > a.need { c } else { a }),
    }
}

/// A stored segment object, as the CS's index knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Its key (the prefix names the camera).
    pub key: SegmentKey,
    /// First frame, Unix ms.
    pub start_ms: u64,
    /// End, Unix ms.
    pub end_ms: u64,
    /// Bytes it takes in the store.
    pub bytes: u64,
}

/// Which objects a prune may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneScope {
    /// The whole account pool, every camera's objects.
    Pool,
    /// Only the asking camera's objects (it is over its own cap).
    Camera,
}

/// One of the asking camera's deleted objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    /// Its key.
    pub key: String,
    /// First frame, Unix ms.
    pub start_ms: u64,
    /// End, Unix ms.
    pub end_ms: u64,
    /// Bytes freed.
    pub bytes: u64,
}

/// What was deleted of the owner's other cameras: totals only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Others {
    /// Objects deleted.
    pub objects: u64,
    /// Bytes freed.
    pub bytes: u64,
}

/// What a prune deletes, and what the asking camera is told.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrunePlan {
    /// Every key to delete, oldest first (the CS's work list).
    pub delete: Vec<SegmentKey>,
    /// The asking camera's own deletions.
    pub own: Vec<Deleted>,
    /// The other cameras' deletions, as totals.
    pub others: Others,
    /// Bytes freed in all.
    pub freed: u64,
}

/// Plans a prune of `need` bytes asked by the camera of prefix `asking`. `objects` need not
/// be sorted: the oldest start goes first (ties by key).
pub fn prune_plan(objects: &[Stored], need: u64, asking: Prefix, scope: PruneScope) -> PrunePlan {
    let mut order: Vec<&Stored> = objects
        .iter()
        .filter(|o| scope == PruneScope::Pool || o.key.prefix() == asking)
        .collect();
    order.sort_by_key(|o| (o.start_ms, o.key));
    let mut plan = PrunePlan::default();
    for o in order {
        if plan.freed >= need {
            break;
        }
        plan.delete.push(o.key);
        plan.freed = plan.freed.saturating_add(o.bytes);
        if o.key.prefix() == asking {
            plan.own.push(Deleted {
                key: o.key.to_string(),
                start_ms: o.start_ms,
                end_ms: o.end_ms,
                bytes: o.bytes,
            });
        } else {
            plan.others.objects += 1;
            plan.others.bytes = plan.others.bytes.saturating_add(o.bytes);
        }
    }
    plan
}

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// What retention deletes from an account's pool (H.626.4 6.1.13: the plan's age limit and,
/// after a downgrade, its smaller quota).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Retention {
    /// Every key to delete, oldest first.
    pub delete: Vec<SegmentKey>,
    /// Of those, how many went for their age.
    pub aged: u64,
    /// Bytes freed in all.
    pub freed: u64,
}

/// Plans retention over an account's segment objects (`objects` need not be sorted):
/// objects that ended before `now_ms - max_age_days` go; then, when `prune_excess` holds
/// and the pool's `used` bytes still exceed `quota`, the oldest go until they do not.
pub fn retention_plan(
    objects: &[Stored],
    used: u64,
    quota: u64,
    max_age_days: Option<u32>,
    prune_excess: bool,
    now_ms: u64,
) -> Retention {
    let mut order: Vec<&Stored> = objects.iter().collect();
    order.sort_by_key(|o| (o.start_ms, o.key));
    let cutoff = max_age_days.map(|d| now_ms.saturating_sub(u64::from(d).saturating_mul(DAY_MS)));
    let mut plan = Retention::default();
    let mut left = used;
    for o in order {
        let old = cutoff.is_some_and(|c| o.end_ms < c);
        let excess = prune_excess && left > quota;
        if !(old || excess) {
            // Kept; a later one may still be too old (a long object that ended earlier).
            continue;
        }
        plan.delete.push(o.key);
        plan.freed = plan.freed.saturating_add(o.bytes);
        left = left.saturating_sub(o.bytes);
        if old {
            plan.aged += 1;
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    const A: Prefix = Prefix::from_bytes([1; 16]);
    const B: Prefix = Prefix::from_bytes([2; 16]);

    fn obj(p: Prefix, start_ms: u64, seq: u64, bytes: u64) -> Stored {
        Stored {
            key: SegmentKey::new(p, start_ms, seq).unwrap(),
            start_ms,
            end_ms: start_ms + 10_000,
            bytes,
        }
    }

    #[test]
    fn h626_6_1_13_pool_admits_up_to_its_quota() {
        let p = Pool {
            quota: 1000,
            used: 600,
            reserved: 100,
        };
        assert_eq!(p.admit(300), Ok(()));
        assert_eq!(
            p.admit(301),
            Err(Full {
                used: 600,
                quota: 1000,
                need: 1
            })
        );
        assert_eq!(p.room(), 300);
        // More than the whole quota: still Full, with what pruning cannot reach.
        assert_eq!(p.admit(5000).unwrap_err().need, 4700);
        let over = Pool {
            quota: 10,
            used: 20,
            reserved: 0,
        };
        assert_eq!(over.room(), 0);
        assert_eq!(over.admit(0).unwrap_err().need, 10);
        let huge = Pool {
            quota: u64::MAX,
            used: u64::MAX,
            reserved: u64::MAX,
        };
        assert_eq!(huge.admit(u64::MAX), Ok(()), "saturates, never wraps");
        // A camera cap tighter than the pool.
        let cap = Pool {
            quota: 650,
            used: 600,
            reserved: 0,
        };
        assert_eq!(admit(&p, Some(&cap), 50), Ok(()));
        assert_eq!(admit(&p, Some(&cap), 51).unwrap_err().need, 1);
        assert_eq!(admit(&p, Some(&cap), 310).unwrap_err().need, 260);
        assert_eq!(admit(&p, None, 300), Ok(()));
    }

    #[test]
    fn h626_8_7_1_prune_deletes_oldest_and_tells_only_own_keys() {
        let objects = [
            obj(A, 30_000, 3, 100),
            obj(B, 10_000, 7, 200),
            obj(A, 20_000, 2, 100),
            obj(B, 40_000, 8, 200),
        ];
        let plan = prune_plan(&objects, 250, A, PruneScope::Pool);
        assert_eq!(plan.delete, vec![objects[1].key, objects[2].key]);
        assert_eq!(plan.freed, 300);
        assert_eq!(
            plan.own,
            vec![Deleted {
                key: objects[2].key.to_string(),
                start_ms: 20_000,
                end_ms: 30_000,
                bytes: 100
            }]
        );
        assert_eq!(
            plan.others,
            Others {
                objects: 1,
                bytes: 200
            }
        );
        // Only the asking camera's when it is over its own cap.
        let own = prune_plan(&objects, 150, A, PruneScope::Camera);
        assert_eq!(own.delete, vec![objects[2].key, objects[0].key]);
        assert_eq!(own.others, Others::default());
        // More than everything: all goes; nothing asked: nothing goes.
        let all = prune_plan(&objects, 10_000, B, PruneScope::Pool);
        assert_eq!(all.delete.len(), 4);
        assert_eq!(all.freed, 600);
        assert_eq!(all.own.len(), 2);
        assert_eq!(all.others.objects, 2);
        assert_eq!(
            prune_plan(&objects, 0, A, PruneScope::Pool),
            PrunePlan::default()
        );
        assert_eq!(
            prune_plan(&[], 10, A, PruneScope::Pool),
            PrunePlan::default()
        );
    }

    #[test]
    fn h626_6_1_13_retention_by_age_and_by_a_lower_quota() {
        let now = 100 * DAY_MS;
        let day = |d: u64| (now - d * DAY_MS) - 10_000;
        let objects = [
            obj(A, day(2), 1, 100),
            obj(B, day(10), 2, 100),
            obj(A, day(8), 3, 100),
            obj(A, day(1), 4, 100),
        ];
        // 7 days: the two older than a week go.
        let r = retention_plan(&objects, 400, 1000, Some(7), true, now);
        assert_eq!(r.delete, vec![objects[1].key, objects[2].key]);
        assert_eq!((r.aged, r.freed), (2, 200));
        // Quota 150 without age: the oldest go until 150 are left.
        let r = retention_plan(&objects, 400, 150, None, true, now);
        assert_eq!(
            r.delete,
            vec![objects[1].key, objects[2].key, objects[0].key]
        );
        assert_eq!((r.aged, r.freed), (0, 300));
        // In the grace after a downgrade: nothing goes for the quota.
        assert_eq!(
            retention_plan(&objects, 400, 150, None, false, now),
            Retention::default()
        );
        // Both: age first, then the quota.
        let r = retention_plan(&objects, 400, 100, Some(7), true, now);
        assert_eq!(r.delete.len(), 3);
        assert_eq!(r.aged, 2);
    }

    proptest! {
        #[test]
        fn h626_6_1_13_retention_leaves_the_pool_within_quota(
            raw in proptest::collection::vec((0u64..30, 1u64..500), 0..40),
            quota in 0u64..5000,
            age in proptest::option::of(1u32..30),
        ) {
            let now = 40 * DAY_MS;
            let objects: Vec<Stored> = raw
                .iter()
                .enumerate()
                .map(|(i, (d, n))| obj(A, now - d * DAY_MS - 20_000, i as u64, *n))
                .collect();
            let used: u64 = objects.iter().map(|o| o.bytes).sum();
            let r = retention_plan(&objects, used, quota, age, true, now);
            prop_assert!(used - r.freed <= quota);
            for o in &objects {
                let gone = r.delete.contains(&o.key);
                if let Some(a) = age && o.end_ms < now - u64::from(a) * DAY_MS {
                    prop_assert!(gone, "too old and kept");
                }
            }
            // Minimal for the quota: the newest deletion not forced by age was needed.
            let kept_newer_than_deleted = objects.iter().filter(|o| !r.delete.contains(&o.key)).all(|k| {
                r.delete.iter().all(|d| {
                    let dobj = objects.iter().find(|o| o.key == *d).unwrap();
                    age.is_some_and(|a| dobj.end_ms < now - u64::from(a) * DAY_MS)
                        || (dobj.start_ms, dobj.key) < (k.start_ms, k.key)
                })
            });
            prop_assert!(kept_newer_than_deleted, "the oldest go first");
        }
    }

    proptest! {
        #[test]
        fn h626_8_7_1_prune_frees_enough_with_the_oldest(
            raw in proptest::collection::vec((any::<bool>(), 0u64..1000, 1u64..500), 0..40),
            need in 0u64..5000,
        ) {
            let objects: Vec<Stored> = raw
                .iter()
                .enumerate()
                .map(|(i, (b, t, n))| obj(if *b { B } else { A }, *t * 1000, i as u64, *n))
                .collect();
            let plan = prune_plan(&objects, need, A, PruneScope::Pool);
            let total: u64 = objects.iter().map(|o| o.bytes).sum();
            prop_assert!(plan.freed >= need.min(total));
            // Minimal: without the last deletion it would not have been enough.
            if let Some(last) = plan.delete.last() {
                let b = objects.iter().find(|o| o.key == *last).unwrap().bytes;
                prop_assert!(plan.freed - b < need);
            }
            // Oldest first: nothing kept is older than something deleted.
            let newest_deleted = plan
                .delete
                .iter()
                .map(|k| k.start_ms())
                .max();
            if let Some(t) = newest_deleted {
                for o in &objects {
                    if !plan.delete.contains(&o.key) {
                        prop_assert!(o.start_ms >= t);
                    }
                }
            }
            let own_bytes: u64 = plan.own.iter().map(|d| d.bytes).sum();
            prop_assert_eq!(own_bytes + plan.others.bytes, plan.freed);
            prop_assert_eq!(plan.own.len() as u64 + plan.others.objects, plan.delete.len() as u64);
            for d in &plan.own {
                prop_assert!(d.key.starts_with(&A.to_string()));
            }
        }
    }
}
