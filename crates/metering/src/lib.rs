//! Usage metering: what every invocation cost, kept durably, reported per function with an
//! estimated AWS price, and the Prometheus metrics of the whole server.
//!
//! [`Metering`] implements [`stratus_aws::Meter`], the hook Lambda's invoker calls once per
//! invocation that ran (sync, async or on a provisioned environment) and once per throttle.
//! That call is on the invocation's path, so it only pushes the record onto a bounded
//! in-memory queue: it never blocks and never allocates beyond the record; when the queue
//! is full the record is dropped and counted (`stratus_metering_dropped_records_total`).
//! One writer thread drains the queue every [`MeteringOptions::tick`], updates the
//! invocation metrics, and appends the records to `<data-dir>/usage.db` (SQLite, WAL,
//! `synchronous = FULL`, its own file so metering never contends with the metadata store)
//! in one transaction per batch: every [`MeteringOptions::flush_interval`] or
//! [`MeteringOptions::batch_max`] records, whichever comes first.
//!
//! Guarantee: a record is committed at most `tick + flush_interval` (1.1 s by default) after
//! its invocation ended, plus the commit's own time; so an invocation that ended 2 s before
//! the server is killed (even `kill -9`, or power loss once committed) is in the usage. A
//! graceful stop commits everything queued ([`Metering::close`]). Reports
//! ([`Metering::usage`]) flush first, so they include every invocation that ended before
//! they were asked for.
//!
//! Retention: rows older than [`MeteringOptions::retention_days`] (default 90) are deleted,
//! and beyond [`MeteringOptions::max_rows`] (default 5 million, about 1 GB) the oldest
//! rows go; checked at start and hourly.
//!
//! The server's other metrics (requests per service and operation, environments, the async
//! queue) are kept here too ([`Metering::observe_request`], [`PlatformGauges`]) and
//! rendered by [`Metering::render_metrics`] with `prometheus-client`.
//!
//! Invariant: no HTTP and no knowledge of Lambda's types: records arrive as
//! [`stratus_aws::InvocationRecord`], requests as names and numbers, gauges as values the
//! binary reads from the invoker.

mod metrics;
mod store;
pub mod usage;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use stratus_aws::{InvocationRecord, Meter};

pub use metrics::{MAX_OPERATIONS, PlatformGauges};
pub use usage::{FunctionUsage, Prices};

/// The usage database's name in the data directory.
pub const DB_FILE: &str = "usage.db";

#[derive(Debug, thiserror::Error)]
pub enum MeteringError {
    #[error("usage database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("starting the metering thread: {0}")]
    Thread(std::io::Error),
    #[error("writing usage records: {0}")]
    Write(String),
    #[error("the metering thread has stopped")]
    Stopped,
}

/// How metering queues, batches and retains records.
#[derive(Debug, Clone)]
pub struct MeteringOptions {
    /// Records queued at most between the invocations and the writer; more are dropped.
    pub queue_capacity: usize,
    /// How often the writer drains the queue (and so how stale the invocation metrics may be).
    pub tick: Duration,
    /// Longest a drained record waits before its batch is committed.
    pub flush_interval: Duration,
    /// A batch this large is committed at once.
    pub batch_max: usize,
    /// Rows older than this many days are deleted.
    pub retention_days: u32,
    /// At most this many rows are kept; the oldest go first.
    pub max_rows: u64,
    /// Prices for the estimate in usage reports.
    pub prices: Prices,
}

impl Default for MeteringOptions {
    fn default() -> Self {
        MeteringOptions {
            queue_capacity: 65_536,
            tick: Duration::from_millis(100),
            flush_interval: Duration::from_secs(1),
            batch_max: 8192,
            retention_days: 90,
            max_rows: 5_000_000,
            prices: Prices::default(),
        }
    }
}

/// What a usage report covers.
#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    /// Invocations that started at or after this time (ms since the epoch); 0 for all.
    pub since_ms: u64,
    pub function: Option<String>,
}

/// A usage report: per function, and the prices its estimate used.
#[derive(Debug, Clone, Serialize)]
pub struct UsageReport {
    pub since_ms: u64,
    /// When the report was made, ms since the epoch.
    pub until_ms: u64,
    pub functions: Vec<FunctionUsage>,
    pub prices: Prices,
    /// Records dropped since the server started (queue full): usage may be that much short.
    pub dropped_records: u64,
}

const RETENTION_PERIOD: Duration = Duration::from_secs(3600);

struct Inner {
    tx: SyncSender<InvocationRecord>,
    metrics: metrics::Metrics,
    db: PathBuf,
    opts: MeteringOptions,
    /// Flush requests: each is answered once everything queued before it is committed.
    flushes: Mutex<Vec<SyncSender<Result<(), String>>>>,
    stopping: AtomicBool,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// The metering service. Cheap to clone.
#[derive(Clone)]
pub struct Metering {
    inner: Arc<Inner>,
}

impl Metering {
    /// Opens `<data_dir>/usage.db` (creating it), enforces retention, and starts the writer.
    pub fn open(data_dir: &Path, opts: MeteringOptions) -> Result<Metering, MeteringError> {
        let db = data_dir.join(DB_FILE);
        let conn = store::open(&db)?;
        let removed = store::enforce_retention(&conn, cutoff_ms(&opts), opts.max_rows)?;
        if removed > 0 {
            tracing::info!(removed, "usage records past retention deleted");
        }
        let (tx, rx) = mpsc::sync_channel(opts.queue_capacity.max(1));
        let inner = Arc::new(Inner {
            tx,
            metrics: metrics::Metrics::new(),
            db,
            opts,
            flushes: Mutex::default(),
            stopping: AtomicBool::new(false),
            writer: Mutex::new(None),
        });
        let weak = Arc::downgrade(&inner);
        let handle = std::thread::Builder::new()
            .name("stratus-metering".into())
            .spawn(move || writer(weak, rx, conn))
            .map_err(MeteringError::Thread)?;
        *inner.writer.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(Metering { inner })
    }

