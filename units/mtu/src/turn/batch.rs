//! Batched datagram I/O for the shards.
//!
//! On Linux an [`Inbox`] takes up to [`BATCH`] datagrams from a socket with one
//! `recvmmsg`, and an [`Outbox`] sends queued datagrams (to any addresses) with one
//! `sendmmsg`. Elsewhere the same API falls back to one `recvfrom`/`sendto` per datagram.
//!
//! An inbox that comes back with fewer than [`BATCH`] datagrams has drained its socket
//! (a nonblocking `recvmmsg` stops at the first `EAGAIN`), so the caller can clear the
//! socket's readiness without the extra `recvfrom` that would only answer `EAGAIN`.
//!
//! UDP segmentation offload (Linux, where the kernel has it; checked at run time): an
//! outbox sends a run of datagrams to the same address, all of one size but the last,
//! as one buffer with a `UDP_SEGMENT` control message, so the kernel walks its stack once
//! for the run and cuts it into datagrams at the end (on a NIC with segmentation offload,
//! in hardware). Video leaves the relay that way: a frame is a burst of ~1,200-byte
//! packets to one viewer. A socket with [`enable_gro`] receives such runs from a peer
//! coalesced, with a `UDP_GRO` control message giving the segment size, and an inbox
//! cuts them back into datagrams. Receivers without GRO see plain datagrams either way.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
#[cfg(target_os = "linux")]
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams per system call.
pub(super) const BATCH: usize = 32;
/// Datagrams queued for clients before a shard sends them mid wake-up: enough for a few
/// video frames to one client to leave as GSO runs rather than cut at a batch's end.
pub(super) const FLUSH_AT: usize = 4 * BATCH;
/// Room for the largest UDP payload.
const SLOT: usize = 65_536;

/// Receive buffers for one batch, shared by every socket of a shard.
pub(super) struct Inbox {
    /// `BATCH` slots, allocated zeroed: pages are touched only as datagrams land.
    buf: Box<[[u8; SLOT]]>,
    /// Slot, byte range and sender of each datagram of the last batch (a coalesced
    /// GRO buffer gives several).
    got: Vec<(usize, Range<usize>, SocketAddr)>,
}

impl Inbox {
    pub(super) fn new() -> Self {
        Self {
            buf: vec![[0u8; SLOT]; BATCH].into_boxed_slice(),
            got: Vec::with_capacity(BATCH),
        }
    }

