//! The IAM policy language: a document's JSON, parsed and validated into typed statements.
//!
//! A document is checked once, when it is written (CreatePolicy, PutRolePolicy, CreateRole's
//! trust policy, AddPermission), in the order IAM checks and with IAM's messages for
//! `MalformedPolicyDocument`: syntax first ("Syntax errors in policy."), then what IAM calls
//! legacy parsing (effects, dates, ARN shapes), then statement ids, actions, resources and
//! principals. What survives is compiled for evaluation: actions lowercased, every
//! wildcard and `${...}` variable split into a pattern, condition values parsed into
//! numbers, instants and CIDR blocks, so [`crate::eval`] never parses or allocates.
//!
//! Invariants: `text` is the document exactly as written (AWS returns it so); a parsed
//! document is valid (an identity document has no `Principal`, every statement of a
//! resource document has one); policy variables are live only in version 2012-10-17
//! documents (older ones, or none, treat `${...}` as text, as AWS does).

mod condition;
mod pattern;

use serde_json::{Map, Value};

pub(crate) use condition::{Condition, KeyValues, SetOp, Test, Values};
pub(crate) use condition::{parse_bool, parse_instant};
pub(crate) use pattern::Pattern;
use pattern::Syntax;

/// Why a policy document was refused (the message of AWS's `MalformedPolicyDocument`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn syntax() -> PolicyError {
    PolicyError("Syntax errors in policy.".into())
}

fn legacy() -> PolicyError {
    PolicyError("The policy failed legacy parsing".into())
}

/// A parsed, validated policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDocument {
    /// The text as written (AWS returns documents as they were sent, URL-encoded).
    pub text: String,
    version: Option<String>,
    id: Option<String>,
    statements: Vec<Statement>,
}

/// Whether a statement allows or denies what it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// One statement, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    sid: Option<String>,
    effect: Effect,
    pub(crate) actions: Match<Pattern>,
    /// `None`: the statement names no resource (a trust policy's), so it applies to the
    /// resource the policy is attached to.
    pub(crate) resources: Option<Match<Pattern>>,
    /// `None` in identity policies.
    pub(crate) principals: Option<Match<Principals>>,
    pub(crate) conditions: Vec<Condition>,
}

/// `Action`/`Resource`/`Principal` (`In`) or their `Not` forms (`NotIn`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Match<T> {
    In(Vec<T>),
    NotIn(Vec<T>),
}

