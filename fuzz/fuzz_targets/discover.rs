//! Np LAN discovery datagrams of `peercam-signal` on arbitrary bytes.
//!
//! Parsing never panics and is bounded; an announcement that was not signed by the key
//! never verifies; one that parses re-serialises to one that parses the same.
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use peercam_signal::discover::{Announce, Probe};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Probe::parse(data) {
        assert_eq!(Probe::parse(&p.to_bytes()).ok(), Some(p));
    }
    if let Ok(a) = Announce::parse(data) {
        assert_eq!(Announce::parse(&a.to_bytes()).ok().as_ref(), Some(&a));
        let key = SigningKey::from_bytes(&[7; 32]);
        let probe = Probe {
            v: 1,
            probe: a.re.clone(),
        };
        // A signature over these exact fields by key 7 would need the fuzzer to forge
        // Ed25519; anything it builds must fail.
        let genuine = Announce::new(&probe, a.device_id.clone(), a.rtsp.clone(), &key);
        if genuine.sig != a.sig {
            assert!(a.verify(&probe, &key.verifying_key()).is_err());
        }
    }
});
