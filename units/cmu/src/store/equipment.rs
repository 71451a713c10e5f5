//! Equipment (H.626.4 6.1.1 assignment, 6.2 vendor management): the vendor and model
//! catalogue, the operator's device search, and a device's assignment to an account, its
//! move to another, and its decommissioning.

use peercam_base::DeviceId;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::devices::{COLUMNS, Device, device, release_links};
use super::{Arg, Store, StoreError, begin_write, retry, select, ts};

/// A vendor as stored, with how many models it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Vendor {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) contact: String,
    pub(crate) models: u64,
}

/// A model as stored, with how many devices carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Model {
    pub(crate) id: i64,
    pub(crate) vendor: String,
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) ptz: bool,
    pub(crate) audio: bool,
    pub(crate) sd: bool,
    pub(crate) devices: u64,
}

/// A model to store.
#[derive(Debug, Clone)]
pub(crate) struct NewModel<'a> {
    pub(crate) vendor_id: i64,
    pub(crate) name: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) ptz: bool,
    pub(crate) audio: bool,
    pub(crate) sd: bool,
}

/// What a catalogue write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// Done; the row's id.
    Done(i64),
    /// No such row.
    Missing,
    /// Its name is taken.
    Taken,
    /// Still in use (a vendor with models, a model with devices).
    InUse(u64),
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn vendor(row: &AnyRow) -> Result<Vendor, sqlx::Error> {
    Ok(Vendor {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        contact: row.try_get("contact")?,
        models: count(row.try_get("models")?),
    })
}

fn model(row: &AnyRow) -> Result<Model, sqlx::Error> {
    Ok(Model {
        id: row.try_get("id")?,
        vendor: row.try_get("vendor")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        ptz: row.try_get::<i64, _>("ptz")? != 0,
        audio: row.try_get::<i64, _>("audio")? != 0,
        sd: row.try_get::<i64, _>("sd")? != 0,
        devices: count(row.try_get("devices")?),
    })
}

const VENDORS: &str = "SELECT v.id, v.name, v.contact,
     (SELECT COUNT(*) FROM models m WHERE m.vendor_id = v.id) AS models
     FROM vendors v";

/// Every vendor, by name.
pub(crate) async fn vendors(db: &Store) -> Result<Vec<Vendor>, StoreError> {
    select(db, &format!("{VENDORS} ORDER BY v.name"), &[], vendor).await
}

/// The vendor with this id.
pub(crate) async fn vendor_by_id(db: &Store, id: i64) -> Result<Option<Vendor>, StoreError> {
    let sql = format!("{VENDORS} WHERE v.id = $1");
    Ok(select(db, &sql, &[Arg::Int(id)], vendor).await?.pop())
}

/// The vendor with this name.
pub(crate) async fn vendor_by_name(db: &Store, name: &str) -> Result<Option<Vendor>, StoreError> {
    let sql = format!("{VENDORS} WHERE v.name = $1");
    Ok(select(db, &sql, &[Arg::Text(name)], vendor).await?.pop())
}

/// Is the error a unique constraint's (a name taken)?
fn is_unique(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Adds a vendor.
pub(crate) async fn add_vendor(
    db: &Store,
    name: &str,
    contact: &str,
    now: u64,
) -> Result<Written, StoreError> {
    let r = retry(|| async {
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO vendors (name, contact, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name)
        .bind(contact)
        .bind(ts(now))
        .fetch_one(db.pool())
        .await
        .map(Written::Done)
        .or_else(|e| {
            if is_unique(&e) {
                Ok(Written::Taken)
            } else {
                Err(e)
            }
        })
    })
    .await?;
    Ok(r)
}

/// Renames a vendor; its devices' `vendor` follows, in one transaction.
pub(crate) async fn update_vendor(
    db: &Store,
    id: i64,
    name: &str,
    contact: &str,
) -> Result<Written, StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        let Some(old) = sqlx::query_scalar::<_, String>("SELECT name FROM vendors WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Written::Missing);
        };
        let taken: Option<i64> =
            sqlx::query_scalar("SELECT id FROM vendors WHERE name = $1 AND id <> $2")
                .bind(name)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if taken.is_some() {
            return Ok(Written::Taken);
        }
        sqlx::query("UPDATE vendors SET name = $1, contact = $2 WHERE id = $3")
            .bind(name)
            .bind(contact)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE devices SET vendor = $1 WHERE vendor = $2")
            .bind(name)
            .bind(&old)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Written::Done(id))
    })
    .await
}

