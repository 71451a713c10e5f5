//! RTP data packets (RFC 3550 5.1): a zero-copy parser and a builder.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |  byte 0
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           timestamp                           |  byte 4
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           synchronization source (SSRC) identifier            |  byte 8
//! +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//! |            contributing source (CSRC) identifiers             |  byte 12, CC times
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      defined by profile       |            length             |  if X (RFC 3550 5.3.1)
//! |                        header extension                       |  length × 4 bytes
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                            payload                            |
//! |                               +-------------------------------+
//! |                               |  padding ...  | padding count |  if P
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! [`RtpPacket::parse`] borrows the input and never panics; the header extension is kept as
//! a slice ([`RtpHeader::extension`]) so a relay can forward it
//! ([`RtpPacket::write`]) or drop it ([`RtpPacket::write_without_extension`]).
//! [`RtpHeader::write`] appends a packet to a caller-owned `Vec<u8>`.

use std::fmt;

use crate::Error;
use crate::error::{be_u16, be_u32, slice};

/// The only RTP version (RFC 3550 5.1).
pub const VERSION: u8 = 2;

/// Length of the fixed RTP header, in bytes.
pub const FIXED_HEADER_LEN: usize = 12;

/// The most contributing sources one header can list (the CC field has 4 bits).
pub const MAX_CSRCS: usize = 15;

/// The largest header extension body, in bytes (the length field counts 32-bit words).
pub const MAX_EXTENSION_LEN: usize = u16::MAX as usize * 4;

/// The contributing sources of a packet: up to [`MAX_CSRCS`] identifiers, stored inline.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Csrcs {
    ids: [u32; MAX_CSRCS],
    len: u8,
}

impl Csrcs {
    /// No contributing sources.
    pub const fn new() -> Self {
        Self {
            ids: [0; MAX_CSRCS],
            len: 0,
        }
    }

    /// Copies `ids`; fails when there are more than [`MAX_CSRCS`].
    pub fn from_slice(ids: &[u32]) -> Result<Self, Error> {
        let mut out = Self::new();
        for &id in ids {
            out.push(id)?;
        }
        Ok(out)
    }

    /// Appends one identifier; fails when the list is full.
    pub fn push(&mut self, id: u32) -> Result<(), Error> {
        let slot = self
            .ids
            .get_mut(usize::from(self.len))
            .ok_or(Error::Unrepresentable {
                context: "RTP header",
                reason: "more than 15 CSRCs",
            })?;
        *slot = id;
        self.len += 1;
        Ok(())
    }

    /// The identifiers, in header order.
    pub fn as_slice(&self) -> &[u32] {
        &self.ids[..usize::from(self.len)]
    }

    /// How many identifiers there are.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for Csrcs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// A header extension (RFC 3550 5.3.1), borrowed from the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Extension<'a> {
    /// The 16 bits "defined by profile" (e.g. `0xBEDE` for RFC 8285 one-byte headers).
    pub profile: u16,
    /// The extension body; its length is a multiple of 4, at most [`MAX_EXTENSION_LEN`].
    pub data: &'a [u8],
}

/// The fields of an RTP header.
///
/// Also the builder: fill it in and call [`write`](Self::write).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RtpHeader<'a> {
    /// The M bit; for video, the last packet of a frame (RFC 6184 5.1).
    pub marker: bool,
    /// The payload type, 0..=127.
    pub payload_type: u8,
    /// The sequence number.
    pub sequence: u16,
    /// The RTP timestamp, in the media clock.
    pub timestamp: u32,
    /// The synchronization source.
    pub ssrc: u32,
    /// The contributing sources.
    pub csrcs: Csrcs,
    /// The header extension, if any.
    pub extension: Option<Extension<'a>>,
}

