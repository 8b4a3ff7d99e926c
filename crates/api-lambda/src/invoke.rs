//! `Invoke` (`POST /2015-03-31/functions/{name}/invocations`).

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use stratus_aws::{FunctionCall, InvocationType};
use stratus_invoke::{CallError, Invoked, MAX_SYNC_PAYLOAD};

use crate::error::ApiError;
use crate::{ApiState, Authed};
/// Lambda's cap on the decoded client context.
const MAX_CLIENT_CONTEXT: usize = 3583;

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn decode_client_context(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            "Client context must be a valid Base64-encoded JSON object.",
        )
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw.as_bytes())
        .map_err(|_| invalid())?;
    if bytes.len() > MAX_CLIENT_CONTEXT {
        return Err(ApiError::invalid_parameter(format!(
            "Client context must be smaller than {MAX_CLIENT_CONTEXT} bytes after decoding."
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    serde_json::from_str::<serde_json::Value>(&text).map_err(|_| invalid())?;
    Ok(Some(text))
}

pub(crate) async fn invoke(
    state: &ApiState,
    req: &Authed,
    caller: String,
    name: String,
    qualifier: Option<String>,
) -> Result<Response, ApiError> {
    let invocation_type =
        header(&req.headers, "x-amz-invocation-type").unwrap_or("RequestResponse");
    let tail = match header(&req.headers, "x-amz-log-type") {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                format!(
                    "1 validation error detected: Value '{other}' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [Tail, None]"
                ),
            ));
        }
    };
    if !matches!(invocation_type, "RequestResponse" | "Event" | "DryRun") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            format!(
                "1 validation error detected: Value '{invocation_type}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
            ),
        ));
    }
    if req.body.len() > MAX_SYNC_PAYLOAD {
        // Before the payload is parsed, as Lambda does; the entry point checks it too.
        return Err(CallError::TooLarge {
            limit: MAX_SYNC_PAYLOAD,
            operation: "InvokeFunction",
        }
        .into());
    }
    let payload = if req.body.is_empty() {
        bytes::Bytes::from_static(b"{}")
    } else {
        serde_json::from_slice::<serde::de::IgnoredAny>(&req.body).map_err(ApiError::bad_json)?;
        req.body.clone()
    };
    let client_context = decode_client_context(header(&req.headers, "x-amz-client-context"))?;

    let invocation_type = match invocation_type {
        "Event" => InvocationType::Event,
        "DryRun" => InvocationType::DryRun,
        _ => InvocationType::RequestResponse,
    };
    let call = FunctionCall {
        function: name,
        qualifier,
        payload,
        invocation_type,
        client_context,
        caller: Some(caller),
    };
    let result = match state.invoke.invoke(call).await? {
        Invoked::Response(result) => result,
        Invoked::Checked => return Ok(StatusCode::NO_CONTENT.into_response()),
        Invoked::Accepted { request_id } => {
            let mut resp = StatusCode::ACCEPTED.into_response();
            if let Ok(v) = HeaderValue::from_str(&request_id) {
                resp.headers_mut().insert("x-amzn-RequestId", v);
            }
            return Ok(resp);
        }
    };

    let mut resp = (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        result.payload,
    )
        .into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&result.executed_version) {
        h.insert("X-Amz-Executed-Version", v);
    }
    if let Some(fe) = result
        .function_error
        .as_deref()
        .and_then(|f| HeaderValue::from_str(f).ok())
    {
        h.insert("X-Amz-Function-Error", fe);
    }
    if tail {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&result.log_tail);
        if let Ok(v) = HeaderValue::from_str(&b64) {
            h.insert("X-Amz-Log-Result", v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&result.request_id) {
        h.insert("x-amzn-RequestId", v);
    }
    Ok(resp)
}
