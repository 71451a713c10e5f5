//! RTP multicast from the relay (H.626.4 7.3: "unicast to multi-destination, or multicast
//! on networks that allow it").
//!
//! With `[multicast]` configured, a viewer may SETUP with `Transport: RTP/AVP;multicast`
//! (RFC 2326 12.39). Each feed then gets a group of its own, leased from a configured range,
//! and the relay sends every packet of the feed once to that group, however many viewers
//! listen: track `n`'s RTP goes to port `base + 4 * group + 2 * n`, its RTCP to the next
//! port. The feed sends to the group only while at least one multicast viewer is playing.
//!
//! The RTSP session still carries the authorisation: only a viewer whose token the platform
//! granted learns the group, and its session ends on revocation as any other. A host on the
//! same network can still join a group it guessed, which is why multicast is off unless the
//! operator configures it for a network they trust (docs/config.md).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;
use socket2::{Domain, Protocol, Socket, Type};

/// The `[multicast]` section of the MTU's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The first group; feeds take consecutive groups from it. Default `239.255.42.1`
    /// (organisation-local scope, RFC 2365).
    pub group_base: Ipv4Addr,
    /// How many groups (feeds multicast at once). Default 64.
    pub groups: u16,
    /// The first UDP port. Group `i` uses ports `port + 4 * i` to `port + 4 * i + 3`
    /// (video RTP, video RTCP, audio RTP, audio RTCP). Default 41000.
    pub port: u16,
    /// Time to live. Default 1: the local network only.
    pub ttl: u8,
    /// The address of the interface to send from. Default `0.0.0.0`: the system's route.
    pub interface: Ipv4Addr,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            group_base: Ipv4Addr::new(239, 255, 42, 1),
            groups: 64,
            port: 41_000,
            ttl: 1,
            interface: Ipv4Addr::UNSPECIFIED,
        }
    }
}

impl Config {
    /// Checks the range: multicast addresses only, ports that fit.
    pub fn validate(&self) -> Result<(), MulticastError> {
        let last = u32::from(self.group_base).checked_add(u32::from(self.groups));
        let last_ok = last.is_some_and(|l| Ipv4Addr::from(l.saturating_sub(1)).is_multicast());
        if !self.group_base.is_multicast() || !last_ok || self.groups == 0 {
            return Err(MulticastError::Groups {
                base: self.group_base,
                groups: self.groups,
            });
        }
        if u32::from(self.port) + 4 * u32::from(self.groups) > 65_535 || self.port == 0 {
            return Err(MulticastError::Ports {
                port: self.port,
                groups: self.groups,
            });
        }
        Ok(())
    }
}

/// What can go wrong with the `[multicast]` range or a feed's group.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MulticastError {
    /// The configured groups are not all multicast addresses (or there are none).
    #[error("multicast groups {base}+{groups} are not all multicast addresses")]
    Groups {
        /// The first group.
        base: Ipv4Addr,
        /// How many.
        groups: u16,
    },
    /// The configured ports run past 65535 (or start at 0).
    #[error("multicast ports {port}+4x{groups} do not fit")]
    Ports {
        /// The first port.
        port: u16,
        /// How many groups.
        groups: u16,
    },
    /// Every group is leased to a feed.
    #[error("every multicast group is in use")]
    Exhausted,
    /// The sending socket could not be opened or set up.
    #[error("multicast socket: {0}")]
    Socket(#[source] std::io::Error),
}

/// The groups in use.
#[derive(Debug)]
pub(crate) struct Groups {
    config: Config,
    used: Mutex<BTreeSet<u16>>,
    stats: Arc<crate::relay::Stats>,
}

impl Groups {
    pub(crate) fn new(config: Config, stats: Arc<crate::relay::Stats>) -> Arc<Self> {
        Arc::new(Self {
            config,
            used: Mutex::new(BTreeSet::new()),
            stats,
        })
    }

