//! Encryption at rest: what the store holds for every object (docs/security.md D11).
//!
//! ```text
//! header   "PCE1" version:u8(=1) kid_len:u8 kid salt[32] chunk:u32(=65536) plain_len:u64
//! chunks   n = max(1, ceil(plain_len / 65536)) chunks, chunk i = AES-256-GCM(
//!            key   = HKDF-SHA256(ikm = DEK, salt, info = "peercam/cs/object/v1"),
//!            nonce = i as a 96-bit big-endian number,
//!            aad   = SHA-256(header) || i:u64 || last:u8,
//!            64 KiB of plaintext (the last chunk the rest, possibly empty)) || tag[16]
//! ```
//!
//! Every chunk is bound to its object (the header's hash, with the random salt, in the AAD
//! and the key), its place (the nonce) and whether it ends the object, so no byte can be
//! changed, no chunk reordered, dropped or taken from another object without the opening
//! failing. A per-object key (fresh salt) removes any limit on nonce reuse across objects.
//! Fixed chunks let playback decrypt a byte range ([`Header::cipher_range`],
//! [`open_range`]) without reading the whole object.
//!
//! Data keys (DEK) are 32 random bytes per camera prefix and `kid`; the CMU keeps them
//! wrapped under its key-encryption key ([`wrap_dek`], [`unwrap_dek`]).

use std::ops::Range;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use sha2::{Digest as _, Sha256};

use crate::Error;
use crate::grant::is_kid;
use crate::key::Prefix;

/// The envelope's first four bytes.
pub const MAGIC: &[u8; 4] = b"PCE1";
/// The envelope version this crate writes and reads.
pub const VERSION: u8 = 1;
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 65_536;
/// The authentication tag after each chunk.
pub const TAG: usize = 16;
/// Largest plaintext: 4 GiB.
pub const MAX_PLAINTEXT: u64 = 1 << 32;
/// HKDF info of the per-object key.
pub const OBJECT_INFO: &[u8] = b"peercam/cs/object/v1";
/// Bytes of a wrapped DEK: nonce, key, tag.
pub const WRAPPED_DEK: usize = 12 + 32 + TAG;

/// A 32-byte data key or key-encryption key.
pub type Key32 = [u8; 32];

/// An envelope's plaintext header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    kid: String,
    salt: [u8; 32],
    plain_len: u64,
    len: usize,
    digest: [u8; 32],
}

impl Header {
    /// A header for `plain_len` bytes sealed under data key `kid` with `salt`.
    pub fn new(kid: &str, salt: [u8; 32], plain_len: u64) -> Result<Self, Error> {
        if !is_kid(kid) {
            return Err(Error::Envelope("kid is 1 to 32 of A-Z a-z 0-9 . _ -"));
        }
        if plain_len > MAX_PLAINTEXT {
            return Err(Error::Envelope("plaintext over 4 GiB"));
        }
        let bytes = Self::bytes_of(kid, &salt, plain_len);
        Ok(Self {
            kid: kid.to_owned(),
            salt,
            plain_len,
            len: bytes.len(),
            digest: Sha256::digest(&bytes).into(),
        })
    }

    fn bytes_of(kid: &str, salt: &[u8; 32], plain_len: u64) -> Vec<u8> {
        let mut b = Vec::with_capacity(50 + kid.len());
        b.extend_from_slice(MAGIC);
        b.push(VERSION);
        b.push(kid.len() as u8);
        b.extend_from_slice(kid.as_bytes());
        b.extend_from_slice(salt);
        b.extend_from_slice(&(CHUNK as u32).to_be_bytes());
        b.extend_from_slice(&plain_len.to_be_bytes());
        b
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        Self::bytes_of(&self.kid, &self.salt, self.plain_len)
    }

