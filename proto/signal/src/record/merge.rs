//! One timeline over several recorders (H.626.4 6.3.2; docs/design/cloud-storage.md "One
//! timeline over SD card, NVR and cloud"): the record lists of a camera's recorders merged
//! into spans that each name the recorders holding them.
//!
//! A sweep over every span's start and end gives intervals with a constant set of holders;
//! touching neighbours with the same set and back-fill flag join. Gaps are never bridged,
//! so a moment is inside an output span naming a source exactly when an input span of that
//! source covered it (the recorders already join their own spans across short gaps).

use std::collections::BTreeSet;

use peercam_base::DeviceId;
use serde::{Deserialize, Serialize};

use super::{RecordedEvent, RecordingList};

/// Most sources one timeline merges.
pub const MAX_SOURCES: usize = 16;
/// Most spans one source contributes (the rest are ignored; a list of a 31-day range has far
/// fewer).
pub const MAX_SPANS_PER_SOURCE: usize = 100_000;

/// A stretch of the merged timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineSpan {
    /// Start, Unix ms.
    pub start_ms: u64,
    /// End, Unix ms.
    pub end_ms: u64,
    /// Bytes, the sources' shares of this stretch added (an estimate: each input span's
    /// bytes spread evenly over its time).
    pub bytes: u64,
    /// The recorders holding all of it, in play order (nearest first): `sd`, `nvr:<id>`,
    /// `cloud`.
    pub sources: Vec<String>,
    /// Some of it reached a recorder late, back-filled after an outage.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backfilled: bool,
}

/// How one recorder answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecorderAnswer {
    /// The source name (`sd`, `nvr:<id>`, `cloud`).
    pub recorder: String,
    /// `ok`, or why its spans are missing (`unreachable`, `refused`).
    pub state: String,
}

/// A camera's merged timeline: `spans` and `events` as in a [`RecordingList`] (old clients
/// read it as one), plus each span's sources and how each recorder answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Timeline {
    /// The camera.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub camera: DeviceId,
    /// The range asked, Unix ms.
    pub from_ms: u64,
    /// End of the range, Unix ms.
    pub to_ms: u64,
    /// Merged spans, clipped to the range, oldest first, never overlapping.
    pub spans: Vec<TimelineSpan>,
    /// Every recorder's events in the range, oldest first, without duplicates.
    pub events: Vec<RecordedEvent>,
    /// How each recorder answered, in play order.
    pub recorders: Vec<RecorderAnswer>,
}

