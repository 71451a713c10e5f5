//! UPnP Internet Gateway Device control: find the gateway (SSDP, [`ssdp`]), read its
//! device description ([`find_wan_service`]), and call SOAP actions on its WAN connection
//! service ([`Action`], [`parse_action_response`]) over plain HTTP/1.1 ([`http`]).
//!
//! References: UPnP Device Architecture 1.1; WANIPConnection:1 and :2 and
//! WANPPPConnection:1 service templates (UPnP Forum, IGD 1.0 / 2.0).

pub mod http;
pub mod ssdp;
pub mod xml;

use std::net::Ipv4Addr;

use crate::{Error, Protocol};
use http::HttpUrl;

/// WANIPConnection version 2 (IGD 2.0).
pub const WAN_IP_2: &str = "urn:schemas-upnp-org:service:WANIPConnection:2";
/// WANIPConnection version 1 (IGD 1.0).
pub const WAN_IP_1: &str = "urn:schemas-upnp-org:service:WANIPConnection:1";
/// WANPPPConnection version 1 (IGD 1.0, PPPoE lines).
pub const WAN_PPP_1: &str = "urn:schemas-upnp-org:service:WANPPPConnection:1";

/// UPnP error 718: the external port is taken by another client's mapping.
pub const ERR_CONFLICT: u16 = 718;
/// UPnP error 725: the gateway only supports leases of 0 (permanent).
pub const ERR_ONLY_PERMANENT_LEASES: u16 = 725;
/// UPnP error 714: no such mapping (DeletePortMapping).
pub const ERR_NO_SUCH_ENTRY: u16 = 714;

/// A WAN connection service of a gateway, from its device description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WanService {
    /// The service type (one of [`WAN_IP_2`], [`WAN_IP_1`], [`WAN_PPP_1`]).
    pub service_type: String,
    /// The absolute control URL.
    pub control_url: HttpUrl,
}

/// Finds the preferred WAN connection service (WANIPConnection:2, then :1, then
/// WANPPPConnection:1) in a device description fetched from `location`. Relative control
/// URLs resolve against `<URLBase>` when present, else against `location`.
pub fn find_wan_service(description: &str, location: &HttpUrl) -> Option<WanService> {
    let mut services: Vec<(String, String)> = Vec::new();
    let mut url_base: Option<String> = None;
    let mut current: Option<(String, String)> = None;
    let mut field: Option<&str> = None;
    for t in xml::tokens(description) {
        match t {
            xml::Token::Start("service") => current = Some(Default::default()),
            xml::Token::End("service") => {
                if let Some(s) = current.take() {
                    services.push(s);
                }
                field = None;
            }
            xml::Token::Start(n) => field = Some(n),
            xml::Token::End(_) => field = None,
            xml::Token::Text(s) => match (field, current.as_mut()) {
                (Some("serviceType"), Some(c)) => c.0.push_str(&s),
                (Some("controlURL"), Some(c)) => c.1.push_str(&s),
                (Some("URLBase"), None) => url_base.get_or_insert_default().push_str(&s),
                _ => {}
            },
        }
    }
    let base = url_base
        .and_then(|b| HttpUrl::parse(&b).ok())
        .unwrap_or_else(|| location.clone());
    [WAN_IP_2, WAN_IP_1, WAN_PPP_1].iter().find_map(|want| {
        services.iter().find_map(|(st, ctl)| {
            (st.trim() == *want && !ctl.trim().is_empty())
                .then(|| base.join(ctl).ok())
                .flatten()
                .map(|control_url| WanService {
                    service_type: (*want).to_owned(),
                    control_url,
                })
        })
    })
}

/// AddPortMapping's arguments (WANIPConnection:1 2.4.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// `NewRemoteHost`: empty for any remote host.
    pub remote_host: String,
    /// `NewExternalPort`.
    pub external_port: u16,
    /// `NewProtocol`.
    pub protocol: Protocol,
    /// `NewInternalPort`.
    pub internal_port: u16,
    /// `NewInternalClient`: the LAN address to forward to (in secure mode, the
    /// requester's own address).
    pub internal_client: String,
    /// `NewEnabled`.
    pub enabled: bool,
    /// `NewPortMappingDescription`.
    pub description: String,
    /// `NewLeaseDuration` in seconds (0: permanent).
    pub lease_duration: u32,
}

