//! Accounts, H.626.4 6.1.1: sign-up by phone with an SMS code, operator approval (in
//! [`crate::admin`]), login with throttling, sessions, password changes.
//!
//! HTTP handlers parse and answer; the rules (who may try a password now, is a sign-up code
//! good) are functions of their inputs; the store reads and writes.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{HeaderMap, StatusCode};
use peercam_alarm::AlarmKind;
use peercam_base::Phone;
use peercam_signal::cm::{
    AccountStatus, LoginRequest, LoginResponse, PasswordChange, SignupConfirm, SignupRequest,
    SignupState, UserInfo,
};
use peercam_signal::token::SessionToken;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use peercam_signal::crm::{Stage, VerifyRequest};

use crate::audit::{self, Event};
use crate::auth::{self, Principal};
use crate::crm::Outcome;
use crate::error::{ApiErr, ApiResult};
use crate::json::Json;
use crate::ratelimit::Limits;
use crate::store::{accounts, sessions};
use crate::{Shared, now_s, random_bytes};

/// Wrong sign-up codes allowed before the code is void (6.1.1).
const CODE_ATTEMPTS: u32 = 5;

fn sha_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A random 6-digit code to send by SMS (sign-up, password reset).
pub(crate) fn sms_code() -> String {
    format!("{:06}", u32::from_be_bytes(random_bytes::<4>()) % 1_000_000)
}

fn phone(text: &str) -> ApiResult<Phone> {
    text.parse()
        .map_err(|e: peercam_base::IdError| ApiErr::bad_request("bad_phone", e.to_string()))
}

pub(crate) fn user_info(a: accounts::Account) -> UserInfo {
    UserInfo {
        id: a.id,
        role: a.role,
        login: a.login,
        status: a.status,
        parent: a.parent,
    }
}

/// The bearer token of the request, if well formed.
fn bearer(headers: &HeaderMap) -> Option<SessionToken> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|v| SessionToken::parse(v.trim()).ok())
}

/// `POST /api/v1/signup`: 6.1.1, a code by SMS to the number.
pub(crate) async fn signup(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(req): Json<SignupRequest>,
) -> ApiResult<axum::Json<SignupState>> {
    let phone = phone(&req.phone)?;
    auth::check_new_password(&req.password)?;
    let (name, contract_id) = crm_fields(&req)?;
    // H.626.4 8.9.2: the operator may close sign-up.
    if !crate::settings::platform(&st).await?.1.signup_open {
        return Err(
            ApiErr::forbidden("sign-up is closed on this platform; ask its operator")
                .with_code("signup_closed"),
        );
    }
    // SMS pumping defence: per number and per client address.
    st.limits
        .hit(&format!("sms:{phone}"), 3, Duration::from_secs(600))
        .await
        .map_err(ApiErr::too_many)?;
    st.limits
        .hit(
            &format!("sms-ip:{}", peer.ip()),
            20,
            Duration::from_secs(3600),
        )
        .await
        .map_err(ApiErr::too_many)?;
    if accounts::id_by_login(&st.store, phone.as_str())
        .await?
        .is_some()
    {
        return Err(phone_taken());
    }
    let code = sms_code();
    let password_hash = auth::hash_password(&req.password)?;
    let code_hash = sha_hex(format!("{phone}:{code}").as_bytes());
    let expires_at = now_s() + st.config.signup_code_ttl_s;
    accounts::put_signup(
        &st.store,
        phone.as_str(),
        &code_hash,
        &password_hash,
        expires_at,
        (name.as_deref(), contract_id.as_deref()),
    )
    .await?;
    let text = format!(
        "peercam: your sign-up code is {code}. It expires in {} minutes. Do not share it.",
        st.config.signup_code_ttl_s / 60
    );
    st.sms.send(&phone, &text).await.map_err(|e| {
        tracing::error!(error = %e, "SMS send failed");
        ApiErr::new(
            StatusCode::BAD_GATEWAY,
            "sms_failed",
            "the SMS could not be sent; try again later",
        )
    })?;
    audit::log(&st.store, Event::SignupCodeSent { phone: &phone }).await;
    // Clause 7 accounting: no account exists yet; the platform's own SMS.
    crate::accounting::sms_sent(&st, 0).await;
    Ok(axum::Json(SignupState {
        status: AccountStatus::PendingCode,
        next: "enter the code sent by SMS at /api/v1/signup/confirm".into(),
    }))
}

