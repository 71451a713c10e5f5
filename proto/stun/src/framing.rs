//! ChannelData messages (RFC 8656 12.4) and cutting a stream into frames.
//!
//! Over UDP every datagram is one STUN message or one ChannelData message. Over TCP and
//! TLS both kinds share one byte stream (RFC 8656 12.5): a STUN message is 20 bytes plus
//! its length field, a ChannelData message is 4 bytes plus its length rounded up to a
//! multiple of 4. The first two bits tell them apart: `00` is STUN, `01` is ChannelData
//! (RFC 8656 12, RFC 7983). [`next_frame`] and [`FrameSplitter`] do this cutting.

use crate::Error;
use crate::message::{HEADER_LEN, MAGIC_COOKIE, pad4};

/// The lowest channel number (RFC 8656 12).
pub const MIN_CHANNEL: u16 = 0x4000;
/// The highest channel number; 0x5000-0x7FFF are reserved (RFC 8656 12).
pub const MAX_CHANNEL: u16 = 0x4FFF;
/// The ChannelData header length.
pub const CHANNEL_HEADER_LEN: usize = 4;

/// Whether a channel number is in the range a client may bind (RFC 8656 12).
pub fn is_valid_channel(channel: u16) -> bool {
    (MIN_CHANNEL..=MAX_CHANNEL).contains(&channel)
}

/// How ChannelData is carried, which decides the padding (RFC 8656 12.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// One message per datagram; padding not required but allowed.
    Udp,
    /// TCP or TLS stream; the message is padded to a multiple of 4 bytes.
    Stream,
}

/// A ChannelData message borrowing its application data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelData<'a> {
    /// The channel number, 0x4000-0x4FFF.
    pub channel: u16,
    /// The application data (without padding).
    pub data: &'a [u8],
}

impl<'a> ChannelData<'a> {
    /// Decode one ChannelData message that fills `buf`.
    ///
    /// Over [`Transport::Stream`] `buf` must end exactly after the padding; over
    /// [`Transport::Udp`] it may end anywhere from the data's end to the padded end
    /// (RFC 8656 12.5). Padding bytes are ignored. Anything longer is an error.
    pub fn decode(buf: &'a [u8], transport: Transport) -> Result<Self, Error> {
        if buf.len() < CHANNEL_HEADER_LEN {
            return Err(Error::truncated("ChannelData header", buf.len()));
        }
        let channel = u16::from_be_bytes([buf[0], buf[1]]);
        if !is_valid_channel(channel) {
            return Err(Error::invalid(
                "ChannelData",
                0,
                "channel number outside 0x4000-0x4FFF",
            ));
        }
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        let end = CHANNEL_HEADER_LEN + len;
        let padded = CHANNEL_HEADER_LEN + pad4(len);
        if buf.len() < end {
            return Err(Error::truncated("ChannelData", buf.len()));
        }
        let fits = match transport {
            Transport::Udp => buf.len() <= padded,
            Transport::Stream => buf.len() == padded,
        };
        if !fits {
            if buf.len() < padded {
                return Err(Error::truncated("ChannelData padding", buf.len()));
            }
            return Err(Error::invalid(
                "ChannelData",
                padded,
                "bytes after the message",
            ));
        }
        Ok(Self {
            channel,
            data: &buf[CHANNEL_HEADER_LEN..end],
        })
    }

    /// Append the message to `out`, padded with zeros over [`Transport::Stream`] and
    /// unpadded over UDP. [`Error::Misuse`] for a bad channel number, [`Error::TooLarge`]
    /// for more than 65535 bytes of data.
    pub fn encode(&self, transport: Transport, out: &mut Vec<u8>) -> Result<(), Error> {
        if !is_valid_channel(self.channel) {
            return Err(Error::Misuse("channel number outside 0x4000-0x4FFF"));
        }
        let Ok(len) = u16::try_from(self.data.len()) else {
            return Err(Error::TooLarge {
                context: "ChannelData",
                limit: usize::from(u16::MAX),
            });
        };
        out.extend_from_slice(&self.channel.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(self.data);
        if transport == Transport::Stream {
            out.resize(out.len() + pad4(self.data.len()) - self.data.len(), 0);
        }
        Ok(())
    }

    /// The encoded length over `transport`.
    pub fn encoded_len(&self, transport: Transport) -> usize {
        CHANNEL_HEADER_LEN
            + match transport {
                Transport::Udp => self.data.len(),
                Transport::Stream => pad4(self.data.len()),
            }
    }
}

/// What a frame cut from a stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// A STUN message; decode it with [`crate::message::Message::decode`].
    Stun,
    /// A ChannelData message; decode it with [`ChannelData::decode`] and
    /// [`Transport::Stream`].
    ChannelData,
}

