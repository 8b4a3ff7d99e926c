//! Asynchronous invocation (`InvocationType: Event`): a durable queue in the store, and the
//! dispatcher that runs queued events with Lambda's retry rules and delivers the outcome to
//! destinations.
//!
//! An event is committed to the store before the caller gets its 202, and leaves the store
//! only in the same commit that records its outcome (a destination event, or nothing), so a
//! crash at any point loses nothing: after a restart the dispatcher runs what is left. That
//! is at-least-once delivery, as on Lambda: a crash mid-invocation runs the event again.
//!
//! What to run next is decided in memory ([`schedule`]): per function a FIFO of ready events in
//! arrival order, a timer heap for retries, lanes taken in turn. It is rebuilt from the store at
//! start and changed only after the store is: the store stays the source of truth, the
//! schedule only spares a scan of it on every dispatch.
//!
//! Capacity: an event whose function is at a concurrency limit (reserved concurrency, the
//! unreserved pool, the memory budget) *waits*, without counting as an attempt, at the head of
//! its function's lane, until the invoker announces a release ([`Invoker::on_capacity`]) or the
//! function's reserved concurrency changes; then it runs at once. A wait is bounded by the
//! event's age and by a fallback re-check ([`FALLBACK`]). Lambda likewise retries throttled
//! events for up to six hours without using retry attempts; `MaximumEventAgeInSeconds` still
//! applies, after which the event goes to the failure destination (`EventAgeExceeded`).
//!
//! Retries: a function error is retried `MaximumRetryAttempts` times (default 2), `base`
//! then `2 × base` later (Lambda: one minute, then two). Platform errors are retried with
//! exponential backoff from two seconds up to five minutes, until the event is older than
//! `MaximumEventAgeInSeconds`.

mod schedule;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use stratus_lambda::{EventInvokeConfig, FunctionRef, FunctionService, LambdaError};
use stratus_store::{Expect, Op, Store};
use tokio::sync::{Notify, Semaphore};

use crate::invoker::Invoker;
use crate::limits::{Freed, Throttle};
use crate::logs::now_ms;
use crate::request::{Code, InvokeError, InvokeRequest, InvokeResult};
use schedule::{Arrival, Limit, Schedule, Ticket};

const EVENTS: &str = "lambda.async-events";
/// Lambda's cap on an asynchronous payload.
pub const MAX_ASYNC_PAYLOAD: usize = 1024 * 1024;
const MAX_SYSTEM_BACKOFF: Duration = Duration::from_secs(300);
/// Events dispatched at once.
const DISPATCH_CONCURRENCY: usize = 64;
/// The longest an event waits for capacity without looking again, should a release go
/// unannounced (a function deleted, or its reservation dropped with it).
pub const FALLBACK: Duration = Duration::from_secs(5);
/// How soon an event is looked at again after the queue itself failed (a store error).
const ERROR_DELAY: Duration = Duration::from_secs(1);
/// Events read from the store at a time while rebuilding the schedule.
const REBUILD_PAGE: usize = 128;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct QueuedEvent {
    request_id: String,
    function: String,
    qualifier: Option<String>,
    /// Base64 of the payload.
    payload: String,
    enqueued_ms: u64,
    /// Arrival order among events accepted in the same millisecond (absent before it was
    /// recorded: 0).
    #[serde(default)]
    seq: u64,
    due_ms: u64,
    /// Function errors so far.
    failures: u32,
    /// Invocations attempted so far (waits for capacity excluded), AWS's
    /// `approximateInvokeCount`.
    invocations: u32,
    /// Platform errors so far, for the backoff.
    system_retries: u32,
}

impl QueuedEvent {
    fn arrival(&self) -> Arrival {
        Arrival {
            enqueued_ms: self.enqueued_ms,
            seq: self.seq,
        }
    }
}

/// A new event's key; it keeps it until it leaves the store (retries rewrite the document in
/// place). Keys order nothing: the schedule orders by arrival.
fn key(ev: &QueuedEvent) -> String {
    format!("{:016}/{:012}/{}", ev.enqueued_ms, ev.seq, ev.request_id)
}

/// What an attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// Not admitted: a limit is in use.
    Refused(Limit),
    /// The platform failed (creating the environment, I/O).
    PlatformError,
    Succeeded,
    FunctionError,
}

