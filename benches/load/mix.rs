//! The event mix the load bench sends: fresh recording events (one to `max_chunks` chunks, `events_per_recording`
//! events per recording), repeats of earlier ones (Event Grid's at-least-once), and events of other ACS types — each
//! in the host's invocation envelope, one JSON text per body.

use serde_json::Value;

use super::support;
use support::events::{call_ended, chunk, recording_event};

/// The event mix: deliveries of fresh recording events (one to `max_chunks` chunks, `events_per_recording` events per
/// recording), repeats of earlier ones, and events of other types.
pub struct Mix {
    pub tag: String,
    pub events_per_recording: u64,
    pub max_chunks: u64,
    pub duplicates: f64,
    pub unrelated: f64,
}

impl Mix {
    /// The first `count` deliveries' bodies.
    pub fn bodies(&self, count: u64) -> impl Iterator<Item = Vec<u8>> + '_ {
        (0..count).map(|n| self.body(n))
    }

    /// Delivery `n`'s body, the same every time it is asked for.
    fn body(&self, n: u64) -> Vec<u8> {
        let roll = unit(n, 1);
        let event = if roll < self.unrelated {
            call_ended(&format!("{}-other-{n}", self.tag))
        } else if !self.is_fresh(n) {
            // A repeat of an earlier fresh event (the nearest at or below a random earlier slot).
            let mut earlier = (unit(n, 2) * n as f64) as u64;
            while earlier > 0 && !self.is_fresh(earlier) {
                earlier -= 1;
            }
            self.recording_event(if self.is_fresh(earlier) { earlier } else { n })
        } else {
            self.recording_event(n)
        };
        support::envelope::event_grid("RecordingEvent", "eventGridEvent", &event.to_string())
    }

    /// Whether delivery `n` is a recording event's first delivery (not an event of another type, not a repeat).
    fn is_fresh(&self, n: u64) -> bool {
        let roll = unit(n, 1);
        roll >= self.unrelated && (roll >= self.unrelated + self.duplicates || n == 0)
    }

    /// The `n`th recording event, the same every time it is asked for.
    fn recording_event(&self, n: u64) -> Value {
        let (recording, part) = (n / self.events_per_recording, n % self.events_per_recording);
        let count = 1 + (unit(n, 3) * self.max_chunks as f64) as u64 % self.max_chunks;
        let first = part * self.max_chunks;
        let chunks: Vec<Value> = (first..first + count)
            .map(|i| chunk(i, &format!("0-eus-d12-{}-{recording}-{i}", self.tag)))
            .collect();
        let second = part % 60;
        recording_event(
            &format!("{}-e{n}", self.tag),
            &format!("{}-call-{recording}", self.tag),
            &format!("{}-rec-{recording}", self.tag),
            &format!("2026-11-27T15:20:{second:02}Z"),
            &chunks,
        )
    }
}

/// A deterministic number in [0, 1) for `n` (splitmix64), one stream per `salt`.
fn unit(n: u64, salt: u64) -> f64 {
    let mut z = n
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}
