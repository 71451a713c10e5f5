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
    got: [(usize, SocketAddr); BATCH],
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
            got: [(0, SocketAddr::from(([0, 0, 0, 0], 0))); BATCH],
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
            self.recvmmsg(socket, v4)?;
            if self.count < BATCH {
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
                Ok(got) => {
                    self.got[self.count] = got;
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
            .zip(self.buf.iter())
            .map(|(&(n, from), slot)| (&slot[..n], from))
    }

    #[cfg(target_os = "linux")]
    fn recvmmsg(&mut self, socket: &UdpSocket, v4: bool) -> io::Result<()> {
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
        let mut count = 0;
        // The kernel writes back each message's address length, so a header set serves
        // one address family only.
        if v4 {
            let msgs = recvmmsg(fd, &mut self.v4, iovs.iter_mut(), MsgFlags::empty(), None)?;
            for m in msgs {
                if let (Some(a), Some(slot)) = (m.address, got.get_mut(count)) {
                    *slot = (m.bytes, SocketAddr::V4(a.into()));
                    count += 1;
                }
            }
        } else {
            let msgs = recvmmsg(fd, &mut self.v6, iovs.iter_mut(), MsgFlags::empty(), None)?;
            for m in msgs {
                if let (Some(a), Some(slot)) = (m.address, got.get_mut(count)) {
                    *slot = (m.bytes, SocketAddr::V6(a.into()));
                    count += 1;
                }
            }
        }
        self.count = count;
        Ok(())
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
