//! H.626.4 8.4 play tokens, one module for every user of them: minting for viewers (live,
//! playback, export) and for platform services (an NVR recording a camera, an MTU relaying
//! it), and judging a token when a PU, NVR or MTU asks (8.4 steps 6-8). One-time, expiring,
//! bound to the device's ACL version (docs/security.md D4, D5).

use base64::Engine as _;
use peercam_base::{DeviceId, Scope, ScopeSet};
use peercam_signal::cmd::PlatformAnswer;
use peercam_signal::play::{self, Caps, PlayClaims, PlayGrant, PlayVerdict, TokenRefusal};

use crate::audit::{self, Event, Minted, Service};
use crate::auth::Principal;
use crate::error::{ApiErr, ApiResult};
use crate::store::play_keys::{PlayKey, Rotation};
use crate::store::{self, Store, StoreError};
use crate::{Shared, now_s, random_bytes};

/// Rounding slack on expiry: the CMU mints and judges its own tokens with one clock, so
/// only the whole-second rounding of `iat`/`exp` needs room.
const SKEW_S: u64 = 1;

/// How long a key is kept after its successor is made: the longest token lifetime
/// (`play_token_ttl_s` is at most 3600) and a minute for the clocks of CMU instances.
const KEY_KEPT_S: u64 = 3600 + 60;

/// The play-token signing keys (issue 19), shared by every CMU instance on the database:
/// the newest signs and is replaced every `token_key_rotate_s`; older ones verify until
/// [`KEY_KEPT_S`] after their successor came. Each instance caches the keys and reads them
/// again when it must rotate or meets a key id newer than any it knows.
pub(crate) struct Keys {
    store: Store,
    rotate_s: u64,
    cache: std::sync::RwLock<Vec<PlayKey>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("rotate_s", &self.rotate_s)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// The keys in `store`, making the first (or a due one) now.
    pub(crate) async fn load(store: &Store, rotate_s: u64) -> Result<Self, StoreError> {
        let keys = Self {
            store: store.clone(),
            rotate_s,
            cache: std::sync::RwLock::default(),
        };
        keys.rotate(now_s()).await?;
        Ok(keys)
    }

    fn cached(&self) -> std::sync::RwLockReadGuard<'_, Vec<PlayKey>> {
        self.cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn keep(&self, keys: Vec<PlayKey>) {
        *self
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
    }

    async fn rotate(&self, now: u64) -> Result<(), StoreError> {
        let r = Rotation {
            now,
            every_s: self.rotate_s,
            keep_s: KEY_KEPT_S,
        };
        let keys = store::play_keys::rotate(&self.store, random_bytes::<32>(), r).await?;
        self.keep(keys);
        Ok(())
    }

    /// The key to sign with at `now`: its id and secret.
    pub(crate) async fn signing(&self, now: u64) -> Result<(String, [u8; 32]), StoreError> {
        let due = |k: Option<&PlayKey>| {
            k.is_none_or(|k| k.created_at.saturating_add(self.rotate_s) <= now)
        };
        if due(self.cached().last()) {
            self.rotate(now).await?;
        }
        self.cached()
            .last()
            .map(|k| (k.id.to_string(), k.secret))
            .ok_or_else(|| StoreError::Corrupt("no play-token key after rotation".into()))
    }

    /// The secret of the key `kid`, if it is kept. An id newer than any cached one (another
    /// instance rotated) reads the keys again; an older unknown one is refused at once.
    pub(crate) async fn verifying(&self, kid: &str) -> Result<Option<[u8; 32]>, StoreError> {
        let Ok(id) = kid.parse::<i64>() else {
            return Ok(None);
        };
        let find = |keys: &[PlayKey]| keys.iter().find(|k| k.id == id).map(|k| k.secret);
        let newest = {
            let cached = self.cached();
            if let Some(secret) = find(&cached) {
                return Ok(Some(secret));
            }
            cached.last().map_or(0, |k| k.id)
        };
        if id <= newest {
            return Ok(None);
        }
        let keys = store::play_keys::all(&self.store).await?;
        let secret = find(&keys);
        self.keep(keys);
        Ok(secret)
    }
}

