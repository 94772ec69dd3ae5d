//! A loopback TCP proxy that tests put between the handler and a server, to take the server away: refuse and cut
//! every connection, or black-hole it (connections open, nothing answers), then bring it back; or to slow it down,
//! delaying every piece of data it forwards. Its listener stays bound the whole time, so its port can never be
//! taken by another process while the server is "away".

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::ports::Port;
use super::rng::Rng;

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

    /// A campaign's network faults, until `done`: every 300–900 ms, a quarter of the time a slowdown (20–400 ms per
    /// read, for 200–800 ms), half the time a cut (every connection cut, new ones refused, for 20–200 ms), else a
    /// black hole (200–800 ms) — drawn from a shuffled bag of four, so that every four disruptions hold each kind.
    /// `tally` counts them.
    pub async fn disrupt(&self, seed: u64, done: &AtomicBool, tally: &Disruptions) {
        let mut rng = Rng::new(seed);
        let mut bag: Vec<u8> = Vec::new();
        while !done.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(rng.between(300, 900))).await;
            if bag.is_empty() {
                bag = vec![0, 1, 1, 2];
                rng.shuffle(&mut bag);
            }
            let kind = bag.pop().unwrap_or(1);
            if kind == 0 {
                self.set_latency(Duration::from_millis(rng.between(20, 400)));
                tokio::time::sleep(Duration::from_millis(rng.between(200, 800))).await;
                self.set_latency(Duration::ZERO);
                tally.slowdowns.fetch_add(1, Ordering::SeqCst);
            } else if kind == 1 {
                self.stop();
                tokio::time::sleep(Duration::from_millis(rng.between(20, 200))).await;
                self.resume().await;
                tally.cuts.fetch_add(1, Ordering::SeqCst);
            } else {
                self.black_hole().await;
                tokio::time::sleep(Duration::from_millis(rng.between(200, 800))).await;
                self.restore().await;
                tally.black_holes.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    fn cut(&self) {
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

/// The faults [`Proxy::disrupt`] made.
#[derive(Debug, Default)]
pub struct Disruptions {
    pub cuts: AtomicUsize,
    pub black_holes: AtomicUsize,
    pub slowdowns: AtomicUsize,
}

impl Disruptions {
    /// `(label, count)` rows for a campaign's report.
    pub fn rows(&self) -> [(&'static str, usize); 3] {
        [
            ("connections cut", self.cuts.load(Ordering::SeqCst)),
            ("black holes", self.black_holes.load(Ordering::SeqCst)),
            ("slowdowns (20-400 ms)", self.slowdowns.load(Ordering::SeqCst)),
        ]
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
