//! A sans-IO ICE agent (RFC 8445) for UDP hole punching between a PU and a CU
//! (H.626.4 8.3, 8.4).
//!
//! Each side behind its NAT gathers candidates (host addresses, plus the server-reflexive
//! address a STUN server sees), exchanges them and its [`Credentials`] with the peer
//! through the platform's (already authenticated) signalling, then both send STUN
//! connectivity checks to every pair. A check sent out through a NAT opens a pinhole for
//! the answer; a check received is answered and triggers a check back (RFC 8445 7.3.1.4),
//! which is what lets two NATs that filter unsolicited traffic meet. The controlling
//! agent (the CU) nominates the best working pair with USE-CANDIDATE; the result is one
//! selected pair `(local base, remote address)`, or [`Event::Failed`] so the caller falls
//! back to the MTU relay.
//!
//! | module | what |
//! |---|---|
//! | [`candidate`] | candidates, priorities, foundations, credentials, the signalling text form |
//! | [`gather`] | server-reflexive candidates from a STUN server |
//! | [`agent`] | the agent: checklist, triggered checks, nomination, consent |
//!
//! # Choices (RFC 8445 subset)
//!
//! - One data stream, one component (the RTSP byte stream travels in one QUIC stream),
//!   UDP only, IPv4 and IPv6 pairs of the same family.
//! - Pairs are formed from *bases* (host and relayed candidates) only: a server-reflexive
//!   local candidate sends from its base, so its pairs are redundant (RFC 8445 6.1.2.4).
//! - **Regular nomination** (RFC 8445 8.1.1; aggressive nomination was removed from ICE
//!   by RFC 8445): the controlling agent waits [`Config::nomination_delay`] after the
//!   first valid pair (no wait if no better pair is still pending), then repeats the best
//!   valid pair's check with USE-CANDIDATE (and again if that goes unanswered, since
//!   the peer may already have selected the pair). The controlled agent selects a pair when it
//!   has both received USE-CANDIDATE on it and seen its own check on it succeed.
//! - Role conflicts are repaired with the tie-breaker and 487 (RFC 8445 7.3.1.1, 7.2.5.1).
//! - Checks are paced by Ta (default 20 ms) and retransmitted with a doubling RTO
//!   (250 ms up to 2 s, 7 sends); ICE fails after [`Config::connect_timeout`] (15 s), or
//!   earlier once every pair failed and the peer said it has no more candidates.
//! - After selection, consent freshness (RFC 7675): a check on the selected pair every
//!   [`Config::consent_interval`] (2.5 s, which also keeps NAT bindings open), and
//!   [`Event::ConsentLost`] after [`Config::consent_timeout`] (30 s) without an
//!   authenticated answer. The agent keeps answering the peer's checks while connected.
//! - Unauthenticated STUN is dropped without an answer (no reflection).
//! - Relayed candidates are accepted as input (a future TURN client sends their
//!   transmits); the agent does not allocate.
//!
//! # Run loop
//!
//! ```
//! use std::time::{Duration, Instant};
//! use peercam_ice::{Agent, Candidate, Config, Credentials, Event, Role};
//!
//! # #[allow(clippy::disallowed_methods)] let mut now = Instant::now();
//! let mut a = Agent::new(Role::Controlling, Credentials::from_random([1; 32]), Config::new([2; 32]), now);
//! let mut b = Agent::new(Role::Controlled, Credentials::from_random([3; 32]), Config::new([4; 32]), now);
//! let (a_addr, b_addr) = ("127.0.0.1:5000".parse().unwrap(), "127.0.0.1:6000".parse().unwrap());
//! a.add_local_candidate(Candidate::host(a_addr, 65535)).unwrap();
//! b.add_local_candidate(Candidate::host(b_addr, 65535)).unwrap();
//! // What signalling carries:
//! a.set_remote_credentials(b.local_credentials().clone());
//! b.set_remote_credentials(a.local_credentials().clone());
//! for c in a.local_candidates().cloned().collect::<Vec<_>>() { b.add_remote_candidate(c) }
//! for c in b.local_candidates().cloned().collect::<Vec<_>>() { a.add_remote_candidate(c) }
//!
//! // Deliver everything `x` wants to send to `y`; count Connected events.
//! fn pump(x: &mut Agent, y: &mut Agent, y_addr: std::net::SocketAddr, now: Instant) -> usize {
//!     while let Some(t) = x.poll_transmit() {
//!         // A socket would send `t.bytes` from `t.from_local` to `t.to`.
//!         assert!(y.handle_receive(now, y_addr, t.from_local, &t.bytes));
//!     }
//!     std::iter::from_fn(|| x.poll_event()).filter(|e| matches!(e, Event::Connected { .. })).count()
//! }
//! let mut connected = 0;
//! while connected < 2 {
//!     connected += pump(&mut a, &mut b, b_addr, now) + pump(&mut b, &mut a, a_addr, now);
//!     now += Duration::from_millis(5);
//!     a.handle_timeout(now);
//!     b.handle_timeout(now);
//! }
//! assert_eq!(a.selected(), Some((a_addr, b_addr)));
//! ```

pub mod agent;
pub mod candidate;
mod error;
pub mod gather;

use std::net::SocketAddr;

pub use agent::{Agent, Config, Event, Failure, Role, State};
pub use candidate::{Candidate, CandidateKind, Credentials};
pub use error::Error;

/// A datagram to send: from the local base `from_local` (the socket bound there, or the
/// TURN allocation for a relayed base) to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The local address to send from.
    pub from_local: SocketAddr,
    /// The destination.
    pub to: SocketAddr,
    /// The datagram.
    pub bytes: Vec<u8>,
}
