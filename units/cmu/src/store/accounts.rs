//! Accounts (H.626.4 6.1.1, 6.1.10): owners, sub-accounts, the operator, and the sign-ups
//! waiting for their SMS code.

use peercam_signal::cm::{AccountStatus, Role};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Arg, Store, StoreError, begin_write, retry, select, ts, unts};

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) id: i64,
    pub(crate) role: Role,
    /// Phone number (owners), username (sub-accounts) or `admin` (the operator).
    pub(crate) login: String,
    pub(crate) status: AccountStatus,
    /// The owner of a sub-account.
    pub(crate) parent: Option<i64>,
    pub(crate) created_at: u64,
    /// The name given at sign-up (6.2 CRM).
    pub(crate) name: Option<String>,
    /// The contract id given at sign-up (6.2 CRM).
    pub(crate) contract_id: Option<String>,
    /// Why the CRM refused the account (or what it last said while pending).
    pub(crate) crm_note: Option<String>,
    /// Whether sign-in asks for a TOTP code.
    pub(crate) totp: bool,
}

/// A sign-up waiting for its SMS code (6.1.1).
#[derive(Debug, Clone)]
pub(crate) struct PendingSignup {
    pub(crate) code_hash: String,
    pub(crate) password_hash: String,
    pub(crate) expires_at: u64,
    pub(crate) attempts: u32,
    /// The subscriber's name and contract id, for the CRM (6.2).
    pub(crate) name: Option<String>,
    pub(crate) contract_id: Option<String>,
}

fn role_str(r: Role) -> &'static str {
    match r {
        Role::Operator => "operator",
        Role::Sub => "sub",
        _ => "owner",
    }
}

fn parse_role(s: &str) -> Role {
    match s {
        "operator" => Role::Operator,
        "sub" => Role::Sub,
        _ => Role::Owner,
    }
}

fn status_str(s: AccountStatus) -> &'static str {
    match s {
        AccountStatus::Active => "active",
        AccountStatus::PendingApproval => "pending_approval",
        // Not stored as such: `crm_state = 'pending'` of an account pending approval.
        AccountStatus::PendingCrm => "pending_crm",
        // Never stored: a sign-up waiting for its code is not an account yet.
        AccountStatus::PendingCode => "pending_code",
        _ => "disabled",
    }
}

fn parse_status(s: &str) -> AccountStatus {
    match s {
        "active" => AccountStatus::Active,
        "pending_approval" => AccountStatus::PendingApproval,
        "pending_crm" => AccountStatus::PendingCrm,
        _ => AccountStatus::Disabled,
    }
}

/// The status as the API shows it: an account waiting for the CRM (6.2) is `pending_crm`.
const STATUS: &str = "(CASE WHEN crm_state = 'pending' THEN 'pending_crm' ELSE status END)";

const COLUMNS: &str = "id, role, login, (CASE WHEN crm_state = 'pending' THEN 'pending_crm' ELSE status END) AS status, \
     parent_id, created_at, name, contract_id, crm_note, \
     CAST(CASE WHEN totp_secret IS NULL THEN 0 ELSE 1 END AS BIGINT) AS totp";

fn account(row: &AnyRow) -> Result<Account, sqlx::Error> {
    Ok(Account {
        id: row.try_get("id")?,
        role: parse_role(&row.try_get::<String, _>("role")?),
        login: row.try_get("login")?,
        status: parse_status(&row.try_get::<String, _>("status")?),
        parent: row.try_get("parent_id")?,
        created_at: unts(row.try_get("created_at")?),
        name: row.try_get("name")?,
        contract_id: row.try_get("contract_id")?,
        crm_note: row.try_get("crm_note")?,
        totp: row.try_get::<i64, _>("totp")? != 0,
    })
}

/// The account with this id.
pub(crate) async fn get(db: &Store, id: i64) -> Result<Option<Account>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    Ok(select(db, &sql, &[Arg::Int(id)], account).await?.pop())
}

/// The account with this login (normalised by the caller) and its password hash.
pub(crate) async fn with_password(
    db: &Store,
    login: &str,
) -> Result<Option<(Account, String)>, StoreError> {
    let sql = format!("SELECT {COLUMNS}, password_hash FROM users WHERE login = $1");
    retry(|| async {
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(login)
            .fetch_optional(db.pool())
            .await?
        else {
            return Ok(None);
        };
        Ok(Some((account(&row)?, row.try_get("password_hash")?)))
    })
    .await
}