    /// Take what `socket` has queued, up to [`BATCH`] datagrams, clearing its readiness
    /// when it is drained. `Ok(true)`: the socket may hold more, call again.
    /// `Ok(false)`: drained (possibly with datagrams in the inbox), wait for readiness.
    /// `v4` tells the socket's address family.
    #[cfg(target_os = "linux")]
    pub(super) fn recv(&mut self, socket: &UdpSocket, v4: bool) -> io::Result<bool> {
        self.got.clear();
        let r = socket.try_io(Interest::READABLE, || {
            if self.recvmmsg(socket, v4)? < BATCH {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        });
        match r {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Take what `socket` has queued, one `recvfrom` at a time.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn recv(&mut self, socket: &UdpSocket, _v4: bool) -> io::Result<bool> {
        self.got.clear();
        while self.got.len() < BATCH {
            let slot = self.got.len();
            match socket.try_recv_from(&mut self.buf[slot]) {
                Ok((n, from)) => self.got.push((slot, 0..n, from)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if self.got.is_empty() => return Err(e),
                Err(_) => return Ok(true),
            }
        }
        Ok(true)
    }

    /// The datagrams of the last [`recv`](Self::recv) with their senders.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.got.iter().filter_map(|(slot, range, from)| {
            Some((self.buf.get(*slot)?.get(range.clone())?, *from))
        })
    }

    #[cfg(target_os = "linux")]
    /// One `recvmmsg`; the number of datagrams (or GRO buffers) it took.
    fn recvmmsg(&mut self, socket: &UdpSocket, v4: bool) -> io::Result<usize> {
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd as _;

        use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrIn, SockaddrIn6, recvmmsg};

        let fd = socket.as_raw_fd();
        let mut slots = self.buf.iter_mut();
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] = std::array::from_fn(|_| {
            [IoSliceMut::new(
                slots.next().map_or(&mut [][..], |s| &mut s[..]),
            )]
        });
        let got = &mut self.got;
        let mut taken = 0;
        // Headers are made for each call: the kernel writes back each message's address
        // and control lengths, which nix does not restore, so a reused set would lose
        // the GRO segment size of a later batch.
        let cmsg = Some(nix::cmsg_space!(i32));
        if v4 {
            let mut hdrs = MultiHeaders::<SockaddrIn>::preallocate(BATCH, cmsg);
            let msgs = recvmmsg(fd, &mut hdrs, iovs.iter_mut(), MsgFlags::empty(), None)?;
            for (i, m) in msgs.enumerate() {
                taken = i + 1;
                // A datagram without a sender cannot be answered: skip it.
                if let Some(a) = m.address {
                    split_gro(got, i, m.bytes, gro_segment(&m), SocketAddr::V4(a.into()));
                }
            }
        } else {
            let mut hdrs = MultiHeaders::<SockaddrIn6>::preallocate(BATCH, cmsg);
            let msgs = recvmmsg(fd, &mut hdrs, iovs.iter_mut(), MsgFlags::empty(), None)?;
            for (i, m) in msgs.enumerate() {
                taken = i + 1;
                if let Some(a) = m.address {
                    split_gro(got, i, m.bytes, gro_segment(&m), SocketAddr::V6(a.into()));
                }
            }
        }
        Ok(taken)
    }
}

/// The segment size of a coalesced GRO buffer, if `m` is one.
#[cfg(target_os = "linux")]
fn gro_segment<S>(m: &nix::sys::socket::RecvMsg<'_, '_, S>) -> Option<usize> {
    use nix::sys::socket::ControlMessageOwned;

    m.cmsgs().ok()?.find_map(|c| match c {
        ControlMessageOwned::UdpGroSegments(n) => usize::try_from(n).ok().filter(|&n| n > 0),
        _ => None,
    })
}

/// Record the datagrams of `len` bytes received in `slot`: one, or the segments of
/// `segment` bytes (the last may be shorter) of a coalesced GRO buffer.
fn split_gro(
    got: &mut Vec<(usize, Range<usize>, SocketAddr)>,
    slot: usize,
    len: usize,
    segment: Option<usize>,
    from: SocketAddr,
) {
    match segment {
        Some(seg) if seg < len => {
            let mut at = 0;
            while at < len {
                let end = (at + seg).min(len);
                got.push((slot, at..end, from));
                at = end;
            }
        }
        _ => got.push((slot, 0..len, from)),
    }
}

/// Ask the kernel to coalesce runs of datagrams from one sender on `socket` (`UDP_GRO`);
/// an [`Inbox`] cuts them back. False where the kernel cannot.
#[cfg(target_os = "linux")]
pub(super) fn enable_gro(socket: &UdpSocket) -> bool {
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::UdpGroSegment, &true).is_ok()
}

/// No GRO off Linux.
#[cfg(not(target_os = "linux"))]
pub(super) fn enable_gro(_socket: &UdpSocket) -> bool {
    false
}

/// Most segments in one GSO send (the kernel's `UDP_MAX_SEGMENTS` is 64 on older kernels).
pub(super) const MAX_SEGMENTS: usize = 64;
/// Most bytes in one GSO send: the largest UDP payload over IPv4.
pub(super) const MAX_GSO_BYTES: usize = 65_507;

/// Datagrams queued for one socket, sent together by [`flush`](Self::flush).
pub(super) struct Outbox {
    data: Vec<u8>,
    msgs: Vec<(usize, usize, SocketAddr)>,
    /// Send runs to one address with `UDP_SEGMENT`.
    gso: bool,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new(true)
    }
}

