//! CMU parameters (H.626.4 8.9.2): a user's own settings and the operator's platform
//! settings, each one revisioned document. The flow mirrors 8.9.1: the CU queries, asks
//! permission to configure (a single-use permit after the CMU authorised the caller), sends
//! the whole document, and the CMU applies it all or nothing and confirms.

use axum::Extension;
use axum::extract::State;
use peercam_signal::cm::ConfigPermit;
use peercam_signal::control::{
    PlatformParams, PlatformParamsState, SetPlatformParams, SetUserParams, UserParams,
    UserParamsState,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest as _, Sha256};

use crate::audit::{self, Event};
use crate::auth::Principal;
use crate::error::{ApiErr, ApiResult};
use crate::json::Json;
use crate::store::params::{self as stored, Applied};
use crate::{Shared, now_s, random_bytes};

const PERMIT_TTL_S: u64 = 120;

/// The platform's settings: the operator's document, or the configuration file's values.
pub(crate) async fn platform(st: &Shared) -> ApiResult<(u64, PlatformParams)> {
    let defaults = PlatformParams {
        schema: 1,
        play_token_ttl_s: st.config.play_token_ttl_s.clamp(1, 3600),
        session_ttl_s: st.config.session_ttl_s.clamp(1, 2_592_000),
        signup_open: true,
    };
    load(st, "platform", defaults).await
}

async fn load<T: DeserializeOwned>(st: &Shared, key: &str, default: T) -> ApiResult<(u64, T)> {
    let Some((revision, doc)) = stored::load(&st.store, key).await? else {
        return Ok((0, default));
    };
    let params =
        serde_json::from_str(&doc).map_err(|e| ApiErr::internal("stored parameters", &e))?;
    Ok((revision, params))
}

/// Issues a single-use configuration permit for `key` (a device id, `platform` or
/// `user:ID`), valid 120 s.
pub(crate) async fn permit(
    st: &Shared,
    who: &Principal,
    key: &str,
    revision: u64,
) -> ApiResult<ConfigPermit> {
    let permit = format!("pcp_{}", hex::encode(random_bytes::<24>()));
    let expires_at = now_s() + PERMIT_TTL_S;
    let digest = hex::encode(Sha256::digest(permit.as_bytes()));
    stored::issue_permit(&st.store, &digest, who.id, key, expires_at, now_s()).await?;
    Ok(ConfigPermit {
        permit,
        revision,
        expires_at,
    })
}

/// Spends the permit, checks the revision and stores the document, in one transaction.
async fn apply<T: Serialize>(
    st: &Shared,
    who: &Principal,
    key: &str,
    permit: &str,
    base_revision: u64,
    params: &T,
) -> ApiResult<u64> {
    let doc = serde_json::to_string(params).map_err(|e| ApiErr::internal("parameters", &e))?;
    let digest = hex::encode(Sha256::digest(permit.as_bytes()));
    match stored::apply(&st.store, (&digest, who.id), key, base_revision, &doc, now_s()).await? {
        Applied::Stored(revision) => Ok(revision),
        Applied::NoPermit => Err(ApiErr::forbidden(
            "no valid permit: ask with the matching POST .../params/permit first (permits last 120 s and serve once)",
        )
        .with_code("no_permit")),
        Applied::Stale(current) => Err(ApiErr::conflict(
            "stale_revision",
            format!(
                "the parameters changed meanwhile (now at revision {current}); read them again"
            ),
        )),
    }
}

/// The settings of account `user` (language, time zone, whether alarms notify: 6.1.9).
pub(crate) async fn user_params(st: &Shared, user: i64) -> ApiResult<UserParams> {
    Ok(load(st, &format!("user:{user}"), UserParams::default())
        .await?
        .1)
}

fn user_key(p: &Principal) -> String {
    format!("user:{}", p.id)
}

/// 8.9.2: the caller's own settings.
pub(crate) async fn get_user(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<UserParamsState>> {
    let (revision, params) = load(&st, &user_key(&p), UserParams::default()).await?;
    Ok(Json(UserParamsState { revision, params }))
}

/// 8.9.2: permission to change them.
pub(crate) async fn permit_user(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<ConfigPermit>> {
    let (revision, _) = load(&st, &user_key(&p), UserParams::default()).await?;
    Ok(Json(permit(&st, &p, &user_key(&p), revision).await?))
}

/// 8.9.2: the change, applied whole and confirmed.
pub(crate) async fn set_user(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(req): Json<SetUserParams>,
) -> ApiResult<Json<UserParamsState>> {
    req.params.validate().map_err(ApiErr::invalid)?;
    let revision = apply(
        &st,
        &p,
        &user_key(&p),
        &req.permit,
        req.base_revision,
        &req.params,
    )
    .await?;
    audit::log(
        &st.store,
        Event::UserParamsSet {
            user: p.id,
            revision,
        },
    )
    .await;
    Ok(Json(UserParamsState {
        revision,
        params: req.params,
    }))
}

/// 8.9.2: the platform's settings (operator).
pub(crate) async fn get_platform(State(st): State<Shared>) -> ApiResult<Json<PlatformParamsState>> {
    let (revision, params) = platform(&st).await?;
    Ok(Json(PlatformParamsState { revision, params }))
}

/// 8.9.2: permission to change them (operator).
pub(crate) async fn permit_platform(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<ConfigPermit>> {
    let (revision, _) = platform(&st).await?;
    Ok(Json(permit(&st, &p, "platform", revision).await?))
}

/// 8.9.2: the change (operator); it takes effect for the next sign-up, login and play URL.
pub(crate) async fn set_platform(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(req): Json<SetPlatformParams>,
) -> ApiResult<Json<PlatformParamsState>> {
    req.params.validate().map_err(ApiErr::invalid)?;
    let revision = apply(
        &st,
        &p,
        "platform",
        &req.permit,
        req.base_revision,
        &req.params,
    )
    .await?;
    audit::log(&st.store, Event::PlatformParamsSet { by: p.id, revision }).await;
    Ok(Json(PlatformParamsState {
        revision,
        params: req.params,
    }))
}
