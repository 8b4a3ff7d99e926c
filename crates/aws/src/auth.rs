//! Who may do what: the question every service asks before it acts, and the trait through
//! which it asks. The binary wires [`Authorizer`] to IAM (identity policies, resource
//! policies, AWS's evaluation logic); services know only this vocabulary.
//!
//! A request asks for one `action` (`lambda:InvokeFunction`, as IAM spells it) on one
//! `resource` (an ARN, or `*` for actions on no resource) on behalf of a principal (the ARN
//! the gateway authenticated). The answer is yes, or [`Denied`] with AWS's message.

use std::net::IpAddr;

/// One request for permission.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// The caller's ARN (`arn:aws:iam::<account>:root`, `...:user/<name>`,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`).
    pub principal: &'a str,
    /// `service:Action`.
    pub action: &'a str,
    /// The resource's ARN, or `*`.
    pub resource: &'a str,
    /// Where the request came from (`aws:SourceIp`), when it came over the network.
    pub source_ip: Option<IpAddr>,
    /// The region the request was signed for (`aws:RequestedRegion`).
    pub region: &'a str,
}

/// A refusal, with the message AWS writes: who, what, on which resource, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Denied {
    pub message: String,
    /// A statement denied it: nothing, not even a resource policy, can allow it.
    pub explicit: bool,
}

impl Denied {
    /// No policy allows the request: "User: <principal> is not authorized to perform:
    /// <action> on resource: <resource> because no identity-based policy allows the
    /// <action> action", as AWS words it.
    pub fn not_allowed(access: &Access<'_>) -> Denied {
        Denied::new(
            access,
            &format!(
                "because no identity-based policy allows the {} action",
                access.action
            ),
        )
    }

    /// A statement denies the request: "... with an explicit deny in an identity-based
    /// policy".
    pub fn explicitly(access: &Access<'_>) -> Denied {
        Denied {
            explicit: true,
            ..Denied::new(access, "with an explicit deny in an identity-based policy")
        }
    }

    /// "User: <principal> is not authorized to perform: <action> on resource: <resource>
    /// <tail>".
    pub fn new(access: &Access<'_>, tail: &str) -> Denied {
        Denied {
            message: format!(
                "User: {} is not authorized to perform: {} on resource: {} {tail}",
                access.principal, access.action, access.resource
            ),
            explicit: false,
        }
    }
}

/// Decides requests. Implementations must be cheap (called on every request) and must not
/// block on I/O.
pub trait Authorizer: Send + Sync + 'static {
    /// What the caller's identity policies say (the account's root may do everything).
    fn authorize(&self, access: &Access<'_>) -> Result<(), Denied>;

    /// Whether resource policy `policy` (a document's JSON, such as a function's policy)
    /// allows `access`. `access.principal` is an IAM principal's ARN, or a service's name
    /// (`s3.amazonaws.com`) when a service acts; `context` adds condition keys
    /// (`aws:SourceArn`, `aws:SourceAccount`). A policy that does not parse allows nothing.
    fn policy_allows(&self, policy: &str, access: &Access<'_>, context: &[(&str, &str)]) -> bool;
}

/// Allows everything: for tests of wire crates, and for a server whose operator turned
/// enforcement off.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _access: &Access<'_>) -> Result<(), Denied> {
        Ok(())
    }

    fn policy_allows(
        &self,
        _policy: &str,
        _access: &Access<'_>,
        _context: &[(&str, &str)],
    ) -> bool {
        true
    }
}

/// Temporary credentials: an `ASIA…` key, its secret and session token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporaryCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

/// Sessions of execution roles, for the code a service runs on a principal's behalf (a
/// function's credentials are a session of its role, named after the function). The binary
/// wires it to IAM; a service that runs code asks it when it prepares an environment.
pub trait RoleSessions: Send + Sync + 'static {
    /// Whether the service may assume `role_arn`: it exists and its trust policy lets the
    /// service assume it (checked when a function is created or its role changed).
    fn assumable(&self, role_arn: &str) -> bool;

    /// Credentials acting as `role_arn`, for a session called `session_name`; `None` when
    /// the role cannot be assumed (it does not exist, or does not trust the service).
    fn credentials(&self, role_arn: &str, session_name: &str) -> Option<TemporaryCredentials>;
}

impl std::fmt::Debug for dyn RoleSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoleSessions")
    }
}