    /// Reads the header at the start of `bytes` (the rest is ignored).
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        const SHORT: Error = Error::Envelope("truncated header");
        let fixed = bytes.get(..6).ok_or(SHORT)?;
        if &fixed[..4] != MAGIC {
            return Err(Error::Envelope("not an envelope (magic)"));
        }
        if fixed[4] != VERSION {
            return Err(Error::Envelope("unknown version"));
        }
        let kid_len = usize::from(fixed[5]);
        let rest = bytes.get(6..6 + kid_len + 32 + 4 + 8).ok_or(SHORT)?;
        let kid = std::str::from_utf8(&rest[..kid_len])
            .map_err(|_| Error::Envelope("kid is 1 to 32 of A-Z a-z 0-9 . _ -"))?;
        let mut salt = [0u8; 32];
        salt.copy_from_slice(&rest[kid_len..kid_len + 32]);
        let mut chunk = [0u8; 4];
        chunk.copy_from_slice(&rest[kid_len + 32..kid_len + 36]);
        if u32::from_be_bytes(chunk) as usize != CHUNK {
            return Err(Error::Envelope("chunk size is not 65536"));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&rest[kid_len + 36..]);
        let h = Self::new(kid, salt, u64::from_be_bytes(len))?;
        debug_assert_eq!(h.to_bytes(), bytes[..h.len]);
        Ok(h)
    }

    /// The data key's id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The object's salt.
    pub fn salt(&self) -> &[u8; 32] {
        &self.salt
    }

    /// Plaintext bytes.
    pub fn plain_len(&self) -> u64 {
        self.plain_len
    }

    /// Bytes of the header: where the first chunk starts.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a header has at least 50 bytes.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Number of chunks (at least one, even for no plaintext).
    pub fn chunks(&self) -> u64 {
        self.plain_len.div_ceil(CHUNK as u64).max(1)
    }

    /// Bytes of the whole envelope.
    pub fn sealed_len(&self) -> u64 {
        self.len as u64 + self.plain_len + self.chunks() * TAG as u64
    }

    /// Plaintext bytes of chunk `i`.
    fn chunk_plain_len(&self, i: u64) -> usize {
        (self.plain_len - (i * CHUNK as u64).min(self.plain_len)).min(CHUNK as u64) as usize
    }

    /// Where chunk `i` starts in the envelope.
    fn chunk_offset(&self, i: u64) -> u64 {
        self.len as u64 + i * (CHUNK + TAG) as u64
    }

    /// The chunks holding the plaintext bytes `plain` (non-empty, within the plaintext):
    /// their byte range in the envelope, for a ranged read, and the first chunk's number.
    pub fn cipher_range(&self, plain: &Range<u64>) -> Result<CipherRange, Error> {
        if plain.start >= plain.end || plain.end > self.plain_len {
            return Err(Error::Envelope("range outside the plaintext"));
        }
        let first = plain.start / CHUNK as u64;
        let last = (plain.end - 1) / CHUNK as u64;
        let end = self.chunk_offset(last) + (self.chunk_plain_len(last) + TAG) as u64;
        Ok(CipherRange {
            first_chunk: first,
            chunks: last - first + 1,
            bytes: self.chunk_offset(first)..end,
        })
    }

    fn aad(&self, i: u64) -> [u8; 41] {
        let mut a = [0u8; 41];
        a[..32].copy_from_slice(&self.digest);
        a[32..40].copy_from_slice(&i.to_be_bytes());
        a[40] = u8::from(i + 1 == self.chunks());
        a
    }

    fn object_key(&self, dek: &Key32) -> Result<LessSafeKey, Error> {
        let prk = Salt::new(HKDF_SHA256, &self.salt).extract(dek);
        let okm = prk
            .expand(&[OBJECT_INFO], &AES_256_GCM)
            .map_err(|_| Error::Envelope("key derivation failed"))?;
        Ok(LessSafeKey::new(UnboundKey::from(okm)))
    }
}

/// Chunks to read for a plaintext range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CipherRange {
    /// Number of the first chunk.
    pub first_chunk: u64,
    /// How many chunks.
    pub chunks: u64,
    /// Their bytes in the envelope (a ranged GET).
    pub bytes: Range<u64>,
}

