//! Tones for the talk tests (H.626.4 6.1.8): a sine generator, 16-bit mono WAV files written
//! and read, and Goertzel's single-bin DFT to tell how much of a recording is one tone.

use std::path::Path;

/// `n` samples of a `freq` Hz sine at `rate` Hz, peak `amp`.
pub fn sine(freq: f64, rate: u32, n: usize, amp: f64) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            (amp * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16
        })
        .collect()
}

/// A 16-bit PCM mono WAV file of `pcm` at `rate`.
pub fn wav_bytes(pcm: &[i16], rate: u32) -> Vec<u8> {
    let data = u32::try_from(pcm.len() * 2).expect("WAV under 4 GiB");
    let mut b = Vec::with_capacity(44 + pcm.len() * 2);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data.to_le_bytes());
    for s in pcm {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

/// Reads a 16-bit PCM mono WAV file: its rate and samples. Checks the header's sizes
/// against the file.
pub fn read_wav(path: &Path) -> anyhow::Result<(u32, Vec<i16>)> {
    let b = std::fs::read(path)?;
    anyhow::ensure!(b.len() >= 44, "{} bytes: no WAV header", b.len());
    anyhow::ensure!(
        &b[0..4] == b"RIFF" && &b[8..16] == b"WAVEfmt ",
        "not a WAV file"
    );
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    anyhow::ensure!(
        u16_at(20) == 1 && u16_at(22) == 1 && u16_at(34) == 16,
        "not 16-bit PCM mono"
    );
    anyhow::ensure!(&b[36..40] == b"data", "no data chunk after fmt");
    anyhow::ensure!(
        u32_at(4) as usize == b.len() - 8,
        "RIFF size {} for {} bytes",
        u32_at(4),
        b.len()
    );
    anyhow::ensure!(
        u32_at(40) as usize == b.len() - 44,
        "data size {} for {} bytes",
        u32_at(40),
        b.len()
    );
    let pcm = b[44..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    Ok((u32_at(24), pcm))
}

/// The power of `pcm` (sampled at `rate`) at `freq` Hz, by Goertzel's algorithm, per sample
/// squared (a full-scale sine of amplitude A gives about A²/4).
pub fn power_at(pcm: &[i16], rate: u32, freq: f64) -> f64 {
    if pcm.is_empty() {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in pcm {
        let s = f64::from(x) + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let n = pcm.len() as f64;
    (s1 * s1 + s2 * s2 - c * s1 * s2) / (n * n)
}

/// The share (0 to 1) of the signal's energy at `freq`: the median over `pcm`'s 40 ms
/// blocks that are not silent (RMS at least 100) of twice the block's Goertzel power at
/// `freq` over its mean square (a pure tone at `freq` gives 1, one elsewhere almost 0);
/// 0 when every block is silent. Short blocks keep the measure steady when the tone drifts
/// by a few hertz or its phase jumps between talk spurts.
pub fn tone_share(pcm: &[i16], rate: u32, freq: f64) -> f64 {
    let block = (rate / 25) as usize;
    let mut shares: Vec<f64> = pcm
        .chunks_exact(block.max(1))
        .filter(|b| rms(b) >= 100.0)
        .map(|b| 2.0 * power_at(b, rate, freq) / rms(b).powi(2))
        .collect();
    if shares.is_empty() {
        return 0.0;
    }
    shares.sort_by(f64::total_cmp);
    shares[shares.len() / 2]
}

/// The strongest frequency of `pcm` (sampled at `rate`) between 100 Hz and just under half
/// the rate, in 10 Hz steps (Goertzel at each step).
pub fn dominant_hz(pcm: &[i16], rate: u32) -> u32 {
    let top = (rate / 2).saturating_sub(100) / 10;
    (10..=top.max(10))
        .map(|k| k * 10)
        .max_by(|a, b| {
            power_at(pcm, rate, f64::from(*a)).total_cmp(&power_at(pcm, rate, f64::from(*b)))
        })
        .unwrap_or(0)
}

/// The root mean square of `pcm`.
pub fn rms(pcm: &[i16]) -> f64 {
    if pcm.is_empty() {
        return 0.0;
    }
    (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goertzel_finds_the_tone() {
        let pcm = sine(1000.0, 8000, 8000, 10_000.0);
        // A²/4 for amplitude A.
        let p = power_at(&pcm, 8000, 1000.0);
        assert!((p - 25e6).abs() < 0.5e6, "{p}");
        assert!(tone_share(&pcm, 8000, 1000.0) > 0.99);
        assert!(tone_share(&pcm, 8000, 440.0) < 0.01);
        // A few hertz off, still found; another tone is not.
        assert!(tone_share(&sine(1003.0, 8000, 8000, 10_000.0), 8000, 1000.0) > 0.9);
        let low = sine(440.0, 8000, 8000, 10_000.0);
        assert!(tone_share(&low, 8000, 1000.0) < 0.01);
        assert!(tone_share(&low, 8000, 440.0) > 0.99);
        // Silence holds no tone.
        assert_eq!(tone_share(&[0; 8000], 8000, 1000.0), 0.0);
        assert_eq!(
            tone_share(&sine(1000.0, 8000, 8000, 50.0), 8000, 1000.0),
            0.0
        );
        assert!((rms(&pcm) - 10_000.0 / 2f64.sqrt()).abs() < 50.0);
    }

    #[test]
    fn dominant_frequency_is_found() {
        assert_eq!(dominant_hz(&sine(1300.0, 8000, 16_000, 8000.0), 8000), 1300);
        assert_eq!(
            dominant_hz(&sine(440.0, 16_000, 16_000, 8000.0), 16_000),
            440
        );
    }

    #[test]
    fn wav_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wav");
        let pcm = sine(1000.0, 48_000, 480, 5000.0);
        std::fs::write(&path, wav_bytes(&pcm, 48_000)).unwrap();
        assert_eq!(read_wav(&path).unwrap(), (48_000, pcm));
    }
}
