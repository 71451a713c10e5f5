//! The media play authorisation of H.626.4 8.4: the CMU's "hash token".
//!
//! The CMU mints a token when a user asks to play a device (8.4 steps 1-3) and puts it in the
//! RTSP URL it hands out. The PU cannot check it alone: it asks the CMU through its SCU
//! (8.4 steps 5-8), and only then answers the RTSP request. A token is bound to one device,
//! one user and a set of scopes, carries the viewer's capabilities (clause 7: the PU adapts
//! encoding to them), a one-time id, an expiry and the device's ACL version, and is
//! authenticated with HMAC-SHA256 under a key only the CMU holds.
//!
//! Wire form: `pct2.<kid>.<payload>.<mac>`. `kid` names the CMU's signing key (1-20 ASCII
//! digits: several CMU instances share a set of rotating keys, docs/design/scale-out.md);
//! `payload` is JSON ([`PlayClaims`]) and `mac` the HMAC-SHA256 over the key id and the
//! payload, both base64url without padding. The older form `pct1.<payload>.<mac>` had no key
//! id; its key lived only as long as one CMU process, so no such token outlives the upgrade,
//! and it is refused as malformed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use peercam_base::{DeviceId, ScopeSet};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::refusal::Refusal;

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 1024;
const PREFIX: &str = "pct2.";
const MAC_CONTEXT: &[u8] = b"peercam/play/v2.";
/// Longest key id, in digits.
pub const MAX_KID_LEN: usize = 20;

/// What a viewer can take (H.626.4 clause 7: "max resolution, video type, bit rate").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Caps {
    /// Widest picture, pixels.
    pub max_width: u16,
    /// Tallest picture, pixels.
    pub max_height: u16,
    /// Highest frame rate, 1-25.
    pub max_fps: u8,
    /// Highest video bit rate, kbit/s.
    pub max_kbps: u32,
    /// Audio codec wanted; `None` (on the wire `"none"`) for no audio track.
    #[serde(with = "audio_or_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "pcmu"))]
    pub audio: Option<AudioCodec>,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            max_width: 1280,
            max_height: 720,
            max_fps: 25,
            max_kbps: 2000,
            audio: Some(AudioCodec::Pcmu),
        }
    }
}

/// Audio codecs of H.626.4 (G.711 mu-law and A-law, G.722): the workspace's one codec type.
pub use peercam_rtp::AudioCodec;

/// Serde for an audio choice: a codec's name (`pcmu`, `pcma`, `g722`), or `"none"` for no
/// audio track. Use with `#[serde(with = "audio_or_none")]` on an `Option<AudioCodec>`.
pub mod audio_or_none {
    use serde::de::Error as _;
    use serde::{Deserialize as _, Deserializer, Serialize as _, Serializer};

    use super::AudioCodec;

    /// Every accepted name.
    pub const NAMES: [&str; 4] = ["pcmu", "pcma", "g722", "none"];

    /// Writes the codec's name, or `none`.
    pub fn serialize<S: Serializer>(v: &Option<AudioCodec>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(c) => c.serialize(s),
            None => s.serialize_str("none"),
        }
    }

    /// Reads a codec's name, or `none`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<AudioCodec>, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(d)?;
        match name.as_ref() {
            "none" => Ok(None),
            "pcmu" => Ok(Some(AudioCodec::Pcmu)),
            "pcma" => Ok(Some(AudioCodec::Pcma)),
            "g722" => Ok(Some(AudioCodec::G722)),
            other => Err(D::Error::unknown_variant(other, &NAMES)),
        }
    }

    /// The same for an optional field (`Option<Option<AudioCodec>>`): absent is `None`,
    /// `"none"` is `Some(None)`. Use with `#[serde(default, with = "audio_or_none::field")]`.
    pub mod field {
        use serde::{Deserializer, Serializer};

        use super::AudioCodec;

        /// Writes the choice (skip the field when it is `None`).
        pub fn serialize<S: Serializer>(
            v: &Option<Option<AudioCodec>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match v {
                Some(choice) => super::serialize(choice, s),
                None => s.serialize_none(),
            }
        }

        /// Reads a present field.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Option<AudioCodec>>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

/// What a play token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayClaims {
    /// The device it is for.
    pub dev: DeviceId,
    /// The user it was minted for.
    pub sub: i64,
    /// Scopes granted, as bits (see `peercam_base::ScopeSet`).
    pub scp: u8,
    /// One-time id, 16 random bytes base64url.
    pub jti: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
    /// The device's ACL version when minted (docs/security.md D4/D5).
    pub acl: i64,
    /// The viewer's capabilities.
    pub cap: Caps,
    /// For playback of recordings (8.7.2.2, 8.7.3): the camera whose recordings `dev`
    /// (the recorder) may serve. Absent for live media.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cam: Option<DeviceId>,
}

