//! The sample index of one recorded segment.
//!
//! A segment's data file holds its samples back to back: each video frame as AVCC (4-byte
//! big-endian length before every NAL unit) and each audio chunk as raw G.711 bytes. The
//! index, stored in the database row that commits the segment, lists them in file order:
//!
//! ```text
//! entry  = varint((pts_delta << 2) | (track << 1) | key) varint(size)
//! track  = 0 video (90 kHz) | 1 audio (8 kHz)
//! ```
//!
//! `pts_delta` is the distance from the previous sample *of the same track* (from 0 for the
//! first), so presentation times never decrease within a track and a byte offset is the sum
//! of the sizes before it. Entries take 3-4 bytes for a 25 fps video frame.

use crate::Error;

/// Largest sample: 16 MiB.
pub const MAX_SAMPLE: u32 = 16 << 20;
/// Largest gap between two samples of a track: about 3.4 hours at 90 kHz.
pub const MAX_DELTA: u64 = 1 << 30;

/// Which track a sample belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    /// H.264, timestamps at 90 kHz.
    Video,
    /// G.711, timestamps at 8 kHz (one byte per sample).
    Audio,
}

impl Track {
    /// Ticks per second of this track's timestamps.
    pub fn timescale(self) -> u64 {
        match self {
            Self::Video => 90_000,
            Self::Audio => 8_000,
        }
    }

    fn bit(self) -> u64 {
        match self {
            Self::Video => 0,
            Self::Audio => 1,
        }
    }
}

/// One frame or audio chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Its track.
    pub track: Track,
    /// Presentation time from the segment's start, in the track's timescale.
    pub pts: u64,
    /// Bytes in the data file.
    pub size: u32,
    /// An IDR access unit (always false for audio).
    pub key: bool,
}

/// A sample and where its bytes are in the data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// The sample.
    pub sample: Sample,
    /// Byte offset in the data file.
    pub offset: u64,
}

/// Builds an index sample by sample.
#[derive(Debug, Clone, Default)]
pub struct IndexEncoder {
    bytes: Vec<u8>,
    last: [Option<u64>; 2],
    data_len: u64,
    count: usize,
    video_frames: usize,
}

impl IndexEncoder {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a sample. Refused (and nothing added) if its time goes back within its track,
    /// jumps more than [`MAX_DELTA`], or it is empty or larger than [`MAX_SAMPLE`].
    pub fn push(&mut self, s: Sample) -> Result<(), Error> {
        if s.size == 0 || s.size > MAX_SAMPLE {
            return Err(Error::Sample("size must be 1 byte to 16 MiB"));
        }
        if s.key && s.track == Track::Audio {
            return Err(Error::Sample("audio samples are never key frames"));
        }
        let slot = s.track.bit() as usize;
        let prev = self.last[slot].unwrap_or(0);
        let delta = s
            .pts
            .checked_sub(prev)
            .ok_or(Error::Sample("timestamp goes back"))?;
        if delta > MAX_DELTA {
            return Err(Error::Sample("timestamp jumps too far"));
        }
        put_varint(
            &mut self.bytes,
            (delta << 2) | (s.track.bit() << 1) | u64::from(s.key),
        );
        put_varint(&mut self.bytes, u64::from(s.size));
        self.last[slot] = Some(s.pts);
        self.data_len += u64::from(s.size);
        self.count += 1;
        if s.track == Track::Video {
            self.video_frames += 1;
        }
        Ok(())
    }

    /// Samples so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no sample was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Video frames so far.
    pub fn video_frames(&self) -> usize {
        self.video_frames
    }

    /// Total data bytes the samples take.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Presentation time of the last video frame, 90 kHz, if any.
    pub fn last_video_pts(&self) -> Option<u64> {
        self.last[0]
    }