/// What the queue does next with the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Wait for capacity: not an attempt, nothing to record.
    Wait(Limit),
    /// Record the counters and run it again at this time.
    Retry(u64),
    /// Deliver the success record.
    Succeed,
    /// Retries are used up: deliver the failure record.
    Exhausted,
}

/// Lambda's retry rules, a pure function of the event's counters and the attempt: updates
/// the counters and says what comes next. `expiry` is the first moment the event is too old; a
/// retry is never put off past it, so an event that cannot run is given up when its age runs
/// out, not at its next try.
fn after(
    ev: &mut QueuedEvent,
    attempt: Attempt,
    max_retries: u32,
    retry_base: Duration,
    now: u64,
    expiry: u64,
) -> Next {
    match attempt {
        Attempt::Refused(limit) => Next::Wait(limit),
        Attempt::PlatformError => {
            ev.system_retries += 1;
            let backoff =
                Duration::from_secs(1 << ev.system_retries.min(9)).min(MAX_SYSTEM_BACKOFF);
            Next::Retry((now + backoff.as_millis() as u64).min(expiry))
        }
        Attempt::Succeeded => {
            ev.invocations += 1;
            Next::Succeed
        }
        Attempt::FunctionError => {
            ev.invocations += 1;
            ev.failures += 1;
            if ev.failures > max_retries {
                Next::Exhausted
            } else {
                let delay = retry_base * ev.failures;
                Next::Retry((now + delay.as_millis() as u64).min(expiry))
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// The delay before the first retry of a function error (doubled for the second).
    pub retry_base: Duration,
}

struct Inner {
    store: Store,
    functions: FunctionService,
    invoker: Invoker,
    opts: QueueOptions,
    /// Told when the schedule may have something to dispatch.
    notify: Notify,
    schedule: Mutex<Schedule>,
    /// The next event's `seq`.
    seq: AtomicU64,
    slots: Arc<Semaphore>,
}

impl Inner {
    fn schedule(&self) -> MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Clone)]
pub struct AsyncQueue {
    inner: Arc<Inner>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Lambda(#[from] LambdaError),
    #[error(transparent)]
    Store(#[from] stratus_store::StoreError),
    #[error("{0}")]
    Encoding(String),
}

fn encode(ev: &QueuedEvent) -> Result<Vec<u8>, QueueError> {
    serde_json::to_vec(ev).map_err(|e| QueueError::Encoding(e.to_string()))
}

fn as_json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn iso(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// How the processing of a ticket ended, for the schedule.
enum Outcome {
    /// Out of the store.
    Done,
    Retry(u64),
    Wait(Limit, u64),
}

/// What a commit adds to the queue (destination events), inserted into the schedule once
/// the commit is durable.
type Added = Vec<(String, QueuedEvent)>;

impl AsyncQueue {
    /// Starts the dispatcher; it resumes whatever a previous run left queued.
    pub fn start(
        store: Store,
        functions: FunctionService,
        invoker: Invoker,
        opts: QueueOptions,
    ) -> AsyncQueue {
        let q = AsyncQueue {
            inner: Arc::new(Inner {
                store,
                functions,
                invoker,
                opts,
                notify: Notify::new(),
                schedule: Mutex::new(Schedule::new(FALLBACK)),
                seq: AtomicU64::new(0),
                slots: Arc::new(Semaphore::new(DISPATCH_CONCURRENCY)),
            }),
        };
        if let Err(e) = q.rebuild() {
            tracing::error!(error = %e, "reading the event queue; some events wait for the next start");
        }
        let weak = Arc::downgrade(&q.inner);
        q.inner.invoker.on_capacity(move |freed| {
            // Runs after every invocation: the dispatcher is woken only when a lane was.
            if let Some(inner) = weak.upgrade()
                && inner.schedule().freed(freed)
            {
                inner.notify.notify_one();
            }
        });
        let weak = Arc::downgrade(&q.inner);
        q.inner.functions.on_concurrency_change(move |name| {
            if let Some(inner) = weak.upgrade() {
                let mut s = inner.schedule();
                // A raised reservation frees slots of the function; any change resizes the
                // unreserved pool.
                s.freed(Freed::Function(name));
                s.freed(Freed::Pool);
                drop(s);
                inner.notify.notify_one();
            }
        });
        let weak = Arc::downgrade(&q.inner);
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { break };
                let q = AsyncQueue { inner };
                let wait = q.dispatch();
                // notify_one keeps a permit when nobody waits, so a wake-up sent while
                // dispatching is not lost.
                tokio::select! {
                    _ = q.inner.notify.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        });
        q
    }

    /// Reads every queued event's key, function and times into the schedule.
    fn rebuild(&self) -> Result<(), QueueError> {
        let now = now_ms();
        let mut after: Option<String> = None;
        let mut max_seq = 0;
        let mut events = 0usize;
        loop {
            let page = self
                .inner
                .store
                .meta
                .list(EVENTS, "", after.as_deref(), REBUILD_PAGE)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            let mut s = self.inner.schedule();
            for (k, doc) in page {
                match serde_json::from_slice::<QueuedEvent>(&doc.value) {
                    Ok(ev) => {
                        max_seq = max_seq.max(ev.seq);
                        s.insert(k, ev.function.clone(), ev.arrival(), ev.due_ms, now);
                        events += 1;
                    }
                    Err(e) => {
                        tracing::error!(key = %k, error = %e, "dropping an unreadable queued event");
                        self.inner
                            .store
                            .meta
                            .commit(&[Op::delete(EVENTS, &k, Expect::Any)])?;
                    }
                }
            }
        }
        self.inner.seq.store(max_seq + 1, Ordering::Relaxed);
        if events > 0 {
            tracing::info!(events, "resuming queued asynchronous events");
        }
        Ok(())
    }

    /// Accepts an event: durable when this returns. Returns its request id.
    pub fn enqueue(
        &self,
        function: &str,
        qualifier: Option<&str>,
        payload: &[u8],
    ) -> Result<String, QueueError> {
        let ev = self.new_event(function.to_owned(), qualifier.map(str::to_owned), payload);
        let k = key(&ev);
        self.inner
            .store
            .meta
            .commit(&[Op::put(EVENTS, &k, encode(&ev)?, Expect::Absent)])?;
        let request_id = ev.request_id.clone();
        self.added(vec![(k, ev)]);
        Ok(request_id)
    }

    fn new_event(
        &self,
        function: String,
        qualifier: Option<String>,
        payload: &[u8],
    ) -> QueuedEvent {
        let now = now_ms();
        QueuedEvent {
            request_id: uuid::Uuid::new_v4().to_string(),
            function,
            qualifier,
            payload: base64::engine::general_purpose::STANDARD.encode(payload),
            enqueued_ms: now,
            seq: self.inner.seq.fetch_add(1, Ordering::Relaxed),
            due_ms: now,
            failures: 0,
            invocations: 0,
            system_retries: 0,
        }
    }

    /// Puts events just committed into the schedule.
    fn added(&self, added: Added) {
        if added.is_empty() {
            return;
        }
        let now = now_ms();
        let mut s = self.inner.schedule();
        for (k, ev) in added {
            s.insert(k, ev.function.clone(), ev.arrival(), ev.due_ms, now);
        }
        drop(s);
        self.inner.notify.notify_one();
    }

    /// Events waiting or running (as the schedule counts them: no store scan).
    pub fn depth(&self) -> u64 {
        self.inner.schedule().len() as u64
    }

    /// When the oldest event still queued (waiting or running) was accepted, in
    /// milliseconds since the epoch. Scans the schedule: for metrics scrapes, not hot paths.
    pub fn oldest_enqueued_ms(&self) -> Option<u64> {
        self.inner.schedule().oldest_arrival_ms()
    }

    /// Starts every event the schedule lets go now; returns how long to wait before looking
    /// again (unless notified first).
    fn dispatch(&self) -> Duration {
        loop {
            let Ok(permit) = self.inner.slots.clone().try_acquire_owned() else {
                // A task ending notifies.
                return FALLBACK;
            };
            let now = now_ms();
            let ticket = {
                let mut s = self.inner.schedule();
                match s.next(now) {
                    Some(t) => t,
                    None => {
                        return s.next_timer().map_or(FALLBACK, |at| {
                            Duration::from_millis(at.saturating_sub(now)).min(FALLBACK)
                        });
                    }
                }
            };
            let q = self.clone();
            tokio::spawn(async move {
                let outcome = match q.process(&ticket).await {
                    Ok(o) => o,
                    Err(e) => {
                        tracing::error!(key = %ticket.key, error = %e, "processing a queued event");
                        Outcome::Retry(now_ms() + ERROR_DELAY.as_millis() as u64)
                    }
                };
                let now = now_ms();
                {
                    let mut s = q.inner.schedule();
                    match outcome {
                        Outcome::Done => s.done(&ticket),
                        Outcome::Retry(due) => s.retry(&ticket, due, now),
                        Outcome::Wait(limit, expiry) => s.throttled(&ticket, limit, expiry, now),
                    }
                }
                drop(permit);
                q.inner.notify.notify_one();
            });
        }
    }

    async fn process(&self, ticket: &Ticket) -> Result<Outcome, QueueError> {
        let functions = self.inner.functions.clone();
        let store = self.inner.store.clone();
        let k = ticket.key.clone();
        let loaded = tokio::task::spawn_blocking(move || -> Result<_, QueueError> {
            let Some(doc) = store.meta.get(EVENTS, &k)? else {
                return Ok(None);
            };
            let ev = match serde_json::from_slice::<QueuedEvent>(&doc.value) {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::error!(key = %k, error = %e, "dropping an unreadable queued event");
                    store.meta.commit(&[Op::delete(EVENTS, &k, Expect::Any)])?;
                    return Ok(None);
                }
            };
            let resolved = (|| {
                let (name, qualifier) = (&ev.function, ev.qualifier.as_deref());
                let view = functions.resolve_for_invoke(name, qualifier)?;
                let cfg = functions.effective_event_config(name, qualifier)?;
                let code = functions.ensure_code(&view.config)?;
                Ok::<_, LambdaError>((view, cfg, code))
            })();
            Ok(Some((ev, resolved)))
        })
        .await
        .map_err(|e| QueueError::Encoding(e.to_string()))??;
        let k = ticket.key.as_str();
        let Some((mut ev, resolved)) = loaded else {
            return Ok(Outcome::Done);
        };
        let (view, cfg, code_path) = match resolved {
            Ok(r) => r,
            Err(LambdaError::NotFound(m)) => {
                tracing::warn!(request_id = %ev.request_id, reason = %m, "dropping an event for a deleted function");
                self.inner
                    .store
                    .meta
                    .commit(&[Op::delete(EVENTS, k, Expect::Any)])?;
                return Ok(Outcome::Done);
            }
            Err(e) => return Err(e.into()),
        };
        let payload = base64::engine::general_purpose::STANDARD
            .decode(ev.payload.as_bytes())
            .map_err(|e| QueueError::Encoding(e.to_string()))?;
        let now = now_ms();
        let expiry = ev.enqueued_ms + u64::from(cfg.max_age_seconds()) * 1000 + 1;
        if now >= expiry {
            self.fail(k, &ev, &cfg, &view.arn, "EventAgeExceeded", None, &payload)?;
            return Ok(Outcome::Done);
        }
        let admission = match self.inner.invoker.admit(
            &view.config.name,
            view.reserved_concurrency,
            self.inner.functions.unreserved_limit(),
        ) {
            Ok(a) => a,
            Err(throttle) => {
                // Each refusal is a throttle, as Lambda counts throttled asynchronous
                // attempts; the event itself waits and runs later.
                self.inner.invoker.meter_throttle(&view.config);
                let limit = match throttle {
                    Throttle::ReservedFunctionConcurrentInvocationLimitExceeded => Limit::Function,
                    Throttle::ConcurrentInvocationLimitExceeded => Limit::Pool,
                };
                return Ok(Outcome::Wait(limit, expiry));
            }
        };
        // Admitted: the function's next event may try for a slot of its own.
        self.inner.schedule().admitted(ticket);
        self.inner.notify.notify_one();
        let function_arn = view.arn.clone();
        let req = InvokeRequest::new(
            &self.inner.functions,
            view,
            ev.qualifier.as_deref(),
            Bytes::from(payload.clone()),
            None,
            Code::At(code_path),
        );
        let result = self.inner.invoker.invoke_admitted(admission, req).await;
        let attempt = match &result {
            // Admitted, so the memory budget refused the new environment.
            Err(InvokeError::Throttled(_)) => Attempt::Refused(Limit::Memory),
            Err(e) => {
                tracing::warn!(request_id = %ev.request_id, error = %e, "asynchronous event: platform error");
                Attempt::PlatformError
            }
            Ok(res) if res.function_error.is_none() => Attempt::Succeeded,
            Ok(_) => Attempt::FunctionError,
        };
        let now = now_ms();
        let next = after(
            &mut ev,
            attempt,
            cfg.retries(),
            self.inner.opts.retry_base,
            now,
            expiry,
        );
        Ok(match (next, result.as_ref().ok()) {
            (Next::Wait(limit), _) => Outcome::Wait(limit, expiry),
            (Next::Retry(due), _) => {
                ev.due_ms = due;
                self.inner.store.meta.commit(&[Op::put(
                    EVENTS,
                    k,
                    encode(&ev)?,
                    Expect::Present,
                )])?;
                Outcome::Retry(due)
            }
            (Next::Succeed, Some(res)) => {
                self.succeed(k, &ev, &cfg, &function_arn, res, &payload)?;
                Outcome::Done
            }
            (Next::Exhausted, res) => {
                self.fail(
                    k,
                    &ev,
                    &cfg,
                    &function_arn,
                    "RetriesExhausted",
                    res,
                    &payload,
                )?;
                Outcome::Done
            }
            (Next::Succeed, None) => {
                return Err(QueueError::Encoding("a success without a result".into()));
            }
        })
    }

    fn record(
        &self,
        ev: &QueuedEvent,
        function_arn: &str,
        condition: &str,
        result: Option<&InvokeResult>,
        payload: &[u8],
    ) -> serde_json::Value {
        let executed = result.map_or("$LATEST".to_owned(), |r| r.executed_version.clone());
        let mut response = serde_json::json!({ "statusCode": 200, "executedVersion": executed });
        if let Some(fe) = result.and_then(|r| r.function_error.clone()) {
            response["functionError"] = serde_json::Value::String(fe);
        }
        let qualified = format!(
            "{function_arn}:{}",
            ev.qualifier.as_deref().unwrap_or("$LATEST")
        );
        let mut rec = serde_json::json!({
            "version": "1.0",
            "timestamp": iso(now_ms()),
            "requestContext": {
                "requestId": ev.request_id,
                "functionArn": qualified,
                "condition": condition,
                "approximateInvokeCount": ev.invocations,
            },
            "requestPayload": as_json(payload),
            "responseContext": response,
        });
        if let Some(r) = result {
            rec["responsePayload"] = as_json(&r.payload);
        }
        rec
    }

    fn succeed(
        &self,
        k: &str,
        ev: &QueuedEvent,
        cfg: &EventInvokeConfig,
        function_arn: &str,
        res: &InvokeResult,
        payload: &[u8],
    ) -> Result<(), QueueError> {
        let mut ops = vec![Op::delete(EVENTS, k, Expect::Any)];
        let mut added = Added::new();
        if let Some(dest) = &cfg.on_success {
            let rec = self.record(ev, function_arn, "Success", Some(res), payload);
            self.delivery(dest, &rec.to_string(), &mut ops, &mut added)?;
        }
        self.inner.store.meta.commit(&ops)?;
        self.added(added);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn fail(
        &self,
        k: &str,
        ev: &QueuedEvent,
        cfg: &EventInvokeConfig,
        function_arn: &str,
        condition: &str,
        res: Option<&InvokeResult>,
        payload: &[u8],
    ) -> Result<(), QueueError> {
        tracing::info!(request_id = %ev.request_id, function = %ev.function, condition, "asynchronous event failed");
        let mut ops = vec![Op::delete(EVENTS, k, Expect::Any)];
        let mut added = Added::new();
        if let Some(dest) = &cfg.on_failure {
            let rec = self.record(ev, function_arn, condition, res, payload);
            self.delivery(dest, &rec.to_string(), &mut ops, &mut added)?;
        } else if let Ok(view) = self.inner.functions.get(&ev.function, None)
            && let Some(dlq) = &view.config.dead_letter_target
        {
            // A dead-letter queue receives the original event.
            self.delivery(dlq, &String::from_utf8_lossy(payload), &mut ops, &mut added)?;
        }
        self.inner.store.meta.commit(&ops)?;
        self.added(added);
        Ok(())
    }

    /// Adds to `ops` the store writes that hand `body` to destination `arn`, committed
    /// together with the removal of the source event, and to `added` the events they create.
    /// Lambda functions are the destination type this build has; other services'
    /// destinations arrive with those services.
    fn delivery(
        &self,
        arn: &str,
        body: &str,
        ops: &mut Vec<Op>,
        added: &mut Added,
    ) -> Result<(), QueueError> {
        if !arn.starts_with("arn:aws:lambda:") {
            tracing::warn!(destination = %arn, "this destination type is not available yet; the record is dropped");
            return Ok(());
        }
        let r = FunctionRef::parse(arn, None, self.inner.functions.scope())?;
        let ev = self.new_event(r.name, r.qualifier, body.as_bytes());
        let k = key(&ev);
        ops.push(Op::put(EVENTS, &k, encode(&ev)?, Expect::Absent));
        added.push((k, ev));
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn event(failures: u32, invocations: u32, system_retries: u32) -> QueuedEvent {
        QueuedEvent {
            request_id: "r".into(),
            function: "f".into(),
            qualifier: None,
            payload: String::new(),
            enqueued_ms: 0,
            seq: 0,
            due_ms: 0,
            failures,
            invocations,
            system_retries,
        }
    }

    #[test]
    fn retry_rules_count_attempts_but_never_waits_for_capacity() {
        const BASE: Duration = Duration::from_secs(60);
        const NOW: u64 = 1_000_000;
        const EXPIRY: u64 = NOW + 3_600_000;
        use Attempt::*;
        // (counters before: failures, invocations, system retries), attempt, max retries
        //   → next, counters after
        let table = [
            (
                (0, 0, 0),
                Refused(Limit::Function),
                2,
                Next::Wait(Limit::Function),
                (0, 0, 0),
            ),
            (
                (1, 1, 3),
                Refused(Limit::Pool),
                2,
                Next::Wait(Limit::Pool),
                (1, 1, 3),
            ),
            (
                (0, 0, 0),
                Refused(Limit::Memory),
                0,
                Next::Wait(Limit::Memory),
                (0, 0, 0),
            ),
            ((0, 0, 0), Succeeded, 2, Next::Succeed, (0, 1, 0)),
            (
                (0, 0, 0),
                FunctionError,
                2,
                Next::Retry(NOW + 60_000),
                (1, 1, 0),
            ),
            (
                (1, 1, 0),
                FunctionError,
                2,
                Next::Retry(NOW + 120_000),
                (2, 2, 0),
            ),
            ((2, 2, 0), FunctionError, 2, Next::Exhausted, (3, 3, 0)),
            ((0, 0, 0), FunctionError, 0, Next::Exhausted, (1, 1, 0)),
            (
                (0, 0, 0),
                PlatformError,
                2,
                Next::Retry(NOW + 2_000),
                (0, 0, 1),
            ),
            (
                (0, 0, 3),
                PlatformError,
                2,
                Next::Retry(NOW + 16_000),
                (0, 0, 4),
            ),
            // Capped at five minutes, ...
            (
                (0, 0, 20),
                PlatformError,
                2,
                Next::Retry(NOW + 300_000),
                (0, 0, 21),
            ),
        ];
        for ((f, i, sr), attempt, max, want, (f2, i2, sr2)) in table {
            let mut ev = event(f, i, sr);
            let got = after(&mut ev, attempt, max, BASE, NOW, EXPIRY);
            assert_eq!(got, want, "{attempt:?} after {:?}", (f, i, sr));
            assert_eq!(
                (ev.failures, ev.invocations, ev.system_retries),
                (f2, i2, sr2),
                "{attempt:?}"
            );
        }
        // ... and never past the event's expiry.
        let mut ev = event(0, 0, 0);
        assert_eq!(
            after(&mut ev, FunctionError, 2, BASE, NOW, NOW + 10),
            Next::Retry(NOW + 10)
        );
    }

    #[test]
    fn events_from_before_arrival_numbers_still_read() {
        let old = r#"{"request_id":"r","function":"f","qualifier":null,"payload":"","enqueued_ms":5,"due_ms":5,"failures":0,"invocations":0,"system_retries":0}"#;
        let ev: QueuedEvent = serde_json::from_str(old).unwrap();
        assert_eq!(
            ev.arrival(),
            Arrival {
                enqueued_ms: 5,
                seq: 0
            }
        );
    }
}
