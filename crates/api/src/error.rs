//! The one place where errors become AWS error responses.
//!
//! REST-JSON services (Lambda) answer with the code in `x-amzn-ErrorType` and a body
//! `{"Type": "User"|"Service", "message": ...}`; botocore reads the header first, so boto3
//! raises the modelled exception class (`client.exceptions.ResourceNotFoundException`, ...).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use stratus_lambda::LambdaError;
use stratus_sigv4::AuthError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra body members, e.g. `Reason` on throttles.
    pub extra: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: Vec::new(),
        }
    }

    pub fn bad_json(detail: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            format!("Could not parse request body into json: {detail}"),
        )
    }

    pub fn invalid_parameter(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            message,
        )
    }

    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            message,
        )
    }

    /// 429 `TooManyRequestsException` with the limit that was hit as `Reason`.
    pub fn throttled(reason: &str) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            "Rate Exceeded.",
        );
        e.extra.push(("Reason", reason.to_owned()));
        e
    }

    pub fn unknown_operation() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "The requested operation is not recognised by this server.",
        )
    }

    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            "The service encountered an internal error.",
        )
    }

    fn fault(&self) -> &'static str {
        if self.status.is_server_error() {
            "Service"
        } else {
            "User"
        }
    }
}

impl From<LambdaError> for ApiError {
    fn from(e: LambdaError) -> ApiError {
        use StatusCode as S;
        let (status, code) = match &e {
            LambdaError::Validation(_) => (S::BAD_REQUEST, "ValidationException"),
            LambdaError::InvalidParameter(_) => (S::BAD_REQUEST, "InvalidParameterValueException"),
            LambdaError::Unsupported(_) => (S::BAD_REQUEST, "InvalidParameterValueException"),
            LambdaError::NotFound(_) => (S::NOT_FOUND, "ResourceNotFoundException"),
            LambdaError::ProvisionedConcurrencyNotFound(_) => (
                S::NOT_FOUND,
                "ProvisionedConcurrencyConfigNotFoundException",
            ),
            LambdaError::Conflict(_) => (S::CONFLICT, "ResourceConflictException"),
            LambdaError::PreconditionFailed(_) => {
                (S::PRECONDITION_FAILED, "PreconditionFailedException")
            }
            LambdaError::TooLarge(_) => (S::PAYLOAD_TOO_LARGE, "RequestTooLargeException"),
            LambdaError::Store(_) | LambdaError::Internal(_) => return ApiError::internal(e),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        let message = match &e {
            AuthError::Missing => "Missing Authentication Token".to_owned(),
            AuthError::UnknownAccessKey => {
                "The security token included in the request is invalid.".to_owned()
            }
            AuthError::SignatureMismatch => "The request signature we calculated does not match the signature you provided. \
                 Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
                .to_owned(),
            other => other.to_string(),
        };
        ApiError::new(StatusCode::FORBIDDEN, e.aws_code(), message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("Type".into(), self.fault().into());
        body.insert("message".into(), self.message.clone().into());
        for (k, v) in &self.extra {
            body.insert((*k).into(), v.clone().into());
        }
        let mut resp = (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            serde_json::Value::Object(body).to_string(),
        )
            .into_response();
        resp.headers_mut()
            .insert("x-amzn-ErrorType", HeaderValue::from_static(self.code));
        resp
    }
}
