//! RTCP (RFC 3550 6): sender and receiver reports, source description, BYE, and compound
//! packets.
//!
//! Every RTCP packet starts with the same 4-byte header:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|  count  |      PT       |   length (32-bit words - 1)   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! A datagram (or interleaved frame) carries a *compound* packet: several RTCP packets back
//! to back. [`iter`] walks one, yielding [`RtcpPacket`]s that borrow the input;
//! [`write_compound`] builds one. Parsing is lenient where RFC 3550 A.2 is strict: it does
//! not insist that the first packet is a report (reduced-size RTCP, RFC 5506) and accepts
//! padding on any packet. Packet types it does not model (APP, feedback, XR) come back as
//! [`RtcpPacket::Other`] with their body, so a relay can forward them unchanged.
//!
//! [`NtpTimestamp`] converts Unix microseconds to the 64-bit NTP format of sender reports.

use crate::Error;
use crate::error::{be_u16, be_u32, byte, slice};

/// Packet type of a sender report (RFC 3550 6.4.1).
pub const TYPE_SR: u8 = 200;
/// Packet type of a receiver report (RFC 3550 6.4.2).
pub const TYPE_RR: u8 = 201;
/// Packet type of a source description (RFC 3550 6.5).
pub const TYPE_SDES: u8 = 202;
/// Packet type of a goodbye (RFC 3550 6.6).
pub const TYPE_BYE: u8 = 203;
/// Packet type of an application-defined packet (RFC 3550 6.7).
pub const TYPE_APP: u8 = 204;

/// The most report blocks, SDES chunks or BYE sources one packet can hold (5-bit count).
pub const MAX_COUNT: usize = 31;

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// A 64-bit NTP timestamp: seconds since 1900 in the high 32 bits, the fraction of a second
/// in the low 32 (RFC 3550 4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    /// One past the largest Unix time, in microseconds, that survives
    /// `from_unix_micros` → `to_unix_micros` (2104-02-26, the end of NTP era 1).
    pub const UNIX_MICROS_LIMIT: u64 = ((1 << 32) + (1 << 31) - NTP_UNIX_OFFSET_SECS) * 1_000_000;

    /// Converts a Unix time in microseconds.
    ///
    /// Seconds wrap modulo 2³² as NTP era 1 requires (after 2036-02-07). The fraction is
    /// rounded up, so `to_unix_micros` gives back exactly `unix_us` for every value below
    /// [`UNIX_MICROS_LIMIT`](Self::UNIX_MICROS_LIMIT).
    pub fn from_unix_micros(unix_us: u64) -> Self {
        let secs = (unix_us / 1_000_000 + NTP_UNIX_OFFSET_SECS) & 0xffff_ffff;
        let micros = unix_us % 1_000_000;
        let frac = (micros << 32).div_ceil(1_000_000);
        Self((secs << 32) | frac)
    }

    /// Converts back to Unix microseconds, rounding down.
    ///
    /// Seconds with the top bit clear are read as NTP era 1 (2036 to 2104), as RFC 4330 3
    /// suggests; times before 1970 give 0.
    pub fn to_unix_micros(self) -> u64 {
        let secs = self.seconds();
        let unix_secs = if secs & 0x8000_0000 != 0 {
            match secs.checked_sub(NTP_UNIX_OFFSET_SECS) {
                Some(s) => s,
                None => return 0,
            }
        } else {
            secs + (1 << 32) - NTP_UNIX_OFFSET_SECS
        };
        unix_secs * 1_000_000 + ((u64::from(self.fraction()) * 1_000_000) >> 32)
    }

    /// The whole seconds since 1900 (modulo 2³²).
    pub fn seconds(self) -> u64 {
        self.0 >> 32
    }

    /// The fraction of a second, in units of 2⁻³² s.
    pub fn fraction(self) -> u32 {
        self.0 as u32
    }

    /// The middle 32 bits, as echoed in a report block's "last SR" field (RFC 3550 6.4.1).
    pub fn middle_32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// The sender information of a sender report (RFC 3550 6.4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SenderInfo {
    /// Wall-clock time at which the report was made.
    pub ntp_timestamp: NtpTimestamp,
    /// The same instant in the RTP timestamp clock of this stream.
    pub rtp_timestamp: u32,
    /// RTP data packets sent since the start, modulo 2³².
    pub packet_count: u32,
    /// RTP payload octets sent since the start, modulo 2³².
    pub octet_count: u32,
}

