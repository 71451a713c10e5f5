//! H.626.4 8.3: UDP hole punching between a CU and a PU behind NATs, in virtual time over
//! the simulated network of `vnet`.
//!
//! # Expected outcome (derived from RFC 4787 and RFC 8445)
//!
//! Host candidates are private, so only the server-reflexive ones (and the peer-reflexive
//! ones learned from checks) can work. A site without NAT behaves like an
//! endpoint-independent mapping with endpoint-independent filtering. Write M/F for a
//! site's mapping/filtering behaviour, EI/AD/APD for endpoint-independent,
//! address-dependent, address-and-port-dependent. The STUN server has its own IP, so an
//! AD or APD mapping gives the peer a port different from the server-reflexive one.
//!
//! `S(X, Y)`: X's checks to Y's server-reflexive address get through and the
//! triggered check Y sends back (to the source X's NAT used) completes both ways:
//!
//! - If Y's mapping is EI, Y's own checks to X went out of the very mapping X targets, so
//!   Y's NAT admits X's check when Y filters EI or AD, or when Y filters APD and X's
//!   source port is the one Y sent to, i.e. X's mapping is EI. Y then answers and checks
//!   back from that same mapping, which X's NAT admits (it sent there). So
//!   `S = F_Y in {EI, AD} or M_X = EI`.
//! - If Y's mapping is AD or APD, Y's server-reflexive mapping has only ever sent to the
//!   STUN server, so it admits X's check only with `F_Y = EI`. Y answers and checks back
//!   from a new port, which X's NAT admits only if `F_X` is EI or AD. X answers and
//!   checks Y's new port from the port Y sent to if `M_X` is EI or AD: done. If `M_X` is
//!   APD, X uses yet another port; Y (EI filtering) hears it and answers from the port it
//!   keeps for X's IP if `M_Y = AD`: done one round later; if `M_Y = APD` too, every
//!   answer leaves from a fresh port and the sides chase each other forever. So
//!   `S = F_Y = EI and F_X != APD and (M_X != APD or M_Y = AD)`.
//!
//! Punching works iff `S(A, B) or S(B, A)`. The table (rows: one site, columns: the
//! other, `+` works, `.` relay needed), symmetric:
//!
//! ```text
//!              none  EI/EI EI/AD EI/APD AD/EI AD/AD AD/APD APD/EI APD/AD APD/APD
//! none          +     +     +     +      +     +     +      +      +      +
//! EI/EI         +     +     +     +      +     +     +      +      +      +
//! EI/AD         +     +     +     +      +     +     +      +      +      +
//! EI/APD        +     +     +     +      .     .     .      .      .      .
//! AD/EI         +     +     +     .      +     +     .      +      +      .
//! AD/AD         +     +     +     .      +     .     .      +      .      .
//! AD/APD        +     +     +     .      .     .     .      .      .      .
//! APD/EI        +     +     +     .      +     +     .      .      .      .
//! APD/AD        +     +     +     .      +     .     .      .      .      .
//! APD/APD       +     +     +     .      .     .     .      .      .      .
//! ```
//!
//! The classic names: full cone = EI/EI, restricted cone = EI/AD, port-restricted cone =
//! EI/APD, symmetric = APD/APD (or AD mapping). Port-restricted vs symmetric (either
//! mapping) and symmetric vs symmetric need the relay, as expected; two AD mappings
//! with EI filtering on one side still meet (the AD side reuses its port per peer IP); `matrix_table_matches_docs`
//! checks that this table is the formula's.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

mod vnet;

use std::net::IpAddr;
use std::time::Duration;

use peercam_ice::{CandidateKind, Event, Failure, Role, State};
use vnet::{Ad, Apd, Ei, NatType, Sim, SimOptions, Site, all_sites, name};

fn norm(s: Site) -> NatType {
    s.unwrap_or(NatType {
        mapping: Ei,
        filtering: Ei,
    })
}

/// `S(X, Y)` of the module docs.
fn reaches(x: NatType, y: NatType) -> bool {
    if y.mapping == Ei {
        matches!(y.filtering, Ei | Ad) || x.mapping == Ei
    } else {
        y.filtering == Ei && x.filtering != Apd && (x.mapping != Apd || y.mapping == Ad)
    }
}

fn expected(a: Site, b: Site) -> bool {
    reaches(norm(a), norm(b)) || reaches(norm(b), norm(a))
}

const DOC_TABLE: &str = "
none          +     +     +     +      +     +     +      +      +      +
EI/EI         +     +     +     +      +     +     +      +      +      +
EI/AD         +     +     +     +      +     +     +      +      +      +
EI/APD        +     +     +     +      .     .     .      .      .      .
AD/EI         +     +     +     .      +     +     .      +      +      .
AD/AD         +     +     +     .      +     .     .      +      .      .
AD/APD        +     +     +     .      .     .     .      .      .      .
APD/EI        +     +     +     .      +     +     .      .      .      .
APD/AD        +     +     +     .      +     .     .      .      .      .
APD/APD       +     +     +     .      .     .     .      .      .      .
";

