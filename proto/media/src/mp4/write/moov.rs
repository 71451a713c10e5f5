//! Serialising the `moov` box from the muxer's sample tables (ISO/IEC 14496-12 8.2 to 8.7).

use super::{AacTrack, AudioParams, AudioTrack, ChunkOut, MOVIE_TIMESCALE, Muxer};
use crate::Error;

impl Muxer {
    /// The `moov` box, with chunk offsets shifted by `base`. An audio track without
    /// samples is left out.
    pub(super) fn moov(&self, base: u64, co64: bool) -> Result<Vec<u8>, Error> {
        let v = &self.video;
        let video_ms = scale(v.duration, v.timescale, MOVIE_TIMESCALE);
        let audio = self.audio.as_ref().filter(|a| a.samples > 0);
        let audio_ms = audio.map_or(0, |a| {
            scale(a.samples, AudioParams::SAMPLE_RATE, MOVIE_TIMESCALE)
        });
        let aac = self.aac.as_ref().filter(|a| !a.sizes.is_empty());
        let aac_ms = aac.map_or(0, |a| {
            scale(a.duration, a.config.sample_rate, MOVIE_TIMESCALE)
        });
        let mut b = Vec::new();
        bx(&mut b, b"moov", |b| {
            self.mvhd(
                b,
                video_ms.max(audio_ms).max(aac_ms),
                if audio.is_some() || aac.is_some() {
                    3
                } else {
                    2
                },
            )?;
            self.video_trak(b, video_ms, base, co64)?;
            if let Some(a) = audio {
                self.audio_trak(b, a, audio_ms, base, co64)?;
            }
            if let Some(a) = aac {
                self.aac_trak(b, a, aac_ms, base, co64)?;
            }
            Ok(())
        })?;
        Ok(b)
    }

    fn video_trak(
        &self,
        b: &mut Vec<u8>,
        duration_ms: u64,
        base: u64,
        co64: bool,
    ) -> Result<(), Error> {
        let v = &self.video;
        bx(b, b"trak", |b| {
            self.tkhd(b, 1, duration_ms, Some((v.width, v.height)))?;
            bx(b, b"mdia", |b| {
                self.mdhd(b, v.timescale, v.duration)?;
                hdlr(b, b"vide", "VideoHandler")?;
                bx(b, b"minf", |b| {
                    full(b, b"vmhd", 0, 1, |b| {
                        b.extend_from_slice(&[0; 8]); // graphicsmode, opcolor
                        Ok(())
                    })?;
                    dinf(b)?;
                    bx(b, b"stbl", |b| {
                        full(b, b"stsd", 0, 0, |b| {
                            b.extend_from_slice(&1u32.to_be_bytes());
                            bx(b, b"avc1", |b| {
                                b.extend_from_slice(&[0; 6]);
                                b.extend_from_slice(&1u16.to_be_bytes()); // data_reference_index
                                b.extend_from_slice(&[0; 16]);
                                b.extend_from_slice(&(v.width as u16).to_be_bytes());
                                b.extend_from_slice(&(v.height as u16).to_be_bytes());
                                b.extend_from_slice(&0x0048_0000u32.to_be_bytes()); // 72 dpi
                                b.extend_from_slice(&0x0048_0000u32.to_be_bytes());
                                b.extend_from_slice(&[0; 4]);
                                b.extend_from_slice(&1u16.to_be_bytes()); // frame_count
                                b.extend_from_slice(&[0; 32]); // compressorname
                                b.extend_from_slice(&0x0018u16.to_be_bytes()); // depth
                                b.extend_from_slice(&(-1i16).to_be_bytes());
                                bx(b, b"avcC", |b| {
                                    b.extend_from_slice(&v.avcc.to_bytes()?);
                                    Ok(())
                                })
                            })
                        })?;
                        stts(b, &v.stts)?;
                        full(b, b"stss", 0, 0, |b| {
                            b.extend_from_slice(&(v.sync.len() as u32).to_be_bytes());
                            v.sync
                                .iter()
                                .for_each(|n| b.extend_from_slice(&n.to_be_bytes()));
                            Ok(())
                        })?;
                        stsc(b, &v.chunks)?;
                        full(b, b"stsz", 0, 0, |b| {
                            b.extend_from_slice(&0u32.to_be_bytes());
                            b.extend_from_slice(&(v.sizes.len() as u32).to_be_bytes());
                            v.sizes
                                .iter()
                                .for_each(|s| b.extend_from_slice(&s.to_be_bytes()));
                            Ok(())
                        })?;
                        chunk_offsets(b, &v.chunks, base, co64)
                    })
                })
            })
        })
    }

