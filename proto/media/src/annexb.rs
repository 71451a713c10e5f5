//! H.264 byte streams: Annex B framing, AVCC length prefixes, NAL unit types, emulation
//! prevention, and grouping NAL units into access units.
//!
//! A NAL unit here is always the bytes from the one-byte NAL header to the end of the unit,
//! with emulation prevention bytes still in place (as carried by RTP and stored in MP4), and
//! without a start code or length prefix.
//!
//! * [`split`] / [`join`]: Annex B (H.264 Annex B, `00 00 01` / `00 00 00 01` start codes).
//! * [`to_avcc`] / [`split_avcc`]: length-prefixed NAL units (ISO/IEC 14496-15 5.3.3).
//! * [`escape`] / [`unescape`]: RBSP <-> NAL payload (H.264 7.4.1, `00 00 03`).
//! * [`AccessUnitAssembler`]: a continuous Annex B stream in, whole [`AccessUnit`]s out
//!   (H.264 7.4.1.2.3).

use std::collections::VecDeque;

use crate::Error;
use crate::sei::{self, FrameInfo};

/// The `nal_unit_type` of a NAL unit (H.264 Table 7-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NalType(pub u8);

impl NalType {
    /// Coded slice of a non-IDR picture.
    pub const SLICE: Self = Self(1);
    /// Coded slice data partition A.
    pub const SLICE_DPA: Self = Self(2);
    /// Coded slice data partition B.
    pub const SLICE_DPB: Self = Self(3);
    /// Coded slice data partition C.
    pub const SLICE_DPC: Self = Self(4);
    /// Coded slice of an IDR picture.
    pub const IDR: Self = Self(5);
    /// Supplemental enhancement information.
    pub const SEI: Self = Self(6);
    /// Sequence parameter set.
    pub const SPS: Self = Self(7);
    /// Picture parameter set.
    pub const PPS: Self = Self(8);
    /// Access unit delimiter.
    pub const AUD: Self = Self(9);
    /// End of sequence.
    pub const END_OF_SEQUENCE: Self = Self(10);
    /// End of stream.
    pub const END_OF_STREAM: Self = Self(11);
    /// Filler data.
    pub const FILLER: Self = Self(12);

    /// The type of `nal`, from its header byte; `None` for an empty slice.
    pub fn of(nal: &[u8]) -> Option<Self> {
        nal.first().map(|h| Self(h & 0x1f))
    }

    /// A VCL NAL unit (a slice or slice data partition, types 1 to 5).
    pub fn is_vcl(self) -> bool {
        (1..=5).contains(&self.0)
    }

    /// One of the types that, after a VCL NAL unit, begins the next access unit
    /// (H.264 7.4.1.2.3: AUD, SPS, PPS, SEI, and 14 to 18).
    fn starts_access_unit(self) -> bool {
        matches!(self.0, 6..=9 | 14..=18)
    }
}

/// The NAL units of an Annex B byte stream, without start codes.
///
/// Bytes before the first start code are skipped, as are empty units; trailing zero bytes
/// of a unit (the `zero_byte` of a following 4-byte start code, or `trailing_zero_8bits`)
/// are not part of it.
pub fn split(stream: &[u8]) -> Split<'_> {
    let rest = match find_start_code(stream, 0) {
        Some(i) => &stream[i + 3..],
        None => &[],
    };
    Split { rest }
}

/// Iterator returned by [`split`].
#[derive(Debug, Clone)]
pub struct Split<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while !self.rest.is_empty() {
            let (nal, rest) = match find_start_code(self.rest, 0) {
                Some(i) => (&self.rest[..i], &self.rest[i + 3..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            let nal = trim_trailing_zeros(nal);
            if !nal.is_empty() {
                return Some(nal);
            }
        }
        None
    }
}

/// Joins NAL units into an Annex B byte stream with 4-byte start codes.
pub fn join<I>(nals: I) -> Vec<u8>
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let mut out = Vec::new();
    for nal in nals {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal.as_ref());
    }
    out
}

