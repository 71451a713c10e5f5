//! The H.264 Annex B byte stream: NAL units separated by `00 00 01` or `00 00 00 01`.

/// Iterates over the NAL units of an Annex B byte stream, without their start codes.
///
/// Bytes before the first start code are skipped, as are zero bytes before a start code
/// (`trailing_zero_8bits`, the extra zero of a 4-byte start code) and empty NAL units. A NAL
/// unit never ends in a zero byte (H.264 7.4.1), so nothing of a NAL unit is lost. Emulation
/// prevention bytes are left in place: the slices are NAL units as RTP carries them.
pub fn split_annex_b(stream: &[u8]) -> AnnexB<'_> {
    AnnexB {
        stream,
        next: find_start_code(stream, 0).map(|(_, after)| after),
    }
}

/// Appends `nals` to `out` as an Annex B byte stream with 4-byte start codes.
pub fn write_annex_b<N: AsRef<[u8]>>(nals: &[N], out: &mut Vec<u8>) {
    for nal in nals {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal.as_ref());
    }
}

/// The iterator returned by [`split_annex_b`].
#[derive(Clone, Debug)]
pub struct AnnexB<'a> {
    stream: &'a [u8],
    /// Where the next NAL unit starts, just after a start code.
    next: Option<usize>,
}

impl<'a> Iterator for AnnexB<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let start = self.next?;
            let end = match find_start_code(self.stream, start) {
                Some((code, after)) => {
                    self.next = Some(after);
                    code
                }
                None => {
                    self.next = None;
                    self.stream.len()
                }
            };
            let nal = self.stream.get(start..end).unwrap_or_default();
            let trimmed = nal.len() - nal.iter().rev().take_while(|&&b| b == 0).count();
            if trimmed > 0 {
                return Some(&nal[..trimmed]);
            }
        }
    }
}

impl std::iter::FusedIterator for AnnexB<'_> {}

/// Finds the first `00 00 01` at or after `from`: its position and the position after it.
fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(w) = data.get(i..i + 3) {
        if w[2] > 1 {
            // No start code can begin at i, i + 1 or i + 2.
            i += 3;
        } else if w == [0, 0, 1] {
            return Some((i, i + 3));
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let stream = [
            0xff, // junk before the first start code
            0, 0, 0, 1, 0x67, 0x42, 0x00, 0x1f, // SPS, 4-byte start code
            0, 0, 1, 0x68, 0xce, // PPS, 3-byte start code
            0, 0, 0, 0, 1, // trailing zero, empty NAL units
            0, 0, 1, 0x65, 0x88, 0x00, 0x00, 0x03, 0x01, // IDR with emulation prevention
            0, 0, // trailing zeros at the end
        ];
        let nals: Vec<&[u8]> = split_annex_b(&stream).collect();
        assert_eq!(
            nals,
            [
                &[0x67, 0x42, 0x00, 0x1f][..],
                &[0x68, 0xce],
                &[0x65, 0x88, 0x00, 0x00, 0x03, 0x01]
            ]
        );
        assert_eq!(split_annex_b(&[]).count(), 0);
        assert_eq!(split_annex_b(&[0x65, 1, 2]).count(), 0);
        assert_eq!(split_annex_b(&[0, 0, 1]).count(), 0);
        assert_eq!(split_annex_b(&[0, 0, 1, 9]).collect::<Vec<_>>(), [&[9]]);
    }

    fn nal() -> impl Strategy<Value = Vec<u8>> {
        // NAL units as an encoder writes them: no 00 00 0x (x <= 3) inside, no trailing zero.
        proptest::collection::vec(any::<u8>(), 1..50).prop_map(|mut v| {
            let mut out = Vec::with_capacity(v.len() * 2);
            let mut zeros = 0;
            for b in v.drain(..) {
                if zeros >= 2 && b <= 3 {
                    out.push(3);
                    zeros = 0;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                out.push(b);
            }
            if out.last() == Some(&0) {
                out.push(0x80);
            }
            out
        })
    }

    proptest! {
        #[test]
        fn annex_b_round_trips(nals in proptest::collection::vec(nal(), 0..8)) {
            let mut stream = Vec::new();
            write_annex_b(&nals, &mut stream);
            let back: Vec<Vec<u8>> = split_annex_b(&stream).map(<[u8]>::to_vec).collect();
            prop_assert_eq!(back, nals);
        }

        #[test]
        fn annex_b_never_panics(stream in proptest::collection::vec(0u8..3, 0..64)) {
            let total: usize = split_annex_b(&stream).map(<[u8]>::len).sum();
            prop_assert!(total <= stream.len());
        }
    }
}