/// Look at the start of a stream buffer: `Ok(None)` if more bytes are needed to know
/// the length of the first frame, `Ok(Some((kind, len)))` once it is known (the frame is
/// complete when `buf.len() >= len`), and an error when the bytes cannot start a frame,
/// after which the stream cannot be resynchronised and should be closed.
///
/// A STUN frame must carry the magic cookie and a length that is a multiple of 4; a
/// ChannelData frame a channel number in 0x4000-0x4FFF.
pub fn next_frame(buf: &[u8]) -> Result<Option<(FrameKind, usize)>, Error> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    match first >> 6 {
        0b00 => {
            if buf.len() < 8 {
                return Ok(None);
            }
            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            if !len.is_multiple_of(4) {
                return Err(Error::invalid(
                    "stream",
                    2,
                    "STUN length not a multiple of 4",
                ));
            }
            if buf[4..8] != MAGIC_COOKIE.to_be_bytes() {
                return Err(Error::invalid("stream", 4, "no STUN magic cookie"));
            }
            Ok(Some((FrameKind::Stun, HEADER_LEN + len)))
        }
        0b01 => {
            if buf.len() < CHANNEL_HEADER_LEN {
                return Ok(None);
            }
            let channel = u16::from_be_bytes([buf[0], buf[1]]);
            if !is_valid_channel(channel) {
                return Err(Error::invalid(
                    "stream",
                    0,
                    "channel number outside 0x4000-0x4FFF",
                ));
            }
            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            Ok(Some((
                FrameKind::ChannelData,
                CHANNEL_HEADER_LEN + pad4(len),
            )))
        }
        _ => Err(Error::invalid("stream", 0, "neither STUN nor ChannelData")),
    }
}

/// A buffer that takes stream bytes as they arrive and hands out whole frames.
///
/// It holds at most one frame plus one read's worth of bytes: frames are bounded by the
/// 16-bit length fields (65 559 bytes at most), so nothing grows without bound as long as
/// the caller pops frames between pushes.
#[derive(Debug, Default, Clone)]
pub struct FrameSplitter {
    buf: Vec<u8>,
    failed: bool,
}

impl FrameSplitter {
    /// An empty splitter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed. After an error the
    /// splitter stays failed and returns the same error class: close the connection.
    pub fn pop(&mut self) -> Result<Option<(FrameKind, Vec<u8>)>, Error> {
        if self.failed {
            return Err(Error::invalid("stream", 0, "stream already failed"));
        }
        match next_frame(&self.buf) {
            Ok(Some((kind, len))) if self.buf.len() >= len => {
                let rest = self.buf.split_off(len);
                let frame = std::mem::replace(&mut self.buf, rest);
                Ok(Some((kind, frame)))
            }
            Ok(_) => Ok(None),
            Err(e) => {
                self.failed = true;
                self.buf = Vec::new();
                Err(e)
            }
        }
    }

    /// Bytes held that do not yet form a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::message::Message;
    use crate::message::tests::{RFC5769_REQUEST, RFC5769_RESPONSE_V4, arb_message};