/// Removes a vendor that has no models.
pub(crate) async fn remove_vendor(db: &Store, id: i64) -> Result<Written, StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        let models: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM models WHERE vendor_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        if models > 0 {
            return Ok(Written::InUse(count(models)));
        }
        let r = sqlx::query("DELETE FROM vendors WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(if r.rows_affected() == 1 {
            Written::Done(id)
        } else {
            Written::Missing
        })
    })
    .await
}

const MODELS: &str = "SELECT m.id, v.name AS vendor, m.name, m.kind, m.ptz, m.audio, m.sd,
     (SELECT COUNT(*) FROM devices d WHERE d.vendor = v.name AND d.model = m.name) AS devices
     FROM models m JOIN vendors v ON v.id = m.vendor_id";

/// Every model, by vendor and name.
pub(crate) async fn models(db: &Store) -> Result<Vec<Model>, StoreError> {
    select(db, &format!("{MODELS} ORDER BY v.name, m.name"), &[], model).await
}

/// The model with this id.
pub(crate) async fn model_by_id(db: &Store, id: i64) -> Result<Option<Model>, StoreError> {
    let sql = format!("{MODELS} WHERE m.id = $1");
    Ok(select(db, &sql, &[Arg::Int(id)], model).await?.pop())
}

/// The model `name` of the vendor `vendor`.
pub(crate) async fn model_by_name(
    db: &Store,
    vendor: &str,
    name: &str,
) -> Result<Option<Model>, StoreError> {
    let sql = format!("{MODELS} WHERE v.name = $1 AND m.name = $2");
    Ok(
        select(db, &sql, &[Arg::Text(vendor), Arg::Text(name)], model)
            .await?
            .pop(),
    )
}

/// Adds a model, or (with `id`) changes one; a renamed model's devices follow.
pub(crate) async fn put_model(
    db: &Store,
    id: Option<i64>,
    m: &NewModel<'_>,
    now: u64,
) -> Result<Written, StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        let taken: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM models WHERE vendor_id = $1 AND name = $2 AND id <> $3",
        )
        .bind(m.vendor_id)
        .bind(m.name)
        .bind(id.unwrap_or(-1))
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Ok(Written::Taken);
        }
        let flags = (i64::from(m.ptz), i64::from(m.audio), i64::from(m.sd));
        let id = match id {
            None => {
                sqlx::query_scalar(
                    "INSERT INTO models (vendor_id, name, kind, ptz, audio, sd, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(m.vendor_id)
                .bind(m.name)
                .bind(m.kind)
                .bind(flags.0)
                .bind(flags.1)
                .bind(flags.2)
                .bind(ts(now))
                .fetch_one(&mut *tx)
                .await?
            }
            Some(id) => {
                let old: Option<(String, String)> = sqlx::query_as(
                    "SELECT v.name, m.name FROM models m JOIN vendors v ON v.id = m.vendor_id
                     WHERE m.id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((old_vendor, old_name)) = old else {
                    return Ok(Written::Missing);
                };
                sqlx::query(
                    "UPDATE models SET vendor_id = $1, name = $2, kind = $3, ptz = $4, audio = $5,
                     sd = $6 WHERE id = $7",
                )
                .bind(m.vendor_id)
                .bind(m.name)
                .bind(m.kind)
                .bind(flags.0)
                .bind(flags.1)
                .bind(flags.2)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE devices SET model = $1,
                       vendor = (SELECT name FROM vendors WHERE id = $2)
                     WHERE vendor = $3 AND model = $4",
                )
                .bind(m.name)
                .bind(m.vendor_id)
                .bind(&old_vendor)
                .bind(&old_name)
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        tx.commit().await?;
        Ok(Written::Done(id))
    })
    .await
}

