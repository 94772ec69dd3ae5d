//! A loopback TCP proxy that tests put between the handler and a server, to take the server away: refuse and cut
//! every connection, or black-hole it (connections open, nothing answers), then bring it back; or to slow it down,
//! delaying every piece of data it forwards. Its listener stays bound the whole time, so its port can never be
//! taken by another process while the server is "away".

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::ports::Port;

/// What the proxy does with a connection.
const FORWARD: u8 = 0;
/// Accept, then close at once: the server is down.
const REFUSE: u8 = 1;
/// Accept, read, never answer: the server is unreachable.
const BLACK_HOLE: u8 = 2;

pub struct Proxy {
    pub port: u16,
    _reserved: Port,
    mode: Arc<AtomicU8>,
    /// The delay added to every read forwarded, in microseconds; 0 forwards at once.
    latency_us: Arc<AtomicU64>,
    accept: JoinHandle<()>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    /// Starts forwarding a reserved loopback port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let reserved = Port::reserve();
        let listener = TcpListener::bind(("127.0.0.1", reserved.0)).await.unwrap();
        let mode = Arc::new(AtomicU8::new(FORWARD));
        let latency_us: Arc<AtomicU64> = Arc::default();
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let (mode, latency, connections) = (mode.clone(), latency_us.clone(), connections.clone());
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let mode = mode.load(Ordering::SeqCst);
                    let latency = latency.clone();
                    let connection = tokio::spawn(handle(client, upstream, mode, latency));
                    let mut open = connections.lock().unwrap();
                    open.retain(|task| !task.is_finished());
                    open.push(connection);
                }
            })
        };
        Proxy {
            port: reserved.0,
            _reserved: reserved,
            mode,
            latency_us,
            accept,
            connections,
        }
    }

    /// Delays everything forwarded from now on by `delay` (zero: no delay), on open connections too.
    pub fn set_latency(&self, delay: Duration) {
        self.latency_us.store(delay.as_micros() as u64, Ordering::SeqCst);
    }

    /// Takes the server away: every open connection is cut, and new ones are closed as soon as they open.
    pub fn stop(&self) {
        self.mode.store(REFUSE, Ordering::SeqCst);
        self.cut();
    }

    /// Brings the server back.
    pub async fn resume(&self) {
        self.mode.store(FORWARD, Ordering::SeqCst);
    }

    /// Cuts every connection and swallows new ones without an answer, until [`Proxy::restore`].
    pub async fn black_hole(&self) {
        self.mode.store(BLACK_HOLE, Ordering::SeqCst);
        self.cut();
    }

    /// Ends a black hole: held connections are cut, new ones are forwarded again.
    pub async fn restore(&self) {
        self.mode.store(FORWARD, Ordering::SeqCst);
        self.cut();
    }

    fn cut(&self) {
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

async fn handle(mut client: TcpStream, upstream: SocketAddr, mode: u8, latency: Arc<AtomicU64>) {
    match mode {
        REFUSE => {
            let _ = client.set_zero_linger();
        }
        BLACK_HOLE => {
            let mut sink = [0u8; 4096];
            while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
        }
        _ => {
            if let Ok(server) = TcpStream::connect(upstream).await {
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::join!(
                    forward(client_read, server_write, &latency),
                    forward(server_read, client_write, &latency)
                );
            }
        }
    }
}

/// Copies one direction of a connection, waiting the current latency before each piece; closes the far side's
/// writing half at the end, as the near side did.
async fn forward(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, latency_us: &AtomicU64) {
    let mut buffer = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        let delay = latency_us.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_micros(delay)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