/// The claims of a new one-time token for `dev`, issued `now` and valid `ttl_s` (D4); `cam`
/// for playback tokens, which a recorder serves for that camera.
pub(crate) fn claims(
    dev: DeviceId,
    (sub, scopes): (i64, ScopeSet),
    acl: i64,
    (now, ttl_s): (u64, u64),
    cap: Caps,
    cam: Option<DeviceId>,
) -> PlayClaims {
    PlayClaims {
        dev,
        sub,
        scp: scopes.bits(),
        jti: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<16>()),
        iat: now,
        exp: now + ttl_s,
        acl,
        cap,
        cam,
    }
}

/// The ACL version of `id` now.
async fn acl_of(st: &Shared, id: &DeviceId) -> ApiResult<i64> {
    Ok(store::devices::get(&st.store, id)
        .await?
        .ok_or_else(ApiErr::no_device)?
        .acl_version)
}

async fn ttl(st: &Shared) -> ApiResult<u64> {
    Ok(crate::settings::platform(st).await?.1.play_token_ttl_s)
}

/// 8.4 steps 2-3: a one-time token for `p` to watch `id` live (or, with `playback_of`, to
/// play `camera`'s recordings on the recorder `id`), audited as `kind` with `detail`.
pub(crate) async fn mint(
    st: &Shared,
    p: &Principal,
    (id, scopes): (&DeviceId, ScopeSet),
    caps: Caps,
    playback_of: Option<&DeviceId>,
    (kind, detail): (Minted, &str),
) -> ApiResult<(PlayClaims, String)> {
    // The rights are the camera's: its ACL version is the one that must not move.
    let acl = acl_of(st, playback_of.unwrap_or(id)).await?;
    let c = claims(
        id.clone(),
        (p.id, scopes),
        acl,
        (now_s(), ttl(st).await?),
        caps,
        playback_of.cloned(),
    );
    let (kid, key) = st.play_keys.signing(c.iat).await?;
    let token = play::mint(&kid, &key, &c);
    st.metrics.tokens_minted.inc();
    let device = playback_of.unwrap_or(id);
    // Issue 19: no token leaves without its audit row.
    audit::log_or_fail(
        &st.store,
        Event::TokenMinted {
            user: p.id,
            device,
            kind,
            detail,
        },
    )
    .await?;
    Ok((c, token))
}

/// A one-time live token for a platform service that pulls `camera` on its owner's behalf
/// (an NVR recording it, 8.7.2.1 steps 16-18; an MTU relaying it, Mp/Pd); the answer's URL
/// is `rtsp://{authority}/live/{camera}?token=`. The camera judges the token as for any
/// viewer (8.4).
pub(crate) async fn for_service(
    st: &Shared,
    camera: &DeviceId,
    (owner, acl): (i64, i64),
    caps: Caps,
    (service, requester): (Service, &DeviceId),
    authority: &str,
) -> PlatformAnswer {
    let ttl = ttl(st).await.unwrap_or(60);
    let live = ScopeSet::from_iter([Scope::Live]);
    let c = claims(
        camera.clone(),
        (owner, live),
        acl,
        (now_s(), ttl),
        caps,
        None,
    );
    let (kid, key) = match st.play_keys.signing(c.iat).await {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "no play-token key");
            return PlatformAnswer::Refused {
                code: peercam_signal::refusal::Refusal::Unavailable,
                message: "the platform cannot issue a token now; try again".into(),
            };
        }
    };
    let token = play::mint(&kid, &key, &c);
    audit::log(
        &st.store,
        Event::ServiceToken {
            owner,
            camera,
            service,
            requester,
        },
    )
    .await;
    PlatformAnswer::Stream {
        url: format!("rtsp://{authority}/live/{camera}?token={token}"),
        token,
        expires_at: c.exp,
    }
}