    /// Leases a group and opens the socket that sends to it.
    pub(crate) fn open(self: &Arc<Self>) -> Result<Sender, MulticastError> {
        let index = {
            let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
            let free = (0..self.config.groups)
                .find(|i| !used.contains(i))
                .ok_or(MulticastError::Exhausted)?;
            used.insert(free);
            free
        };
        let lease = Lease {
            groups: self.clone(),
            index,
        };
        let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
            .map_err(MulticastError::Socket)?;
        sock.set_multicast_ttl_v4(u32::from(self.config.ttl))
            .and_then(|()| sock.set_multicast_loop_v4(true))
            .and_then(|()| {
                if self.config.interface.is_unspecified() {
                    Ok(())
                } else {
                    sock.set_multicast_if_v4(&self.config.interface)
                }
            })
            .and_then(|()| sock.bind(&SocketAddrV4::new(self.config.interface, 0).into()))
            .and_then(|()| sock.set_nonblocking(true))
            .map_err(MulticastError::Socket)?;
        let group = Ipv4Addr::from(u32::from(self.config.group_base) + u32::from(index));
        Ok(Sender {
            sock: sock.into(),
            group,
            port: self.config.port + 4 * index,
            ttl: self.config.ttl,
            receivers: AtomicUsize::new(0),
            lease,
        })
    }
}

#[derive(Debug)]
struct Lease {
    groups: Arc<Groups>,
    index: u16,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.groups
            .used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.index);
    }
}

/// One feed's multicast output.
#[derive(Debug)]
pub(crate) struct Sender {
    sock: UdpSocket,
    /// The group.
    pub group: Ipv4Addr,
    /// The first track's RTP port.
    pub port: u16,
    /// The TTL.
    pub ttl: u8,
    /// Multicast viewers playing now; nothing is sent while there are none.
    pub receivers: AtomicUsize,
    lease: Lease,
}

impl Sender {
    /// Sends one packet of `track` to the group, if anyone listens (a full socket buffer
    /// drops it, as the network would).
    pub(crate) fn send(&self, track: usize, rtcp: bool, data: &[u8]) {
        if self.receivers.load(Ordering::Acquire) == 0 || track > 1 {
            return;
        }
        let port = self.port + 2 * track as u16 + u16::from(rtcp);
        if self
            .sock
            .send_to(data, SocketAddrV4::new(self.group, port))
            .is_ok()
        {
            self.lease
                .groups
                .stats
                .multicast_bytes_out
                .fetch_add(data.len() as u64, Ordering::Relaxed);
        }
    }

    /// The RTSP `Transport` answer for `track`.
    pub(crate) fn transport(&self, track: usize) -> peercam_rtsp::Transport {
        let rtp = self.port + 2 * track as u16;
        let mut t = peercam_rtsp::Transport::default();
        t.multicast = Some(true);
        t.destination = Some(self.group.to_string());
        t.port = Some(peercam_rtsp::msg::PortPair {
            rtp,
            rtcp: Some(rtp + 1),
        });
        t.ttl = Some(self.ttl);
        t
    }
}

/// A multicast viewer playing: counted while it lives.
pub(crate) struct Listening(pub Arc<Sender>);

impl Listening {
    pub(crate) fn new(s: Arc<Sender>) -> Self {
        s.receivers.fetch_add(1, Ordering::AcqRel);
        Self(s)
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.receivers.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h626_7_3_multicast_config_is_checked() {
        assert!(Config::default().validate().is_ok());
        let bad = Config {
            group_base: Ipv4Addr::new(10, 0, 0, 1),
            ..Config::default()
        };
        assert!(bad.validate().is_err());
        let over = Config {
            group_base: Ipv4Addr::new(239, 255, 255, 250),
            groups: 10,
            ..Config::default()
        };
        assert!(over.validate().is_err());
        let ports = Config {
            port: 65_000,
            groups: 200,
            ..Config::default()
        };
        assert!(ports.validate().is_err());
    }

    #[test]
    fn h626_7_3_multicast_groups_are_leased_and_returned() {
        let g = Groups::new(
            Config {
                groups: 2,
                ..Config::default()
            },
            Arc::default(),
        );
        let a = g.open().unwrap();
        let b = g.open().unwrap();
        assert_ne!((a.group, a.port), (b.group, b.port));
        assert!(g.open().is_err());
        drop(a);
        let c = g.open().unwrap();
        assert_eq!(c.group, Ipv4Addr::new(239, 255, 42, 1));
        assert_eq!(c.port, 41_000);
        assert_eq!(
            c.transport(1).to_string(),
            "RTP/AVP;multicast;destination=239.255.42.1;ttl=1;port=41002-41003"
        );
    }
}
