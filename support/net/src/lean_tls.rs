//! A TLS server stream that keeps no buffer while its connection is idle (issue 19, a lean
//! connection per device on an SCU node).
//!
//! `tokio-rustls` drives rustls's buffered connection, which keeps a 4 KiB record read
//! buffer for the connection's whole life: on a node holding 100,000 mostly idle devices that
//! is 400 MiB of buffers waiting for the next heartbeat. This stream drives rustls's
//! unbuffered API instead: each read from the socket goes into one scratch buffer per worker
//! thread and is decrypted from there; a connection keeps bytes of its own only while they
//! wait for something: the head of a record whose tail has not arrived, decrypted bytes its
//! reader has not taken yet, encrypted bytes the socket has not taken yet. Each of these is
//! freed as soon as it is empty.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustls::server::{ServerConfig, ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
    WriteTraffic,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The largest TLS record on the wire: 16 KiB of plaintext, its content type, up to 256
/// bytes of AEAD expansion and padding, and the 5-byte header.
const MAX_RECORD: usize = 16 * 1024 + 256 + 5 + 1;

/// Plaintext encrypted per record written (one record, rustls's maximum fragment).
const MAX_PLAINTEXT: usize = 16 * 1024;

thread_local! {
    /// One read and encryption buffer per worker thread, used only within one poll.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_RECORD * 2]);
}

/// A TLS 1.2/1.3 server connection over TCP that holds no buffer between records.
pub struct LeanTlsStream {
    tcp: TcpStream,
    conn: UnbufferedServerConnection,
    /// The received head of an incomplete record (or handshake flight): empty between
    /// records.
    partial: Vec<u8>,
    /// Decrypted bytes the reader has not taken yet, from `plain_at`.
    plain: Vec<u8>,
    plain_at: usize,
    /// Encrypted bytes the socket has not taken yet, from `unsent_at`.
    unsent: Vec<u8>,
    unsent_at: usize,
    /// The peer closed (close_notify or end of stream).
    eof: bool,
    /// Our close_notify is queued.
    close_queued: bool,
}

impl std::fmt::Debug for LeanTlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeanTlsStream")
            .field("peer", &self.tcp.peer_addr().ok())
            .field("partial", &self.partial.len())
            .field("plain", &(self.plain.len() - self.plain_at))
            .field("unsent", &(self.unsent.len() - self.unsent_at))
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

fn tls_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}"))
}

/// Appends a handshake-layer record to `unsent`.
fn encode_into(
    data: &mut rustls::unbuffered::EncodeTlsData<'_, ServerConnectionData>,
    unsent: &mut Vec<u8>,
) -> io::Result<()> {
    let start = unsent.len();
    let mut room = 1024;
    loop {
        unsent.resize(start + room, 0);
        match data.encode(&mut unsent[start..]) {
            Ok(n) => {
                unsent.truncate(start + n);
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                room = required_size;
            }
            Err(e) => {
                unsent.truncate(start);
                return Err(tls_error(e));
            }
        }
    }
}

