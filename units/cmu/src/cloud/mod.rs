//! The CMU's side of cloud storage (H.626.4 8.7.1, docs/design/cloud-storage.md): the
//! grant signing key and Su `cs_config`; the cloud strategy (CU -> CMU -> SCU -> PU) with
//! the assignment of a CS and an opaque prefix per (camera, binding), `cs_account` and
//! `cs_camera` (Su); device grants (`cloud_grant`, Ps); and the key service (`cloud_key`,
//! Su): data keys per prefix, wrapped by the CMU's key-encryption key.
//!
//! The CMU signs Cp grants (`pcg1`, Ed25519) with one key, made on first start and kept in
//! the database (like the VAPID key), so grants stay valid across restarts. Each time a CS
//! registers, the CMU sends it `cs_config` with the key's public half: a CS accepts no
//! grant of the CMU's before that (and takes the CMU's keys in place of its configured
//! ones), then the account and storage configuration of every camera it stores.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use peercam_base::DeviceId;
use peercam_cloud::Prefix;
use peercam_cloud::envelope::{self, Key32};
use peercam_cloud::grant::{self, Claims, Kind, Op, Ops};
use peercam_signal::cmd::{CsGrantKey, DeviceCommand, DeviceReply, PlatformAnswer};
use peercam_signal::ps::DeviceKind;
use peercam_signal::record::{CloudRecordingState, Strategy};
use peercam_signal::refusal::Refusal;
use sha2::{Digest as _, Sha256};

use crate::control::device_error;
use crate::error::{ApiErr, ApiResult};
use crate::store::cloud::CloudCamera;
use crate::store::{self, Store, StoreError};
use crate::{Shared, now_s};

pub(crate) mod plans;

use plans::account_of;

/// The `link_keys` purpose under which the grant key's seed is kept.
const GRANT_KEY_PURPOSE: &str = "cloud-grant";
/// The `link_keys` purpose under which the embedded default's key-encryption key is kept.
const KEK_PURPOSE: &str = "cloud-kek";
/// The data key id of a prefix's first key.
const FIRST_KID: &str = "d1";

/// The CMU's grant signing key and key-encryption key.
pub(crate) struct Cloud {
    key: SigningKey,
    kid: String,
    kek: Key32,
}

impl std::fmt::Debug for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the keys.
        f.debug_struct("Cloud")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The key id of a grant key: `g` and the first 9 bytes of the SHA-256 of its public key,
/// base64url (so a new key never reuses an old id).
fn kid_of(public: &[u8; 32]) -> String {
    let digest = Sha256::digest(public);
    format!("g{}", URL_SAFE_NO_PAD.encode(&digest[..9]))
}

/// Reads a key-encryption key file: 32 raw bytes, or 43 characters of base64url.
pub(crate) fn read_kek_file(path: &Path) -> Result<Key32, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Ok(k) = <[u8; 32]>::try_from(bytes.as_slice()) {
        return Ok(k);
    }
    let text = String::from_utf8_lossy(&bytes);
    URL_SAFE_NO_PAD
        .decode(text.trim())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| {
            format!(
                "{}: not 32 bytes (raw or base64url without padding)",
                path.display()
            )
        })
}

impl Cloud {
    /// The keys kept in the database, made from `fresh` on first use (the KEK from
    /// `fresh` hashed, replaced by [`Cloud::with_kek`] when configured).
    pub(crate) async fn load(store: &Store, fresh: [u8; 32]) -> Result<Self, StoreError> {
        let seed = store::snapshots::link_key(store, GRANT_KEY_PURPOSE, fresh).await?;
        let key = SigningKey::from_bytes(&seed);
        let kid = kid_of(&key.verifying_key().to_bytes());
        let kek_fresh: [u8; 32] = Sha256::digest([&fresh[..], b"kek"].concat()).into();
        let kek = store::snapshots::link_key(store, KEK_PURPOSE, kek_fresh).await?;
        Ok(Self { key, kid, kek })
    }

    /// Uses `kek` (from `cloud.kek_file`) in place of the database's.
    pub(crate) fn with_kek(mut self, kek: Key32) -> Self {
        self.kek = kek;
        self
    }