impl Outbox {
    /// An outbox that uses GSO when `offload` is set and the kernel has it.
    pub(super) fn new(offload: bool) -> Self {
        Self {
            data: Vec::new(),
            msgs: Vec::new(),
            gso: offload && gso_supported(),
        }
    }

    /// Queue `bytes` for `to`.
    pub(super) fn push(&mut self, bytes: &[u8], to: SocketAddr) {
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        self.msgs.push((start, self.data.len(), to));
    }

    /// Datagrams queued.
    pub(super) fn len(&self) -> usize {
        self.msgs.len()
    }

    /// Drop everything queued.
    pub(super) fn clear(&mut self) {
        self.data.clear();
        self.msgs.clear();
    }

    /// Send everything queued on `socket`, in order: runs to one address as GSO sends,
    /// the rest with `sendmmsg`. A datagram the kernel refuses (a full send buffer, an
    /// unreachable address) is dropped, as the network would.
    pub(super) fn flush(&mut self, socket: &UdpSocket) {
        let msgs = &self.msgs;
        let mut plain = 0;
        let mut i = 0;
        while i < msgs.len() {
            let n = if self.gso && gso_usable() {
                run_len(&msgs[i..])
            } else {
                1
            };
            if n > 1 {
                send_plain(socket, &self.data, &msgs[plain..i]);
                let run = &msgs[i..i + n];
                if !send_gso(socket, &self.data, run) {
                    send_plain(socket, &self.data, run);
                }
                plain = i + n;
            }
            i += n;
        }
        send_plain(socket, &self.data, &msgs[plain..]);
        self.clear();
    }
}

/// How many datagrams at the start of `msgs` one GSO send can carry: consecutive
/// datagrams to the first one's address, none larger than the first and only the last
/// smaller, at most [`MAX_SEGMENTS`] and [`MAX_GSO_BYTES`] in all. 1 when no run starts
/// there (0 for no datagram).
pub(super) fn run_len(msgs: &[(usize, usize, SocketAddr)]) -> usize {
    let Some(&(start, end, to)) = msgs.first() else {
        return 0;
    };
    let segment = end - start;
    if segment == 0 {
        return 1;
    }
    let (mut n, mut total) = (1, segment);
    for &(start, end, addr) in &msgs[1..] {
        let len = end - start;
        if addr != to
            || len == 0
            || len > segment
            || n == MAX_SEGMENTS
            || total + len > MAX_GSO_BYTES
        {
            break;
        }
        n += 1;
        total += len;
        if len < segment {
            break;
        }
    }
    n
}

fn send_plain(socket: &UdpSocket, data: &[u8], msgs: &[(usize, usize, SocketAddr)]) {
    for chunk in msgs.chunks(BATCH) {
        send_chunk(socket, data, chunk);
    }
}

/// Cleared when a GSO send fails with `EIO` (a device that cannot checksum it).
#[cfg(target_os = "linux")]
static GSO_WORKS: AtomicBool = AtomicBool::new(true);

/// Whether this kernel takes `UDP_SEGMENT` (asked once, on a throwaway socket).
#[cfg(target_os = "linux")]
fn gso_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).is_ok_and(|s| {
            nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::UdpGsoSegment, &1200)
                .is_ok()
        })
    })
}

#[cfg(target_os = "linux")]
fn gso_usable() -> bool {
    GSO_WORKS.load(Ordering::Relaxed)
}

