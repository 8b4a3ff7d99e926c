//! The Lambda Runtime API (`/2018-06-01/runtime/...`), served on each environment's own
//! listener, which the sandbox helper created inside that environment's network namespace:
//! only that environment can reach it, and the listener itself says which environment is
//! calling. Everything else on the listener goes to the AWS API (`AWS_ENDPOINT_URL` inside
//! functions points here), still behind SigV4.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use stratus_invoke::{MAX_RESPONSE_BYTES, RuntimeApiError, RuntimeEndpoint};

const BASE: &str = "/2018-06-01/runtime";

fn runtime_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "errorType": error_type, "errorMessage": message }).to_string(),
    )
        .into_response()
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        r#"{"status":"OK"}"#,
    )
        .into_response()
}

fn map_err(e: RuntimeApiError) -> Response {
    match e {
        RuntimeApiError::UnknownRequestId(_) => {
            runtime_error(StatusCode::BAD_REQUEST, "InvalidRequestID", &e.to_string())
        }
        RuntimeApiError::TooLarge => runtime_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &e.to_string(),
        ),
    }
}

/// Starts serving `listener`; abort the returned handle to stop.
pub fn serve(
    listener: std::net::TcpListener,
    endpoint: RuntimeEndpoint,
    aws: Option<Router>,
) -> tokio::task::AbortHandle {
    let mut app = Router::new()
        .route(&format!("{BASE}/invocation/next"), get(next))
        .route(
            &format!("{BASE}/invocation/{{id}}/response"),
            post(response),
        )
        .route(&format!("{BASE}/invocation/{{id}}/error"), post(error))
        .route(&format!("{BASE}/init/error"), post(init_error))
        .with_state(endpoint);
    if let Some(aws) = aws {
        app = app.fallback_service(aws);
    }
    tokio::spawn(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "serving an environment's runtime API");
                return;
            }
        };
        let _ = axum::serve(listener, app).await;
    })
    .abort_handle()
}

async fn next(State(ep): State<RuntimeEndpoint>) -> Response {
    let inv = ep.next().await;
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    put("Lambda-Runtime-Aws-Request-Id", &inv.request_id);
    put("Lambda-Runtime-Deadline-Ms", &inv.deadline_ms.to_string());
    put(
        "Lambda-Runtime-Invoked-Function-Arn",
        &inv.invoked_function_arn,
    );
    put("Lambda-Runtime-Trace-Id", &inv.trace_id);
    if let Some(cc) = &inv.client_context {
        put("Lambda-Runtime-Client-Context", cc);
    }
    if let Some(ci) = &inv.cognito_identity {
        put("Lambda-Runtime-Cognito-Identity", ci);
    }
    put("Content-Type", "application/json");
    (StatusCode::OK, headers, inv.payload).into_response()
}

async fn response(
    State(ep): State<RuntimeEndpoint>,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    // Read one byte past the limit to tell "at the limit" from "over it".
    match axum::body::to_bytes(body, MAX_RESPONSE_BYTES + 1).await {
        Ok(bytes) => match ep.respond(&id, bytes) {
            Ok(()) => accepted(),
            Err(e) => map_err(e),
        },
        Err(_) => match ep.response_too_large(&id, MAX_RESPONSE_BYTES + 1) {
            Ok(()) => map_err(RuntimeApiError::TooLarge),
            Err(e) => map_err(e),
        },
    }
}

fn error_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get("Lambda-Runtime-Function-Error-Type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn error(
    State(ep): State<RuntimeEndpoint>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match ep.error(&id, body, error_type(&headers)) {
        Ok(()) => accepted(),
        Err(e) => map_err(e),
    }
}

async fn init_error(
    State(ep): State<RuntimeEndpoint>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    ep.init_error(body, error_type(&headers));
    accepted()
}