/// The name and contract id of a sign-up, for the CRM (6.2): trimmed, empty as absent,
/// bounded, no control characters.
fn crm_fields(req: &SignupRequest) -> ApiResult<(Option<String>, Option<String>)> {
    let field = |v: &Option<String>, max: usize, what: &str| -> ApiResult<Option<String>> {
        let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        if v.chars().count() > max || v.chars().any(char::is_control) {
            return Err(ApiErr::bad_request(
                "bad_field",
                format!("{what}: at most {max} characters, no control characters"),
            ));
        }
        Ok(Some(v.to_owned()))
    };
    Ok((
        field(&req.name, 100, "name")?,
        field(&req.contract_id, 64, "contract_id")?,
    ))
}

fn phone_taken() -> ApiErr {
    ApiErr::conflict(
        "phone_taken",
        "an account with this phone number exists; log in instead",
    )
}

/// What a sign-up code is worth (6.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeVerdict {
    /// Right: the account can be created.
    Right,
    /// Wrong; count the attempt.
    Wrong,
    /// Expired or tried too often: the pending sign-up is void.
    Void,
}

/// 6.1.1: judges `given` (as its digest) against the pending sign-up at `now`.
pub(crate) fn judge_code(
    pending: &accounts::PendingSignup,
    given_digest: &str,
    now: u64,
) -> CodeVerdict {
    if pending.expires_at <= now || pending.attempts >= CODE_ATTEMPTS {
        CodeVerdict::Void
    } else if bool::from(given_digest.as_bytes().ct_eq(pending.code_hash.as_bytes())) {
        CodeVerdict::Right
    } else {
        CodeVerdict::Wrong
    }
}

/// `POST /api/v1/signup/confirm`: 6.1.1, the SMS code; the account then waits for approval.
pub(crate) async fn signup_confirm(
    State(st): State<Shared>,
    Json(req): Json<SignupConfirm>,
) -> ApiResult<axum::Json<SignupState>> {
    let phone = phone(&req.phone)?;
    let pending = accounts::signup(&st.store, phone.as_str())
        .await?
        .ok_or_else(|| {
            ApiErr::bad_request(
                "no_pending_signup",
                "no sign-up is pending for this number; start again",
            )
        })?;
    let given = sha_hex(format!("{phone}:{}", req.code.trim()).as_bytes());
    match judge_code(&pending, &given, now_s()) {
        CodeVerdict::Void => {
            accounts::drop_signup(&st.store, phone.as_str()).await?;
            return Err(ApiErr::bad_request(
                "code_expired",
                "the code expired or was tried too often; sign up again for a new one",
            ));
        }
        CodeVerdict::Wrong => {
            accounts::signup_failed(&st.store, phone.as_str()).await?;
            return Err(ApiErr::bad_request(
                "wrong_code",
                "wrong code; check the SMS and try again",
            ));
        }
        CodeVerdict::Right => {}
    }
    // H.626.4 6.2: the operator's CRM verifies the subscriber before the account exists.
    let req = VerifyRequest {
        stage: Stage::Signup,
        phone: phone.as_str().to_owned(),
        name: pending.name.clone(),
        contract_id: pending.contract_id.clone(),
        account_id: None,
    };
    let waits = match crate::crm::verify(&st, &req).await {
        Outcome::Ok => false,
        Outcome::Refused(reason) => {
            accounts::drop_signup(&st.store, phone.as_str()).await?;
            tracing::info!(%reason, "CRM refused a sign-up");
            return Err(ApiErr::forbidden(format!(
                "the operator's customer system refused the sign-up: {reason}"
            ))
            .with_code("crm_refused"));
        }
        Outcome::Unavailable(why) => {
            tracing::warn!(reason = %why, "CRM unavailable at sign-up; the sign-up waits for it");
            true
        }
    };
    let id = accounts::confirm_signup(&st.store, phone.as_str(), &pending, waits, now_s())
        .await?
        .ok_or_else(phone_taken)?;
    audit::log(&st.store, Event::SignupConfirmed).await;
    if waits {
        // Queued before the creation is told, so the CRM hears of it in that order.
        crate::crm::queue_verification(&st, id).await;
    }
    crate::crm::changed(&st, "account.created", id, phone.as_str(), None).await;
    if waits {
        return Ok(axum::Json(SignupState {
            status: AccountStatus::PendingCrm,
            next: crate::crm::WAITING.into(),
        }));
    }
    Ok(axum::Json(SignupState {
        status: AccountStatus::PendingApproval,
        next: "the operator will approve the account; then log in".into(),
    }))
}

