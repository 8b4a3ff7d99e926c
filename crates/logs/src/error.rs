//! The errors Logs operations return, one variant per AWS error code.

/// What a Logs operation can fail with. Each variant is one AWS error code
/// ([`LogsError::code`]); the message is what AWS would put in `message`.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// A parameter is missing, out of range or malformed, a filter pattern does not parse,
    /// or a PutLogEvents batch breaks a batch rule.
    #[error("{0}")]
    InvalidParameter(String),
    /// The log group or log stream does not exist.
    #[error("{0}")]
    ResourceNotFound(String),
    /// CreateLogGroup or CreateLogStream on a name already taken.
    #[error("{0}")]
    ResourceAlreadyExists(String),
    /// A quota is reached (the number of log groups, [`crate::LogsOptions::max_log_groups`]).
    #[error("{0}")]
    LimitExceeded(String),
    /// TagResource would leave more than 50 tags on a log group.
    #[error("{0}")]
    TooManyTags(String),
    /// The disk refused: a server fault, not the caller's.
    #[error("storage: {0}")]
    Storage(#[from] std::io::Error),
}

impl LogsError {
    /// The AWS error code (`__type` in the JSON 1.1 protocol).
    pub fn code(&self) -> &'static str {
        match self {
            LogsError::InvalidParameter(_) => "InvalidParameterException",
            LogsError::ResourceNotFound(_) => "ResourceNotFoundException",
            LogsError::ResourceAlreadyExists(_) => "ResourceAlreadyExistsException",
            LogsError::LimitExceeded(_) => "LimitExceededException",
            LogsError::TooManyTags(_) => "TooManyTagsException",
            LogsError::Storage(_) => "ServiceUnavailableException",
        }
    }

    /// Whether the fault is the server's (HTTP 500 class) rather than the caller's.
    pub fn is_server_fault(&self) -> bool {
        matches!(self, LogsError::Storage(_))
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> LogsError {
        LogsError::InvalidParameter(msg.into())
    }

    pub(crate) fn group_not_found() -> LogsError {
        LogsError::ResourceNotFound("The specified log group does not exist.".into())
    }

    pub(crate) fn stream_not_found() -> LogsError {
        LogsError::ResourceNotFound("The specified log stream does not exist.".into())
    }
}

/// The result of every Logs operation.
pub type Result<T, E = LogsError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let cases = [
            (LogsError::invalid("x"), "InvalidParameterException", false),
            (
                LogsError::group_not_found(),
                "ResourceNotFoundException",
                false,
            ),
            (
                LogsError::ResourceAlreadyExists("x".into()),
                "ResourceAlreadyExistsException",
                false,
            ),
            (
                LogsError::LimitExceeded("x".into()),
                "LimitExceededException",
                false,
            ),
            (
                LogsError::TooManyTags("x".into()),
                "TooManyTagsException",
                false,
            ),
            (
                LogsError::Storage(std::io::Error::other("disk")),
                "ServiceUnavailableException",
                true,
            ),
        ];
        for (e, code, server) in cases {
            assert_eq!((e.code(), e.is_server_fault()), (code, server), "{e}");
        }
    }
}