/// The id of the account with this login.
pub(crate) async fn id_by_login(db: &Store, login: &str) -> Result<Option<i64>, StoreError> {
    retry(|| async {
        sqlx::query_scalar("SELECT id FROM users WHERE login = $1")
            .bind(login)
            .fetch_optional(db.pool())
            .await
    })
    .await
}

/// The password hash of an account.
pub(crate) async fn password_hash(db: &Store, id: i64) -> Result<Option<String>, StoreError> {
    retry(|| async {
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(db.pool())
            .await
    })
    .await
}

/// Sets a new password hash and ends every session of the account but `keep` (a session
/// token digest; empty keeps none).
pub(crate) async fn set_password(
    db: &Store,
    id: i64,
    hash: &str,
    keep: &str,
) -> Result<(), StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
            .bind(id)
            .bind(keep)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    })
    .await
}

/// 6.2 (issue 18 item 2): accounts whose login, name or contract id contains `q` (any
/// case), with `status`, of id above `after`, by id, at most `limit`.
pub(crate) async fn search(
    db: &Store,
    q: Option<&str>,
    status: Option<AccountStatus>,
    after: i64,
    limit: u32,
) -> Result<Vec<Account>, StoreError> {
    let pattern = q.map(|q| {
        let escaped = q
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    let sql = format!(
        "SELECT {COLUMNS} FROM users WHERE ($1 IS NULL OR {STATUS} = $1) AND ($2 IS NULL \
         OR LOWER(login) LIKE $2 ESCAPE '\\' OR LOWER(COALESCE(name, '')) LIKE $2 ESCAPE '\\' \
         OR LOWER(COALESCE(contract_id, '')) LIKE $2 ESCAPE '\\') AND id > $3 ORDER BY id LIMIT $4"
    );
    select(
        db,
        &sql,
        &[
            Arg::MaybeText(status.map(status_str)),
            Arg::MaybeText(pattern.as_deref()),
            Arg::Int(after),
            Arg::Int(i64::from(limit)),
        ],
        account,
    )
    .await
}

/// 6.1.1: the operator approves an owner waiting for approval; false if there is none.
pub(crate) async fn approve(db: &Store, id: i64) -> Result<bool, StoreError> {
    retry(|| async {
        let r = sqlx::query(
            "UPDATE users SET status = 'active' WHERE id = $1 AND role = 'owner' AND status = 'pending_approval'
             AND (crm_state IS NULL OR crm_state <> 'pending')",
        )
        .bind(id)
        .execute(db.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    })
    .await
}

/// Disables an account and ends its sessions and its sub-accounts' sessions; false if there
/// is no such account.
pub(crate) async fn disable(db: &Store, id: i64) -> Result<bool, StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        let r = sqlx::query("UPDATE users SET status = 'disabled' WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM sessions WHERE user_id = $1 OR user_id IN (SELECT id FROM users WHERE parent_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    })
    .await
}

/// The sub-accounts of `owner`, by username.
pub(crate) async fn children(db: &Store, owner: i64) -> Result<Vec<Account>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE parent_id = $1 ORDER BY login");
    select(db, &sql, &[Arg::Int(owner)], account).await
}

/// The id of `owner`'s sub-account `username`.
pub(crate) async fn subaccount_id(
    db: &Store,
    owner: i64,
    username: &str,
) -> Result<Option<i64>, StoreError> {
    retry(|| async {
        sqlx::query_scalar(
            "SELECT id FROM users WHERE login = $1 AND role = 'sub' AND parent_id = $2",
        )
        .bind(username)
        .bind(owner)
        .fetch_optional(db.pool())
        .await
    })
    .await
}

/// Creates an active account of `role`; `None` if the login is taken.
pub(crate) async fn create(
    db: &Store,
    role: Role,
    login: &str,
    password_hash: &str,
    parent: Option<i64>,
    now: u64,
) -> Result<Option<i64>, StoreError> {
    retry(|| async {
        sqlx::query_scalar(
            "INSERT INTO users (role, login, password_hash, status, parent_id, created_at)
             VALUES ($1, $2, $3, 'active', $4, $5) ON CONFLICT (login) DO NOTHING RETURNING id",
        )
        .bind(role_str(role))
        .bind(login)
        .bind(password_hash)
        .bind(parent)
        .bind(ts(now))
        .fetch_optional(db.pool())
        .await
    })
    .await
}

/// Deletes an account (its sessions and shares go with it).
pub(crate) async fn delete(db: &Store, id: i64) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(db.pool())
            .await
            .map(drop)
    })
    .await
}

