//! Presence shared by every CMU instance on this database (issue 19,
//! docs/design/scale-out.md section 3): which SCU node link holds each online device and the
//! addresses it reported (`device_presence`), the node links' leases (`scu_nodes`), the MTUs'
//! relay permits (`relay_permits`) and the bus's rows (`bus_messages`).
//!
//! A node link is named by a `link` id (`INSTANCE-EPOCH`), so that rows of an old link of a
//! node (on a dead instance, or before a reconnect) are told apart from the current one's.
//! Every write is one statement, atomic on both engines.

use super::{Store, StoreError, retry, ts, unts};

/// Whose a device's presence row is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PresenceRow {
    pub(crate) device_id: String,
    pub(crate) node: String,
    pub(crate) session: String,
    pub(crate) link: String,
    pub(crate) instance: String,
    /// The checked addresses (JSON of `DeviceAddresses`), once reported.
    pub(crate) endpoints: Option<String>,
}

/// A node link's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    pub(crate) node: String,
    pub(crate) link: String,
    pub(crate) instance: String,
    /// Unix ms until which the link counts as up.
    pub(crate) until_ms: u64,
}

/// A node's link is up on `instance`: it takes the node's lease, replacing any older link.
pub(crate) async fn node_up(db: &Store, lease: &Lease) -> Result<(), StoreError> {
    write_lease(
        db,
        lease,
        "INSERT INTO scu_nodes (node, link, instance, lease_until_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (node) DO UPDATE SET link = excluded.link,
           instance = excluded.instance, lease_until_ms = excluded.lease_until_ms",
    )
    .await
}

/// Renews a link's lease; writes it again if its row is gone (a database restored), but
/// never takes the node from a newer link.
pub(crate) async fn renew(db: &Store, lease: &Lease) -> Result<(), StoreError> {
    write_lease(
        db,
        lease,
        "INSERT INTO scu_nodes (node, link, instance, lease_until_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (node) DO UPDATE SET lease_until_ms = excluded.lease_until_ms
         WHERE scu_nodes.link = excluded.link",
    )
    .await
}

/// Runs `sql`, an upsert of `scu_nodes` with the lease's node, link, instance and end.
async fn write_lease(db: &Store, lease: &Lease, sql: &'static str) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query(sql)
            .bind(&lease.node)
            .bind(&lease.link)
            .bind(&lease.instance)
            .bind(ts(lease.until_ms))
            .execute(db.pool())
            .await
    })
    .await?;
    Ok(())
}

/// A link is gone: its lease and its devices' rows go with it.
pub(crate) async fn node_gone(db: &Store, link: &str) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM device_presence WHERE link = $1",
        "DELETE FROM scu_nodes WHERE link = $1",
    ] {
        retry(|| async { sqlx::query(sql).bind(link).execute(db.pool()).await }).await?;
    }
    Ok(())
}

/// Every lease.
pub(crate) async fn leases(db: &Store) -> Result<Vec<Lease>, StoreError> {
    let rows: Vec<(String, String, String, i64)> = retry(|| async {
        sqlx::query_as("SELECT node, link, instance, lease_until_ms FROM scu_nodes")
            .fetch_all(db.pool())
            .await
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|(node, link, instance, until)| Lease {
            node,
            link,
            instance,
            until_ms: unts(until),
        })
        .collect())
}

/// A device is online on a link. Addresses stay if the session is the same one (a node
/// re-announcing its devices), else they are cleared until the new session reports.
pub(crate) async fn online(db: &Store, row: &PresenceRow, now_ms: u64) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query(
            "INSERT INTO device_presence (device_id, node, session, link, instance, endpoints, updated_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (device_id) DO UPDATE SET node = excluded.node,
               session = excluded.session, link = excluded.link, instance = excluded.instance,
               endpoints = CASE WHEN device_presence.session = excluded.session
                                THEN COALESCE(excluded.endpoints, device_presence.endpoints)
                                ELSE excluded.endpoints END,
               updated_ms = excluded.updated_ms",
        )
        .bind(&row.device_id)
        .bind(&row.node)
        .bind(&row.session)
        .bind(&row.link)
        .bind(&row.instance)
        .bind(row.endpoints.as_deref())
        .bind(ts(now_ms))
        .execute(db.pool())
        .await
    })
    .await?;
    Ok(())
}