impl LeanTlsStream {
    /// Starts the server side of a TLS connection on `tcp`; the handshake runs as the stream
    /// is read (wrap the whole exchange in a timeout).
    ///
    /// # Errors
    /// When rustls refuses the configuration.
    pub fn new(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<Self> {
        let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
        Ok(Self {
            tcp,
            conn,
            partial: Vec::new(),
            plain: Vec::new(),
            plain_at: 0,
            unsent: Vec::new(),
            unsent_at: 0,
            eof: false,
            close_queued: false,
        })
    }

    /// The TCP connection underneath.
    #[must_use]
    pub fn get_ref(&self) -> &TcpStream {
        &self.tcp
    }

    /// Bytes this connection holds in buffers of its own right now (the lean-connection
    /// unit tests check that this is zero while idle).
    #[must_use]
    pub fn buffered_capacity(&self) -> usize {
        self.partial.capacity() + self.plain.capacity() + self.unsent.capacity()
    }

    /// Processes every complete record at the front of `buf`: decrypted data goes to
    /// `plain`, handshake output to `unsent`. Returns how many bytes were consumed.
    fn process(
        conn: &mut UnbufferedServerConnection,
        buf: &mut [u8],
        plain: &mut Vec<u8>,
        unsent: &mut Vec<u8>,
        eof: &mut bool,
    ) -> io::Result<usize> {
        let mut at = 0;
        loop {
            let UnbufferedStatus { mut discard, state } = conn.process_tls_records(&mut buf[at..]);
            let mut done = false;
            match state.map_err(tls_error)? {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        let record = record.map_err(tls_error)?;
                        discard += record.discard;
                        plain.extend_from_slice(record.payload);
                    }
                }
                ConnectionState::ReadEarlyData(mut early) => {
                    while let Some(record) = early.next_record() {
                        let record = record.map_err(tls_error)?;
                        discard += record.discard;
                        plain.extend_from_slice(record.payload);
                    }
                }
                ConnectionState::EncodeTlsData(mut data) => encode_into(&mut data, unsent)?,
                // The encoded bytes wait in `unsent`, which goes out before anything
                // written later, so they count as handed to the transport.
                ConnectionState::TransmitTlsData(data) => data.done(),
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    *eof = true;
                    done = true;
                }
                _ => done = true,
            }
            at += discard;
            if done {
                return Ok(at);
            }
        }
    }

    /// Completes the handshake (its last flight written); application data that arrives
    /// with it waits for the reader.
    ///
    /// # Errors
    /// The peer's TLS errors, or the end of the stream before the handshake is complete.
    pub async fn handshake(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| {
            ready!(self.poll_fill(cx, true))?;
            if self.conn.is_handshaking() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "TLS: the connection ended during the handshake",
                )));
            }
            self.poll_send_unsent(cx)
        })
        .await
    }

    /// Reads from the socket until decrypted data or the end of the stream is there (or,
    /// with `handshake_only`, until the handshake is complete).
    fn poll_fill(&mut self, cx: &mut Context<'_>, handshake_only: bool) -> Poll<io::Result<()>> {
        loop {
            if self.plain_at < self.plain.len()
                || self.eof
                || (handshake_only && !self.conn.is_handshaking())
            {
                return Poll::Ready(Ok(()));
            }
            // Handshake output goes out as soon as the socket takes it; if it does not,
            // the write interest registered here wakes the reader.
            if let Poll::Ready(Err(e)) = self.poll_send_unsent(cx) {
                return Poll::Ready(Err(e));
            }
            ready!(self.tcp.poll_read_ready(cx))?;
            let read = SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let n = match self.tcp.try_read(&mut scratch[..MAX_RECORD]) {
                    Ok(0) => return Ok(None),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Some(())),
                    Err(e) => return Err(e),
                };
                if self.partial.is_empty() {
                    let used = Self::process(
                        &mut self.conn,
                        &mut scratch[..n],
                        &mut self.plain,
                        &mut self.unsent,
                        &mut self.eof,
                    )?;
                    if used < n && !self.eof {
                        self.partial.extend_from_slice(&scratch[used..n]);
                    }
                } else {
                    let mut partial = std::mem::take(&mut self.partial);
                    partial.extend_from_slice(&scratch[..n]);
                    let used = Self::process(
                        &mut self.conn,
                        &mut partial,
                        &mut self.plain,
                        &mut self.unsent,
                        &mut self.eof,
                    )?;
                    partial.drain(..used.min(partial.len()));
                    if !partial.is_empty() && !self.eof {
                        partial.shrink_to_fit();
                        self.partial = partial;
                    }
                }
                Ok(Some(()))
            })?;
            if read.is_none() {
                // End of stream without close_notify: a truncation, unless nothing was
                // pending (cameras that lose power close like this).
                self.eof = true;
                if !self.partial.is_empty() {
                    self.partial = Vec::new();
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "TLS: the connection ended inside a record",
                    )));
                }
            }
        }
    }

    /// Writes `unsent` to the socket; ready when it is all written (and freed).
    fn poll_send_unsent(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.unsent_at < self.unsent.len() {
            ready!(self.tcp.poll_write_ready(cx))?;
            match self.tcp.try_write(&self.unsent[self.unsent_at..]) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.unsent_at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        if self.unsent.capacity() > 0 {
            self.unsent = Vec::new();
            self.unsent_at = 0;
        }
        Poll::Ready(Ok(()))
    }

    /// Runs `f` on the connection's write state (once the handshake is complete).
    fn with_write_traffic<R>(
        &mut self,
        f: impl FnOnce(&mut WriteTraffic<'_, ServerConnectionData>) -> R,
    ) -> io::Result<R> {
        let mut f = Some(f);
        loop {
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut self.partial);
            let outcome = match state.map_err(tls_error)? {
                ConnectionState::WriteTraffic(mut traffic) => f.take().map(|f| f(&mut traffic)),
                ConnectionState::EncodeTlsData(mut data) => {
                    encode_into(&mut data, &mut self.unsent)?;
                    None
                }
                ConnectionState::TransmitTlsData(data) => {
                    data.done();
                    None
                }
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        self.plain
                            .extend_from_slice(record.map_err(tls_error)?.payload);
                    }
                    None
                }
                ConnectionState::BlockedHandshake => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        "TLS: the handshake is not complete",
                    ));
                }
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "TLS: the connection is closed",
                    ));
                }
                _ => {
                    return Err(io::Error::other("TLS: unexpected connection state"));
                }
            };
            if discard > 0 {
                self.partial.drain(..discard.min(self.partial.len()));
            }
            if let Some(r) = outcome {
                return Ok(r);
            }
        }
    }
}