    /// The key id grants name.
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The signing key.
    #[cfg(test)]
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The Su `cs_config` for a CS.
    pub(crate) fn cs_config(&self) -> DeviceCommand {
        DeviceCommand::CsConfig {
            grant_keys: vec![CsGrantKey {
                kid: self.kid.clone(),
                public_key: URL_SAFE_NO_PAD.encode(self.key.verifying_key().to_bytes()),
            }],
        }
    }

    /// A device grant for the camera of `c` (H.626.4 8.7.1): `put` and `state`, and
    /// `prune` when its strategy overwrites the oldest (8.7.1 "asks the CS to delete the
    /// oldest files"). Returns the grant and its expiry, Unix seconds.
    fn device_grant(
        &self,
        c: &CloudCamera,
        cyclic: bool,
        ttl_s: u64,
    ) -> Result<(String, u64), String> {
        let pfx: Prefix = c.prefix.parse().map_err(|_| "bad prefix".to_owned())?;
        let now = now_s();
        let mut ops = vec![Op::Put, Op::State];
        if cyclic {
            ops.push(Op::Prune);
        }
        let claims = Claims {
            v: grant::VERSION,
            aud: c.cs.to_string(),
            kind: Kind::Device,
            sub: c.camera.to_string(),
            pfx,
            ops: Ops::of(&ops),
            from_ms: None,
            to_ms: None,
            iat: now,
            exp: now + ttl_s,
            epoch: c.epoch,
            jti: URL_SAFE_NO_PAD.encode(crate::random_bytes::<12>()),
            kid: self.kid.clone(),
        };
        let g = grant::sign(&claims, &self.key).map_err(|e| e.to_string())?;
        Ok((g, claims.exp))
    }

    /// A viewer grant for user `user` (H.626.4 8.7.1 download): `read` on the camera's
    /// prefix within `[from_ms, to_ms)`, for `ttl_s`. Returns the grant and its expiry.
    fn viewer_grant(
        &self,
        c: &CloudCamera,
        user: i64,
        (from_ms, to_ms): (u64, u64),
        ttl_s: u64,
    ) -> Result<(String, u64), String> {
        let pfx: Prefix = c.prefix.parse().map_err(|_| "bad prefix".to_owned())?;
        let now = now_s();
        let claims = Claims {
            v: grant::VERSION,
            aud: c.cs.to_string(),
            kind: Kind::Viewer,
            sub: format!("u{user}"),
            pfx,
            ops: Ops::of(&[Op::Read]),
            from_ms: Some(from_ms),
            to_ms: Some(to_ms),
            iat: now,
            exp: now + ttl_s,
            epoch: c.epoch,
            jti: URL_SAFE_NO_PAD.encode(crate::random_bytes::<12>()),
            kid: self.kid.clone(),
        };
        let g = grant::sign(&claims, &self.key).map_err(|e| e.to_string())?;
        Ok((g, claims.exp))
    }

    /// A share grant (issue 17 item 9) for clip `share` of `prefix` on CS `cs` at `epoch`:
    /// `ops` on that clip's key only, for `ttl_s`. Returns the grant and its expiry.
    pub(crate) fn share_grant(
        &self,
        (cs, prefix, epoch): (&DeviceId, &str, u64),
        share: &str,
        ops: &[Op],
        ttl_s: u64,
    ) -> Result<(String, u64), String> {
        let pfx: Prefix = prefix.parse().map_err(|_| "bad prefix".to_owned())?;
        let now = now_s();
        let claims = Claims {
            v: grant::VERSION,
            aud: cs.to_string(),
            kind: Kind::Share,
            sub: share.to_owned(),
            pfx,
            ops: Ops::of(ops),
            from_ms: None,
            to_ms: None,
            iat: now,
            exp: now + ttl_s.clamp(1, grant::MAX_LIFETIME_S),
            epoch,
            jti: URL_SAFE_NO_PAD.encode(crate::random_bytes::<12>()),
            kid: self.kid.clone(),
        };
        let g = grant::sign(&claims, &self.key).map_err(|e| e.to_string())?;
        Ok((g, claims.exp))
    }