/// Login throttling (6.1.1), after the OWASP Authentication Cheat Sheet: guessing is limited
/// per source address and per (account, source) pair, so a guesser locks out only itself;
/// across all sources an account's wrong passwords only slow its logins down (one try per
/// [`LoginThrottle::PACE`]), which bounds a distributed guess without locking the owner out.
pub(crate) struct LoginThrottle;

impl LoginThrottle {
    /// Every login attempt from one address, per minute.
    const PER_SOURCE_ATTEMPTS: u32 = 60;
    /// Wrong passwords from one address (any accounts) per window.
    const PER_SOURCE_FAILURES: u32 = 30;
    /// Wrong passwords for one account from one address per window.
    const PER_PAIR_FAILURES: u32 = 5;
    /// Wrong passwords for one account from anywhere before its logins are paced.
    const PER_ACCOUNT_FAILURES: u32 = 10;
    /// The window of the failure counters.
    const WINDOW: Duration = Duration::from_secs(300);
    /// In paced mode, one attempt on the account per this interval.
    pub(crate) const PACE: Duration = Duration::from_secs(1);
    /// A paced attempt that would wait longer than this is told to come back instead.
    const MAX_WAIT: Duration = Duration::from_secs(10);

    fn pair(login: &str, ip: IpAddr) -> String {
        format!("login-fail:{login}|{ip}")
    }

    /// Before checking a password: `Err(retry_after)` if this source may not try now, else
    /// how long to wait first (zero unless the account is paced).
    pub(crate) async fn before(
        limits: &Limits,
        login: &str,
        ip: IpAddr,
    ) -> Result<Duration, Duration> {
        limits
            .hit(
                &format!("login-ip:{ip}"),
                Self::PER_SOURCE_ATTEMPTS,
                Duration::from_secs(60),
            )
            .await?;
        limits
            .check(
                &format!("login-fail-ip:{ip}"),
                Self::PER_SOURCE_FAILURES,
                Self::WINDOW,
            )
            .await?;
        limits
            .check(
                &Self::pair(login, ip),
                Self::PER_PAIR_FAILURES,
                Self::WINDOW,
            )
            .await?;
        if limits
            .check(
                &format!("login-fail-acct:{login}"),
                Self::PER_ACCOUNT_FAILURES,
                Self::WINDOW,
            )
            .await
            .is_ok()
        {
            return Ok(Duration::ZERO);
        }
        limits
            .pace(&format!("login-pace:{login}"), Self::PACE, Self::MAX_WAIT)
            .await
    }

    /// A wrong password from `ip` for `login`.
    pub(crate) async fn failed(limits: &Limits, login: &str, ip: IpAddr) {
        for key in [
            format!("login-fail-ip:{ip}"),
            Self::pair(login, ip),
            format!("login-fail-acct:{login}"),
        ] {
            let _ = limits.hit(&key, u32::MAX, Self::WINDOW).await;
        }
    }

    /// The right password: this pair starts afresh.
    pub(crate) async fn succeeded(limits: &Limits, login: &str, ip: IpAddr) {
        limits.clear(&Self::pair(login, ip)).await;
    }
}

fn bad_credentials() -> ApiErr {
    ApiErr::new(
        StatusCode::UNAUTHORIZED,
        "bad_credentials",
        "wrong login or password",
    )
}