impl AsyncRead for LeanTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_fill(cx, false))?;
        let pending = &this.plain[this.plain_at..];
        let n = pending.len().min(buf.remaining());
        buf.put_slice(&pending[..n]);
        this.plain_at += n;
        if this.plain_at == this.plain.len() && this.plain.capacity() > 0 {
            this.plain = Vec::new();
            this.plain_at = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for LeanTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Nothing new is encrypted while the socket has not taken what was: the writer
        // waits instead of the connection buffering without bound.
        ready!(this.poll_send_unsent(cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let take = data.len().min(MAX_PLAINTEXT);
        let written = SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let sealed = this.with_write_traffic(|traffic| {
                match traffic.encrypt(&data[..take], &mut scratch[..]) {
                    Ok(n) => Ok(n),
                    Err(EncryptError::InsufficientSize(InsufficientSizeError {
                        required_size,
                    })) => Err(io::Error::other(format!(
                        "TLS: a record needs {required_size} bytes"
                    ))),
                    Err(e) => Err(tls_error(e)),
                }
            })??;
            // Handshake-layer bytes queued before (a key update) go first.
            if this.unsent.is_empty() {
                let sent = match this.tcp.try_write(&scratch[..sealed]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(e) => return Err(e),
                };
                this.unsent.extend_from_slice(&scratch[sent..sealed]);
            } else {
                this.unsent.extend_from_slice(&scratch[..sealed]);
            }
            Ok(take)
        })?;
        if !this.unsent.is_empty() {
            // Start sending the rest now; the next write or flush finishes it.
            if let Poll::Ready(Err(e)) = this.poll_send_unsent(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send_unsent(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_queued {
            this.close_queued = true;
            let mut alert = [0u8; 64];
            if let Ok(Ok(n)) = this.with_write_traffic(|t| t.queue_close_notify(&mut alert)) {
                this.unsent.extend_from_slice(&alert[..n]);
            }
        }
        ready!(this.poll_send_unsent(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