    /// A new data key for `prefix` and `kid`, wrapped.
    fn new_wrapped_dek(&self, prefix: &Prefix, kid: &str) -> Result<Vec<u8>, String> {
        let dek: Key32 = crate::random_bytes::<32>();
        envelope::wrap_dek(&self.kek, prefix, kid, &dek, crate::random_bytes::<12>())
            .map_err(|e| e.to_string())
    }

    fn unwrap_dek(&self, prefix: &Prefix, kid: &str, wrapped: &[u8]) -> Result<Key32, String> {
        envelope::unwrap_dek(&self.kek, prefix, kid, wrapped).map_err(|e| e.to_string())
    }
}

fn is_cyclic(c: &CloudCamera) -> bool {
    c.strategy
        .as_deref()
        .and_then(|d| serde_json::from_str::<Strategy>(d).ok())
        .is_none_or(|s| s.retention.cyclic)
}

/// The CS's Cp base URL: the first address it reported, `https://` unless it names a scheme.
pub(crate) fn cs_url(st: &Shared, cs: &DeviceId) -> Option<String> {
    let e = st.platform.endpoints(cs).into_iter().next()?;
    Some(if e.contains("://") {
        e
    } else {
        format!("https://{e}")
    })
}

/// The CS new cameras go to: `cloud.cs`, else the first CS online.
async fn pick_cs(st: &Shared) -> ApiResult<DeviceId> {
    if let Some(id) = &st.config.cloud.cs {
        return id
            .parse()
            .map_err(|_| ApiErr::internal("cloud.cs", &"not a device id"));
    }
    let all = store::devices::of_kind(&st.store, DeviceKind::Cs).await?;
    all.into_iter()
        .find(|d| !d.disabled && st.platform.is_online(&d.id))
        .map(|d| d.id)
        .ok_or_else(|| {
            ApiErr::conflict(
                "no_cloud_storage",
                "no cloud storage unit is online; try again later",
            )
        })
}

/// The camera's assignment for its owner's binding: kept if there is one, else a CS and a
/// fresh random prefix with its first data key (a new binding gets a new prefix, so a new
/// owner never reads an old owner's history).
pub(crate) async fn assignment(
    st: &Shared,
    camera: &DeviceId,
    owner: i64,
) -> ApiResult<CloudCamera> {
    let old = store::cloud::get(&st.store, camera).await?;
    if let Some(c) = &old
        && c.owner == owner
    {
        return Ok(c.clone());
    }
    let cs = pick_cs(st).await?;
    let prefix = Prefix::from_bytes(crate::random_bytes::<16>());
    let c = CloudCamera {
        camera: camera.clone(),
        cs,
        prefix: prefix.to_string(),
        owner,
        epoch: old.map_or(1, |o| o.epoch + 1),
        write_kid: FIRST_KID.into(),
        strategy: None,
    };
    let wrapped = st
        .cloud
        .new_wrapped_dek(&prefix, FIRST_KID)
        .map_err(|e| ApiErr::internal("wrap data key", &e))?;
    store::cloud::assign(&st.store, &c, &wrapped, now_s()).await?;
    tracing::info!(%camera, cs = %c.cs, "camera assigned to cloud storage");
    Ok(c)
}

/// Su: the camera's account pool and storage configuration, sent to its CS and awaited.
pub(crate) async fn configure_cs(st: &Shared, c: &CloudCamera) -> ApiResult<()> {
    // 6.1.13: the pool as the owner's plan sets it (the free plan until it chooses one).
    let account = plans::account_command(st, c.owner).await?;
    let camera = DeviceCommand::CsCamera {
        camera: c.camera.clone(),
        prefix: c.prefix.clone(),
        account: account_of(c.owner),
        epoch: c.epoch,
        write_kid: c.write_kid.clone(),
    };
    for cmd in [account, camera] {
        match st.platform.command(&c.cs, cmd).await? {
            (_, DeviceReply::Done) => {}
            (_, other) => return Err(device_error(other)),
        }
    }
    Ok(())
}