/// Send a run (see [`run_len`]) as one datagram buffer cut by the kernel. False when it
/// was not sent and should go datagram by datagram.
#[cfg(target_os = "linux")]
fn send_gso(socket: &UdpSocket, data: &[u8], run: &[(usize, usize, SocketAddr)]) -> bool {
    use std::io::IoSlice;
    use std::os::fd::AsRawFd as _;

    use nix::errno::Errno;
    use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrIn, SockaddrIn6, sendmsg};

    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return true;
    };
    let Ok(segment) = u16::try_from(first.1 - first.0) else {
        return false;
    };
    // Queued datagrams lie back to back in `data`.
    let iov = [IoSlice::new(&data[first.0..last.1])];
    let cmsg = [ControlMessage::UdpGsoSegments(&segment)];
    let fd = socket.as_raw_fd();
    let r = match first.2 {
        SocketAddr::V4(a) => sendmsg(
            fd,
            &iov,
            &cmsg,
            MsgFlags::empty(),
            Some(&SockaddrIn::from(a)),
        ),
        SocketAddr::V6(a) => sendmsg(
            fd,
            &iov,
            &cmsg,
            MsgFlags::empty(),
            Some(&SockaddrIn6::from(a)),
        ),
    };
    match r {
        Ok(_) => true,
        Err(Errno::EIO) => {
            // The route's device cannot take GSO (no checksum offload): stop using it.
            GSO_WORKS.store(false, Ordering::Relaxed);
            false
        }
        // A segment larger than the route's MTU, or a kernel that refuses this run.
        Err(Errno::EINVAL | Errno::EMSGSIZE | Errno::ENOPROTOOPT | Errno::EOPNOTSUPP) => false,
        // A full buffer or an unreachable address: dropped, as the network would.
        Err(_) => true,
    }
}

#[cfg(not(target_os = "linux"))]
fn gso_supported() -> bool {
    false
}

#[cfg(not(target_os = "linux"))]
fn gso_usable() -> bool {
    false
}

#[cfg(not(target_os = "linux"))]
fn send_gso(_socket: &UdpSocket, _data: &[u8], _run: &[(usize, usize, SocketAddr)]) -> bool {
    false
}

#[cfg(target_os = "linux")]
fn send_chunk(socket: &UdpSocket, data: &[u8], mut chunk: &[(usize, usize, SocketAddr)]) {
    use std::io::IoSlice;

    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};

    let unused = SocketAddrAny::from(SocketAddr::from(([0, 0, 0, 0], 0)));
    while !chunk.is_empty() {
        let addrs: [SocketAddrAny; BATCH] = std::array::from_fn(|i| {
            chunk
                .get(i)
                .map_or_else(|| unused.clone(), |m| SocketAddrAny::from(m.2))
        });
        let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|i| {
            [IoSlice::new(
                chunk.get(i).map_or(&[][..], |m| &data[m.0..m.1]),
            )]
        });
        let mut controls: [SendAncillaryBuffer<'_, '_, '_>; BATCH] =
            std::array::from_fn(|_| SendAncillaryBuffer::default());
        let mut i = 0;
        let mut hdrs = controls.each_mut().map(|c| {
            let h = MMsgHdr::new_with_addr(&addrs[i], &iovs[i], c);
            i += 1;
            h
        });
        let n = chunk.len().min(BATCH);
        // `sendmmsg` stops at the first datagram that fails: skip that one and go on.
        let sent = match sendmmsg(socket, &mut hdrs[..n], SendFlags::empty()) {
            Ok(0) | Err(_) => 1,
            Ok(n) => n,
        };
        chunk = chunk.get(sent..).unwrap_or_default();
    }
}

