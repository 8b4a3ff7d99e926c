//! The one place where errors become AWS error responses.
//!
//! Lambda answers in the rest-json envelope: the code in `x-amzn-ErrorType` and a body
//! `{"Type": "User"|"Service", "Message" or "message": ...}`, the member spelled as Lambda's
//! model spells it for that error. botocore reads the header first, so boto3 raises the
//! modelled exception class (`client.exceptions.ResourceNotFoundException`, ...).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use stratus_invoke::CallError;
use stratus_lambda::LambdaError;
use stratus_protocol::{AwsError, Protocol};

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
            LambdaError::PolicyLengthExceeded(_) => {
                (S::BAD_REQUEST, "PolicyLengthExceededException")
            }
            LambdaError::Store(_) | LambdaError::Internal(_) => return ApiError::internal(e),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> ApiError {
        match e {
            CallError::Lambda(e) => e.into(),
            CallError::NotActive(_) => ApiError::new(
                StatusCode::CONFLICT,
                "ResourceConflictException",
                e.to_string(),
            ),
            CallError::Throttled(t) => ApiError::throttled(t.reason()),
            CallError::TooLarge { .. } => ApiError::too_large(e.to_string()),
            CallError::Unavailable => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceException",
                e.to_string(),
            ),
            CallError::Invoke(_) | CallError::Queue(_) | CallError::Join(_) => {
                ApiError::internal(e)
            }
        }
    }
}

/// How Lambda's model spells the message member of each error it can return. Most shapes
/// have `message`; these have `Message`, and the SDKs read the member by that name
/// (`err.Message` in JavaScript).
fn message_member(code: &str) -> &'static str {
    match code {
        "ResourceNotFoundException"
        | "ServiceException"
        | "ResourceInUseException"
        | "InvalidZipFileException"
        | "InvalidRuntimeException"
        | "CodeVerificationFailedException"
        | "InvalidCodeSignatureException"
        | "CodeSigningConfigNotFoundException"
        | "NoPublishedVersionException"
        | "PublicPolicyException"
        | "RecursiveInvocationException"
        | "ServiceQuotaExceededException"
        | "SnapStartException"
        | "SnapStartNotReadyException"
        | "SnapStartTimeoutException" => "Message",
        _ => "message",
    }
}

impl ApiError {
    /// The error in the protocol crate's terms, with Lambda's spelling of its members.
    pub fn to_aws(&self) -> AwsError {
        let mut e = AwsError::new(self.status, self.code, self.message.clone())
            .with_member(message_member(self.code));
        e.extra = self.extra.clone();
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The gateway adds the request id.
        self.to_aws().render(Protocol::RestJson, "")
    }
}