fn nonce(i: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&i.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Seals `plaintext` under data key `dek` (id `kid`) with a fresh random `salt` (the caller
/// draws it; never reuse one).
pub fn seal(dek: &Key32, kid: &str, salt: [u8; 32], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    let h = Header::new(kid, salt, plaintext.len() as u64)?;
    let key = h.object_key(dek)?;
    let mut out = Vec::with_capacity(h.sealed_len() as usize);
    out.extend_from_slice(&h.to_bytes());
    for i in 0..h.chunks() {
        let from = (i as usize) * CHUNK;
        let mut chunk = plaintext[from..from + h.chunk_plain_len(i)].to_vec();
        key.seal_in_place_append_tag(nonce(i), Aad::from(h.aad(i)), &mut chunk)
            .map_err(|_| Error::Envelope("sealing failed"))?;
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Opens a whole envelope. `dek_for` gives the data key of a `kid` (`None`: unknown).
pub fn open(dek_for: impl FnOnce(&str) -> Option<Key32>, sealed: &[u8]) -> Result<Vec<u8>, Error> {
    let h = Header::parse(sealed)?;
    if sealed.len() as u64 != h.sealed_len() {
        return Err(Error::Envelope("length does not match the header"));
    }
    let dek = dek_for(&h.kid).ok_or_else(|| Error::UnknownKid(h.kid.clone()))?;
    open_chunks(&dek, &h, 0, &sealed[h.len..])
}

/// Opens the chunks `chunks` (the bytes of `h.cipher_range(&plain)`) and returns exactly
/// the plaintext bytes `plain`.
pub fn open_range(
    dek: &Key32,
    h: &Header,
    chunks: &[u8],
    plain: Range<u64>,
) -> Result<Vec<u8>, Error> {
    let r = h.cipher_range(&plain)?;
    if chunks.len() as u64 != r.bytes.end - r.bytes.start {
        return Err(Error::Envelope("chunk bytes do not match the range"));
    }
    let opened = open_chunks(dek, h, r.first_chunk, chunks)?;
    let skip = (plain.start - r.first_chunk * CHUNK as u64) as usize;
    let take = (plain.end - plain.start) as usize;
    Ok(opened[skip..skip + take].to_vec())
}

/// Opens consecutive chunks from chunk `first`, whose bytes are exactly `bytes`.
fn open_chunks(dek: &Key32, h: &Header, first: u64, mut bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let key = h.object_key(dek)?;
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = first;
    while !bytes.is_empty() {
        if i >= h.chunks() {
            return Err(Error::Envelope("more chunks than the header says"));
        }
        let n = h.chunk_plain_len(i) + TAG;
        let Some((chunk, rest)) = bytes.split_at_checked(n) else {
            return Err(Error::Envelope("truncated chunk"));
        };
        let mut buf = chunk.to_vec();
        let plain = key
            .open_in_place(nonce(i), Aad::from(h.aad(i)), &mut buf)
            .map_err(|_| Error::Unauthentic)?;
        out.extend_from_slice(plain);
        bytes = rest;
        i += 1;
    }
    Ok(out)
}

fn dek_aad(prefix: &Prefix, kid: &str) -> Vec<u8> {
    format!("peercam/dek/v1\n{prefix}\n{kid}").into_bytes()
}

/// Wraps data key `dek` of `prefix` and `kid` under the CMU's key-encryption key `kek`,
/// with a random `nonce` the caller draws: nonce, ciphertext and tag, [`WRAPPED_DEK`] bytes.
pub fn wrap_dek(
    kek: &Key32,
    prefix: &Prefix,
    kid: &str,
    dek: &Key32,
    nonce: [u8; 12],
) -> Result<Vec<u8>, Error> {
    if !is_kid(kid) {
        return Err(Error::Envelope("kid is 1 to 32 of A-Z a-z 0-9 . _ -"));
    }
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, kek).map_err(|_| Error::Envelope("bad key"))?,
    );
    let mut buf = dek.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(dek_aad(prefix, kid)),
        &mut buf,
    )
    .map_err(|_| Error::Envelope("sealing failed"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Unwraps a data key wrapped by [`wrap_dek`] for exactly this `prefix` and `kid`.
pub fn unwrap_dek(kek: &Key32, prefix: &Prefix, kid: &str, wrapped: &[u8]) -> Result<Key32, Error> {
    if wrapped.len() != WRAPPED_DEK {
        return Err(Error::Envelope("a wrapped data key is 60 bytes"));
    }
    let (nonce, ct) = wrapped.split_at(12);
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, kek).map_err(|_| Error::Envelope("bad key"))?,
    );
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Unauthentic)?;
    let mut buf = ct.to_vec();
    let dek = key
        .open_in_place(nonce, Aad::from(dek_aad(prefix, kid)), &mut buf)
        .map_err(|_| Error::Unauthentic)?;
    dek.try_into().map_err(|_| Error::Unauthentic)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    const DEK: Key32 = [0x11; 32];
    const SALT: [u8; 32] = [0x22; 32];

    fn plain(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn dek(kid: &str) -> Option<Key32> {
        (kid == "k1").then_some(DEK)
    }

    #[test]
    fn h626_8_7_1_envelope_layout_and_round_trip() {
        for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5] {
            let p = plain(n);
            let s = seal(&DEK, "k1", SALT, &p).unwrap();
            let h = Header::parse(&s).unwrap();
            assert_eq!(&s[..4], MAGIC);
            assert_eq!(h.len(), 50 + 2);
            assert_eq!(h.kid(), "k1");
            assert_eq!(h.plain_len(), n as u64);
            assert_eq!(h.chunks(), n.div_ceil(CHUNK).max(1) as u64);
            assert_eq!(s.len() as u64, h.sealed_len());
            assert_eq!(open(dek, &s).unwrap(), p, "{n} bytes");
        }
        // The ciphertext shows nothing of the plaintext.
        let p = vec![0u8; 1000];
        let s = seal(&DEK, "k1", SALT, &p).unwrap();
        assert!(!s.windows(32).any(|w| w == [0u8; 32]));
        // Another salt, another ciphertext.
        assert_ne!(seal(&DEK, "k1", [0x23; 32], &p).unwrap()[52..], s[52..]);
    }

    #[test]
    fn h626_8_7_1_envelope_construction_by_hand() {
        // Rebuild the one chunk of a short envelope from the format's definition alone.
        let s = seal(&DEK, "k1", SALT, b"peercam").unwrap();
        let mut header = b"PCE1\x01\x02k1".to_vec();
        header.extend_from_slice(&SALT);
        header.extend_from_slice(&65_536u32.to_be_bytes());
        header.extend_from_slice(&7u64.to_be_bytes());
        assert_eq!(s[..header.len()], header[..]);
        assert_eq!(s.len(), header.len() + 7 + TAG);
        let prk = Salt::new(HKDF_SHA256, &SALT).extract(&DEK);
        let info: [&[u8]; 1] = [b"peercam/cs/object/v1"];
        let okm = prk.expand(&info, &AES_256_GCM).unwrap();
        let key = LessSafeKey::new(UnboundKey::from(okm));
        let mut aad = Sha256::digest(&header).to_vec();
        aad.extend_from_slice(&0u64.to_be_bytes());
        aad.push(1);
        let mut chunk = s[header.len()..].to_vec();
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::from(aad),
                &mut chunk,
            )
            .unwrap();
        assert_eq!(plain, b"peercam");
    }

    #[test]
    fn h626_8_7_1_envelope_refuses_every_tampering() {
        let p = plain(3 * CHUNK + 100);
        let s = seal(&DEK, "k1", SALT, &p).unwrap();
        let h = Header::parse(&s).unwrap();
        let any_dek = |_: &str| Some(DEK);
        // Every header byte.
        for i in 0..h.len() {
            let mut t = s.clone();
            t[i] ^= 0x01;
            assert!(open(any_dek, &t).is_err(), "header byte {i}");
        }
        // Chunk bytes: first, middle, tag, last.
        for i in [h.len(), h.len() + CHUNK, h.len() + CHUNK + TAG, s.len() - 1] {
            let mut t = s.clone();
            t[i] ^= 0x80;
            assert_eq!(open(dek, &t), Err(Error::Unauthentic), "byte {i}");
        }
        // Two whole chunks swapped.
        let c = CHUNK + TAG;
        let mut t = s.clone();
        let (a, b) = t[h.len()..].split_at_mut(c);
        a.swap_with_slice(&mut b[..c]);
        assert_eq!(open(dek, &t), Err(Error::Unauthentic));
        // The last chunk dropped, with or without the header saying so.
        let cut = &s[..s.len() - (100 + TAG)];
        assert!(open(dek, cut).is_err());
        let mut fixed = Header::new("k1", SALT, 3 * CHUNK as u64)
            .unwrap()
            .to_bytes();
        fixed.extend_from_slice(&cut[h.len()..]);
        assert_eq!(open(dek, &fixed), Err(Error::Unauthentic));
        // A chunk spliced from another object under the same data key: other salt, and
        // even the same salt with another length.
        for other in [
            seal(&DEK, "k1", [0x33; 32], &p).unwrap(),
            seal(&DEK, "k1", SALT, &plain(3 * CHUNK + 101)).unwrap(),
        ] {
            let mut t = s.clone();
            t[h.len()..h.len() + c].copy_from_slice(&other[h.len()..h.len() + c]);
            assert_eq!(open(dek, &t), Err(Error::Unauthentic));
        }
        // Wrong data key, unknown kid, trailing or missing bytes.
        assert_eq!(open(|_| Some([0x12; 32]), &s), Err(Error::Unauthentic));
        assert_eq!(open(|_| None, &s), Err(Error::UnknownKid("k1".into())));
        let mut longer = s.clone();
        longer.push(0);
        assert!(open(dek, &longer).is_err());
        assert!(open(dek, &[]).is_err());
        assert!(open(dek, &s[..10]).is_err());
    }

    #[test]
    fn h626_8_7_1_envelope_range_reads() {
        let p = plain(3 * CHUNK + 100);
        let s = seal(&DEK, "k1", SALT, &p).unwrap();
        let h = Header::parse(&s).unwrap();
        let total = p.len() as u64;
        for r in [
            0..1,
            0..total,
            5..CHUNK as u64,
            CHUNK as u64 - 1..CHUNK as u64 + 1,
            2 * CHUNK as u64..3 * CHUNK as u64,
            total - 1..total,
        ] {
            let c = h.cipher_range(&r).unwrap();
            let chunks = &s[c.bytes.start as usize..c.bytes.end as usize];
            let got = open_range(&DEK, &h, chunks, r.clone()).unwrap();
            assert_eq!(got, p[r.start as usize..r.end as usize], "{r:?}");
        }
        let c = h.cipher_range(&(CHUNK as u64..CHUNK as u64 + 1)).unwrap();
        assert_eq!(c.first_chunk, 1);
        assert_eq!(c.chunks, 1);
        assert_eq!(c.bytes.start, (h.len() + CHUNK + TAG) as u64);
        assert!(h.cipher_range(&(0..0)).is_err());
        assert!(h.cipher_range(&(0..total + 1)).is_err());
        // A chunk from elsewhere in the object is refused.
        let wrong = &s[h.len()..h.len() + CHUNK + TAG];
        assert_eq!(
            open_range(&DEK, &h, wrong, CHUNK as u64..CHUNK as u64 + 1),
            Err(Error::Unauthentic)
        );
        assert!(open_range(&DEK, &h, &wrong[1..], 0..1).is_err());
    }

    #[test]
    fn h626_8_7_1_dek_wrapping_is_bound_to_prefix_and_kid() {
        let kek = [0x44; 32];
        let p = Prefix::from_bytes([5; 16]);
        let w = wrap_dek(&kek, &p, "k1", &DEK, [9; 12]).unwrap();
        assert_eq!(w.len(), WRAPPED_DEK);
        assert_eq!(unwrap_dek(&kek, &p, "k1", &w), Ok(DEK));
        let other = Prefix::from_bytes([6; 16]);
        assert_eq!(unwrap_dek(&kek, &other, "k1", &w), Err(Error::Unauthentic));
        assert_eq!(unwrap_dek(&kek, &p, "k2", &w), Err(Error::Unauthentic));
        assert_eq!(
            unwrap_dek(&[0x45; 32], &p, "k1", &w),
            Err(Error::Unauthentic)
        );
        for i in 0..w.len() {
            let mut t = w.clone();
            t[i] ^= 1;
            assert_eq!(unwrap_dek(&kek, &p, "k1", &t), Err(Error::Unauthentic));
        }
        assert!(unwrap_dek(&kek, &p, "k1", &w[1..]).is_err());
        assert!(wrap_dek(&kek, &p, "bad kid", &DEK, [9; 12]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn h626_8_7_1_envelope_property_round_trip_and_ranges(
            n in 0usize..4 * CHUNK,
            salt in any::<[u8; 32]>(),
            dek in any::<[u8; 32]>(),
            a in any::<prop::sample::Index>(),
            b in any::<prop::sample::Index>(),
        ) {
            let p = plain(n);
            let s = seal(&dek, "k.9_-", salt, &p).unwrap();
            prop_assert_eq!(&open(|k| (k == "k.9_-").then_some(dek), &s).unwrap(), &p);
            if n > 0 {
                let (x, y) = (a.index(n), b.index(n));
                let r = x.min(y) as u64..x.max(y) as u64 + 1;
                let h = Header::parse(&s).unwrap();
                let c = h.cipher_range(&r).unwrap();
                let got = open_range(&dek, &h, &s[c.bytes.start as usize..c.bytes.end as usize], r.clone()).unwrap();
                prop_assert_eq!(got, &p[r.start as usize..r.end as usize]);
            }
        }

        #[test]
        fn h626_8_7_1_envelope_any_flipped_bit_is_refused(
            n in 0usize..2 * CHUNK + 10,
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut s = seal(&DEK, "k1", SALT, &plain(n)).unwrap();
            let i = at.index(s.len());
            s[i] ^= 1 << bit;
            prop_assert!(open(|_| Some(DEK), &s).is_err());
        }
    }
}
