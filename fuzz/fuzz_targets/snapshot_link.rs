//! H.626.4 6.1.12 snapshot links: `verify` of any text.
//!
//! None may panic. A text that opens must be exactly the token minted for what it names
//! (no second spelling of a link), and expiry is judged against the minted expiry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_signal::snapshot_link::{LinkRefusal, TOKEN_CHARS, mint, verify};

const KEY: [u8; 32] = [0x5a; 32];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match verify(&KEY, &text, 0) {
        Ok(id) => {
            assert_eq!(text.len(), TOKEN_CHARS);
            // The same text at the end of time is expired unless minted to never expire.
            let never = mint(&KEY, id, u64::MAX);
            assert!(text == never || verify(&KEY, &text, u64::MAX) == Err(LinkRefusal::Expired));
        }
        Err(LinkRefusal::Expired) => unreachable!("nothing expires before time 0"),
        Err(_) => {}
    }
    // Whatever the bytes, a token minted from them opens with its id.
    if data.len() >= 16 {
        let id = i64::from_be_bytes(data[..8].try_into().unwrap_or_default());
        let exp = u64::from_be_bytes(data[8..16].try_into().unwrap_or_default());
        let t = mint(&KEY, id, exp);
        assert_eq!(verify(&KEY, &t, exp), Ok(id));
        assert_eq!(verify(&[0; 32], &t, 0), Err(LinkRefusal::Forged));
    }
});