/// Removes a model no device carries.
pub(crate) async fn remove_model(db: &Store, id: i64) -> Result<Written, StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        let devices: Option<i64> = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM devices d WHERE d.vendor = v.name AND d.model = m.name)
             FROM models m JOIN vendors v ON v.id = m.vendor_id WHERE m.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        match devices {
            None => return Ok(Written::Missing),
            Some(n) if n > 0 => return Ok(Written::InUse(count(n))),
            Some(_) => {}
        }
        sqlx::query("DELETE FROM models WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Written::Done(id))
    })
    .await
}

/// A device's state for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Provisioned, no owner.
    Unassigned,
    /// Bound or assigned to an owner.
    Assigned,
    /// Decommissioned: its key no longer admits it.
    Decommissioned,
}

impl State {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Unassigned => "unassigned",
            Self::Assigned => "assigned",
            Self::Decommissioned => "decommissioned",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "unassigned" => Self::Unassigned,
            "assigned" => Self::Assigned,
            "decommissioned" => Self::Decommissioned,
            _ => return None,
        })
    }

    pub(crate) fn of(d: &Device) -> Self {
        if d.disabled {
            Self::Decommissioned
        } else if d.owner.is_some() {
            Self::Assigned
        } else {
            Self::Unassigned
        }
    }
}

/// The operator's device search: every filter given must match.
#[derive(Debug, Clone, Default)]
pub(crate) struct Search {
    /// Part of the id, name, vendor or model (any case).
    pub(crate) q: Option<String>,
    pub(crate) vendor: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) owner: Option<i64>,
    pub(crate) online: Option<bool>,
    pub(crate) state: Option<State>,
    /// Devices after this id.
    pub(crate) after: Option<String>,
    /// At most this many (1 to 1000).
    pub(crate) limit: u32,
}

/// `text` for a `LIKE` pattern: `\`, `%` and `_` escaped.
fn like_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `total` is exact up to this many matches; beyond, the answer says "at least this many"
/// (counting every match of a broad filter would read every row).
pub(crate) const TOTAL_CAP: u64 = 10_000;

/// One page of the search.
#[derive(Debug, Clone)]
pub(crate) struct Page {
    /// The devices of the page, by id.
    pub(crate) devices: Vec<Device>,
    /// How many devices match in all, at most [`TOTAL_CAP`].
    pub(crate) total: u64,
    /// More than [`TOTAL_CAP`] devices match.
    pub(crate) capped: bool,
}

/// A device's state as one number, the expression the search indexes (issue 18): 0
/// unassigned, 1 assigned, 2 decommissioned ([`State::of`]).
const STATE: &str = "(CASE WHEN disabled <> 0 THEN 2 WHEN owner_id IS NULL THEN 0 ELSE 1 END)";

impl State {
    fn code(self) -> u8 {
        match self {
            Self::Unassigned => 0,
            Self::Assigned => 1,
            Self::Decommissioned => 2,
        }
    }
}

/// The FTS5 query for `q` on SQLite's trigram index: one phrase, which matches where `q`
/// occurs as a substring (any case); `"` doubled inside it.
fn fts_phrase(q: &str) -> String {
    format!("\"{}\"", q.replace('"', "\"\""))
}

/// One page of the search (by id) and how many devices match in all (capped).
///
/// Every filter is served by an index that also yields the id order, so a page reads about
/// as many rows as it shows and the count at most [`TOTAL_CAP`] + 1: `vendor`, `model` and
/// `state` by the `devices_search_*` indexes, `online` by the presence table's key, `q` by a
/// trigram index (SQLite: the FTS5 table `devices_fts`; PostgreSQL: `pg_trgm` GIN indexes
/// when the extension could be created, else the same `LIKE` read row by row).
pub(crate) async fn search(db: &Store, s: &Search) -> Result<Page, StoreError> {
    search_capped(db, s, TOTAL_CAP, DENSE_TEXT).await
}

