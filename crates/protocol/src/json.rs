//! JSON bodies of the rest-json and json protocols.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{AwsError, Protocol};

/// `body` as `protocol`'s JSON, with `status`.
pub fn response<T: Serialize>(protocol: Protocol, status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, protocol.json_content_type())],
            bytes,
        )
            .into_response(),
        Err(e) => AwsError::internal(e).render(protocol, ""),
    }
}

/// Decodes a request body; an empty body is `{}` (botocore sends none for operations
/// without input members).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    let body = if body.is_empty() { &b"{}"[..] } else { body };
    serde_json::from_slice(body)
}
