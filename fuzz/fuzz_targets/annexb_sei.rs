//! The H.264 byte-level code of `peercam-media` on arbitrary bytes: Annex B and AVCC
//! splitting, the access unit assembler, emulation prevention, SPS and SEI parsing.
//!
//! None of it may panic. Besides:
//! * `unescape(escape(x)) == x`, and escaped data holds no start code;
//! * `split` yields non-empty units free of start codes and trailing zeros, and
//!   `split(join(split(x))) == split(x)`;
//! * the assembler loses nothing: its access units, flattened, are `split(x)`, whether fed
//!   at once or in two pieces cut at the first byte's value;
//! * an SPS that parses has a sane size and a six-digit `profile-level-id`;
//! * a frame tag that parses survives `sei_nal` -> `parse_sei`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_media::annexb::{self, AccessUnitAssembler, NalType};
use peercam_media::sei::{self, parse_sei, sei_nal};
use peercam_media::sps::Sps;

fuzz_target!(|data: &[u8]| {
    let escaped = annexb::escape(data);
    assert_eq!(annexb::unescape(&escaped), data, "unescape(escape(x)) != x");
    assert!(
        !escaped
            .windows(3)
            .any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2),
        "start code or 00 00 00 in escaped data"
    );

    let nals: Vec<&[u8]> = annexb::split(data).collect();
    for nal in &nals {
        assert!(!nal.is_empty() && nal.last() != Some(&0));
        assert!(
            !nal.windows(3).any(|w| w == [0, 0, 1]),
            "start code inside a unit"
        );
        let _ = NalType::of(nal).map(NalType::is_vcl);
        check_nal(nal);
    }
    let joined = annexb::join(&nals);
    assert_eq!(annexb::split(&joined).collect::<Vec<_>>(), nals);
    if let Ok(avcc) = annexb::to_avcc(&nals) {
        assert_eq!(annexb::split_avcc(&avcc, 4).ok(), Some(nals.clone()));
    }
    for size in [1, 2, 3, 4] {
        let _ = annexb::split_avcc(data, size);
    }

    let cut = data
        .first()
        .map_or(0, |b| usize::from(*b) % (data.len() + 1));
    for pieces in [vec![data], vec![&data[..cut], &data[cut..]]] {
        let mut a = AccessUnitAssembler::new();
        for p in pieces {
            a.push(p).expect("input below the size limit");
        }
        a.finish().expect("input below the size limit");
        let mut flat: Vec<Vec<u8>> = Vec::new();
        while let Some(au) = a.pop() {
            assert!(!au.nals.is_empty());
            let _ = (
                au.is_key(),
                au.sps(),
                au.pps(),
                au.frame_info(),
                au.byte_len(),
            );
            flat.extend(au.nals);
        }
        assert_eq!(flat, nals, "the assembler lost or changed units");
    }

    // The whole input as one NAL unit, with an SPS or SEI header forced on.
    check_nal(data);
    for header in [0x67, 0x06] {
        let mut nal = vec![header];
        nal.extend_from_slice(data);
        check_nal(&nal);
    }
    for m in sei::messages(data) {
        let Ok(m) = m else { break };
        assert!(m.payload.len() < data.len());
    }
});

fn check_nal(nal: &[u8]) {
    if let Ok(sps) = Sps::parse(nal) {
        assert!(sps.width >= 1 && sps.width <= sps.coded_width && sps.coded_width <= 65535);
        assert!(sps.height >= 1 && sps.height <= sps.coded_height && sps.coded_height <= 65535);
        assert_eq!(sps.profile_level_id().len(), 6);
        let _ = sps.frame_rate();
    }
    if let Some(info) = parse_sei(nal) {
        assert_eq!(
            parse_sei(&sei_nal(&info)),
            Some(info),
            "frame tag round trip"
        );
    }
}
