//! Reading a recording's playback in tests: whole frames and their SEI frame counters,
//! which show speed, direction and gaps (every test picture carries its counter).

use std::time::Duration;

use peercam_cu::playback::{Playback, Seen};

/// The next `n` frames, each within `per_frame`; panics naming how many came.
pub async fn frames(p: &mut Playback, n: usize, per_frame: Duration) -> Vec<Seen> {
    let mut out = Vec::new();
    while out.len() < n {
        match p.next_frame(per_frame).await.unwrap() {
            Some(s) => out.push(s),
            None => panic!("only {} of {n} frames came", out.len()),
        }
    }
    out
}

/// The SEI frame counters of `s`, in order; panics on a frame without one.
pub fn counters(s: &[Seen]) -> Vec<u64> {
    s.iter()
        .map(|f| f.tag.as_ref().expect("SEI tag").frame)
        .collect()
}

/// ffprobe's count of the video frames it decodes in `file`: a third-party reader of the
/// MP4s the recorders export. Panics with ffprobe's message when it cannot read the file.
pub fn ffprobe_frames(file: &std::path::Path) -> u32 {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe's frame count: {text:?}"))
}
