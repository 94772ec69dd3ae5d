//! Waits with a deadline. A test that waits for something names it, and when the deadline passes it fails with
//! that name and what the caller can show of the server it waited on (its last log lines), instead of hanging.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(10);

/// Waits until `done()` holds; panics after `within` with `what` and `context()`.
pub async fn until(what: &str, within: Duration, context: impl Fn() -> String, mut done: impl FnMut() -> bool) {
    until_async(what, within, context, || std::future::ready(done())).await;
}

/// Waits until the future `done()` makes resolves to `true`; panics after `within` with `what` and `context()`.
pub async fn until_async<F: Future<Output = bool>>(
    what: &str,
    within: Duration,
    context: impl Fn() -> String,
    mut done: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    loop {
        if done().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited {within:?} for {what}, in vain; the last lines:\n{}",
            context()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The last lines a server wrote, kept for failure messages.
#[derive(Clone, Default)]
pub struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    const LINES: usize = 40;

    pub fn push(&self, line: &str) {
        let mut lines = self.0.lock().unwrap();
        if lines.len() == Self::LINES {
            lines.pop_front();
        }
        lines.push_back(line.to_owned());
    }

    pub fn text(&self) -> String {
        let lines = self.0.lock().unwrap();
        if lines.is_empty() {
            return "(no output)".to_owned();
        }
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// How a server's start ended.
pub enum Start {
    /// It wrote the line that says it is ready.
    Ready(String),
    /// Its output ended first: it exited (the reserved port was taken by another process, or it failed).
    Ended,
    /// Neither within the deadline: the caller stops it and fails with [`Start::failure`].
    TimedOut,
}

impl Start {
    /// The ready line; `None` when the server's output ended first (another process took the reserved port, say:
    /// the caller tries another). A server that did neither within `within` is stopped and the test fails with
    /// its last lines.
    pub fn ready_line(
        self,
        child: &mut std::process::Child,
        what: &str,
        within: Duration,
        tail: &Tail,
    ) -> Option<String> {
        match self {
            Start::Ready(line) => Some(line),
            Start::Ended | Start::TimedOut => {
                let _ = child.kill();
                let _ = child.wait();
                if matches!(self, Start::TimedOut) {
                    panic!("{}", Start::failure(what, within, tail));
                }
                None
            }
        }
    }

    /// The message for a server that never started.
    pub fn failure(what: &str, within: Duration, tail: &Tail) -> String {
        format!(
            "waited {within:?} for {what} to start, in vain; its last lines:\n{}",
            tail.text()
        )
    }
}

/// Reads a server's output on a thread of its own until it ends, keeping the last lines in `tail` and handing every
/// line to `on_line`; then waits up to `within` for the first line `ready` accepts.
pub fn wait_for_start(
    pipe: impl Read + Send + 'static,
    within: Duration,
    tail: &Tail,
    ready: impl Fn(&str) -> bool + Send + 'static,
    mut on_line: impl FnMut(&str) + Send + 'static,
) -> Start {
    let (sender, receiver) = mpsc::channel();
    let lines = tail.clone();
    std::thread::spawn(move || {
        let mut announced = false;
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            lines.push(&line);
            if !announced && ready(&line) {
                announced = true;
                let _ = sender.send(Some(line.clone()));
            }
            on_line(&line);
        }
        let _ = sender.send(None);
    });
    match receiver.recv_timeout(within) {
        Ok(Some(line)) => Start::Ready(line),
        Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => Start::Ended,
        Err(mpsc::RecvTimeoutError::Timeout) => Start::TimedOut,
    }
}