/// `set_cloud_recording` for the camera of `c`, with a fresh grant.
fn set_command(st: &Shared, c: &CloudCamera, strategy: &Strategy) -> ApiResult<DeviceCommand> {
    let cs_url = cs_url(st, &c.cs).ok_or_else(|| {
        ApiErr::conflict(
            "no_cloud_storage",
            "the camera's cloud storage unit is offline; try again later",
        )
    })?;
    let (grant, _) = st
        .cloud
        .device_grant(c, strategy.retention.cyclic, st.config.cloud.grant_ttl_s)
        .map_err(|e| ApiErr::internal("grant", &e))?;
    Ok(DeviceCommand::SetCloudRecording {
        strategy: strategy.clone(),
        cs_url,
        prefix: c.prefix.clone(),
        grant,
    })
}

/// `PUT /api/v1/devices/{id}/recording` with `recorder: "cloud"` (H.626.4 8.7.1 recording
/// steps): assigns a CS and prefix if the camera has none, configures the CS (Su) and
/// waits for it, then sends the camera its strategy through the SCU. The caller checked
/// the `config` scope and the strategy.
pub(crate) async fn set_strategy(
    st: &Shared,
    camera: &DeviceId,
    strategy: &Strategy,
) -> ApiResult<CloudRecordingState> {
    let dev = store::devices::get(&st.store, camera)
        .await?
        .ok_or_else(ApiErr::no_device)?;
    if dev.kind != DeviceKind::Pu {
        return Err(ApiErr::bad_request(
            "not_a_camera",
            "only cameras record to the cloud",
        ));
    }
    let owner = dev
        .owner
        .ok_or_else(|| ApiErr::conflict("not_bound", "the camera has no owner"))?;
    let mut c = assignment(st, camera, owner).await?;
    configure_cs(st, &c).await?;
    let doc = serde_json::to_string(strategy).unwrap_or_default();
    c.strategy = Some(doc.clone());
    let cmd = set_command(st, &c, strategy)?;
    let (_, reply) = st.platform.command(camera, cmd).await?;
    let state = match reply {
        DeviceReply::CloudRecording { state } => *state,
        other => return Err(device_error(other)),
    };
    store::cloud::set_strategy(&st.store, camera, &doc).await?;
    Ok(state)
}

/// `GET /api/v1/devices/{id}/recording?recorder=cloud`: the camera's cloud state.
pub(crate) async fn state(st: &Shared, camera: &DeviceId) -> ApiResult<CloudRecordingState> {
    if store::cloud::get(&st.store, camera).await?.is_none() {
        return Err(ApiErr::not_found(
            "no_cloud_recording",
            "this camera has no cloud strategy",
        ));
    }
    match st
        .platform
        .command(camera, DeviceCommand::GetCloudRecording)
        .await?
    {
        (_, DeviceReply::CloudRecording { state }) => Ok(*state),
        (_, other) => Err(device_error(other)),
    }
}

/// A device came online: a CS gets `cs_config` and then the account and configuration of
/// every camera it stores (Su, re-sent at every registration), and those cameras online
/// their strategy with the CS's address; a camera with a cloud strategy gets it again
/// (8.7.1, like its other strategies).
pub(crate) async fn online(st: &Shared, id: &DeviceId) {
    let dev = match store::devices::get(&st.store, id).await {
        Ok(Some(d)) if !d.disabled => d,
        _ => return,
    };
    match dev.kind {
        DeviceKind::Cs => cs_online(st, id).await,
        DeviceKind::Pu => {
            if let Ok(Some(c)) = store::cloud::get(&st.store, id).await
                && dev.owner == Some(c.owner)
            {
                resend(st, &c).await;
            }
        }
        _ => {}
    }
}

