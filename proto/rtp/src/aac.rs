//! AAC over RTP as `mpeg4-generic` in the AAC-hbr mode (RFC 3640 3.3.6): the format most
//! cameras send AAC in, and the one the PU re-serves it in (H.626.4 6.3.2).
//!
//! Every packet starts with a 16-bit AU-headers-length (in bits), then one 16-bit AU-header
//! per access unit (13 bits of size, 3 bits of index or index delta, RFC 3640 3.2.1), then
//! the access units back to back. Several small access units share a packet; one too large
//! for a packet is fragmented over packets with the same timestamp, each carrying one
//! AU-header with the whole access unit's size, the marker bit on the last (RFC 3640 3.2.3).
//!
//! [`AacConfig`] is the stream's AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), read from
//! and written to the SDP's `config=` hex. [`AacPacketizer`] writes packets,
//! [`AacDepacketizer`] reads them back, dropping what is malformed with a counter.

use std::collections::VecDeque;

use crate::{Error, Payload};

/// The SDP encoding name.
pub const ENCODING_NAME: &str = "mpeg4-generic";

/// The largest access unit an AU-header can describe (13-bit size).
pub const MAX_ACCESS_UNIT: usize = (1 << 13) - 1;

/// The sampling frequencies of `samplingFrequencyIndex` 0..=12 (ISO/IEC 14496-3 1.6.3.4).
const RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8000,
    7350,
];

/// A stream's AudioSpecificConfig and what is read from it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AacConfig {
    /// The AudioSpecificConfig bytes, as in the SDP's `config=` and an MP4 `esds` box.
    pub config: Vec<u8>,
    /// The audio object type (2 is AAC-LC).
    pub object_type: u8,
    /// Samples per second (also the RTP clock rate).
    pub sample_rate: u32,
    /// Channels (1 to 7 from `channelConfiguration`; 0 means "in the stream", kept as 0).
    pub channels: u8,
    /// Samples per access unit: 1024, or 960 when `frameLengthFlag` is set.
    pub frame_length: u32,
}

fn malformed(context: &'static str, offset: usize, reason: &'static str) -> Error {
    Error::Malformed {
        context,
        offset,
        reason,
    }
}

/// Reads bits most significant first.
struct Bits<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Result<u32, Error> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = self.b.get(self.pos / 8).ok_or(Error::Truncated {
                context: "AudioSpecificConfig",
                offset: self.pos / 8,
                needed: 1,
                available: 0,
            })?;
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Ok(v)
    }
}

impl AacConfig {
    /// Reads an AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1): object type, sampling
    /// frequency and channel configuration, and for AAC-LC the `frameLengthFlag`.
    ///
    /// # Errors
    /// [`Error::Truncated`] or [`Error::Malformed`] (a reserved frequency index, no channels
    /// and no rate).
    pub fn parse(config: &[u8]) -> Result<Self, Error> {
        const CTX: &str = "AudioSpecificConfig";
        let mut r = Bits { b: config, pos: 0 };
        let mut object_type = r.read(5)?;
        if object_type == 31 {
            object_type = 32 + r.read(6)?;
        }
        let index = r.read(4)?;
        let sample_rate = match index {
            0..=12 => RATES[index as usize],
            15 => r.read(24)?,
            _ => return Err(malformed(CTX, 0, "reserved sampling frequency index")),
        };
        if !(1..=192_000).contains(&sample_rate) {
            return Err(malformed(CTX, 1, "sampling frequency out of range"));
        }
        let channels = r.read(4)?;
        if channels > 7 {
            return Err(malformed(CTX, 1, "reserved channel configuration"));
        }
        // GASpecificConfig (1.6.2.1, 4.4.1) for the AAC object types that have it.
        let frame_length = if matches!(object_type, 1..=4 | 6 | 7 | 17 | 19..=23) {
            if r.read(1)? == 1 { 960 } else { 1024 }
        } else {
            1024
        };
        Ok(Self {
            config: config.to_vec(),
            object_type: object_type as u8,
            sample_rate,
            channels: channels as u8,
            frame_length,
        })
    }