    /// Waits until every record queued before the call is committed.
    pub fn flush(&self) -> Result<(), MeteringError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.inner
            .flushes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
        self.wake();
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(MeteringError::Write(e)),
            Err(_) => Err(MeteringError::Stopped),
        }
    }

    /// Commits everything queued and stops the writer (a graceful server stop).
    pub fn close(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.wake();
        let handle = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = handle
            && h.join().is_err()
        {
            tracing::error!("the metering thread panicked");
        }
    }

    fn wake(&self) {
        if let Some(h) = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            h.thread().unpark();
        }
    }

    /// Usage per function over the query's period. Flushes first; reads on the calling
    /// thread (call it on a blocking pool).
    pub fn usage(&self, q: &UsageQuery) -> Result<UsageReport, MeteringError> {
        self.flush()?;
        let conn = store::open_reader(&self.inner.db)?;
        let rows = store::rows(&conn, q.since_ms, q.function.as_deref())?;
        let prices = self.inner.opts.prices;
        Ok(UsageReport {
            since_ms: q.since_ms,
            until_ms: now_ms(),
            functions: usage::summarize(rows, &prices),
            prices,
            dropped_records: self.inner.metrics.dropped.get(),
        })
    }

    /// Counts an API request answered by `service` (its signing name; `""` for none).
    pub fn observe_request(
        &self,
        service: &'static str,
        operation: &str,
        status: u16,
        elapsed: Duration,
    ) {
        self.inner
            .metrics
            .request(service, operation, status, elapsed);
    }

    /// The Prometheus exposition (OpenMetrics text) of every metric, with `gauges` read
    /// from the platform by the caller.
    pub fn render_metrics(&self, gauges: PlatformGauges) -> String {
        self.inner.metrics.render(gauges)
    }

    /// The content type of [`Metering::render_metrics`]'s text.
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";
}

impl Meter for Metering {
    fn record(&self, record: InvocationRecord) {
        match self.inner.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.inner.metrics.dropped.inc();
            }
        }
    }
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> u64 {
    stratus_aws::clock::now_ms().max(0) as u64
}

fn cutoff_ms(opts: &MeteringOptions) -> u64 {
    now_ms().saturating_sub(u64::from(opts.retention_days) * 86_400_000)
}

/// The writer thread: drains the queue each tick, counts the records in the metrics, and
/// commits them in batches. Ends when the service is dropped or closed, after a last commit.
fn writer(
    inner: std::sync::Weak<Inner>,
    rx: Receiver<InvocationRecord>,
    mut conn: rusqlite::Connection,
) {
    let mut batch: Vec<InvocationRecord> = Vec::new();
    let mut oldest: Option<Instant> = None;
    let mut last_retention = Instant::now();
    loop {
        let Some(inner) = inner.upgrade() else {
            // Dropped without close: commit what is left.
            batch.extend(rx.try_iter());
            // Logged by `commit`: there is no one left to tell.
            let _ = commit(&mut conn, &mut batch, None);
            return;
        };
        let flushes: Vec<_> =
            std::mem::take(&mut *inner.flushes.lock().unwrap_or_else(|p| p.into_inner()));
        let stopping = inner.stopping.load(Ordering::SeqCst);
        let mut result = Ok(());
        for r in rx.try_iter() {
            inner.metrics.invocation(&r);
            batch.push(r);
            if batch.len() >= inner.opts.batch_max {
                if let Err(e) = commit(&mut conn, &mut batch, Some(&inner.metrics)) {
                    result = Err(e);
                }
                oldest = None;
            }
        }
        if !batch.is_empty() && oldest.is_none() {
            oldest = Some(Instant::now());
        }
        let due = oldest.is_some_and(|t| t.elapsed() >= inner.opts.flush_interval);
        if (due || !flushes.is_empty() || stopping)
            && let Err(e) = commit(&mut conn, &mut batch, Some(&inner.metrics))
        {
            result = Err(e);
        }
        if batch.is_empty() {
            oldest = None;
        }
        for f in flushes {
            let _ = f.try_send(result.clone());
        }
        if stopping {
            return;
        }
        if last_retention.elapsed() >= RETENTION_PERIOD {
            last_retention = Instant::now();
            match store::enforce_retention(&conn, cutoff_ms(&inner.opts), inner.opts.max_rows) {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "usage records past retention deleted"),
                Err(e) => tracing::warn!(error = %e, "enforcing usage retention"),
            }
        }
        let tick = inner.opts.tick;
        drop(inner);
        std::thread::park_timeout(tick);
    }
}

/// Commits `batch` (emptied whatever happens: a batch the database refuses is lost, and
/// logged, rather than retried forever).
fn commit(
    conn: &mut rusqlite::Connection,
    batch: &mut Vec<InvocationRecord>,
    metrics: Option<&metrics::Metrics>,
) -> Result<(), String> {
    if batch.is_empty() {
        return Ok(());
    }
    let result = store::insert(conn, batch);
    let n = batch.len();
    batch.clear();
    match result {
        Ok(()) => {
            if let Some(m) = metrics {
                m.written.inc_by(n as u64);
            }
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, records = n, "writing usage records");
            Err(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests;