/// [`search`] counting at most `cap` matches, a page of text matches read row by row above
/// `dense` of them.
async fn search_capped(db: &Store, s: &Search, cap: u64, dense: i64) -> Result<Page, StoreError> {
    let mut clauses: Vec<String> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    let mut ints: Vec<(usize, i64)> = Vec::new();
    let mut n = 0usize;
    let mut param = |clauses: &mut Vec<String>, f: &dyn Fn(usize) -> String| {
        n += 1;
        clauses.push(f(n));
        n
    };
    // The row-by-row text test: the page's test too when the trigram index finds many.
    let like = |i: usize| {
        format!(
            "(id LIKE ${i} ESCAPE '\\' OR LOWER(COALESCE(name, '')) LIKE ${i} ESCAPE '\\'
              OR LOWER(vendor) LIKE ${i} ESCAPE '\\' OR LOWER(model) LIKE ${i} ESCAPE '\\')"
        )
    };
    // Where the trigram test is (its clause and parameter) and the row-by-row pattern.
    let mut fts: Option<(usize, usize, String)> = None;
    if let Some(q) = s.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        // FTS5's trigram tokenizer finds substrings of 3 characters or more; shorter ones
        // are looked for row by row (they match many devices, so a page fills early).
        let pattern = format!("%{}%", like_escaped(&q.to_lowercase()));
        if db.backend() == super::Backend::Sqlite && q.chars().count() >= 3 {
            let i = param(&mut clauses, &|i| {
                format!(
                    "devices.rowid IN (SELECT rowid FROM devices_fts WHERE devices_fts MATCH ${i})"
                )
            });
            texts.push(fts_phrase(q));
            // LOWER() folds ASCII only, as FTS5 folds every letter: only an ASCII query
            // matches the same devices both ways.
            if q.is_ascii() {
                fts = Some((clauses.len() - 1, i, pattern));
            }
        } else {
            param(&mut clauses, &like);
            texts.push(pattern);
        }
    }
    if let Some(v) = &s.vendor {
        param(&mut clauses, &|i| format!("vendor = ${i}"));
        texts.push(v.clone());
    }
    if let Some(m) = &s.model {
        param(&mut clauses, &|i| format!("model = ${i}"));
        texts.push(m.clone());
    }
    if let Some(o) = s.owner {
        let i = param(&mut clauses, &|i| format!("owner_id = ${i}"));
        ints.push((i, o));
        texts.push(String::new());
    }
    match s.online {
        Some(true) => clauses.push("id IN (SELECT device_id FROM device_presence)".into()),
        Some(false) => clauses.push(format!("NOT {ONLINE}")),
        None => {}
    }
    if let Some(state) = s.state {
        clauses.push(format!("{STATE} = {}", state.code()));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let total_sql = if clauses.len() == 1 && fts.is_some() {
        // Text alone: FTS5 yields its matches lazily, so the cap stops it early (joined
        // with the devices, every match would be gathered first).
        format!(
            "SELECT COUNT(*) AS n FROM (SELECT rowid FROM devices_fts WHERE devices_fts MATCH $1 \
             LIMIT {}) capped",
            cap + 1
        )
    } else {
        format!(
            "SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM devices{filter} LIMIT {}) capped",
            cap + 1
        )
    };
    let total = select(db, &total_sql, &args(&texts, &ints), |r| {
        r.try_get::<i64, _>("n")
    })
    .await?
    .pop()
    .unwrap_or(0);
    let mut page_texts = texts.clone();
    let mut page_filter = filter;
    // Many matches: the trigram index would yield them all to be sorted by id, while the
    // devices read in id order and tested row by row fill a page after about
    // `limit * devices / matches` rows.
    if let Some((at, i, pattern)) = fts.filter(|_| total > dense) {
        clauses[at] = like(i);
        page_texts[i - 1] = pattern;
        page_filter = format!(" WHERE {}", clauses.join(" AND "));
    }
    if let Some(after) = &s.after {
        let i = page_texts.len() + 1;
        page_filter = if page_filter.is_empty() {
            format!(" WHERE id > ${i}")
        } else {
            format!("{page_filter} AND id > ${i}")
        };
        page_texts.push(after.clone());
    }
    let page_sql = format!(
        "SELECT {COLUMNS} FROM devices{page_filter} ORDER BY id LIMIT {}",
        s.limit.clamp(1, 1000)
    );
    let devices = select(db, &page_sql, &args(&page_texts, &ints), device).await?;
    let total = count(total);
    Ok(Page {
        devices,
        total: total.min(cap),
        capped: total > cap,
    })
}

