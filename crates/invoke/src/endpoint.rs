//! One environment's Runtime API, as typed operations. The API crate serves them over HTTP
//! on the environment's own listener; the invoker pushes invocations in and takes events out.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

/// Lambda's cap on a synchronous response.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// An event handed to the runtime by `GET /runtime/invocation/next`.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub payload: Bytes,
    /// Unix milliseconds.
    pub deadline_ms: u64,
    pub invoked_function_arn: String,
    pub trace_id: String,
    /// JSON text, when the caller sent one.
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
}

/// What the runtime tells the invoker.
#[derive(Debug, Clone)]
pub enum RuntimeEvent {
    /// The runtime asked for its first invocation: init is over.
    Ready,
    Response {
        request_id: String,
        body: Bytes,
    },
    Error {
        request_id: String,
        body: Bytes,
        error_type: Option<String>,
    },
    ResponseTooLarge {
        request_id: String,
        size: usize,
    },
    InitError {
        body: Bytes,
        error_type: Option<String>,
    },
}

/// Why a Runtime API call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeApiError {
    #[error("Invalid request ID: {0}")]
    UnknownRequestId(String),
    #[error("Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).")]
    TooLarge,
}

/// How long an environment whose runtime waits for an event keeps running before it is
/// frozen. Freezing and thawing wake every task of the environment twice (each must enter
/// the kernel's refrigerator and leave it): about a quarter of a warm invoke's server CPU
/// when done at every invocation. Under load the next event comes sooner and nothing is
/// frozen; an idle environment's background work runs at most this long after its last
/// invocation, within its CPU share.
pub const FREEZE_AFTER: std::time::Duration = std::time::Duration::from_millis(10);

struct Inner {
    env_id: String,
    /// The environment's freezer: frozen while it waits for an event.
    freezer: std::sync::OnceLock<stratus_sandbox::Freezer>,
    queue: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    current: Mutex<Option<String>>,
    events: mpsc::UnboundedSender<RuntimeEvent>,
    started: AtomicBool,
}

/// An environment frozen until this is dropped.
struct Frozen<'a>(&'a stratus_sandbox::Freezer);

impl<'a> Frozen<'a> {
    fn new(f: &'a stratus_sandbox::Freezer) -> Option<Frozen<'a>> {
        match f.freeze() {
            Ok(()) => Some(Frozen(f)),
            Err(e) => {
                tracing::debug!(error = %e, "freezing an idle environment");
                None
            }
        }
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.0.thaw() {
            tracing::warn!(error = %e, "thawing an environment");
        }
    }
}

/// Cloneable handle on one environment's Runtime API.
#[derive(Clone)]
pub struct RuntimeEndpoint {
    inner: std::sync::Arc<Inner>,
}

impl RuntimeEndpoint {
    /// The endpoint of environment `env_id` (its sandbox id).
    pub(crate) fn new(
        env_id: String,
    ) -> (
        RuntimeEndpoint,
        mpsc::Sender<Invocation>,
        mpsc::UnboundedReceiver<RuntimeEvent>,
        String,
    ) {
        let (qtx, qrx) = mpsc::channel(1);
        let (etx, erx) = mpsc::unbounded_channel();
        let ep = RuntimeEndpoint {
            inner: std::sync::Arc::new(Inner {
                env_id: env_id.clone(),
                freezer: std::sync::OnceLock::new(),
                queue: tokio::sync::Mutex::new(qrx),
                current: Mutex::new(None),
                events: etx,
                started: AtomicBool::new(false),
            }),
        };
        (ep, qtx, erx, env_id)
    }

    pub fn env_id(&self) -> &str {
        &self.inner.env_id
    }

    /// Freezes the environment whenever [`RuntimeEndpoint::next`] finds no event waiting.
    pub(crate) fn set_freezer(&self, freezer: stratus_sandbox::Freezer) {
        let _ = self.inner.freezer.set(freezer);
    }

    /// `GET /runtime/invocation/next`: waits for the next invocation. The first call marks the
    /// end of init. Pends forever once the environment is being torn down.
    ///
    /// As on Lambda, an environment gets no CPU between invocations: with no event waiting
    /// [`FREEZE_AFTER`] after it asked, its cgroup is frozen (the runtime itself is blocked
    /// on this very request), and thawed, one write, before the event is handed over, or
    /// should this request go away.
    pub async fn next(&self) -> Invocation {
        if !self.inner.started.swap(true, Ordering::SeqCst) {
            let _ = self.inner.events.send(RuntimeEvent::Ready);
        }
        let mut q = self.inner.queue.lock().await;
        let next = match q.try_recv() {
            Ok(inv) => Some(inv),
            Err(mpsc::error::TryRecvError::Disconnected) => None,
            Err(mpsc::error::TryRecvError::Empty) => {
                match tokio::time::timeout(FREEZE_AFTER, q.recv()).await {
                    Ok(inv) => inv,
                    Err(_) => {
                        let _frozen = self.inner.freezer.get().and_then(Frozen::new);
                        q.recv().await
                    }
                }
            }
        };
        match next {
            Some(inv) => {
                if let Ok(mut cur) = self.inner.current.lock() {
                    *cur = Some(inv.request_id.clone());
                }
                inv
            }
            None => std::future::pending().await,
        }
    }

