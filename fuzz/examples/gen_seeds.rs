//! Writes the seed corpora under `fuzz/seeds/<target>/` from the real encoders, so every seed
//! is a valid message of the current protocol (signatures included).
//!
//! Run from `fuzz/`: `cargo +nightly run --example gen_seeds` (any toolchain works; the
//! output is committed, so this is only needed when the protocol changes).
#![allow(clippy::print_stdout, reason = "a command-line tool")]

use std::fs;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use peercam_base::DeviceId;
use peercam_signal::cmd::{DeviceCommand, DeviceDescription, DeviceReply, DeviceRequest};
use peercam_signal::identity::{BindCode, DeviceIdentity};
use peercam_signal::ps::{DeviceKind, DeviceToScu, RefusalCode, ScuToDevice};
use peercam_signal::register::{encode_nonce, encode_public_key, sign};
use peercam_signal::sc::{
    CmuToScu, CommandOutcome, Kick, Presence, ScuToCmu, Verdict, VerifyDevice,
};
use peercam_signal::token::SessionToken;
use peercam_signal::{Envelope, encode};

fn dir(target: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    fs::create_dir_all(&d).expect("create seeds dir");
    d
}

fn put(target: &str, name: &str, bytes: impl AsRef<[u8]>) {
    let p = dir(target).join(name);
    fs::write(&p, bytes).expect("write seed");
    println!("{}", p.display());
}

