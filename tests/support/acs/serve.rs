//! A loopback HTTP/1.1 server in a thread of its own with its own tokio runtime, so that sync tests, async tests of
//! any flavour and benches can all run one; each answer may drop its connection, and have it reset rather than
//! closed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::support::ports::Port;

/// The largest request body read; ACS's GETs and DELETEs have none.
const MAX_REQUEST_BODY: usize = 1024 * 1024;

pub(crate) type Body = UnsyncBoxBody<Bytes, io::Error>;
/// A response, or `Err` to drop the connection without one.
pub(crate) type Answer = Result<Response<Body>, io::Error>;

/// A server on a reserved loopback port, with its own thread and tokio runtime; dropping it stops the runtime (every
/// connection with it), joins the thread and then releases the port.
pub(crate) struct Background {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Declared last: released only once the listener is closed.
    pub(crate) port: Port,
}

impl Background {
    /// Serves every request, its body read whole, with `handler`.
    pub(crate) fn start<H, F>(name: &str, handler: H) -> Background
    where
        H: Fn(Request<Bytes>, Hangup) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Answer> + Send + 'static,
    {
        // Another process may have taken a port since its reservation: then try another, a few times.
        let (port, listener) = (0..20)
            .find_map(|_| {
                let port = Port::reserve();
                let listener = std::net::TcpListener::bind(("127.0.0.1", port.0)).ok()?;
                Some((port, listener))
            })
            .expect("a loopback port to listen on");
        listener.set_nonblocking(true).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()
            .unwrap();
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                runtime.block_on(accept(listener, handler, stopped));
                // Dropping the runtime drops every connection task, closing its socket.
                drop(runtime);
            })
            .unwrap();
        Background {
            stop: Some(stop),
            thread: Some(thread),
            port,
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept<H, F>(listener: std::net::TcpListener, handler: H, mut stopped: oneshot::Receiver<()>)
where
    H: Fn(Request<Bytes>, Hangup) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        tokio::spawn(serve_connection(stream, handler.clone()));
    }
}

async fn serve_connection<H, F>(stream: TcpStream, handler: H)
where
    H: Fn(Request<Bytes>, Hangup) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    let hangup = Hangup::default();
    let connection = Connection {
        stream,
        reset: hangup.0.clone(),
    };
    let service = service_fn(move |request: Request<Incoming>| {
        let (handler, hangup) = (handler.clone(), hangup.clone());
        async move {
            let (parts, body) = request.into_parts();
            let body = Limited::new(body, MAX_REQUEST_BODY)
                .collect()
                .await
                .map_err(io::Error::other)?
                .to_bytes();
            handler(Request::from_parts(parts, body), hangup).await
        }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(connection), service)
        .await;
}

/// A body sent whole.
pub(crate) fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}

/// Lets an answer have its connection reset (RST) rather than closed (FIN) once hyper lets it go.
#[derive(Clone, Default)]
pub(crate) struct Hangup(Arc<AtomicBool>);

impl Hangup {
    pub(crate) fn reset(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A connection that, once asked to reset, neither shuts down its writing half (a FIN would let the client see a
/// clean end) nor lingers when dropped: closing it then sends a reset.
struct Connection {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.reset.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            let _ = self.stream.set_zero_linger();
        }
    }
}
