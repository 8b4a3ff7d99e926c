//! AWS's policy evaluation logic, as a pure function of the policies and the request.
//!
//! Within one set of policies an explicit `Deny` wins, else an `Allow` is needed, else the
//! answer is an implicit deny ([`Decision::NoMatch`]); combining the sets (identity
//! policies, the resource's policy, the account root's rights) is the caller's, because it
//! differs between same-account and cross-account requests.
//!
//! A statement applies when its action, resource, principal (resource policies only) and
//! every condition match; the checks run cheapest and most selective first, and a matching
//! `Deny` ends the evaluation. Invariant: evaluation allocates nothing; everything it
//! compares was compiled when the document was written ([`crate::policy`]).

mod condition;

use std::collections::BTreeMap;

use crate::policy::{AwsPrincipal, Effect, Match, Pattern, PolicyDocument, Principals, Statement};

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
///
/// The same keys feed policy variables: `${aws:username}`, `${aws:userid}` and
/// `${aws:PrincipalAccount}` in a 2012-10-17 document's resources and condition values are
/// replaced by the context's `aws:username`, `aws:userid` and `aws:PrincipalAccount`.
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

    /// Sets a multi-valued key (`aws:TagKeys`) to its values; an empty list is a key with
    /// no values, which conditions treat as absent.
    pub fn set_all<I, S>(&mut self, key: &str, values: I) -> &mut Context
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.values.insert(
            key.to_ascii_lowercase(),
            values.into_iter().map(Into::into).collect(),
        );
        self
    }

    /// The values of `key` (any case), if it is present.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.values
            .get(&key.to_ascii_lowercase())
            .map(Vec::as_slice)
    }

    /// The values of an already lowercased key, or `None` when it is absent or empty (the
    /// evaluator's lookup: no allocation).
    pub(crate) fn get_lower(&self, key: &str) -> Option<&[String]> {
        self.values
            .get(key)
            .map(Vec::as_slice)
            .filter(|v| !v.is_empty())
    }

    /// The first value of an already lowercased key (a policy variable's value).
    pub(crate) fn first_lower(&self, key: &str) -> Option<&str> {
        self.get_lower(key)
            .and_then(<[String]>::first)
            .map(String::as_str)
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
///
/// `Principal` elements are not consulted (identity documents have none).
pub fn identity(policies: &[&PolicyDocument], req: &Request) -> Decision {
    decide(policies.iter().flat_map(|p| p.statements()), None, req)
}

/// What a resource policy (a trust policy, a function's policy) says for `principal`.
pub fn resource(policy: &PolicyDocument, principal: Principal, req: &Request) -> Decision {
    decide(policy.statements().iter(), Some(principal), req)
}

fn decide<'s>(
    statements: impl Iterator<Item = &'s Statement>,
    principal: Option<Principal>,
    req: &Request,
) -> Decision {
    let mut allowed = false;
    for st in statements {
        // An Allow already found cannot be overturned by another Allow: skip those.
        if allowed && st.effect() == Effect::Allow {
            continue;
        }
        if applies(st, principal, req) {
            match st.effect() {
                Effect::Deny => return Decision::Deny,
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::NoMatch
    }
}

fn applies(st: &Statement, principal: Option<Principal>, req: &Request) -> bool {
    let ctx = req.context;
    if !matches_any(&st.actions, |p: &Pattern| p.matches(req.action, ctx)) {
        return false;
    }
    if let Some(resources) = &st.resources
        && !matches_any(resources, |p: &Pattern| p.matches(req.resource, ctx))
    {
        return false;
    }
    if let Some(principal) = principal {
        match &st.principals {
            Some(principals) => {
                if !matches_any(principals, |p: &Principals| principal_matches(p, principal)) {
                    return false;
                }
            }
            // A statement naming no principal grants no one anything in a resource policy.
            None => return false,
        }
    }
    st.conditions.iter().all(|c| condition::holds(c, ctx))
}

fn matches_any<T>(m: &Match<T>, f: impl Fn(&T) -> bool) -> bool {
    match m {
        Match::In(items) => items.iter().any(f),
        Match::NotIn(items) => !items.iter().any(f),
    }
}

fn principal_matches(spec: &Principals, who: Principal) -> bool {
    match (spec, who) {
        (Principals::Everyone, _) => true,
        (Principals::Named { aws, .. }, Principal::Aws { arn, account }) => {
            aws.iter().any(|p| aws_matches(p, arn, account))
        }
        (Principals::Named { services, .. }, Principal::Service(service)) => {
            services.iter().any(|s| s.eq_ignore_ascii_case(service))
        }
    }
}

fn aws_matches(p: &AwsPrincipal, arn: &str, account: &str) -> bool {
    match p {
        AwsPrincipal::Any => true,
        AwsPrincipal::Account(a) => a == account,
        AwsPrincipal::Arn(a) => a == arn,
        AwsPrincipal::Role {
            arn: role_arn,
            account: role_account,
            name,
        } => role_arn == arn || is_session_of(arn, role_account, name),
    }
}

/// Whether `arn` is `arn:<partition>:sts::<account>:assumed-role/<name>/<session>`.
fn is_session_of(arn: &str, account: &str, name: &str) -> bool {
    let Some(rest) = arn.strip_prefix("arn:") else {
        return false;
    };
    let Some((_partition, rest)) = rest.split_once(':') else {
        return false;
    };
    let session = rest
        .strip_prefix("sts::")
        .and_then(|r| r.strip_prefix(account))
        .and_then(|r| r.strip_prefix(":assumed-role/"))
        .and_then(|r| r.strip_prefix(name))
        .and_then(|r| r.strip_prefix('/'));
    session.is_some_and(|s| !s.is_empty())
}

#[cfg(test)]
mod tests;