#[test]
fn matrix_table_matches_docs() {
    let sites = all_sites();
    let rows: Vec<Vec<bool>> = DOC_TABLE
        .trim()
        .lines()
        .map(|l| l.split_whitespace().skip(1).map(|c| c == "+").collect())
        .collect();
    for (i, a) in sites.iter().enumerate() {
        for (j, b) in sites.iter().enumerate() {
            assert_eq!(rows[i][j], expected(*a, *b), "{} x {}", name(*a), name(*b));
        }
    }
}

struct Outcome {
    connected: bool,
    detail: String,
}

fn punch(a: Site, b: Site, o: &SimOptions) -> (Sim, Outcome) {
    let mut sim = Sim::new(a, b, o);
    sim.gather_and_exchange();
    sim.net.loss = o.loss;
    sim.connect(Duration::from_secs(40));
    let ca = sim.peers[0].connected();
    let cb = sim.peers[1].connected();
    let fa = sim.peers[0].failed();
    let fb = sim.peers[1].failed();
    let detail = format!(
        "{} x {}: A {:?} failed {:?}, B {:?} failed {:?}",
        name(a),
        name(b),
        ca.map(|(t, e)| (t - sim.start, e.clone())),
        fa.map(|t| t - sim.start),
        cb.map(|(t, e)| (t - sim.start, e.clone())),
        fb.map(|t| t - sim.start),
    );
    let connected = ca.is_some() && cb.is_some();
    assert!(
        connected || (fa.is_some() && fb.is_some()),
        "neither connected nor cleanly failed: {detail}"
    );
    (sim, Outcome { connected, detail })
}

fn remote_of(e: &Event) -> (std::net::SocketAddr, CandidateKind, CandidateKind) {
    match e {
        Event::Connected {
            remote,
            local_kind,
            remote_kind,
            ..
        } => (*remote, *local_kind, *remote_kind),
        _ => unreachable!(),
    }
}