/// A `Principal` element, compiled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Principals {
    /// `"*"`: everyone, services included.
    Everyone,
    Named {
        aws: Vec<AwsPrincipal>,
        /// `"Service"` values (`lambda.amazonaws.com`).
        services: Vec<String>,
        /// `"Federated"` and `"CanonicalUser"` values: kept, never matched (Stratus has no
        /// such principals yet).
        other: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AwsPrincipal {
    /// `{"AWS": "*"}`: every IAM principal.
    Any,
    /// `123456789012` or `arn:aws:iam::123456789012:root`: every principal of the account.
    Account(String),
    /// A role: itself and every session of it.
    Role {
        arn: String,
        account: String,
        /// The role's name without its path (sessions' ARNs carry no path).
        name: String,
    },
    /// A user, a session, or anything else: that ARN exactly.
    Arn(String),
}

impl PolicyDocument {
    /// An identity policy (managed or inline, attached to a user, group or role): no
    /// `Principal`.
    pub fn identity(text: &str) -> Result<PolicyDocument, PolicyError> {
        parse(text, Kind::Identity)
    }

    /// A resource policy (a role's trust policy, a function's policy): every statement names
    /// a `Principal` (or `NotPrincipal`).
    pub fn resource(text: &str) -> Result<PolicyDocument, PolicyError> {
        parse(text, Kind::Resource)
    }

    /// The statements, in the document's order.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// `Version`, if the document has one.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// `Id`, if the document has one.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The IAM ARNs (users, roles, sessions) the document's `Principal`/`NotPrincipal`
    /// elements name, in order; accounts, roots and `*` are left out. AWS refuses a trust
    /// policy naming a user or role that does not exist ("Invalid principal in policy"):
    /// that check needs the store, so it is the caller's, with these.
    pub fn principal_arns(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for st in &self.statements {
            let Some(Match::In(specs) | Match::NotIn(specs)) = &st.principals else {
                continue;
            };
            for spec in specs {
                if let Principals::Named { aws, .. } = spec {
                    for p in aws {
                        match p {
                            AwsPrincipal::Role { arn, .. } | AwsPrincipal::Arn(arn) => {
                                out.push(arn.as_str())
                            }
                            AwsPrincipal::Any | AwsPrincipal::Account(_) => {}
                        }
                    }
                }
            }
        }
        out
    }
}

impl Statement {
    /// `Sid`, if the statement has one (Lambda's permissions are named by it).
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    pub fn effect(&self) -> Effect {
        self.effect
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Identity,
    Resource,
}

const TOP_KEYS: &[&str] = &["Version", "Id", "Statement"];
const STATEMENT_KEYS: &[&str] = &[
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Principal",
    "NotPrincipal",
    "Condition",
];
const VERSIONS: &[&str] = &["2012-10-17", "2008-10-17"];

fn parse(text: &str, kind: Kind) -> Result<PolicyDocument, PolicyError> {
    let doc: Value = serde_json::from_str(text).map_err(|_| syntax())?;
    let top = doc.as_object().ok_or_else(syntax)?;

    // Syntax: every element's name and JSON type.
    if top.keys().any(|k| !TOP_KEYS.contains(&k.as_str())) {
        return Err(syntax());
    }
    let version = optional_string(top, "Version")?;
    if let Some(v) = &version
        && !VERSIONS.contains(&v.as_str())
    {
        return Err(syntax());
    }
    let id = optional_string(top, "Id")?;
    let raw: Vec<&Map<String, Value>> = match top.get("Statement") {
        Some(Value::Object(s)) => vec![s],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|s| s.as_object().ok_or_else(syntax))
            .collect::<Result<_, _>>()?,
        _ => return Err(syntax()),
    };
    for st in &raw {
        check_statement_syntax(st)?;
    }

    // Legacy parsing: effects are case-sensitive here (syntax accepted any case).
    for st in &raw {
        if !matches!(
            st.get("Effect").and_then(Value::as_str),
            Some("Allow" | "Deny")
        ) {
            return Err(legacy());
        }
    }
    let variables = version.as_deref() == Some("2012-10-17");
    let mut statements = Vec::with_capacity(raw.len());
    for st in &raw {
        // Compiling conditions also checks their dates (a legacy-parsing refusal).
        let conditions = match st.get("Condition") {
            Some(Value::Object(block)) => condition::compile(block, variables)?,
            _ => Vec::new(),
        };
        statements.push(conditions);
    }
    for st in &raw {
        for key in ["Resource", "NotResource"] {
            if let Some(values) = st.get(key) {
                for r in strings(values)? {
                    check_resource(r)?;
                }
            }
        }
    }

    let mut sids: Vec<&str> = Vec::new();
    for st in &raw {
        if let Some(sid) = st.get("Sid").and_then(Value::as_str)
            && !sid.is_empty()
        {
            if sids.contains(&sid) {
                return Err(PolicyError(
                    "Statement IDs (SID) in a single policy must be unique.".into(),
                ));
            }
            sids.push(sid);
        }
    }

    for st in &raw {
        let has_principal = st.contains_key("Principal") || st.contains_key("NotPrincipal");
        match kind {
            Kind::Identity if has_principal => {
                return Err(PolicyError(
                    "Policy document should not specify a principal.".into(),
                ));
            }
            Kind::Resource if !has_principal => {
                return Err(PolicyError("Missing required field Principal".into()));
            }
            _ => {}
        }
        if !non_empty(st, "Action") && !non_empty(st, "NotAction") {
            return Err(PolicyError("Policy statement must contain actions.".into()));
        }
        if kind == Kind::Identity && !non_empty(st, "Resource") && !non_empty(st, "NotResource") {
            return Err(PolicyError(
                "Policy statement must contain resources.".into(),
            ));
        }
    }

    let mut compiled = Vec::with_capacity(raw.len());
    for (st, conditions) in raw.iter().zip(statements) {
        compiled.push(compile_statement(st, conditions, variables)?);
    }
    Ok(PolicyDocument {
        text: text.to_owned(),
        version,
        id,
        statements: compiled,
    })
}

fn optional_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, PolicyError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(syntax()),
    }
}

