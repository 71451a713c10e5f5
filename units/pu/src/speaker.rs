//! The camera's speaker: what a viewer says to the camera (intercom, H.626.4 6.1.8; clause 7,
//! the PU's optional audio playback).
//!
//! A viewer whose grant holds `talk` sends its microphone on the WebRTC session's audio
//! (`sendrecv`); each packet is decoded to 16-bit PCM at 8 kHz
//! ([`peercam_rtp::talk::TalkDecoder`]: G.711 mu-law and A-law, G.722 from its lower
//! sub-band, 0-4 kHz) and played by the camera's [`Speaker`]. The synthetic camera's speaker is a WAV file
//! ([`WavFile`], `speaker_wav` in the PU configuration); a camera without one declines talk.
//!
//! One talker at a time ([`Intercom`]): the first viewer whose audio arrives holds the floor
//! until [`FLOOR_HOLD`] passes without a packet from it (or its session ends); meanwhile
//! another viewer's audio is dropped and its session logs that once per talk spurt.

use std::fs::File;
use std::io::{self, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use peercam_rtp::g711::AudioCodec;
use peercam_rtp::talk::TalkDecoder;
use std::time::{Duration, Instant};

/// The rate every speaker plays at: G.711's (G.722 talk is played from its lower band).
pub const SPEAKER_RATE: u32 = peercam_rtp::talk::RATE;

/// How long the floor stays with a talker after its last packet.
pub const FLOOR_HOLD: Duration = Duration::from_millis(500);

/// Where the camera plays sound.
pub trait Speaker: Send {
    /// Plays 16-bit mono PCM at [`SPEAKER_RATE`].
    fn play(&mut self, pcm: &[i16]) -> io::Result<()>;
}

/// A speaker that writes what it plays to a WAV file (16-bit PCM, mono, 8 kHz): the
/// synthetic camera's, so tests and the demo can listen to it.
///
/// The file is created (truncated) on the first sound, not before: a camera nobody talked
/// to has none. Its header's sizes are rewritten after every write, so the file is a valid
/// WAV at any moment, also after a crash. Talk spurts follow each other without the pauses
/// between them. It stops growing at the format's 4 GiB limit.
pub struct WavFile {
    path: PathBuf,
    file: Option<File>,
    data_bytes: u32,
    full_logged: bool,
}

const WAV_HEADER: u32 = 44;

impl WavFile {
    /// A speaker writing to `path`.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            data_bytes: 0,
            full_logged: false,
        }
    }

    fn header(data_bytes: u32) -> [u8; WAV_HEADER as usize] {
        let mut h = [0u8; WAV_HEADER as usize];
        let byte_rate = SPEAKER_RATE * 2;
        h[0..4].copy_from_slice(b"RIFF");
        h[4..8].copy_from_slice(&(data_bytes + WAV_HEADER - 8).to_le_bytes());
        h[8..12].copy_from_slice(b"WAVE");
        h[12..16].copy_from_slice(b"fmt ");
        h[16..20].copy_from_slice(&16u32.to_le_bytes());
        h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
        h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
        h[24..28].copy_from_slice(&SPEAKER_RATE.to_le_bytes());
        h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
        h[32..34].copy_from_slice(&2u16.to_le_bytes()); // block align
        h[34..36].copy_from_slice(&16u16.to_le_bytes()); // bits per sample
        h[36..40].copy_from_slice(b"data");
        h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
        h
    }
}

impl Speaker for WavFile {
    fn play(&mut self, pcm: &[i16]) -> io::Result<()> {
        if pcm.is_empty() {
            return Ok(());
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                let mut f = File::create(&self.path)?;
                f.write_all(&Self::header(0))?;
                self.data_bytes = 0;
                self.file.insert(f)
            }
        };
        let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
        let Some(total) = u32::try_from(bytes.len())
            .ok()
            .and_then(|n| self.data_bytes.checked_add(n))
            .filter(|t| t.checked_add(WAV_HEADER).is_some())
        else {
            if !self.full_logged {
                self.full_logged = true;
                tracing::warn!(path = %self.path.display(), "the speaker's WAV file is full (4 GiB); no more sound is kept");
            }
            return Ok(());
        };
        file.write_all_at(&bytes, u64::from(WAV_HEADER + self.data_bytes))?;
        self.data_bytes = total;
        // The sizes: RIFF chunk and data chunk.
        file.write_all_at(&(total + WAV_HEADER - 8).to_le_bytes(), 4)?;
        file.write_all_at(&total.to_le_bytes(), 40)?;
        Ok(())
    }
}

/// What became of a talker's sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// Played.
    Played,
    /// Another viewer holds the floor: dropped.
    Busy,
    /// The speaker failed (logged): dropped.
    Failed,
}

