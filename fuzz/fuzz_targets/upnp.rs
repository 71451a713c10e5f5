//! UPnP IGD parsing of `peercam_portmap::upnp` on arbitrary bytes: SSDP answers, HTTP
//! framing, device descriptions, SOAP requests, answers and faults.
//!
//! Never panics. A parsed SSDP answer re-encodes to one that parses the same; a parsed
//! SOAP request re-encodes to a body that parses to the same action.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_portmap::upnp::http::{HttpResponse, HttpUrl};
use peercam_portmap::upnp::ssdp::SsdpResponse;
use peercam_portmap::upnp::{self, Action, WAN_IP_1};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = SsdpResponse::parse(data) {
        assert_eq!(SsdpResponse::parse(&r.encode()).as_ref(), Ok(&r));
    }
    for eof in [false, true] {
        if let Ok(Some(r)) = HttpResponse::parse(data, eof) {
            let again = HttpResponse::parse(&r.encode(), false)
                .expect("re-encoded response parses")
                .expect("complete");
            assert_eq!(again.status, r.status);
            assert_eq!(again.body, r.body);
        }
    }
    let text = String::from_utf8_lossy(data);
    let loc = HttpUrl::parse("http://10.0.1.1:5000/rootDesc.xml").expect("url");
    if let Some(s) = upnp::find_wan_service(&text, &loc) {
        let _ = s.control_url.to_string();
    }
    if let Ok(u) = HttpUrl::parse(&text) {
        assert_eq!(HttpUrl::parse(&u.to_string()).as_ref(), Ok(&u));
    }
    if let Some(a) = Action::parse_request(&text) {
        let body = a.body(WAN_IP_1);
        let again = Action::parse_request(&body).expect("re-encoded action parses");
        assert_eq!(again.name(), a.name());
    }
    for status in [200, 500] {
        let _ = upnp::parse_action_response("AddPortMapping", status, &text);
    }
});