    #[test]
    fn channel_data_wire() {
        let cd = ChannelData {
            channel: 0x4001,
            data: b"hello",
        };
        let mut udp = Vec::new();
        cd.encode(Transport::Udp, &mut udp).unwrap();
        assert_eq!(udp, b"\x40\x01\x00\x05hello");
        let mut tcp = Vec::new();
        cd.encode(Transport::Stream, &mut tcp).unwrap();
        assert_eq!(tcp, b"\x40\x01\x00\x05hello\0\0\0");
        assert_eq!(cd.encoded_len(Transport::Stream), tcp.len());
        assert_eq!(ChannelData::decode(&udp, Transport::Udp), Ok(cd));
        assert_eq!(ChannelData::decode(&tcp, Transport::Udp), Ok(cd));
        assert_eq!(ChannelData::decode(&tcp, Transport::Stream), Ok(cd));
        assert!(ChannelData::decode(&udp, Transport::Stream).is_err());
        let mut long = tcp.clone();
        long.push(0);
        assert!(ChannelData::decode(&long, Transport::Udp).is_err());
        assert!(ChannelData::decode(&long, Transport::Stream).is_err());
        assert!(ChannelData::decode(&udp[..8], Transport::Udp).is_err());
        assert!(ChannelData::decode(b"\x50\x00\x00\x00", Transport::Udp).is_err());
        assert!(ChannelData::decode(b"\x3f\xff\x00\x00", Transport::Udp).is_err());
        assert_eq!(
            ChannelData::decode(b"\x4f\xff\x00\x00", Transport::Stream),
            Ok(ChannelData {
                channel: 0x4FFF,
                data: b""
            })
        );
        let bad = ChannelData {
            channel: 0x5000,
            data: b"",
        };
        assert!(matches!(
            bad.encode(Transport::Udp, &mut Vec::new()),
            Err(Error::Misuse(_))
        ));
        let big = vec![0; 70_000];
        let big = ChannelData {
            channel: 0x4000,
            data: &big,
        };
        assert!(matches!(
            big.encode(Transport::Udp, &mut Vec::new()),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn split_stream() {
        let mut stream = RFC5769_REQUEST.to_vec();
        ChannelData {
            channel: 0x4000,
            data: b"abc",
        }
        .encode(Transport::Stream, &mut stream)
        .unwrap();
        stream.extend_from_slice(&RFC5769_RESPONSE_V4);
        let mut s = FrameSplitter::new();
        let mut frames = Vec::new();
        for b in &stream {
            s.push(std::slice::from_ref(b));
            while let Some(f) = s.pop().unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(s.buffered(), 0);
        assert_eq!(
            frames,
            vec![
                (FrameKind::Stun, RFC5769_REQUEST.to_vec()),
                (FrameKind::ChannelData, b"\x40\x00\x00\x03abc\0".to_vec()),
                (FrameKind::Stun, RFC5769_RESPONSE_V4.to_vec()),
            ]
        );
        assert_eq!(next_frame(&[]), Ok(None));
        assert_eq!(next_frame(&[0x40, 0x00]), Ok(None));
        assert_eq!(next_frame(&RFC5769_REQUEST[..7]), Ok(None));
        assert!(next_frame(b"POST / HTTP/1.1").is_err());
        assert!(next_frame(&[0x00, 0x01, 0x00, 0x04, 1, 2, 3, 4]).is_err());
        let mut s = FrameSplitter::new();
        // A TLS ClientHello record starts with 0x16: STUN-like bits, no cookie.
        s.push(b"\x16\x03\x01");
        assert_eq!(s.pop(), Ok(None));
        s.push(b"\x02\x00\x01\x00\x01\xfc");
        assert!(s.pop().is_err());
        s.push(&RFC5769_REQUEST);
        assert!(s.pop().is_err());
    }

    proptest! {
        #[test]
        fn channel_data_roundtrip(channel in MIN_CHANNEL..=MAX_CHANNEL, data in prop::collection::vec(any::<u8>(), 0..64)) {
            let cd = ChannelData { channel, data: &data };
            for t in [Transport::Udp, Transport::Stream] {
                let mut out = Vec::new();
                cd.encode(t, &mut out).unwrap();
                prop_assert_eq!(out.len(), cd.encoded_len(t));
                prop_assert_eq!(ChannelData::decode(&out, t).unwrap(), cd);
            }
        }

        #[test]
        fn split_any_chunking(
            msgs in prop::collection::vec(
                prop_oneof![
                    arb_message().prop_map(|m| m.encode_sealed(None, true).unwrap()),
                    (MIN_CHANNEL..=MAX_CHANNEL, prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(c, d)| {
                        let mut out = Vec::new();
                        ChannelData { channel: c, data: &d }.encode(Transport::Stream, &mut out).unwrap();
                        out
                    }),
                ],
                0..6,
            ),
            cuts in prop::collection::vec(1usize..50, 0..30),
        ) {
            let stream = msgs.concat();
            let mut s = FrameSplitter::new();
            let mut got = Vec::new();
            let mut at = 0;
            let mut cuts = cuts.into_iter();
            while at < stream.len() {
                let n = cuts.next().unwrap_or(stream.len()).min(stream.len() - at);
                s.push(&stream[at..at + n]);
                at += n;
                while let Some((kind, f)) = s.pop().unwrap() {
                    match kind {
                        FrameKind::Stun => { Message::decode(&f).unwrap(); }
                        FrameKind::ChannelData => { ChannelData::decode(&f, Transport::Stream).unwrap(); }
                    }
                    got.push(f);
                }
            }
            prop_assert_eq!(got, msgs);
            prop_assert_eq!(s.buffered(), 0);
        }

        #[test]
        fn any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
            let _ = ChannelData::decode(&bytes, Transport::Udp);
            let _ = ChannelData::decode(&bytes, Transport::Stream);
            if let Ok(Some((_, len))) = next_frame(&bytes) {
                prop_assert!(len >= 4);
            }
        }
    }
}