/// Joins NAL units with 4-byte big-endian length prefixes (AVCC, `lengthSizeMinusOne` = 3).
///
/// Fails if a unit is 4 GiB or larger.
pub fn to_avcc<I>(nals: I) -> Result<Vec<u8>, Error>
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let mut out = Vec::new();
    for nal in nals {
        append_avcc(&mut out, nal.as_ref())?;
    }
    Ok(out)
}

/// Appends one NAL unit with a 4-byte length prefix.
pub(crate) fn append_avcc(out: &mut Vec<u8>, nal: &[u8]) -> Result<(), Error> {
    let len = u32::try_from(nal.len()).map_err(|_| Error::TooLarge {
        context: "NAL unit",
        limit: u64::from(u32::MAX),
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(nal);
    Ok(())
}

/// Splits length-prefixed NAL units; `length_size` is 1, 2 or 4 bytes.
pub fn split_avcc(data: &[u8], length_size: u8) -> Result<Vec<&[u8]>, Error> {
    const CTX: &str = "AVCC sample";
    let n = usize::from(length_size);
    if !matches!(n, 1 | 2 | 4) {
        return Err(Error::invalid(CTX, 0, "length size must be 1, 2 or 4"));
    }
    let mut nals = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let prefix = data
            .get(pos..pos + n)
            .ok_or_else(|| Error::truncated(CTX, pos))?;
        let len = prefix
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        let start = pos + n;
        let nal = start
            .checked_add(len)
            .and_then(|end| data.get(start..end))
            .ok_or_else(|| Error::truncated(CTX, start))?;
        nals.push(nal);
        pos = start + len;
    }
    Ok(nals)
}

/// Adds emulation prevention bytes: RBSP to NAL payload (H.264 7.4.1).
///
/// A `03` goes after every `00 00` that is followed by `00`, `01`, `02` or `03`, and after
/// a final `00 00` (the cabac_zero_word case), so that [`unescape`] restores the input
/// exactly and the result never contains a start code.
pub fn escape(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + rbsp.len() / 64 + 1);
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    if zeros >= 2 {
        out.push(3);
    }
    out
}

/// Removes emulation prevention bytes: NAL payload to RBSP (H.264 7.4.1).
///
/// Every `03` that follows `00 00` is dropped, as decoders do, even where the escaping was
/// not needed.
pub fn unescape(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len());
    let mut zeros = 0;
    for &b in payload {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out
}

/// The NAL units of one picture and the non-VCL units that precede it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessUnit {
    /// NAL units in decoding order, without start codes.
    pub nals: Vec<Vec<u8>>,
}

impl AccessUnit {
    /// Whether the access unit holds an IDR slice (a random access point).
    pub fn is_key(&self) -> bool {
        self.has(NalType::IDR)
    }

    /// Whether the access unit holds at least one slice.
    pub fn has_picture(&self) -> bool {
        self.nals
            .iter()
            .any(|n| NalType::of(n).is_some_and(NalType::is_vcl))
    }

    /// The first SPS in the access unit.
    pub fn sps(&self) -> Option<&[u8]> {
        self.first(NalType::SPS)
    }

    /// The first PPS in the access unit.
    pub fn pps(&self) -> Option<&[u8]> {
        self.first(NalType::PPS)
    }

    /// The frame tag of the synthetic camera, from the first SEI NAL unit that has one.
    pub fn frame_info(&self) -> Option<FrameInfo> {
        self.nals.iter().find_map(|n| sei::parse_sei(n))
    }

    /// The access unit as Annex B with 4-byte start codes.
    pub fn to_annexb(&self) -> Vec<u8> {
        join(&self.nals)
    }

    /// Total size of the NAL units, without framing.
    pub fn byte_len(&self) -> usize {
        self.nals.iter().map(Vec::len).sum()
    }

