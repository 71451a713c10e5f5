//! Two-factor sign-in (issue 18 item 2): TOTP after RFC 6238 (HMAC-SHA1, 30-second steps,
//! 6 digits, one step of clock drift either way), each step usable once per account, and
//! one-time recovery codes kept as digests (docs/security.md, "Two-factor sign-in").

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use hmac::{Hmac, Mac as _};
use peercam_signal::cm::Role;
use peercam_signal::cm_users::{RecoveryCodes, TotpCode, TotpDisable, TotpEnrolment, TotpState};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::audit::{self, Event};
use crate::auth::{self, Principal};
use crate::error::{ApiErr, ApiResult};
use crate::json::Json;
use crate::store::accounts;
use crate::{Shared, now_s, random_bytes};

/// RFC 6238 time step, seconds.
pub(crate) const STEP_S: u64 = 30;
/// Digits of a code.
const DIGITS: u32 = 6;
/// Recovery codes made at enrolment.
const RECOVERY_CODES: usize = 10;
/// The issuer shown by authenticator apps.
const ISSUER: &str = "peercam";

/// RFC 4226 HOTP value of `counter` with `digits` digits (RFC 6238 uses the time step).
pub(crate) fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return 0;
    };
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[19] & 0x0f);
    let bin = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    bin % 10u32.pow(digits)
}

/// The 6-digit code of `secret` at Unix time `t`.
#[cfg(test)]
pub(crate) fn code_at(secret: &[u8], t: u64) -> String {
    format!("{:06}", hotp(secret, t / STEP_S, DIGITS))
}

/// The time step whose code `given` is, within one step of `now` and after `last_step`
/// (a step already used is a replay, refused).
pub(crate) fn matching_step(secret: &[u8], given: &str, now: u64, last_step: u64) -> Option<u64> {
    let given = given.trim();
    if given.len() != 6 || !given.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = now / STEP_S;
    let mut found = None;
    // Every candidate is compared (constant work), the latest match wins.
    for step in current.saturating_sub(1)..=current + 1 {
        let code = format!("{:06}", hotp(secret, step, DIGITS));
        if bool::from(code.as_bytes().ct_eq(given.as_bytes())) && step > last_step {
            found = Some(step);
        }
    }
    found
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding.
pub(crate) fn base32(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes [`base32`] (case-insensitive, padding and spaces ignored).
pub(crate) fn unbase32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !matches!(c, b'=' | b' ')) {
        let v = BASE32.iter().position(|&x| x == c.to_ascii_uppercase())?;
        buf = (buf << 5) | u32::try_from(v).ok()?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buf >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// The `otpauth://` URI of a secret for `login`.
fn uri(login: &str, secret_b32: &str) -> String {
    let label: String =
        url::form_urlencoded::byte_serialize(format!("{ISSUER}:{login}").as_bytes())
            .collect::<String>()
            .replace('+', "%20");
    format!(
        "otpauth://totp/{label}?secret={secret_b32}&issuer={ISSUER}&algorithm=SHA1&digits=6&period=30"
    )
}

fn recovery_digest(id: i64, code: &str) -> String {
    let norm: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hex::encode(Sha256::digest(format!("{id}:{norm}").as_bytes()))
}

/// A recovery code: 10 characters of a-z and 2-9 in two groups (`abcde-fghjk`).
fn new_recovery_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let r = random_bytes::<10>();
    let s: String = r
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    format!("{}-{}", &s[..5], &s[5..])
}

/// Whether the platform requires TOTP of this role.
pub(crate) fn required(st: &Shared, role: Role) -> bool {
    role == Role::Operator && st.config.operator_totp_required
}

/// What a second factor is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Second {
    /// A right TOTP code or an unused recovery code (now used).
    Right,
    /// Wrong, replayed or used.
    Wrong,
}

/// Checks `given` (a TOTP code or a recovery code) for the account `id`; a right code's
/// step (or recovery code) is used up.
pub(crate) async fn check(st: &Shared, id: i64, given: &str) -> ApiResult<Second> {
    let Some((Some(secret), _, last)) = accounts::totp(&st.store, id).await? else {
        return Ok(Second::Wrong);
    };
    let secret = unbase32(&secret).unwrap_or_default();
    if let Some(step) = matching_step(&secret, given, now_s(), last) {
        return Ok(if accounts::totp_use_step(&st.store, id, step).await? {
            Second::Right
        } else {
            Second::Wrong
        });
    }
    if given.trim().len() >= 10
        && accounts::recovery_use(&st.store, id, &recovery_digest(id, given)).await?
    {
        return Ok(Second::Right);
    }
    Ok(Second::Wrong)
}

fn totp_event(id: i64, outcome: &str) -> Event<'_> {
    Event::AccountAction {
        by: Some(id),
        action: "account.totp",
        account: id,
        outcome,
        detail: "",
    }
}

/// `GET /api/v1/me/totp`.
pub(crate) async fn state(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
) -> ApiResult<axum::Json<TotpState>> {
    let enabled = matches!(
        accounts::totp(&st.store, p.id).await?,
        Some((Some(_), _, _))
    );
    Ok(axum::Json(TotpState {
        enabled,
        required: required(&st, p.role),
        recovery_codes_left: accounts::recovery_left(&st.store, p.id).await?,
    }))
}

