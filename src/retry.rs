//! The handler's retry policies, named by what they wait for, in one place. Each is a `backon` policy; the callers
//! say which errors are worth another try.

use std::time::Duration;

use backon::ExponentialBuilder;

/// How long opening the store keeps trying through transient failures (throttling, an outage): the host waits
/// about 30 s for a new worker to answer, and Event Grid keeps the events meanwhile.
pub const STORE_OPEN_PATIENCE: Duration = Duration::from_secs(20);

/// Opening the store at startup: waits growing from 250 ms to 4 s, for [`STORE_OPEN_PATIENCE`] in all.
pub fn store_open() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(4))
        .without_max_times()
        .with_total_delay(Some(STORE_OPEN_PATIENCE))
}

/// An item of a terminal command (`handler replay`, `handler archive`): three attempts, 0.5 s then 2 s apart, before
/// the item is reported failed and the command's exit status says to run it again.
pub fn command_item() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_factor(4.0)
        .with_max_times(2)
}

/// Deleting a chunk's files at ACS once they are archived: two quick retries, since a failure only leaves files
/// that ACS deletes within a day anyway.
pub fn acs_delete() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(2)
}