fn check_statement_syntax(st: &Map<String, Value>) -> Result<(), PolicyError> {
    if st.keys().any(|k| !STATEMENT_KEYS.contains(&k.as_str())) {
        return Err(syntax());
    }
    for (a, b) in [
        ("Action", "NotAction"),
        ("Resource", "NotResource"),
        ("Principal", "NotPrincipal"),
    ] {
        if st.contains_key(a) && st.contains_key(b) {
            return Err(syntax());
        }
    }
    match st.get("Effect") {
        Some(Value::String(e))
            if e.eq_ignore_ascii_case("allow") || e.eq_ignore_ascii_case("deny") => {}
        _ => return Err(syntax()),
    }
    for key in ["Action", "NotAction", "Resource", "NotResource"] {
        if let Some(v) = st.get(key) {
            strings(v)?;
        }
    }
    optional_string(st, "Sid")?;
    if let Some(c) = st.get("Condition") {
        let block = c.as_object().ok_or_else(syntax)?;
        if block.values().any(|keys| !keys.is_object()) {
            return Err(syntax());
        }
    }
    for key in ["Principal", "NotPrincipal"] {
        match st.get(key) {
            None => {}
            Some(Value::String(s)) if s == "*" => {}
            Some(Value::Object(p)) if !p.is_empty() => {
                for v in p.values() {
                    strings(v)?;
                }
            }
            Some(_) => return Err(syntax()),
        }
    }
    Ok(())
}

/// A string or an array of strings.
fn strings(v: &Value) -> Result<Vec<&str>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().ok_or_else(syntax))
            .collect(),
        _ => Err(syntax()),
    }
}

fn non_empty(st: &Map<String, Value>, key: &str) -> bool {
    match st.get(key) {
        Some(Value::Array(items)) => !items.is_empty(),
        Some(_) => true,
        None => false,
    }
}

