//! The camera's loudspeaker through ALSA (clause 7: the PU's optional audio playback; the
//! intercom of H.626.4 6.1.8), built with the `alsa` feature (it links libasound).
//!
//! ALSA writes block, and [`Speaker::play`] is called from the media path, so the device is
//! driven by a thread of its own fed through a bounded queue: a stuck or slow device drops
//! new sound (counted, logged once per spurt) instead of stalling talk or growing memory.
//! An underrun between talk spurts is normal and recovered on the next write.

use std::io;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread;

use alsa::pcm::{Access, Format, HwParams, PCM};
use alsa::{Direction, ValueOr};

use crate::speaker::{SPEAKER_RATE, Speaker};

/// Chunks waiting for the device (talk arrives in 20 ms packets: about 2 s).
const QUEUE: usize = 100;
/// The device's buffer, microseconds: short, so what is said is heard at once.
const BUFFER_US: u32 = 120_000;

/// A speaker playing on an ALSA PCM device (`default`, `plughw:0,0`, ...).
pub struct Alsa {
    tx: SyncSender<Vec<i16>>,
    dropping: bool,
    dropped: u64,
}

fn alsa_err(device: &str) -> impl Fn(alsa::Error) -> io::Error + '_ {
    move |e| io::Error::other(format!("ALSA device {device:?}: {e}"))
}

/// Opens `device` for 16-bit mono playback at [`SPEAKER_RATE`].
fn open_pcm(device: &str) -> io::Result<PCM> {
    let err = alsa_err(device);
    let pcm = PCM::new(device, Direction::Playback, false).map_err(&err)?;
    {
        let hwp = HwParams::any(&pcm).map_err(&err)?;
        hwp.set_channels(1).map_err(&err)?;
        hwp.set_rate(SPEAKER_RATE, ValueOr::Nearest).map_err(&err)?;
        hwp.set_format(Format::s16()).map_err(&err)?;
        hwp.set_access(Access::RWInterleaved).map_err(&err)?;
        hwp.set_buffer_time_near(BUFFER_US, ValueOr::Nearest)
            .map_err(&err)?;
        pcm.hw_params(&hwp).map_err(&err)?;
    }
    let rate = pcm
        .hw_params_current()
        .and_then(|h| h.get_rate())
        .map_err(&err)?;
    if rate != SPEAKER_RATE {
        return Err(io::Error::other(format!(
            "ALSA device {device:?} plays at {rate} Hz, not {SPEAKER_RATE} Hz: name a device \
             that converts (`default` or `plughw:CARD,DEV`)"
        )));
    }
    Ok(pcm)
}

/// Plays chunks until every sender is gone.
fn run(pcm: &PCM, device: &str, rx: &Receiver<Vec<i16>>) {
    for chunk in rx {
        let mut rest: &[i16] = &chunk;
        let mut recovered = false;
        while !rest.is_empty() {
            let written = pcm.io_i16().and_then(|io| io.writei(rest));
            match written {
                Ok(frames) => rest = rest.get(frames..).unwrap_or_default(),
                // An underrun (the talker paused) or a suspended device: prepare and go on.
                Err(e) if !recovered && pcm.try_recover(e, true).is_ok() => recovered = true,
                Err(e) => {
                    tracing::warn!(device, error = %e, "speaker: ALSA write failed; sound dropped");
                    break;
                }
            }
        }
    }
    let _ = pcm.drain();
}

impl Alsa {
    /// Opens `device` and starts the thread that plays on it; fails at once, with the
    /// device's name and ALSA's reason, if it cannot play 16-bit mono at 8 kHz.
    pub fn open(device: &str) -> io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Vec<i16>>(QUEUE);
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        let name = device.to_owned();
        thread::Builder::new()
            .name("speaker-alsa".into())
            .spawn(move || match open_pcm(&name) {
                Ok(pcm) => {
                    let _ = ready_tx.send(Ok(()));
                    run(&pcm, &name, &rx);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })?;
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("the ALSA speaker thread ended before opening"))??;
        tracing::info!(device, "speaker: playing talk on ALSA");
        Ok(Self {
            tx,
            dropping: false,
            dropped: 0,
        })
    }
}

impl Speaker for Alsa {
    fn play(&mut self, pcm: &[i16]) -> io::Result<()> {
        match self.tx.try_send(pcm.to_vec()) {
            Ok(()) => self.dropping = false,
            Err(TrySendError::Full(_)) => {
                self.dropped += 1;
                if !self.dropping {
                    tracing::warn!(
                        dropped = self.dropped,
                        "speaker: the ALSA device is not keeping up; sound dropped"
                    );
                }
                self.dropping = true;
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(io::Error::other("the ALSA speaker thread has stopped"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ALSA's own `file` PCM (alsa.conf: a `null` device that also writes a raw file) is a
    /// real ALSA output that needs no sound card: the tone must arrive sample for sample.
    #[test]
    fn h626_6_1_8_alsa_speaker_plays_the_tone() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("speaker.raw");
        let device = format!("file:FILE={},FORMAT=raw", out.display());
        let tone: Vec<i16> = (0..8000)
            .map(|n| {
                let t = f64::from(n) / f64::from(SPEAKER_RATE);
                #[allow(clippy::cast_possible_truncation)]
                let s = ((2.0 * std::f64::consts::PI * 1000.0 * t).sin() * 8000.0) as i16;
                s
            })
            .collect();
        {
            let mut speaker = Alsa::open(&device).unwrap();
            for chunk in tone.chunks(160) {
                speaker.play(chunk).unwrap();
            }
        } // Dropping the speaker ends the thread, which drains the device.
        let mut raw = Vec::new();
        for _ in 0..100 {
            raw = std::fs::read(&out).unwrap_or_default();
            if raw.len() >= tone.len() * 2 {
                break;
            }
            thread::sleep(std::time::Duration::from_millis(20));
        }
        let got: Vec<i16> = raw
            .chunks_exact(2)
            .map(|b| i16::from_ne_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(got.len(), tone.len(), "every sample reached the device");
        assert_eq!(got, tone);
    }

    #[test]
    fn h626_6_1_8_alsa_speaker_names_a_missing_device() {
        let Err(e) = Alsa::open("hw:77,0") else {
            panic!("a missing card opened")
        };
        assert!(e.to_string().contains("hw:77,0"), "{e}");
    }
}
