//! Stratus's HTTP front door.
//!
//! Owns everything about the wire: routing AWS REST paths to typed [`router::Endpoint`]s,
//! SigV4 authentication of every AWS request, decoding and encoding AWS JSON shapes, and
//! mapping service errors to AWS error responses (see [`error`]).
//!
//! Invariant: this is the only crate that knows HTTP or AWS wire formats. The services it
//! calls take and return typed values and never see a request or a status code.

pub mod error;
mod lambda;
mod presign;
pub mod router;
pub mod runtime_api;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use stratus_lambda::FunctionService;
use stratus_sigv4::{SecretLookup, SignedRequest, VerifyOptions};
use tracing::Instrument;

use crate::error::ApiError;
use crate::router::{Endpoint, Query};

/// The largest request body accepted: what AWS allows for a CreateFunction carrying a 50 MB
/// zip in base64 JSON. Anything bigger is refused before it is buffered.
pub const MAX_REQUEST_BYTES: usize = 69_905_067;

/// Request bodies larger than this are hashed and decoded on the blocking pool.
pub(crate) const LARGE_BODY: usize = 256 * 1024;

/// What the handlers need. Built once by the server and shared by every request.
#[derive(Clone)]
pub struct ApiState {
    pub functions: FunctionService,
    /// Runs functions. `None` when this host cannot create sandboxes (Invoke then says so).
    pub invoker: Option<stratus_invoke::Invoker>,
    /// The durable queue of asynchronous invocations (present with the invoker).
    pub events: Option<stratus_invoke::AsyncQueue>,
    /// Keeps provisioned environments initialised (present with the invoker).
    pub provisioner: Option<stratus_invoke::Provisioner>,
    pub secrets: Arc<dyn SecretLookup + Send + Sync>,
    /// The key pair the server signs its own presigned URLs with (GetFunction's code location).
    pub presign_credentials: (String, String),
    /// Reported by the health endpoint.
    pub region: String,
}

/// The whole HTTP application: `/_stratus/health` plus every AWS operation.
pub fn app(state: ApiState) -> Router {
    Router::new()
        .route("/_stratus/health", get(health))
        .fallback(handle)
        .with_state(Arc::new(state))
}

async fn health(State(state): State<Arc<ApiState>>) -> Response {
    let body = serde_json::json!({
        "status": "ready",
        "version": env!("CARGO_PKG_VERSION"),
        "region": state.region,
        "services": {
            "lambda": "ready",
            "store": "ready",
            "execution": if state.invoker.is_some() { "ready" } else { "unavailable" },
        },
        "environments": state.invoker.as_ref().map_or(0, |i| i.live_count()),
        "invocations_in_flight": state.invoker.as_ref().map_or(0, |i| i.in_flight()),
        "async_events_queued": state.events.as_ref().map_or(0, |q| q.depth()),
        "memory_claimed_mb": state.invoker.as_ref().map_or(0, |i| i.memory().0),
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// A request that passed authentication, with its body buffered.
pub(crate) struct Authed {
    pub endpoint: Endpoint,
    pub headers: axum::http::HeaderMap,
    pub body: bytes::Bytes,
    pub host: String,
}

async fn handle(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut resp = match authenticate_and_route(&state, req, &request_id).await {
        Ok(authed) => {
            let endpoint = format!("{:?}", authed.endpoint);
            let span = tracing::info_span!("request", id = %request_id, op = %op_name(&endpoint));
            lambda::dispatch(state.clone(), authed)
                .instrument(span)
                .await
        }
        Err(e) => e.into_response(),
    };
    // Invoke sets its own (the invocation's request id); everything else gets ours.
    if !resp.headers().contains_key("x-amzn-RequestId")
        && let Ok(v) = HeaderValue::from_str(&request_id)
    {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    resp
}

fn op_name(debug: &str) -> &str {
    debug.split([' ', '{']).next().unwrap_or(debug)
}

async fn authenticate_and_route(
    state: &ApiState,
    req: Request,
    request_id: &str,
) -> Result<Authed, ApiError> {
    let (parts, body) = req.into_parts();
    let body = read_body(body).await?;
    let raw_path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or("").to_owned();

    // Verifying hashes the whole body: a large one (a code upload) on the blocking pool, so
    // that it does not hold up the threads serving invocations.
    let verified = if body.len() > LARGE_BODY {
        let (parts, body, secrets) = (parts.clone(), body.clone(), state.secrets.clone());
        let (raw_path, raw_query) = (raw_path.clone(), raw_query.clone());
        tokio::task::spawn_blocking(move || {
            verify(&parts, &raw_path, &raw_query, &body, secrets.as_ref())
        })
        .await
        .map_err(ApiError::internal)?
    } else {
        verify(&parts, &raw_path, &raw_query, &body, state.secrets.as_ref())
    }
    .map_err(|e| {
        tracing::debug!(%request_id, error = %e, "authentication refused");
        ApiError::from(e)
    })?;
    tracing::trace!(%request_id, access_key = %verified.access_key_id, "authenticated");

    let endpoint = router::parse(&parts.method, &raw_path, &Query::parse(&raw_query))?;
    let host = parts
        .headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    Ok(Authed {
        endpoint,
        headers: parts.headers,
        body,
        host,
    })
}

fn verify(
    parts: &axum::http::request::Parts,
    raw_path: &str,
    raw_query: &str,
    body: &[u8],
    secrets: &(dyn SecretLookup + Send + Sync),
) -> Result<stratus_sigv4::Verified, stratus_sigv4::AuthError> {
    let header_pairs: Vec<(&str, &[u8])> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect();
    let signed = SignedRequest {
        method: parts.method.as_str(),
        raw_path,
        raw_query,
        headers: &header_pairs,
        body,
    };
    stratus_sigv4::verify(
        &signed,
        secrets,
        std::time::SystemTime::now(),
        &VerifyOptions::default(),
    )
}

async fn read_body(body: Body) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_REQUEST_BYTES)
        .await
        .map_err(|_| {
            ApiError::too_large(format!(
                "Request must be smaller than {MAX_REQUEST_BYTES} bytes for the operation"
            ))
        })
}