/// `POST /api/v1/login`: phone (owners) or username (sub-accounts, operator) and password.
pub(crate) async fn login(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(req): Json<LoginRequest>,
) -> ApiResult<axum::Json<LoginResponse>> {
    let login = match req.login.parse::<Phone>() {
        Ok(p) => p.as_str().to_owned(),
        Err(_) => req.login.trim().to_lowercase(),
    };
    if login.len() > 64 || req.password.len() > 256 {
        return Err(bad_credentials());
    }
    let wait = LoginThrottle::before(&st.limits, &login, peer.ip())
        .await
        .map_err(ApiErr::too_many)?;
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let found = accounts::with_password(&st.store, &login).await?;
    let hash = found
        .as_ref()
        .map_or_else(|| auth::dummy_hash().to_owned(), |(_, h)| h.clone());
    let password = req.password.clone();
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let Some((account, _)) = found.filter(|_| ok) else {
        LoginThrottle::failed(&st.limits, &login, peer.ip()).await;
        st.metrics.logins_failed.inc();
        audit::log(&st.store, Event::LoginFailed).await;
        return Err(bad_credentials());
    };
    match account.status {
        AccountStatus::Active => {}
        AccountStatus::PendingApproval => {
            return Err(
                ApiErr::forbidden("this account waits for the operator's approval")
                    .with_code("pending_approval"),
            );
        }
        AccountStatus::PendingCrm => {
            return Err(ApiErr::forbidden(crate::crm::WAITING).with_code("pending_crm"));
        }
        _ => {
            // H.626.4 6.2: a sign-up the CRM refused later says why.
            if let Some(reason) = &account.crm_note {
                return Err(ApiErr::forbidden(format!(
                    "the operator's customer system refused the sign-up: {reason}"
                ))
                .with_code("crm_refused"));
            }
            return Err(ApiErr::forbidden("this account is disabled").with_code("disabled"));
        }
    }
    // Issue 18 item 2: the second factor, after the right password only.
    if account.totp {
        let Some(code) = req.totp.as_deref().filter(|c| !c.trim().is_empty()) else {
            return Err(ApiErr::new(
                StatusCode::UNAUTHORIZED,
                "totp_required",
                "enter the 6-digit code of your authenticator app (or a recovery code)",
            ));
        };
        if crate::totp::check(&st, account.id, code).await? != crate::totp::Second::Right {
            LoginThrottle::failed(&st.limits, &login, peer.ip()).await;
            st.metrics.logins_failed.inc();
            audit::log(&st.store, Event::LoginFailed).await;
            return Err(crate::totp::bad_code());
        }
    }
    LoginThrottle::succeeded(&st.limits, &login, peer.ip()).await;
    st.metrics.logins_ok.inc();
    let token = SessionToken::from_random(random_bytes::<32>());
    let expires_at = now_s() + crate::settings::platform(&st).await?.1.session_ttl_s;
    sessions::create(&st.store, &token.digest(), account.id, now_s(), expires_at).await?;
    audit::log(&st.store, Event::LoggedIn { user: account.id }).await;
    if account.role != peercam_signal::cm::Role::Operator {
        // 6.1.9: a login is an alarm of the account (delivered per its settings).
        let (st, user, from) = (st.clone(), account.id, format!("from {}", peer.ip()));
        tokio::spawn(async move {
            crate::alarms::up::system(&st, user, None, AlarmKind::Login, from).await;
        });
    }
    Ok(axum::Json(LoginResponse {
        token: token.reveal(),
        expires_at,
        user: UserInfo {
            login,
            ..user_info(account)
        },
    }))
}

