//! The listener: a TCP listener whose connections can be reset on demand. Each accepted stream
//! carries a shared flag; the request handler sees the same flag (through axum's connect info,
//! together with the peer address) and sets it to inject a "connection reset" fault. The next
//! write on the stream then sets `SO_LINGER` to zero and fails, so hyper drops the socket and the
//! kernel sends a TCP RST instead of a response. While no request is being handled on it, a read
//! that waits longer than the idle timeout ends the connection, so a client that stops sending
//! half-way through the request head (or idles on a keep-alive connection) cannot hold it forever;
//! a slow handler (injected latency) does not count as idleness.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

/// The peer of a connection and its reset switch.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Remote address.
    pub addr: SocketAddr,
    reset: Arc<AtomicBool>,
    busy: Arc<AtomicUsize>,
}

impl Peer {
    /// Makes the connection end with a TCP reset instead of the response.
    pub fn reset(&self) {
        self.reset.store(true, Ordering::SeqCst);
    }

    /// Marks a request as in progress on this connection until the guard is dropped (the idle
    /// timeout does not run meanwhile).
    pub fn busy(&self) -> BusyGuard {
        self.busy.fetch_add(1, Ordering::SeqCst);
        BusyGuard(self.busy.clone())
    }
}

/// See [`Peer::busy`].
#[derive(Debug)]
pub struct BusyGuard(Arc<AtomicUsize>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, ResettableListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, ResettableListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A TCP listener producing [`ResettableStream`]s.
#[derive(Debug)]
pub struct ResettableListener {
    inner: TcpListener,
    idle: Duration,
}

impl ResettableListener {
    /// Wraps a bound listener; reads idle for longer than `idle` end their connection.
    pub fn new(inner: TcpListener, idle: Duration) -> Self {
        Self { inner, idle }
    }
}

impl Listener for ResettableListener {
    type Io = ResettableStream;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let reset = Arc::new(AtomicBool::new(false));
                    let busy = Arc::new(AtomicUsize::new(0));
                    return (
                        ResettableStream {
                            inner: stream,
                            reset: reset.clone(),
                            busy: busy.clone(),
                            idle: self.idle,
                            deadline: None,
                        },
                        Peer { addr, reset, busy },
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Accept failed.");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.inner.local_addr()?,
            reset: Arc::new(AtomicBool::new(false)),
            busy: Arc::new(AtomicUsize::new(0)),
        })
    }
}

/// A TCP stream that fails (and resets) once its flag is set, and fails a read that stays idle
/// for longer than its idle timeout.
#[derive(Debug)]
pub struct ResettableStream {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
    busy: Arc<AtomicUsize>,
    idle: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl ResettableStream {
    fn check(&self) -> io::Result<()> {
        if self.reset.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset by fault injection",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending if this.busy.load(Ordering::SeqCst) > 0 => {
                this.deadline = None;
                Poll::Pending
            }
            Poll::Pending => {
                let idle = this.idle;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.deadline = None;
                        Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "connection idle too long",
                        )))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            ready => {
                this.deadline = None;
                ready
            }
        }
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
