//! What IAM and STS operations fail with: one variant per AWS error code, so the wire crates
//! map each to its envelope in one place ([`IamError::code`], [`IamError::status`]).

use stratus_store::StoreError;

/// An IAM or STS operation's failure. The message is AWS's wording where AWS's is known.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// `NoSuchEntity` (404).
    #[error("{0}")]
    NoSuchEntity(String),
    /// `EntityAlreadyExists` (409).
    #[error("{0}")]
    EntityAlreadyExists(String),
    /// `MalformedPolicyDocument` (400): the policy language refused the document.
    #[error("{0}")]
    MalformedPolicyDocument(String),
    /// `DeleteConflict` (409): the entity still has what must be removed first.
    #[error("{0}")]
    DeleteConflict(String),
    /// `LimitExceeded` (409): a quota (keys per user, versions per policy, sizes).
    #[error("{0}")]
    LimitExceeded(String),
    /// `ValidationError` (400): a parameter breaks its constraint (pattern, length, range).
    #[error("{0}")]
    Validation(String),
    /// `InvalidInput` (400): a parameter is well formed but unacceptable.
    #[error("{0}")]
    InvalidInput(String),
    /// `AccessDenied` (403): STS refuses the caller (a trust policy does not allow it).
    #[error("{0}")]
    AccessDenied(String),
    /// The store failed (a server fault).
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A stored document could not be read back (a server fault).
    #[error("stored document: {0}")]
    Corrupt(#[from] serde_json::Error),
}

impl IamError {
    /// AWS's error code.
    pub fn code(&self) -> &'static str {
        match self {
            IamError::NoSuchEntity(_) => "NoSuchEntity",
            IamError::EntityAlreadyExists(_) => "EntityAlreadyExists",
            IamError::MalformedPolicyDocument(_) => "MalformedPolicyDocument",
            IamError::DeleteConflict(_) => "DeleteConflict",
            IamError::LimitExceeded(_) => "LimitExceeded",
            IamError::Validation(_) => "ValidationError",
            IamError::InvalidInput(_) => "InvalidInput",
            IamError::AccessDenied(_) => "AccessDenied",
            IamError::Store(_) | IamError::Corrupt(_) => "ServiceFailure",
        }
    }

    /// The HTTP status botocore's model gives the code.
    pub fn status(&self) -> u16 {
        match self {
            IamError::NoSuchEntity(_) => 404,
            IamError::EntityAlreadyExists(_)
            | IamError::DeleteConflict(_)
            | IamError::LimitExceeded(_) => 409,
            IamError::MalformedPolicyDocument(_)
            | IamError::Validation(_)
            | IamError::InvalidInput(_) => 400,
            IamError::AccessDenied(_) => 403,
            IamError::Store(_) | IamError::Corrupt(_) => 500,
        }
    }

    /// Ours, not the caller's: the detail belongs in the server's log.
    pub fn is_server_fault(&self) -> bool {
        self.status() >= 500
    }
}
