//! The IAM policy language: a document's JSON, parsed and validated into typed statements.
//!
//! STUB: the signatures below are the agreed interface; the implementation comes next.

/// Why a policy document was refused (the message of AWS's `MalformedPolicyDocument`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// A parsed, validated policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDocument {
    /// The text as written (AWS returns documents as they were sent, URL-encoded).
    pub text: String,
}

impl PolicyDocument {
    /// An identity policy (managed or inline, attached to a user, group or role): no
    /// `Principal`.
    pub fn identity(text: &str) -> Result<PolicyDocument, PolicyError> {
        Ok(PolicyDocument { text: text.into() })
    }

    /// A resource policy (a role's trust policy, a function's policy): every statement names
    /// a `Principal` (or `NotPrincipal`).
    pub fn resource(text: &str) -> Result<PolicyDocument, PolicyError> {
        Ok(PolicyDocument { text: text.into() })
    }
}
