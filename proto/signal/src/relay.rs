//! The media transmission unit (MTU) in the platform protocol: what an MTU reports about
//! itself, how an SCU picks one (H.626.4 7.2, Sd), and how a client's viewing path is named.
//!
//! H.626.4 7 uses the MTU "only when the P2P channel fails": it relays a camera's stream
//! (Pd / Mp towards the PU, Cd / Mc towards the CU) and serves STUN and TURN. An MTU
//! registers with an SCU like a device ([`crate::ps::DeviceKind::Mtu`]) and reports its
//! addresses and load every few seconds ([`crate::ps::DeviceToScu::MtuReport`]); the SCU
//! keeps the table and answers the CMU's [`crate::sc::CmuToScu::SelectMtu`] with
//! [`select_mtu`].

use serde::{Deserialize, Serialize};

use peercam_base::DeviceId;

/// The first line a camera sends on its relay channel to an MTU (Pd), after TLS and
/// before RTSP: `PEERCAM-RELAY/1 <ticket>\r\n`. The MTU then speaks RTSP as a client.
pub const RELAY_HELLO: &str = "PEERCAM-RELAY/1";

/// Where an MTU serves, as it reports itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MtuAddresses {
    /// RTSP relay for viewers (Mc / Cd), `host:port`.
    pub rtsp: String,
    /// Where cameras open their outbound media channel (Pd / Mp), `host:port`, TLS.
    pub tunnel: String,
    /// STUN/TURN server URIs (RFC 7064 / 7065), e.g. `turn:198.51.100.10:3478?transport=udp`.
    #[serde(default)]
    pub turn: Vec<String>,
    /// A free-form region label, compared with the camera's SCU region ("nearest").
    #[serde(default)]
    pub region: String,
}

/// An MTU's load, reported with its addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MtuLoad {
    /// Cameras relayed now (upstreams).
    pub upstreams: u32,
    /// Viewers served now.
    pub viewers: u32,
    /// Relayed bit rate towards viewers, kbit/s.
    pub out_kbps: u32,
    /// How many viewers the MTU is sized for; 0 means it takes no new sessions (draining).
    pub capacity: u32,
}

impl MtuLoad {
    /// Fraction of capacity in use, in per mille (1000 = full); `u32::MAX` when draining.
    pub fn per_mille(&self) -> u32 {
        if self.capacity == 0 {
            return u32::MAX;
        }
        let used = u64::from(self.viewers) * 1000 / u64::from(self.capacity);
        u32::try_from(used).unwrap_or(u32::MAX)
    }

    /// Whether the MTU can take one more viewer.
    pub fn has_room(&self) -> bool {
        self.capacity > 0 && self.viewers < self.capacity
    }
}

/// One MTU as the SCU knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MtuOffer {
    /// The MTU's identity.
    pub mtu: DeviceId,
    /// Where it serves.
    pub addresses: MtuAddresses,
    /// Its last reported load.
    pub load: MtuLoad,
}

/// H.626.4 7.2: pick the MTU for a new session among `candidates`: only MTUs with room;
/// the least loaded first (per mille of capacity), then one in `region` (the nearest), then
/// the lowest id so that the choice is stable. `None` when no MTU has room.
pub fn select_mtu<'a>(candidates: &'a [MtuOffer], region: &str) -> Option<&'a MtuOffer> {
    candidates
        .iter()
        .filter(|c| c.load.has_room())
        .min_by(|a, b| {
            let far = |c: &MtuOffer| u8::from(c.addresses.region != region);
            (a.load.per_mille(), far(a), a.mtu.as_str()).cmp(&(
                b.load.per_mille(),
                far(b),
                b.mtu.as_str(),
            ))
        })
}

/// How a viewer reaches a camera, best first (issue: "P2P first, relay last").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PathKind {
    /// Same LAN: the camera's local address.
    Lan,
    /// The camera has a public address of its own (no NAT in the way).
    Public,
    /// A port mapping the camera obtained from its gateway (8.3, UPnP IGD / NAT-PMP / PCP).
    Mapped,
    /// UDP hole punching coordinated by the SCU.
    Punched,
    /// Relayed by an MTU (RTSP over TCP, Mc / Cd).
    Relay,
}

impl PathKind {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lan => "lan",
            Self::Public => "public",
            Self::Mapped => "mapped",
            Self::Punched => "punched",
            Self::Relay => "relay",
        }
    }

    /// Whether media flows point to point (everything but the relay).
    pub fn is_direct(self) -> bool {
        self != Self::Relay
    }
}