    fn has(&self, t: NalType) -> bool {
        self.first(t).is_some()
    }

    fn first(&self, t: NalType) -> Option<&[u8]> {
        self.nals
            .iter()
            .find(|n| NalType::of(n) == Some(t))
            .map(Vec::as_slice)
    }
}

/// Groups a continuous Annex B stream (or a sequence of NAL units) into access units.
///
/// Sans-IO: [`push`](Self::push) bytes as they arrive in chunks of any size, then
/// [`pop`](Self::pop) complete access units. An access unit is complete once the first NAL
/// unit of the next one arrives, so the last one comes out only after
/// [`finish`](Self::finish). A new access unit begins (H.264 7.4.1.2.3) at
///
/// * an access unit delimiter,
/// * an SPS, PPS, SEI or type 14 to 18 unit after the current unit's first slice,
/// * a slice with `first_mb_in_slice == 0` after the current unit's first slice.
///
/// Memory is bounded: a NAL unit or access unit larger than the limit (default
/// [`DEFAULT_MAX_BYTES`](Self::DEFAULT_MAX_BYTES)) is discarded with an error, and the
/// assembler resynchronises at the next start code.
#[derive(Debug, Clone)]
pub struct AccessUnitAssembler {
    /// Unsplit input. While `in_nal`, `buf[start..]` is the body of the NAL unit after the
    /// last start code seen.
    buf: Vec<u8>,
    start: usize,
    /// Bytes of `buf[start..]` already searched for a start code.
    scanned: usize,
    in_nal: bool,
    /// Drop bytes until the next start code (after an oversized unit).
    skipping: bool,
    current: AccessUnit,
    current_bytes: usize,
    current_has_vcl: bool,
    ready: VecDeque<AccessUnit>,
    max_bytes: usize,
}

impl Default for AccessUnitAssembler {
    fn default() -> Self {
        Self::new()
    }
}

impl AccessUnitAssembler {
    /// Largest NAL unit and access unit kept by default: 16 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 16 << 20;

    /// An assembler with the default size limit.
    pub fn new() -> Self {
        Self::with_max_bytes(Self::DEFAULT_MAX_BYTES)
    }