const PARTITIONS: &[&str] = &[
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

/// `*` or `arn:partition:service:region:account:resource`, wildcards allowed but not in the
/// service.
fn check_resource(r: &str) -> Result<(), PolicyError> {
    if r == "*" {
        return Ok(());
    }
    let Some((_, rest)) = r.split_once(':') else {
        return Err(PolicyError(format!(
            "Resource {r} must be in ARN format or \"*\"."
        )));
    };
    let (partition, rest) = rest.split_once(':').unwrap_or((rest, ""));
    if partition != "*" && !PARTITIONS.contains(&partition) {
        let mut parts = rest.split(':');
        let mut next = || {
            parts
                .next()
                .filter(|p| !p.is_empty())
                .unwrap_or("*")
                .to_owned()
        };
        let (a, b, c) = (next(), next(), next());
        let tail: Vec<&str> = rest.split(':').skip(3).collect();
        let d = if tail.is_empty() {
            "*".to_owned()
        } else {
            tail.join(":")
        };
        return Err(PolicyError(format!(
            "Partition \"{partition}\" is not valid for resource \"arn:{partition}:{a}:{b}:{c}:{d}\"."
        )));
    }
    match rest.split_once(':') {
        Some((service, _)) if !service.is_empty() && !service.contains(['*', '?']) => {}
        _ => {
            return Err(PolicyError(
                "Resource vendor must be fully qualified and cannot contain regexes.".into(),
            ));
        }
    }
    if r.matches(':').count() < 5 {
        return Err(legacy());
    }
    Ok(())
}

fn compile_statement(
    st: &Map<String, Value>,
    conditions: Vec<Condition>,
    variables: bool,
) -> Result<Statement, PolicyError> {
    let effect = match st.get("Effect").and_then(Value::as_str) {
        Some("Deny") => Effect::Deny,
        _ => Effect::Allow,
    };
    let action_syntax = Syntax {
        wildcards: true,
        variables: false,
        ignore_case: true,
    };
    let actions = compile_match(st, "Action", "NotAction", |a| {
        check_action(a)?;
        Ok(Pattern::compile(a, action_syntax))
    })?
    .ok_or_else(|| PolicyError("Policy statement must contain actions.".into()))?;
    let resource_syntax = Syntax {
        wildcards: true,
        variables,
        ignore_case: false,
    };
    let resources = compile_match(st, "Resource", "NotResource", |r| {
        Ok(Pattern::compile(r, resource_syntax))
    })?;
    let principals = match (st.get("Principal"), st.get("NotPrincipal")) {
        (Some(p), _) => Some(Match::In(vec![compile_principals(p)?])),
        (_, Some(p)) => Some(Match::NotIn(vec![compile_principals(p)?])),
        _ => None,
    };
    Ok(Statement {
        sid: st.get("Sid").and_then(Value::as_str).map(str::to_owned),
        effect,
        actions,
        resources,
        principals,
        conditions,
    })
}

fn compile_match<T>(
    st: &Map<String, Value>,
    key: &str,
    not_key: &str,
    compile: impl Fn(&str) -> Result<T, PolicyError>,
) -> Result<Option<Match<T>>, PolicyError> {
    let each = |v: &Value| -> Result<Vec<T>, PolicyError> {
        strings(v)?.into_iter().map(&compile).collect()
    };
    Ok(match (st.get(key), st.get(not_key)) {
        (Some(v), _) => Some(Match::In(each(v)?)),
        (_, Some(v)) => Some(Match::NotIn(each(v)?)),
        _ => None,
    })
}

/// `*` or `vendor:pattern`, the vendor made of letters, digits, `-` and `.`.
fn check_action(a: &str) -> Result<(), PolicyError> {
    if a == "*" {
        return Ok(());
    }
    let mut parts = a.split(':');
    let vendor = parts.next().unwrap_or_default();
    match (parts.next(), parts.next()) {
        (None, _) => Err(PolicyError(
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.".into(),
        )),
        (Some(_), Some(_)) => Err(PolicyError(
            "Actions/Condition can contain only one colon.".into(),
        )),
        (Some(_), None) => {
            if vendor != "*"
                && (vendor.is_empty()
                    || !vendor
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
            {
                Err(PolicyError(format!("Vendor {vendor} is not valid")))
            } else {
                Ok(())
            }
        }
    }
}

fn compile_principals(p: &Value) -> Result<Principals, PolicyError> {
    let map = match p {
        Value::String(s) if s == "*" => return Ok(Principals::Everyone),
        Value::Object(map) => map,
        _ => return Err(syntax()),
    };
    let mut aws = Vec::new();
    let mut services = Vec::new();
    let mut other = Vec::new();
    for (kind, values) in map {
        for v in strings(values)? {
            let invalid =
                || PolicyError(format!("Invalid principal in policy: \"{kind}\":\"{v}\""));
            match kind.as_str() {
                "AWS" => aws.push(aws_principal(v).ok_or_else(invalid)?),
                "Service" => {
                    if v.is_empty() || v.contains(['*', '?']) {
                        return Err(invalid());
                    }
                    services.push(v.to_owned());
                }
                "Federated" | "CanonicalUser" => {
                    if v.is_empty() {
                        return Err(invalid());
                    }
                    other.push(v.to_owned());
                }
                _ => return Err(invalid()),
            }
        }
    }
    Ok(Principals::Named {
        aws,
        services,
        other,
    })
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `*`, an account id, or an IAM or STS ARN of an account (no wildcards: AWS refuses them).
fn aws_principal(v: &str) -> Option<AwsPrincipal> {
    if v == "*" {
        return Some(AwsPrincipal::Any);
    }
    if is_account(v) {
        return Some(AwsPrincipal::Account(v.to_owned()));
    }
    if v.contains(['*', '?']) {
        return None;
    }
    let mut parts = v.splitn(6, ':');
    let (arn, partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if arn != "arn"
        || !PARTITIONS.contains(&partition)
        || !region.is_empty()
        || !is_account(account)
        || resource.is_empty()
    {
        return None;
    }
    match (service, resource) {
        ("iam", "root") => Some(AwsPrincipal::Account(account.to_owned())),
        ("iam", r) if r.starts_with("role/") => {
            let name = r.rsplit('/').next().filter(|n| !n.is_empty())?;
            Some(AwsPrincipal::Role {
                arn: v.to_owned(),
                account: account.to_owned(),
                name: name.to_owned(),
            })
        }
        ("iam", _) | ("sts", _) => Some(AwsPrincipal::Arn(v.to_owned())),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