/// `POST /api/v1/logout`.
pub(crate) async fn logout(State(st): State<Shared>, headers: HeaderMap) -> ApiResult<StatusCode> {
    if let Some(t) = bearer(&headers) {
        let who = auth::principal(&st, &headers).await.ok();
        sessions::end(&st.store, &t.digest()).await?;
        // 6.1.9: so is a logout.
        if let Some(p) = who.filter(|p| p.role != peercam_signal::cm::Role::Operator) {
            let st = st.clone();
            tokio::spawn(async move {
                crate::alarms::up::system(&st, p.id, None, AlarmKind::Logout, String::new()).await;
            });
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The account `id` as the API shows it.
pub(crate) async fn account_view(st: &Shared, id: i64) -> ApiResult<UserInfo> {
    accounts::get(&st.store, id)
        .await?
        .map(user_info)
        .ok_or_else(|| ApiErr::not_found("not_found", "no such account"))
}

/// `GET /api/v1/me`.
pub(crate) async fn me(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
) -> ApiResult<axum::Json<UserInfo>> {
    account_view(&st, p.id).await.map(axum::Json)
}

/// `POST /api/v1/me/password`: ends the account's other sessions.
pub(crate) async fn change_password(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    Json(req): Json<PasswordChange>,
) -> ApiResult<StatusCode> {
    auth::check_new_password(&req.new_password)?;
    st.limits
        .hit(&format!("passwd:{}", p.id), 5, Duration::from_secs(300))
        .await
        .map_err(ApiErr::too_many)?;
    let hash = accounts::password_hash(&st.store, p.id)
        .await?
        .ok_or_else(ApiErr::unauthenticated)?;
    let old = req.old_password.clone();
    if !tokio::task::spawn_blocking(move || auth::verify_password(&old, &hash))
        .await
        .unwrap_or(false)
    {
        return Err(ApiErr::forbidden("the current password is wrong").with_code("bad_credentials"));
    }
    let new_hash = auth::hash_password(&req.new_password)?;
    let current = bearer(&headers).map(|t| t.digest()).unwrap_or_default();
    accounts::set_password(&st.store, p.id, &new_hash, &current).await?;
    audit::log(&st.store, Event::PasswordChanged { user: p.id }).await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(expires_at: u64, attempts: u32) -> accounts::PendingSignup {
        accounts::PendingSignup {
            code_hash: "abc".into(),
            password_hash: String::new(),
            expires_at,
            attempts,
            name: None,
            contract_id: None,
        }
    }

    #[test]
    fn h626_6_1_1_code_is_judged_right_wrong_or_void() {
        assert_eq!(judge_code(&pending(10, 0), "abc", 5), CodeVerdict::Right);
        assert_eq!(judge_code(&pending(10, 4), "abd", 5), CodeVerdict::Wrong);
        assert_eq!(
            judge_code(&pending(10, 5), "abc", 5),
            CodeVerdict::Void,
            "tried too often"
        );
        assert_eq!(
            judge_code(&pending(10, 0), "abc", 10),
            CodeVerdict::Void,
            "expired"
        );
    }

    #[tokio::test]
    async fn h626_6_1_1_a_guesser_locks_out_only_itself() {
        let limits = Limits::new(crate::store::testing::memory().await);
        let guesser: IpAddr = "198.51.100.1".parse().unwrap();
        let owner: IpAddr = "203.0.113.5".parse().unwrap();
        for _ in 0..5 {
            assert_eq!(
                LoginThrottle::before(&limits, "+1555", guesser).await,
                Ok(Duration::ZERO)
            );
            LoginThrottle::failed(&limits, "+1555", guesser).await;
        }
        assert!(
            LoginThrottle::before(&limits, "+1555", guesser)
                .await
                .is_err()
        );
        assert_eq!(
            LoginThrottle::before(&limits, "+1555", owner).await,
            Ok(Duration::ZERO)
        );
    }

    #[tokio::test]
    async fn h626_6_1_1_a_distributed_guess_is_paced() {
        let limits = Limits::new(crate::store::testing::memory().await);
        for i in 0..10u8 {
            let ip = IpAddr::from([198, 51, 100, i]);
            assert_eq!(
                LoginThrottle::before(&limits, "+1555", ip).await,
                Ok(Duration::ZERO)
            );
            LoginThrottle::failed(&limits, "+1555", ip).await;
        }
        // Now every attempt on the account takes its turn, one per PACE, from anywhere.
        let mut waits: Vec<Duration> = Vec::new();
        for i in 20..40u8 {
            waits.push(
                LoginThrottle::before(&limits, "+1555", IpAddr::from([198, 51, 100, i]))
                    .await
                    .unwrap_or(Duration::MAX),
            );
        }
        assert!(waits[1] > Duration::ZERO && waits[5] >= 4 * LoginThrottle::PACE);
        assert_eq!(
            waits.last(),
            Some(&Duration::MAX),
            "beyond the longest wait: come back later"
        );
        // Another account is not slowed.
        assert_eq!(
            LoginThrottle::before(&limits, "+1666", IpAddr::from([198, 51, 100, 50])).await,
            Ok(Duration::ZERO)
        );
    }
}
