//! What the front door hands a service, and what a service tells the front door about
//! itself.

use std::future::Future;
use std::pin::Pin;

use std::sync::Arc;

use axum::http::request::Parts;
use axum::response::Response;
use stratus_aws::{Access, Authorizer, Denied};

use crate::Protocol;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// How the front door reads a service's request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPolicy {
    /// Read whole before the service sees the request, at most this many bytes (more is
    /// refused with 413 before it is read). For APIs whose inputs are documents.
    Buffered { limit: usize },
    /// Handed to the service as it arrives (objects, image layers): nothing buffers it whole.
    /// Such a request is verified against the payload hash it declares in
    /// `x-amz-content-sha256`; checking the bytes against a declared hash is the service's.
    Streamed,
}

/// A service as the front door sees it: how to recognise its requests and read them.
#[derive(Debug, Clone)]
pub struct ServiceInfo {
    /// The SigV4 signing name requests carry in their credential scope (`lambda`, `logs`,
    /// `sts`); also the name `/_stratus/health` lists it under.
    pub signing_name: &'static str,
    pub protocol: Protocol,
    /// `X-Amz-Target` prefixes (before the `.`) of json-protocol services:
    /// `Logs_20140328`.
    pub targets: &'static [&'static str],
    pub body: BodyPolicy,
}

/// Who sent an authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub access_key_id: String,
    pub account_id: String,
    /// The principal's ARN, as `sts:GetCallerIdentity` reports it.
    pub arn: String,
}

/// A request's body, as the service's [`BodyPolicy`] asked for it.
pub enum RequestBody {
    Buffered(bytes::Bytes),
    Streamed(axum::body::Body),
}

impl RequestBody {
    /// The bytes of a buffered body; empty for a streamed one.
    pub fn bytes(&self) -> bytes::Bytes {
        match self {
            RequestBody::Buffered(b) => b.clone(),
            RequestBody::Streamed(_) => bytes::Bytes::new(),
        }
    }
}

/// An authenticated request, routed to its service.
pub struct AwsRequest {
    pub parts: Parts,
    pub body: RequestBody,
    pub caller: Caller,
    /// The id the response carries in `x-amzn-RequestId` unless the service sets its own.
    pub request_id: String,
    /// Decides what the caller may do: every operation asks it through
    /// [`AwsRequest::authorize`] before acting.
    pub authorizer: Arc<dyn Authorizer>,
    /// The region the request was signed for (the server's).
    pub region: String,
}

/// The peer address of a request's connection, put in its extensions by the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

impl AwsRequest {
    /// Whether the caller may perform `action` on `resource` (an ARN, or `*`), as the
    /// server's [`Authorizer`] decides. Answer a refusal with [`crate::AwsError::denied`].
    pub fn authorize(&self, action: &str, resource: &str) -> Result<(), Denied> {
        self.authorizer.authorize(&self.access(action, resource))
    }

    /// Like [`AwsRequest::authorize`], and when the caller's own policies do not allow it
    /// (no explicit deny), `policy` — the resource's own policy — may: the same-account rule
    /// of AWS's evaluation logic.
    pub fn authorize_with_policy(
        &self,
        action: &str,
        resource: &str,
        policy: Option<&str>,
    ) -> Result<(), Denied> {
        match self.authorize(action, resource) {
            Err(denied)
                if !denied.explicit
                    && policy.is_some_and(|p| {
                        self.authorizer
                            .policy_allows(p, &self.access(action, resource), &[])
                    }) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    fn access<'a>(&'a self, action: &'a str, resource: &'a str) -> Access<'a> {
        Access {
            principal: &self.caller.arn,
            action,
            resource,
            source_ip: self.parts.extensions.get::<PeerAddr>().map(|p| p.0.ip()),
            region: &self.region,
        }
    }

    /// The `Host` header, or `localhost`.
    pub fn host(&self) -> &str {
        self.parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
    }

    /// The operation named by `X-Amz-Target: <prefix>.<Operation>`.
    pub fn target_operation(&self) -> Option<&str> {
        self.parts
            .headers
            .get("x-amz-target")
            .and_then(|h| h.to_str().ok())
            .and_then(|t| t.split_once('.'))
            .map(|(_, op)| op)
    }
}

/// The AWS operation a response answered (`Invoke`, `CreateFunction`), put in the response's
/// extensions by services whose operations are not named in `X-Amz-Target` (REST
/// protocols), so that the front door can count requests per operation without knowing
/// any service's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation(pub &'static str);

/// One AWS service's wire crate, as the front door calls it. The binary registers each
/// service with the gateway; the gateway routes, authenticates and reads the body, then
/// calls [`Service::handle`].
pub trait Service: Send + Sync + 'static {
    fn info(&self) -> ServiceInfo;

    /// Answers one authenticated request. Errors are responses too, in the service's
    /// protocol (see [`crate::AwsError::render`]).
    fn handle(&self, req: AwsRequest) -> BoxFuture<Response>;

    /// What `/_stratus/health` says of this service: `"ready"` or an object with details.
    fn health(&self) -> serde_json::Value {
        serde_json::Value::from("ready")
    }

    /// Deletes every resource the service holds (test mode only: the conformance harness
    /// resets the server between tests).
    fn reset(&self) -> BoxFuture<Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}
