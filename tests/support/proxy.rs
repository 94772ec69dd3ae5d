//! A loopback TCP proxy that tests put between the handler and a store server, to take the server away: refuse
//! and cut every connection, or black-hole it (connections open, nothing answers), then bring it back; or to slow
//! it down, delaying every piece of data it forwards.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    pub port: u16,
    upstream: SocketAddr,
    black_hole: Arc<AtomicBool>,
    /// The delay added to every read forwarded, in microseconds; 0 forwards at once.
    latency_us: Arc<AtomicU64>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    /// Starts forwarding a free loopback port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        // A reserved port: while the proxy is stopped its port is unbound, and no handler may take it.
        let port = super::free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let proxy = Proxy {
            port,
            upstream,
            black_hole: Arc::default(),
            latency_us: Arc::default(),
            tasks: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (upstream, tasks, black_hole) = (self.upstream, self.tasks.clone(), self.black_hole.clone());
        let latency = self.latency_us.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let black_hole = black_hole.load(Ordering::SeqCst);
                let latency = latency.clone();
                let connection = tokio::spawn(async move {
                    if black_hole {
                        let mut sink = [0u8; 4096];
                        while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
                    } else if let Ok(server) = TcpStream::connect(upstream).await {
                        let (client_read, client_write) = client.into_split();
                        let (server_read, server_write) = server.into_split();
                        tokio::join!(
                            forward(client_read, server_write, &latency),
                            forward(server_read, client_write, &latency)
                        );
                    }
                });
                tasks.lock().unwrap().push(connection);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Delays everything forwarded from now on by `delay` (zero: no delay), on open connections too.
    pub fn set_latency(&self, delay: Duration) {
        self.latency_us.store(delay.as_micros() as u64, Ordering::SeqCst);
    }

    /// Takes the server away: the port refuses connections and every open connection is cut.
    pub fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Brings the server back on the same port.
    pub async fn resume(&self) {
        self.black_hole.store(false, Ordering::SeqCst);
        self.resume_keeping_mode().await;
    }

    /// Cuts every connection and swallows new ones without an answer, until [`Proxy::restore`].
    pub async fn black_hole(&self) {
        self.stop();
        self.black_hole.store(true, Ordering::SeqCst);
        self.resume_keeping_mode().await;
    }

    /// Ends a black hole: held connections are cut, new ones are forwarded again.
    pub async fn restore(&self) {
        self.stop();
        self.resume().await;
    }

    async fn resume_keeping_mode(&self) {
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        self.serve(listener);
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
        self.stop();
        super::release_port(self.port);
    }
}