    /// An AAC-LC configuration for `sample_rate` (one of the 13 standard rates) and
    /// `channels` (1 to 7).
    ///
    /// # Errors
    /// [`Error::Unrepresentable`] for another rate or channel count.
    pub fn aac_lc(sample_rate: u32, channels: u8) -> Result<Self, Error> {
        let index = RATES
            .iter()
            .position(|&r| r == sample_rate)
            .ok_or(Error::Unrepresentable {
                context: "AudioSpecificConfig",
                reason: "not a standard AAC sampling frequency",
            })?;
        if !(1..=7).contains(&channels) {
            return Err(Error::Unrepresentable {
                context: "AudioSpecificConfig",
                reason: "channels must be 1 to 7",
            });
        }
        let bits: u16 = (2 << 11) | ((index as u16) << 7) | (u16::from(channels) << 3);
        Self::parse(&bits.to_be_bytes())
    }

    /// Reads the configuration from an `a=fmtp:` value of an `mpeg4-generic` stream (the
    /// part after the payload type): `config=` hex, and the AAC-hbr AU-header layout
    /// (`sizelength=13; indexlength=3; indexdeltalength=3`, the only one read here).
    ///
    /// # Errors
    /// [`Error::Malformed`] when `config=` is missing or not hex, or the mode or AU-header
    /// layout is another.
    pub fn from_fmtp(fmtp: &str) -> Result<Self, Error> {
        const CTX: &str = "mpeg4-generic fmtp";
        let mut config = None;
        for p in fmtp.split(';') {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "config" => {
                    config = Some(hex(v).ok_or_else(|| malformed(CTX, 0, "config= is not hex"))?)
                }
                "mode" if !v.eq_ignore_ascii_case("AAC-hbr") => {
                    return Err(malformed(CTX, 0, "mode is not AAC-hbr"));
                }
                "sizelength" if v != "13" => return Err(malformed(CTX, 0, "sizelength is not 13")),
                "indexlength" if v != "3" => return Err(malformed(CTX, 0, "indexlength is not 3")),
                "indexdeltalength" if v != "3" => {
                    return Err(malformed(CTX, 0, "indexdeltalength is not 3"));
                }
                _ => {}
            }
        }
        Self::parse(&config.ok_or_else(|| malformed(CTX, 0, "no config="))?)
    }

    /// The `a=rtpmap:` value after the payload type: `mpeg4-generic/<rate>/<channels>`.
    pub fn rtpmap(&self) -> String {
        format!(
            "{ENCODING_NAME}/{}/{}",
            self.sample_rate,
            self.channels.max(1)
        )
    }

    /// The `a=fmtp:` value after the payload type (RFC 3640 3.3.6).
    pub fn fmtp(&self) -> String {
        let hex: String = self.config.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;\
             indexdeltalength=3;config={hex}"
        )
    }
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) || s.len() > 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Writes access units as AAC-hbr payloads.
#[derive(Clone, Debug)]
pub struct AacPacketizer {
    max_payload: usize,
}

impl Default for AacPacketizer {
    fn default() -> Self {
        Self { max_payload: 1400 }
    }
}

impl AacPacketizer {
    /// Payloads of at most `max_payload` bytes (at least 5: the headers and one byte).
    ///
    /// # Errors
    /// [`Error::Unrepresentable`] below 5.
    pub fn new(max_payload: usize) -> Result<Self, Error> {
        if max_payload < 5 {
            return Err(Error::Unrepresentable {
                context: "AAC payload",
                reason: "payload size below 5 bytes",
            });
        }
        Ok(Self { max_payload })
    }

