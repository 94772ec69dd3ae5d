//! The host's Storage Queues bindings, in memory: what a queue output binding makes of a reply's `Outputs`, and the
//! queues the queue triggers read, with `DequeueCount`, the visibility timeout and the poison queue as the Storage
//! Queues extension applies them (`QueuesOptions`, `QueueProcessor`).
//!
//! Time is compressed like Event Grid's retry schedule: host.json's `visibilityTimeout` is waited in milliseconds
//! instead of seconds.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use super::envelope::{QueueMessage, uuid_like};

/// How much shorter the stand-in's waits are than host.json's.
pub const TIME_SCALE: u32 = 1000;

/// A message waiting in a queue.
#[derive(Debug, Clone)]
struct Stored {
    message: QueueMessage,
    visible_at: Instant,
}

/// Every queue of the app's storage account.
#[derive(Debug, Default)]
pub struct Queues {
    queues: BTreeMap<String, VecDeque<Stored>>,
    /// Messages taken for delivery and not yet settled.
    in_flight: usize,
}

/// The messages a queue output binding writes for a value of `Outputs` (`FunctionBinding.ReadAsEnumerable`, then
/// `GetBindingValue`): each element of an array (objects as indented JSON, strings as they are), a single object as
/// indented JSON, a single string base64-decoded when it is valid base64 (the host's rule for every string output),
/// else as JSON when it reads as an object or array, else as it is.
pub fn messages_of(value: &Value) -> Vec<Vec<u8>> {
    let text_of = |element: &Value| -> Vec<u8> {
        match element {
            Value::String(text) => text.clone().into_bytes(),
            other => serde_json::to_string_pretty(other).unwrap().into_bytes(),
        }
    };
    match value {
        Value::Null => Vec::new(),
        Value::Array(elements) => elements.iter().map(text_of).collect(),
        Value::String(text) => {
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text) {
                return vec![bytes];
            }
            match serde_json::from_str::<Value>(text) {
                Ok(parsed @ (Value::Object(_) | Value::Array(_))) => messages_of(&parsed),
                _ => vec![text.clone().into_bytes()],
            }
        }
        other => vec![text_of(other)],
    }
}

impl Queues {
    /// Adds a message to a queue, visible at once.
    pub fn push(&mut self, queue: &str, text: String) {
        let message = QueueMessage {
            id: uuid_like(),
            text,
            dequeue_count: 0,
            insertion_time: "2026-11-28T12:00:00+00:00".to_owned(),
        };
        self.queues.entry(queue.to_owned()).or_default().push_back(Stored {
            message,
            visible_at: Instant::now(),
        });
    }

    /// Removes every message of `queue`, visible or not; returns their texts.
    pub fn drain(&mut self, queue: &str) -> Vec<String> {
        self.queues
            .remove(queue)
            .map(|waiting| waiting.into_iter().map(|stored| stored.message.text).collect())
            .unwrap_or_default()
    }

    /// Takes up to `batch` visible messages of `queue` for delivery, each with its dequeue count raised.
    pub fn take(&mut self, queue: &str, batch: usize) -> Vec<QueueMessage> {
        let now = Instant::now();
        let Some(waiting) = self.queues.get_mut(queue) else {
            return Vec::new();
        };
        let mut taken = Vec::new();
        let mut kept = VecDeque::new();
        while let Some(mut stored) = waiting.pop_front() {
            if taken.len() < batch && stored.visible_at <= now {
                stored.message.dequeue_count += 1;
                taken.push(stored.message);
            } else {
                kept.push_back(stored);
            }
        }
        *waiting = kept;
        self.in_flight += taken.len();
        taken
    }

    /// Settles a delivered message: deleted when its function succeeded; otherwise visible again after the
    /// visibility timeout, or moved to `{queue}-poison` once delivered `max_dequeue_count` times. Returns whether it
    /// was moved to the poison queue.
    pub fn settle(
        &mut self,
        queue: &str,
        message: QueueMessage,
        succeeded: bool,
        visibility_timeout: Duration,
        max_dequeue_count: u32,
    ) -> bool {
        self.in_flight -= 1;
        if succeeded {
            return false;
        }
        if message.dequeue_count >= max_dequeue_count && !queue.ends_with("-poison") {
            self.push(&format!("{queue}-poison"), message.text);
            return true;
        }
        let visible_at = Instant::now() + visibility_timeout / TIME_SCALE;
        self.queues
            .entry(queue.to_owned())
            .or_default()
            .push_back(Stored { message, visible_at });
        false
    }

    /// Whether nothing waits in any queue and nothing is being delivered.
    pub fn idle(&self) -> bool {
        self.in_flight == 0 && self.queues.values().all(VecDeque::is_empty)
    }

    /// The texts of the messages waiting in a queue.
    pub fn texts(&self, queue: &str) -> Vec<String> {
        self.queues
            .get(queue)
            .map(|waiting| waiting.iter().map(|s| s.message.text.clone()).collect())
            .unwrap_or_default()
    }
}