/// Whether an operator account exists.
pub(crate) async fn operator_exists(db: &Store) -> Result<bool, StoreError> {
    retry(|| async {
        let id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM users WHERE role = 'operator' LIMIT 1")
                .fetch_optional(db.pool())
                .await?;
        Ok(id.is_some())
    })
    .await
}

/// 6.1.1: stores (or replaces) the pending sign-up of `phone`, with the name and contract id
/// given for the CRM (6.2).
pub(crate) async fn put_signup(
    db: &Store,
    phone: &str,
    code_hash: &str,
    password_hash: &str,
    expires_at: u64,
    (name, contract_id): (Option<&str>, Option<&str>),
) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query(
            "INSERT INTO signup_codes (phone, code_hash, password_hash, expires_at, attempts, name, contract_id)
             VALUES ($1, $2, $3, $4, 0, $5, $6)
             ON CONFLICT (phone) DO UPDATE SET code_hash = excluded.code_hash, password_hash = excluded.password_hash,
             expires_at = excluded.expires_at, attempts = 0, name = excluded.name, contract_id = excluded.contract_id",
        )
        .bind(phone)
        .bind(code_hash)
        .bind(password_hash)
        .bind(ts(expires_at))
        .bind(name)
        .bind(contract_id)
        .execute(db.pool())
        .await
        .map(drop)
    })
    .await
}

/// The pending sign-up of `phone`.
pub(crate) async fn signup(db: &Store, phone: &str) -> Result<Option<PendingSignup>, StoreError> {
    retry(|| async {
        let Some(row) = sqlx::query(
            "SELECT code_hash, password_hash, expires_at, attempts, name, contract_id FROM signup_codes WHERE phone = $1",
        )
        .bind(phone)
        .fetch_optional(db.pool())
        .await?
        else {
            return Ok(None);
        };
        Ok(Some(PendingSignup {
            code_hash: row.try_get(0)?,
            password_hash: row.try_get(1)?,
            expires_at: unts(row.try_get(2)?),
            attempts: u32::try_from(row.try_get::<i64, _>(3)?).unwrap_or(u32::MAX),
            name: row.try_get(4)?,
            contract_id: row.try_get(5)?,
        }))
    })
    .await
}

/// Forgets the pending sign-up of `phone`.
pub(crate) async fn drop_signup(db: &Store, phone: &str) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query("DELETE FROM signup_codes WHERE phone = $1")
            .bind(phone)
            .execute(db.pool())
            .await
            .map(drop)
    })
    .await
}

/// Counts one wrong code for the pending sign-up of `phone`.
pub(crate) async fn signup_failed(db: &Store, phone: &str) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query("UPDATE signup_codes SET attempts = attempts + 1 WHERE phone = $1")
            .bind(phone)
            .execute(db.pool())
            .await
            .map(drop)
    })
    .await
}

/// 6.1.1: the code was right: the pending sign-up becomes an owner account waiting for
/// approval, in one transaction; `crm_pending` (6.2) marks it waiting for the CRM first.
/// `None` if the phone number has an account already.
pub(crate) async fn confirm_signup(
    db: &Store,
    phone: &str,
    pending: &PendingSignup,
    crm_pending: bool,
    now: u64,
) -> Result<Option<i64>, StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        sqlx::query("DELETE FROM signup_codes WHERE phone = $1")
            .bind(phone)
            .execute(&mut *tx)
            .await?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO users (role, login, password_hash, status, created_at, name, contract_id, crm_state)
             VALUES ('owner', $1, $2, 'pending_approval', $3, $4, $5, $6) ON CONFLICT (login) DO NOTHING
             RETURNING id",
        )
        .bind(phone)
        .bind(&pending.password_hash)
        .bind(ts(now))
        .bind(pending.name.as_deref())
        .bind(pending.contract_id.as_deref())
        .bind(crm_pending.then_some("pending"))
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    })
    .await
}

async fn exec(db: &Store, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
    retry(|| async {
        let mut q = sqlx::query(sql);
        for a in args {
            q = match *a {
                Arg::Text(s) => q.bind(s),
                Arg::Int(i) => q.bind(i),
                Arg::MaybeText(s) => q.bind(s),
            };
        }
        Ok(q.execute(db.pool()).await?.rows_affected())
    })
    .await
}

