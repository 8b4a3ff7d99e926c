use stratus_store::StoreError;

/// Everything the function service can refuse or fail with. Each variant maps to exactly
/// one AWS error code at the API edge.
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    /// A value broke a constraint of the API model (range, length, pattern).
    #[error("{0}")]
    Validation(String),
    /// A value is well-formed but not acceptable (bad zip, unknown runtime, reserved key...).
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    NotFound(String),
    /// The function exists but has no provisioned concurrency configuration for the qualifier.
    #[error("{0}")]
    ProvisionedConcurrencyNotFound(String),
    /// The resource exists already, or is busy with another update.
    #[error("{0}")]
    Conflict(String),
    /// A RevisionId or CodeSha256 precondition did not match.
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    TooLarge(String),
    /// A resource-based policy would grow past Lambda's size limit.
    #[error("{0}")]
    PolicyLengthExceeded(String),
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}
