//! The AWS wire protocols, shared by every service's wire crate.
//!
//! botocore's models name four protocols, and this crate owns what they have in common:
//! [`Protocol`] with each one's error envelope ([`AwsError`]), JSON and XML bodies
//! ([`json`], [`xml`]), the query protocol's form parameters ([`query`]), opaque pagination
//! tokens ([`token`]), and the [`Service`] trait through which the front door hands a
//! service its authenticated requests, each service declaring how its bodies are read
//! ([`BodyPolicy`]).
//!
//! Invariant: knows HTTP and AWS wire formats, but no service: nothing here names an
//! operation, a resource or a domain type.

mod error;
pub mod json;
pub mod query;
mod service;
pub mod token;
pub mod xml;

pub use error::{AwsError, Fault};
pub use service::{
    AwsRequest, BodyPolicy, BoxFuture, Caller, Operation, PeerAddr, RequestBody, Service,
    ServiceInfo,
};

/// The wire protocols of botocore's models (`metadata.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// REST paths, JSON bodies, errors named by `x-amzn-ErrorType` (Lambda, API Gateway).
    RestJson,
    /// `POST /` with `X-Amz-Target: <prefix>.<Operation>`, JSON 1.0 bodies (SQS, DynamoDB).
    Json10,
    /// The same with JSON 1.1 (Logs, EventBridge, ECR, ECS, Step Functions).
    Json11,
    /// REST paths, XML bodies (S3).
    RestXml,
    /// Form-encoded `Action=...&Version=...`, XML responses (STS, IAM).
    Query,
}

impl Protocol {
    /// The content type of this protocol's JSON bodies.
    pub fn json_content_type(self) -> &'static str {
        match self {
            Protocol::Json10 => "application/x-amz-json-1.0",
            Protocol::Json11 => "application/x-amz-json-1.1",
            _ => "application/json",
        }
    }
}