/// A one-time live token for the viewer of `grant`, minted when an MTU relays that viewer's
/// audio back channel (6.1.8): the same user, scopes and capabilities, bound to the camera's
/// ACL version now, so the camera judges it (and the user's `talk`) as any viewer's token.
/// `None` when the camera is gone or the store cannot answer.
pub(crate) async fn for_relayed_talk(
    st: &Shared,
    camera: &DeviceId,
    grant: &PlayGrant,
    mtu: &DeviceId,
) -> Option<String> {
    let acl = store::devices::get(&st.store, camera)
        .await
        .ok()
        .flatten()?
        .acl_version;
    let ttl = ttl(st).await.unwrap_or(60);
    let c = claims(
        camera.clone(),
        (grant.user, grant.scopes),
        acl,
        (now_s(), ttl),
        grant.caps,
        None,
    );
    let (kid, key) = st.play_keys.signing(c.iat).await.ok()?;
    let token = play::mint(&kid, &key, &c);
    audit::log(
        &st.store,
        Event::TokenMinted {
            user: grant.user,
            device: camera,
            kind: Minted::RelayTalk,
            detail: mtu.as_str(),
        },
    )
    .await;
    Some(token)
}

/// Mn / Nd (8.3): a fresh one-time playback token for the viewer of `grant` (a playback
/// grant on `recorder`), minted when an MTU pipes that viewer to the recorder: the same
/// user, scopes, camera and capabilities, bound to the camera's ACL version now, so the
/// recorder judges it as the viewer's own. `None` when the grant is not a playback grant,
/// the camera is gone or the store cannot answer.
pub(crate) async fn for_pipe(
    st: &Shared,
    recorder: &DeviceId,
    grant: &PlayGrant,
    mtu: &DeviceId,
) -> Option<String> {
    let camera = grant.cam.as_ref()?;
    let acl = store::devices::get(&st.store, camera)
        .await
        .ok()
        .flatten()?
        .acl_version;
    let ttl = ttl(st).await.unwrap_or(60);
    let c = claims(
        recorder.clone(),
        (grant.user, grant.scopes),
        acl,
        (now_s(), ttl),
        grant.caps,
        Some(camera.clone()),
    );
    let (kid, key) = st.play_keys.signing(c.iat).await.ok()?;
    let token = play::mint(&kid, &key, &c);
    audit::log(
        &st.store,
        Event::TokenMinted {
            user: grant.user,
            device: camera,
            kind: Minted::RelayPipe,
            detail: mtu.as_str(),
        },
    )
    .await;
    Some(token)
}

/// What the store says about a token's subject now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Standing {
    /// For a playback token: the recorder that asks records the camera.
    pub(crate) records: bool,
    /// The subject's ACL version, if it exists.
    pub(crate) acl: Option<i64>,
    /// What the token's user may do with the subject now (D3).
    pub(crate) scopes: ScopeSet,
}

/// 8.4 step 7, the rule: a well-signed, unexpired token for this device is good if the
/// recorder records the camera (playback), the ACL has not moved since minting (unshare,
/// unbind, reset: D4/D5) and the user still holds the scope it needs. Returns those scopes.
pub(crate) fn judge_standing(claims: &PlayClaims, s: &Standing) -> Result<ScopeSet, TokenRefusal> {
    if claims.cam.is_some() && !s.records {
        return Err(TokenRefusal::NotAllowed);
    }
    let acl = s.acl.ok_or(TokenRefusal::NotAllowed)?;
    if acl != claims.acl {
        return Err(TokenRefusal::StaleAcl);
    }
    let needed = if claims.cam.is_some() {
        Scope::Playback
    } else {
        Scope::Live
    };
    if !s.scopes.contains(needed) {
        return Err(TokenRefusal::NotAllowed);
    }
    Ok(s.scopes)
}

enum Judgement {
    Refused(TokenRefusal),
    Internal(StoreError),
}

impl From<StoreError> for Judgement {
    fn from(e: StoreError) -> Self {
        Self::Internal(e)
    }
}

impl From<TokenRefusal> for Judgement {
    fn from(r: TokenRefusal) -> Self {
        Self::Refused(r)
    }
}

/// H.626.4 8.7.1: `cs` holds `camera`'s prefix for the camera's current owner (a prefix of
/// an older binding is not played).
async fn cloud_records(st: &Shared, camera: &DeviceId, cs: &DeviceId) -> Result<bool, StoreError> {
    let Some(c) = store::cloud::get(&st.store, camera).await? else {
        return Ok(false);
    };
    let owner = store::devices::get(&st.store, camera)
        .await?
        .and_then(|d| d.owner);
    Ok(&c.cs == cs && owner == Some(c.owner))
}