/// Above this many text matches a page is read in id order row by row (see [`search`]).
const DENSE_TEXT: i64 = 2000;

/// The parameters in order: `texts`, except where `ints` puts a number.
fn args<'a>(texts: &'a [String], ints: &[(usize, i64)]) -> Vec<Arg<'a>> {
    texts
        .iter()
        .enumerate()
        .map(|(k, t)| match ints.iter().find(|(i, _)| *i == k + 1) {
            Some((_, v)) => Arg::Int(*v),
            None => Arg::Text(t),
        })
        .collect()
}

/// Online: a presence row (issue 19; rows of a node link that went away are deleted with it).
const ONLINE: &str = "EXISTS (SELECT 1 FROM device_presence p WHERE p.device_id = devices.id)";

/// How an assignment or move ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Assigned {
    /// Done.
    Done,
    /// No such device.
    Missing,
    /// Decommissioned devices are never assigned.
    Decommissioned,
    /// Assign: it has an owner already (move it instead). Move: it has none (assign it).
    Owner(Option<i64>),
}

/// 6.1.1: assigns an unassigned device to `owner` (the ACL version moves, as binding does)
/// or (`moving`) moves an assigned one to `owner`: its shares, recorder links and timed
/// snapshots go and every token of the old owner goes stale with the ACL version.
pub(crate) async fn assign(
    db: &Store,
    id: &DeviceId,
    owner: i64,
    name: Option<&str>,
    moving: bool,
) -> Result<Assigned, StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        let row: Option<(Option<i64>, i64)> =
            sqlx::query_as("SELECT owner_id, disabled FROM devices WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let Some((current, disabled)) = row else {
            return Ok(Assigned::Missing);
        };
        if disabled != 0 {
            return Ok(Assigned::Decommissioned);
        }
        if current.is_some() != moving || (moving && current == Some(owner)) {
            return Ok(Assigned::Owner(current));
        }
        if moving {
            release_links(&mut tx, id).await?;
        }
        sqlx::query(
            "UPDATE devices SET owner_id = $1, name = $2, acl_version = acl_version + 1
             WHERE id = $3",
        )
        .bind(owner)
        .bind(name)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Assigned::Done)
    })
    .await
}

/// 6.1.1: decommissions a device: its key no longer admits it (`disabled`), it loses its
/// owner, shares, recorder links and timed snapshots, and the ACL version moves (every
/// token goes stale). Returns the recorders that held its recordings (its NVRs, itself for
/// an SD card) and its owner, or `None` if there is no such device or it was
/// decommissioned before.
pub(crate) async fn decommission(
    db: &Store,
    id: &DeviceId,
    now: u64,
) -> Result<Option<(Vec<DeviceId>, Option<i64>)>, StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        let row: Option<(Option<i64>, i64)> =
            sqlx::query_as("SELECT owner_id, disabled FROM devices WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let Some((owner, 0)) = row else {
            return Ok(None);
        };
        let recorders: Vec<String> =
            sqlx::query_scalar("SELECT recorder_id FROM recorders WHERE camera_id = $1")
                .bind(id.as_str())
                .fetch_all(&mut *tx)
                .await?;
        release_links(&mut tx, id).await?;
        sqlx::query(
            "UPDATE devices SET owner_id = NULL, name = NULL, acl_version = acl_version + 1,
               disabled = 1, decommissioned_at = $1 WHERE id = $2",
        )
        .bind(ts(now))
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some((
            recorders.iter().filter_map(|r| r.parse().ok()).collect(),
            owner,
        )))
    })
    .await
}

#[cfg(test)]
mod tests {
    use peercam_signal::cm::Role;

    use super::*;
    use crate::store::devices::{self, get, provision, tests::new_device};
    use crate::store::on_both_backends;

    async fn owner(db: &Store, phone: &str) -> i64 {
        crate::store::accounts::create(db, Role::Owner, phone, "h", None, 1)
            .await
            .unwrap()
            .unwrap()
    }