/// A device session ended on `node` (a newer session's row stays).
pub(crate) async fn offline(
    db: &Store,
    device_id: &str,
    node: &str,
    session: &str,
) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query(
            "DELETE FROM device_presence WHERE device_id = $1 AND node = $2 AND session = $3",
        )
        .bind(device_id)
        .bind(node)
        .bind(session)
        .execute(db.pool())
        .await
    })
    .await?;
    Ok(())
}

/// The checked addresses of a device's session (H.626.4 8.3 step 4).
pub(crate) async fn endpoints(
    db: &Store,
    device_id: &str,
    session: &str,
    json: &str,
) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query(
            "UPDATE device_presence SET endpoints = $3 WHERE device_id = $1 AND session = $2",
        )
        .bind(device_id)
        .bind(session)
        .bind(json)
        .execute(db.pool())
        .await
    })
    .await?;
    Ok(())
}

/// Every presence row.
pub(crate) async fn all(db: &Store) -> Result<Vec<PresenceRow>, StoreError> {
    type Row = (String, String, String, String, String, Option<String>);
    let rows: Vec<Row> = retry(|| async {
        sqlx::query_as(
            "SELECT device_id, node, session, link, instance, endpoints FROM device_presence",
        )
        .fetch_all(db.pool())
        .await
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(device_id, node, session, link, instance, endpoints)| PresenceRow {
                device_id,
                node,
                session,
                link,
                instance,
                endpoints,
            },
        )
        .collect())
}

/// Forgets leases that ended before `before_ms` and every presence row without a lease
/// (its instance died, or its node moved to a newer link).
pub(crate) async fn expire(db: &Store, before_ms: u64) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query("DELETE FROM scu_nodes WHERE lease_until_ms < $1")
            .bind(ts(before_ms))
            .execute(db.pool())
            .await
    })
    .await?;
    retry(|| async {
        sqlx::query(
            "DELETE FROM device_presence WHERE NOT EXISTS
               (SELECT 1 FROM scu_nodes s WHERE s.link = device_presence.link)",
        )
        .execute(db.pool())
        .await
    })
    .await?;
    Ok(())
}

/// Issue 19: takes the presence rows of node links whose lease ended before `now_ms`
/// and that another instance than `instance` held (it died, or lost its database for a
/// whole lease): deletes them and returns their device ids, so that the caller raises
/// their `camera_offline`. One statement: of instances sweeping together, each row goes
/// to exactly one (the others' `DELETE` finds it gone).
pub(crate) async fn claim_expired(
    db: &Store,
    instance: &str,
    now_ms: u64,
) -> Result<Vec<String>, StoreError> {
    retry(|| async {
        sqlx::query_scalar(
            "DELETE FROM device_presence WHERE instance <> $1 AND link IN
               (SELECT link FROM scu_nodes WHERE lease_until_ms < $2)
             RETURNING device_id",
        )
        .bind(instance)
        .bind(ts(now_ms))
        .fetch_all(db.pool())
        .await
    })
    .await
}

/// A viewer was sent to `mtu` for `camera`: the MTU may ask for its upstream until
/// `until_s`. Forgets permits that ended before `now_s`.
pub(crate) async fn allow_relay(
    db: &Store,
    (mtu, camera): (&str, &str),
    until_s: u64,
    now_s: u64,
) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query(
            "INSERT INTO relay_permits (mtu, camera, until_s) VALUES ($1, $2, $3)
             ON CONFLICT (mtu, camera) DO UPDATE SET until_s = excluded.until_s",
        )
        .bind(mtu)
        .bind(camera)
        .bind(ts(until_s))
        .execute(db.pool())
        .await
    })
    .await?;
    retry(|| async {
        sqlx::query("DELETE FROM relay_permits WHERE until_s < $1")
            .bind(ts(now_s))
            .execute(db.pool())
            .await
    })
    .await?;
    Ok(())
}

