//! `peercam_portmap::pcp` on arbitrary bytes, and the `Mapper` fed them as gateway answers.
//!
//! Never panics. What decodes re-encodes to bytes that decode to the same message. The
//! client state machine survives any datagram from the gateway in any state it reaches.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use peercam_portmap::Protocol;
use peercam_portmap::mapper::{Config, Mapper};
use peercam_portmap::pcp::{MapRequest, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = MapRequest::decode(data) {
        assert_eq!(MapRequest::decode(&r.encode()).as_ref(), Ok(&r));
    }
    if let Ok(r) = Response::decode(data) {
        assert_eq!(Response::decode(&r.encode()).as_ref(), Ok(&r));
    }
    let t0 = Instant::now();
    let cfg = Config::new(
        Protocol::Udp,
        4000,
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 2),
        [3; 12],
    );
    let mut m = Mapper::new(cfg, t0);
    for (i, chunk) in data.split(|b| *b == 0xfe).enumerate() {
        let now = t0 + Duration::from_millis(i as u64 * 300);
        m.handle_gateway(chunk, now);
        m.handle_timeout(now);
        while m.poll_transmit().is_some() {}
        while m.poll_event().is_some() {}
    }
    m.release(t0 + Duration::from_secs(3600));
});