impl RtpHeader<'_> {
    /// The header's length on the wire, in bytes.
    pub fn encoded_len(&self) -> usize {
        FIXED_HEADER_LEN + 4 * self.csrcs.len() + self.extension.map_or(0, |e| 4 + e.data.len())
    }

    /// Appends a packet with this header and `payload` to `out`.
    ///
    /// Fails, appending nothing, when the payload type exceeds 127 or the extension body is
    /// not a whole number of 32-bit words up to [`MAX_EXTENSION_LEN`].
    pub fn write(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        self.write_padded(payload, 0, out)
    }

    /// Like [`write`](Self::write), then appends `padding` bytes of padding, the last of
    /// which holds the count (RFC 3550 5.1, P bit). `padding == 0` means no padding.
    pub fn write_padded(
        &self,
        payload: &[u8],
        padding: u8,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if self.payload_type > 0x7f {
            return Err(Error::Unrepresentable {
                context: "RTP header",
                reason: "payload type above 127",
            });
        }
        if let Some(ext) = &self.extension
            && (ext.data.len() % 4 != 0 || ext.data.len() > MAX_EXTENSION_LEN)
        {
            return Err(Error::Unrepresentable {
                context: "RTP header extension",
                reason: "length is not a multiple of 4 up to 262140 bytes",
            });
        }
        out.reserve(self.encoded_len() + payload.len() + usize::from(padding));
        let cc = self.csrcs.len;
        out.push(
            (VERSION << 6)
                | (u8::from(padding > 0) << 5)
                | (u8::from(self.extension.is_some()) << 4)
                | cc,
        );
        out.push((u8::from(self.marker) << 7) | self.payload_type);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for id in self.csrcs.as_slice() {
            out.extend_from_slice(&id.to_be_bytes());
        }
        if let Some(ext) = &self.extension {
            out.extend_from_slice(&ext.profile.to_be_bytes());
            // Checked above: at most u16::MAX words.
            let words = (ext.data.len() / 4) as u16;
            out.extend_from_slice(&words.to_be_bytes());
            out.extend_from_slice(ext.data);
        }
        out.extend_from_slice(payload);
        if padding > 0 {
            out.extend(std::iter::repeat_n(0, usize::from(padding) - 1));
            out.push(padding);
        }
        Ok(())
    }
}

/// A parsed RTP packet borrowing its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RtpPacket<'a> {
    header: RtpHeader<'a>,
    payload: &'a [u8],
    padding: u8,
}

impl<'a> RtpPacket<'a> {
    /// Parses one RTP packet occupying all of `buf` (one UDP datagram, or the body of one
    /// RTSP interleaved frame).
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        const CTX: &str = "RTP header";
        let fixed = slice(buf, 0, FIXED_HEADER_LEN, "RTP fixed header")?;
        let version = fixed[0] >> 6;
        if version != VERSION {
            return Err(Error::UnsupportedVersion {
                context: CTX,
                offset: 0,
                version,
            });
        }
        let has_padding = fixed[0] & 0x20 != 0;
        let has_extension = fixed[0] & 0x10 != 0;
        let cc = usize::from(fixed[0] & 0x0f);
        let mut header = RtpHeader {
            marker: fixed[1] & 0x80 != 0,
            payload_type: fixed[1] & 0x7f,
            sequence: be_u16(buf, 2, CTX)?,
            timestamp: be_u32(buf, 4, CTX)?,
            ssrc: be_u32(buf, 8, CTX)?,
            csrcs: Csrcs::new(),
            extension: None,
        };
        let mut pos = FIXED_HEADER_LEN;
        for _ in 0..cc {
            header.csrcs.push(be_u32(buf, pos, "RTP CSRC list")?)?;
            pos += 4;
        }
        if has_extension {
            let profile = be_u16(buf, pos, "RTP header extension")?;
            let words = usize::from(be_u16(buf, pos + 2, "RTP header extension")?);
            let data = slice(buf, pos + 4, words * 4, "RTP header extension")?;
            header.extension = Some(Extension { profile, data });
            pos += 4 + words * 4;
        }
        let mut end = buf.len();
        let mut padding = 0;
        if has_padding {
            // `end > pos` is not guaranteed: the header may fill the buffer exactly.
            let count_at = end
                .checked_sub(1)
                .filter(|&c| c >= pos)
                .ok_or(Error::Truncated {
                    context: "RTP padding",
                    offset: pos,
                    needed: 1,
                    available: 0,
                })?;
            padding = buf[count_at];
            if padding == 0 {
                return Err(Error::Malformed {
                    context: "RTP padding",
                    offset: count_at,
                    reason: "padding count is zero",
                });
            }
            if usize::from(padding) > end - pos {
                return Err(Error::Malformed {
                    context: "RTP padding",
                    offset: count_at,
                    reason: "padding count exceeds the packet after the header",
                });
            }
            end -= usize::from(padding);
        }
        Ok(Self {
            header,
            payload: &buf[pos..end],
            padding,
        })
    }

    /// All header fields.
    pub fn header(&self) -> &RtpHeader<'a> {
        &self.header
    }

    /// The M bit.
    pub fn marker(&self) -> bool {
        self.header.marker
    }

    /// The payload type.
    pub fn payload_type(&self) -> u8 {
        self.header.payload_type
    }

    /// The sequence number.
    pub fn sequence(&self) -> u16 {
        self.header.sequence
    }

    /// The RTP timestamp.
    pub fn timestamp(&self) -> u32 {
        self.header.timestamp
    }

    /// The synchronization source.
    pub fn ssrc(&self) -> u32 {
        self.header.ssrc
    }

    /// The contributing sources.
    pub fn csrcs(&self) -> &[u32] {
        self.header.csrcs.as_slice()
    }

    /// The header extension, if the X bit was set.
    pub fn extension(&self) -> Option<Extension<'a>> {
        self.header.extension
    }

    /// The payload, without header, extension or padding.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The number of padding bytes, count byte included (0 when the P bit was clear).
    pub fn padding_len(&self) -> u8 {
        self.padding
    }

    /// Appends this packet to `out` as parsed (same bytes, except that padding bytes other
    /// than the count are written as zero).
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        self.header.write_padded(self.payload, self.padding, out)
    }

    /// Appends this packet to `out` without its header extension and padding.
    pub fn write_without_extension(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let header = RtpHeader {
            extension: None,
            ..self.header
        };
        header.write(self.payload, out)
    }
}