/// Whether `mtu` may ask for `camera`'s upstream at `now_s`.
pub(crate) async fn relay_allowed(
    db: &Store,
    (mtu, camera): (&str, &str),
    now_s: u64,
) -> Result<bool, StoreError> {
    let n: i64 = retry(|| async {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM relay_permits WHERE mtu = $1 AND camera = $2 AND until_s >= $3",
        )
        .bind(mtu)
        .bind(camera)
        .bind(ts(now_s))
        .fetch_one(db.pool())
        .await
    })
    .await?;
    Ok(n > 0)
}

/// The MTUs that were sent viewers of `camera` (and may still relay it).
pub(crate) async fn relays_of(db: &Store, camera: &str) -> Result<Vec<String>, StoreError> {
    retry(|| async {
        sqlx::query_scalar("SELECT mtu FROM relay_permits WHERE camera = $1 ORDER BY mtu")
            .bind(camera)
            .fetch_all(db.pool())
            .await
    })
    .await
}

/// 6.1.9: records that `device_id` had an offline alarm; true if it was not recorded yet
/// (so that one instance raises the alarm once).
pub(crate) async fn mark_offline(
    db: &Store,
    device_id: &str,
    now_ms: u64,
) -> Result<bool, StoreError> {
    retry(|| async {
        sqlx::query(
            "INSERT INTO offline_alarms (device_id, since_ms) VALUES ($1, $2)
             ON CONFLICT (device_id) DO NOTHING",
        )
        .bind(device_id)
        .bind(ts(now_ms))
        .execute(db.pool())
        .await
        .map(|r| r.rows_affected() == 1)
    })
    .await
}

/// 6.1.9: forgets `device_id`'s offline alarm; true if it had one (a `camera_online` is due).
pub(crate) async fn clear_offline(db: &Store, device_id: &str) -> Result<bool, StoreError> {
    retry(|| async {
        sqlx::query("DELETE FROM offline_alarms WHERE device_id = $1")
            .bind(device_id)
            .execute(db.pool())
            .await
            .map(|r| r.rows_affected() == 1)
    })
    .await
}

/// Appends a bus message; returns its id.
pub(crate) async fn bus_append(
    db: &Store,
    subject: &str,
    payload: &str,
    now_ms: u64,
) -> Result<i64, StoreError> {
    retry(|| async {
        sqlx::query_scalar(
            "INSERT INTO bus_messages (subject, payload, created_ms) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(subject)
        .bind(payload.as_bytes())
        .bind(ts(now_ms))
        .fetch_one(db.pool())
        .await
    })
    .await
}

/// Bus messages after `after` in order, at most `limit`: (id, subject, payload).
pub(crate) async fn bus_since(
    db: &Store,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, String, String)>, StoreError> {
    let rows: Vec<(i64, String, Vec<u8>)> = retry(|| async {
        sqlx::query_as(
            "SELECT id, subject, payload FROM bus_messages WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(db.pool())
        .await
    })
    .await?;
    rows.into_iter()
        .map(|(id, s, p)| {
            String::from_utf8(p)
                .map(|p| (id, s, p))
                .map_err(|_| StoreError::Corrupt(format!("bus message {id} is not UTF-8")))
        })
        .collect()
}

/// The newest bus message's id (0 when none).
pub(crate) async fn bus_last_id(db: &Store) -> Result<i64, StoreError> {
    retry(|| async {
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM bus_messages")
            .fetch_one(db.pool())
            .await
    })
    .await
}

/// Forgets bus messages written before `before_ms`, except the newest (SQLite would reuse
/// its id, and pollers would miss the next message).
pub(crate) async fn bus_prune(db: &Store, before_ms: u64) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query(
            "DELETE FROM bus_messages WHERE created_ms < $1
               AND id < (SELECT MAX(id) FROM bus_messages)",
        )
        .bind(ts(before_ms))
        .execute(db.pool())
        .await
    })
    .await?;
    Ok(())
}