/// Sends the camera of `c` its cloud strategy again, with a fresh grant and the CS's
/// current address.
async fn resend(st: &Shared, c: &CloudCamera) {
    let Some(strategy) = c
        .strategy
        .as_deref()
        .and_then(|d| serde_json::from_str::<Strategy>(d).ok())
    else {
        return;
    };
    let id = &c.camera;
    let sent = match set_command(st, c, &strategy) {
        Ok(cmd) => st.platform.command(id, cmd).await.map(|(_, r)| r),
        Err(e) => {
            tracing::info!(camera = %id, error = ?e, "cloud strategy not re-sent");
            return;
        }
    };
    match sent {
        Ok(DeviceReply::CloudRecording { .. }) => {
            tracing::info!(camera = %id, "cloud strategy re-sent");
        }
        other => tracing::warn!(camera = %id, reply = ?other, "cloud strategy not re-sent"),
    }
}

async fn cs_online(st: &Shared, id: &DeviceId) {
    match st.platform.command(id, st.cloud.cs_config()).await {
        Ok((_, DeviceReply::Done)) => {
            tracing::info!(cs = %id, kid = st.cloud.kid(), "cs_config delivered");
        }
        Ok((_, reply)) => {
            tracing::warn!(cs = %id, ?reply, "the CS refused cs_config");
            return;
        }
        Err(e) => {
            tracing::warn!(cs = %id, error = ?e, "cs_config not delivered");
            return;
        }
    }
    let cameras = store::cloud::of_cs(&st.store, id).await.unwrap_or_default();
    for c in cameras {
        if let Err(e) = configure_cs(st, &c).await {
            tracing::warn!(cs = %id, camera = %c.camera, error = ?e, "cs_camera not delivered");
            continue;
        }
        // The CS may be back at another address, and its cameras waiting: they get the
        // strategy again (and resume at once).
        if st.platform.is_online(&c.camera)
            && let Ok(Some(dev)) = store::devices::get(&st.store, &c.camera).await
            && dev.owner == Some(c.owner)
        {
            resend(st, &c).await;
        }
    }
}

/// Viewer grants live 5 minutes (design "Grants").
const VIEWER_GRANT_S: u64 = 300;

/// The camera's cloud assignment for its current owner, if it has one.
async fn current(st: &Shared, camera: &DeviceId) -> ApiResult<Option<CloudCamera>> {
    let Some(c) = store::cloud::get(&st.store, camera).await? else {
        return Ok(None);
    };
    let owner = store::devices::get(&st.store, camera)
        .await?
        .and_then(|d| d.owner);
    Ok((owner == Some(c.owner)).then_some(c))
}

fn no_cloud() -> ApiErr {
    ApiErr::not_found(
        "no_cloud_recording",
        "this camera has no recordings in cloud storage",
    )
}

/// `recorder=cloud` (H.626.4 8.7.1 playback): the CS holding the camera's prefix for its
/// current owner (an older binding's history is not the new owner's).
pub(crate) async fn recorder_of(st: &Shared, camera: &DeviceId) -> ApiResult<DeviceId> {
    current(st, camera)
        .await?
        .map(|c| c.cs)
        .ok_or_else(no_cloud)
}

/// `POST .../recordings/export {recorder: "cloud"}`: the CS's download URL for
/// `[from_ms, to_ms)` with a viewer grant of the caller (audited as minted). The caller
/// checked the `playback` scope and that something is recorded there.
pub(crate) async fn export_url(
    st: &Shared,
    p: &crate::auth::Principal,
    camera: &DeviceId,
    from_ms: u64,
    to_ms: u64,
) -> ApiResult<(String, u64)> {
    let c = current(st, camera).await?.ok_or_else(no_cloud)?;
    let base = cs_url(st, &c.cs).ok_or_else(|| {
        ApiErr::conflict(
            "device_offline",
            "the camera's cloud storage unit is offline; try again later",
        )
    })?;
    let (grant, expires_at) = st
        .cloud
        .viewer_grant(&c, p.id, (from_ms, to_ms), VIEWER_GRANT_S)
        .map_err(|e| ApiErr::internal("grant", &e))?;
    crate::audit::log(
        &st.store,
        crate::audit::Event::TokenMinted {
            user: p.id,
            device: camera,
            kind: crate::audit::Minted::ExportUrl,
            detail: "cloud",
        },
    )
    .await;
    let url = format!(
        "{base}/cc/v1/export/{camera}.mp4?from={}&to={}&grant={grant}",
        peercam_record::time::format_clock(from_ms),
        peercam_record::time::format_clock(to_ms),
    );
    Ok((url, expires_at))
}

