//! HTTP `Range: bytes=...` of a download (H.626.4 8.7.1 download, design "Download and
//! export"): a resumed download of a cloud export asks for one byte range.

use std::ops::Range;

/// The byte range `value` asks of a body of `len` bytes: `bytes=a-b`, `bytes=a-` or
/// `bytes=-n` (one range; `b` past the end is clamped). `None` when it is not satisfiable
/// or not understood (several ranges, another unit, bad numbers): the server then answers
/// 416.
pub fn byte_range(value: &str, len: u64) -> Option<Range<u64>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let r = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        len.saturating_sub(n)..len
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            len
        } else {
            let last: u64 = b.parse().ok()?;
            if last < start {
                return None;
            }
            last.saturating_add(1).min(len)
        };
        start..end
    };
    (r.start < r.end).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::byte_range;
    use proptest::prelude::*;

    #[test]
    fn h626_8_7_1_byte_ranges() {
        assert_eq!(byte_range("bytes=0-9", 100), Some(0..10));
        assert_eq!(byte_range("bytes=90-", 100), Some(90..100));
        assert_eq!(byte_range("bytes=-10", 100), Some(90..100));
        assert_eq!(byte_range("bytes=95-200", 100), Some(95..100));
        assert_eq!(byte_range("bytes=100-", 100), None);
        assert_eq!(byte_range("bytes=9-3", 100), None);
        assert_eq!(byte_range("bytes=0-1,5-6", 100), None);
        assert_eq!(byte_range("items=0-1", 100), None);
        assert_eq!(byte_range("bytes=-0", 100), None);
    }

    proptest! {
        /// Any range that parses lies inside the body and is not empty; a range printed
        /// from one parses back to itself.
        #[test]
        fn h626_8_7_1_byte_range_is_inside(text in ".{0,40}", len in 0u64..1_000_000) {
            if let Some(r) = byte_range(&text, len) {
                prop_assert!(r.start < r.end && r.end <= len);
            }
        }

        #[test]
        fn h626_8_7_1_byte_range_round_trip(len in 1u64..u64::MAX, a in any::<u64>(), b in any::<u64>()) {
            let (start, last) = (a % len, b % len);
            let (start, last) = (start.min(last), start.max(last));
            let text = format!("bytes={start}-{last}");
            prop_assert_eq!(byte_range(&text, len), Some(start..last + 1));
        }
    }
}