    /// Consecutive access units, the first at `timestamp`, each `frame_length` samples after
    /// the one before: as many whole ones per packet as fit (marker set), an access unit too
    /// large for a packet alone in fragments (marker on the last; RFC 3640 3.2.3).
    ///
    /// # Errors
    /// [`Error::Unrepresentable`] for an empty access unit or one over [`MAX_ACCESS_UNIT`]
    /// bytes.
    pub fn packetize<A: AsRef<[u8]>>(
        &self,
        aus: &[A],
        timestamp: u32,
        frame_length: u32,
    ) -> Result<Vec<Payload>, Error> {
        let mut out = Vec::new();
        let mut group: Vec<&[u8]> = Vec::new();
        let mut group_ts = timestamp;
        let mut size = 2;
        for (i, au) in aus.iter().enumerate() {
            let au = au.as_ref();
            if au.is_empty() || au.len() > MAX_ACCESS_UNIT {
                return Err(Error::Unrepresentable {
                    context: "AAC payload",
                    reason: "access unit empty or over 8191 bytes",
                });
            }
            let ts = timestamp.wrapping_add(frame_length.wrapping_mul(i as u32));
            if !group.is_empty() && size + 2 + au.len() > self.max_payload {
                out.push(aggregate(&group, group_ts));
                group.clear();
                size = 2;
            }
            if 4 + au.len() > self.max_payload {
                // Alone, in fragments.
                let chunk = self.max_payload - 4;
                let n = au.len().div_ceil(chunk);
                for (k, piece) in au.chunks(chunk).enumerate() {
                    let mut data = Vec::with_capacity(4 + piece.len());
                    data.extend_from_slice(&16u16.to_be_bytes());
                    data.extend_from_slice(&((au.len() as u16) << 3).to_be_bytes());
                    data.extend_from_slice(piece);
                    out.push(Payload {
                        data,
                        timestamp: ts,
                        marker: k + 1 == n,
                    });
                }
                continue;
            }
            if group.is_empty() {
                group_ts = ts;
            }
            group.push(au);
            size += 2 + au.len();
        }
        if !group.is_empty() {
            out.push(aggregate(&group, group_ts));
        }
        Ok(out)
    }
}

fn aggregate(aus: &[&[u8]], timestamp: u32) -> Payload {
    let mut data = Vec::with_capacity(2 + aus.iter().map(|a| a.len() + 2).sum::<usize>());
    data.extend_from_slice(&((aus.len() as u16) * 16).to_be_bytes());
    for au in aus {
        // Index 0 for the first, index delta 0 for the rest: consecutive units.
        data.extend_from_slice(&((au.len() as u16) << 3).to_be_bytes());
    }
    for au in aus {
        data.extend_from_slice(au);
    }
    Payload {
        data,
        timestamp,
        marker: true,
    }
}

/// One access unit read back.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AacFrame {
    /// Its RTP timestamp (the packet's, plus `frame_length` per unit before it).
    pub timestamp: u32,
    /// The raw access unit.
    pub data: Vec<u8>,
}

/// Counters of an [`AacDepacketizer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AacStats {
    /// Packets pushed.
    pub packets: u64,
    /// Packets dropped as malformed (bad AU-headers-length, an AU beyond the packet, an
    /// interleaved index, a fragment that does not continue the one in progress).
    pub malformed_packets: u64,
    /// Packets missing, from sequence number gaps.
    pub lost_packets: u64,
    /// Access units returned.
    pub access_units: u64,
}

#[derive(Clone, Debug)]
struct Fragment {
    timestamp: u32,
    size: usize,
    data: Vec<u8>,
}

/// Reads AAC-hbr payloads back into access units.
#[derive(Clone, Debug)]
pub struct AacDepacketizer {
    frame_length: u32,
    expected: Option<u16>,
    fragment: Option<Fragment>,
    ready: VecDeque<AacFrame>,
    stats: AacStats,
}