/// A SOAP action on a WAN connection service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// GetExternalIPAddress: answers `NewExternalIPAddress`.
    GetExternalIpAddress,
    /// AddPortMapping.
    AddPortMapping(PortMapping),
    /// DeletePortMapping.
    DeletePortMapping {
        /// `NewRemoteHost` (empty).
        remote_host: String,
        /// `NewExternalPort`.
        external_port: u16,
        /// `NewProtocol`.
        protocol: Protocol,
    },
}

impl Action {
    /// The action name.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::GetExternalIpAddress => "GetExternalIPAddress",
            Self::AddPortMapping(_) => "AddPortMapping",
            Self::DeletePortMapping { .. } => "DeletePortMapping",
        }
    }

    /// The arguments in the order of the service template.
    pub fn args(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::GetExternalIpAddress => vec![],
            Self::AddPortMapping(m) => vec![
                ("NewRemoteHost", m.remote_host.clone()),
                ("NewExternalPort", m.external_port.to_string()),
                ("NewProtocol", m.protocol.upnp_name().to_owned()),
                ("NewInternalPort", m.internal_port.to_string()),
                ("NewInternalClient", m.internal_client.clone()),
                ("NewEnabled", if m.enabled { "1" } else { "0" }.to_owned()),
                ("NewPortMappingDescription", m.description.clone()),
                ("NewLeaseDuration", m.lease_duration.to_string()),
            ],
            Self::DeletePortMapping {
                remote_host,
                external_port,
                protocol,
            } => vec![
                ("NewRemoteHost", remote_host.clone()),
                ("NewExternalPort", external_port.to_string()),
                ("NewProtocol", protocol.upnp_name().to_owned()),
            ],
        }
    }

    /// The SOAP envelope calling this action on `service_type`.
    pub fn body(&self, service_type: &str) -> String {
        envelope(service_type, self.name(), &self.args())
    }

    /// The `SOAPAction` header value (without quotes).
    pub fn soap_action(&self, service_type: &str) -> String {
        format!("{service_type}#{}", self.name())
    }

    /// The whole HTTP request calling this action on `service`.
    pub fn http_request(&self, service: &WanService) -> Vec<u8> {
        http::soap_post(
            &service.control_url,
            &self.soap_action(&service.service_type),
            &self.body(&service.service_type),
        )
    }

    /// Parses a SOAP request body back into an action (what a gateway does; for test
    /// gateways and fuzzing). Unknown actions and bad arguments give `None`.
    pub fn parse_request(body: &str) -> Option<Self> {
        let (name, args) = parse_body(body)?;
        let get = |k: &str| args.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let protocol = || match get("NewProtocol")?.as_str() {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            _ => None,
        };
        match name.as_str() {
            "GetExternalIPAddress" => Some(Self::GetExternalIpAddress),
            "AddPortMapping" => Some(Self::AddPortMapping(PortMapping {
                remote_host: get("NewRemoteHost")?,
                external_port: get("NewExternalPort")?.parse().ok()?,
                protocol: protocol()?,
                internal_port: get("NewInternalPort")?.parse().ok()?,
                internal_client: get("NewInternalClient")?,
                enabled: match get("NewEnabled")?.as_str() {
                    "1" | "true" | "yes" => true,
                    "0" | "false" | "no" => false,
                    _ => return None,
                },
                description: get("NewPortMappingDescription")?,
                lease_duration: get("NewLeaseDuration")?.parse().ok()?,
            })),
            "DeletePortMapping" => Some(Self::DeletePortMapping {
                remote_host: get("NewRemoteHost")?,
                external_port: get("NewExternalPort")?.parse().ok()?,
                protocol: protocol()?,
            }),
            _ => None,
        }
    }
}