/// 6.2: the CRM accepted an account waiting for it: it now waits for the operator.
pub(crate) async fn crm_passed(db: &Store, id: i64) -> Result<bool, StoreError> {
    let sql = "UPDATE users SET crm_state = NULL, crm_note = NULL WHERE id = $1 AND crm_state = 'pending'";
    Ok(exec(db, sql, &[Arg::Int(id)]).await? == 1)
}

/// 6.2: notes what the CRM last said (or why it did not answer) of an account waiting for it.
pub(crate) async fn crm_note(db: &Store, id: i64, note: &str) -> Result<(), StoreError> {
    let sql = "UPDATE users SET crm_note = $1 WHERE id = $2 AND crm_state = 'pending'";
    exec(db, sql, &[Arg::Text(note), Arg::Int(id)])
        .await
        .map(drop)
}

/// 6.2: the CRM refused an account waiting for it: disabled, with the reason kept.
pub(crate) async fn crm_refused(db: &Store, id: i64, reason: &str) -> Result<bool, StoreError> {
    let sql = "UPDATE users SET status = 'disabled', crm_state = 'refused', crm_note = $1 WHERE id = $2 AND crm_state = 'pending'";
    Ok(exec(db, sql, &[Arg::Text(reason), Arg::Int(id)]).await? == 1)
}

/// Issue 18 item 2: the operator enables a disabled account again (a CRM refusal is
/// overridden); false if it is not disabled.
pub(crate) async fn enable(db: &Store, id: i64) -> Result<bool, StoreError> {
    let sql = "UPDATE users SET status = 'active', crm_state = NULL, crm_note = NULL WHERE id = $1 AND status = 'disabled'";
    Ok(exec(db, sql, &[Arg::Int(id)]).await? == 1)
}

/// TOTP enrolment, first step: the secret waiting for its first code.
pub(crate) async fn totp_begin(db: &Store, id: i64, secret: &str) -> Result<(), StoreError> {
    let sql = "UPDATE users SET totp_pending = $1 WHERE id = $2";
    exec(db, sql, &[Arg::Text(secret), Arg::Int(id)])
        .await
        .map(drop)
}

/// The account's TOTP secrets: (enabled one, pending one, last step used).
pub(crate) async fn totp(
    db: &Store,
    id: i64,
) -> Result<Option<(Option<String>, Option<String>, u64)>, StoreError> {
    retry(|| async {
        let Some(row) = sqlx::query(
            "SELECT totp_secret, totp_pending, totp_last_step FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        else {
            return Ok(None);
        };
        Ok(Some((
            row.try_get(0)?,
            row.try_get(1)?,
            unts(row.try_get(2)?),
        )))
    })
    .await
}

/// Uses TOTP time step `step` (RFC 6238): false if it or a later one was used already (a
/// replayed code).
pub(crate) async fn totp_use_step(db: &Store, id: i64, step: u64) -> Result<bool, StoreError> {
    let sql = "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1";
    Ok(exec(db, sql, &[Arg::Int(ts(step)), Arg::Int(id)]).await? == 1)
}

/// TOTP enrolment confirmed: the pending secret becomes the secret, `step` is used, and
/// the recovery codes (digests) replace any earlier ones.
pub(crate) async fn totp_enable(
    db: &Store,
    id: i64,
    step: u64,
    recovery: &[String],
) -> Result<bool, StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        let r = sqlx::query(
            "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = $1
             WHERE id = $2 AND totp_pending IS NOT NULL",
        )
        .bind(ts(step))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM totp_recovery WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for h in recovery {
            sqlx::query("INSERT INTO totp_recovery (user_id, code_hash) VALUES ($1, $2)")
                .bind(id)
                .bind(h.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    })
    .await
}

/// Turns TOTP off and forgets its secret and recovery codes.
pub(crate) async fn totp_disable(db: &Store, id: i64) -> Result<(), StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        sqlx::query(
            "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = 0 WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM totp_recovery WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    })
    .await
}

/// Uses a recovery code (by digest); false if the account has no such unused code.
pub(crate) async fn recovery_use(db: &Store, id: i64, digest: &str) -> Result<bool, StoreError> {
    let sql = "DELETE FROM totp_recovery WHERE user_id = $1 AND code_hash = $2";
    Ok(exec(db, sql, &[Arg::Int(id), Arg::Text(digest)]).await? == 1)
}

/// Unused recovery codes of the account.
pub(crate) async fn recovery_left(db: &Store, id: i64) -> Result<u32, StoreError> {
    retry(|| async {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM totp_recovery WHERE user_id = $1")
            .bind(id)
            .fetch_one(db.pool())
            .await?;
        Ok(u32::try_from(n).unwrap_or(0))
    })
    .await
}