/// True when `buf` looks like RTCP rather than RTP when both share a port (RFC 5761 4:
/// the second byte, RTCP packet type, is 192..=223).
pub fn looks_like_rtcp(buf: &[u8]) -> bool {
    matches!(buf.get(1), Some(192..=223))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A packet laid out by hand from RFC 3550 5.1: V=2, P, X, CC=2, M, PT=96.
    const SAMPLE: [u8; 36] = [
        0b1011_0010,
        0b1110_0000,
        0x12,
        0x34, // V P X CC | M PT | seq
        0xde,
        0xad,
        0xbe,
        0xef, // timestamp
        0x01,
        0x02,
        0x03,
        0x04, // SSRC
        0x00,
        0x00,
        0x00,
        0x0a, // CSRC 1
        0x00,
        0x00,
        0x00,
        0x0b, // CSRC 2
        0xbe,
        0xde,
        0x00,
        0x01, // extension profile, 1 word
        0x10,
        0xff,
        0x00,
        0x00, // extension body
        0xaa,
        0xbb,
        0xcc, // payload
        0x00,
        0x00,
        0x00,
        0x00,
        0x05, // padding, count 5
    ];

    #[test]
    fn parses_rfc_3550_layout() {
        let p = RtpPacket::parse(&SAMPLE).unwrap();
        assert!(p.marker());
        assert_eq!(p.payload_type(), 96);
        assert_eq!(p.sequence(), 0x1234);
        assert_eq!(p.timestamp(), 0xdead_beef);
        assert_eq!(p.ssrc(), 0x0102_0304);
        assert_eq!(p.csrcs(), &[10, 11]);
        assert_eq!(
            p.extension(),
            Some(Extension {
                profile: 0xbede,
                data: &[0x10, 0xff, 0, 0]
            })
        );
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc]);
        assert_eq!(p.padding_len(), 5);
        let mut out = Vec::new();
        p.write(&mut out).unwrap();
        assert_eq!(out, SAMPLE);
        out.clear();
        p.write_without_extension(&mut out).unwrap();
        assert_eq!(out[0], 0b1000_0010);
        assert_eq!(out.len(), 12 + 8 + 3);
        assert_eq!(&out[20..], &[0xaa, 0xbb, 0xcc]);
    }

    #[test]
    fn builds_minimal_header() {
        let h = RtpHeader {
            marker: false,
            payload_type: 0,
            sequence: 1,
            timestamp: 160,
            ssrc: 0xcafe_babe,
            ..RtpHeader::default()
        };
        let mut out = vec![0xff]; // appends, keeps what was there
        h.write(&[1, 2], &mut out).unwrap();
        assert_eq!(
            out,
            [
                0xff, 0x80, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0xa0, 0xca, 0xfe, 0xba, 0xbe, 1, 2
            ]
        );
        assert_eq!(h.encoded_len(), 12);
    }

    #[test]
    fn errors_name_the_offset() {
        assert_eq!(
            RtpPacket::parse(&SAMPLE[..5]),
            Err(Error::Truncated {
                context: "RTP fixed header",
                offset: 0,
                needed: 12,
                available: 5
            })
        );
        let mut v1 = SAMPLE;
        v1[0] = (v1[0] & 0x3f) | 0x40;
        assert!(matches!(
            RtpPacket::parse(&v1),
            Err(Error::UnsupportedVersion { version: 1, .. })
        ));
        // CSRC list cut in the second identifier.
        assert_eq!(
            RtpPacket::parse(&SAMPLE[..18]).unwrap_err().offset(),
            Some(16)
        );
        // Extension body claims more words than there are.
        let mut ext = SAMPLE;
        ext[23] = 9;
        assert_eq!(RtpPacket::parse(&ext).unwrap_err().offset(), Some(24));
        // Padding count larger than what follows the header, and zero.
        let mut pad = SAMPLE;
        pad[35] = 9;
        assert!(matches!(
            RtpPacket::parse(&pad),
            Err(Error::Malformed { offset: 35, .. })
        ));
        pad[35] = 0;
        assert!(RtpPacket::parse(&pad).is_err());
        // P bit on a packet that is all header.
        let mut bare = [0u8; 12];
        bare[0] = 0xa0;
        assert!(RtpPacket::parse(&bare).is_err());
        // Padding that eats the whole payload is fine.
        bare[0] = 0xa0;
        let mut one = bare.to_vec();
        one.push(1);
        let p = RtpPacket::parse(&one).unwrap();
        assert!(p.payload().is_empty());
    }

    #[test]
    fn refuses_unrepresentable_headers() {
        let mut out = Vec::new();
        let h = RtpHeader {
            payload_type: 128,
            ..RtpHeader::default()
        };
        assert!(!h.write(&[], &mut out).unwrap_err().is_peer_fault());
        let h = RtpHeader {
            extension: Some(Extension {
                profile: 0,
                data: &[1, 2, 3],
            }),
            ..RtpHeader::default()
        };
        assert!(h.write(&[], &mut out).is_err());
        assert!(out.is_empty(), "nothing appended on error");
        assert!(Csrcs::from_slice(&[0; 16]).is_err());
        assert_eq!(Csrcs::from_slice(&[7; 15]).unwrap().len(), 15);
    }

    #[test]
    fn rtcp_demux() {
        assert!(looks_like_rtcp(&[0x80, 200, 0, 6]));
        assert!(!looks_like_rtcp(&[0x80, 96]));
        assert!(!looks_like_rtcp(&[0x80]));
    }

    fn header() -> impl Strategy<Value = RtpHeader<'static>> {
        let extension = (
            any::<u16>(),
            proptest::collection::vec(any::<[u8; 4]>(), 0..8).prop_map(|w| &*w.concat().leak()),
        )
            .prop_map(|(profile, data)| Extension { profile, data });
        (
            any::<(bool, u16, u32, u32)>(),
            0u8..128,
            proptest::collection::vec(any::<u32>(), 0..=MAX_CSRCS),
            proptest::option::of(extension),
        )
            .prop_map(
                |((marker, sequence, timestamp, ssrc), payload_type, csrcs, extension)| RtpHeader {
                    marker,
                    payload_type,
                    sequence,
                    timestamp,
                    ssrc,
                    csrcs: Csrcs::from_slice(&csrcs).unwrap(),
                    extension,
                },
            )
    }

    proptest! {
        #[test]
        fn rtp_round_trips(
            h in header(),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            padding in any::<u8>(),
        ) {
            let mut buf = Vec::new();
            h.write_padded(&payload, padding, &mut buf).unwrap();
            prop_assert_eq!(buf.len(), h.encoded_len() + payload.len() + usize::from(padding));
            let p = RtpPacket::parse(&buf).unwrap();
            prop_assert_eq!(p.header(), &h);
            prop_assert_eq!(p.payload(), &payload[..]);
            prop_assert_eq!(p.padding_len(), padding);
            let mut again = Vec::new();
            p.write(&mut again).unwrap();
            prop_assert_eq!(again, buf);
        }

        #[test]
        fn rtp_parse_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(p) = RtpPacket::parse(&buf) {
                let mut out = Vec::new();
                p.write(&mut out).unwrap();
                let again = RtpPacket::parse(&out).unwrap();
                prop_assert_eq!(again.header(), p.header());
            }
        }

        #[test]
        fn rtp_parse_never_panics_v2(mut buf in proptest::collection::vec(any::<u8>(), 12..100)) {
            buf[0] = (buf[0] & 0x3f) | 0x80;
            let _ = RtpPacket::parse(&buf);
        }
    }
}