/// Reads the [`Standing`] of `claims`' subject for `device` (the recorder, for playback).
async fn standing(
    st: &Shared,
    device: &DeviceId,
    claims: &PlayClaims,
) -> Result<Standing, StoreError> {
    // Playback (8.7.2.2, 8.7.3): `device` is the recorder and the rights are the camera's;
    // the recorder must record that camera (itself for an SD card).
    let subject = claims.cam.as_ref().unwrap_or(device);
    let records = match &claims.cam {
        None => true,
        Some(cam) => {
            cam == device
                || store::recordings::is_attached(&st.store, cam, device).await?
                // H.626.4 8.7.1: the CS holding the camera's prefix for its current owner.
                || cloud_records(st, cam, device).await?
        }
    };
    let Some(d) = store::devices::get(&st.store, subject).await? else {
        return Ok(Standing {
            records,
            acl: None,
            scopes: ScopeSet::EMPTY,
        });
    };
    let scopes = match d.owner {
        Some(o) if o == claims.sub => {
            let owner = store::accounts::get(&st.store, o).await?;
            if owner.is_some_and(|a| a.status == peercam_signal::cm::AccountStatus::Active) {
                ScopeSet::all()
            } else {
                ScopeSet::EMPTY
            }
        }
        Some(o) => store::shares::live_scopes(&st.store, subject, claims.sub, o).await?,
        None => ScopeSet::EMPTY,
    };
    Ok(Standing {
        records,
        acl: Some(d.acl_version),
        scopes,
    })
}

async fn judge(st: &Shared, device: &DeviceId, token: &str) -> Result<PlayGrant, Judgement> {
    // Issue 19: the token names its key; any CMU instance on the database knows it.
    let kid = play::key_id(token)?;
    let key = st
        .play_keys
        .verifying(kid)
        .await?
        .ok_or(TokenRefusal::Forged)?;
    let claims = play::verify(&key, token)?;
    let now = now_s();
    play::check_claims(&claims, device, now, SKEW_S)?;
    let scopes = judge_standing(&claims, &standing(st, device, &claims).await?)?;
    // One use only (D4): the first RTSP request that presents it wins.
    if !store::tokens::spend(&st.store, &claims.jti, claims.exp + SKEW_S, now).await? {
        return Err(Judgement::Refused(TokenRefusal::Replayed));
    }
    Ok(PlayGrant {
        user: claims.sub,
        scopes,
        caps: claims.cap,
        expires_at: claims.exp,
        cam: claims.cam,
    })
}

/// 8.4 steps 6-8: the PU (through its SCU), a recorder or an MTU asks whether `token` lets
/// the viewer at `client` watch `device`.
pub(crate) async fn authorize(
    st: &Shared,
    device: &DeviceId,
    token: &str,
    client: &str,
) -> PlayVerdict {
    match judge(st, device, token).await {
        Ok(grant) => {
            st.metrics.plays_granted.inc();
            let user = grant.user;
            audit::log(
                &st.store,
                Event::PlayGranted {
                    user,
                    device,
                    client,
                },
            )
            .await;
            PlayVerdict::Granted { grant }
        }
        Err(Judgement::Refused(r)) => {
            st.metrics.plays_refused.inc();
            tracing::info!(device = %device, refusal = r.code(), "play refused");
            let code = r.code();
            audit::log(
                &st.store,
                Event::PlayRefused {
                    device,
                    code,
                    client,
                },
            )
            .await;
            PlayVerdict::Refused {
                code: r.into(),
                message: r.to_string(),
            }
        }
        Err(Judgement::Internal(e)) => {
            tracing::error!(error = %e, "play check failed");
            PlayVerdict::Refused {
                code: peercam_signal::refusal::Refusal::Unavailable,
                message: "the platform cannot decide now; try again".into(),
            }
        }
    }
}