/// `POST /api/v1/me/totp/enroll`: a new secret, waiting for its first code.
pub(crate) async fn enroll(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
) -> ApiResult<axum::Json<TotpEnrolment>> {
    if matches!(
        accounts::totp(&st.store, p.id).await?,
        Some((Some(_), _, _))
    ) {
        return Err(ApiErr::conflict(
            "totp_enabled",
            "two-factor sign-in is on already; turn it off first to enrol another authenticator",
        ));
    }
    let secret = base32(&random_bytes::<20>());
    accounts::totp_begin(&st.store, p.id, &secret).await?;
    let login = crate::accounts::account_view(&st, p.id).await?.login;
    Ok(axum::Json(TotpEnrolment {
        uri: uri(&login, &secret),
        secret,
    }))
}

/// `POST /api/v1/me/totp/confirm`: the first code turns TOTP on; the recovery codes are
/// shown once.
pub(crate) async fn confirm(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(req): Json<TotpCode>,
) -> ApiResult<axum::Json<RecoveryCodes>> {
    rate(&st, p.id).await?;
    let Some((_, Some(pending), _)) = accounts::totp(&st.store, p.id).await? else {
        return Err(ApiErr::bad_request(
            "no_enrolment",
            "start with POST /api/v1/me/totp/enroll",
        ));
    };
    let secret = unbase32(&pending).unwrap_or_default();
    let Some(step) = matching_step(&secret, &req.code, now_s(), 0) else {
        return Err(bad_code());
    };
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
    let digests: Vec<String> = codes.iter().map(|c| recovery_digest(p.id, c)).collect();
    if !accounts::totp_enable(&st.store, p.id, step, &digests).await? {
        return Err(ApiErr::conflict(
            "no_enrolment",
            "the enrolment ended meanwhile",
        ));
    }
    audit::log(&st.store, totp_event(p.id, "enabled")).await;
    Ok(axum::Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

/// `POST /api/v1/me/totp/disable`: the password and a code (or a recovery code).
pub(crate) async fn disable(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(req): Json<TotpDisable>,
) -> ApiResult<StatusCode> {
    rate(&st, p.id).await?;
    if required(&st, p.role) {
        return Err(
            ApiErr::forbidden("this platform requires two-factor sign-in of operators")
                .with_code("totp_required"),
        );
    }
    let hash = accounts::password_hash(&st.store, p.id)
        .await?
        .ok_or_else(ApiErr::unauthenticated)?;
    let password = req.password.clone();
    if !tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .unwrap_or(false)
    {
        return Err(ApiErr::forbidden("the password is wrong").with_code("bad_credentials"));
    }
    if check(&st, p.id, &req.code).await? != Second::Right {
        return Err(bad_code());
    }
    accounts::totp_disable(&st.store, p.id).await?;
    audit::log(&st.store, totp_event(p.id, "disabled")).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Five tries per five minutes per account on the TOTP routes.
async fn rate(st: &Shared, id: i64) -> ApiResult<()> {
    st.limits
        .hit(
            &format!("totp:{id}"),
            5,
            std::time::Duration::from_secs(300),
        )
        .await
        .map_err(ApiErr::too_many)
}

pub(crate) fn bad_code() -> ApiErr {
    ApiErr::new(
        StatusCode::UNAUTHORIZED,
        "bad_totp",
        "wrong, expired or already used code; wait for the next one",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA1 rows (8 digits), and their 6-digit truncations.
    #[test]
    fn h626_6_2_totp_rfc6238_test_vectors() {
        let key = b"12345678901234567890";
        for (t, want) in [
            (59u64, 94_287_082u32),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(hotp(key, t / STEP_S, 8), want, "t = {t}");
            assert_eq!(code_at(key, t), format!("{:06}", want % 1_000_000));
        }
    }

    #[test]
    fn h626_6_2_totp_window_and_replay() {
        let key = b"12345678901234567890";
        let now = 1_234_567_890;
        let step = now / STEP_S;
        assert_eq!(matching_step(key, &code_at(key, now), now, 0), Some(step));
        assert_eq!(
            matching_step(key, &code_at(key, now - 30), now, 0),
            Some(step - 1)
        );
        assert_eq!(
            matching_step(key, &code_at(key, now + 30), now, 0),
            Some(step + 1)
        );
        assert_eq!(matching_step(key, &code_at(key, now - 60), now, 0), None);
        assert_eq!(
            matching_step(key, &code_at(key, now), now, step),
            None,
            "replay"
        );
        assert_eq!(matching_step(key, "12345", now, 0), None);
        assert_eq!(matching_step(key, "abcdef", now, 0), None);
    }

    #[test]
    fn base32_round_trip() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        for n in 0..40u8 {
            let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(unbase32(&base32(&data)), Some(data));
        }
        assert_eq!(unbase32("mzxw6ytboi===="), Some(b"foobar".to_vec()));
        assert_eq!(unbase32("1"), None);
        assert!(
            uri("+15550100001", "ABC")
                .starts_with("otpauth://totp/peercam%3A%2B15550100001?secret=ABC&issuer=peercam")
        );
    }
}