/// Every NAT type on each side against every NAT type on the other.
#[test]
fn h626_8_3_punch_matrix() {
    let mut mismatches = Vec::new();
    let mut table = String::new();
    for a in all_sites() {
        table.push_str(&format!("{:<14}", name(a)));
        for b in all_sites() {
            let (sim, out) = punch(a, b, &SimOptions::default());
            table.push_str(if out.connected { " +" } else { " ." });
            if out.connected != expected(a, b) {
                mismatches.push(out.detail.clone());
                continue;
            }
            if out.connected {
                // Each side talks to the other's public address: host candidates are
                // private except for sites without NAT.
                for (i, site) in [(0, b), (1, a)] {
                    let peer = 1 - i;
                    let (remote, _, remote_kind) = remote_of(sim.peers[i].connected().unwrap().1);
                    let public: IpAddr = sim.net.public_ip(sim.peers[peer].addr);
                    assert_eq!(remote.ip(), public, "{}", out.detail);
                    if site.is_some() {
                        assert_ne!(remote_kind, CandidateKind::Host, "{}", out.detail);
                    }
                }
                let (sa, sb) = (sim.peers[0].agent.selected(), sim.peers[1].agent.selected());
                assert!(sa.is_some() && sb.is_some());
            } else {
                for p in &sim.peers {
                    assert_eq!(p.agent.state(), State::Failed, "{}", out.detail);
                    // A clean failure: within the connect timeout plus a little.
                    let t = p.failed().unwrap() - sim.start;
                    assert!(t <= Duration::from_secs(16), "{}: {t:?}", out.detail);
                }
            }
        }
        table.push('\n');
    }
    println!("{table}");
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

/// Both agents believe they are controlling (or controlled): the tie-breakers and 487
/// settle it and they still connect (RFC 8445 7.3.1.1).
#[test]
fn h626_8_3_punch_role_conflict() {
    let cone = Some(NatType {
        mapping: Ei,
        filtering: Apd,
    });
    for roles in [
        [Role::Controlling, Role::Controlling],
        [Role::Controlled, Role::Controlled],
    ] {
        for seed in 1..6 {
            let o = SimOptions {
                roles,
                seed,
                ..SimOptions::default()
            };
            let (sim, out) = punch(cone, cone, &o);
            assert!(out.connected, "{roles:?} seed {seed}: {}", out.detail);
            let r: Vec<Role> = sim.peers.iter().map(|p| p.agent.role()).collect();
            assert_ne!(r[0], r[1], "{roles:?} seed {seed}: roles {r:?}");
            assert!(
                sim.peers
                    .iter()
                    .any(|p| p.has(|e| matches!(e, Event::RoleChanged(_)))),
                "{roles:?}"
            );
            let (la, ra) = sim.peers[0].agent.selected().unwrap();
            let (lb, rb) = sim.peers[1].agent.selected().unwrap();
            assert_eq!((la.port(), lb.port()), (5000, 5000));
            assert_eq!(ra.ip(), sim.net.public_ip(sim.peers[1].addr));
            assert_eq!(rb.ip(), sim.net.public_ip(sim.peers[0].addr));
        }
    }
}

/// 30 % loss each way on the internet: retransmissions and triggered checks still get
/// through for port-restricted cones on both sides, and for restricted cone vs symmetric.
#[test]
fn h626_8_3_punch_packet_loss() {
    let prc = Some(NatType {
        mapping: Ei,
        filtering: Apd,
    });
    let rc = Some(NatType {
        mapping: Ei,
        filtering: Ad,
    });
    let sym = Some(NatType {
        mapping: Apd,
        filtering: Apd,
    });
    let mut ok = 0;
    let runs = 20;
    for seed in 0..runs {
        for (a, b) in [(prc, prc), (rc, sym)] {
            let o = SimOptions {
                seed,
                loss: 0.3,
                ..SimOptions::default()
            };
            let (_sim, out) = punch(a, b, &o);
            if out.connected {
                ok += 1;
            } else {
                println!("lost: {}", out.detail);
            }
        }
    }
    // With 30 % loss a whole gathering (4 sends) or every check of a pair can be lost
    // rarely; nearly every run must connect.
    assert!(ok >= 2 * runs - 2, "{ok} of {} connected", 2 * runs);
}

/// After connecting, consent checks every 2.5 s keep the NAT mappings alive well past
/// their lifetime, and the path stays up.
#[test]
fn h626_8_3_punch_consent_keeps_mappings() {
    let prc = Some(NatType {
        mapping: Ei,
        filtering: Apd,
    });
    let o = SimOptions {
        lifetime: Duration::from_secs(10),
        ..SimOptions::default()
    };
    let (mut sim, out) = punch(prc, prc, &o);
    assert!(out.connected, "{}", out.detail);
    sim.run_for(Duration::from_secs(120));
    for p in &sim.peers {
        assert_eq!(p.agent.state(), State::Connected);
        assert!(!p.has(|e| matches!(e, Event::ConsentLost)));
    }
}

/// The path dies after connecting: both sides report consent lost after the consent
/// timeout (30 s), not before.
#[test]
fn h626_8_3_punch_consent_expiry() {
    let rc = Some(NatType {
        mapping: Ei,
        filtering: Ad,
    });
    let (mut sim, out) = punch(rc, None, &SimOptions::default());
    assert!(out.connected, "{}", out.detail);
    sim.run_for(Duration::from_secs(5));
    let died = sim.now;
    sim.net.kill(0);
    sim.run_for(Duration::from_secs(40));
    for p in &sim.peers {
        assert_eq!(p.agent.state(), State::Disconnected);
        let t = p
            .events
            .iter()
            .find(|(_, e)| matches!(e, Event::ConsentLost))
            .unwrap()
            .0;
        let after = t - died;
        assert!(
            after >= Duration::from_secs(25) && after <= Duration::from_secs(31),
            "consent lost {after:?} after the path died"
        );
        assert_eq!(p.agent.poll_timeout(), None);
    }
}

/// Symmetric NATs on both sides: a clean failure with every pair failed, well within the
/// timeout, so the CU can fall back to the relay.
#[test]
fn h626_8_3_punch_symmetric_fails_cleanly() {
    let sym = Some(NatType {
        mapping: Apd,
        filtering: Apd,
    });
    let (sim, out) = punch(sym, sym, &SimOptions::default());
    assert!(!out.connected, "{}", out.detail);
    for p in &sim.peers {
        let failure = p
            .events
            .iter()
            .find_map(|(_, e)| match e {
                Event::Failed(f) => Some(*f),
                _ => None,
            })
            .unwrap();
        assert!(
            matches!(failure, Failure::AllPairsFailed | Failure::Timeout),
            "{failure:?}"
        );
    }
}

/// Same-LAN style: both without NAT connect host to host.
#[test]
fn h626_8_3_punch_no_nat_uses_host_candidates() {
    let (sim, out) = punch(None, None, &SimOptions::default());
    assert!(out.connected, "{}", out.detail);
    let (_, local_kind, remote_kind) = remote_of(sim.peers[0].connected().unwrap().1);
    assert_eq!(
        (local_kind, remote_kind),
        (CandidateKind::Host, CandidateKind::Host)
    );
}