/// The camera's speaker shared by its viewers, one talker at a time.
pub struct Intercom {
    speaker: Mutex<Box<dyn Speaker>>,
    /// The talker holding the floor and its last packet.
    floor: Mutex<Option<(u64, Instant)>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Intercom {
    /// An intercom playing into `speaker`.
    pub fn new(speaker: Box<dyn Speaker>) -> Self {
        Self {
            speaker: Mutex::new(speaker),
            floor: Mutex::new(None),
            next_id: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// A new talker's id.
    pub fn talker_id(&self) -> u64 {
        self.next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Plays `pcm` from `talker` if it holds the floor or the floor is free (taking it).
    pub fn hear(&self, talker: u64, pcm: &[i16], now: Instant) -> Heard {
        {
            let mut floor = self.floor.lock().unwrap_or_else(PoisonError::into_inner);
            match *floor {
                Some((holder, last))
                    if holder != talker && now.saturating_duration_since(last) < FLOOR_HOLD =>
                {
                    return Heard::Busy;
                }
                _ => *floor = Some((talker, now)),
            }
        }
        let mut speaker = self.speaker.lock().unwrap_or_else(PoisonError::into_inner);
        match speaker.play(pcm) {
            Ok(()) => Heard::Played,
            Err(e) => {
                tracing::warn!(error = %e, "the camera's speaker failed");
                Heard::Failed
            }
        }
    }

    /// Whether `talker` holds the floor at `now`.
    pub fn is_talking(&self, talker: u64, now: Instant) -> bool {
        matches!(*self.floor.lock().unwrap_or_else(PoisonError::into_inner),
            Some((holder, last)) if holder == talker && now.saturating_duration_since(last) < FLOOR_HOLD)
    }

    /// Frees the floor if `talker` holds it (its session ended).
    pub fn release(&self, talker: u64) {
        let mut floor = self.floor.lock().unwrap_or_else(PoisonError::into_inner);
        if floor.is_some_and(|(holder, _)| holder == talker) {
            *floor = None;
        }
    }
}

/// A viewer allowed to talk: its decoder and its place at the camera's speaker.
pub(crate) struct Talker {
    pub(crate) intercom: Arc<Intercom>,
    pub(crate) id: u64,
    decoder: Option<TalkDecoder>,
    last_seq: Option<u64>,
    /// Whether the current refusal (another viewer talks) was logged.
    busy_logged: bool,
}

impl Talker {
    pub(crate) fn new(intercom: Arc<Intercom>) -> Self {
        let id = intercom.talker_id();
        Self {
            intercom,
            id,
            decoder: None,
            last_seq: None,
            busy_logged: false,
        }
    }

    /// Plays one packet of the viewer's microphone: its codec, its RTP sequence number
    /// extended to 64 bits, its payload. Returns a change of this viewer's place at the
    /// speaker, to tell it: refused because another viewer talks (once per spurt), or heard
    /// again after such a refusal.
    pub(crate) fn hear(&mut self, codec: AudioCodec, seq: u64, payload: &[u8]) -> Option<Floor> {
        // Late or repeated packets are dropped; the speaker plays in order.
        if self.last_seq.is_some_and(|s| seq <= s) {
            return None;
        }
        self.last_seq = Some(seq);
        let decoder = match &mut self.decoder {
            Some(d) if d.codec() == codec => d,
            slot => slot.insert(TalkDecoder::new(codec)),
        };
        let pcm = decoder.decode(payload);
        if pcm.is_empty() {
            // Nothing to play (an empty or oversized payload): the floor is not taken.
            return None;
        }
        match self.intercom.hear(self.id, &pcm, Instant::now()) {
            Heard::Played => {
                let was_busy = std::mem::take(&mut self.busy_logged);
                if was_busy {
                    tracing::info!("talk: this viewer now has the camera's speaker");
                }
                was_busy.then_some(Floor::Heard)
            }
            Heard::Busy => {
                if self.busy_logged {
                    return None;
                }
                self.busy_logged = true;
                tracing::info!(
                    "talk ignored: another viewer is talking to the camera (one talker at a time)"
                );
                Some(Floor::Busy)
            }
            Heard::Failed => None,
        }
    }
}

/// A change of a talker's place at the camera's speaker (one talker at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Floor {
    /// Another viewer is talking: this one is not heard (told once per spurt).
    Busy,
    /// Heard again after [`Floor::Busy`].
    Heard,
}

impl Floor {
    /// The data-channel message that tells the viewer (docs/protocol.md "Talk").
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Busy => r#"{"talk":"busy"}"#,
            Self::Heard => r#"{"talk":"heard"}"#,
        }
    }
}

impl Drop for Talker {
    fn drop(&mut self) {
        self.intercom.release(self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A speaker keeping what it plays.
    struct Memory(Arc<Mutex<Vec<i16>>>);

    impl Speaker for Memory {
        fn play(&mut self, pcm: &[i16]) -> io::Result<()> {
            self.0.lock().unwrap().extend_from_slice(pcm);
            Ok(())
        }
    }

    #[test]
    fn h626_6_1_8_one_talker_at_a_time() {
        let played = Arc::new(Mutex::new(Vec::new()));
        let ic = Intercom::new(Box::new(Memory(played.clone())));
        let (a, b) = (ic.talker_id(), ic.talker_id());
        let t0 = Instant::now();
        assert_eq!(ic.hear(a, &[1, 2], t0), Heard::Played);
        assert_eq!(
            ic.hear(b, &[9, 9], t0 + Duration::from_millis(100)),
            Heard::Busy
        );
        assert!(ic.is_talking(a, t0 + Duration::from_millis(100)));
        assert!(!ic.is_talking(b, t0 + Duration::from_millis(100)));
        assert_eq!(
            ic.hear(a, &[3], t0 + Duration::from_millis(200)),
            Heard::Played
        );
        // A pause frees the floor.
        let later = t0 + Duration::from_millis(200) + FLOOR_HOLD;
        assert!(!ic.is_talking(a, later));
        assert_eq!(ic.hear(b, &[4], later), Heard::Played);
        assert_eq!(ic.hear(a, &[9], later), Heard::Busy);
        // So does the end of the session.
        ic.release(b);
        assert_eq!(ic.hear(a, &[5], later), Heard::Played);
        assert_eq!(*played.lock().unwrap(), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn h626_6_1_8_second_talker_is_told_once_per_spurt() {
        let ic = Arc::new(Intercom::new(Box::new(Memory(Arc::default()))));
        let mut a = Talker::new(ic.clone());
        let mut b = Talker::new(ic);
        let tone = [0x55u8; 160];
        assert_eq!(
            a.hear(AudioCodec::Pcmu, 1, &tone),
            None,
            "the first talker is just heard"
        );
        assert_eq!(b.hear(AudioCodec::Pcmu, 1, &tone), Some(Floor::Busy));
        assert_eq!(b.hear(AudioCodec::Pcmu, 2, &tone), None, "told once");
        assert_eq!(Floor::Busy.message(), r#"{"talk":"busy"}"#);
        // The first talker leaves: the second is heard, and told so.
        drop(a);
        assert_eq!(b.hear(AudioCodec::Pcmu, 3, &tone), Some(Floor::Heard));
        assert_eq!(b.hear(AudioCodec::Pcmu, 4, &tone), None);
        assert_eq!(Floor::Heard.message(), r#"{"talk":"heard"}"#);
    }

    #[test]
    fn h626_6_1_8_wav_file_is_valid_while_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("speaker.wav");
        let mut w = WavFile::new(path.clone());
        w.play(&[]).unwrap();
        assert!(!path.exists(), "no file before the first sound");
        w.play(&[0, 1, -1, i16::MAX]).unwrap();
        let check = |samples: &[i16]| {
            let b = std::fs::read(&path).unwrap();
            assert_eq!(&b[0..4], b"RIFF");
            assert_eq!(&b[8..16], b"WAVEfmt ");
            let riff = u32::from_le_bytes(b[4..8].try_into().unwrap());
            assert_eq!(riff as usize, b.len() - 8);
            assert_eq!(u16::from_le_bytes([b[20], b[21]]), 1, "PCM");
            assert_eq!(u16::from_le_bytes([b[22], b[23]]), 1, "mono");
            assert_eq!(u32::from_le_bytes(b[24..28].try_into().unwrap()), 8000);
            assert_eq!(u32::from_le_bytes(b[28..32].try_into().unwrap()), 16_000);
            assert_eq!(u16::from_le_bytes([b[34], b[35]]), 16);
            assert_eq!(&b[36..40], b"data");
            let n = u32::from_le_bytes(b[40..44].try_into().unwrap()) as usize;
            assert_eq!(n, b.len() - 44);
            let got: Vec<i16> = b[44..]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            assert_eq!(got, samples);
        };
        check(&[0, 1, -1, i16::MAX]);
        w.play(&[i16::MIN, 7]).unwrap();
        check(&[0, 1, -1, i16::MAX, i16::MIN, 7]);
        // Without a close: what is on disk is already whole.
        drop(w);
        check(&[0, 1, -1, i16::MAX, i16::MIN, 7]);
    }
}
