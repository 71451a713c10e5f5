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