impl PlayClaims {
    /// The scopes as a set.
    pub fn scopes(&self) -> ScopeSet {
        ScopeSet::from_bits(self.scp)
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenRefusal {
    /// Not a token of this form.
    #[error("malformed token")]
    Malformed,
    /// The MAC does not verify: forged or altered.
    #[error("token signature does not verify")]
    Forged,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
    /// Minted for another device.
    #[error("token is for another device")]
    WrongDevice,
    /// Used before.
    #[error("token was already used")]
    Replayed,
    /// Sharing or binding changed since it was minted.
    #[error("access to the device changed since the token was issued")]
    StaleAcl,
    /// The user may no longer watch this device.
    #[error("the user may not watch this device")]
    NotAllowed,
}

impl TokenRefusal {
    /// Stable wire code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Forged => "forged",
            Self::Expired => "expired",
            Self::WrongDevice => "wrong_device",
            Self::Replayed => "replayed",
            Self::StaleAcl => "stale_acl",
            Self::NotAllowed => "not_allowed",
        }
    }
}

fn mac(key: &[u8], kid: &str, payload_b64: &str) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as hmac::Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(MAC_CONTEXT);
    m.update(kid.as_bytes());
    m.update(b".");
    m.update(payload_b64.as_bytes());
    m.finalize().into_bytes().into()
}

/// Mints a token signed with the key `kid` (1-[`MAX_KID_LEN`] ASCII digits).
pub fn mint(kid: &str, key: &[u8], claims: &PlayClaims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let tag = URL_SAFE_NO_PAD.encode(mac(key, kid, &payload));
    format!("{PREFIX}{kid}.{payload}.{tag}")
}

/// The parts of a token of the right form: key id, payload, tag.
fn split(token: &str) -> Result<(&str, &str, &str), TokenRefusal> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenRefusal::Malformed);
    }
    let rest = token.strip_prefix(PREFIX).ok_or(TokenRefusal::Malformed)?;
    let (kid, rest) = rest.split_once('.').ok_or(TokenRefusal::Malformed)?;
    let (payload, tag) = rest.split_once('.').ok_or(TokenRefusal::Malformed)?;
    if kid.is_empty() || kid.len() > MAX_KID_LEN || !kid.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TokenRefusal::Malformed);
    }
    Ok((kid, payload, tag))
}

/// The id of the key a token names, read before anything is verified (to pick the key);
/// nothing else of the token may be trusted until [`verify`] passes.
pub fn key_id(token: &str) -> Result<&str, TokenRefusal> {
    split(token).map(|(kid, _, _)| kid)
}

/// Checks form and MAC under `key` (the key [`key_id`] names), then returns the claims;
/// expiry, device, replay and ACL checks are the caller's, who holds the state
/// ([`check_claims`] does the stateless ones).
pub fn verify(key: &[u8], token: &str) -> Result<PlayClaims, TokenRefusal> {
    let (kid, payload, tag) = split(token)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenRefusal::Malformed)?;
    if tag.len() != 32 {
        return Err(TokenRefusal::Malformed);
    }
    if !bool::from(mac(key, kid, payload).ct_eq(&tag)) {
        return Err(TokenRefusal::Forged);
    }
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenRefusal::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| TokenRefusal::Malformed)
}

/// The stateless checks: expiry (with `skew_s` tolerance) and the device asking.
pub fn check_claims(
    claims: &PlayClaims,
    device: &DeviceId,
    now_s: u64,
    skew_s: u64,
) -> Result<(), TokenRefusal> {
    if claims.dev != *device {
        return Err(TokenRefusal::WrongDevice);
    }
    if now_s > claims.exp.saturating_add(skew_s) || claims.iat > now_s.saturating_add(skew_s) {
        return Err(TokenRefusal::Expired);
    }
    Ok(())
}

/// H.626.4 8.4 steps 5-6: a viewer presented `token` to a device; is it legitimate? Declared
/// once and carried unchanged device -> SCU (Ps) and, with the device's id, SCU -> CMU (Sc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayCheck {
    /// The token from the viewer's request.
    pub token: String,
    /// The viewer's address as the device sees it (for the audit log).
    pub client: String,
}

/// What the CMU grants a PU for one play (8.4 step 8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayGrant {
    /// The viewer's account.
    pub user: i64,
    /// Its scopes on the device.
    pub scopes: ScopeSet,
    /// The viewer's capabilities.
    pub caps: Caps,
    /// When the grant ends (Unix s); the PU may keep streaming past it only while the
    /// platform does not revoke.
    pub expires_at: u64,
    /// For playback: the camera whose recordings the grant covers (the recorder must serve
    /// exactly this camera). Absent for live media.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cam: Option<DeviceId>,
}