    on_both_backends! {
    #[tokio::test]
    async fn h626_6_2_catalogue_crud(db) {
        let Written::Done(acme) = add_vendor(&db, "Acme", "support@acme.example", 1).await.unwrap() else {
            panic!("vendor")
        };
        assert_eq!(add_vendor(&db, "Acme", "", 1).await.unwrap(), Written::Taken);
        let m = NewModel { vendor_id: acme, name: "m", kind: "pu", ptz: true, audio: false, sd: true };
        let Written::Done(mid) = put_model(&db, None, &m, 1).await.unwrap() else { panic!("model") };
        assert_eq!(put_model(&db, None, &m, 1).await.unwrap(), Written::Taken);
        let mut d = new_device(1);
        d.vendor = "Acme".into();
        provision(&db, &[d.clone()], 1).await.unwrap();
        let got = model_by_name(&db, "Acme", "m").await.unwrap().unwrap();
        assert_eq!((got.id, got.ptz, got.audio, got.sd, got.devices), (mid, true, false, true, 1));
        assert_eq!(remove_model(&db, mid).await.unwrap(), Written::InUse(1));
        assert_eq!(remove_vendor(&db, acme).await.unwrap(), Written::InUse(1));
        // Renames follow onto the devices.
        let renamed = NewModel { name: "m2", ..m };
        assert_eq!(put_model(&db, Some(mid), &renamed, 2).await.unwrap(), Written::Done(mid));
        assert_eq!(update_vendor(&db, acme, "Acme Corp", "").await.unwrap(), Written::Done(acme));
        let dev = get(&db, &d.id).await.unwrap().unwrap();
        assert_eq!((dev.vendor.as_str(), dev.model.as_str()), ("Acme Corp", "m2"));
        assert_eq!(vendors(&db).await.unwrap()[0].models, 1);
        assert_eq!(models(&db).await.unwrap().len(), 1);
        assert_eq!(vendor_by_name(&db, "Acme Corp").await.unwrap().unwrap().id, acme);
        assert!(vendor_by_id(&db, acme + 100).await.unwrap().is_none());
        assert!(model_by_id(&db, mid).await.unwrap().is_some());
        assert_eq!(remove_model(&db, mid + 100).await.unwrap(), Written::Missing);
    }
    }

    on_both_backends! {
    #[tokio::test]
    async fn h626_6_1_1_assign_move_decommission(db) {
        let (a, b) = (owner(&db, "+15550100011").await, owner(&db, "+15550100012").await);
        let d = new_device(2);
        provision(&db, std::slice::from_ref(&d), 1).await.unwrap();
        let acl0 = get(&db, &d.id).await.unwrap().unwrap().acl_version;
        assert_eq!(assign(&db, &d.id, a, Some("door"), true).await.unwrap(), Assigned::Owner(None));
        assert_eq!(assign(&db, &d.id, a, Some("door"), false).await.unwrap(), Assigned::Done);
        assert_eq!(assign(&db, &d.id, b, None, false).await.unwrap(), Assigned::Owner(Some(a)));
        let sub = crate::store::accounts::create(&db, Role::Sub, "kid", "h", Some(a), 1)
            .await
            .unwrap()
            .unwrap();
        crate::store::shares::put(&db, &d.id, sub, peercam_base::ScopeSet::all(), 1)
            .await
            .unwrap();
        assert_eq!(assign(&db, &d.id, b, None, true).await.unwrap(), Assigned::Done);
        let got = get(&db, &d.id).await.unwrap().unwrap();
        assert_eq!((got.owner, got.name, got.acl_version), (Some(b), None, acl0 + 3));
        assert!(crate::store::shares::of_device(&db, &d.id).await.unwrap().is_empty(), "shares revoked");
        let (recorders, old) = decommission(&db, &d.id, 99).await.unwrap().unwrap();
        assert_eq!((recorders.len(), old), (0, Some(b)));
        assert!(decommission(&db, &d.id, 100).await.unwrap().is_none(), "once");
        let got = get(&db, &d.id).await.unwrap().unwrap();
        assert_eq!((got.owner, got.disabled, got.decommissioned_at), (None, true, Some(99)));
        assert_eq!(State::of(&got), State::Decommissioned);
        assert_eq!(assign(&db, &d.id, a, None, false).await.unwrap(), Assigned::Decommissioned);
        assert_eq!(assign(&db, &new_device(9).id, a, None, false).await.unwrap(), Assigned::Missing);
    }
    }

