//! Per-connection kill switch, so fault injection can drop a connection
//! without sending any response (like a crashed or restarted pveproxy).

use std::future::{ready, Ready};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use axum::http::Request;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Handle stored in every request's extensions; `kill` makes all further
/// I/O on that connection fail, so it is closed without a response.
#[derive(Clone, Debug, Default)]
pub struct ConnectionKill {
    killed: Arc<AtomicBool>,
    read_waker: Arc<Mutex<Option<Waker>>>,
}

impl ConnectionKill {
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        let waker = self
            .read_waker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection dropped by fault injection",
    )
}

/// A TCP stream that fails every operation once its [`ConnectionKill`] fired.
#[derive(Debug)]
pub struct KillableStream {
    inner: TcpStream,
    kill: ConnectionKill,
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.kill.is_killed() {
            return Poll::Ready(Err(aborted()));
        }
        *self
            .kill
            .read_waker
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.kill.is_killed() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.kill.is_killed() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// axum-server acceptor (inner to the TLS acceptor) that wraps each TCP
/// stream and hands the connection's kill switch to the service.
#[derive(Clone, Copy, Debug, Default)]
pub struct KillableAcceptor;

impl<S> axum_server::accept::Accept<TcpStream, S> for KillableAcceptor {
    type Stream = KillableStream;
    type Service = KillService<S>;
    type Future = Ready<io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let _ = stream.set_nodelay(true);
        let kill = ConnectionKill::default();
        ready(Ok((
            KillableStream {
                inner: stream,
                kill: kill.clone(),
            },
            KillService {
                inner: service,
                kill,
            },
        )))
    }
}

/// Adds the connection's [`ConnectionKill`] to request extensions.
#[derive(Clone, Debug)]
pub struct KillService<S> {
    inner: S,
    kill: ConnectionKill,
}

impl<S, B> tower::Service<Request<B>> for KillService<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.kill.clone());
        self.inner.call(req)
    }
}
