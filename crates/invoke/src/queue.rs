//! Asynchronous invocation (`InvocationType: Event`): a durable queue in the store, and the
//! dispatcher that runs queued events with Lambda's retry rules and delivers the outcome to
//! destinations.
//!
//! An event is committed to the store before the caller gets its 202, and leaves the store
//! only in the same commit that records its outcome (a destination event, or nothing), so a
//! crash at any point loses nothing: after a restart the dispatcher runs what is left. That
//! is at-least-once delivery, as on Lambda: a crash mid-invocation runs the event again.
//!
//! Retries: a function error is retried `MaximumRetryAttempts` times (default 2), `base`
//! then `2 × base` later (Lambda: one minute, then two). Throttles and platform errors are
//! retried with exponential backoff from one second up to five minutes, until the event is
//! older than `MaximumEventAgeInSeconds`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use stratus_lambda::{EventInvokeConfig, FunctionRef, FunctionService, LambdaError};
use stratus_store::{Expect, Op, Store};
use tokio::sync::{Notify, Semaphore};

use crate::invoker::{Code, InvokeError, InvokeRequest, InvokeResult, Invoker};
use crate::logs::now_ms;

const EVENTS: &str = "lambda.async-events";
/// Lambda's cap on an asynchronous payload.
pub const MAX_ASYNC_PAYLOAD: usize = 1024 * 1024;
const MAX_SYSTEM_BACKOFF: Duration = Duration::from_secs(300);
/// Events dispatched at once.
const DISPATCH_CONCURRENCY: usize = 64;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct QueuedEvent {
    request_id: String,
    function: String,
    qualifier: Option<String>,
    /// Base64 of the payload.
    payload: String,
    enqueued_ms: u64,
    due_ms: u64,
    /// Function errors so far.
    failures: u32,
    /// Invocations attempted so far (throttles excluded), AWS's `approximateInvokeCount`.
    invocations: u32,
    /// Throttles and platform errors so far, for the backoff.
    system_retries: u32,
}