/// A password reset by SMS (issue 18 item 2): the code's digest, its expiry, wrong tries.
pub(crate) async fn put_reset(
    db: &Store,
    id: i64,
    code_hash: &str,
    expires_at: u64,
) -> Result<(), StoreError> {
    let sql = "INSERT INTO password_resets (user_id, code_hash, expires_at, attempts) VALUES ($1, $2, $3, 0)
         ON CONFLICT (user_id) DO UPDATE SET code_hash = excluded.code_hash, expires_at = excluded.expires_at, attempts = 0";
    exec(
        db,
        sql,
        &[Arg::Int(id), Arg::Text(code_hash), Arg::Int(ts(expires_at))],
    )
    .await
    .map(drop)
}

/// The pending password reset of the account: (code digest, expiry, wrong tries).
pub(crate) async fn reset(db: &Store, id: i64) -> Result<Option<(String, u64, u32)>, StoreError> {
    retry(|| async {
        let Some(row) = sqlx::query(
            "SELECT code_hash, expires_at, attempts FROM password_resets WHERE user_id = $1",
        )
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        else {
            return Ok(None);
        };
        Ok(Some((
            row.try_get(0)?,
            unts(row.try_get(1)?),
            u32::try_from(row.try_get::<i64, _>(2)?).unwrap_or(u32::MAX),
        )))
    })
    .await
}

/// Counts a wrong reset code.
pub(crate) async fn reset_failed(db: &Store, id: i64) -> Result<(), StoreError> {
    let sql = "UPDATE password_resets SET attempts = attempts + 1 WHERE user_id = $1";
    exec(db, sql, &[Arg::Int(id)]).await.map(drop)
}

