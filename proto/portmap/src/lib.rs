//! Asking a home gateway for a port mapping (H.626.4 8.3 step 1: "PU asks its gateway for
//! traversal (port mapping) and gets the result").
//!
//! The crate is **sans-IO**: codecs take and return bytes, the [`mapper::Mapper`] state
//! machine takes bytes and `now: Instant` and returns transmits, events and a timeout.
//! The caller owns sockets and clocks (see `peercam_net::portmap` for the tokio driver).
//!
//! | module | what |
//! |---|---|
//! | [`natpmp`] | NAT-PMP (RFC 6886): external address and MAP requests and responses |
//! | [`pcp`] | PCP (RFC 6887): MAP requests and responses with options |
//! | [`upnp`] | UPnP IGD: SSDP search and answers, device description, SOAP actions, HTTP/1.1 framing |
//! | [`mapper`] | a client that tries PCP, then NAT-PMP, then UPnP, renews and releases |
//!
//! # Example: a NAT-PMP mapping request and its answer
//!
//! ```
//! use peercam_portmap::{Protocol, natpmp};
//! # fn main() -> Result<(), peercam_portmap::Error> {
//! let req = natpmp::Request::Map {
//!     protocol: Protocol::Tcp,
//!     internal_port: 8554,
//!     suggested_external_port: 8554,
//!     lifetime: 7200,
//! };
//! let bytes = req.encode();
//! assert_eq!(natpmp::Request::decode(&bytes)?, req);
//!
//! let answer = natpmp::Response {
//!     opcode: 2,
//!     result: natpmp::ResultCode::Success,
//!     epoch: 77,
//!     body: Some(natpmp::ResponseBody::Map {
//!         internal_port: 8554,
//!         external_port: 40001,
//!         lifetime: 3600,
//!     }),
//! }
//! .encode();
//! let decoded = natpmp::Response::decode(&answer)?;
//! assert_eq!(decoded.result, natpmp::ResultCode::Success);
//! # Ok(())
//! # }
//! ```

mod error;
pub mod mapper;
pub mod natpmp;
pub mod pcp;
pub mod upnp;

pub use error::Error;

/// The transport protocol of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl Protocol {
    /// The IANA protocol number (PCP, RFC 6887 11.1): 17 for UDP, 6 for TCP.
    pub const fn iana(self) -> u8 {
        match self {
            Self::Udp => 17,
            Self::Tcp => 6,
        }
    }

    /// The protocol of an IANA protocol number.
    pub const fn from_iana(n: u8) -> Option<Self> {
        match n {
            17 => Some(Self::Udp),
            6 => Some(Self::Tcp),
            _ => None,
        }
    }

    /// The NAT-PMP opcode of a MAP request (RFC 6886 3.3): 1 for UDP, 2 for TCP.
    pub const fn natpmp_opcode(self) -> u8 {
        match self {
            Self::Udp => 1,
            Self::Tcp => 2,
        }
    }

    /// The UPnP `NewProtocol` value: `"UDP"` or `"TCP"`.
    pub const fn upnp_name(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
        }
    }
}