#[cfg(not(target_os = "linux"))]
fn send_chunk(socket: &UdpSocket, data: &[u8], chunk: &[(usize, usize, SocketAddr)]) {
    let sock = socket2::SockRef::from(socket);
    for &(start, end, to) in chunk {
        let _ = sock.send_to(&data[start..end], &to.into());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Datagrams of varied sizes, up to the largest IPv4 payload, arrive whole and in
    /// order, a batch at a time, with their senders; then the socket reads as drained.
    async fn inbox_round_trip(local: &str) {
        let rx = UdpSocket::bind(local).await.unwrap();
        let to = rx.local_addr().unwrap();
        let tx = std::net::UdpSocket::bind(local).unwrap();
        let from = tx.local_addr().unwrap();
        let mut sizes: Vec<usize> = (0..BATCH + 8).map(|i| (i * 997) % 1500).collect();
        sizes[3] = 65_000;
        for (i, &n) in sizes.iter().enumerate() {
            tx.send_to(&vec![i as u8; n], to).unwrap();
        }
        let mut inbox = Inbox::new();
        let mut seen = Vec::new();
        while seen.len() < sizes.len() {
            rx.readable().await.unwrap();
            let more = inbox.recv(&rx, to.is_ipv4()).unwrap();
            for (bytes, sender) in inbox.iter() {
                assert_eq!(sender, from);
                seen.push(bytes.to_vec());
            }
            // A full batch says "more"; the short one that ends the queue does not.
            assert_eq!(more, inbox.iter().count() == BATCH);
        }
        for (i, (got, &n)) in seen.iter().zip(&sizes).enumerate() {
            assert_eq!(got.len(), n, "datagram {i}");
            assert!(got.iter().all(|&b| b == i as u8));
        }
        assert!(!inbox.recv(&rx, to.is_ipv4()).unwrap());
        assert_eq!(inbox.iter().count(), 0);
    }

    #[tokio::test]
    async fn inbox_v4() {
        inbox_round_trip("127.0.0.1:0").await;
    }

    #[tokio::test]
    async fn inbox_v6() {
        if std::net::UdpSocket::bind("[::1]:0").is_ok() {
            inbox_round_trip("[::1]:0").await;
        }
    }

    /// Queued datagrams to several addresses all leave, each to its own address; one
    /// that cannot be sent is dropped and the rest still go.
    #[tokio::test]
    async fn outbox_sends_to_each_address() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&a, &b] {
            s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
        }
        let mut outbox = Outbox::default();
        let total = 2 * BATCH + 3;
        for i in 0..total {
            let to = if i % 2 == 0 { &a } else { &b };
            outbox.push(&[i as u8; 100], to.local_addr().unwrap());
            if i == 5 {
                // Port 0 cannot be sent to.
                outbox.push(b"lost", SocketAddr::from(([127, 0, 0, 1], 0)));
            }
        }
        assert_eq!(outbox.len(), total + 1);
        outbox.flush(&sender);
        assert_eq!(outbox.len(), 0);
        let mut buf = [0u8; 200];
        for i in 0..total {
            let s = if i % 2 == 0 { &a } else { &b };
            let (n, from) = s.recv_from(&mut buf).unwrap();
            assert_eq!(from, sender.local_addr().unwrap());
            assert_eq!(&buf[..n], &[i as u8; 100][..]);
        }
    }
}

