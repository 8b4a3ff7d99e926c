//! AWS's policy evaluation logic, as a pure function of the policies and the request.
//!
//! STUB: the signatures below are the agreed interface; the implementation comes next.

use std::collections::BTreeMap;

use crate::policy::PolicyDocument;

/// What one set of policies says of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A statement allows it and none denies it.
    Allow,
    /// A statement denies it: nothing else can allow it.
    Deny,
    /// No statement matches (an implicit deny).
    NoMatch,
}

/// Condition keys and their values for one request (`aws:SourceIp`, `aws:CurrentTime`,
/// `aws:PrincipalArn`, `aws:RequestedRegion`, `lambda:FunctionUrlAuthType`,
/// `aws:SourceArn`, ...). Keys are matched case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    values: BTreeMap<String, Vec<String>>,
}

impl Context {
    pub fn new() -> Context {
        Context::default()
    }

    /// Sets `key` (any case) to one value.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Context {
        self.values
            .insert(key.to_ascii_lowercase(), vec![value.into()]);
        self
    }

    /// The values of `key` (any case), if it is present.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.values
            .get(&key.to_ascii_lowercase())
            .map(Vec::as_slice)
    }
}

/// One request, as policies see it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `service:Action`, as IAM spells it (`lambda:InvokeFunction`); matched
    /// case-insensitively.
    pub action: &'a str,
    /// The resource's ARN (`*` for actions on no resource, such as `lambda:ListFunctions`).
    pub resource: &'a str,
    pub context: &'a Context,
}

/// Who a resource policy's `Principal` is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal<'a> {
    /// An IAM principal: its ARN (user, role, assumed-role session, root) and account.
    Aws { arn: &'a str, account: &'a str },
    /// An AWS service (`s3.amazonaws.com`, `lambda.amazonaws.com`).
    Service(&'a str),
}

/// What a principal's identity policies (its own, its groups', its role's) say.
pub fn identity(_policies: &[&PolicyDocument], _req: &Request) -> Decision {
    Decision::NoMatch
}

/// What a resource policy (a trust policy, a function's policy) says for `principal`.
pub fn resource(_policy: &PolicyDocument, _principal: Principal, _req: &Request) -> Decision {
    Decision::NoMatch
}
