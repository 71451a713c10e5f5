//! Np LAN discovery over UDP multicast (the messages are [`peercam_signal::discover`]).
//!
//! Cameras run [`answer_probes`]; an NVR calls [`probe`]. Both join the group on the
//! default interface and on loopback, so discovery works on a LAN and between units on one
//! host (tests, the demo).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use peercam_base::DeviceId;
use peercam_signal::discover::{Announce, GROUP, MAX_DATAGRAM, Probe};
use tokio::net::UdpSocket;

use crate::Shutdown;

/// The default discovery port of a device's configuration (Np).
pub const fn default_port() -> u16 {
    peercam_signal::discover::DEFAULT_PORT
}

fn group_socket(port: u16) -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Every camera on the host listens on the same port.
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    let mut joined = 0;
    for iface in [Ipv4Addr::UNSPECIFIED, Ipv4Addr::LOCALHOST] {
        if s.join_multicast_v4(&GROUP, &iface).is_ok() {
            joined += 1;
        }
    }
    if joined == 0 {
        return Err(std::io::Error::other("cannot join the discovery group"));
    }
    UdpSocket::from_std(s.into())
}

/// Answers probes on `port` with a signed announcement of `device_id` at `rtsp`, until
/// `shutdown`. At most 20 answers a second.
pub async fn answer_probes(
    port: u16,
    device_id: DeviceId,
    rtsp: Vec<String>,
    key: SigningKey,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let sock = group_socket(port)?;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut window = tokio::time::Instant::now();
    let mut sent = 0u32;
    loop {
        let (n, from) = tokio::select! {
            r = sock.recv_from(&mut buf) => r?,
            () = shutdown.wait() => return Ok(()),
        };
        let Ok(probe) = Probe::parse(&buf[..n]) else {
            continue;
        };
        if window.elapsed() > Duration::from_secs(1) {
            window = tokio::time::Instant::now();
            sent = 0;
        }
        if sent >= 20 {
            continue;
        }
        sent += 1;
        let a = Announce::new(&probe, device_id.clone(), rtsp.clone(), &key);
        let _ = sock.send_to(&a.to_bytes(), from).await;
    }
}

/// Sends `probe` to the group on `port` (on the default interface and on loopback) and
/// collects the parsed answers for `wait`. Signatures are the caller's to check.
pub async fn probe(port: u16, probe: &Probe, wait: Duration) -> std::io::Result<Vec<Announce>> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    let bytes = probe.to_bytes();
    let target = SocketAddrV4::new(GROUP, port);
    let s2 = socket2::SockRef::from(&sock);
    let mut sent = false;
    for iface in [Ipv4Addr::UNSPECIFIED, Ipv4Addr::LOCALHOST] {
        if s2.set_multicast_if_v4(&iface).is_ok() && sock.send_to(&bytes, target).await.is_ok() {
            sent = true;
        }
    }
    if !sent {
        return Err(std::io::Error::other("cannot send the discovery probe"));
    }
    let mut out: Vec<Announce> = Vec::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let r = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await;
        let Ok(Ok((n, _))) = r else {
            return Ok(out);
        };
        if let Ok(a) = Announce::parse(&buf[..n])
            && a.re == probe.probe
            && !out
                .iter()
                .any(|o| o.device_id == a.device_id && o.rtsp == a.rtsp)
        {
            out.push(a);
        }
    }
}