    on_both_backends! {
    #[tokio::test]
    async fn h626_6_2_search_filters_and_pages(db) {
        let a = owner(&db, "+15550100013").await;
        let mut all = Vec::new();
        for n in 0..30u8 {
            let mut d = new_device(n + 20);
            d.model = if n % 3 == 0 { "dome".into() } else { "bullet_1".into() };
            d.name = (n == 7).then(|| "Front Door".into());
            d.owner = (n % 2 == 0).then_some(a);
            all.push(d);
        }
        provision(&db, &all, 1).await.unwrap();
        decommission(&db, &all[1].id, 5).await.unwrap().unwrap();
        let page = |s: Search| {
            let db = db.clone();
            async move {
                let p = search(&db, &s).await.unwrap();
                assert!(!p.capped);
                (p.devices, p.total)
            }
        };
        let (p, total) = page(Search { limit: 7, ..Search::default() }).await;
        assert_eq!((p.len(), total), (7, 30));
        let (p2, _) = page(Search { limit: 100, after: Some(p[6].id.to_string()), ..Search::default() }).await;
        assert_eq!(p2.len(), 23);
        assert!(p2[0].id > p[6].id);
        let (_, t) = page(Search { model: Some("dome".into()), limit: 5, ..Search::default() }).await;
        assert_eq!(t, 10);
        let (p, t) = page(Search { q: Some("front d".into()), limit: 5, ..Search::default() }).await;
        assert_eq!((t, p[0].id.clone()), (1, all[7].id.clone()));
        let (_, t) = page(Search { q: Some("_1".into()), limit: 5, ..Search::default() }).await;
        assert_eq!(t, 20, "`_` is not a wildcard");
        let (_, t) = page(Search { q: Some("%".into()), limit: 5, ..Search::default() }).await;
        assert_eq!(t, 0);
        let (_, t) = page(Search { owner: Some(a), model: Some("dome".into()), limit: 5, ..Search::default() }).await;
        assert_eq!(t, 5);
        let (_, t) = page(Search { state: Some(State::Assigned), limit: 5, ..Search::default() }).await;
        assert_eq!(t, 15);
        let (_, t) = page(Search { state: Some(State::Unassigned), limit: 5, ..Search::default() }).await;
        assert_eq!(t, 14);
        let (_, t) = page(Search { state: Some(State::Decommissioned), vendor: Some("v".into()), limit: 5, ..Search::default() }).await;
        assert_eq!(t, 1);
        let (_, t) = page(Search { online: Some(true), limit: 5, ..Search::default() }).await;
        assert_eq!(t, 0);
        let (_, t) = page(Search { online: Some(false), limit: 5, ..Search::default() }).await;
        assert_eq!(t, 30);
        assert_eq!(devices::all(&db).await.unwrap().len(), 30);
    }
    }