    fn audio_trak(
        &self,
        b: &mut Vec<u8>,
        a: &AudioTrack,
        duration_ms: u64,
        base: u64,
        co64: bool,
    ) -> Result<(), Error> {
        bx(b, b"trak", |b| {
            self.tkhd(b, 2, duration_ms, None)?;
            bx(b, b"mdia", |b| {
                self.mdhd(b, AudioParams::SAMPLE_RATE, a.samples)?;
                hdlr(b, b"soun", "SoundHandler")?;
                bx(b, b"minf", |b| {
                    full(b, b"smhd", 0, 0, |b| {
                        b.extend_from_slice(&[0; 4]); // balance, reserved
                        Ok(())
                    })?;
                    dinf(b)?;
                    bx(b, b"stbl", |b| {
                        full(b, b"stsd", 0, 0, |b| {
                            b.extend_from_slice(&1u32.to_be_bytes());
                            bx(b, &super::audio_fourcc(a.law).0, |b| {
                                b.extend_from_slice(&[0; 6]);
                                b.extend_from_slice(&1u16.to_be_bytes()); // data_reference_index
                                b.extend_from_slice(&[0; 8]); // version 0
                                b.extend_from_slice(&1u16.to_be_bytes()); // channelcount
                                b.extend_from_slice(&16u16.to_be_bytes()); // samplesize
                                b.extend_from_slice(&[0; 4]);
                                b.extend_from_slice(
                                    &(AudioParams::SAMPLE_RATE << 16).to_be_bytes(),
                                );
                                Ok(())
                            })
                        })?;
                        // One byte per sample, each lasting one tick.
                        let n = a.samples as u32;
                        stts(b, &[(n, 1)])?;
                        stsc(b, &a.chunks)?;
                        full(b, b"stsz", 0, 0, |b| {
                            b.extend_from_slice(&1u32.to_be_bytes());
                            b.extend_from_slice(&n.to_be_bytes());
                            Ok(())
                        })?;
                        chunk_offsets(b, &a.chunks, base, co64)
                    })
                })
            })
        })
    }

    /// The AAC track: `mp4a` with `esds` (ISO/IEC 14496-14 5.6, 14496-1 7.2.6.5), one
    /// access unit per sample.
    fn aac_trak(
        &self,
        b: &mut Vec<u8>,
        a: &AacTrack,
        duration_ms: u64,
        base: u64,
        co64: bool,
    ) -> Result<(), Error> {
        let c = &a.config;
        bx(b, b"trak", |b| {
            self.tkhd(b, 2, duration_ms, None)?;
            bx(b, b"mdia", |b| {
                self.mdhd(b, c.sample_rate, a.duration)?;
                hdlr(b, b"soun", "SoundHandler")?;
                bx(b, b"minf", |b| {
                    full(b, b"smhd", 0, 0, |b| {
                        b.extend_from_slice(&[0; 4]);
                        Ok(())
                    })?;
                    dinf(b)?;
                    bx(b, b"stbl", |b| {
                        full(b, b"stsd", 0, 0, |b| {
                            b.extend_from_slice(&1u32.to_be_bytes());
                            bx(b, b"mp4a", |b| {
                                b.extend_from_slice(&[0; 6]);
                                b.extend_from_slice(&1u16.to_be_bytes()); // data_reference_index
                                b.extend_from_slice(&[0; 8]);
                                b.extend_from_slice(&u16::from(c.channels.max(1)).to_be_bytes());
                                b.extend_from_slice(&16u16.to_be_bytes()); // samplesize
                                b.extend_from_slice(&[0; 4]);
                                // 16.16; rates above 65535 Hz do not fit and are written as 0
                                // (the esds holds the real one).
                                let rate = if c.sample_rate <= 0xffff {
                                    c.sample_rate << 16
                                } else {
                                    0
                                };
                                b.extend_from_slice(&rate.to_be_bytes());
                                full(b, b"esds", 0, 0, |b| {
                                    b.extend_from_slice(&es_descriptor(&c.config)?);
                                    Ok(())
                                })
                            })
                        })?;
                        stts(b, &a.stts)?;
                        stsc(b, &a.chunks)?;
                        full(b, b"stsz", 0, 0, |b| {
                            b.extend_from_slice(&0u32.to_be_bytes());
                            b.extend_from_slice(&(a.sizes.len() as u32).to_be_bytes());
                            a.sizes
                                .iter()
                                .for_each(|s| b.extend_from_slice(&s.to_be_bytes()));
                            Ok(())
                        })?;
                        chunk_offsets(b, &a.chunks, base, co64)
                    })
                })
            })
        })
    }