    /// An assembler that refuses NAL units and access units larger than `max_bytes`.
    pub fn with_max_bytes(max_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            in_nal: false,
            skipping: false,
            current: AccessUnit::default(),
            current_bytes: 0,
            current_has_vcl: false,
            ready: VecDeque::new(),
            max_bytes,
        }
    }

    /// Feeds Annex B bytes. Bytes before the first start code are ignored.
    ///
    /// On [`Error::TooLarge`] the offending NAL unit or access unit has been dropped; the
    /// assembler stays usable and the other units are kept.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.buf.extend_from_slice(bytes);
        let mut result = Ok(());
        while let Some(i) = find_start_code(&self.buf[self.start..], self.scanned) {
            let body_end = self.start + i;
            if self.in_nal && !self.skipping {
                let nal = trim_trailing_zeros(&self.buf[self.start..body_end]).to_vec();
                if let Err(e) = self.push_nal_owned(nal) {
                    result = Err(e);
                }
            }
            self.in_nal = true;
            self.skipping = false;
            self.start = body_end + 3;
            self.scanned = 0;
        }
        let pending = self.buf.len() - self.start;
        // A start code may begin in the last two bytes; search them again next time.
        self.scanned = pending.saturating_sub(2);
        if !self.in_nal || self.skipping {
            // Nothing to keep but a possible partial start code.
            self.start = self.buf.len() - pending.min(2);
            self.scanned = 0;
        } else if pending > self.max_bytes {
            self.skipping = true;
            self.start = self.buf.len() - pending.min(2);
            self.scanned = 0;
            result = Err(Error::TooLarge {
                context: "NAL unit",
                limit: self.max_bytes as u64,
            });
        }
        // Compact only when the dead prefix dominates, so that feeding a large unit in
        // small pieces stays linear.
        if self.start > 0 && self.start >= self.buf.len() - self.start {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        result
    }

    /// Feeds one NAL unit without start code (e.g. from an RTP depacketizer).
    ///
    /// Empty units are ignored. On [`Error::TooLarge`] the access unit it would have joined
    /// is dropped.
    pub fn push_nal(&mut self, nal: &[u8]) -> Result<(), Error> {
        self.push_nal_owned(nal.to_vec())
    }

    /// The next complete access unit, oldest first.
    pub fn pop(&mut self) -> Option<AccessUnit> {
        self.ready.pop_front()
    }

    /// Ends the stream: the pending NAL unit and access unit become available to
    /// [`pop`](Self::pop). The assembler can be reused for a new stream afterwards.
    pub fn finish(&mut self) -> Result<(), Error> {
        let mut result = Ok(());
        if self.in_nal && !self.skipping {
            let nal = trim_trailing_zeros(&self.buf[self.start..]).to_vec();
            result = self.push_nal_owned(nal);
        }
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        self.in_nal = false;
        self.skipping = false;
        self.close_current();
        result
    }

    fn push_nal_owned(&mut self, nal: Vec<u8>) -> Result<(), Error> {
        let Some(t) = NalType::of(&nal) else {
            return Ok(());
        };
        let begins = match t {
            NalType::AUD => true,
            t if t.starts_access_unit() => self.current_has_vcl,
            NalType::SLICE | NalType::SLICE_DPA | NalType::IDR => {
                // first_mb_in_slice is ue(v), 0 exactly when its first bit is 1. The byte
                // after the header cannot be an emulation prevention byte.
                self.current_has_vcl && nal.get(1).is_some_and(|b| b & 0x80 != 0)
            }
            _ => false,
        };
        if begins {
            self.close_current();
        }
        if self.current_bytes + nal.len() > self.max_bytes {
            self.current = AccessUnit::default();
            self.current_bytes = 0;
            self.current_has_vcl = false;
            return Err(Error::TooLarge {
                context: "access unit",
                limit: self.max_bytes as u64,
            });
        }
        self.current_has_vcl |= t.is_vcl();
        self.current_bytes += nal.len();
        self.current.nals.push(nal);
        Ok(())
    }

    fn close_current(&mut self) {
        if !self.current.nals.is_empty() {
            self.ready.push_back(std::mem::take(&mut self.current));
        }
        self.current_bytes = 0;
        self.current_has_vcl = false;
    }
}

/// Index of the next `00 00 01` in `data` at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 3 <= data.len() {
        // Skip quickly: a start code needs data[i + 2] == 1 and two zeros before it.
        match data[i + 2] {
            1 if data[i] == 0 && data[i + 1] == 0 => return Some(i),
            0 => i += 1,
            _ => i += 3,
        }
    }
    None
}