#[cfg(test)]
mod gso_tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    fn queue(items: &[(usize, u16)]) -> Vec<(usize, usize, SocketAddr)> {
        let mut at = 0;
        items
            .iter()
            .map(|&(len, port)| {
                let m = (at, at + len, SocketAddr::from(([127, 0, 0, 1], port)));
                at += len;
                m
            })
            .collect()
    }

    /// Cut a queue into the runs `flush` would send.
    fn runs(msgs: &[(usize, usize, SocketAddr)]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < msgs.len() {
            let n = run_len(&msgs[i..]);
            out.push(n);
            i += n;
        }
        out
    }

    /// A run ends at another address, at a larger datagram, and after a smaller one
    /// (which it includes); empty datagrams never join a run.
    #[test]
    fn h626_7_3_gso_runs_split_by_destination_and_size() {
        assert_eq!(run_len(&[]), 0);
        let q = queue(&[
            (1200, 1),
            (1200, 1),
            (1200, 1),
            (400, 1), // a frame's last packet: ends the run, inside it
            (1200, 1),
            (1200, 2), // another viewer
            (1200, 2),
            (1300, 2), // larger: starts a new run
            (1300, 1),
            (0, 1),
            (0, 1),
            (1200, 3),
            (1200, 3),
        ]);
        assert_eq!(runs(&q), vec![4, 1, 2, 1, 1, 1, 1, 2]);
        // Same size throughout: one run.
        assert_eq!(runs(&queue(&[(1000, 9); 10])), vec![10]);
    }

    /// At most 64 segments and 65,507 bytes go in one send.
    #[test]
    fn h626_7_3_gso_runs_at_most_64_segments_and_64_kib() {
        assert_eq!(runs(&queue(&[(100, 1); 150])), vec![64, 64, 22]);
        // 1200 * 54 = 64,800 fits; a 55th would not.
        assert_eq!(runs(&queue(&[(1200, 1); 60])), vec![54, 6]);
        // A 400-byte tail still fits after 54 full segments (65,200 bytes).
        let mut q = vec![(1200, 1); 54];
        q.push((400, 1));
        assert_eq!(runs(&queue(&q)), vec![55]);
        // Two large datagrams cannot share a send.
        assert_eq!(runs(&queue(&[(40_000, 1); 3])), vec![1, 1, 1]);
    }

    /// Segment boundaries of a coalesced GRO buffer: all of one size, the last shorter.
    #[test]
    fn h626_7_3_gro_buffer_cut_into_segments() {
        let from = SocketAddr::from(([127, 0, 0, 1], 5));
        let mut got = Vec::new();
        split_gro(&mut got, 3, 2800, Some(1200), from);
        split_gro(&mut got, 4, 900, Some(1200), from);
        split_gro(&mut got, 5, 1200, None, from);
        let ranges: Vec<_> = got.iter().map(|g| (g.0, g.1.clone())).collect();
        assert_eq!(
            ranges,
            vec![
                (3, 0..1200),
                (3, 1200..2400),
                (3, 2400..2800),
                (4, 0..900),
                (5, 0..1200)
            ]
        );
    }

    /// A video-like burst: 2 frames of 1,200-byte packets and a short tail to one
    /// address, interleaved with a datagram to another.
    fn burst() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for frame in 0..2u8 {
            for i in 0..9u8 {
                out.push(vec![frame * 16 + i; 1200]);
            }
            out.push(vec![frame * 16 + 9; 337]);
        }
        out
    }

    /// A burst sent with GSO arrives at a receiver without GRO as the same datagrams,
    /// in order; the other address gets its own.
    #[tokio::test]
    async fn h626_7_3_gso_burst_arrives_as_plain_datagrams() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let other = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&rx, &other] {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        }
        let mut outbox = Outbox::new(true);
        let sent = burst();
        for (i, d) in sent.iter().enumerate() {
            outbox.push(d, rx.local_addr().unwrap());
            if i == 9 {
                outbox.push(b"between", other.local_addr().unwrap());
            }
        }
        outbox.flush(&sender);
        let mut buf = vec![0u8; 65_536];
        for (i, d) in sent.iter().enumerate() {
            let (n, from) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(from, sender.local_addr().unwrap());
            assert_eq!(&buf[..n], &d[..], "datagram {i}");
        }
        let (n, _) = other.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"between");
        rx.set_nonblocking(true).unwrap();
        assert!(rx.recv_from(&mut buf).is_err(), "nothing more");
    }

    /// The same burst at a socket with GRO: the inbox gives back the same datagrams,
    /// whether the kernel coalesced them or not.
    #[tokio::test]
    async fn h626_7_3_gro_inbox_gives_back_the_datagrams() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let gro = enable_gro(&rx);
        let to = rx.local_addr().unwrap();
        let mut outbox = Outbox::new(true);
        let sent = burst();
        for d in &sent {
            outbox.push(d, to);
        }
        outbox.flush(&sender);
        let mut inbox = Inbox::new();
        let mut seen = Vec::new();
        while seen.len() < sent.len() {
            tokio::time::timeout(Duration::from_secs(2), rx.readable())
                .await
                .unwrap()
                .unwrap();
            inbox.recv(&rx, true).unwrap();
            for (bytes, from) in inbox.iter() {
                assert_eq!(from, sender.local_addr().unwrap());
                seen.push(bytes.to_vec());
            }
        }
        assert_eq!(seen, sent, "GRO enabled: {gro}");
    }
}
