//! H.626.4 8.7.1 encryption at rest (`peercam_cloud::envelope`, `PCE1`) on arbitrary bytes.
//!
//! Opening never panics and never succeeds on bytes the key did not seal: an envelope that
//! opens is exactly what sealing its plaintext again with its header's kid and salt gives.
//! A header that parses prints back to its bytes; ranged opening of any range of it never
//! panics and agrees with the whole opening. Unwrapping a data key from any bytes never
//! panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_cloud::Prefix;
use peercam_cloud::envelope::{Header, open, open_range, seal, unwrap_dek};

const DEK: [u8; 32] = [0x5a; 32];

fuzz_target!(|data: &[u8]| {
    let opened = open(|_| Some(DEK), data);
    let Ok(h) = Header::parse(data) else {
        assert!(opened.is_err());
        return;
    };
    assert_eq!(h.to_bytes(), data[..h.len()]);
    if let Ok(plain) = &opened {
        let again = seal(&DEK, h.kid(), *h.salt(), plain).expect("reseals");
        assert_eq!(again, data);
    }
    // A range picked from the last 16 bytes, read from wherever it lands in `data`.
    if data.len() >= h.len() + 16 {
        let tail = &data[data.len() - 16..];
        let a = u64::from_be_bytes(tail[..8].try_into().unwrap_or_default()) % (h.plain_len() + 1);
        let b = u64::from_be_bytes(tail[8..].try_into().unwrap_or_default()) % (h.plain_len() + 1);
        let r = a.min(b)..a.max(b);
        if let Ok(c) = h.cipher_range(&r) {
            assert!(c.bytes.end <= h.sealed_len());
            if let Some(chunks) = data.get(c.bytes.start as usize..c.bytes.end as usize) {
                let part = open_range(&DEK, &h, chunks, r.clone());
                if let Ok(plain) = &opened {
                    assert_eq!(
                        part.ok().as_deref(),
                        plain.get(r.start as usize..r.end as usize)
                    );
                }
            }
        } else {
            assert!(r.is_empty());
        }
    }
    let _ = unwrap_dek(&DEK, &Prefix::from_bytes([1; 16]), "k1", data);
});
