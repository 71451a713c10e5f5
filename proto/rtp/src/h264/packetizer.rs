//! Access units to RTP payloads (RFC 6184 5.6-5.8, packetization mode 1).

use super::{NAL_FU_A, NAL_STAP_A, nal_type};
use crate::packet::FIXED_HEADER_LEN;
use crate::{Error, Payload};

/// Splits H.264 access units into RTP payloads of at most a fixed size.
///
/// Each NAL unit that is larger than the payload size is sent as FU-A fragments of nearly
/// equal size; runs of consecutive NAL units that fit together go in one STAP-A; any other
/// NAL unit goes alone. NAL units keep their order, so the depacketizer rebuilds exactly
/// the access unit that went in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct H264Packetizer {
    max_payload: usize,
}

impl Default for H264Packetizer {
    /// A packetizer with [`DEFAULT_MAX_PAYLOAD`](Self::DEFAULT_MAX_PAYLOAD).
    fn default() -> Self {
        Self {
            max_payload: Self::DEFAULT_MAX_PAYLOAD,
        }
    }
}

impl H264Packetizer {
    /// The default payload size: 1200 bytes leaves room for RTP, UDP, IP and a tunnel or
    /// TURN relay under a 1500-byte Ethernet MTU.
    pub const DEFAULT_MAX_PAYLOAD: usize = 1200;

    /// The smallest payload size: an FU-A needs two header bytes and one byte of data.
    pub const MIN_MAX_PAYLOAD: usize = 3;

    /// The largest payload size: an RTP packet with the fixed header must fit the 16-bit
    /// length of an RTSP interleaved frame (RFC 2326 10.12).
    pub const MAX_MAX_PAYLOAD: usize = u16::MAX as usize - FIXED_HEADER_LEN;

    /// A packetizer whose payloads hold at most `max_payload` bytes, between
    /// [`MIN_MAX_PAYLOAD`](Self::MIN_MAX_PAYLOAD) and [`MAX_MAX_PAYLOAD`](Self::MAX_MAX_PAYLOAD).
    pub fn new(max_payload: usize) -> Result<Self, Error> {
        if !(Self::MIN_MAX_PAYLOAD..=Self::MAX_MAX_PAYLOAD).contains(&max_payload) {
            return Err(Error::Unrepresentable {
                context: "H.264 packetizer",
                reason: "payload size outside 3..=65523 bytes",
            });
        }
        Ok(Self { max_payload })
    }

    /// The largest payload this packetizer produces, in bytes.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Packetizes one access unit: `nals` without start codes, in decoding order, and its
    /// 90 kHz media timestamp. The last payload has the marker bit.
    ///
    /// Fails when `nals` is empty, or a NAL unit is empty or has a type outside 1..=23 (0
    /// is unspecified; 24..=31 are RTP payload structures, not NAL units).
    pub fn packetize<N: AsRef<[u8]>>(
        &self,
        nals: &[N],
        timestamp: u32,
    ) -> Result<Vec<Payload>, Error> {
        let mut out = Vec::new();
        self.packetize_into(nals, timestamp, &mut out)?;
        Ok(out)
    }

    /// Like [`packetize`](Self::packetize) but appends to `out`. On error, appends nothing.
    pub fn packetize_into<N: AsRef<[u8]>>(
        &self,
        nals: &[N],
        timestamp: u32,
        out: &mut Vec<Payload>,
    ) -> Result<(), Error> {
        if nals.is_empty() {
            return Err(unrepresentable("access unit without NAL units"));
        }
        for nal in nals {
            match nal.as_ref().first() {
                None => return Err(unrepresentable("empty NAL unit")),
                Some(&h) if !(1..=23).contains(&nal_type(h)) => {
                    return Err(unrepresentable("NAL unit type outside 1..=23"));
                }
                Some(_) => {}
            }
        }
        let first = out.len();
        let max = self.max_payload;
        let mut push = |data: Vec<u8>| {
            out.push(Payload {
                data,
                timestamp,
                marker: false,
            });
        };
        let mut i = 0;
        while let Some(nal) = nals.get(i) {
            let nal = nal.as_ref();
            i += 1;
            if nal.len() > max {
                fragment(nal, max, &mut push);
                continue;
            }
            // Gather the following NAL units while the STAP-A still fits.
            let mut size = 1 + 2 + nal.len();
            let mut end = i;
            while let Some(next) = nals.get(end) {
                let grown = size + 2 + next.as_ref().len();
                if grown > max {
                    break;
                }
                size = grown;
                end += 1;
            }
            if end == i {
                push(nal.to_vec());
                continue;
            }
            let group = std::iter::once(nal).chain(nals[i..end].iter().map(AsRef::as_ref));
            let mut data = Vec::with_capacity(size);
            data.push(NAL_STAP_A);
            let (mut f, mut nri) = (0, 0);
            for n in group {
                f |= n[0] & 0x80;
                nri = nri.max(n[0] & 0x60);
                // Fits in u16: n.len() < max <= MAX_MAX_PAYLOAD.
                data.extend_from_slice(&(n.len() as u16).to_be_bytes());
                data.extend_from_slice(n);
            }
            // The F bit is the OR of the units' F bits, the NRI their maximum (RFC 6184 5.7.1).
            data[0] = f | nri | NAL_STAP_A;
            push(data);
            i = end;
        }
        if let Some(last) = out.get_mut(first..).and_then(<[Payload]>::last_mut) {
            last.marker = true;
        }
        Ok(())
    }
}