/// A SOAP 1.1 envelope with one action element in namespace `service_type`.
fn envelope(service_type: &str, element: &str, args: &[(&str, String)]) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>",
    );
    s.push_str(&format!(
        "<u:{element} xmlns:u=\"{}\">",
        xml::escape(service_type)
    ));
    for (k, v) in args {
        s.push_str(&format!("<{k}>{}</{k}>", xml::escape(v)));
    }
    s.push_str(&format!("</u:{element}></s:Body></s:Envelope>\r\n"));
    s
}

/// The first element inside `<Body>` and its children.
fn parse_body(body: &str) -> Option<(String, Vec<(String, String)>)> {
    let inner = xml::children(body, "Body")?;
    let (name, _) = inner.first()?;
    let args = xml::children(body, name)?;
    Some((name.clone(), args))
}

/// A successful answer body (for test gateways): `<u:{action}Response>` with `args`.
pub fn encode_action_response(service_type: &str, action: &str, args: &[(&str, String)]) -> String {
    envelope(service_type, &format!("{action}Response"), args)
}

/// A UPnP fault body (UPnP Device Architecture 1.1, 3.2.2), sent with HTTP status 500.
pub fn encode_fault(code: u16, description: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>{code}</errorCode><errorDescription>{}</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>\r\n",
        xml::escape(description)
    )
}

/// Interprets the answer to `action`: its output arguments on HTTP 200, the UPnP fault
/// as [`Error::UpnpFault`], or [`Error::HttpStatus`].
pub fn parse_action_response(
    action: &str,
    status: u16,
    body: &str,
) -> Result<Vec<(String, String)>, Error> {
    if status == 200 {
        return xml::children(body, &format!("{action}Response")).ok_or(Error::invalid(
            "SOAP response",
            "no action response element",
        ));
    }
    if let Some(code) = xml::first_text(body, "errorCode") {
        let code = code
            .parse()
            .map_err(|_| Error::invalid("SOAP fault", "bad errorCode"))?;
        return Err(Error::UpnpFault {
            code,
            description: xml::first_text(body, "errorDescription").unwrap_or_default(),
        });
    }
    Err(Error::HttpStatus(status))
}

