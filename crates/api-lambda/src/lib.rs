//! Lambda's wire: the REST-JSON API (`lambda/2015-03-31`) and the Runtime API.
//!
//! [`LambdaApi`] is the [`Service`] the front door hands Lambda's requests to: it parses a
//! request line into a typed [`router::Endpoint`] (one variant per operation), decodes
//! the JSON body into wire shapes (`wire.rs`), calls the function service or Invoke's entry
//! point ([`stratus_invoke::Functions`]), and encodes the AWS output shape; errors become Lambda's envelope in [`error`].
//! [`runtime_api`] serves each execution environment's Runtime API on the listener the
//! sandbox helper made inside its network namespace.
//!
//! Invariant: the only place that knows Lambda's paths, headers and JSON shapes. The
//! services below take and return typed values and never see a request or a status code;
//! routing between services and authentication are the gateway's.

mod concurrency;
pub mod error;
mod event_config;
mod functions;
mod invoke;
mod layers;
mod permission;
mod policy;
mod presign;
mod provisioned;
pub mod router;
pub mod runtime_api;
mod versions;
mod wire;

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use stratus_lambda::FunctionService;
use stratus_protocol::{AwsRequest, BodyPolicy, BoxFuture, Protocol, Service, ServiceInfo};

use crate::router::{Endpoint, Query};

/// The largest request body accepted: what AWS allows for a CreateFunction carrying a 50 MB
/// zip in base64 JSON. Anything bigger is refused before it is buffered.
pub const MAX_REQUEST_BYTES: usize = 69_905_067;

/// Request bodies larger than this are decoded on the blocking pool.
pub(crate) const LARGE_BODY: usize = 256 * 1024;

/// What Lambda's handlers need. Built once by the server and shared by every request.
pub struct ApiState {
    pub functions: FunctionService,
    /// Invoke's entry point: resolves, checks, queues or runs functions (over the same
    /// function service).
    pub invoke: stratus_invoke::Functions,
    /// Keeps provisioned environments initialised (present with the invoker).
    pub provisioner: Option<stratus_invoke::Provisioner>,
    /// The key pair the server signs its own presigned URLs with (GetFunction's code location).
    pub presign_credentials: (String, String),
    pub region: String,
}

/// Lambda, as the front door sees it.
#[derive(Clone)]
pub struct LambdaApi {
    state: Arc<ApiState>,
}

impl LambdaApi {
    pub fn new(state: ApiState) -> LambdaApi {
        LambdaApi {
            state: Arc::new(state),
        }
    }
}

/// A request routed to Lambda, its endpoint parsed.
pub(crate) struct Authed {
    pub endpoint: Endpoint,
    pub headers: axum::http::HeaderMap,
    pub body: bytes::Bytes,
    pub host: String,
    /// The principal's ARN.
    pub caller: String,
}

impl Service for LambdaApi {
    fn info(&self) -> ServiceInfo {
        ServiceInfo {
            signing_name: "lambda",
            protocol: Protocol::RestJson,
            targets: &[],
            body: BodyPolicy::Buffered {
                limit: MAX_REQUEST_BYTES,
            },
        }
    }

    fn handle(&self, req: AwsRequest) -> BoxFuture<Response> {
        let state = self.state.clone();
        Box::pin(async move {
            let parts = &req.parts;
            let endpoint = match router::parse(
                &parts.method,
                parts.uri.path(),
                &Query::parse(parts.uri.query().unwrap_or("")),
            ) {
                Ok(e) => e,
                Err(e) => return e.into_response(),
            };
            let operation = stratus_protocol::Operation(endpoint.name());
            if let Some((action, resource)) =
                permission::access(&endpoint, &req.body.bytes(), state.functions.scope())
                && let Err(denied) = req.authorize(&action, &resource)
            {
                // Not allowed by the caller's own policies: the function's policy may allow
                // it (AddPermission), unless a statement denied it.
                let policy = match permission::granted_by_function_policy(&endpoint) {
                    Some((name, qualifier)) if !denied.explicit => {
                        let (functions, name, qualifier) = (
                            state.functions.clone(),
                            name.to_owned(),
                            qualifier.map(str::to_owned),
                        );
                        tokio::task::spawn_blocking(move || {
                            functions.resource_policy(&name, qualifier.as_deref())
                        })
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .flatten()
                    }
                    _ => None,
                };
                if let Err(denied) =
                    req.authorize_with_policy(&action, &resource, policy.as_deref())
                {
                    let mut resp = stratus_protocol::AwsError::denied(Protocol::RestJson, denied)
                        .render(Protocol::RestJson, &req.request_id);
                    resp.extensions_mut().insert(operation);
                    return resp;
                }
            }
            let host = req.host().to_owned();
            let authed = Authed {
                endpoint,
                body: req.body.bytes(),
                headers: req.parts.headers,
                host,
                caller: req.caller.arn,
            };
            let mut resp = functions::dispatch(state, authed).await;
            resp.extensions_mut().insert(operation);
            resp
        })
    }

    fn health(&self) -> serde_json::Value {
        let (invoker, events) = (self.state.invoke.invoker(), self.state.invoke.queue());
        serde_json::json!({
            "state": "ready",
            "execution": if invoker.is_some() { "ready" } else { "unavailable" },
            "environments": invoker.map_or(0, |i| i.live_count()),
            "invocations_in_flight": invoker.map_or(0, |i| i.in_flight()),
            "async_events_queued": events.map_or(0, |q| q.depth()),
            "memory_claimed_mb": invoker.map_or(0, |i| i.memory().0),
        })
    }

    fn reset(&self) -> BoxFuture<Result<(), String>> {
        let functions = self.state.functions.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || functions.delete_all())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        })
    }
}