fn key(ev: &QueuedEvent) -> String {
    format!("{:016}/{}", ev.due_ms, ev.request_id)
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
    notify: Notify,
    running: Mutex<HashSet<String>>,
    slots: Arc<Semaphore>,
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

enum Outcome {
    Done,
    Retry(u64),
}

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
                running: Mutex::default(),
                slots: Arc::new(Semaphore::new(DISPATCH_CONCURRENCY)),
            }),
        };
        let weak = Arc::downgrade(&q.inner);
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { break };
                let q = AsyncQueue { inner };
                let wait = q.dispatch_due().await;
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

    /// Accepts an event: durable when this returns. Returns its request id.
    pub fn enqueue(
        &self,
        function: &str,
        qualifier: Option<&str>,
        payload: &[u8],
    ) -> Result<String, QueueError> {
        let now = now_ms();
        let ev = QueuedEvent {
            request_id: uuid::Uuid::new_v4().to_string(),
            function: function.to_owned(),
            qualifier: qualifier.map(str::to_owned),
            payload: base64::engine::general_purpose::STANDARD.encode(payload),
            enqueued_ms: now,
            due_ms: now,
            failures: 0,
            invocations: 0,
            system_retries: 0,
        };
        self.inner.store.meta.commit(&[Op::put(
            EVENTS,
            &key(&ev),
            encode(&ev)?,
            Expect::Absent,
        )])?;
        self.inner.notify.notify_one();
        Ok(ev.request_id)
    }

    /// Events waiting or running.
    pub fn depth(&self) -> u64 {
        self.inner.store.meta.count(EVENTS, "").unwrap_or(0)
    }

    /// Starts every due event not already running; returns how long to wait before looking
    /// again.
    async fn dispatch_due(&self) -> Duration {
        let now = now_ms();
        let page = match self.inner.store.meta.list(EVENTS, "", None, 512) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "reading the event queue");
                return Duration::from_secs(1);
            }
        };
        for (k, doc) in page {
            let Ok(ev) = serde_json::from_slice::<QueuedEvent>(&doc.value) else {
                tracing::error!(key = %k, "dropping an unreadable queued event");
                let _ = self
                    .inner
                    .store
                    .meta
                    .commit(&[Op::delete(EVENTS, &k, Expect::Any)]);
                continue;
            };
            if ev.due_ms > now {
                return Duration::from_millis((ev.due_ms - now).min(1000));
            }
            {
                let mut running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
                if !running.insert(k.clone()) {
                    continue;
                }
            }
            let Ok(permit) = self.inner.slots.clone().acquire_owned().await else {
                break;
            };
            let q = self.clone();
            tokio::spawn(async move {
                if let Err(e) = q.process(&k, ev).await {
                    tracing::error!(key = %k, error = %e, "processing a queued event");
                }
                q.inner
                    .running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&k);
                q.inner.notify.notify_one();
                drop(permit);
            });
        }
        Duration::from_secs(1)
    }

    async fn process(&self, k: &str, mut ev: QueuedEvent) -> Result<(), QueueError> {
        let functions = self.inner.functions.clone();
        let (name, qualifier) = (ev.function.clone(), ev.qualifier.clone());
        let resolved = tokio::task::spawn_blocking(move || -> Result<_, LambdaError> {
            let view = functions.resolve_for_invoke(&name, qualifier.as_deref())?;
            let cfg = functions.effective_event_config(&name, qualifier.as_deref())?;
            let code = functions.ensure_code(&view.config)?;
            Ok((view, cfg, code))
        })
        .await
        .map_err(|e| QueueError::Encoding(e.to_string()))?;
        let (view, cfg, code_path) = match resolved {
            Ok(r) => r,
            Err(LambdaError::NotFound(m)) => {
                tracing::warn!(request_id = %ev.request_id, reason = %m, "dropping an event for a deleted function");
                self.inner
                    .store
                    .meta
                    .commit(&[Op::delete(EVENTS, k, Expect::Any)])?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let payload = base64::engine::general_purpose::STANDARD
            .decode(ev.payload.as_bytes())
            .map_err(|e| QueueError::Encoding(e.to_string()))?;
        let now = now_ms();
        // The first moment the event is too old; a retry is never put off past it, so an
        // event that cannot run is given up when its age runs out, not at its next try.
        let expiry = ev.enqueued_ms + u64::from(cfg.max_age_seconds()) * 1000 + 1;
        if now >= expiry {
            return self.fail(k, &ev, &cfg, &view.arn, "EventAgeExceeded", None, &payload);
        }
        let invoked_arn = match &ev.qualifier {
            Some(q) => self
                .inner
                .functions
                .scope()
                .qualified_arn(&view.config.name, q),
            None => view.arn.clone(),
        };
        let result = self
            .inner
            .invoker
            .invoke(InvokeRequest {
                config: view.config.clone(),
                code: Code::At(code_path),
                invoked_arn,
                payload: Bytes::from(payload.clone()),
                client_context: None,
                reserved_concurrency: view.reserved_concurrency,
                unreserved_limit: self.inner.functions.unreserved_limit(),
            })
            .await;
        let outcome = match result {
            Err(InvokeError::Throttled(_)) | Err(InvokeError::Platform(_)) => {
                ev.system_retries += 1;
                let backoff =
                    Duration::from_secs(1 << ev.system_retries.min(9)).min(MAX_SYSTEM_BACKOFF);
                Outcome::Retry(now + backoff.as_millis() as u64)
            }
            Ok(res) if res.function_error.is_none() => {
                ev.invocations += 1;
                self.succeed(k, &ev, &cfg, &view.arn, &res, &payload)?;
                Outcome::Done
            }
            Ok(res) => {
                ev.invocations += 1;
                ev.failures += 1;
                if ev.failures > cfg.retries() {
                    self.fail(
                        k,
                        &ev,
                        &cfg,
                        &view.arn,
                        "RetriesExhausted",
                        Some(&res),
                        &payload,
                    )?;
                    Outcome::Done
                } else {
                    let delay = self.inner.opts.retry_base * ev.failures;
                    Outcome::Retry(now + delay.as_millis() as u64)
                }
            }
        };
        if let Outcome::Retry(due) = outcome {
            ev.due_ms = due.min(expiry);
            self.inner.store.meta.commit(&[
                Op::delete(EVENTS, k, Expect::Any),
                Op::put(EVENTS, &key(&ev), encode(&ev)?, Expect::Absent),
            ])?;
        }
        Ok(())
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
        if let Some(dest) = &cfg.on_success {
            let rec = self.record(ev, function_arn, "Success", Some(res), payload);
            ops.extend(self.delivery(dest, &rec.to_string())?);
        }
        self.inner.store.meta.commit(&ops)?;
        self.inner.notify.notify_one();
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
        if let Some(dest) = &cfg.on_failure {
            let rec = self.record(ev, function_arn, condition, res, payload);
            ops.extend(self.delivery(dest, &rec.to_string())?);
        } else if let Ok(view) = self.inner.functions.get(&ev.function, None)
            && let Some(dlq) = &view.config.dead_letter_target
        {
            // A dead-letter queue receives the original event.
            ops.extend(self.delivery(dlq, &String::from_utf8_lossy(payload))?);
        }
        self.inner.store.meta.commit(&ops)?;
        self.inner.notify.notify_one();
        Ok(())
    }

    /// The store writes that hand `body` to destination `arn`, committed together with the
    /// removal of the source event. Lambda functions are the destination type this build
    /// has; other services' destinations arrive with those services.
    fn delivery(&self, arn: &str, body: &str) -> Result<Vec<Op>, QueueError> {
        if !arn.starts_with("arn:aws:lambda:") {
            tracing::warn!(destination = %arn, "this destination type is not available yet; the record is dropped");
            return Ok(Vec::new());
        }
        let r = FunctionRef::parse(arn, None, self.inner.functions.scope())?;
        let now = now_ms();
        let ev = QueuedEvent {
            request_id: uuid::Uuid::new_v4().to_string(),
            function: r.name,
            qualifier: r.qualifier,
            payload: base64::engine::general_purpose::STANDARD.encode(body.as_bytes()),
            enqueued_ms: now,
            due_ms: now,
            failures: 0,
            invocations: 0,
            system_retries: 0,
        };
        Ok(vec![Op::put(
            EVENTS,
            &key(&ev),
            encode(&ev)?,
            Expect::Absent,
        )])
    }
}
