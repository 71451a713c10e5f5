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
}

/// A sign-up waiting for its SMS code (6.1.1).
#[derive(Debug, Clone)]
pub(crate) struct PendingSignup {
    pub(crate) code_hash: String,
    pub(crate) password_hash: String,
    pub(crate) expires_at: u64,
    pub(crate) attempts: u32,
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
        // Never stored: a sign-up waiting for its code is not an account yet.
        AccountStatus::PendingCode => "pending_code",
        _ => "disabled",
    }
}

fn parse_status(s: &str) -> AccountStatus {
    match s {
        "active" => AccountStatus::Active,
        "pending_approval" => AccountStatus::PendingApproval,
        _ => AccountStatus::Disabled,
    }
}

const COLUMNS: &str = "id, role, login, status, parent_id, created_at";

fn account(row: &AnyRow) -> Result<Account, sqlx::Error> {
    Ok(Account {
        id: row.try_get("id")?,
        role: parse_role(&row.try_get::<String, _>("role")?),
        login: row.try_get("login")?,
        status: parse_status(&row.try_get::<String, _>("status")?),
        parent: row.try_get("parent_id")?,
        created_at: unts(row.try_get("created_at")?),
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

/// Every account, or those with `status`, by id.
pub(crate) async fn list(
    db: &Store,
    status: Option<AccountStatus>,
) -> Result<Vec<Account>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE ($1 IS NULL OR status = $1) ORDER BY id");
    select(db, &sql, &[Arg::MaybeText(status.map(status_str))], account).await
}

/// 6.1.1: the operator approves an owner waiting for approval; false if there is none.
pub(crate) async fn approve(db: &Store, id: i64) -> Result<bool, StoreError> {
    retry(|| async {
        let r = sqlx::query(
            "UPDATE users SET status = 'active' WHERE id = $1 AND role = 'owner' AND status = 'pending_approval'",
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

/// 6.1.1: stores (or replaces) the pending sign-up of `phone`.
pub(crate) async fn put_signup(
    db: &Store,
    phone: &str,
    code_hash: &str,
    password_hash: &str,
    expires_at: u64,
) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query(
            "INSERT INTO signup_codes (phone, code_hash, password_hash, expires_at, attempts) VALUES ($1, $2, $3, $4, 0)
             ON CONFLICT (phone) DO UPDATE SET code_hash = excluded.code_hash, password_hash = excluded.password_hash,
             expires_at = excluded.expires_at, attempts = 0",
        )
        .bind(phone)
        .bind(code_hash)
        .bind(password_hash)
        .bind(ts(expires_at))
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
            "SELECT code_hash, password_hash, expires_at, attempts FROM signup_codes WHERE phone = $1",
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
/// approval, in one transaction. `None` if the phone number has an account already.
pub(crate) async fn confirm_signup(
    db: &Store,
    phone: &str,
    password_hash: &str,
    now: u64,
) -> Result<Option<i64>, StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        sqlx::query("DELETE FROM signup_codes WHERE phone = $1")
            .bind(phone)
            .execute(&mut *tx)
            .await?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO users (role, login, password_hash, status, created_at)
             VALUES ('owner', $1, $2, 'pending_approval', $3) ON CONFLICT (login) DO NOTHING
             RETURNING id",
        )
        .bind(phone)
        .bind(password_hash)
        .bind(ts(now))
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;

    on_both_backends! {
    #[tokio::test]
    async fn signup_confirm_approve_disable(db) {
        put_signup(&db, "+15550100001", "c", "h", 100)
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
        let id = confirm_signup(&db, "+15550100001", "h", 5)
            .await
            .unwrap()
            .unwrap();
        assert!(signup(&db, "+15550100001").await.unwrap().is_none());
        assert_eq!(
            confirm_signup(&db, "+15550100001", "h", 5).await.unwrap(),
            None
        );
        let a = get(&db, id).await.unwrap().unwrap();
        assert_eq!(
            (a.role, a.status, a.created_at),
            (Role::Owner, AccountStatus::PendingApproval, 5)
        );
        assert_eq!(id_by_login(&db, "+15550100001").await.unwrap(), Some(id));
        assert_eq!(
            list(&db, Some(AccountStatus::PendingApproval))
                .await
                .unwrap(),
            vec![a]
        );
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
}
