//! Talking to a camera from the command line (intercom, H.626.4 6.1.8) over the ONVIF
//! audio back channel: DESCRIBE with `Require: www.onvif.org/ver20/backchannel`, SETUP of the
//! back-channel track over TCP interleaved channels, PLAY, then G.711 RTP packets of 20 ms at
//! real-time pace, and TEARDOWN.

use std::time::Duration;

use peercam_rtp::g711::AudioCodec;
use peercam_signal::relay::MediaPath;

use crate::CuError;
use crate::live::{Puncher, Reached, connect_best};

/// Samples per packet: 20 ms at 8 kHz.
pub const PACKET_SAMPLES: usize = 160;
/// The only sample rate taken: G.711's.
pub const RATE: u32 = 8000;

fn err(msg: impl Into<String>) -> CuError {
    CuError::Media(msg.into())
}

/// Reads a WAV file's samples: 16-bit PCM, mono, 8 kHz. Anything else is refused with what
/// it is and what is needed.
pub fn read_wav(bytes: &[u8]) -> Result<Vec<i16>, CuError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(err("not a WAV file (no RIFF/WAVE header)"));
    }
    let mut at = 12;
    let mut format: Option<(u16, u16, u32, u16)> = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
            as usize;
        let body = bytes
            .get(at + 8..)
            .map(|b| &b[..size.min(b.len())])
            .unwrap_or_default();
        match id {
            b"fmt " => {
                if body.len() < 16 {
                    return Err(err("WAV file: the fmt chunk is too short"));
                }
                let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
                let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                format = Some((u16_at(0), u16_at(2), rate, u16_at(14)));
            }
            b"data" => {
                let Some((tag, channels, rate, bits)) = format else {
                    return Err(err("WAV file: data before the fmt chunk"));
                };
                // 1: PCM; 0xFFFE: WAVE_FORMAT_EXTENSIBLE (PCM in practice for 16 bits).
                if !(tag == 1 || tag == 0xfffe) || bits != 16 {
                    return Err(err(format!(
                        "WAV file: format {tag} with {bits}-bit samples; talk needs 16-bit PCM"
                    )));
                }
                if channels != 1 {
                    return Err(err(format!(
                        "WAV file: {channels} channels; talk needs mono (e.g. `sox in.wav -c 1 -r 8000 -b 16 out.wav`)"
                    )));
                }
                if rate != RATE {
                    return Err(err(format!(
                        "WAV file: {rate} Hz; talk needs 8000 Hz (e.g. `sox in.wav -c 1 -r 8000 -b 16 out.wav`)"
                    )));
                }
                return Ok(body
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect());
            }
            _ => {}
        }
        at = at.saturating_add(8).saturating_add(size + (size & 1));
    }
    Err(err("WAV file: no data chunk"))
}

/// What a talk session did.
#[derive(Debug, Clone)]
pub struct Talked {
    /// RTP packets sent.
    pub packets: u64,
    /// Audio sent, seconds.
    pub seconds: f64,
    /// The codec used.
    pub codec: AudioCodec,
    /// The path taken.
    pub reached: Reached,
}