impl AacDepacketizer {
    /// For a stream of `frame_length` samples per access unit ([`AacConfig::frame_length`]).
    pub fn new(frame_length: u32) -> Self {
        Self {
            frame_length,
            expected: None,
            fragment: None,
            ready: VecDeque::new(),
            stats: AacStats::default(),
        }
    }

    /// One packet's fields. A malformed payload is dropped whole (with a fragment in
    /// progress) and counted; the depacketizer goes on with the next.
    ///
    /// # Errors
    /// [`Error::Truncated`] or [`Error::Malformed`] saying what was wrong.
    pub fn push(
        &mut self,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Result<(), Error> {
        const CTX: &str = "AAC-hbr payload";
        self.stats.packets += 1;
        if let Some(e) = self.expected
            && e != sequence
        {
            let gap = sequence.wrapping_sub(e);
            if gap < 0x8000 {
                self.stats.lost_packets += u64::from(gap);
            }
            // RFC 3640 3.2.3: a fragmented unit with a lost piece is dropped.
            self.fragment = None;
        }
        self.expected = Some(sequence.wrapping_add(1));
        let r = self.read(timestamp, marker, payload, CTX);
        if r.is_err() {
            self.stats.malformed_packets += 1;
            self.fragment = None;
        }
        r
    }

    fn read(
        &mut self,
        timestamp: u32,
        marker: bool,
        p: &[u8],
        ctx: &'static str,
    ) -> Result<(), Error> {
        let bits = crate::error::be_u16(p, 0, ctx)?;
        if bits == 0 || !bits.is_multiple_of(16) {
            return Err(malformed(
                ctx,
                0,
                "AU-headers-length is not a multiple of 16",
            ));
        }
        let n = usize::from(bits / 16);
        let data_at = 2 + 2 * n;
        if p.len() < data_at {
            return Err(Error::Truncated {
                context: ctx,
                offset: 2,
                needed: 2 * n,
                available: p.len().saturating_sub(2),
            });
        }
        let headers: Vec<(usize, u16)> = (0..n)
            .map(|i| {
                let h = u16::from_be_bytes([p[2 + 2 * i], p[3 + 2 * i]]);
                (usize::from(h >> 3), h & 7)
            })
            .collect();
        if headers.iter().any(|&(_, index)| index != 0) {
            return Err(malformed(ctx, 2, "interleaved AU index (not supported)"));
        }
        let body = &p[data_at..];
        if let Some(f) = &mut self.fragment {
            // RFC 3640 3.2.3: a continuation has one AU-header with the whole unit's size.
            if n != 1 || headers[0].0 != f.size || timestamp != f.timestamp {
                return Err(malformed(ctx, 2, "does not continue the fragmented AU"));
            }
            if f.data.len() + body.len() > f.size {
                return Err(malformed(ctx, data_at, "fragment beyond the AU size"));
            }
            f.data.extend_from_slice(body);
            if f.data.len() == f.size {
                if let Some(f) = self.fragment.take() {
                    self.emit(f.timestamp, f.data);
                }
            } else if marker {
                return Err(malformed(
                    ctx,
                    data_at,
                    "last fragment short of the AU size",
                ));
            }
            return Ok(());
        }
        let total: usize = headers.iter().map(|h| h.0).sum();
        if n == 1 && headers[0].0 > body.len() && !marker {
            // The first fragment of a large AU.
            if headers[0].0 == 0 {
                return Err(malformed(ctx, 2, "empty AU"));
            }
            self.fragment = Some(Fragment {
                timestamp,
                size: headers[0].0,
                data: body.to_vec(),
            });
            return Ok(());
        }
        if total != body.len() {
            return Err(malformed(ctx, 2, "AU sizes do not match the payload"));
        }
        if headers.iter().any(|h| h.0 == 0) {
            return Err(malformed(ctx, 2, "empty AU"));
        }
        let mut at = 0;
        for (i, (size, _)) in headers.into_iter().enumerate() {
            let ts = timestamp.wrapping_add(self.frame_length.wrapping_mul(i as u32));
            self.emit(ts, body[at..at + size].to_vec());
            at += size;
        }
        Ok(())
    }

    fn emit(&mut self, timestamp: u32, data: Vec<u8>) {
        self.stats.access_units += 1;
        self.ready.push_back(AacFrame { timestamp, data });
    }

    /// The next whole access unit.
    pub fn poll(&mut self) -> Option<AacFrame> {
        self.ready.pop_front()
    }

    /// The counters so far.
    pub fn stats(&self) -> AacStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    fn depacketize(payloads: &[Payload], frame_length: u32) -> Vec<AacFrame> {
        let mut d = AacDepacketizer::new(frame_length);
        let mut out = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            d.push(i as u16, p.timestamp, p.marker, &p.data).unwrap();
            out.extend(std::iter::from_fn(|| d.poll()));
        }
        out
    }

