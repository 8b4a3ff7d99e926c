//! How a service reports billable usage without depending on the service that meters it.
//!
//! Lambda's invoker describes every invocation it ran or refused as an [`InvocationRecord`]
//! and hands it to a [`Meter`]; the metering service implements the trait and the binary
//! wires one to the other. The billing rules both sides must agree on ([`billed_ms`]) live
//! here too, so the `REPORT` line a function's log shows and the usage Stratus reports are
//! the same numbers.

use std::time::Duration;

/// How an invocation ended, as usage reports count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    /// The function answered with an error, crashed, failed its init or answered too much.
    FunctionError,
    /// The function (or its init) ran past its deadline.
    Timeout,
    /// The function's cgroup killed it for memory.
    OutOfMemory,
    /// Refused by a concurrency limit or the memory budget: the function never ran.
    Throttled,
}

impl Outcome {
    /// The name usage reports and metrics use: `success`, `error`, `timeout`,
    /// `out_of_memory`, `throttled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::FunctionError => "error",
            Outcome::Timeout => "timeout",
            Outcome::OutOfMemory => "out_of_memory",
            Outcome::Throttled => "throttled",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "success" => Outcome::Success,
            "error" => Outcome::FunctionError,
            "timeout" => Outcome::Timeout,
            "out_of_memory" => Outcome::OutOfMemory,
            "throttled" => Outcome::Throttled,
            _ => return None,
        })
    }

    /// Counted among Lambda's `Errors`: every way a function that ran can fail.
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Outcome::FunctionError | Outcome::Timeout | Outcome::OutOfMemory
        )
    }
}

/// One invocation, as it is billed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationRecord {
    pub request_id: String,
    pub function: String,
    pub version: String,
    /// When the invocation started (or was refused), milliseconds since the epoch.
    pub start_ms: u64,
    /// From the event handed to the runtime to its answer (zero when throttled).
    pub duration: Duration,
    /// The init phase this invocation waited for: `Some` exactly on a cold start.
    pub init: Option<Duration>,
    /// What Lambda charges for: see [`billed_ms`].
    pub billed_ms: u64,
    pub memory_mb: u32,
    pub max_memory_used_mb: u64,
    pub outcome: Outcome,
}

impl InvocationRecord {
    pub fn cold(&self) -> bool {
        self.init.is_some()
    }
}

/// Lambda's billed duration: the invocation's duration plus, on a cold start, its init
/// duration (billed for every runtime since August 2025), rounded up to the millisecond.
pub fn billed_ms(duration: Duration, init: Option<Duration>) -> u64 {
    let total = duration + init.unwrap_or_default();
    // Whole milliseconds, rounded up: 1.000 ms bills 1, 1.001 ms bills 2.
    let nanos = total.as_nanos();
    nanos.div_ceil(1_000_000).try_into().unwrap_or(u64::MAX)
}

/// Takes usage records. Called on the hot path of every invocation: an implementation must
/// never block and should cost no more than a queue push.
pub trait Meter: Send + Sync {
    fn record(&self, record: InvocationRecord);
}

/// A meter that keeps nothing, for servers and tests that do not meter.
pub struct NoMeter;

impl Meter for NoMeter {
    fn record(&self, _: InvocationRecord) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billed_duration_rounds_up_to_the_millisecond() {
        let ms = Duration::from_millis;
        let us = Duration::from_micros;
        for (duration, init, billed) in [
            (Duration::ZERO, None, 0),
            (us(1), None, 1),
            (ms(1), None, 1),
            (us(1001), None, 2),
            (us(200_400), None, 201),
            // Cold: init is billed, and the sum is rounded once.
            (us(100_400), Some(us(250_300)), 351),
            (ms(100), Some(ms(250)), 350),
            (Duration::ZERO, Some(us(10)), 1),
        ] {
            assert_eq!(billed_ms(duration, init), billed, "{duration:?} + {init:?}");
        }
    }

    #[test]
    fn outcome_names_round_trip_and_errors_are_the_failures_of_a_run() {
        for o in [
            Outcome::Success,
            Outcome::FunctionError,
            Outcome::Timeout,
            Outcome::OutOfMemory,
            Outcome::Throttled,
        ] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert!(!Outcome::Success.is_error());
        assert!(!Outcome::Throttled.is_error());
        assert!(Outcome::Timeout.is_error() && Outcome::OutOfMemory.is_error());
    }
}