/// PostgreSQL: `NOTIFY channel, payload` (the payload at most 8000 bytes).
pub(crate) async fn notify(db: &Store, channel: &str, payload: &str) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(db.pool())
            .await
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::on_both_backends;
    use super::*;

    fn lease(node: &str, link: &str, until_ms: u64) -> Lease {
        Lease {
            node: node.into(),
            link: link.into(),
            instance: link.split('-').next().unwrap_or_default().into(),
            until_ms,
        }
    }

    fn row(device: &str, node: &str, session: &str, link: &str) -> PresenceRow {
        PresenceRow {
            device_id: device.into(),
            node: node.into(),
            session: session.into(),
            link: link.into(),
            instance: link.split('-').next().unwrap_or_default().into(),
            endpoints: None,
        }
    }

    on_both_backends! {
    /// Issue 19: presence rows follow their node's link; a newer link takes the node, an
    /// older one's renewal does not take it back; rows without a lease are forgotten.
    #[tokio::test]
    async fn h626_7_presence_rows_follow_node_leases(db) {
        node_up(&db, &lease("scu-1", "a-1", 10_000)).await.unwrap();
        online(&db, &row("dev1", "scu-1", "s1", "a-1"), 1).await.unwrap();
        endpoints(&db, "dev1", "s1", "{\"local\":[]}").await.unwrap();
        // The node re-announces the same session: the addresses stay.
        online(&db, &row("dev1", "scu-1", "s1", "a-1"), 2).await.unwrap();
        let all_rows = all(&db).await.unwrap();
        assert_eq!(all_rows.len(), 1);
        assert_eq!(all_rows[0].endpoints.as_deref(), Some("{\"local\":[]}"));
        // A stale session's addresses are not taken; a new session clears them.
        endpoints(&db, "dev1", "s0", "x").await.unwrap();
        online(&db, &row("dev1", "scu-1", "s2", "a-1"), 3).await.unwrap();
        assert_eq!(all(&db).await.unwrap()[0].endpoints, None);
        // An old session going offline leaves the new one.
        offline(&db, "dev1", "scu-1", "s1").await.unwrap();
        assert_eq!(all(&db).await.unwrap().len(), 1);

        // The node moves to instance b; a's late renewal does not take it back.
        node_up(&db, &lease("scu-1", "b-1", 20_000)).await.unwrap();
        renew(&db, &lease("scu-1", "a-1", 30_000)).await.unwrap();
        let l = leases(&db).await.unwrap();
        assert_eq!(l, vec![lease("scu-1", "b-1", 20_000)]);
        // Rows of the old link have no lease any more: expired.
        expire(&db, 0).await.unwrap();
        assert!(all(&db).await.unwrap().is_empty());

        // b's renewal writes its lease back when the row is gone.
        node_gone(&db, "b-1").await.unwrap();
        assert!(leases(&db).await.unwrap().is_empty());
        renew(&db, &lease("scu-1", "b-1", 40_000)).await.unwrap();
        assert_eq!(leases(&db).await.unwrap().len(), 1);
        // An ended lease is forgotten with its rows.
        online(&db, &row("dev2", "scu-1", "s9", "b-1"), 4).await.unwrap();
        expire(&db, 50_000).await.unwrap();
        assert!(leases(&db).await.unwrap().is_empty());
        assert!(all(&db).await.unwrap().is_empty());
        // node_gone removes the link's rows.
        node_up(&db, &lease("scu-2", "c-1", 10_000)).await.unwrap();
        online(&db, &row("dev3", "scu-2", "s1", "c-1"), 5).await.unwrap();
        node_gone(&db, "c-1").await.unwrap();
        assert!(all(&db).await.unwrap().is_empty());
    }
    }

    on_both_backends! {
    /// Issue 19: the rows of a link whose lease ended are claimed once, by an instance
    /// other than the one that held it, and only once the lease has ended.
    #[tokio::test]
    async fn h626_7_expired_presence_claimed_once(db) {
        node_up(&db, &lease("scu-1", "a-1", 10_000)).await.unwrap();
        node_up(&db, &lease("scu-2", "b-1", 20_000)).await.unwrap();
        online(&db, &row("dev1", "scu-1", "s1", "a-1"), 1).await.unwrap();
        online(&db, &row("dev2", "scu-1", "s2", "a-1"), 1).await.unwrap();
        online(&db, &row("dev3", "scu-2", "s3", "b-1"), 1).await.unwrap();
        // The leases run: nothing to claim.
        assert!(claim_expired(&db, "b", 9_999).await.unwrap().is_empty());
        // a's ended: a's own sweep leaves its rows; b takes them, c then finds none.
        assert!(claim_expired(&db, "a", 10_001).await.unwrap().is_empty());
        let mut got = claim_expired(&db, "b", 10_001).await.unwrap();
        got.sort();
        assert_eq!(got, ["dev1", "dev2"]);
        assert!(claim_expired(&db, "c", 10_001).await.unwrap().is_empty());
        // b's ends later.
        assert_eq!(claim_expired(&db, "c", 20_001).await.unwrap(), ["dev3"]);
        assert!(claim_expired(&db, "a", 20_001).await.unwrap().is_empty());
        assert!(all(&db).await.unwrap().is_empty());
    }
    }

    on_both_backends! {
    /// Issue 19: relay permits are rows with an expiry, seen by every instance.
    #[tokio::test]
    async fn h626_7_relay_permits_expire(db) {
        allow_relay(&db, ("mtu1", "cam1"), 100, 50).await.unwrap();
        allow_relay(&db, ("mtu2", "cam1"), 60, 50).await.unwrap();
        assert!(relay_allowed(&db, ("mtu1", "cam1"), 100).await.unwrap());
        assert!(!relay_allowed(&db, ("mtu1", "cam1"), 101).await.unwrap());
        assert!(!relay_allowed(&db, ("mtu1", "cam2"), 50).await.unwrap());
        assert_eq!(relays_of(&db, "cam1").await.unwrap(), ["mtu1", "mtu2"]);
        // A later permit forgets the ended ones.
        allow_relay(&db, ("mtu1", "cam1"), 200, 70).await.unwrap();
        assert_eq!(relays_of(&db, "cam1").await.unwrap(), ["mtu1"]);
    }
    }

    on_both_backends! {
    /// 6.1.9 with several instances: an offline alarm is recorded once, and cleared once.
    #[tokio::test]
    async fn h626_6_1_9_offline_alarm_marked_once(db) {
        assert!(mark_offline(&db, "cam1", 1).await.unwrap());
        assert!(!mark_offline(&db, "cam1", 2).await.unwrap());
        assert!(clear_offline(&db, "cam1").await.unwrap());
        assert!(!clear_offline(&db, "cam1").await.unwrap());
        assert!(mark_offline(&db, "cam1", 3).await.unwrap());
    }
    }

    on_both_backends! {
    /// Issue 19: the bus's rows come back in order after an id; pruning keeps the newest
    /// so that ids never go back.
    #[tokio::test]
    async fn h626_7_bus_rows_in_order_and_pruned(db) {
        assert_eq!(bus_last_id(&db).await.unwrap(), 0);
        let a = bus_append(&db, "s", "one", 1).await.unwrap();
        let b = bus_append(&db, "s", &"x".repeat(20_000), 2).await.unwrap();
        assert!(b > a);
        let got = bus_since(&db, 0, 10).await.unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (a, "s".to_owned(), "one".to_owned()));
        assert_eq!(got[1].2.len(), 20_000);
        assert_eq!(bus_since(&db, a, 10).await.unwrap().len(), 1);
        bus_prune(&db, 100).await.unwrap();
        assert_eq!(bus_last_id(&db).await.unwrap(), b);
        let c = bus_append(&db, "s", "three", 3).await.unwrap();
        assert!(c > b);
    }
    }
}