/// Splits `nal` (longer than `max`) into FU-A payloads of at most `max` bytes.
fn fragment(nal: &[u8], max: usize, push: &mut impl FnMut(Vec<u8>)) {
    let header = nal[0];
    let indicator = (header & 0xe0) | NAL_FU_A;
    let data = &nal[1..];
    // Spread the bytes evenly rather than leave a runt at the end. There are at least two
    // fragments since data.len() >= max > max - 2.
    let per = max - 2;
    let count = data.len().div_ceil(per);
    let base = data.len() / count;
    let extra = data.len() % count;
    let mut pos = 0;
    for k in 0..count {
        let len = base + usize::from(k < extra);
        let mut fu_header = nal_type(header);
        if k == 0 {
            fu_header |= 0x80;
        }
        if k + 1 == count {
            fu_header |= 0x40;
        }
        let mut p = Vec::with_capacity(2 + len);
        p.extend_from_slice(&[indicator, fu_header]);
        p.extend_from_slice(&data[pos..pos + len]);
        push(p);
        pos += len;
    }
}

fn unrepresentable(reason: &'static str) -> Error {
    Error::Unrepresentable {
        context: "H.264 access unit",
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
    const SEI: &[u8] = &[0x06, 0x05, 0x01, 0xaa, 0x80];

    #[test]
    fn aggregates_parameter_sets_then_fragments_the_slice() {
        let mut idr = vec![0x65];
        idr.extend((0..2500u32).map(|i| i as u8));
        let p = H264Packetizer::default()
            .packetize(&[SPS, PPS, SEI, &idr], 3000)
            .unwrap();
        assert_eq!(p.len(), 4);
        // STAP-A: NRI 3 from SPS/PPS, then size-prefixed units.
        let mut stap = vec![0x78, 0, 9];
        stap.extend_from_slice(SPS);
        stap.extend_from_slice(&[0, 4]);
        stap.extend_from_slice(PPS);
        stap.extend_from_slice(&[0, 5]);
        stap.extend_from_slice(SEI);
        assert_eq!(p[0].data, stap);
        // 2500 data bytes in three fragments of 834, 833, 833.
        assert_eq!(&p[1].data[..2], &[0x7c, 0x85]);
        assert_eq!(&p[2].data[..2], &[0x7c, 0x05]);
        assert_eq!(&p[3].data[..2], &[0x7c, 0x45]);
        assert_eq!(
            p.iter().map(|x| x.data.len()).collect::<Vec<_>>(),
            [stap.len(), 836, 835, 835]
        );
        assert_eq!(p[1].data[2..], idr[1..835]);
        assert!(p.iter().all(|x| x.timestamp == 3000));
        assert_eq!(
            p.iter().map(|x| x.marker).collect::<Vec<_>>(),
            [false, false, false, true]
        );
    }

    #[test]
    fn single_nal_units_at_the_limit() {
        let pk = H264Packetizer::new(10).unwrap();
        let exact = [0x41; 10];
        let p = pk.packetize(&[&exact[..]], 0).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].data, exact);
        assert!(p[0].marker);
        // Two 4-byte units fit a STAP-A exactly (1 + 2 + 4 + 2 + 4 = 13 > 10: they don't).
        let p = pk.packetize(&[&[0x41; 4][..], &[0x41; 4]], 0).unwrap();
        assert_eq!(p.len(), 2);
        // 1 + 2 + 3 + 2 + 2 = 10: they do.
        let p = pk.packetize(&[&[0x41; 3][..], &[0x01; 2]], 0).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].data, [0x58, 0, 3, 0x41, 0x41, 0x41, 0, 2, 0x01, 0x01]);
        // An 11-byte unit at MTU 3: ten 1-byte fragments.
        let tiny = H264Packetizer::new(3).unwrap();
        let p = tiny.packetize(&[&[0x65; 11][..]], 0).unwrap();
        assert_eq!(p.len(), 10);
        assert!(p.iter().all(|x| x.data.len() == 3));
    }

    #[test]
    fn refuses_bad_input() {
        let pk = H264Packetizer::default();
        let none: [&[u8]; 0] = [];
        assert!(pk.packetize(&none, 0).is_err());
        assert!(pk.packetize(&[&[][..]], 0).is_err());
        assert!(pk.packetize(&[&[0x7c, 0x85][..]], 0).is_err());
        assert!(pk.packetize(&[&[0x00][..]], 0).is_err());
        assert!(H264Packetizer::new(2).is_err());
        assert!(H264Packetizer::new(65_524).is_err());
        assert!(H264Packetizer::new(65_523).is_ok());
    }
}
