//! `Invoke` (`POST /2015-03-31/functions/{name}/invocations`).

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use stratus_invoke::InvokeRequest;
use stratus_lambda::FunctionState;

use crate::error::ApiError;
use crate::functions::blocking;
use crate::{ApiState, Authed};

/// Lambda's cap on a synchronous request payload.
pub const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
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
        return Err(ApiError::too_large(format!(
            "Request must be smaller than {MAX_SYNC_PAYLOAD} bytes for the InvokeFunction operation"
        )));
    }
    let payload = if req.body.is_empty() {
        bytes::Bytes::from_static(b"{}")
    } else {
        serde_json::from_slice::<serde::de::IgnoredAny>(&req.body).map_err(ApiError::bad_json)?;
        req.body.clone()
    };
    let client_context = decode_client_context(header(&req.headers, "x-amz-client-context"))?;

    // An alias resolves here, weighted routing included: `view.config.version` is what runs.
    // Answered from the store's cache when it can be (the usual case for a function that is
    // invoked again), else on a blocking thread.
    let cached = state
        .functions
        .from_memory(|s| s.resolve_for_invoke(&name, qualifier.as_deref()));
    let view = match cached {
        Some(result) => result?,
        None => {
            let q = qualifier.clone();
            blocking(&state.functions, move |s| {
                s.resolve_for_invoke(&name, q.as_deref())
            })
            .await?
        }
    };
    match view.config.state {
        FunctionState::Active => {}
        other => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "ResourceConflictException",
                format!(
                    "The operation cannot be performed at this time. The function is currently in the following state: {}",
                    other.as_str()
                ),
            ));
        }
    }
    match invocation_type {
        "DryRun" => return Ok(StatusCode::NO_CONTENT.into_response()),
        "Event" => {
            return enqueue(state, &view.config.name, qualifier, payload).await;
        }
        _ => {}
    }
    let Some(invoker) = state.invoker.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceException",
            "This Stratus server cannot create execution environments on this host (see the server log).",
        ));
    };
    let invoked_arn = match &qualifier {
        Some(q) => state.functions.scope().qualified_arn(&view.config.name, q),
        None => view.arn.clone(),
    };
    let result = invoker
        .invoke(InvokeRequest {
            config: view.config,
            code: stratus_invoke::Code::Of(state.functions.clone()),
            invoked_arn,
            payload,
            client_context,
            reserved_concurrency: view.reserved_concurrency,
            unreserved_limit: state.functions.unreserved_limit(),
        })
        .await
        .map_err(|e| match e {
            stratus_invoke::InvokeError::Throttled(t) => ApiError::throttled(t.reason()),
            other => ApiError::internal(other),
        })?;

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

/// `InvocationType: Event`: the event is durable in the queue before the 202.
async fn enqueue(
    state: &ApiState,
    name: &str,
    qualifier: Option<String>,
    payload: bytes::Bytes,
) -> Result<Response, ApiError> {
    if payload.len() > stratus_invoke::MAX_ASYNC_PAYLOAD {
        return Err(ApiError::too_large(format!(
            "Request must be smaller than {} bytes for the InvokeAsync operation",
            stratus_invoke::MAX_ASYNC_PAYLOAD
        )));
    }
    let Some(queue) = state.events.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceException",
            "This Stratus server cannot create execution environments on this host (see the server log).",
        ));
    };
    let name = name.to_owned();
    let request_id =
        tokio::task::spawn_blocking(move || queue.enqueue(&name, qualifier.as_deref(), &payload))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
    let mut resp = StatusCode::ACCEPTED.into_response();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    Ok(resp)
}