fn trim_trailing_zeros(nal: &[u8]) -> &[u8] {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &nal[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A NAL unit as an encoder would produce it: a header and an escaped payload ending in
    /// a non-zero byte.
    fn arb_nal() -> impl Strategy<Value = Vec<u8>> {
        (
            1u8..=31,
            prop::collection::vec(prop_oneof![Just(0u8), Just(1), Just(3), any::<u8>()], 0..40),
        )
            .prop_map(|(t, payload)| {
                let mut nal = vec![0x60 | t];
                let mut rbsp = payload;
                rbsp.push(0x80);
                nal.extend(escape(&rbsp));
                nal
            })
    }

    proptest! {
        #[test]
        fn escape_round_trips(x in prop::collection::vec(prop_oneof![Just(0u8), Just(1), Just(2), Just(3), any::<u8>()], 0..200)) {
            let e = escape(&x);
            prop_assert_eq!(unescape(&e), x);
            prop_assert!(find_start_code(&e, 0).is_none(), "start code in escaped data");
            prop_assert!(!e.windows(3).any(|w| w == [0, 0, 0]));
        }

        #[test]
        fn annexb_and_avcc_round_trip(nals in prop::collection::vec(arb_nal(), 0..12), three in any::<bool>()) {
            let joined = join(&nals);
            prop_assert_eq!(split(&joined).collect::<Vec<_>>(), nals.iter().map(Vec::as_slice).collect::<Vec<_>>());
            // The same with 3-byte start codes and trailing zeros.
            let mut short = vec![0u8; 2];
            for n in &nals {
                short.extend_from_slice(if three { &[0, 0, 1][..] } else { &[0, 0, 0, 1][..] });
                short.extend_from_slice(n);
                short.push(0);
            }
            prop_assert_eq!(split(&short).collect::<Vec<_>>(), nals.iter().map(Vec::as_slice).collect::<Vec<_>>());
            let avcc = to_avcc(&nals).unwrap();
            prop_assert_eq!(split_avcc(&avcc, 4).unwrap(), nals.iter().map(Vec::as_slice).collect::<Vec<_>>());
        }

        #[test]
        fn assembler_is_chunking_independent(nals in prop::collection::vec(arb_nal(), 0..30), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8)) {
            let stream = join(&nals);
            let whole = assemble(&[&stream[..]]);
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            at.sort_unstable();
            let mut pieces = Vec::new();
            let mut prev = 0;
            for a in at {
                pieces.push(&stream[prev..a]);
                prev = a;
            }
            pieces.push(&stream[prev..]);
            prop_assert_eq!(&assemble(&pieces), &whole);
            // Nothing is lost or reordered.
            let flat: Vec<Vec<u8>> = whole.into_iter().flat_map(|au| au.nals).collect();
            prop_assert_eq!(flat, nals);
        }
    }

    /// (Formerly the cases of `peercam_rtp::h264::split_annex_b`, the second splitter.)
    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let stream = [
            0xff, // junk before the first start code
            0, 0, 0, 1, 0x67, 0x42, 0x00, 0x1f, // SPS, 4-byte start code
            0, 0, 1, 0x68, 0xce, // PPS, 3-byte start code
            0, 0, 0, 0, 1, // trailing zero, empty NAL units
            0, 0, 1, 0x65, 0x88, 0x00, 0x00, 0x03, 0x01, // IDR with emulation prevention
            0, 0, // trailing zeros at the end
        ];
        let nals: Vec<&[u8]> = split(&stream).collect();
        assert_eq!(
            nals,
            [
                &[0x67, 0x42, 0x00, 0x1f][..],
                &[0x68, 0xce],
                &[0x65, 0x88, 0x00, 0x00, 0x03, 0x01]
            ]
        );
        assert_eq!(split(&[]).count(), 0);
        assert_eq!(split(&[0x65, 1, 2]).count(), 0);
        assert_eq!(split(&[0, 0, 1]).count(), 0);
        assert_eq!(split(&[0, 0, 1, 9]).collect::<Vec<_>>(), [&[9]]);
    }

    proptest! {
        #[test]
        fn split_never_panics(stream in prop::collection::vec(0u8..3, 0..64)) {
            let total: usize = split(&stream).map(<[u8]>::len).sum();
            prop_assert!(total <= stream.len());
        }
    }

    fn assemble(pieces: &[&[u8]]) -> Vec<AccessUnit> {
        let mut a = AccessUnitAssembler::new();
        for p in pieces {
            a.push(p).unwrap();
        }
        a.finish().unwrap();
        std::iter::from_fn(|| a.pop()).collect()
    }

    fn nal(t: u8, first_mb_zero: bool) -> Vec<u8> {
        vec![0x60 | t, if first_mb_zero { 0x88 } else { 0x48 }, 0x80]
    }

    #[test]
    fn access_unit_boundaries() {
        let (sps, pps, sei, aud) = (nal(7, true), nal(8, true), nal(6, true), nal(9, true));
        let idr = nal(5, true);
        let p0 = nal(1, true);
        let p1 = nal(1, false); // second slice of the same picture
        let stream = join([
            &sps, &pps, &sei, &idr, &p1, // AU 1: SPS PPS SEI IDR + slice
            &sei, &p0, &p1, // AU 2: SEI starts it
            &p0, // AU 3: first_mb 0
            &aud, &p0, // AU 4: AUD
            &pps, &p0, // AU 5: PPS after a slice
            &sps, &pps, &idr, // AU 6
        ]);
        let aus = assemble(&[&stream]);
        let shapes: Vec<Vec<u8>> = aus
            .iter()
            .map(|au| au.nals.iter().map(|n| n[0] & 0x1f).collect())
            .collect();
        assert_eq!(
            shapes,
            vec![
                vec![7, 8, 6, 5, 1],
                vec![6, 1, 1],
                vec![1],
                vec![9, 1],
                vec![8, 1],
                vec![7, 8, 5]
            ]
        );
        assert!(aus[0].is_key() && !aus[1].is_key() && aus[5].is_key());
        assert_eq!(aus[0].sps(), Some(&sps[..]));
        assert_eq!(aus[4].pps(), Some(&pps[..]));
        assert!(aus.iter().all(AccessUnit::has_picture));
        // AUD then parameter sets stay together.
        let aus = assemble(&[&join([&aud, &sps, &pps, &idr, &aud, &p0])]);
        assert_eq!(aus.len(), 2);
        assert_eq!(aus[0].nals.len(), 4);
    }

    #[test]
    fn fixture_has_fifty_access_units() {
        let stream = include_bytes!("../testdata/x264_baseline_320x180_25fps_50f.h264");
        let aus = assemble(&[stream]);
        assert_eq!(aus.len(), 50);
        assert!(aus.iter().all(AccessUnit::has_picture));
        let keys: Vec<usize> = (0..50).filter(|&i| aus[i].is_key()).collect();
        assert_eq!(keys, vec![0, 25]);
        // x264 writes its own user_data_unregistered SEI; it is not ours.
        assert!(aus[0].nals.iter().any(|n| n[0] & 0x1f == 6));
        assert_eq!(aus[0].frame_info(), None);
        // Byte-at-a-time feeding gives the same result.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(assemble(&bytes), aus);
    }

    #[test]
    fn oversized_units_are_dropped_and_the_stream_resyncs() {
        let mut a = AccessUnitAssembler::with_max_bytes(64);
        let big = {
            let mut n = vec![0x65, 0x88];
            n.extend(std::iter::repeat_n(0x11, 200));
            n
        };
        let small = nal(5, true);
        a.push(&join([&small])).unwrap();
        assert!(matches!(a.push(&join([&big])), Err(Error::TooLarge { .. })));
        a.push(&join([&small, &small])).unwrap();
        a.finish().unwrap();
        let aus: Vec<_> = std::iter::from_fn(|| a.pop()).collect();
        assert_eq!(aus.len(), 3);
        assert!(aus.iter().all(|au| au.nals == vec![small.clone()]));
    }

    #[test]
    fn split_edge_cases() {
        assert_eq!(split(&[]).count(), 0);
        assert_eq!(split(&[0, 0, 1]).count(), 0);
        assert_eq!(
            split(&[9, 9, 0, 0, 1, 0x67, 0, 0, 0, 1, 0x68]).collect::<Vec<_>>(),
            vec![&[0x67][..], &[0x68][..]]
        );
        assert!(split_avcc(&[0, 0, 0, 5, 1], 4).is_err());
        assert!(split_avcc(&[0, 1], 3).is_err());
        assert_eq!(
            split_avcc(&[1, 0x41, 0, 2, 0x41, 0x42], 1).unwrap(),
            vec![&[0x41][..], &[], &[0x41, 0x42][..]]
        );
        assert_eq!(NalType::of(&[0x65]), Some(NalType::IDR));
        assert_eq!(NalType::of(&[]), None);
    }
}
