//! Writes the seed corpora of the cloud storage targets (`cloud_grant`, `cloud_object`,
//! `cloud_envelope`) under `fuzz/seeds/<target>/` from the real encoders of `peercam-cloud`,
//! so every seed is a valid grant, key, object or envelope of the current formats.
//!
//! Run from `fuzz/`: `cargo +nightly run --example cloud_seeds` (the output is committed, so
//! this is only needed when a format changes).
#![allow(clippy::print_stdout, reason = "a command-line tool")]

use std::fs;
use std::path::Path;

use ed25519_dalek::SigningKey;

fn put(target: &str, name: &str, bytes: impl AsRef<[u8]>) {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    fs::create_dir_all(&d).expect("create seeds dir");
    let p = d.join(name);
    fs::write(&p, bytes).expect("write seed");
    println!("{}", p.display());
}

fn main() {
    use peercam_cloud::envelope::seal;
    use peercam_cloud::grant::{Claims, Kind, Op, Ops, VERSION, sign as sign_grant};
    use peercam_cloud::object::{AudioCodec, Object, build::segment};
    use peercam_cloud::{ObjectKey, Prefix, SegmentKey};

    let prefix = Prefix::from_bytes([0x24; 16]);
    let cmu = SigningKey::from_bytes(&[0x42; 32]);
    let device = Claims {
        v: VERSION,
        aud: "cs-1".into(),
        kind: Kind::Device,
        sub: "pc-0123456789abcdef".into(),
        pfx: prefix,
        ops: Ops::of(&[Op::Put, Op::Prune, Op::State]),
        from_ms: None,
        to_ms: None,
        iat: 1_700_000_000,
        exp: 1_700_000_900,
        epoch: 1,
        jti: "j-1".into(),
        kid: "g1".into(),
    };
    let viewer = Claims {
        kind: Kind::Viewer,
        sub: "alice".into(),
        ops: Ops::of(&[Op::Read]),
        from_ms: Some(1_700_000_000_000),
        to_ms: Some(1_700_000_600_000),
        exp: 1_700_000_300,
        ..device.clone()
    };
    let cg = "cloud_grant";
    put(cg, "device.txt", sign_grant(&device, &cmu).expect("sign"));
    put(cg, "viewer.txt", sign_grant(&viewer, &cmu).expect("sign"));
    let key = SegmentKey::new(prefix, 1_700_000_000_123, 42).expect("key");
    put(cg, "segment_key.txt", key.to_string());
    put(
        cg,
        "manifest_key.txt",
        format!("{prefix}/2023/11/14/manifest"),
    );
    put(cg, "clip_key.txt", format!("{prefix}/clips/c-1.mp4"));
    assert!(
        format!("{prefix}/clips/c-1.mp4")
            .parse::<ObjectKey>()
            .is_ok()
    );

    let t0 = 1_700_000_000_000 * 90;
    let obj = Object {
        prefix,
        seq: 42,
        audio: Some(AudioCodec::Pcma),
        sps: vec![0x67, 0x42, 0xc0, 0x1f],
        pps: vec![0x68, 0xce, 0x3c, 0x80],
        segments: vec![
            segment(t0, 5, 40, true),
            segment(t0 + 5 * 3600, 3, 30, true),
        ],
    };
    let one = Object {
        audio: None,
        segments: vec![segment(t0, 2, 20, false)],
        ..obj.clone()
    };
    let co = "cloud_object";
    put(co, "two_segments.bin", obj.encode().expect("object"));
    put(co, "one_segment.bin", one.encode().expect("object"));

    let ce = "cloud_envelope";
    let dek = [0x5a; 32];
    put(
        ce,
        "empty.bin",
        seal(&dek, "k1", [1; 32], b"").expect("seal"),
    );
    put(
        ce,
        "object.bin",
        seal(&dek, "k1", [2; 32], &one.encode().expect("object")).expect("seal"),
    );
    let two_chunks: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
    put(
        ce,
        "two_chunks.bin",
        seal(&dek, "k1", [3; 32], &two_chunks).expect("seal"),
    );
}