/// H.626.4 6.1.12: signed links to one timed snapshot, with their own key and purpose
/// string (never a play token): `/s/<token>`, the token 32 base64url characters of the
/// snapshot id, the expiry and a 96-bit HMAC-SHA256 tag. Holding it is the capability.
#[cfg(test)]
mod tests {
    use super::*;

    fn token(cam: Option<DeviceId>) -> PlayClaims {
        let dev = DeviceId::from_random([1; 10]);
        claims(
            dev,
            (7, ScopeSet::all()),
            3,
            (100, 60),
            Caps::default(),
            cam,
        )
    }

    fn standing(records: bool, acl: Option<i64>, scopes: &[Scope]) -> Standing {
        Standing {
            records,
            acl,
            scopes: scopes.iter().copied().collect(),
        }
    }

    #[test]
    fn h626_8_4_token_is_good_while_acl_and_scope_hold() {
        let t = token(None);
        assert_eq!((t.iat, t.exp, t.sub, t.acl), (100, 160, 7, 3));
        let live = [Scope::Live];
        assert_eq!(
            judge_standing(&t, &standing(true, Some(3), &live)),
            Ok(ScopeSet::from_iter(live))
        );
        assert_eq!(
            judge_standing(&t, &standing(true, Some(4), &live)),
            Err(TokenRefusal::StaleAcl)
        );
        assert_eq!(
            judge_standing(&t, &standing(true, None, &live)),
            Err(TokenRefusal::NotAllowed)
        );
        assert_eq!(
            judge_standing(&t, &standing(true, Some(3), &[Scope::Ptz])),
            Err(TokenRefusal::NotAllowed),
            "unshared live"
        );
    }

    #[test]
    fn h626_8_4_playback_token_needs_the_recorder_and_playback_scope() {
        let t = token(Some(DeviceId::from_random([2; 10])));
        let pb = [Scope::Playback];
        assert_eq!(
            judge_standing(&t, &standing(false, Some(3), &pb)),
            Err(TokenRefusal::NotAllowed)
        );
        assert_eq!(
            judge_standing(&t, &standing(true, Some(3), &[Scope::Live])),
            Err(TokenRefusal::NotAllowed)
        );
        assert!(judge_standing(&t, &standing(true, Some(3), &pb)).is_ok());
    }

    #[test]
    fn h626_8_4_each_token_is_new() {
        assert_ne!(token(None).jti, token(None).jti);
    }

    crate::store::on_both_backends! {
    /// Issue 19: two CMU instances on one database. A token signed on A verifies on B and on
    /// a restarted A; a key B has not seen yet (A rotated) is read from the store; an id that
    /// was never made is refused without asking the store for it again and again.
    #[tokio::test]
    async fn h626_8_4_instances_share_play_token_keys(db) {
        let a = Keys::load(&db, 60).await.unwrap();
        let b = Keys::load(&db, 60).await.unwrap();
        let now = now_s();
        let (kid, key) = a.signing(now).await.unwrap();
        assert_eq!(b.signing(now).await.unwrap(), (kid.clone(), key), "one key for both");
        let claims = token(None);
        let t = play::mint(&kid, &key, &claims);
        let found = b.verifying(play::key_id(&t).unwrap()).await.unwrap().unwrap();
        assert_eq!(play::verify(&found, &t), Ok(claims));
        // A restart (a new instance) reads the same key.
        let again = Keys::load(&db, 60).await.unwrap();
        assert_eq!(again.verifying(&kid).await.unwrap(), Some(key));
        // A rotates a minute later; B meets the new id and reads it from the store.
        let (kid2, key2) = a.signing(now + 60).await.unwrap();
        assert_ne!(kid2, kid);
        assert_eq!(b.verifying(&kid2).await.unwrap(), Some(key2));
        assert_eq!(b.verifying(&kid).await.unwrap(), Some(key), "the old one still verifies");
        // And B signs with the new one from then on.
        assert_eq!(b.signing(now + 61).await.unwrap().0, kid2);
        // Unknown ids: older than the newest known (never made, or retired), or not a number.
        assert_eq!(b.verifying("0").await.unwrap(), None);
        assert_eq!(b.verifying("x").await.unwrap(), None);
        assert_eq!(b.verifying("99999").await.unwrap(), None);
    }
    }
}