    on_both_backends! {
    /// Issue 18: the text index follows every change of a device's id, name, vendor and
    /// model; short, quoted and mixed-case queries; online through the presence table; the
    /// capped count.
    #[tokio::test]
    async fn h626_6_2_search_index_follows_changes(db) {
        let a = owner(&db, "+15550100014").await;
        let mut all = Vec::new();
        for n in 0..12u8 {
            let mut d = new_device(n + 60);
            d.vendor = if n < 4 { "Acme \"Pro\"".into() } else { "Other".into() };
            all.push(d);
        }
        provision(&db, &all, 1).await.unwrap();
        if db.backend() == crate::store::Backend::Postgres {
            // The test cluster ships pg_trgm (Debian's postgresql package): the migration
            // made the GIN indexes (where it cannot, the search is the same, row by row).
            let trgm: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_indexes WHERE indexname LIKE 'devices_search_%_trgm'",
            )
            .fetch_one(db.pool())
            .await
            .unwrap();
            assert_eq!(trgm, 4);
        }
        let q = |text: &str| Search { q: Some(text.into()), limit: 50, ..Search::default() };
        let ids = |p: Page| p.devices.into_iter().map(|d| d.id).collect::<Vec<_>>();
        assert!(ids(search(&db, &q("garden")).await.unwrap()).is_empty());
        assert_eq!(assign(&db, &all[5].id, a, Some("Back Garden"), false).await.unwrap(), Assigned::Done);
        assert_eq!(ids(search(&db, &q("gARDen")).await.unwrap()), vec![all[5].id.clone()]);
        // Renamed by a move: the old name is gone from the index.
        assert_eq!(assign(&db, &all[5].id, owner(&db, "+15550100015").await, Some("Porch"), true).await.unwrap(), Assigned::Done);
        assert!(ids(search(&db, &q("garden")).await.unwrap()).is_empty());
        assert_eq!(search(&db, &q("porch")).await.unwrap().total, 1);
        assert_eq!(search(&db, &q("\"pro\"")).await.unwrap().total, 4, "quotes are plain");
        assert_eq!(search(&db, &q("me \"p")).await.unwrap().total, 4);
        assert_eq!(search(&db, &q("po")).await.unwrap().total, 1, "two characters: row by row");
        let Written::Done(v) = add_vendor(&db, "Other", "", 1).await.unwrap() else { panic!("vendor") };
        assert_eq!(update_vendor(&db, v, "Zeta", "").await.unwrap(), Written::Done(v));
        assert_eq!(search(&db, &q("zeta")).await.unwrap().total, 8);
        assert_eq!(search(&db, &q("other")).await.unwrap().total, 0);
        let fragment = &all[9].id.as_str()[4..10];
        assert!(ids(search(&db, &q(fragment)).await.unwrap()).contains(&all[9].id));
        // Many text matches: the page is read in id order row by row, with the same answer
        // as through the trigram index, on every page.
        for text in ["zeta", "ZET", "\"pro\"", "me \"p", "porch", fragment, "nothing"] {
            let mut s = Search { q: Some(text.into()), limit: 3, ..Search::default() };
            loop {
                let by_index = search_capped(&db, &s, TOTAL_CAP, i64::MAX).await.unwrap();
                let by_row = search_capped(&db, &s, TOTAL_CAP, 0).await.unwrap();
                assert_eq!(by_index.total, by_row.total, "{text}");
                let page = ids(by_index);
                assert_eq!(page, ids(by_row), "{text}");
                match page.last() {
                    Some(last) if page.len() == 3 => s.after = Some(last.as_str().into()),
                    _ => break,
                }
            }
        }
        // Online: the devices with a presence row.
        sqlx::query(
            "INSERT INTO device_presence (device_id, node, session, link, instance, updated_ms)
             VALUES ($1, 'n', 's', 'l', 'i', 1)",
        )
        .bind(all[3].id.as_str())
        .execute(db.pool())
        .await
        .unwrap();
        let online = |on: bool| Search { online: Some(on), limit: 50, ..Search::default() };
        assert_eq!(ids(search(&db, &online(true)).await.unwrap()), vec![all[3].id.clone()]);
        assert_eq!(search(&db, &online(false)).await.unwrap().total, 11);
        // Past the cap: the cap, marked.
        let s = Search { vendor: Some("Zeta".into()), limit: 3, ..Search::default() };
        let p = search_capped(&db, &s, 5, DENSE_TEXT).await.unwrap();
        assert_eq!((p.devices.len(), p.total, p.capped), (3, 5, true));
        let p = search_capped(&db, &s, 8, DENSE_TEXT).await.unwrap();
        assert_eq!((p.total, p.capped), (8, false));
        let s = Search { state: Some(State::Assigned), vendor: Some("Zeta".into()), limit: 3, ..Search::default() };
        assert_eq!(search(&db, &s).await.unwrap().total, 1);
        // Deleted devices leave the index.
        sqlx::query("DELETE FROM devices WHERE id = $1")
            .bind(all[0].id.as_str())
            .execute(db.pool())
            .await
            .unwrap();
        assert_eq!(search(&db, &q("pro")).await.unwrap().total, 3);
    }
    }
}
