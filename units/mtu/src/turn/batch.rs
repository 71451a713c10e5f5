//! Batched datagram I/O for the shards.
//!
//! On Linux an [`Inbox`] takes up to [`BATCH`] datagrams from a socket with one
//! `recvmmsg`, and an [`Outbox`] sends queued datagrams (to any addresses) with one
//! `sendmmsg`. Elsewhere the same API falls back to one `recvfrom`/`sendto` per datagram.
//!
//! An inbox that comes back with fewer than [`BATCH`] datagrams has drained its socket
//! (a nonblocking `recvmmsg` stops at the first `EAGAIN`), so the caller can clear the
//! socket's readiness without the extra `recvfrom` that would only answer `EAGAIN`.

use std::io;
use std::net::SocketAddr;

use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams per system call.
pub(super) const BATCH: usize = 32;
/// Room for the largest UDP payload.
const SLOT: usize = 65_536;

/// Receive buffers for one batch, shared by every socket of a shard.
pub(super) struct Inbox {
    /// `BATCH` slots, allocated zeroed: pages are touched only as datagrams land.
    buf: Box<[[u8; SLOT]]>,
    /// Slot, length and sender of each datagram of the last batch.
    got: [(usize, usize, SocketAddr); BATCH],
    count: usize,
    #[cfg(target_os = "linux")]
    v4: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrIn>,
    #[cfg(target_os = "linux")]
    v6: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrIn6>,
}

impl Inbox {
    pub(super) fn new() -> Self {
        Self {
            buf: vec![[0u8; SLOT]; BATCH].into_boxed_slice(),
            got: [(0, 0, SocketAddr::from(([0, 0, 0, 0], 0))); BATCH],
            count: 0,
            #[cfg(target_os = "linux")]
            v4: nix::sys::socket::MultiHeaders::preallocate(BATCH, None),
            #[cfg(target_os = "linux")]
            v6: nix::sys::socket::MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Take what `socket` has queued, up to [`BATCH`] datagrams, clearing its readiness
    /// when it is drained. `Ok(true)`: the socket may hold more, call again.
    /// `Ok(false)`: drained (possibly with datagrams in the inbox), wait for readiness.
    /// `v4` tells the socket's address family.
    #[cfg(target_os = "linux")]
    pub(super) fn recv(&mut self, socket: &UdpSocket, v4: bool) -> io::Result<bool> {
        self.count = 0;
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
        self.count = 0;
        while self.count < BATCH {
            match socket.try_recv_from(&mut self.buf[self.count]) {
                Ok((n, from)) => {
                    self.got[self.count] = (self.count, n, from);
                    self.count += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if self.count == 0 => return Err(e),
                Err(_) => return Ok(true),
            }
        }
        Ok(true)
    }

    /// The datagrams of the last [`recv`](Self::recv) with their senders.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.got[..self.count]
            .iter()
            .filter_map(|&(slot, n, from)| Some((self.buf.get(slot)?.get(..n)?, from)))
    }

    #[cfg(target_os = "linux")]
    /// One `recvmmsg`; the number of datagrams it took.
    fn recvmmsg(&mut self, socket: &UdpSocket, v4: bool) -> io::Result<usize> {
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd as _;

        use nix::sys::socket::{MsgFlags, recvmmsg};

        let fd = socket.as_raw_fd();
        let mut slots = self.buf.iter_mut();
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] = std::array::from_fn(|_| {
            [IoSliceMut::new(
                slots.next().map_or(&mut [][..], |s| &mut s[..]),
            )]
        });
        let got = &mut self.got;
        let (mut taken, mut count) = (0, 0);
        // The kernel writes back each message's address length, so a header set serves
        // one address family only.
        if v4 {
            let msgs = recvmmsg(fd, &mut self.v4, iovs.iter_mut(), MsgFlags::empty(), None)?;
            for (i, m) in msgs.enumerate() {
                taken = i + 1;
                // A datagram without a sender cannot be answered: skip it.
                if let (Some(a), Some(slot)) = (m.address, got.get_mut(count)) {
                    *slot = (i, m.bytes, SocketAddr::V4(a.into()));
                    count += 1;
                }
            }
        } else {
            let msgs = recvmmsg(fd, &mut self.v6, iovs.iter_mut(), MsgFlags::empty(), None)?;
            for (i, m) in msgs.enumerate() {
                taken = i + 1;
                if let (Some(a), Some(slot)) = (m.address, got.get_mut(count)) {
                    *slot = (i, m.bytes, SocketAddr::V6(a.into()));
                    count += 1;
                }
            }
        }
        self.count = count;
        Ok(taken)
    }
}

/// Datagrams queued for one socket, sent together by [`flush`](Self::flush).
#[derive(Default)]
pub(super) struct Outbox {
    data: Vec<u8>,
    msgs: Vec<(usize, usize, SocketAddr)>,
}

impl Outbox {
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

    /// Send everything queued on `socket`. A datagram the kernel refuses (a full send
    /// buffer, an unreachable address) is dropped, as the network would.
    pub(super) fn flush(&mut self, socket: &UdpSocket) {
        for chunk in self.msgs.chunks(BATCH) {
            send_chunk(socket, &self.data, chunk);
        }
        self.clear();
    }
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
