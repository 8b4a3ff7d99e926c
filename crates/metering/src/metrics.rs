//! The Prometheus metrics, kept with `prometheus-client` and rendered in its text format
//! (OpenMetrics 1.0, which Prometheus scrapes and its text parsers read).
//!
//! Labels are bounded: functions by the functions that exist, services by those the binary
//! registers, operations by [`MAX_OPERATIONS`] per service (json-protocol operations come
//! from the request's `X-Amz-Target`, so a client could otherwise make up any number).
//! Request ids never become labels.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use stratus_aws::{InvocationRecord, Outcome};

/// Distinct operation labels kept per service; more are counted as `other`.
pub const MAX_OPERATIONS: usize = 256;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabels {
    function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    function: String,
    /// `error`, `timeout` or `out_of_memory`.
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    service: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    service: String,
    operation: String,
    /// The status class: `2xx`, `4xx`, `5xx`...
    code: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds, 1 ms to about 15 minutes (Lambda's longest timeout), doubling.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

/// Seconds, 100 µs to about 52 s, doubling: API requests, Invoke included.
fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Handles of one (service, operation), so a request updates its series without building
/// labels.
struct OperationHandles {
    duration: Histogram,
    by_class: [OnceLock<Counter>; 5],
    service: String,
    operation: String,
}

/// Gauges read from the platform at each scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PlatformGauges {
    /// Execution environments alive, and those of them idle.
    pub live_environments: u64,
    pub idle_environments: u64,
    /// Asynchronous events queued (waiting, delayed or running).
    pub queue_depth: u64,
    /// Age of the oldest queued event; zero when the queue is empty.
    pub oldest_event_age: Duration,
}

pub(crate) struct Metrics {
    registry: Registry,
    invocations: Family<FunctionLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    throttles: Family<FunctionLabels, Counter>,
    cold_starts: Family<FunctionLabels, Counter>,
    duration: HistogramFamily<FunctionLabels>,
    init_duration: HistogramFamily<FunctionLabels>,
    gb_seconds: Family<FunctionLabels, Counter<f64, AtomicU64>>,
    environments: Family<StateLabels, Gauge>,
    queue_depth: Gauge,
    oldest_event_age: Gauge<f64, AtomicU64>,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<OperationLabels>,
    pub(crate) dropped: Counter,
    pub(crate) written: Counter,
    operations: RwLock<HashMap<&'static str, HashMap<Box<str>, OperationHandles>>>,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            invocations: Family::default(),
            errors: Family::default(),
            throttles: Family::default(),
            cold_starts: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            init_duration: Family::new_with_constructor(duration_histogram),
            gb_seconds: Family::default(),
            environments: Family::default(),
            queue_depth: Gauge::default(),
            oldest_event_age: Gauge::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(request_histogram),
            dropped: Counter::default(),
            written: Counter::default(),
            operations: RwLock::default(),
        };
        let mut registry = Registry::default();
        registry.register(
            "stratus_lambda_invocations",
            "Invocations that ran (throttles excluded), by function",
            m.invocations.clone(),
        );
        registry.register(
            "stratus_lambda_errors",
            "Invocations that failed, by function and kind (error, timeout, out_of_memory)",
            m.errors.clone(),
        );
        registry.register(
            "stratus_lambda_throttles",
            "Invocations refused by a concurrency limit or the memory budget, by function",
            m.throttles.clone(),
        );
        registry.register(
            "stratus_lambda_cold_starts",
            "Invocations that waited for a new execution environment's init, by function",
            m.cold_starts.clone(),
        );
        registry.register_with_unit(
            "stratus_lambda_duration",
            "Invocation duration, init excluded, by function",
            Unit::Seconds,
            m.duration.clone(),
        );
        registry.register_with_unit(
            "stratus_lambda_init_duration",
            "Init duration of cold starts, by function",
            Unit::Seconds,
            m.init_duration.clone(),
        );
        registry.register(
            "stratus_lambda_gb_seconds",
            "Billed duration times configured memory (GB-seconds), by function",
            m.gb_seconds.clone(),
        );
        registry.register(
            "stratus_lambda_environments",
            "Execution environments alive (state=live) and, of those, idle (state=idle)",
            m.environments.clone(),
        );
        registry.register(
            "stratus_lambda_async_queue_depth",
            "Asynchronous events queued: waiting, delayed or running",
            m.queue_depth.clone(),
        );
        registry.register_with_unit(
            "stratus_lambda_async_oldest_event_age",
            "Age of the oldest queued asynchronous event (0 when none)",
            Unit::Seconds,
            m.oldest_event_age.clone(),
        );
        registry.register(
            "stratus_requests",
            "API requests answered, by service, operation and status class",
            m.requests.clone(),
        );
        registry.register_with_unit(
            "stratus_request_duration",
            "API request latency to the response's head, by service and operation",
            Unit::Seconds,
            m.request_duration.clone(),
        );
        registry.register(
            "stratus_metering_dropped_records",
            "Usage records dropped because the metering queue was full",
            m.dropped.clone(),
        );
        registry.register(
            "stratus_metering_written_records",
            "Usage records committed to usage.db",
            m.written.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts one usage record (on the writer thread, off the invocation's path).
    pub(crate) fn invocation(&self, r: &InvocationRecord) {
        let f = FunctionLabels {
            function: r.function.clone(),
        };
        if r.outcome == Outcome::Throttled {
            self.throttles.get_or_create(&f).inc();
            return;
        }
        self.invocations.get_or_create(&f).inc();
        if r.outcome.is_error() {
            self.errors
                .get_or_create(&ErrorLabels {
                    function: r.function.clone(),
                    kind: r.outcome.as_str(),
                })
                .inc();
        }
        if let Some(init) = r.init {
            self.cold_starts.get_or_create(&f).inc();
            self.init_duration
                .get_or_create(&f)
                .observe(init.as_secs_f64());
        }
        self.duration
            .get_or_create(&f)
            .observe(r.duration.as_secs_f64());
        self.gb_seconds
            .get_or_create(&f)
            .inc_by(crate::usage::gb_seconds(r.billed_ms, r.memory_mb));
    }

    /// Counts one API request (on the request's thread: a read lock and atomic adds once
    /// its operation has been seen).
    pub(crate) fn request(
        &self,
        service: &'static str,
        operation: &str,
        status: u16,
        elapsed: Duration,
    ) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        let seen = {
            let ops = self.operations.read().unwrap_or_else(|p| p.into_inner());
            ops.get(service)
                .and_then(|m| m.get(operation))
                .map(|h| self.observe(h, class, elapsed))
                .is_some()
        };
        if seen {
            return;
        }
        let mut ops = self.operations.write().unwrap_or_else(|p| p.into_inner());
        let per_service = ops.entry(service).or_default();
        let operation =
            if per_service.len() >= MAX_OPERATIONS && !per_service.contains_key(operation) {
                "other"
            } else {
                operation
            };
        let h = per_service.entry(operation.into()).or_insert_with(|| {
            let labels = OperationLabels {
                service: label(service),
                operation: label(operation),
            };
            OperationHandles {
                duration: self.request_duration.get_or_create_owned(&labels),
                by_class: Default::default(),
                service: labels.service,
                operation: labels.operation,
            }
        });
        self.observe(h, class, elapsed);
    }

    fn observe(&self, h: &OperationHandles, class: usize, elapsed: Duration) {
        h.duration.observe(elapsed.as_secs_f64());
        h.by_class[class]
            .get_or_init(|| {
                self.requests.get_or_create_owned(&RequestLabels {
                    service: h.service.clone(),
                    operation: h.operation.clone(),
                    code: CLASSES[class],
                })
            })
            .inc();
    }

    /// The exposition text, with the platform's gauges as given.
    pub(crate) fn render(&self, g: PlatformGauges) -> String {
        self.environments
            .get_or_create(&StateLabels { state: "live" })
            .set(g.live_environments as i64);
        self.environments
            .get_or_create(&StateLabels { state: "idle" })
            .set(g.idle_environments as i64);
        self.queue_depth.set(g.queue_depth as i64);
        self.oldest_event_age.set(g.oldest_event_age.as_secs_f64());
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Writing to a String cannot fail; a metric that fails to encode is a bug.
            tracing::error!(error = %e, "encoding the metrics");
        }
        out
    }
}

fn label(s: &str) -> String {
    if s.is_empty() {
        "unknown".into()
    } else {
        s.into()
    }
}
