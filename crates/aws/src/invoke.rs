//! How a service runs a Lambda function without depending on Lambda.
//!
//! Triggers (HTTP APIs, S3 and SQS events, EventBridge rules) hold a
//! `dyn FunctionInvoker`; the binary wires it to Lambda's invoke entry point. The types are
//! wire-neutral: no headers, no status codes.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

/// A boxed future, as trait objects return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How the caller waits for the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationType {
    /// Run it and wait for its response (Lambda's `RequestResponse`).
    RequestResponse,
    /// Queue it durably and return at once; retries and destinations apply (`Event`).
    Event,
    /// Check that it could be invoked, and run nothing (`DryRun`).
    DryRun,
}

/// One call of a function.
#[derive(Debug, Clone)]
pub struct FunctionCall {
    /// The function's name, partial ARN or ARN (which may carry the qualifier).
    pub function: String,
    /// A version number, `$LATEST` or an alias name.
    pub qualifier: Option<String>,
    /// The event, JSON.
    pub payload: Bytes,
    pub invocation_type: InvocationType,
    /// Client context JSON, already decoded (synchronous calls only).
    pub client_context: Option<String>,
    /// The principal ARN of whoever calls, when known.
    pub caller: Option<String>,
}

impl FunctionCall {
    /// A synchronous call of `function` with `payload` and nothing else.
    pub fn new(function: impl Into<String>, payload: Bytes) -> FunctionCall {
        FunctionCall {
            function: function.into(),
            qualifier: None,
            payload,
            invocation_type: InvocationType::RequestResponse,
            client_context: None,
            caller: None,
        }
    }
}

/// What a call came to.
#[derive(Debug, Clone)]
pub enum FunctionResult {
    /// The function ran (`RequestResponse`). A function error is a response too.
    Response(FunctionResponse),
    /// The event is queued durably (`Event`).
    Accepted { request_id: String },
    /// The function could be invoked (`DryRun`).
    Checked,
}

/// A synchronous invocation's outcome.
#[derive(Debug, Clone)]
pub struct FunctionResponse {
    pub request_id: String,
    pub payload: Bytes,
    /// `Some("Unhandled")` when the payload describes the function's error.
    pub function_error: Option<String>,
    /// The version that ran (an alias resolves to one).
    pub executed_version: String,
    /// The last 4 KB of the invocation's log.
    pub log_tail: Vec<u8>,
}

/// Why a call has no result. Each variant names the AWS error a client of the trigger
/// would see; the message is Lambda's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeFailure {
    /// No such function, version or alias (`ResourceNotFoundException`).
    #[error("{0}")]
    NotFound(String),
    /// The function's name or qualifier is malformed (`ValidationException` and kin).
    #[error("{0}")]
    Invalid(String),
    /// The function is not in a state to run (`ResourceConflictException`).
    #[error("{0}")]
    Conflict(String),
    /// A concurrency limit is in use (`TooManyRequestsException`); retry later.
    #[error("Rate Exceeded. ({reason})")]
    Throttled { reason: &'static str },
    /// The payload is over the limit for this invocation type (`RequestTooLargeException`).
    #[error("{0}")]
    TooLarge(String),
    /// This server cannot run functions (`ServiceException`, 503).
    #[error("{0}")]
    Unavailable(String),
    /// The platform failed (`ServiceException`, 500); details are in the server's log.
    #[error("{0}")]
    Internal(String),
}

/// A service about to invoke a function for one of its resources (an S3 bucket's
/// notification, an EventBridge rule, an API's route).
#[derive(Debug, Clone, Copy)]
pub struct ServiceSource<'a> {
    /// The service principal: `s3.amazonaws.com`.
    pub service: &'a str,
    /// The resource acting (`aws:SourceArn`).
    pub source_arn: &'a str,
    /// Its account (`aws:SourceAccount`).
    pub source_account: &'a str,
}

/// Runs Lambda functions for other services.
pub trait FunctionInvoker: Send + Sync {
    fn invoke(
        &self,
        call: FunctionCall,
    ) -> BoxFuture<'static, Result<FunctionResult, InvokeFailure>>;

    /// Whether `source` may invoke `function` (name or ARN) at `qualifier`: the function's
    /// resource policy (AddPermission) must allow `lambda:InvokeFunction` for it, as AWS
    /// requires before a service invokes a function. Every trigger asks before it invokes.
    fn may_invoke(
        &self,
        source: ServiceSource<'_>,
        function: &str,
        qualifier: Option<&str>,
    ) -> BoxFuture<'static, bool>;
}
