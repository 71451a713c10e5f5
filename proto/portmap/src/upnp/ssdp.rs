//! SSDP discovery of an Internet Gateway Device (UPnP Device Architecture 1.1, 1.3).

use std::net::{Ipv4Addr, SocketAddrV4};

use super::http::{header, parse_headers, parse_status_line};
use crate::Error;

/// The SSDP multicast group and port.
pub const MULTICAST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 255, 255, 250), 1900);
/// Search target of an IGD version 1 root device.
pub const ST_IGD_1: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
/// Search target of an IGD version 2 root device.
pub const ST_IGD_2: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:2";
/// The largest SSDP datagram accepted.
pub const MAX_SIZE: usize = 4096;

/// An M-SEARCH request for `st`, asking devices to answer within `mx` seconds (1 to 5).
pub fn m_search(st: &str, mx: u8) -> Vec<u8> {
    format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: {}\r\nST: {st}\r\n\r\n",
        mx.clamp(1, 5)
    )
    .into_bytes()
}

/// A device's answer to an M-SEARCH (or a `NOTIFY ssdp:alive`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsdpResponse {
    /// URL of the device description.
    pub location: String,
    /// The search target (ST, or NT of a NOTIFY).
    pub st: Option<String>,
    /// The unique service name.
    pub usn: Option<String>,
}

impl SsdpResponse {
    /// Parses an `HTTP/1.1 200 OK` search answer or a `NOTIFY * HTTP/1.1` announcement.
    pub fn parse(b: &[u8]) -> Result<Self, Error> {
        if b.len() > MAX_SIZE {
            return Err(Error::TooLarge {
                context: "SSDP",
                limit: MAX_SIZE,
            });
        }
        let text = String::from_utf8_lossy(b);
        let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
        let first = lines.next().unwrap_or_default();
        let notify = first.starts_with("NOTIFY ");
        if !notify && parse_status_line(first)? != 200 {
            return Err(Error::invalid("SSDP", "not a 200 answer"));
        }
        let headers = parse_headers(lines.take_while(|l| !l.is_empty()));
        let location = header(&headers, "location")
            .filter(|l| !l.is_empty())
            .ok_or(Error::invalid("SSDP", "no LOCATION"))?
            .to_owned();
        let st = header(&headers, if notify { "nt" } else { "st" }).map(str::to_owned);
        Ok(Self {
            location,
            st,
            usn: header(&headers, "usn").map(str::to_owned),
        })
    }

    /// The answer on the wire (for test gateways).
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!(
            "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nEXT:\r\nLOCATION: {}\r\nSERVER: peercam/1 UPnP/1.1\r\n",
            self.location
        );
        if let Some(st) = &self.st {
            s.push_str(&format!("ST: {st}\r\n"));
        }
        if let Some(usn) = &self.usn {
            s.push_str(&format!("USN: {usn}\r\n"));
        }
        s.push_str("\r\n");
        s.into_bytes()
    }

    /// Whether the answer is from an Internet Gateway Device (or its WAN connection
    /// services), judging by ST/USN.
    pub fn is_igd(&self) -> bool {
        [&self.st, &self.usn].into_iter().flatten().any(|v| {
            v.contains("InternetGatewayDevice")
                || v.contains("WANIPConnection")
                || v.contains("WANPPPConnection")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_a_miniupnpd_answer() {
        let a = b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nUSN: uuid:x::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nEXT:\r\nSERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: http://10.0.1.1:41223/rootDesc.xml\r\n\r\n";
        let r = SsdpResponse::parse(a).unwrap();
        assert_eq!(r.location, "http://10.0.1.1:41223/rootDesc.xml");
        assert!(r.is_igd());
        assert!(
            String::from_utf8(m_search(ST_IGD_1, 2))
                .unwrap()
                .starts_with("M-SEARCH * HTTP/1.1\r\n")
        );
    }

    proptest! {
        #[test]
        fn round_trips(location in "http://[a-z0-9.]{1,15}(:[0-9]{1,5})?/[!-~]{0,30}",
                       st in proptest::option::of("[!-~]{1,40}"), usn in proptest::option::of("[!-~]{1,40}")) {
            let r = SsdpResponse { location, st, usn };
            prop_assert_eq!(SsdpResponse::parse(&r.encode())?, r);
        }

        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = SsdpResponse::parse(&b);
        }
    }
}