/// Merges the lists of `inputs` (source name and its list, in play order, nearest first)
/// over `[from_ms, to_ms)`. A source named twice counts once, at its first place; more than
/// [`MAX_SOURCES`] are ignored. `recorders` is left empty for the caller.
pub fn merge(
    camera: DeviceId,
    from_ms: u64,
    to_ms: u64,
    inputs: &[(String, RecordingList)],
) -> Timeline {
    // Sources in play order, each once.
    let mut names: Vec<&str> = Vec::new();
    let mut lists: Vec<Vec<&RecordingList>> = Vec::new();
    for (name, list) in inputs {
        match names.iter().position(|n| n == name) {
            Some(i) => lists[i].push(list),
            None if names.len() < MAX_SOURCES => {
                names.push(name);
                lists.push(vec![list]);
            }
            None => {}
        }
    }
    // Clipped input spans: (start, end, source, bytes per ms, backfilled).
    struct In {
        start: u64,
        end: u64,
        source: usize,
        bytes: u64,
        len: u64,
        backfilled: bool,
    }
    let mut spans: Vec<In> = Vec::new();
    for (source, ls) in lists.iter().enumerate() {
        for s in ls
            .iter()
            .flat_map(|l| l.spans.iter())
            .take(MAX_SPANS_PER_SOURCE)
        {
            let (a, b) = (s.start_ms.max(from_ms), s.end_ms.min(to_ms));
            if a < b {
                spans.push(In {
                    start: a,
                    end: b,
                    source,
                    bytes: s.bytes,
                    len: s.end_ms.saturating_sub(s.start_ms).max(1),
                    backfilled: s.backfilled,
                });
            }
        }
    }
    let mut points: Vec<u64> = spans.iter().flat_map(|s| [s.start, s.end]).collect();
    points.sort_unstable();
    points.dedup();
    spans.sort_by_key(|s| s.start);
    // The sweep: `active` holds the spans covering the current interval.
    let mut active: Vec<usize> = Vec::new();
    let mut next = 0;
    let mut out: Vec<TimelineSpan> = Vec::new();
    for w in points.windows(2) {
        let (a, b) = (w[0], w[1]);
        active.retain(|&i| spans[i].end > a);
        while next < spans.len() && spans[next].start <= a {
            active.push(next);
            next += 1;
        }
        let mut holders = BTreeSet::new();
        let (mut bytes, mut backfilled) = (0u64, false);
        for s in active.iter().map(|&i| &spans[i]) {
            holders.insert(s.source);
            backfilled |= s.backfilled;
            let share = u128::from(s.bytes) * u128::from(b - a) / u128::from(s.len);
            bytes = bytes.saturating_add(u64::try_from(share).unwrap_or(u64::MAX));
        }
        if holders.is_empty() {
            continue;
        }
        let sources: Vec<String> = holders.iter().map(|&i| names[i].to_owned()).collect();
        match out.last_mut() {
            Some(last)
                if last.end_ms == a && last.sources == sources && last.backfilled == backfilled =>
            {
                last.end_ms = b;
                last.bytes = last.bytes.saturating_add(bytes);
            }
            _ => out.push(TimelineSpan {
                start_ms: a,
                end_ms: b,
                bytes,
                sources,
                backfilled,
            }),
        }
    }
    let mut events: Vec<RecordedEvent> = lists
        .iter()
        .flatten()
        .flat_map(|l| l.events.iter())
        .filter(|e| (from_ms..to_ms).contains(&e.at_ms))
        .cloned()
        .collect();
    events.sort_by(|x, y| (x.at_ms, &x.kind, &x.detail).cmp(&(y.at_ms, &y.kind, &y.detail)));
    events.dedup();
    Timeline {
        camera,
        from_ms,
        to_ms,
        spans: out,
        events,
        recorders: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;
    use crate::record::RecordedSpan;

    fn cam() -> DeviceId {
        "pc-0000000000000001".parse().unwrap()
    }

    fn list(spans: &[(u64, u64)], backfilled: bool) -> RecordingList {
        RecordingList {
            camera: cam(),
            from_ms: 0,
            to_ms: u64::MAX,
            spans: spans
                .iter()
                .map(|&(a, b)| RecordedSpan {
                    start_ms: a,
                    end_ms: b,
                    bytes: b - a,
                    backfilled,
                })
                .collect(),
            events: Vec::new(),
        }
    }

    #[test]
    fn h626_6_3_2_merge_names_the_holders_nearest_first() {
        let t = merge(
            cam(),
            0,
            100,
            &[
                ("nvr:a".into(), list(&[(10, 40)], false)),
                ("sd".into(), list(&[(0, 20), (30, 50)], false)),
                ("cloud".into(), list(&[(45, 60)], true)),
            ],
        );
        let got: Vec<(u64, u64, Vec<&str>, bool)> = t
            .spans
            .iter()
            .map(|s| {
                (
                    s.start_ms,
                    s.end_ms,
                    s.sources.iter().map(String::as_str).collect(),
                    s.backfilled,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 10, vec!["sd"], false),
                (10, 20, vec!["nvr:a", "sd"], false),
                (20, 30, vec!["nvr:a"], false),
                (30, 40, vec!["nvr:a", "sd"], false),
                (40, 45, vec!["sd"], false),
                (45, 50, vec!["sd", "cloud"], true),
                (50, 60, vec!["cloud"], true),
            ]
        );
        // Bytes are the shares of the time covered.
        assert_eq!(t.spans.iter().map(|s| s.bytes).sum::<u64>(), 30 + 40 + 15);
        // Touching spans of one source join; the range clips.
        let t = merge(
            cam(),
            5,
            25,
            &[("sd".into(), list(&[(0, 10), (10, 30)], false))],
        );
        assert_eq!(
            (t.spans.len(), t.spans[0].start_ms, t.spans[0].end_ms),
            (1, 5, 25)
        );
        let json = serde_json::to_value(&t).unwrap();
        assert!(json["spans"][0].get("backfilled").is_none());
        // Old clients read a timeline as a record list.
        let old: RecordingList = serde_json::from_value(json).unwrap();
        assert_eq!(old.spans[0].start_ms, 5);
    }

    #[test]
    fn h626_6_3_2_merge_keeps_each_event_once() {
        let ev = |at_ms| RecordedEvent {
            at_ms,
            kind: "alarm".into(),
            detail: "d".into(),
        };
        let mut a = list(&[], false);
        a.events = vec![ev(5), ev(9)];
        let mut b = list(&[], false);
        b.events = vec![ev(9), ev(2), ev(200)];
        let t = merge(cam(), 0, 100, &[("sd".into(), a), ("nvr:x".into(), b)]);
        assert_eq!(
            t.events.iter().map(|e| e.at_ms).collect::<Vec<_>>(),
            [2, 5, 9]
        );
    }

    proptest! {
        /// A moment is in an output span naming S exactly when an input span of S covered
        /// it; output spans never overlap and come in order.
        #[test]
        fn h626_6_3_2_merge_covers_exactly_what_the_inputs_cover(
            raw in proptest::collection::vec(
                (0usize..4, proptest::collection::vec((0u64..200, 1u64..40, any::<bool>()), 0..8)),
                0..6,
            ),
            from in 0u64..100,
            len in 0u64..200,
            probes in proptest::collection::vec(0u64..260, 1..40),
        ) {
            let to = from + len;
            let names = ["sd", "nvr:a", "nvr:b", "cloud"];
            let inputs: Vec<(String, RecordingList)> = raw
                .iter()
                .map(|(n, spans)| {
                    let mut l = list(&[], false);
                    l.spans = spans
                        .iter()
                        .map(|&(a, d, bf)| RecordedSpan { start_ms: a, end_ms: a + d, bytes: d, backfilled: bf })
                        .collect();
                    (names[*n].to_owned(), l)
                })
                .collect();
            let t = merge(cam(), from, to, &inputs);
            for w in t.spans.windows(2) {
                prop_assert!(w[0].end_ms <= w[1].start_ms);
            }
            for s in &t.spans {
                prop_assert!(s.start_ms < s.end_ms && from <= s.start_ms && s.end_ms <= to);
                prop_assert!(!s.sources.is_empty());
            }
            for m in probes {
                let out = t.spans.iter().find(|s| s.start_ms <= m && m < s.end_ms);
                for name in names {
                    let covered = (from..to).contains(&m)
                        && inputs.iter().any(|(n, l)| {
                            n == name && l.spans.iter().any(|s| s.start_ms <= m && m < s.end_ms)
                        });
                    let named = out.is_some_and(|s| s.sources.iter().any(|x| x == name));
                    prop_assert_eq!(covered, named, "moment {} source {}", m, name);
                }
                // Back-filled exactly when a covering input span was.
                if let Some(s) = out {
                    let bf = inputs.iter().any(|(_, l)| {
                        l.spans.iter().any(|x| x.backfilled && x.start_ms <= m && m < x.end_ms)
                    });
                    prop_assert_eq!(s.backfilled, bf);
                }
            }
        }
    }
}