    /// The encoded index.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Takes the encoded index.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Decodes an index, checking every entry. `data_len`, when given, must equal the sum of
/// the sizes (the data file's committed length).
pub fn decode(bytes: &[u8], data_len: Option<u64>) -> Result<Vec<Located>, Error> {
    let mut out = Vec::with_capacity(bytes.len() / 3);
    let mut pos = 0usize;
    let mut last = [0u64; 2];
    let mut offset = 0u64;
    while pos < bytes.len() {
        let at = pos;
        let header = get_varint(bytes, &mut pos)?;
        let size = get_varint(bytes, &mut pos)?;
        let bad = |reason| Error::Index { offset: at, reason };
        let track = if header & 2 == 0 {
            Track::Video
        } else {
            Track::Audio
        };
        let key = header & 1 == 1;
        let delta = header >> 2;
        if delta > MAX_DELTA {
            return Err(bad("timestamp jump too large"));
        }
        if size == 0 || size > u64::from(MAX_SAMPLE) {
            return Err(bad("sample size out of range"));
        }
        if key && track == Track::Audio {
            return Err(bad("audio sample marked key"));
        }
        let slot = track.bit() as usize;
        last[slot] += delta;
        out.push(Located {
            sample: Sample {
                track,
                pts: last[slot],
                size: size as u32,
                key,
            },
            offset,
        });
        offset += size;
    }
    if let Some(len) = data_len
        && len != offset
    {
        return Err(Error::Index {
            offset: bytes.len(),
            reason: "sample sizes do not add up to the data length",
        });
    }
    Ok(out)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> Result<u64, Error> {
    let start = *pos;
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&b) = bytes.get(*pos) else {
            return Err(Error::Index {
                offset: start,
                reason: "truncated varint",
            });
        };
        *pos += 1;
        if shift == 63 && b > 1 {
            break;
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            // Reject non-minimal encodings so every index has one spelling.
            if b == 0 && shift > 0 {
                break;
            }
            return Ok(v);
        }
    }
    Err(Error::Index {
        offset: start,
        reason: "overlong varint",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_samples() -> impl Strategy<Value = Vec<Sample>> {
        proptest::collection::vec(
            (
                any::<bool>(),
                0u64..100_000,
                1u32..=MAX_SAMPLE,
                any::<bool>(),
            ),
            0..200,
        )
        .prop_map(|raw| {
            let mut pts = [0u64; 2];
            raw.into_iter()
                .map(|(audio, delta, size, key)| {
                    let track = if audio { Track::Audio } else { Track::Video };
                    let slot = usize::from(audio);
                    pts[slot] += delta;
                    Sample {
                        track,
                        pts: pts[slot],
                        size,
                        key: key && !audio,
                    }
                })
                .collect()
        })
    }

    #[test]
    fn h626_8_7_2_index_of_a_gop_is_small_and_exact() {
        let mut e = IndexEncoder::new();
        for i in 0..25u64 {
            e.push(Sample {
                track: Track::Video,
                pts: i * 3600,
                size: if i == 0 { 40_000 } else { 6_000 },
                key: i == 0,
            })
            .unwrap();
            e.push(Sample {
                track: Track::Audio,
                pts: i * 320,
                size: 320,
                key: false,
            })
            .unwrap();
        }
        assert!(e.as_bytes().len() <= 50 * 4, "{} bytes", e.as_bytes().len());
        assert_eq!(e.video_frames(), 25);
        let total = e.data_len();
        let d = decode(e.as_bytes(), Some(total)).unwrap();
        assert_eq!(d.len(), 50);
        assert_eq!(d[2].offset, 40_320);
        assert_eq!(d[2].sample.pts, 3600);
        assert!(decode(e.as_bytes(), Some(total + 1)).is_err());
    }

    #[test]
    fn h626_8_7_2_index_refuses_bad_samples() {
        let mut e = IndexEncoder::new();
        let v = |pts, size| Sample {
            track: Track::Video,
            pts,
            size,
            key: false,
        };
        e.push(v(100, 1)).unwrap();
        assert!(e.push(v(99, 1)).is_err());
        assert!(e.push(v(200, 0)).is_err());
        assert!(e.push(v(200 + MAX_DELTA + 1, 1)).is_err());
        assert!(
            e.push(Sample {
                track: Track::Audio,
                pts: 0,
                size: 1,
                key: true
            })
            .is_err()
        );
        assert_eq!(e.len(), 1);
        assert!(decode(&[0x80], None).is_err());
        assert!(decode(&[0x80, 0x00, 0x01], None).is_err(), "non-minimal");
        assert!(decode(&[0x04, 0x00], None).is_err(), "size 0");
    }

    proptest! {
        #[test]
        fn index_round_trips(samples in arb_samples()) {
            let mut e = IndexEncoder::new();
            for s in &samples {
                e.push(*s).unwrap();
            }
            let total = e.data_len();
            let d = decode(e.as_bytes(), Some(total)).unwrap();
            let back: Vec<Sample> = d.iter().map(|l| l.sample).collect();
            prop_assert_eq!(back, samples);
            let mut off = 0;
            for l in &d {
                prop_assert_eq!(l.offset, off);
                off += u64::from(l.sample.size);
            }
        }

        #[test]
        fn decode_never_panics_and_reencodes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(d) = decode(&bytes, None) {
                let mut e = IndexEncoder::new();
                for l in &d {
                    e.push(l.sample).unwrap();
                }
                prop_assert_eq!(e.as_bytes(), &bytes[..]);
            }
        }
    }
}
