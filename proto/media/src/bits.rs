//! Bit-level reading of RBSP data: fixed-width fields and exp-Golomb codes (H.264 7.2, 9.1).

use crate::Error;

/// Reads an RBSP (emulation prevention already removed) MSB first.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits.
    pos: usize,
    context: &'static str,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8], context: &'static str) -> Self {
        Self {
            data,
            pos: 0,
            context,
        }
    }

    /// The byte holding the next bit, for error offsets.
    pub(crate) fn byte_pos(&self) -> usize {
        self.pos / 8
    }

    pub(crate) fn bit(&mut self) -> Result<bool, Error> {
        let byte = self
            .data
            .get(self.pos / 8)
            .ok_or_else(|| Error::truncated(self.context, self.pos / 8))?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// `n` bits (0..=32) as an unsigned number: `u(n)`.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, Error> {
        debug_assert!(n <= 32);
        let mut v: u64 = 0;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        Ok(v as u32)
    }

    pub(crate) fn flag(&mut self) -> Result<bool, Error> {
        self.bit()
    }

    /// Unsigned exp-Golomb `ue(v)`; values needing more than 32 bits are invalid.
    pub(crate) fn ue(&mut self) -> Result<u32, Error> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(Error::invalid(
                    self.context,
                    self.byte_pos(),
                    "exp-Golomb code longer than 32 bits",
                ));
            }
        }
        let rest = self.bits(zeros)?;
        // 2^zeros - 1 + rest, at most 2^32 - 2 for zeros = 31.
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    /// Signed exp-Golomb `se(v)`.
    pub(crate) fn se(&mut self) -> Result<i32, Error> {
        let k = i64::from(self.ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        Ok(v as i32)
    }
}

/// Writes RBSP bits MSB first; the inverse of [`BitReader`], for building test streams.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct BitWriter {
    out: Vec<u8>,
    used: u32,
}

#[cfg(test)]
impl BitWriter {
    pub(crate) fn bit(&mut self, b: bool) {
        if self.used.is_multiple_of(8) {
            self.out.push(0);
        }
        if b {
            let last = self.out.len() - 1;
            self.out[last] |= 0x80 >> (self.used % 8);
        }
        self.used += 1;
    }

    pub(crate) fn bits(&mut self, n: u32, v: u32) {
        for i in (0..n).rev() {
            self.bit((v >> i) & 1 == 1);
        }
    }

    pub(crate) fn ue(&mut self, v: u32) {
        let v1 = u64::from(v) + 1;
        let len = 64 - v1.leading_zeros();
        for _ in 1..len {
            self.bit(false);
        }
        for i in (0..len).rev() {
            self.bit((v1 >> i) & 1 == 1);
        }
    }

    pub(crate) fn se(&mut self, v: i32) {
        let k = if v > 0 {
            2 * i64::from(v) - 1
        } else {
            -2 * i64::from(v)
        };
        self.ue(k as u32);
    }

    /// `rbsp_trailing_bits()` and the bytes.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.bit(true);
        while !self.used.is_multiple_of(8) {
            self.bit(false);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn exp_golomb_round_trips(u in any::<u32>().prop_filter("ue max", |u| *u < u32::MAX), s in any::<i32>().prop_filter("se range", |s| *s > i32::MIN), n in 0u32..=32, f in any::<u32>()) {
            let f = if n == 32 { f } else { f & ((1u32 << n) - 1) };
            let mut w = BitWriter::default();
            w.ue(u);
            w.se(s);
            w.bits(n, f);
            let bytes = w.finish();
            let mut r = BitReader::new(&bytes, "test");
            prop_assert_eq!(r.ue().unwrap(), u);
            prop_assert_eq!(r.se().unwrap(), s);
            prop_assert_eq!(r.bits(n).unwrap(), f);
            prop_assert!(r.flag().unwrap(), "trailing stop bit");
        }
    }

    #[test]
    fn overlong_and_truncated_codes_are_errors() {
        let zeros = [0u8; 8];
        assert!(matches!(
            BitReader::new(&zeros, "t").ue(),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            BitReader::new(&[0x00, 0x01], "t").ue(),
            Err(Error::Truncated { .. })
        ));
        let mut r = BitReader::new(&[0b1010_0000], "t");
        assert_eq!(r.ue().unwrap(), 0);
        assert_eq!(r.ue().unwrap(), 1);
    }
}