/// The CMU's answer to a play check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PlayVerdict {
    /// Allowed.
    Granted {
        /// What was granted.
        grant: PlayGrant,
    },
    /// Refused.
    Refused {
        /// Why ([`TokenRefusal`] codes, or a transient [`Refusal::Unavailable`] /
        /// [`Refusal::Timeout`]).
        code: Refusal,
        /// Explanation.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h626_8_4_caps_audio_wire_names() {
        let mut caps = Caps::default();
        let json = serde_json::to_value(caps).unwrap();
        assert_eq!(json["audio"], "pcmu");
        caps.audio = None;
        let json = serde_json::to_value(caps).unwrap();
        assert_eq!(json["audio"], "none");
        let back: Caps = serde_json::from_value(json).unwrap();
        assert_eq!(back.audio, None);
        for (name, codec) in [
            ("pcma", Some(AudioCodec::Pcma)),
            ("g722", Some(AudioCodec::G722)),
        ] {
            let mut json = serde_json::to_value(Caps::default()).unwrap();
            json["audio"] = name.into();
            assert_eq!(serde_json::from_value::<Caps>(json).unwrap().audio, codec);
        }
        let mut json = serde_json::to_value(Caps::default()).unwrap();
        json["audio"] = "opus".into();
        let err = serde_json::from_value::<Caps>(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `opus`"), "{err}");
    }
    use proptest::prelude::*;

    fn claims() -> PlayClaims {
        PlayClaims {
            dev: DeviceId::from_random([1; 10]),
            sub: 7,
            scp: 1,
            jti: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            iat: 1000,
            exp: 1060,
            acl: 3,
            cap: Caps::default(),
            cam: None,
        }
    }

    #[test]
    fn h626_8_4_token_round_trip_and_refusals() {
        let key = [9u8; 32];
        let t = mint("7", &key, &claims());
        assert!(t.starts_with("pct2.7."), "{t}");
        assert_eq!(key_id(&t), Ok("7"));
        assert_eq!(verify(&key, &t), Ok(claims()));
        assert_eq!(verify(&[8u8; 32], &t), Err(TokenRefusal::Forged));
        assert_eq!(verify(&key, "pct2.abc"), Err(TokenRefusal::Malformed));
        // Another key id under the same key and payload: the id is signed too.
        let swapped = t.replacen("pct2.7.", "pct2.8.", 1);
        assert_eq!(key_id(&swapped), Ok("8"));
        assert_eq!(verify(&key, &swapped), Err(TokenRefusal::Forged));
        for bad in [
            "pct2..p.m",
            "pct2.x1.p.m",
            "pct2.-1.p.m",
            "pct2.123456789012345678901.p.m",
        ] {
            assert_eq!(key_id(bad), Err(TokenRefusal::Malformed), "{bad}");
        }
        // The form before key ids is no longer read (its key died with its process).
        let (_, rest) = t.split_once("pct2.7.").unwrap_or_default();
        assert_eq!(
            verify(&key, &format!("pct1.{rest}")),
            Err(TokenRefusal::Malformed)
        );
        assert_eq!(
            verify(&key, &"x".repeat(2000)),
            Err(TokenRefusal::Malformed)
        );
        let c = claims();
        assert_eq!(check_claims(&c, &c.dev, 1030, 0), Ok(()));
        assert_eq!(
            check_claims(&c, &c.dev, 1061, 0),
            Err(TokenRefusal::Expired)
        );
        assert_eq!(
            check_claims(&c, &DeviceId::from_random([2; 10]), 1030, 0),
            Err(TokenRefusal::WrongDevice)
        );
        // A swapped payload (another user's claims under this MAC) is forged.
        let mut other = claims();
        other.sub = 8;
        let t2 = mint("7", &key, &other);
        let (p1, m1) = t.rsplit_once('.').unwrap_or_default();
        let (p2, _) = t2.rsplit_once('.').unwrap_or_default();
        assert_ne!(p1, p2);
        assert_eq!(
            verify(&key, &format!("{p2}.{m1}")),
            Err(TokenRefusal::Forged)
        );
    }

    proptest! {
        #[test]
        fn any_change_to_a_token_is_refused(pos in 5usize..200, byte in any::<u8>()) {
            let key = [3u8; 32];
            let t = mint("12", &key, &claims());
            let mut b = t.clone().into_bytes();
            let pos = pos % b.len();
            prop_assume!(b[pos] != byte);
            b[pos] = byte;
            let altered = String::from_utf8_lossy(&b).into_owned();
            prop_assume!(altered != t);
            prop_assert!(verify(&key, &altered).is_err());
        }

        #[test]
        fn verify_never_panics(s in ".{0,300}") {
            let _ = key_id(&s);
            let _ = verify(&[0; 32], &s);
        }

        #[test]
        fn tokens_round_trip_under_any_key_id(kid in 0u64.., sub in any::<i64>(), key in any::<[u8; 32]>()) {
            let mut c = claims();
            c.sub = sub;
            let kid = kid.to_string();
            let t = mint(&kid, &key, &c);
            prop_assert_eq!(key_id(&t), Ok(kid.as_str()));
            prop_assert_eq!(verify(&key, &t), Ok(c));
        }
    }
}