/// `NewExternalIPAddress` of a GetExternalIPAddress answer.
pub fn external_ip(args: &[(String, String)]) -> Result<Ipv4Addr, Error> {
    args.iter()
        .find(|(n, _)| n == "NewExternalIPAddress")
        .and_then(|(_, v)| v.parse().ok())
        .ok_or(Error::invalid(
            "GetExternalIPAddress response",
            "no usable NewExternalIPAddress",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MINIUPNPD_DESC: &str = r#"<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0" configId="1337"><specVersion><major>1</major><minor>1</minor></specVersion><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType><friendlyName>Debian router</friendlyName><serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><serviceId>urn:upnp-org:serviceId:L3Forwarding1</serviceId><SCPDURL>/L3F.xml</SCPDURL><controlURL>/ctl/L3F</controlURL><eventSubURL>/evt/L3F</eventSubURL></service></serviceList><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType><serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><SCPDURL>/WANIPCn.xml</SCPDURL><controlURL>/ctl/IPConn</controlURL><eventSubURL>/evt/IPConn</eventSubURL></service></serviceList></device></deviceList></device></deviceList></device></root>"#;

    #[test]
    fn finds_the_wan_ip_service() {
        let loc = HttpUrl::parse("http://10.0.1.1:41223/rootDesc.xml").unwrap();
        let s = find_wan_service(MINIUPNPD_DESC, &loc).unwrap();
        assert_eq!(s.service_type, WAN_IP_1);
        assert_eq!(
            s.control_url.to_string(),
            "http://10.0.1.1:41223/ctl/IPConn"
        );
        assert_eq!(find_wan_service("<root/>", &loc), None);
    }

    #[test]
    fn parses_faults() {
        let f = encode_fault(718, "ConflictInMappingEntry");
        assert_eq!(
            parse_action_response("AddPortMapping", 500, &f),
            Err(Error::UpnpFault {
                code: 718,
                description: "ConflictInMappingEntry".into()
            })
        );
        assert_eq!(
            parse_action_response("AddPortMapping", 404, "nope"),
            Err(Error::HttpStatus(404))
        );
        let ok = encode_action_response(
            WAN_IP_1,
            "GetExternalIPAddress",
            &[("NewExternalIPAddress", "203.0.113.7".into())],
        );
        let args = parse_action_response("GetExternalIPAddress", 200, &ok).unwrap();
        assert_eq!(external_ip(&args).unwrap(), Ipv4Addr::new(203, 0, 113, 7));
    }

    fn protocol() -> impl Strategy<Value = Protocol> {
        prop_oneof![Just(Protocol::Udp), Just(Protocol::Tcp)]
    }

    fn text() -> impl Strategy<Value = String> {
        // Leading/trailing white space is not significant in UPnP argument values.
        "([!-~]([ -~]{0,20}[!-~])?)?"
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            Just(Action::GetExternalIpAddress),
            (
                text(),
                any::<u16>(),
                protocol(),
                any::<u16>(),
                text(),
                any::<bool>(),
                text(),
                any::<u32>()
            )
                .prop_map(|(rh, ep, p, ip, ic, en, d, l)| Action::AddPortMapping(
                    PortMapping {
                        remote_host: rh,
                        external_port: ep,
                        protocol: p,
                        internal_port: ip,
                        internal_client: ic,
                        enabled: en,
                        description: d,
                        lease_duration: l,
                    }
                )),
            (text(), any::<u16>(), protocol()).prop_map(|(rh, ep, p)| Action::DeletePortMapping {
                remote_host: rh,
                external_port: ep,
                protocol: p
            }),
        ]
    }

    proptest! {
        #[test]
        fn action_round_trips(a in action(), st in prop_oneof![Just(WAN_IP_1), Just(WAN_IP_2), Just(WAN_PPP_1)]) {
            prop_assert_eq!(Action::parse_request(&a.body(st)), Some(a.clone()));
            let req = String::from_utf8(a.http_request(&WanService {
                service_type: st.to_owned(),
                control_url: HttpUrl::parse("http://10.0.1.1:5000/ctl/IPConn").unwrap(),
            })).unwrap();
            let expected_header = format!("SOAPAction: \"{st}#{}\"", a.name());
            prop_assert!(req.contains(&expected_header));
        }

        #[test]
        fn response_round_trips(args in proptest::collection::vec(("New[A-Za-z]{1,12}", text()), 0..5)) {
            let borrowed: Vec<(&str, String)> = args.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let body = encode_action_response(WAN_IP_2, "GetExternalIPAddress", &borrowed);
            prop_assert_eq!(parse_action_response("GetExternalIPAddress", 200, &body)?, args);
        }

        #[test]
        fn fault_round_trips(code in any::<u16>(), d in text()) {
            prop_assert_eq!(
                parse_action_response("X", 500, &encode_fault(code, &d)),
                Err(Error::UpnpFault { code, description: d })
            );
        }

        #[test]
        fn description_finds_generated_service(
            st in prop_oneof![Just(WAN_IP_1), Just(WAN_IP_2), Just(WAN_PPP_1)],
            path in "/[a-zA-Z0-9_]{1,10}(/[a-zA-Z0-9_]{1,10}){0,2}",
            decoys in 0usize..3,
        ) {
            let mut d = String::from("<?xml version=\"1.0\"?><root><device><serviceList>");
            for i in 0..decoys {
                d.push_str(&format!("<service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:{i}</serviceType><controlURL>/decoy{i}</controlURL></service>"));
            }
            d.push_str(&format!("<service><serviceType>{st}</serviceType><controlURL>{}</controlURL></service>", xml::escape(&path)));
            d.push_str("</serviceList></device></root>");
            let loc = HttpUrl::parse("http://192.168.1.1:1900/desc.xml").unwrap();
            let s = find_wan_service(&d, &loc).unwrap();
            prop_assert_eq!(s.service_type, st);
            prop_assert_eq!(s.control_url.path, path);
        }

        #[test]
        fn never_panics(s in ".*") {
            let loc = HttpUrl::parse("http://192.168.1.1/").unwrap();
            let _ = find_wan_service(&s, &loc);
            let _ = Action::parse_request(&s);
            let _ = parse_action_response("AddPortMapping", 200, &s);
            let _ = parse_action_response("AddPortMapping", 500, &s);
        }
    }
}