    #[test]
    fn config_reads_rate_channels_and_frame_length() {
        // 16 kHz mono AAC-LC (GStreamer's and ffmpeg's), 48 kHz stereo, 44.1 kHz mono 960.
        let c = AacConfig::parse(&[0x14, 0x08]).unwrap();
        assert_eq!((c.object_type, c.sample_rate, c.channels), (2, 16_000, 1));
        assert_eq!(c.frame_length, 1024);
        let c = AacConfig::parse(&[0x11, 0x90]).unwrap();
        assert_eq!((c.sample_rate, c.channels), (48_000, 2));
        let c = AacConfig::parse(&[0x12, 0x0c]).unwrap();
        assert_eq!(
            (c.sample_rate, c.channels, c.frame_length),
            (44_100, 1, 960)
        );
        assert_eq!(AacConfig::aac_lc(16_000, 1).unwrap().config, [0x14, 0x08]);
        assert!(AacConfig::parse(&[0x17]).is_err(), "truncated");
        assert!(
            AacConfig::parse(&[0x16, 0x88]).is_err(),
            "reserved index 13"
        );
    }

    #[test]
    fn fmtp_round_trips_and_other_modes_are_refused() {
        let c = AacConfig::aac_lc(16_000, 1).unwrap();
        assert_eq!(c.rtpmap(), "mpeg4-generic/16000/1");
        assert_eq!(AacConfig::from_fmtp(&c.fmtp()).unwrap(), c);
        // GStreamer's rtpmp4gpay.
        let gst = "streamtype=5;profile-level-id=2;mode=AAC-hbr;config=1408;sizelength=13;\
                   indexlength=3;indexdeltalength=3";
        assert_eq!(AacConfig::from_fmtp(gst).unwrap(), c);
        for bad in [
            "mode=AAC-lbr;config=1408;sizelength=6",
            "mode=AAC-hbr;sizelength=13",
            "config=14x8",
        ] {
            assert!(AacConfig::from_fmtp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn several_units_share_a_packet_and_large_ones_are_fragmented() {
        let p = AacPacketizer::new(100).unwrap();
        let aus = [
            vec![1u8; 30],
            vec![2; 30],
            vec![3; 30],
            vec![4; 250],
            vec![5; 10],
        ];
        let out = p.packetize(&aus, 1000, 1024).unwrap();
        // [1, 2, 3] then 4 in three fragments then [5].
        assert_eq!(out.len(), 5);
        assert_eq!(&out[0].data[..8], &[0, 48, 0, 240, 0, 240, 0, 240]);
        assert_eq!(out[1].timestamp, 1000 + 3 * 1024);
        assert_eq!(out[4].timestamp, 1000 + 4 * 1024);
        assert_eq!(
            out[1..4].iter().map(|p| p.marker).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert!(out.iter().all(|p| p.data.len() <= 100));
        let back = depacketize(&out, 1024);
        assert_eq!(back.len(), 5);
        for (i, (f, au)) in back.iter().zip(&aus).enumerate() {
            assert_eq!(&f.data, au);
            assert_eq!(f.timestamp, 1000 + 1024 * i as u32);
        }
    }

    #[test]
    fn bad_packets_are_dropped_and_counted() {
        let mut d = AacDepacketizer::new(1024);
        let good = AacPacketizer::default()
            .packetize(&[vec![7u8; 20]], 0, 1024)
            .unwrap();
        let bad: [&[u8]; 5] = [
            &[0x00],                      // no AU-headers-length
            &[0x00, 0x0f, 0, 0],          // not a multiple of 16
            &[0x00, 0x10, 0x03, 0x20, 1], // AU of 100 bytes in a 1-byte body, marked
            &[0x00, 0x20, 0x00, 0x08, 1], // two headers, room for one
            &[0x00, 0x10, 0x00, 0x0a, 1], // index 2: interleaving
        ];
        for (i, b) in bad.iter().enumerate() {
            assert!(d.push(i as u16, 0, true, b).is_err(), "{b:02x?}");
        }
        d.push(5, 0, true, &good[0].data).unwrap();
        assert_eq!(d.poll().unwrap().data, vec![7u8; 20]);
        let s = d.stats();
        assert_eq!((s.packets, s.malformed_packets, s.access_units), (6, 5, 1));
    }

    #[test]
    fn a_lost_fragment_drops_its_unit() {
        let p = AacPacketizer::new(50).unwrap();
        let out = p
            .packetize(&[vec![9u8; 120], vec![8; 10]], 0, 1024)
            .unwrap();
        assert_eq!(out.len(), 4);
        let mut d = AacDepacketizer::new(1024);
        d.push(0, out[0].timestamp, out[0].marker, &out[0].data)
            .unwrap();
        // Packet 1 lost.
        let _ = d.push(2, out[2].timestamp, out[2].marker, &out[2].data);
        d.push(3, out[3].timestamp, out[3].marker, &out[3].data)
            .unwrap();
        assert_eq!(d.poll().unwrap().data, vec![8u8; 10]);
        assert!(d.poll().is_none());
        assert_eq!(d.stats().lost_packets, 1);
    }

    proptest! {
        #[test]
        fn packetize_then_depacketize_gives_the_units_back(
            aus in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..3000), 0..12),
            max in 5usize..1500,
            ts in any::<u32>(),
        ) {
            let p = AacPacketizer::new(max).unwrap();
            let out = p.packetize(&aus, ts, 1024).unwrap();
            prop_assert!(out.iter().all(|p| p.data.len() <= max));
            let back = depacketize(&out, 1024);
            prop_assert_eq!(back.len(), aus.len());
            for (i, (f, au)) in back.iter().zip(&aus).enumerate() {
                prop_assert_eq!(&f.data, au);
                prop_assert_eq!(f.timestamp, ts.wrapping_add(1024 * i as u32));
            }
        }

        #[test]
        fn depacketizing_any_bytes_never_panics(
            packets in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..64)), 0..20),
        ) {
            let mut d = AacDepacketizer::new(1024);
            for (i, (m, p)) in packets.iter().enumerate() {
                let _ = d.push(i as u16, 0, *m, p);
                while let Some(f) = d.poll() {
                    prop_assert!(!f.data.is_empty() && f.data.len() <= MAX_ACCESS_UNIT);
                }
            }
            prop_assert_eq!(d.stats().packets, packets.len() as u64);
        }

        #[test]
        fn configs_parse_or_refuse(b in prop::collection::vec(any::<u8>(), 0..8)) {
            if let Ok(c) = AacConfig::parse(&b) {
                prop_assert!(c.sample_rate > 0 && c.channels <= 7);
                prop_assert_eq!(AacConfig::from_fmtp(&c.fmtp()).unwrap(), c);
            }
        }
    }
}