/// Forgets the account's password reset.
pub(crate) async fn drop_reset(db: &Store, id: i64) -> Result<(), StoreError> {
    let sql = "DELETE FROM password_resets WHERE user_id = $1";
    exec(db, sql, &[Arg::Int(id)]).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;

    on_both_backends! {
    #[tokio::test]
    async fn signup_confirm_approve_disable(db) {
        put_signup(&db, "+15550100001", "c", "h", 100, (Some("Ann"), None))
            .await
            .unwrap();
        let p = signup(&db, "+15550100001").await.unwrap().unwrap();
        assert_eq!(
            (p.code_hash.as_str(), p.attempts, p.expires_at),
            ("c", 0, 100)
        );
        signup_failed(&db, "+15550100001").await.unwrap();
        assert_eq!(
            signup(&db, "+15550100001").await.unwrap().unwrap().attempts,
            1
        );
        assert_eq!(p.name.as_deref(), Some("Ann"));
        let id = confirm_signup(&db, "+15550100001", &p, false, 5)
            .await
            .unwrap()
            .unwrap();
        assert!(signup(&db, "+15550100001").await.unwrap().is_none());
        assert_eq!(
            confirm_signup(&db, "+15550100001", &p, false, 5).await.unwrap(),
            None
        );
        let a = get(&db, id).await.unwrap().unwrap();
        assert_eq!(
            (a.role, a.status, a.created_at),
            (Role::Owner, AccountStatus::PendingApproval, 5)
        );
        assert_eq!(id_by_login(&db, "+15550100001").await.unwrap(), Some(id));
        assert_eq!(
            search(&db, None, Some(AccountStatus::PendingApproval), 0, 10)
                .await
                .unwrap(),
            vec![a]
        );
        assert!(crm_passed(&db, id).await.is_ok());
        assert!(approve(&db, id).await.unwrap());
        assert!(!approve(&db, id).await.unwrap());
        let (a, hash) = with_password(&db, "+15550100001").await.unwrap().unwrap();
        assert_eq!((a.status, hash.as_str()), (AccountStatus::Active, "h"));
        assert!(disable(&db, id).await.unwrap());
        assert!(!disable(&db, 999).await.unwrap());
        assert_eq!(
            get(&db, id).await.unwrap().unwrap().status,
            AccountStatus::Disabled
        );
    }
    }

    on_both_backends! {
    #[tokio::test]
    async fn subaccounts_and_passwords(db) {
        assert!(!operator_exists(&db).await.unwrap());
        create(&db, Role::Operator, "admin", "x", None, 1)
            .await
            .unwrap()
            .unwrap();
        assert!(operator_exists(&db).await.unwrap());
        let owner = create(&db, Role::Owner, "+15550100002", "h", None, 1)
            .await
            .unwrap()
            .unwrap();
        let sub = create(&db, Role::Sub, "kid", "h2", Some(owner), 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            create(&db, Role::Sub, "kid", "h3", Some(owner), 2)
                .await
                .unwrap(),
            None
        );
        assert_eq!(subaccount_id(&db, owner, "kid").await.unwrap(), Some(sub));
        assert_eq!(subaccount_id(&db, sub, "kid").await.unwrap(), None);
        let kids = children(&db, owner).await.unwrap();
        assert_eq!((kids.len(), kids[0].parent), (1, Some(owner)));
        set_password(&db, sub, "new", "").await.unwrap();
        assert_eq!(
            password_hash(&db, sub).await.unwrap().as_deref(),
            Some("new")
        );
        delete(&db, sub).await.unwrap();
        assert!(get(&db, sub).await.unwrap().is_none());
    }
    }

    on_both_backends! {
    #[tokio::test]
    async fn h626_6_2_search_crm_states_totp_and_resets(db) {
        put_signup(&db, "+15550100011", "c", "h", 100, (Some("Zoë Smith"), Some("K-100_%")))
            .await
            .unwrap();
        let p = signup(&db, "+15550100011").await.unwrap().unwrap();
        let waiting = confirm_signup(&db, "+15550100011", &p, true, 5).await.unwrap().unwrap();
        let other = create(&db, Role::Owner, "+15550100012", "h", None, 6).await.unwrap().unwrap();
        let a = get(&db, waiting).await.unwrap().unwrap();
        assert_eq!((a.status, a.name.as_deref(), a.totp), (AccountStatus::PendingCrm, Some("Zoë Smith"), false));
        assert!(!approve(&db, waiting).await.unwrap(), "not before the CRM");
        let ids = |v: Vec<Account>| v.into_iter().map(|a| a.id).collect::<Vec<_>>();
        assert_eq!(ids(search(&db, Some("SMITH"), None, 0, 10).await.unwrap()), vec![waiting]);
        assert_eq!(ids(search(&db, Some("k-100_%"), None, 0, 10).await.unwrap()), vec![waiting]);
        assert_eq!(ids(search(&db, Some("_"), None, 0, 10).await.unwrap()), vec![waiting], "_ is literal");
        assert_eq!(ids(search(&db, Some("5550100"), None, 0, 1).await.unwrap()), vec![waiting]);
        assert_eq!(ids(search(&db, Some("5550100"), None, waiting, 1).await.unwrap()), vec![other]);
        assert_eq!(ids(search(&db, None, Some(AccountStatus::PendingCrm), 0, 10).await.unwrap()), vec![waiting]);
        crm_note(&db, waiting, "down").await.unwrap();
        assert!(crm_refused(&db, waiting, "no contract").await.unwrap());
        let a = get(&db, waiting).await.unwrap().unwrap();
        assert_eq!((a.status, a.crm_note.as_deref()), (AccountStatus::Disabled, Some("no contract")));
        assert!(enable(&db, waiting).await.unwrap());
        assert!(!enable(&db, waiting).await.unwrap());
        assert_eq!(get(&db, waiting).await.unwrap().unwrap().status, AccountStatus::Active);

        totp_begin(&db, other, "SECRET").await.unwrap();
        assert_eq!(totp(&db, other).await.unwrap(), Some((None, Some("SECRET".into()), 0)));
        assert!(totp_enable(&db, other, 7, &["r1".into(), "r2".into()]).await.unwrap());
        assert!(get(&db, other).await.unwrap().unwrap().totp);
        assert!(!totp_use_step(&db, other, 7).await.unwrap(), "replay");
        assert!(totp_use_step(&db, other, 8).await.unwrap());
        assert!(recovery_use(&db, other, "r1").await.unwrap());
        assert!(!recovery_use(&db, other, "r1").await.unwrap());
        assert_eq!(recovery_left(&db, other).await.unwrap(), 1);
        totp_disable(&db, other).await.unwrap();
        assert_eq!(totp(&db, other).await.unwrap(), Some((None, None, 0)));

        put_reset(&db, other, "d", 50).await.unwrap();
        reset_failed(&db, other).await.unwrap();
        assert_eq!(reset(&db, other).await.unwrap(), Some(("d".into(), 50, 1)));
        drop_reset(&db, other).await.unwrap();
        assert_eq!(reset(&db, other).await.unwrap(), None);
    }
    }
}
