//! Event Grid, simulated: it delivers events to the stand-in host's Event Grid webhook in batches, at least once, in
//! any order, several batches at a time, with random duplicates and its retry schedule compressed in time. A batch
//! the webhook does not accept (anything but 2xx) is delivered again whole — the events of it that had succeeded
//! included — and a batch that runs out of attempts is dead-lettered, as Event Grid does.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::host::{Host, Invocation};
use super::rng::Rng;

/// How the simulated subscription delivers.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Batches in flight at once.
    pub concurrency: usize,
    /// The most events in one batch (Event Grid's "max events per batch": 1 by default, up to 5000).
    pub max_events_per_batch: usize,
    /// Whether events are sent in random order rather than as given.
    pub shuffle: bool,
    /// The chance that an accepted batch is delivered once more, later.
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
            max_events_per_batch: 4,
            shuffle: true,
            duplicate_rate: 0.1,
            schedule: [10, 30, 60, 300, 600, 1000].map(Duration::from_millis).to_vec(),
            max_attempts: 30,
        }
    }
}

impl Subscription {
    /// One event per batch, one batch at a time, in the order given, no duplicates: the simplest faithful delivery.
    pub fn in_order() -> Self {
        Self {
            concurrency: 1,
            max_events_per_batch: 1,
            shuffle: false,
            duplicate_rate: 0.0,
            ..Self::default()
        }
    }
}

/// What the simulator did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub events: usize,
    pub batches: usize,
    /// Webhook calls, first attempts, retries and duplicates together.
    pub deliveries: usize,
    pub retries: usize,
    pub duplicates: usize,
    /// Indexes of events whose batch was never accepted.
    pub dead_lettered: Vec<usize>,
    /// For each event, the `Logs` line of every successful invocation.
    pub accepted: Vec<Vec<String>>,
    /// For each event, its last invocation.
    pub last: Vec<Option<Invocation>>,
    /// For each event, how many times it was sent.
    pub attempts: Vec<usize>,
}

struct Pending {
    events: Vec<usize>,
    attempt: usize,
    not_before: Instant,
}

/// Delivers every event to `function` until its batch is accepted or runs out of attempts.
pub async fn deliver(
    host: &Host,
    function: &str,
    events: &[Value],
    subscription: &Subscription,
    rng: &mut Rng,
) -> Report {
    let texts: Vec<String> = events.iter().map(Value::to_string).collect();
    deliver_texts(host, function, &texts, subscription, rng).await
}

/// [`deliver`] with each event given as the exact text Event Grid sends.
pub async fn deliver_texts(
    host: &Host,
    function: &str,
    events: &[String],
    subscription: &Subscription,
    rng: &mut Rng,
) -> Report {
    let mut order: Vec<usize> = (0..events.len()).collect();
    if subscription.shuffle {
        rng.shuffle(&mut order);
    }
    let mut batches = Vec::new();
    let mut rest = &order[..];
    while !rest.is_empty() {
        let size = (rng.between(1, subscription.max_events_per_batch as u64 + 1) as usize).min(rest.len());
        batches.push(rest[..size].to_vec());
        rest = &rest[size..];
    }
    let now = Instant::now();
    let outstanding = AtomicUsize::new(batches.len());
    let report = Mutex::new(Report {
        events: events.len(),
        batches: batches.len(),
        accepted: vec![Vec::new(); events.len()],
        last: vec![None; events.len()],
        attempts: vec![0; events.len()],
        ..Report::default()
    });
    let queue: Arc<Mutex<VecDeque<Pending>>> = Arc::new(Mutex::new(
        batches
            .into_iter()
            .map(|events| Pending {
                events,
                attempt: 1,
                not_before: now,
            })
            .collect(),
    ));
    let seeds: Vec<u64> = (0..subscription.concurrency.max(1)).map(|_| rng.next_u64()).collect();
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
                let batch = format!(
                    "[{}]",
                    pending
                        .events
                        .iter()
                        .map(|e| events[*e].as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                );
                let (status, invocations) = host.event_grid_webhook(function, &batch).await;
                let accepted = (200..300).contains(&status);
                report_add(report, |r| {
                    r.deliveries += 1;
                    for (event, invocation) in pending.events.iter().zip(invocations) {
                        r.attempts[*event] += 1;
                        if invocation.succeeded() {
                            r.accepted[*event].push(invocation.log());
                        }
                        r.last[*event] = Some(invocation);
                    }
                });
                let mut queue = queue.lock().unwrap();
                if accepted {
                    if pending.attempt > 0 && rng.chance(subscription.duplicate_rate) {
                        // At least once: the same batch again, a little later (attempt 0 marks a duplicate).
                        report_add(report, |r| r.duplicates += 1);
                        queue.push_back(Pending {
                            events: pending.events,
                            attempt: 0,
                            not_before: Instant::now() + Duration::from_millis(rng.between(1, 200)),
                        });
                    } else {
                        outstanding.fetch_sub(1, Ordering::SeqCst);
                    }
                } else if pending.attempt.max(1) < subscription.max_attempts {
                    report_add(report, |r| r.retries += 1);
                    let step = pending.attempt.max(1) - 1;
                    let wait = subscription.schedule[step.min(subscription.schedule.len() - 1)];
                    queue.push_back(Pending {
                        events: pending.events,
                        attempt: pending.attempt.max(1) + 1,
                        not_before: Instant::now() + wait,
                    });
                } else {
                    report_add(report, |r| r.dead_lettered.extend(&pending.events));
                    outstanding.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
    });
    futures_util::future::join_all(workers).await;
    report.into_inner().unwrap()
}

fn report_add(report: &Mutex<Report>, change: impl FnOnce(&mut Report)) {
    change(&mut report.lock().unwrap());
}

/// Event Grid delivering to one host's `RecordingEvent`, for tests that deliver a few events in order.
pub struct EventGrid<'a> {
    pub host: &'a Host,
    pub subscription: Subscription,
}

/// What became of one event.
#[derive(Debug)]
pub struct Delivery {
    pub attempts: usize,
    pub delivered: bool,
    pub last: Option<Invocation>,
}

impl<'a> EventGrid<'a> {
    pub fn new(host: &'a Host) -> Self {
        Self {
            host,
            subscription: Subscription::in_order(),
        }
    }

    /// With these waits between attempts, and as many attempts as waits plus one.
    pub fn with_schedule(host: &'a Host, schedule: Vec<Duration>) -> Self {
        let max_attempts = schedule.len() + 1;
        Self {
            host,
            subscription: Subscription {
                schedule,
                max_attempts,
                ..Subscription::in_order()
            },
        }
    }

    /// Delivers one event until the handler accepts it or the attempts run out (Event Grid would dead-letter it).
    pub async fn deliver(&self, event: &Value) -> Delivery {
        let mut rng = Rng::new(1);
        let mut report = deliver(
            self.host,
            "RecordingEvent",
            std::slice::from_ref(event),
            &self.subscription,
            &mut rng,
        )
        .await;
        Delivery {
            attempts: report.attempts[0],
            delivered: report.dead_lettered.is_empty(),
            last: report.last.remove(0),
        }
    }

    /// Delivers every event, one after another in order, asserting each was accepted.
    pub async fn deliver_all(&self, events: &[Value]) {
        for event in events {
            let delivery = self.deliver(event).await;
            assert!(
                delivery.delivered,
                "not delivered: {:?}\n{}",
                delivery.last,
                self.host.output()
            );
        }
    }
}