/// One reception report block (RFC 3550 6.4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in units of 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost, a 24-bit signed value (-2²³..2²³); may be negative when
    /// duplicates arrive.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles in the high 16 bits).
    pub highest_sequence: u32,
    /// Interarrival jitter, in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from the source, or 0.
    pub last_sr: u32,
    /// Delay since that SR was received, in units of 1/65536 s, or 0.
    pub delay_since_last_sr: u32,
}

/// A sender report (packet type 200).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SenderReport<'a> {
    /// The sender's SSRC.
    pub ssrc: u32,
    /// What and how much it has sent.
    pub sender_info: SenderInfo,
    /// Up to [`MAX_COUNT`] reception reports on the sources it receives.
    pub reports: Vec<ReportBlock>,
    /// Profile-specific extension, a whole number of 32-bit words.
    pub extension: &'a [u8],
}

/// A receiver report (packet type 201).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReceiverReport<'a> {
    /// The reporter's SSRC.
    pub ssrc: u32,
    /// Up to [`MAX_COUNT`] reception reports.
    pub reports: Vec<ReportBlock>,
    /// Profile-specific extension, a whole number of 32-bit words.
    pub extension: &'a [u8],
}

/// The type of an SDES item (RFC 3550 6.5); 0 is the end marker and cannot be an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SdesType(pub u8);

impl SdesType {
    /// Canonical end-point identifier, `user@host`; the one item every compound needs.
    pub const CNAME: Self = Self(1);
    /// User name.
    pub const NAME: Self = Self(2);
    /// Electronic mail address.
    pub const EMAIL: Self = Self(3);
    /// Phone number.
    pub const PHONE: Self = Self(4);
    /// Geographic location.
    pub const LOC: Self = Self(5);
    /// Application or tool name.
    pub const TOOL: Self = Self(6);
    /// Notice or status.
    pub const NOTE: Self = Self(7);
    /// Private extension.
    pub const PRIV: Self = Self(8);
}

/// One SDES item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SdesItem<'a> {
    /// What the item says.
    pub kind: SdesType,
    /// Its value, UTF-8 by the RFC but not checked here; at most 255 bytes.
    pub value: &'a [u8],
}

/// The items describing one source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SdesChunk<'a> {
    /// The source described.
    pub ssrc: u32,
    /// Its items, in order.
    pub items: Vec<SdesItem<'a>>,
}

impl<'a> SdesChunk<'a> {
    /// A chunk with only a CNAME.
    pub fn cname(ssrc: u32, cname: &'a [u8]) -> Self {
        Self {
            ssrc,
            items: vec![SdesItem {
                kind: SdesType::CNAME,
                value: cname,
            }],
        }
    }
}

/// A goodbye (packet type 203).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bye<'a> {
    /// The sources leaving, at most [`MAX_COUNT`].
    pub sources: Vec<u32>,
    /// Why, at most 255 bytes.
    pub reason: Option<&'a [u8]>,
}

/// An RTCP packet of a type this crate does not model, kept verbatim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OtherPacket<'a> {
    /// The packet type.
    pub packet_type: u8,
    /// The 5-bit count/subtype field.
    pub count: u8,
    /// Everything after the 4-byte header, padding excluded; a whole number of words.
    pub body: &'a [u8],
}