/// The RTP packet of one 20 ms chunk.
fn packet(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    p.push(0x80);
    p.push(pt & 0x7f);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Sends `pcm` (8 kHz mono) to the camera over the best of `paths` through its back channel,
/// in 20 ms G.711 packets at real-time pace. `progress` is called with the seconds sent so
/// far. A camera that will not take talk from this account answers 551 and this says so.
pub async fn talk(
    paths: &[MediaPath],
    puncher: Option<&Puncher>,
    pcm: &[i16],
    mut progress: impl FnMut(f64),
) -> Result<Talked, CuError> {
    let (mut c, reached) = connect_best(paths, puncher).await?;
    let url = reached.url.clone();
    let base = url.split('?').next().unwrap_or(&url).trim_end_matches('/');
    let d = match c
        .request(
            "DESCRIBE",
            &url,
            &format!(
                "Accept: application/sdp\r\nRequire: {}\r\n",
                peercam_rtsp::BACKCHANNEL_TAG
            ),
        )
        .await
    {
        Ok(d) => d,
        Err(CuError::Media(m)) if m.contains("551") => {
            return Err(err(format!(
                "the camera will not take talk from this account ({m}): the device must be yours or shared with the talk scope, and the camera needs a speaker"
            )));
        }
        Err(e) => return Err(e),
    };
    let sdp = peercam_rtsp::sdp::SessionDescription::parse(&d.body)
        .map_err(|e| err(format!("camera SDP: {e}")))?;
    let (control, codecs) = peercam_rtsp::sdp::find_backchannel(&sdp)
        .ok_or_else(|| err("the camera offers no audio back channel"))?;
    let (pt, codec) = codecs
        .iter()
        .copied()
        .find(|(_, k)| *k == AudioCodec::Pcmu)
        .or_else(|| codecs.iter().copied().find(|(_, k)| k.law().is_some()))
        .ok_or_else(|| err("the camera's back channel takes neither PCMU nor PCMA"))?;
    let law = codec.law().ok_or_else(|| err("not a G.711 codec"))?;
    let track_url = if control.starts_with("rtsp://") {
        control
    } else {
        format!("{base}/{control}")
    };
    // Channels 4-5, as the back channel is track 2 (video, if ever set up, is 0-1).
    c.request(
        "SETUP",
        &track_url,
        "Transport: RTP/AVP/TCP;unicast;interleaved=4-5\r\n",
    )
    .await?;
    c.request("PLAY", &format!("{base}/"), "Range: npt=0.000-\r\n")
        .await?;

    let ssrc = rand::random::<u32>();
    let mut seq = rand::random::<u16>();
    let mut ts = rand::random::<u32>();
    let started = tokio::time::Instant::now();
    let mut packets = 0u64;
    let mut codes = Vec::with_capacity(PACKET_SAMPLES);
    let mut frame = Vec::new();
    for chunk in pcm.chunks(PACKET_SAMPLES) {
        tokio::time::sleep_until(started + Duration::from_millis(20) * packets as u32).await;
        codes.clear();
        law.encode_into(chunk, &mut codes);
        frame.clear();
        peercam_rtsp::write_interleaved(4, &packet(pt, seq, ts, ssrc, &codes), &mut frame)
            .map_err(|e| err(e.to_string()))?;
        c.write_raw(&frame).await?;
        packets += 1;
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(chunk.len() as u32);
        progress(packets as f64 * 0.02);
    }
    // What was sent plays before the session ends.
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.request("TEARDOWN", &format!("{base}/"), "").await?;
    Ok(Talked {
        packets,
        seconds: pcm.len() as f64 / f64::from(RATE),
        codec,
        reached,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(channels: u16, rate: u32, bits: u16, samples: &[i16]) -> Vec<u8> {
        let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut w = b"RIFF".to_vec();
        w.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        w.extend_from_slice(b"WAVEfmt ");
        w.extend_from_slice(&16u32.to_le_bytes());
        w.extend_from_slice(&1u16.to_le_bytes());
        w.extend_from_slice(&channels.to_le_bytes());
        w.extend_from_slice(&rate.to_le_bytes());
        w.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
        w.extend_from_slice(&(channels * 2).to_le_bytes());
        w.extend_from_slice(&bits.to_le_bytes());
        w.extend_from_slice(b"LIST\x03\x00\x00\x00abc\x00");
        w.extend_from_slice(b"data");
        w.extend_from_slice(&(data.len() as u32).to_le_bytes());
        w.extend_from_slice(&data);
        w
    }

    #[test]
    fn wav_reading() {
        assert_eq!(
            read_wav(&wav(1, 8000, 16, &[1, -2, 3])).unwrap(),
            vec![1, -2, 3]
        );
        let e = read_wav(&wav(1, 16000, 16, &[1])).unwrap_err().to_string();
        assert!(e.contains("16000 Hz; talk needs 8000 Hz"), "{e}");
        let e = read_wav(&wav(2, 8000, 16, &[1, 2]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 channels"), "{e}");
        let e = read_wav(&wav(1, 8000, 8, &[1])).unwrap_err().to_string();
        assert!(e.contains("16-bit"), "{e}");
        assert!(read_wav(b"RIFF....WAVX").is_err());
        assert!(read_wav(&wav(1, 8000, 16, &[1])[..40]).is_err());
        // Any truncation is an error or a prefix, never a panic.
        let full = wav(1, 8000, 16, &[5; 100]);
        for n in 0..full.len() {
            if let Ok(p) = read_wav(&full[..n]) {
                assert!(p.len() <= 100);
            }
        }
    }

    #[test]
    fn packets() {
        let p = packet(0, 7, 160, 9, &[0xff; 160]);
        let r = peercam_rtp::RtpPacket::parse(&p).unwrap();
        assert_eq!(
            (r.payload_type(), r.sequence(), r.timestamp(), r.ssrc()),
            (0, 7, 160, 9)
        );
        assert_eq!(r.payload(), &[0xff; 160][..]);
    }
}
