//! The device identity file and the bind code a person types.
//!
//! `DeviceIdentity::parse` must never panic; an identity that parses must serialise with
//! `to_toml` to a file that parses back to the same identity (device id, kind, vendor, model,
//! key, bind code). `BindCode::parse` likewise: a code that parses must parse back from its
//! canonical display form, in either case, and the display form must be `XXXX-XXXX-XXXX`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_base::DeviceId;
use peercam_signal::identity::{BindCode, DeviceIdentity, MAX_IDENTITY_BYTES};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(id) = DeviceIdentity::parse(&text) {
        assert!(text.len() <= MAX_IDENTITY_BYTES);
        assert!(id.vendor.len() <= 64 && id.model.len() <= 64);
        let key = id
            .signing_key()
            .expect("parse accepted an identity whose key does not decode");
        let toml = id.to_toml();
        let back = match DeviceIdentity::parse(&toml) {
            Ok(back) => back,
            Err(e) => panic!("to_toml output does not parse again: {e}\n---\n{toml}\n---"),
        };
        assert_eq!(back.device_id, id.device_id);
        assert_eq!(back.kind, id.kind);
        assert_eq!(back.vendor, id.vendor);
        assert_eq!(back.model, id.model);
        assert_eq!(back.bind_code, id.bind_code);
        let back_key = back.signing_key().expect("round-tripped key decodes");
        assert_eq!(
            back_key.to_bytes(),
            key.to_bytes(),
            "key changed in a round trip"
        );
        assert_eq!(back.to_toml(), toml, "to_toml is not a fixed point");
        // The secrets stay out of Debug.
        let dbg = format!("{id:?}");
        assert!(!dbg.contains(&id.bind_code.display()), "bind code in Debug");
    }

    if let Ok(code) = BindCode::parse(&text) {
        let shown = code.display();
        assert_eq!(shown.len(), 14);
        assert!(
            shown.bytes().enumerate().all(|(i, c)| if i == 4 || i == 9 {
                c == b'-'
            } else {
                matches!(c, b'0'..=b'9' | b'A'..=b'Z') && !matches!(c, b'I' | b'L' | b'O' | b'U')
            }),
            "non-canonical display {shown:?}"
        );
        let again = BindCode::parse(&shown).expect("display form parses");
        assert_eq!(again, code);
        let lower = BindCode::parse(&shown.to_lowercase()).expect("lower-case display parses");
        assert_eq!(lower, code);
        let dev: DeviceId = "pc-0123456789abcdef".parse().expect("valid id");
        assert_eq!(again.digest(&dev), code.digest(&dev));
        assert!(!format!("{code:?}").contains(&shown), "bind code in Debug");
    }
});
