//! The UDP socket shared by the ICE driver and quinn (RFC 7983 demultiplexing).

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// A datagram for quinn: source and bytes.
pub(crate) type Datagram = (SocketAddr, Vec<u8>);

/// quinn's view of the socket: it sends directly, and receives the non-STUN datagrams
/// the ICE driver task forwards (the driver is the only reader of the socket).
pub(crate) struct DemuxSocket {
    socket: Arc<UdpSocket>,
    rx: Mutex<mpsc::Receiver<Datagram>>,
}

impl DemuxSocket {
    pub(crate) fn new(socket: Arc<UdpSocket>, rx: mpsc::Receiver<Datagram>) -> Self {
        Self {
            socket,
            rx: Mutex::new(rx),
        }
    }
}

impl fmt::Debug for DemuxSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemuxSocket")
            .field("local", &self.socket.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl AsyncUdpSocket for DemuxSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Poller {
            socket: self.socket.clone(),
        })
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        // max_transmit_segments is 1: one datagram per transmit.
        self.socket
            .try_send_to(transmit.contents, transmit.destination)
            .map(|_| ())
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        let Ok(mut rx) = self.rx.lock() else {
            return Poll::Ready(Err(io::Error::other("receiver lock poisoned")));
        };
        loop {
            match rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                // The driver stopped (path lost or shut down): no more datagrams.
                Poll::Ready(None) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        "ICE driver stopped",
                    )));
                }
                Poll::Ready(Some((from, data))) => {
                    if data.len() > buf.len() {
                        continue; // larger than quinn's buffer: drop, as a kernel would truncate
                    }
                    buf[..data.len()].copy_from_slice(&data);
                    *m = RecvMeta::default();
                    m.addr = from;
                    m.len = data.len();
                    m.stride = data.len();
                    return Poll::Ready(Ok(1));
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

struct Poller {
    socket: Arc<UdpSocket>,
}

impl fmt::Debug for Poller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Poller")
    }
}

impl UdpPoller for Poller {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.socket.poll_send_ready(cx)
    }
}