    fn mvhd(&self, b: &mut Vec<u8>, duration: u64, next_track: u32) -> Result<(), Error> {
        let v1 = duration > u64::from(u32::MAX) || self.creation_time > u64::from(u32::MAX);
        full(b, b"mvhd", u8::from(v1), 0, |b| {
            self.times(b, v1);
            b.extend_from_slice(&MOVIE_TIMESCALE.to_be_bytes());
            put_duration(b, v1, duration);
            b.extend_from_slice(&0x0001_0000u32.to_be_bytes()); // rate 1.0
            b.extend_from_slice(&0x0100u16.to_be_bytes()); // volume 1.0
            b.extend_from_slice(&[0; 10]);
            put_matrix(b);
            b.extend_from_slice(&[0; 24]); // pre_defined
            b.extend_from_slice(&next_track.to_be_bytes());
            Ok(())
        })
    }

    fn tkhd(
        &self,
        b: &mut Vec<u8>,
        id: u32,
        duration: u64,
        size: Option<(u32, u32)>,
    ) -> Result<(), Error> {
        let v1 = duration > u64::from(u32::MAX) || self.creation_time > u64::from(u32::MAX);
        // Flags: track_enabled | track_in_movie.
        full(b, b"tkhd", u8::from(v1), 3, |b| {
            self.times(b, v1);
            b.extend_from_slice(&id.to_be_bytes());
            b.extend_from_slice(&[0; 4]);
            put_duration(b, v1, duration);
            b.extend_from_slice(&[0; 8]);
            b.extend_from_slice(&[0; 4]); // layer, alternate_group
            let volume: u16 = if size.is_none() { 0x0100 } else { 0 };
            b.extend_from_slice(&volume.to_be_bytes());
            b.extend_from_slice(&[0; 2]);
            put_matrix(b);
            let (w, h) = size.unwrap_or((0, 0));
            b.extend_from_slice(&(w << 16).to_be_bytes());
            b.extend_from_slice(&(h << 16).to_be_bytes());
            Ok(())
        })
    }

    fn mdhd(&self, b: &mut Vec<u8>, timescale: u32, duration: u64) -> Result<(), Error> {
        let v1 = duration > u64::from(u32::MAX) || self.creation_time > u64::from(u32::MAX);
        full(b, b"mdhd", u8::from(v1), 0, |b| {
            self.times(b, v1);
            b.extend_from_slice(&timescale.to_be_bytes());
            put_duration(b, v1, duration);
            b.extend_from_slice(&0x55c4u16.to_be_bytes()); // language "und"
            b.extend_from_slice(&[0; 2]);
            Ok(())
        })
    }

    /// creation_time and modification_time.
    fn times(&self, b: &mut Vec<u8>, v1: bool) {
        for _ in 0..2 {
            put_duration(b, v1, self.creation_time);
        }
    }
}

