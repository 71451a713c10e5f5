//! `peercam_stun::framing`: any bytes as a TCP/TLS stream of STUN messages and
//! ChannelData frames, and as one ChannelData datagram.
//!
//! Never panics. The first byte picks the chunk size the stream arrives in. The splitter
//! hands out frames that are exactly the prefix of the stream, each as long as
//! `next_frame` said; ChannelData frames decode with stream padding and re-encode to the
//! same bytes apart from the padding; nothing is buffered beyond one incomplete frame.
//! A ChannelData datagram that decodes re-encodes (unpadded) to a prefix of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_stun::framing::{ChannelData, FrameKind, FrameSplitter, Transport, next_frame};
use peercam_stun::message::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(cd) = ChannelData::decode(data, Transport::Udp) {
        let mut out = Vec::new();
        cd.encode(Transport::Udp, &mut out)
            .expect("decoded ChannelData encodes");
        assert!(data.starts_with(&out));
        assert!(data.len() - out.len() < 4);
    }
    let _ = ChannelData::decode(data, Transport::Stream);

    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 32) + 1;
    let mut s = FrameSplitter::new();
    let mut consumed = 0;
    'feed: for piece in stream.chunks(chunk) {
        s.push(piece);
        loop {
            let expected = next_frame(&stream[consumed..]);
            match s.pop() {
                Ok(Some((kind, frame))) => {
                    assert_eq!(expected, Ok(Some((kind, frame.len()))));
                    assert_eq!(&stream[consumed..consumed + frame.len()], &frame[..]);
                    consumed += frame.len();
                    match kind {
                        FrameKind::Stun => {
                            let _ = Message::decode(&frame);
                        }
                        FrameKind::ChannelData => {
                            let cd = ChannelData::decode(&frame, Transport::Stream)
                                .expect("a ChannelData frame decodes");
                            let mut out = Vec::new();
                            cd.encode(Transport::Stream, &mut out).expect("encodes");
                            assert_eq!(out.len(), frame.len());
                            assert_eq!(out[..4 + cd.data.len()], frame[..4 + cd.data.len()]);
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    assert!(expected.is_err());
                    assert!(s.pop().is_err(), "a failed splitter recovered");
                    break 'feed;
                }
            }
        }
        // The largest frame is a STUN message: 20 + 65535 bytes.
        assert!(s.buffered() < 20 + 0xFFFF + chunk);
    }
});
