//! `peercam_stun::message`: any bytes as one STUN message.
//!
//! Never panics. What decodes re-encodes to bytes that decode to an equal message, and
//! that encoding is a fixed point. Integrity and fingerprint checks never panic on any
//! input. The message, stripped of its seals and sealed again with a fixed key, verifies
//! with that key and not with another; flipping any byte of the sealed message makes
//! integrity + fingerprint fail, and flipping a byte before the FINGERPRINT attribute
//! makes integrity alone fail (docs/security.md F1).
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_stun::message::{
    Attribute, IntegrityAlgorithm, Message, verify_fingerprint, verify_integrity,
};

const KEY: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";

fuzz_target!(|data: &[u8]| {
    let _ = verify_integrity(data, KEY);
    let _ = verify_fingerprint(data);
    let Ok(m) = Message::decode(data) else {
        return;
    };
    let _ = m.unknown_comprehension_required();
    assert!(m.effective_attributes().count() <= m.attributes.len());

    let out = m.encode().expect("a decoded message encodes");
    assert_eq!(out.len(), data.len(), "re-encoding changed the length");
    let again = Message::decode(&out).expect("re-encoded message decodes");
    assert_eq!(again, m, "decode(encode(m)) != m");
    assert_eq!(
        again.encode().expect("encodes"),
        out,
        "encoding is not a fixed point"
    );

    // Seal with a fixed key and mutate.
    let mut bare = m.clone();
    bare.attributes.retain(|a| !a.is_seal());
    let alg = if data.len() % 2 == 0 {
        IntegrityAlgorithm::HmacSha1
    } else {
        IntegrityAlgorithm::HmacSha256
    };
    let Ok(sealed) = bare.encode_sealed(Some((alg, KEY)), true) else {
        return; // too large once sealed
    };
    assert_eq!(verify_integrity(&sealed, KEY), Ok(alg));
    assert_eq!(verify_fingerprint(&sealed), Ok(()));
    assert!(verify_integrity(&sealed, b"another key").is_err());
    let d = Message::decode(&sealed).expect("sealed message decodes");
    assert!(matches!(
        d.attributes.last(),
        Some(Attribute::Fingerprint(_))
    ));

    let sum = data.iter().fold(0usize, |a, &b| {
        a.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    let pos = sum % sealed.len();
    let flip = (sum >> 8) as u8 | 1;
    let mut bad = sealed.clone();
    bad[pos] ^= flip;
    assert_ne!(bad, sealed);
    let passes = verify_integrity(&bad, KEY).is_ok() && verify_fingerprint(&bad).is_ok();
    assert!(
        !passes,
        "a mutated sealed message passed integrity and fingerprint"
    );
    if pos < sealed.len() - 8 {
        assert!(
            verify_integrity(&bad, KEY).is_err(),
            "mutation before FINGERPRINT kept integrity"
        );
    }
});