/// Writes a box: size, type, then whatever `f` appends.
fn bx(
    b: &mut Vec<u8>,
    kind: &[u8; 4],
    f: impl FnOnce(&mut Vec<u8>) -> Result<(), Error>,
) -> Result<(), Error> {
    let at = b.len();
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(kind);
    f(b)?;
    let size = u32::try_from(b.len() - at).map_err(|_| Error::TooLarge {
        context: "box",
        limit: u64::from(u32::MAX),
    })?;
    b[at..at + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// Writes a full box: a box starting with version and flags.
fn full(
    b: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    f: impl FnOnce(&mut Vec<u8>) -> Result<(), Error>,
) -> Result<(), Error> {
    bx(b, kind, |b| {
        b.push(version);
        b.extend_from_slice(&flags.to_be_bytes()[1..]);
        f(b)
    })
}

fn hdlr(b: &mut Vec<u8>, handler: &[u8; 4], name: &str) -> Result<(), Error> {
    full(b, b"hdlr", 0, 0, |b| {
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(handler);
        b.extend_from_slice(&[0; 12]);
        b.extend_from_slice(name.as_bytes());
        b.push(0);
        Ok(())
    })
}

/// `dinf` with one self-contained `url ` reference.
fn dinf(b: &mut Vec<u8>) -> Result<(), Error> {
    bx(b, b"dinf", |b| {
        full(b, b"dref", 0, 0, |b| {
            b.extend_from_slice(&1u32.to_be_bytes());
            full(b, b"url ", 0, 1, |_| Ok(()))
        })
    })
}

/// The ES_Descriptor of an AAC track (ISO/IEC 14496-1 7.2.6.5): a DecoderConfigDescriptor
/// for MPEG-4 Audio (object type indication 0x40, stream type 5) with the
/// AudioSpecificConfig as its DecoderSpecificInfo, and the MP4 SLConfigDescriptor.
fn es_descriptor(asc: &[u8]) -> Result<Vec<u8>, Error> {
    fn desc(tag: u8, body: &[u8]) -> Result<Vec<u8>, Error> {
        let len = u8::try_from(body.len())
            .ok()
            .filter(|l| *l < 0x80)
            .ok_or(Error::Misuse("AudioSpecificConfig too long for an esds"))?;
        let mut d = vec![tag, len];
        d.extend_from_slice(body);
        Ok(d)
    }
    let mut dcd = vec![0x40, (0x05 << 2) | 1, 0, 0, 0];
    dcd.extend_from_slice(&[0; 8]); // maxBitrate, avgBitrate: unknown
    dcd.extend_from_slice(&desc(0x05, asc)?);
    let mut es = vec![0, 0, 0]; // ES_ID, flags
    es.extend_from_slice(&desc(0x04, &dcd)?);
    es.extend_from_slice(&desc(0x06, &[0x02])?);
    desc(0x03, &es)
}

fn stts(b: &mut Vec<u8>, runs: &[(u32, u32)]) -> Result<(), Error> {
    let runs: Vec<_> = runs.iter().filter(|r| r.0 > 0).collect();
    full(b, b"stts", 0, 0, |b| {
        b.extend_from_slice(&(runs.len() as u32).to_be_bytes());
        for (count, delta) in runs {
            b.extend_from_slice(&count.to_be_bytes());
            b.extend_from_slice(&delta.to_be_bytes());
        }
        Ok(())
    })
}

/// `stsc`: runs of chunks with the same number of samples.
fn stsc(b: &mut Vec<u8>, chunks: &[ChunkOut]) -> Result<(), Error> {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        if runs.last().is_none_or(|r| r.1 != c.samples) {
            runs.push((i as u32 + 1, c.samples));
        }
    }
    full(b, b"stsc", 0, 0, |b| {
        b.extend_from_slice(&(runs.len() as u32).to_be_bytes());
        for (first, n) in runs {
            b.extend_from_slice(&first.to_be_bytes());
            b.extend_from_slice(&n.to_be_bytes());
            b.extend_from_slice(&1u32.to_be_bytes()); // sample_description_index
        }
        Ok(())
    })
}

fn chunk_offsets(b: &mut Vec<u8>, chunks: &[ChunkOut], base: u64, co64: bool) -> Result<(), Error> {
    let kind = if co64 { b"co64" } else { b"stco" };
    full(b, kind, 0, 0, |b| {
        b.extend_from_slice(&(chunks.len() as u32).to_be_bytes());
        for c in chunks {
            let off = c.offset + base;
            if co64 {
                b.extend_from_slice(&off.to_be_bytes());
            } else {
                let off = u32::try_from(off)
                    .map_err(|_| Error::Misuse("chunk offset past 4 GiB in stco"))?;
                b.extend_from_slice(&off.to_be_bytes());
            }
        }
        Ok(())
    })
}

fn put_duration(b: &mut Vec<u8>, v1: bool, d: u64) {
    if v1 {
        b.extend_from_slice(&d.to_be_bytes());
    } else {
        b.extend_from_slice(&(d as u32).to_be_bytes());
    }
}

/// The identity matrix (16.16, 16.16, 2.30).
fn put_matrix(b: &mut Vec<u8>) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        b.extend_from_slice(&v.to_be_bytes());
    }
}

/// `v` ticks of `from` Hz in `to` Hz, rounded to nearest.
fn scale(v: u64, from: u32, to: u32) -> u64 {
    ((u128::from(v) * u128::from(to) + u128::from(from) / 2) / u128::from(from)) as u64
}
