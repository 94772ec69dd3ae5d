//! An Event Grid simulator: at-least-once delivery through the stand-in host, in random order, several deliveries
//! in parallel, random duplicates, and Event Grid's retry schedule compressed in time. What it cannot deliver after
//! every attempt it dead-letters, as Event Grid would.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Host;
use super::rng::Rng;

/// How the simulated subscription delivers.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// The chance that a delivered event is delivered once more, later.
    pub duplicate_rate: f64,
    /// Waits between attempts; the last repeats. Event Grid's are 10 s, 30 s, 1 min, 5 min, 10 min, 30 min, 1 h, …
    pub schedule: Vec<Duration>,
    /// Attempts before dead-lettering (Event Grid: 30 by default, within 24 h).
    pub max_attempts: usize,
}

impl Default for Subscription {
    fn default() -> Self {
        Self {
            concurrency: 8,
            duplicate_rate: 0.1,
            schedule: [10, 30, 60, 300, 600, 1000].map(Duration::from_millis).to_vec(),
            max_attempts: 30,
        }
    }
}

/// What the simulator did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub events: usize,
    pub deliveries: usize,
    pub retries: usize,
    pub duplicates: usize,
    /// Indexes of payloads that were never accepted.
    pub dead_lettered: Vec<usize>,
    /// For each payload, the `Logs` line of every accepted delivery.
    pub accepted: Vec<Vec<String>>,
}

struct Pending {
    payload: usize,
    attempt: usize,
    not_before: Instant,
}

/// Delivers every payload (an invocation body) until the handler accepts it or its attempts run out.
pub async fn deliver(host: &Host, payloads: &[Vec<u8>], subscription: &Subscription, rng: &mut Rng) -> Report {
    let mut order: Vec<usize> = (0..payloads.len()).collect();
    rng.shuffle(&mut order);
    let now = Instant::now();
    let queue: Mutex<VecDeque<Pending>> = Mutex::new(
        order
            .into_iter()
            .map(|payload| Pending {
                payload,
                attempt: 1,
                not_before: now,
            })
            .collect(),
    );
    let outstanding = AtomicUsize::new(payloads.len());
    let report = Mutex::new(Report {
        events: payloads.len(),
        accepted: vec![Vec::new(); payloads.len()],
        ..Report::default()
    });
    let seeds: Vec<u64> = (0..subscription.concurrency).map(|_| rng.next_u64()).collect();
    let queue = Arc::new(queue);

    let workers = seeds.into_iter().map(|seed| {
        let queue = queue.clone();
        let (outstanding, report) = (&outstanding, &report);
        async move {
            let mut rng = Rng::new(seed);
            while outstanding.load(Ordering::SeqCst) > 0 {
                let next = {
                    let mut queue = queue.lock().unwrap();
                    let ready = queue.iter().position(|p| p.not_before <= Instant::now());
                    ready.and_then(|i| queue.remove(i))
                };
                let Some(pending) = next else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let answer = host.try_post(payloads[pending.payload].clone()).await;
                let accepted = answer.as_ref().is_ok_and(|answer| answer.succeeded());
                let mut report = report.lock().unwrap();
                report.deliveries += 1;
                if accepted && let Ok(answer) = answer {
                    report.accepted[pending.payload].push(answer.log());
                }
                if accepted {
                    if pending.attempt > 0 && rng.chance(subscription.duplicate_rate) {
                        // At least once: the same event again, a little later (attempt 0 marks a duplicate).
                        report.duplicates += 1;
                        queue.lock().unwrap().push_back(Pending {
                            payload: pending.payload,
                            attempt: 0,
                            not_before: Instant::now() + Duration::from_millis(rng.between(1, 200)),
                        });
                    } else {
                        outstanding.fetch_sub(1, Ordering::SeqCst);
                    }
                } else if pending.attempt.max(1) < subscription.max_attempts {
                    report.retries += 1;
                    let step = pending.attempt.max(1) - 1;
                    let wait = subscription.schedule[step.min(subscription.schedule.len() - 1)];
                    queue.lock().unwrap().push_back(Pending {
                        payload: pending.payload,
                        attempt: pending.attempt.max(1) + 1,
                        not_before: Instant::now() + wait,
                    });
                } else {
                    report.dead_lettered.push(pending.payload);
                    outstanding.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
    });
    futures_util::future::join_all(workers).await;
    report.into_inner().unwrap()
}