/// One way to play a camera, as the CMU offers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MediaPath {
    /// What kind of path.
    pub kind: PathKind,
    /// `rtsp://HOST:PORT/...?token=...` (for [`PathKind::Punched`], `rtsp://punched/...`: the
    /// RTSP session runs over the punched QUIC stream, see [`PunchDescription`]).
    pub url: String,
    /// For [`PathKind::Punched`]: the STUN server (`host:port`) to learn the client's public
    /// address from before sending its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stun: Option<String>,
}

/// One side's description for UDP hole punching (H.626.4 8.3, 8.4), exchanged through the
/// platform: ICE credentials and candidates (RFC 8445, candidates as RFC 8839 text) and the
/// SHA-256 fingerprint of the side's QUIC certificate (pinned by the other side, like DTLS
/// fingerprints in WebRTC). The CU sends its own with `POST /api/v1/devices/{id}/punch`; the
/// CMU hands it to the camera ([`crate::cmd::DeviceCommand::Punch`]) and returns the camera's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PunchDescription {
    /// ICE username fragment and password.
    pub credentials: PunchCredentials,
    /// ICE candidates, `candidate:...` lines.
    pub candidates: Vec<String>,
    /// `sha-256 AB:CD:...` of the side's QUIC certificate.
    pub fingerprint: String,
}

/// ICE short-term credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PunchCredentials {
    /// Username fragment.
    pub ufrag: String,
    /// Password.
    pub pwd: String,
}

impl PunchDescription {
    /// Whether the description is within the limits the platform forwards: at most 16
    /// candidates of at most 256 bytes, short credentials and fingerprint.
    pub fn is_reasonable(&self) -> bool {
        self.candidates.len() <= 16
            && self.candidates.iter().all(|c| c.len() <= 256)
            && self.credentials.ufrag.len() <= 256
            && self.credentials.pwd.len() <= 256
            && self.fingerprint.len() <= 128
    }
}

/// What a camera reported of its addresses (H.626.4 8.3 step 2) and what the CMU made of
/// them (step 4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAddresses {
    /// RTSP authorities on the camera's own interfaces, `host:port`.
    pub local: Vec<String>,
    /// Port mappings obtained from the gateway, `host:port`.
    pub mapped: Vec<String>,
    /// The public address as the SCU saw the device connect (its NAT's outside address).
    pub observed_ip: Option<String>,
}

/// Whether `ip` is a private, loopback, link-local or CGNAT IPv4/IPv6 address (a LAN
/// address, not reachable from the internet).
pub fn is_lan_ip(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(id: u8, viewers: u32, capacity: u32, region: &str) -> MtuOffer {
        MtuOffer {
            mtu: DeviceId::from_random([id; 10]),
            addresses: MtuAddresses {
                rtsp: "198.51.100.10:8554".into(),
                tunnel: "198.51.100.10:8555".into(),
                turn: vec![],
                region: region.into(),
            },
            load: MtuLoad {
                upstreams: 0,
                viewers,
                out_kbps: 0,
                capacity,
            },
        }
    }

    #[test]
    fn h626_7_2_least_loaded_then_nearest() {
        let a = offer(1, 10, 100, "eu");
        let b = offer(2, 5, 100, "us");
        let c = offer(3, 5, 100, "eu");
        let all = [a, b.clone(), c.clone()];
        assert_eq!(select_mtu(&all, "eu").map(|o| &o.mtu), Some(&c.mtu));
        assert_eq!(select_mtu(&all, "us").map(|o| &o.mtu), Some(&b.mtu));
        // Full and draining MTUs are never chosen.
        let full = [offer(1, 100, 100, "eu"), offer(2, 0, 0, "eu")];
        assert_eq!(select_mtu(&full, "eu"), None);
    }

    #[test]
    fn lan_addresses() {
        for ip in [
            "10.0.1.2",
            "192.168.1.1",
            "172.16.0.9",
            "127.0.0.1",
            "100.64.0.1",
            "fd00::1",
        ] {
            assert!(is_lan_ip(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["198.51.100.2", "8.8.8.8", "2001:db8::1", "100.128.0.1"] {
            assert!(!is_lan_ip(ip.parse().expect("ip")), "{ip}");
        }
    }
}