fn main() {
    let dev: DeviceId = "pc-0123456789abcdef".parse().expect("id");
    let key = SigningKey::from_bytes(&[0x42; 32]);
    let nonce = encode_nonce(&[0x11; 32]);
    let sig = sign(&key, "scu-1", &dev, &nonce, 1_700_000_000_000);
    let description = DeviceReply::Description(DeviceDescription {
        sw_version: "0.1.0".into(),
        vendor: "Acme".into(),
        model: "C1".into(),
        uptime_s: 3600,
        connected_s: 60,
        clock_offset_us: None,
        clock_jitter_us: None,
    });

    // --- platform_message: one valid frame of every message type.
    let pm = "platform_message";
    put(
        pm,
        "ps_hello.json",
        encode(&Envelope::new(
            1,
            DeviceToScu::Hello {
                device_id: dev.clone(),
                kind: DeviceKind::Pu,
                versions: vec![1],
                sw_version: "0.1.0".into(),
            },
        )),
    );
    put(
        pm,
        "ps_register.json",
        encode(&Envelope::new(
            2,
            DeviceToScu::Register {
                nonce: nonce.clone(),
                signature: sig.clone(),
            },
        )),
    );
    put(
        pm,
        "ps_heartbeat.json",
        encode(&Envelope::new(3, DeviceToScu::Heartbeat)),
    );
    put(
        pm,
        "ps_command_reply.json",
        encode(&Envelope::reply(
            4,
            7,
            DeviceToScu::CommandReply {
                reply: description.clone(),
            },
        )),
    );
    put(
        pm,
        "ps_command_reply_failed.json",
        encode(&Envelope::reply(
            5,
            8,
            DeviceToScu::CommandReply {
                reply: DeviceReply::Failed {
                    code: "busy".into(),
                    message: "try later".into(),
                },
            },
        )),
    );
    put(
        pm,
        "ps_request_storage_full.json",
        encode(&Envelope::new(
            9,
            DeviceToScu::Request {
                request: DeviceRequest::storage_full(dev.clone(), "disk full, oldest deleted"),
            },
        )),
    );
    put(
        pm,
        "ps_challenge.json",
        encode(&Envelope::new(
            1,
            ScuToDevice::Challenge {
                node: "scu-1".into(),
                nonce: nonce.clone(),
                issued_at_ms: 1_700_000_000_000,
            },
        )),
    );
    put(
        pm,
        "ps_registered.json",
        encode(&Envelope::new(
            2,
            ScuToDevice::Registered {
                session: "0123456789abcdef".into(),
                heartbeat_ms: 4000,
            },
        )),
    );
    put(
        pm,
        "ps_refused.json",
        encode(&Envelope::new(
            2,
            ScuToDevice::Refused {
                code: RefusalCode::StaleChallenge,
                message: "the signed nonce is not this connection's challenge".into(),
            },
        )),
    );
    put(
        pm,
        "ps_heartbeat_ack.json",
        encode(&Envelope::new(3, ScuToDevice::HeartbeatAck)),
    );
    put(
        pm,
        "ps_command.json",
        encode(&Envelope::new(
            7,
            ScuToDevice::Command {
                command: DeviceCommand::Describe,
            },
        )),
    );
    put(
        pm,
        "ps_bye.json",
        encode(&Envelope::new(
            9,
            ScuToDevice::Bye {
                reason: "replaced".into(),
            },
        )),
    );
    put(
        pm,
        "sc_node_hello.json",
        encode(&Envelope::new(
            1,
            ScuToCmu::NodeHello {
                node: "scu-1".into(),
                secret: "node-secret".into(),
                versions: vec![1],
            },
        )),
    );
    put(
        pm,
        "sc_verify_device.json",
        encode(&Envelope::new(
            2,
            ScuToCmu::VerifyDevice(VerifyDevice {
                device_id: dev.clone(),
                kind: DeviceKind::Nvr,
                node: "scu-1".into(),
                nonce: nonce.clone(),
                issued_at_ms: 1_700_000_000_000,
                signature: sig.clone(),
                session: "0123456789abcdef".into(),
                sw_version: "0.1.0".into(),
            }),
        )),
    );
    put(
        pm,
        "sc_presence.json",
        encode(&Envelope::new(
            3,
            ScuToCmu::Presence(Presence {
                device_id: dev.clone(),
                session: "0123456789abcdef".into(),
                online: true,
            }),
        )),
    );
    put(
        pm,
        "sc_command_result.json",
        encode(&Envelope::reply(
            4,
            5,
            ScuToCmu::CommandResult {
                result: CommandOutcome::Replied {
                    reply: description.clone(),
                },
            },
        )),
    );
    put(
        pm,
        "sc_command_result_timeout.json",
        encode(&Envelope::reply(
            6,
            5,
            ScuToCmu::CommandResult {
                result: CommandOutcome::Timeout,
            },
        )),
    );
    put(
        pm,
        "sm_node_welcome.json",
        encode(&Envelope::reply(1, 1, CmuToScu::NodeWelcome)),
    );
    put(
        pm,
        "sm_node_refused.json",
        encode(&Envelope::reply(
            1,
            1,
            CmuToScu::NodeRefused {
                message: "bad secret".into(),
            },
        )),
    );
    put(
        pm,
        "sm_verdict_accepted.json",
        encode(&Envelope::reply(
            2,
            2,
            CmuToScu::DeviceVerdict {
                verdict: Verdict::Accepted,
            },
        )),
    );
    put(
        pm,
        "sm_verdict_refused.json",
        encode(&Envelope::reply(
            2,
            2,
            CmuToScu::DeviceVerdict {
                verdict: Verdict::Refused {
                    code: RefusalCode::Disabled,
                    message: "disabled".into(),
                },
            },
        )),
    );
    put(
        pm,
        "sm_command.json",
        encode(&Envelope::new(
            5,
            CmuToScu::Command {
                device_id: dev.clone(),
                command: DeviceCommand::Describe,
            },
        )),
    );
    put(
        pm,
        "sm_kick.json",
        encode(&Envelope::new(
            6,
            CmuToScu::Kick(Kick {
                device_id: dev.clone(),
                session: "0123456789abcdef".into(),
                reason: "revoked".into(),
            }),
        )),
    );

    // --- identity: real files from the encoder, plus bind codes as people type them.
    let id = "identity";
    let ident = DeviceIdentity::new(
        dev.clone(),
        DeviceKind::Pu,
        "Acme".into(),
        "C1".into(),
        &key,
        BindCode::parse("ABCD-EFGH-JKMN").expect("code"),
    );
    put(id, "pu.toml", ident.to_toml());
    let nvr = DeviceIdentity::new(
        DeviceId::from_random([0xa5; 10]),
        DeviceKind::Nvr,
        "Vendor \"quoted\" \u{e9}".into(),
        "N-8".into(),
        &SigningKey::from_bytes(&[7; 32]),
        BindCode::from_random([1, 2, 3, 4, 5, 6, 7, 8]),
    );
    put(id, "nvr.toml", nvr.to_toml());
    put(id, "bind_code.txt", "ABCD-EFGH-JKMN");
    put(id, "bind_code_typed.txt", "abcd efgh jkmn");
    put(id, "bind_code_lookalikes.txt", "0I2L-4O67-89AB");

    // --- token: one valid text for each parser.
    let tk = "token";
    put(
        tk,
        "session_token.txt",
        SessionToken::from_random([0x33; 32]).reveal(),
    );
    put(
        tk,
        "public_key.txt",
        encode_public_key(&key.verifying_key()),
    );
    put(tk, "nonce.txt", &nonce);
    put(tk, "device_id.txt", "PC-0123456789ABCDEF");
    put(tk, "phone.txt", "+44 20 7946-0958");
    put(tk, "node_id.txt", "scu-1.eu_west");
    put(tk, "scope.txt", "playback");

    // --- register_verify: seed, then a signature text or 0xFF and an XOR mask.
    let rv = "register_verify";
    let fixed_nonce = encode_nonce(&[0x5a; 32]);
    for (name, seed) in [("genuine_a", [0x42u8; 32]), ("genuine_b", [0x01; 32])] {
        let k = SigningKey::from_bytes(&seed);
        let s = sign(&k, "scu-1", &dev, &fixed_nonce, 1_700_000_000_000);
        let mut v = seed.to_vec();
        v.extend_from_slice(s.as_bytes());
        put(rv, &format!("{name}.bin"), v);
    }
    let mut genuine_mask = vec![0x42; 32];
    genuine_mask.push(0xff);
    genuine_mask.extend_from_slice(&[0; 64]);
    put(rv, "mask_zero.bin", &genuine_mask);
    let mut flip = vec![0x42; 32];
    flip.push(0xff);
    flip.extend_from_slice(&[0; 31]);
    flip.push(0x80);
    put(rv, "mask_bit_flip.bin", flip);
    let mut text = vec![0x42; 32];
    text.extend_from_slice(&sig.as_bytes()[..sig.len() - 1]);
    put(rv, "truncated.bin", text);

    // --- scu_peer_sequence: header [heartbeat, dead_after], steps [op, dt, payload] split
    // on 0x00 (so op 0 is written 8, and dt is never 0).
    let sq = "scu_peer_sequence";
    let steps = |steps: &[&[u8]]| -> Vec<u8> {
        let mut v = vec![15u8, 39];
        for s in steps {
            v.push(0);
            v.extend_from_slice(s);
        }
        v
    };
    let with = |op: u8, dt: u8, frame: &[u8]| -> Vec<u8> {
        let mut v = vec![op, dt];
        v.extend_from_slice(frame);
        v
    };
    // The honest registration through both state machines, heartbeats, a command, a kick.
    put(
        sq,
        "honest.bin",
        steps(&[
            &[2, 1],
            &[3, 1, 3, 1, b's', b'1'],
            &[2, 1],
            &[7, 30],
            &[2, 1],
            &[4, 1],
            &[2, 1],
            &[6, 1, b'x'],
            &[2, 1],
            &[5, 1, b'b', b'y', b'e'],
            &[2, 1],
        ]),
    );
    // Registration accepted, then the wire goes quiet until both sides time out.
    put(
        sq,
        "silence.bin",
        steps(&[
            &[2, 1],
            &[3, 1, 1, 1, b's'],
            &[2, 1],
            &[7, 255],
            &[7, 255],
            &[2, 1],
        ]),
    );
    // Refused verdict.
    put(
        sq,
        "refused.bin",
        steps(&[&[2, 1], &[3, 1, 2, 6, b'n', b'o'], &[2, 1]]),
    );
    // Frames injected by hand into each side.
    let hello = encode(&Envelope::new(
        1,
        DeviceToScu::Hello {
            device_id: dev.clone(),
            kind: DeviceKind::Pu,
            versions: vec![1],
            sw_version: "0.1.0".into(),
        },
    ));
    let register = encode(&Envelope::new(
        2,
        DeviceToScu::Register {
            nonce: nonce.clone(),
            signature: sig.clone(),
        },
    ));
    let heartbeat = encode(&Envelope::new(3, DeviceToScu::Heartbeat));
    put(
        sq,
        "injected_scu.bin",
        steps(&[
            &with(8, 1, &hello),
            &with(8, 1, &register),
            &[3, 1, 3, 1, b's'],
            &with(8, 1, &heartbeat),
            &with(8, 1, br#"{"v":2,"body":{"type":"heartbeat"}}"#),
            &with(8, 1, b"not json"),
        ]),
    );
    let challenge = encode(&Envelope::new(
        1,
        ScuToDevice::Challenge {
            node: "scu-1".into(),
            nonce: nonce.clone(),
            issued_at_ms: 1_700_000_000_000,
        },
    ));
    let registered = encode(&Envelope::new(
        2,
        ScuToDevice::Registered {
            session: "s".into(),
            heartbeat_ms: 500,
        },
    ));
    let command = encode(&Envelope::new(
        3,
        ScuToDevice::Command {
            command: DeviceCommand::Describe,
        },
    ));
    let bye = encode(&Envelope::new(
        4,
        ScuToDevice::Bye {
            reason: "replaced".into(),
        },
    ));
    put(
        sq,
        "injected_dev.bin",
        steps(&[
            &with(1, 1, &challenge),
            &with(1, 1, &registered),
            &[7, 10],
            &with(1, 1, &command),
            &[6, 1, 2],
            &with(1, 1, &bye),
            &with(1, 1, &challenge),
        ]),
    );
}