fn refused(code: Refusal, message: &str) -> PlatformAnswer {
    PlatformAnswer::Refused {
        code,
        message: message.to_owned(),
    }
}

/// Ps `cloud_grant` (H.626.4 8.7.1): a camera refreshes its device grant. Only the camera
/// itself, bound to the owner of its prefix, with a cloud strategy.
pub(crate) async fn cloud_grant(
    st: &Shared,
    sender: &DeviceId,
    camera: &DeviceId,
) -> PlatformAnswer {
    if sender != camera {
        return refused(Refusal::Forbidden, "a camera asks only for its own grant");
    }
    let (Ok(Some(dev)), Ok(Some(c))) = (
        store::devices::get(&st.store, camera).await,
        store::cloud::get(&st.store, camera).await,
    ) else {
        return refused(Refusal::NotFound, "this camera has no cloud strategy");
    };
    if c.strategy.is_none() || dev.owner != Some(c.owner) || dev.disabled {
        return refused(Refusal::Forbidden, "this camera has no cloud strategy");
    }
    let Some(cs_url) = cs_url(st, &c.cs) else {
        return refused(Refusal::Unavailable, "the cloud storage unit is offline");
    };
    match st
        .cloud
        .device_grant(&c, is_cyclic(&c), st.config.cloud.grant_ttl_s)
    {
        Ok((grant, expires_at)) => PlatformAnswer::CloudGrant {
            grant,
            expires_at,
            cs_url,
        },
        Err(e) => {
            tracing::error!(error = %e, "cannot sign a grant");
            refused(Refusal::Unavailable, "cannot sign a grant now")
        }
    }
}

/// Su `cloud_key` (the key service): a CS asks for data key `kid` of `prefix`; answered
/// only when the prefix is assigned to that CS.
pub(crate) async fn cloud_key(
    st: &Shared,
    cs: &DeviceId,
    prefix: &str,
    kid: &str,
) -> PlatformAnswer {
    let deny = || refused(Refusal::Forbidden, "that prefix is not stored on this CS");
    let Ok(pfx) = prefix.parse::<Prefix>() else {
        return deny();
    };
    let Ok(Some(c)) = store::cloud::by_prefix(&st.store, prefix).await else {
        return deny();
    };
    if &c.cs != cs {
        tracing::warn!(%cs, camera = %c.camera, "a CS asked for another CS's data key");
        return deny();
    }
    let Ok(Some(wrapped)) = store::cloud::wrapped_key(&st.store, prefix, kid).await else {
        return refused(Refusal::NotFound, "no such data key");
    };
    match st.cloud.unwrap_dek(&pfx, kid, &wrapped) {
        Ok(dek) => PlatformAnswer::CloudKey {
            dek: URL_SAFE_NO_PAD.encode(dek),
        },
        Err(e) => {
            tracing::error!(%cs, error = %e, "a wrapped data key does not open (wrong KEK?)");
            refused(Refusal::Unavailable, "the data key cannot be opened")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn h626_8_7_1_the_grant_key_is_kept_across_restarts() {
        let db = store::testing::memory().await;
        let a = Cloud::load(&db, [1; 32]).await.unwrap();
        let b = Cloud::load(&db, [2; 32]).await.unwrap();
        assert_eq!(a.kid(), b.kid());
        assert_eq!(a.signing_key().to_bytes(), [1; 32]);
        assert_eq!(b.signing_key().to_bytes(), [1; 32]);
        let DeviceCommand::CsConfig { grant_keys } = a.cs_config() else {
            unreachable!()
        };
        assert_eq!(grant_keys.len(), 1);
        assert_eq!(grant_keys[0].kid, a.kid());
        a.cs_config().check_su().unwrap();
        // Another key has another id.
        let other = store::testing::memory().await;
        let c = Cloud::load(&other, [3; 32]).await.unwrap();
        assert_ne!(c.kid(), a.kid());
    }
}