    fn take_current(&self, request_id: &str) -> Result<(), RuntimeApiError> {
        let mut cur = self
            .inner
            .current
            .lock()
            .map_err(|_| RuntimeApiError::UnknownRequestId(request_id.into()))?;
        if cur.as_deref() != Some(request_id) {
            return Err(RuntimeApiError::UnknownRequestId(request_id.into()));
        }
        *cur = None;
        Ok(())
    }

    /// `POST /runtime/invocation/{id}/response`.
    pub fn respond(&self, request_id: &str, body: Bytes) -> Result<(), RuntimeApiError> {
        if body.len() > MAX_RESPONSE_BYTES {
            self.response_too_large(request_id, body.len())?;
            return Err(RuntimeApiError::TooLarge);
        }
        self.take_current(request_id)?;
        let _ = self.inner.events.send(RuntimeEvent::Response {
            request_id: request_id.into(),
            body,
        });
        Ok(())
    }

    /// `POST /runtime/invocation/{id}/response` with a body over the limit, when the HTTP
    /// layer stopped reading it: the invocation fails as too large.
    /// The invocation fails now, but the request id stays current: runtimes answer a 413 by
    /// posting an error for the same id, which AWS accepts (and which changes nothing).
    pub fn response_too_large(&self, request_id: &str, size: usize) -> Result<(), RuntimeApiError> {
        let current = self
            .inner
            .current
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        if current.as_deref() != Some(request_id) {
            return Err(RuntimeApiError::UnknownRequestId(request_id.into()));
        }
        let _ = self.inner.events.send(RuntimeEvent::ResponseTooLarge {
            request_id: request_id.into(),
            size,
        });
        Ok(())
    }

    /// `POST /runtime/invocation/{id}/error`.
    pub fn error(
        &self,
        request_id: &str,
        body: Bytes,
        error_type: Option<String>,
    ) -> Result<(), RuntimeApiError> {
        self.take_current(request_id)?;
        let _ = self.inner.events.send(RuntimeEvent::Error {
            request_id: request_id.into(),
            body,
            error_type,
        });
        Ok(())
    }

    /// `POST /runtime/init/error`.
    pub fn init_error(&self, body: Bytes, error_type: Option<String>) {
        let _ = self
            .inner
            .events
            .send(RuntimeEvent::InitError { body, error_type });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn invocation(id: &str) -> Invocation {
        Invocation {
            request_id: id.into(),
            payload: Bytes::from_static(b"{}"),
            deadline_ms: 0,
            invoked_function_arn: "arn".into(),
            trace_id: "t".into(),
            client_context: None,
            cognito_identity: None,
        }
    }

    #[tokio::test]
    async fn next_marks_ready_and_only_the_current_request_can_answer() {
        let (ep, tx, mut events, _) = RuntimeEndpoint::new("e1".into());
        tx.send(invocation("r1")).await.unwrap();
        let inv = ep.next().await;
        assert_eq!(inv.request_id, "r1");
        assert!(matches!(events.recv().await.unwrap(), RuntimeEvent::Ready));
        assert_eq!(
            ep.respond("other", Bytes::new()),
            Err(RuntimeApiError::UnknownRequestId("other".into()))
        );
        ep.respond("r1", Bytes::from_static(b"42")).unwrap();
        match events.recv().await.unwrap() {
            RuntimeEvent::Response { request_id, body } => {
                assert_eq!((request_id.as_str(), &body[..]), ("r1", &b"42"[..]));
            }
            other => panic!("{other:?}"),
        }
        // Answered once; a second answer is refused.
        assert!(ep.error("r1", Bytes::new(), None).is_err());
    }

    #[tokio::test]
    async fn oversize_responses_fail_the_invocation() {
        let (ep, tx, mut events, _) = RuntimeEndpoint::new("e1".into());
        tx.send(invocation("r")).await.unwrap();
        ep.next().await;
        let big = Bytes::from(vec![b'x'; MAX_RESPONSE_BYTES + 1]);
        assert_eq!(ep.respond("r", big), Err(RuntimeApiError::TooLarge));
        let _ready = events.recv().await;
        assert!(matches!(
            events.recv().await.unwrap(),
            RuntimeEvent::ResponseTooLarge { .. }
        ));
        // The runtime's error post for the same invocation is accepted.
        ep.error("r", Bytes::from_static(b"{}"), None).unwrap();
    }
}