/// One RTCP packet of a compound packet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RtcpPacket<'a> {
    /// SR, type 200.
    SenderReport(SenderReport<'a>),
    /// RR, type 201.
    ReceiverReport(ReceiverReport<'a>),
    /// SDES, type 202: one chunk per source, at most [`MAX_COUNT`].
    SourceDescription(Vec<SdesChunk<'a>>),
    /// BYE, type 203.
    Bye(Bye<'a>),
    /// Any other type (APP, RTPFB, PSFB, XR, ...).
    Other(OtherPacket<'a>),
}

impl<'a> RtcpPacket<'a> {
    /// The packet type byte.
    pub fn packet_type(&self) -> u8 {
        match self {
            Self::SenderReport(_) => TYPE_SR,
            Self::ReceiverReport(_) => TYPE_RR,
            Self::SourceDescription(_) => TYPE_SDES,
            Self::Bye(_) => TYPE_BYE,
            Self::Other(o) => o.packet_type,
        }
    }

    /// Parses the packet at the start of `buf`; returns it and its length in bytes.
    pub fn parse(buf: &'a [u8]) -> Result<(Self, usize), Error> {
        parse_at(buf, 0)
    }

    /// Appends this packet to `out`. Fails, appending nothing, when a count exceeds
    /// [`MAX_COUNT`], an item or reason exceeds 255 bytes, an SDES item has type 0, a body or
    /// extension is not a whole number of words, or the packet exceeds 65536 words.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let start = out.len();
        let result = self.write_unchecked(out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn write_unchecked(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let start = out.len();
        let (count, extension) = match self {
            Self::SenderReport(sr) => (sr.reports.len(), sr.extension),
            Self::ReceiverReport(rr) => (rr.reports.len(), rr.extension),
            Self::SourceDescription(chunks) => (chunks.len(), &[][..]),
            Self::Bye(bye) => (bye.sources.len(), &[][..]),
            Self::Other(o) => (usize::from(o.count), o.body),
        };
        if count > MAX_COUNT {
            return Err(unrepresentable("count above 31"));
        }
        if extension.len() % 4 != 0 {
            return Err(unrepresentable(
                "body or extension not a whole number of words",
            ));
        }
        out.extend_from_slice(&[(2 << 6) | count as u8, self.packet_type(), 0, 0]);
        match self {
            Self::SenderReport(sr) => {
                out.extend_from_slice(&sr.ssrc.to_be_bytes());
                let info = &sr.sender_info;
                out.extend_from_slice(&info.ntp_timestamp.0.to_be_bytes());
                out.extend_from_slice(&info.rtp_timestamp.to_be_bytes());
                out.extend_from_slice(&info.packet_count.to_be_bytes());
                out.extend_from_slice(&info.octet_count.to_be_bytes());
                write_blocks(&sr.reports, out)?;
            }
            Self::ReceiverReport(rr) => {
                out.extend_from_slice(&rr.ssrc.to_be_bytes());
                write_blocks(&rr.reports, out)?;
            }
            Self::SourceDescription(chunks) => {
                for chunk in chunks {
                    out.extend_from_slice(&chunk.ssrc.to_be_bytes());
                    for item in &chunk.items {
                        if item.kind.0 == 0 {
                            return Err(unrepresentable("SDES item type 0 is the end marker"));
                        }
                        let len = u8::try_from(item.value.len())
                            .map_err(|_| unrepresentable("SDES item longer than 255 bytes"))?;
                        out.extend_from_slice(&[item.kind.0, len]);
                        out.extend_from_slice(item.value);
                    }
                    // At least one null octet ends the list, then pad to a word boundary.
                    out.push(0);
                    pad_to_word(start, out);
                }
            }
            Self::Bye(bye) => {
                for ssrc in &bye.sources {
                    out.extend_from_slice(&ssrc.to_be_bytes());
                }
                if let Some(reason) = bye.reason {
                    let len = u8::try_from(reason.len())
                        .map_err(|_| unrepresentable("BYE reason longer than 255 bytes"))?;
                    out.push(len);
                    out.extend_from_slice(reason);
                    pad_to_word(start, out);
                }
            }
            Self::Other(_) => {}
        }
        out.extend_from_slice(extension);
        let words = (out.len() - start) / 4 - 1;
        let words = u16::try_from(words).map_err(|_| unrepresentable("longer than 65536 words"))?;
        out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
        Ok(())
    }
}

/// Iterates over the packets of the compound packet `buf`.
///
/// Stops after the first error, which it yields; offsets in errors count from the start of
/// `buf`.
pub fn iter(buf: &[u8]) -> Iter<'_> {
    Iter { buf, pos: 0 }
}

/// Parses a whole compound packet; fails if any packet in it is malformed or it is empty.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket<'_>>, Error> {
    if buf.is_empty() {
        return Err(Error::Truncated {
            context: "RTCP header",
            offset: 0,
            needed: 4,
            available: 0,
        });
    }
    iter(buf).collect()
}

/// Appends the compound packet made of `packets` to `out`. On error, appends nothing.
///
/// RFC 3550 6.1 wants an SR or RR first and an SDES with a CNAME in every compound; that is
/// the caller's to arrange (see [`crate::session::RtpSender::write_rtcp`]).
pub fn write_compound(packets: &[RtcpPacket<'_>], out: &mut Vec<u8>) -> Result<(), Error> {
    let start = out.len();
    for p in packets {
        if let Err(e) = p.write(out) {
            out.truncate(start);
            return Err(e);
        }
    }
    Ok(())
}

/// The iterator returned by [`iter`].
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Result<RtcpPacket<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        match parse_at(self.buf, self.pos) {
            Ok((packet, len)) => {
                self.pos += len;
                Some(Ok(packet))
            }
            Err(e) => {
                self.pos = self.buf.len();
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for Iter<'_> {}

/// Parses the packet at `base` of the compound `buf`; offsets in errors are absolute.
fn parse_at(buf: &[u8], base: usize) -> Result<(RtcpPacket<'_>, usize), Error> {
    const CTX: &str = "RTCP header";
    let head = slice(buf, base, 4, CTX)?;
    let version = head[0] >> 6;
    if version != 2 {
        return Err(Error::UnsupportedVersion {
            context: CTX,
            offset: base,
            version,
        });
    }
    let has_padding = head[0] & 0x20 != 0;
    let count = head[0] & 0x1f;
    let packet_type = head[1];
    let len = (usize::from(be_u16(buf, base + 2, CTX)?) + 1) * 4;
    slice(buf, base, len, "RTCP packet")?;
    let mut end = base + len;
    if has_padding {
        let pad = usize::from(buf[end - 1]);
        // RFC 3550 6.4.1: the count "will be a multiple of four", keeping the body whole words.
        if pad == 0 || pad % 4 != 0 || pad > len - 4 {
            return Err(Error::Malformed {
                context: "RTCP padding",
                offset: end - 1,
                reason: "padding count is zero, not a multiple of 4, or exceeds the body",
            });
        }
        end -= pad;
    }
    // Reads below are bounded by the packet body, and offsets stay absolute.
    let buf = &buf[..end];
    let body = base + 4;
    let n = usize::from(count);
    let packet = match packet_type {
        TYPE_SR => {
            let ctx = "RTCP sender report";
            let ssrc = be_u32(buf, body, ctx)?;
            let ntp_hi = be_u32(buf, body + 4, ctx)?;
            let ntp_lo = be_u32(buf, body + 8, ctx)?;
            let sender_info = SenderInfo {
                ntp_timestamp: NtpTimestamp((u64::from(ntp_hi) << 32) | u64::from(ntp_lo)),
                rtp_timestamp: be_u32(buf, body + 12, ctx)?,
                packet_count: be_u32(buf, body + 16, ctx)?,
                octet_count: be_u32(buf, body + 20, ctx)?,
            };
            let (reports, rest) = parse_blocks(buf, body + 24, n)?;
            RtcpPacket::SenderReport(SenderReport {
                ssrc,
                sender_info,
                reports,
                extension: &buf[rest..],
            })
        }
        TYPE_RR => {
            let ssrc = be_u32(buf, body, "RTCP receiver report")?;
            let (reports, rest) = parse_blocks(buf, body + 4, n)?;
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc,
                reports,
                extension: &buf[rest..],
            })
        }
        TYPE_SDES => RtcpPacket::SourceDescription(parse_sdes(buf, body, n)?),
        TYPE_BYE => RtcpPacket::Bye(parse_bye(buf, body, n)?),
        _ => RtcpPacket::Other(OtherPacket {
            packet_type,
            count,
            body: &buf[body..],
        }),
    };
    Ok((packet, len))
}

fn parse_blocks(buf: &[u8], mut pos: usize, n: usize) -> Result<(Vec<ReportBlock>, usize), Error> {
    const CTX: &str = "RTCP report block";
    slice(buf, pos, n * 24, CTX)?;
    let mut blocks = Vec::with_capacity(n);
    for _ in 0..n {
        let lost = be_u32(buf, pos + 4, CTX)?;
        blocks.push(ReportBlock {
            ssrc: be_u32(buf, pos, CTX)?,
            fraction_lost: (lost >> 24) as u8,
            // Sign-extend the low 24 bits.
            cumulative_lost: ((lost << 8) as i32) >> 8,
            highest_sequence: be_u32(buf, pos + 8, CTX)?,
            jitter: be_u32(buf, pos + 12, CTX)?,
            last_sr: be_u32(buf, pos + 16, CTX)?,
            delay_since_last_sr: be_u32(buf, pos + 20, CTX)?,
        });
        pos += 24;
    }
    Ok((blocks, pos))
}

fn parse_sdes(buf: &[u8], body: usize, n: usize) -> Result<Vec<SdesChunk<'_>>, Error> {
    const CTX: &str = "RTCP SDES chunk";
    let mut chunks = Vec::with_capacity(n);
    let mut pos = body;
    for _ in 0..n {
        let ssrc = be_u32(buf, pos, CTX)?;
        pos += 4;
        let mut items = Vec::new();
        loop {
            let kind = byte(buf, pos, CTX)?;
            if kind == 0 {
                // The end marker, then null octets up to the next word boundary.
                let aligned = body + (pos - body + 1).next_multiple_of(4);
                slice(buf, pos, aligned - pos, CTX)?;
                pos = aligned;
                break;
            }
            let len = byte(buf, pos + 1, "RTCP SDES item")?;
            let value = slice(buf, pos + 2, usize::from(len), "RTCP SDES item")?;
            items.push(SdesItem {
                kind: SdesType(kind),
                value,
            });
            pos += 2 + usize::from(len);
        }
        chunks.push(SdesChunk { ssrc, items });
    }
    if pos != buf.len() {
        return Err(Error::Malformed {
            context: "RTCP SDES",
            offset: pos,
            reason: "bytes after the last chunk",
        });
    }
    Ok(chunks)
}

fn parse_bye(buf: &[u8], body: usize, n: usize) -> Result<Bye<'_>, Error> {
    const CTX: &str = "RTCP BYE";
    let mut sources = Vec::with_capacity(n);
    let mut pos = body;
    for _ in 0..n {
        sources.push(be_u32(buf, pos, CTX)?);
        pos += 4;
    }
    let mut reason = None;
    if pos < buf.len() {
        let len = usize::from(buf[pos]);
        reason = Some(slice(buf, pos + 1, len, "RTCP BYE reason")?);
        pos += 1 + len;
        // Padding to the word boundary follows; the packet length already bounds it.
        if buf.len() - pos >= 4 {
            return Err(Error::Malformed {
                context: CTX,
                offset: pos,
                reason: "bytes after the reason",
            });
        }
    }
    Ok(Bye { sources, reason })
}

fn write_blocks(blocks: &[ReportBlock], out: &mut Vec<u8>) -> Result<(), Error> {
    for b in blocks {
        if !(-(1 << 23)..(1 << 23)).contains(&b.cumulative_lost) {
            return Err(unrepresentable(
                "cumulative loss outside 24-bit signed range",
            ));
        }
        let lost = (u32::from(b.fraction_lost) << 24) | (b.cumulative_lost as u32 & 0x00ff_ffff);
        for v in [
            b.ssrc,
            lost,
            b.highest_sequence,
            b.jitter,
            b.last_sr,
            b.delay_since_last_sr,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    Ok(())
}

fn pad_to_word(start: usize, out: &mut Vec<u8>) {
    let len = out.len() - start;
    out.resize(start + len.next_multiple_of(4), 0);
}

fn unrepresentable(reason: &'static str) -> Error {
    Error::Unrepresentable {
        context: "RTCP packet",
        reason,
    }
}

#[cfg(test)]
mod tests;
