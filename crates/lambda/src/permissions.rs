//! Resource-based policies: AddPermission, RemovePermission, GetPolicy, and the read the
//! invoke path makes to learn who else may call a function ([`FunctionService::resource_policy`]).
//!
//! A function has one policy for itself (unqualified, which `$LATEST` also names) and one per
//! version or alias, as on Lambda. Each policy is a list of statements AddPermission built
//! from its parameters, in AWS's shape (`Sid`, `Effect`, `Principal`, `Action`, `Resource`,
//! `Condition`), so the document GetPolicy returns is the statements as stored.
//!
//! Storage: in the function's record (`FunctionRecord::policies`, by qualifier), so deleting
//! the function deletes its policies in the same commit, and the invoke path finds them in the
//! record it has already read. Deleting a version or an alias removes its entry in the commit
//! that deletes it (see `drop_policy_op`).
//!
//! RevisionId. Each policy carries its own revision, new with every change, which GetPolicy
//! returns and a RevisionId on Add/RemovePermission must match. Before a qualifier has a
//! policy, AddPermission's RevisionId is checked against the function's, version's or alias's
//! own RevisionId (what GetFunction/GetAlias report). AWS instead changes the function's or
//! alias's RevisionId itself when its policy changes; here that would also end the
//! function's warm environments, which the invoker keys by configuration revision, for a
//! change that touches no configuration.

use serde::{Deserialize, Serialize};
use stratus_store::{Expect, Op, StoreError};

use crate::model::FunctionRecord;
use crate::names::FunctionRef;
use crate::records::{FUNCTIONS, LATEST, blobs_of, encode, is_version_number, new_revision};
use crate::{FunctionService, LambdaError, validate};

/// Lambda's limit on the size of one resource-based policy document.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// The key of the function's own policy in `FunctionRecord::policies`.
const FUNCTION_KEY: &str = "";

/// One resource-based policy as stored: its statements and its revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ResourcePolicy {
    pub revision_id: String,
    pub statements: Vec<PolicyStatement>,
}

/// One statement of a resource-based policy, in AWS's JSON shape (field order included).
/// Statements AddPermission makes always allow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyStatement {
    pub sid: String,
    pub effect: String,
    pub principal: Principal,
    pub action: String,
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Conditions>,
}

/// Who a statement grants access to, as AWS writes it: `"*"`, `{"AWS": arn}` or
/// `{"Service": name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Principal {
    Aws {
        #[serde(rename = "AWS")]
        arn: String,
    },
    Service {
        #[serde(rename = "Service")]
        service: String,
    },
    /// Always `"*"`: anyone.
    Any(String),
}

/// A statement's conditions, by operator, in the order AWS lists them. Each map is
/// condition key → value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conditions {
    #[serde(
        rename = "StringEquals",
        default,
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub string_equals: std::collections::BTreeMap<String, String>,
    #[serde(
        rename = "ArnLike",
        default,
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub arn_like: std::collections::BTreeMap<String, String>,
    #[serde(
        rename = "Bool",
        default,
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub bool: std::collections::BTreeMap<String, String>,
}

impl Conditions {
    fn is_empty(&self) -> bool {
        self.string_equals.is_empty() && self.arn_like.is_empty() && self.bool.is_empty()
    }
}

/// AddPermission's input (the function and qualifier are separate arguments).
#[derive(Debug, Clone, Default)]
pub struct AddPermission {
    pub statement_id: String,
    pub action: String,
    pub principal: String,
    pub source_arn: Option<String>,
    pub source_account: Option<String>,
    pub principal_org_id: Option<String>,
    /// `NONE` or `AWS_IAM`.
    pub function_url_auth_type: Option<String>,
    pub invoked_via_function_url: Option<bool>,
    pub event_source_token: Option<String>,
    /// Change the policy only if its revision is this one.
    pub revision_id: Option<String>,
}

/// GetPolicy's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyView {
    /// The policy document, JSON text.
    pub policy: String,
    pub revision_id: String,
}

/// The JSON document of a policy made of `statements`.
fn document(statements: &[PolicyStatement]) -> Result<String, LambdaError> {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Document<'a> {
        version: &'static str,
        id: &'static str,
        statement: &'a [PolicyStatement],
    }
    serde_json::to_string(&Document {
        version: "2012-10-17",
        id: "default",
        statement: statements,
    })
    .map_err(|e| LambdaError::Internal(format!("encoding a policy: {e}")))
}

fn check_statement_id(sid: &str, extra: &str) -> Result<(), LambdaError> {
    if sid.is_empty() {
        return Err(validate::constraint(
            sid,
            "statementId",
            "Member must have length greater than or equal to 1",
        ));
    }
    validate::max_len(sid, "statementId", 100)?;
    let ok = sid
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || extra.contains(c));
    if !ok {
        return Err(validate::constraint(
            sid,
            "statementId",
            &format!("Member must satisfy regular expression pattern: ([a-zA-Z0-9-_{extra}]+)"),
        ));
    }
    Ok(())
}

/// The model's `Action` pattern: `lambda:*`, `lambda:<Letters>` or `*`.
fn check_action(action: &str) -> Result<(), LambdaError> {
    validate::max_len(action, "action", 10000)?;
    let ok = action == "*"
        || action.strip_prefix("lambda:").is_some_and(|rest| {
            rest == "*" || (!rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphabetic()))
        });
    if !ok {
        return Err(validate::constraint(
            action,
            "action",
            "Member must satisfy regular expression pattern: (lambda:[*]|lambda:[a-zA-Z]+|[*])",
        ));
    }
    Ok(())
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The principal AddPermission was given, in the form a statement holds it: an account
/// becomes its root user's ARN, a service (`s3.amazonaws.com`) a `Service` principal.
fn principal(p: &str) -> Result<Principal, LambdaError> {
    validate::max_len(p, "principal", 2048)?;
    if p.is_empty() || p.chars().any(char::is_whitespace) {
        return Err(validate::constraint(
            p,
            "principal",
            "Member must satisfy regular expression pattern: [^\\s]+",
        ));
    }
    if p == "*" {
        return Ok(Principal::Any("*".into()));
    }
    if is_account_id(p) {
        return Ok(Principal::Aws {
            arn: format!("arn:aws:iam::{p}:root"),
        });
    }
    // arn:<partition>:iam::<account>:<root | user/... | role/...>
    let parts: Vec<&str> = p.splitn(6, ':').collect();
    if let ["arn", partition, "iam", "", account, rest] = parts.as_slice()
        && partition.starts_with("aws")
        && is_account_id(account)
        && !rest.is_empty()
    {
        return Ok(Principal::Aws { arn: p.to_owned() });
    }
    let service = [".amazonaws.com", ".amazon.com"]
        .iter()
        .any(|suffix| p.strip_suffix(suffix).is_some_and(|head| !head.is_empty()))
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if service {
        return Ok(Principal::Service {
            service: p.to_owned(),
        });
    }
    Err(LambdaError::InvalidParameter(
        "The provided principal was invalid. Please check the principal and try again.".into(),
    ))
}

/// The model's `Arn` pattern, checked part by part:
/// `arn:aws…:<service>:<region or empty>:<12 digits or empty>:<anything>`.
fn check_source_arn(arn: &str) -> Result<(), LambdaError> {
    validate::max_len(arn, "sourceArn", 10000)?;
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = match parts.as_slice() {
        ["arn", partition, service, region, account, _] => {
            partition
                .strip_prefix("aws")
                .is_some_and(|p| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
                && !service.is_empty()
                && service
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && (region.is_empty()
                    || (region
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && region.ends_with(|c: char| c.is_ascii_digit())
                        && region.contains('-')))
                && (account.is_empty() || is_account_id(account))
        }
        _ => false,
    };
    if !ok {
        return Err(validate::constraint(
            arn,
            "sourceArn",
            "Member must satisfy regular expression pattern: \
             arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\\-])+:((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1})?:(\\d{12})?:(.*)",
        ));
    }
    Ok(())
}

/// The statement AddPermission adds for `input` on `resource` (the function's ARN, qualified
/// when the permission is for a version or alias), after checking every parameter against
/// the API model.
fn build_statement(
    input: &AddPermission,
    resource: String,
) -> Result<PolicyStatement, LambdaError> {
    check_statement_id(&input.statement_id, "")?;
    check_action(&input.action)?;
    let principal = principal(&input.principal)?;
    let mut condition = Conditions::default();
    if let Some(arn) = &input.source_arn {
        check_source_arn(arn)?;
        condition
            .arn_like
            .insert("AWS:SourceArn".into(), arn.clone());
    }
    if let Some(account) = &input.source_account {
        validate::max_len(account, "sourceAccount", 12)?;
        if !is_account_id(account) {
            return Err(validate::constraint(
                account,
                "sourceAccount",
                "Member must satisfy regular expression pattern: \\d{12}",
            ));
        }
        condition
            .string_equals
            .insert("AWS:SourceAccount".into(), account.clone());
    }
    if let Some(org) = &input.principal_org_id {
        let ok = (12..=34).contains(&org.len())
            && org.strip_prefix("o-").is_some_and(|rest| {
                (10..=32).contains(&rest.len())
                    && rest
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        if !ok {
            return Err(validate::constraint(
                org,
                "principalOrgID",
                "Member must satisfy regular expression pattern: o-[a-z0-9]{10,32}",
            ));
        }
        condition
            .string_equals
            .insert("aws:PrincipalOrgID".into(), org.clone());
    }
    if let Some(token) = &input.event_source_token {
        validate::max_len(token, "eventSourceToken", 256)?;
        let ok = !token.is_empty()
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !ok {
            return Err(validate::constraint(
                token,
                "eventSourceToken",
                "Member must satisfy regular expression pattern: [a-zA-Z0-9._\\-]+",
            ));
        }
        condition
            .string_equals
            .insert("lambda:EventSourceToken".into(), token.clone());
    }
    if let Some(auth) = &input.function_url_auth_type {
        if auth != "NONE" && auth != "AWS_IAM" {
            return Err(validate::constraint(
                auth,
                "functionUrlAuthType",
                "Member must satisfy enum value set: [NONE, AWS_IAM]",
            ));
        }
        condition
            .string_equals
            .insert("lambda:FunctionUrlAuthType".into(), auth.clone());
    }
    if let Some(via_url) = input.invoked_via_function_url {
        condition
            .bool
            .insert("lambda:InvokedViaFunctionUrl".into(), via_url.to_string());
    }
    Ok(PolicyStatement {
        sid: input.statement_id.clone(),
        effect: "Allow".into(),
        principal,
        action: input.action.clone(),
        resource,
        condition: (!condition.is_empty()).then_some(condition),
    })
}

fn revision_mismatch() -> LambdaError {
    LambdaError::PreconditionFailed(
        "The Revision Id provided does not match the latest Revision Id. \
         Call the GetPolicy API to retrieve the latest Revision Id"
            .into(),
    )
}

/// The key of `r`'s policy in the record: the function's own for no qualifier or `$LATEST`.
fn policy_key(r: &FunctionRef) -> &str {
    match r.qualifier.as_deref() {
        None | Some(LATEST) => FUNCTION_KEY,
        Some(q) => q,
    }
}

impl FunctionService {
    /// The RevisionId of what `r` names (the function, a version, an alias), or not found
    /// when the version or alias does not exist.
    fn target_revision(
        &self,
        rec: &FunctionRecord,
        r: &FunctionRef,
    ) -> Result<String, LambdaError> {
        let revision = match r.qualifier.as_deref() {
            None | Some(LATEST) => Some(rec.latest.revision_id.clone()),
            Some(q) if is_version_number(q) => {
                self.load_version(&r.name, q)?.map(|v| v.revision_id)
            }
            Some(q) => self.alias_revision(&r.name, q)?,
        };
        revision.ok_or_else(|| self.not_found(r))
    }

    /// Loads `r`'s record, lets `change` edit it, and commits it. The preparation worker
    /// writes records without the write lock, so a commit that lost to it is tried again.
    fn change_policies<T>(
        &self,
        r: &FunctionRef,
        mut change: impl FnMut(&mut FunctionRecord) -> Result<T, LambdaError>,
    ) -> Result<T, LambdaError> {
        let _w = self.write_guard()?;
        let mut attempts = 0;
        loop {
            let (mut rec, doc_version) = self.load(&r.name)?.ok_or_else(|| {
                self.not_found(&FunctionRef {
                    name: r.name.clone(),
                    qualifier: None,
                })
            })?;
            let out = change(&mut rec)?;
            let op = Op::put_with_blobs(
                FUNCTIONS,
                &r.name,
                encode(&rec)?,
                blobs_of(&rec.latest)?,
                Expect::Version(doc_version),
            );
            match self.inner.store.meta.commit(&[op]) {
                Ok(()) => return Ok(out),
                Err(StoreError::Conflict { .. }) if attempts < 5 => attempts += 1,
                Err(StoreError::Conflict { .. }) => {
                    return Err(LambdaError::Conflict(format!(
                        "The operation cannot be performed at this time. An update is in progress for resource: {}",
                        self.scope().function_arn(&r.name)
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// AddPermission: adds a statement to the policy of the function, or of the version or
    /// alias `qualifier` names, and returns the statement as JSON text.
    pub fn add_permission(
        &self,
        name: &str,
        qualifier: Option<&str>,
        input: AddPermission,
    ) -> Result<String, LambdaError> {
        let r = FunctionRef::parse(name, qualifier, self.scope())?;
        if r.qualifier.as_deref() == Some(LATEST) {
            return Err(LambdaError::InvalidParameter(
                "We currently do not support adding policies for $LATEST.".into(),
            ));
        }
        let resource = match &r.qualifier {
            Some(q) => self.scope().qualified_arn(&r.name, q),
            None => self.scope().function_arn(&r.name),
        };
        let statement = build_statement(&input, resource)?;
        let key = policy_key(&r).to_owned();
        self.change_policies(&r, |rec| {
            let target_revision = self.target_revision(rec, &r)?;
            let policy = rec
                .policies
                .entry(key.clone())
                .or_insert_with(|| ResourcePolicy {
                    revision_id: target_revision,
                    statements: Vec::new(),
                });
            if let Some(want) = &input.revision_id
                && *want != policy.revision_id
            {
                return Err(revision_mismatch());
            }
            if policy.statements.iter().any(|s| s.sid == statement.sid) {
                return Err(LambdaError::Conflict(format!(
                    "The statement id ({}) provided already exists. Please provide a new statement id, \
                     or remove the existing statement.",
                    statement.sid
                )));
            }
            policy.statements.push(statement.clone());
            let size = document(&policy.statements)?.len();
            if size > MAX_POLICY_BYTES {
                return Err(LambdaError::PolicyLengthExceeded(format!(
                    "The final policy size ({size}) is bigger than the limit ({MAX_POLICY_BYTES})."
                )));
            }
            policy.revision_id = new_revision();
            Ok(())
        })?;
        tracing::info!(function = %r.name, qualifier = ?r.qualifier, sid = %statement.sid, "permission added");
        serde_json::to_string(&statement)
            .map_err(|e| LambdaError::Internal(format!("encoding a statement: {e}")))
    }

    /// RemovePermission: removes statement `sid` from the policy of the function, or of the
    /// version or alias `qualifier` names. A policy left without statements is gone.
    pub fn remove_permission(
        &self,
        name: &str,
        qualifier: Option<&str>,
        sid: &str,
        revision_id: Option<&str>,
    ) -> Result<(), LambdaError> {
        let r = FunctionRef::parse(name, qualifier, self.scope())?;
        check_statement_id(sid, ".")?;
        let key = policy_key(&r);
        self.change_policies(&r, |rec| {
            let Some(policy) = rec.policies.get_mut(key) else {
                return Err(LambdaError::NotFound(
                    "No policy is associated with the given resource.".into(),
                ));
            };
            let Some(at) = policy.statements.iter().position(|s| s.sid == sid) else {
                return Err(LambdaError::NotFound(format!(
                    "Statement {sid} is not found in resource policy."
                )));
            };
            if revision_id.is_some_and(|want| want != policy.revision_id) {
                return Err(revision_mismatch());
            }
            policy.statements.remove(at);
            policy.revision_id = new_revision();
            if policy.statements.is_empty() {
                rec.policies.remove(key);
            }
            Ok(())
        })?;
        tracing::info!(function = %r.name, qualifier = ?r.qualifier, sid = %sid, "permission removed");
        Ok(())
    }

    /// GetPolicy: the policy of the function, or of the version or alias `qualifier` names.
    pub fn get_policy(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<PolicyView, LambdaError> {
        let r = FunctionRef::parse(name, qualifier, self.scope())?;
        let rec = self
            .load_shared(&r.name)?
            .ok_or_else(|| self.not_found(&r))?;
        let policy = rec.policies.get(policy_key(&r)).ok_or_else(|| {
            LambdaError::NotFound("The resource you requested does not exist.".into())
        })?;
        Ok(PolicyView {
            policy: document(&policy.statements)?,
            revision_id: policy.revision_id.clone(),
        })
    }

    /// The resource-based policy document (JSON text, as GetPolicy returns it) that governs
    /// calls on `name` with `qualifier`: the function's own for no qualifier or `$LATEST`,
    /// else the named version's or alias's (each has its own; the function's does not cover
    /// them, nor they it). `Ok(None)` when there is no policy, or the version or alias does
    /// not exist; `NotFound` when the function does not.
    ///
    /// For the authorizer that decides whether a service or another account may invoke a
    /// function. Cheap: it reads the function's record through the service's decoded-record
    /// cache (one store read, no decoding when the record has not changed), so it can run
    /// on every invocation; wrap it in [`FunctionService::from_memory`] on async paths.
    pub fn resource_policy(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<Option<String>, LambdaError> {
        let r = FunctionRef::parse(name, qualifier, self.scope())?;
        let rec = self
            .load_shared(&r.name)?
            .ok_or_else(|| self.not_found(&r))?;
        rec.policies
            .get(policy_key(&r))
            .map(|p| document(&p.statements))
            .transpose()
    }

    // ---- Used by the rest of the service ---------------------------------------------------

    /// The op that drops the policy of version or alias `qualifier` of `function`, for the
    /// commit that deletes that version or alias (`None` when it has no policy). The caller
    /// holds the write lock.
    pub(crate) fn drop_policy_op(
        &self,
        function: &str,
        qualifier: &str,
    ) -> Result<Option<Op>, LambdaError> {
        let Some((mut rec, doc_version)) = self.load(function)? else {
            return Ok(None);
        };
        if rec.policies.remove(qualifier).is_none() {
            return Ok(None);
        }
        Ok(Some(Op::put_with_blobs(
            FUNCTIONS,
            function,
            encode(&rec)?,
            blobs_of(&rec.latest)?,
            Expect::Version(doc_version),
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::{create_active, open};
    use crate::{CreateAlias, PublishVersion};

    const ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:f";

    fn input(sid: &str, principal: &str) -> AddPermission {
        AddPermission {
            statement_id: sid.into(),
            action: "lambda:InvokeFunction".into(),
            principal: principal.into(),
            ..AddPermission::default()
        }
    }

    fn json(text: &str) -> serde_json::Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn principals_take_aws_forms() {
        let cases = [
            ("*", serde_json::json!("*")),
            (
                "123456789012",
                serde_json::json!({"AWS": "arn:aws:iam::123456789012:root"}),
            ),
            (
                "arn:aws:iam::123456789012:role/invoker",
                serde_json::json!({"AWS": "arn:aws:iam::123456789012:role/invoker"}),
            ),
            (
                "arn:aws:iam::123456789012:root",
                serde_json::json!({"AWS": "arn:aws:iam::123456789012:root"}),
            ),
            (
                "s3.amazonaws.com",
                serde_json::json!({"Service": "s3.amazonaws.com"}),
            ),
            (
                "alexa-appkit.amazon.com",
                serde_json::json!({"Service": "alexa-appkit.amazon.com"}),
            ),
        ];
        for (given, want) in cases {
            let s = build_statement(&input("s", given), ARN.into()).unwrap();
            assert_eq!(serde_json::to_value(&s.principal).unwrap(), want, "{given}");
        }
        for bad in [
            "someone",
            "12345",
            "arn:aws:s3:::bucket",
            ".amazonaws.com",
            "arn:aws:iam::12:root",
        ] {
            assert!(
                matches!(
                    build_statement(&input("s", bad), ARN.into()),
                    Err(LambdaError::InvalidParameter(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            build_statement(&input("s", "a b"), ARN.into()),
            Err(LambdaError::Validation(_))
        ));
    }

    #[test]
    fn statements_read_as_aws_writes_them() {
        let s = build_statement(
            &AddPermission {
                source_arn: Some("arn:aws:s3:::my-bucket".into()),
                source_account: Some("123456789012".into()),
                ..input("s3-invoke", "s3.amazonaws.com")
            },
            ARN.into(),
        )
        .unwrap();
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"Sid":"s3-invoke","Effect":"Allow","Principal":{{"Service":"s3.amazonaws.com"}},"Action":"lambda:InvokeFunction","Resource":"{ARN}","Condition":{{"StringEquals":{{"AWS:SourceAccount":"123456789012"}},"ArnLike":{{"AWS:SourceArn":"arn:aws:s3:::my-bucket"}}}}}}"#
            )
        );
        // No condition, no Condition member.
        let plain = build_statement(&input("p", "*"), ARN.into()).unwrap();
        assert!(
            json(&serde_json::to_string(&plain).unwrap())
                .get("Condition")
                .is_none()
        );
        // Stored and read back unchanged.
        let back: PolicyStatement = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn every_condition_parameter_has_its_key() {
        let s = build_statement(
            &AddPermission {
                action: "lambda:InvokeFunctionUrl".into(),
                principal_org_id: Some("o-a1b2c3d4e5".into()),
                function_url_auth_type: Some("NONE".into()),
                event_source_token: Some("tok.en-1_x".into()),
                invoked_via_function_url: Some(true),
                ..input("url", "*")
            },
            ARN.into(),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(s.condition.unwrap()).unwrap(),
            serde_json::json!({
                "StringEquals": {
                    "aws:PrincipalOrgID": "o-a1b2c3d4e5",
                    "lambda:FunctionUrlAuthType": "NONE",
                    "lambda:EventSourceToken": "tok.en-1_x",
                },
                "Bool": {"lambda:InvokedViaFunctionUrl": "true"},
            })
        );
    }

    #[test]
    fn parameters_are_checked_against_the_model() {
        type Edit = fn(&mut AddPermission);
        let bad: Vec<(&str, Edit)> = vec![
            ("statementId", |i| i.statement_id = "a.b".into()),
            ("statementId", |i| i.statement_id = String::new()),
            ("statementId", |i| i.statement_id = "x".repeat(101)),
            ("action", |i| i.action = "s3:GetObject".into()),
            ("action", |i| i.action = "lambda:".into()),
            ("action", |i| i.action = "lambda:Invoke*".into()),
            ("sourceArn", |i| i.source_arn = Some("bucket".into())),
            ("sourceArn", |i| {
                i.source_arn = Some("arn:aws:s3:us-east-1:12:x".into())
            }),
            ("sourceAccount", |i| i.source_account = Some("12345".into())),
            ("principalOrgID", |i| {
                i.principal_org_id = Some("o-SHOUTING12".into())
            }),
            ("eventSourceToken", |i| {
                i.event_source_token = Some("no spaces".into())
            }),
            ("functionUrlAuthType", |i| {
                i.function_url_auth_type = Some("OPEN".into())
            }),
        ];
        for (field, edit) in bad {
            let mut i = input("s", "*");
            edit(&mut i);
            let e = build_statement(&i, ARN.into()).unwrap_err();
            assert!(
                matches!(&e, LambdaError::Validation(m) if m.contains(&format!("at '{field}'"))),
                "{field}: {e:?}"
            );
        }
        for ok in [
            "lambda:*",
            "*",
            "lambda:GetFunction",
            "lambda:InvokeFunctionUrl",
        ] {
            let mut i = input("s", "*");
            i.action = ok.into();
            assert!(build_statement(&i, ARN.into()).is_ok(), "{ok}");
        }
        let mut i = input("s", "*");
        i.source_arn = Some("arn:aws:execute-api:us-east-1:123456789012:api1/*/GET/x".into());
        assert!(build_statement(&i, ARN.into()).is_ok());
    }

    #[test]
    fn add_get_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path());
        create_active(&svc, "f");
        assert!(matches!(
            svc.get_policy("f", None),
            Err(LambdaError::NotFound(m)) if m == "The resource you requested does not exist."
        ));
        assert_eq!(svc.resource_policy("f", None).unwrap(), None);
        let text = svc
            .add_permission("f", None, input("one", "123456789012"))
            .unwrap();
        assert_eq!(json(&text)["Resource"], ARN);
        svc.add_permission("f", None, input("two", "s3.amazonaws.com"))
            .unwrap();
        let got = svc.get_policy("f", None).unwrap();
        let doc = json(&got.policy);
        assert_eq!(doc["Version"], "2012-10-17");
        assert_eq!(doc["Id"], "default");
        let sids: Vec<&str> = doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Sid"].as_str().unwrap())
            .collect();
        assert_eq!(sids, ["one", "two"]);
        assert_eq!(json(&text), doc["Statement"][0]);
        // `$LATEST` and the ARN forms name the function's own policy.
        assert_eq!(svc.get_policy(ARN, Some("$LATEST")).unwrap(), got);
        assert_eq!(
            svc.resource_policy("f", None).unwrap().as_deref(),
            Some(got.policy.as_str())
        );

        let dup = svc
            .add_permission("f", None, input("one", "*"))
            .unwrap_err();
        assert!(
            matches!(&dup, LambdaError::Conflict(m) if m.contains("(one)")),
            "{dup:?}"
        );

        svc.remove_permission("f", None, "one", None).unwrap();
        let e = svc.remove_permission("f", None, "one", None).unwrap_err();
        assert!(
            matches!(&e, LambdaError::NotFound(m) if m.contains("Statement one")),
            "{e:?}"
        );
        svc.remove_permission("f", None, "two", None).unwrap();
        assert!(matches!(
            svc.get_policy("f", None),
            Err(LambdaError::NotFound(_))
        ));
        let e = svc.remove_permission("f", None, "two", None).unwrap_err();
        assert!(
            matches!(&e, LambdaError::NotFound(m) if m.contains("No policy")),
            "{e:?}"
        );
        assert!(matches!(
            svc.add_permission("nope", None, input("s", "*")),
            Err(LambdaError::NotFound(_))
        ));
        assert!(matches!(
            svc.get_policy("nope", None),
            Err(LambdaError::NotFound(m)) if m.starts_with("Function not found")
        ));
    }

    #[test]
    fn latest_cannot_be_given_a_policy_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path());
        create_active(&svc, "f");
        for (name, q) in [("f", Some("$LATEST")), ("f:$LATEST", None)] {
            let e = svc.add_permission(name, q, input("s", "*")).unwrap_err();
            assert!(matches!(&e, LambdaError::InvalidParameter(m) if m.contains("$LATEST")));
        }
    }

    #[test]
    fn revision_ids_guard_changes() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path());
        create_active(&svc, "f");
        // Before there is a policy, the function's own RevisionId is the one to give.
        let function_rev = svc.get("f", None).unwrap().config.revision_id;
        let e = svc
            .add_permission(
                "f",
                None,
                AddPermission {
                    revision_id: Some("stale".into()),
                    ..input("a", "*")
                },
            )
            .unwrap_err();
        assert!(matches!(e, LambdaError::PreconditionFailed(_)));
        svc.add_permission(
            "f",
            None,
            AddPermission {
                revision_id: Some(function_rev.clone()),
                ..input("a", "*")
            },
        )
        .unwrap();
        // Then the policy's, new with every change.
        let r1 = svc.get_policy("f", None).unwrap().revision_id;
        assert_ne!(r1, function_rev);
        let stale = AddPermission {
            revision_id: Some(function_rev.clone()),
            ..input("b", "*")
        };
        assert!(matches!(
            svc.add_permission("f", None, stale),
            Err(LambdaError::PreconditionFailed(_))
        ));
        svc.add_permission(
            "f",
            None,
            AddPermission {
                revision_id: Some(r1.clone()),
                ..input("b", "*")
            },
        )
        .unwrap();
        let r2 = svc.get_policy("f", None).unwrap().revision_id;
        assert_ne!(r2, r1);
        assert!(matches!(
            svc.remove_permission("f", None, "a", Some(&r1)),
            Err(LambdaError::PreconditionFailed(_))
        ));
        svc.remove_permission("f", None, "a", Some(&r2)).unwrap();
        // The function's configuration revision is untouched by policy changes.
        assert_eq!(svc.get("f", None).unwrap().config.revision_id, function_rev);
    }

    #[test]
    fn policies_past_20_kb_are_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path());
        create_active(&svc, "f");
        let long_arn = format!("arn:aws:s3:::{}", "b".repeat(1900));
        let mut added = 0;
        let err = loop {
            let i = AddPermission {
                source_arn: Some(long_arn.clone()),
                ..input(&format!("s{added}"), "s3.amazonaws.com")
            };
            match svc.add_permission("f", None, i) {
                Ok(_) => added += 1,
                Err(e) => break e,
            }
            assert!(added < 20, "never refused");
        };
        assert!(
            matches!(&err, LambdaError::PolicyLengthExceeded(m) if m.contains("(20480)")),
            "{err:?}"
        );
        // The refused statement left nothing behind.
        let doc = json(&svc.get_policy("f", None).unwrap().policy);
        assert_eq!(doc["Statement"].as_array().unwrap().len(), added);
        assert!(svc.get_policy("f", None).unwrap().policy.len() <= MAX_POLICY_BYTES);
    }

    #[test]
    fn versions_and_aliases_have_policies_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path());
        create_active(&svc, "f");
        svc.publish_version("f", PublishVersion::default()).unwrap();
        svc.create_alias(
            "f",
            CreateAlias {
                name: "live".into(),
                function_version: "1".into(),
                ..CreateAlias::default()
            },
        )
        .unwrap();
        // A version or alias that does not exist cannot be given one.
        for q in ["7", "gone"] {
            assert!(matches!(
                svc.add_permission("f", Some(q), input("s", "*")),
                Err(LambdaError::NotFound(_))
            ));
        }
        // Before its first policy, a version's RevisionId is its configuration's.
        let v1_rev = svc.get("f", Some("1")).unwrap().config.revision_id;
        let text = svc
            .add_permission(
                "f",
                Some("1"),
                AddPermission {
                    revision_id: Some(v1_rev),
                    ..input("v", "*")
                },
            )
            .unwrap();
        assert_eq!(json(&text)["Resource"], format!("{ARN}:1"));
        let text = svc.add_permission("f:live", None, input("v", "*")).unwrap();
        assert_eq!(json(&text)["Resource"], format!("{ARN}:live"));
        // The same statement id in each: they are separate policies.
        svc.add_permission("f", None, input("v", "*")).unwrap();
        for q in [None, Some("1"), Some("live")] {
            let doc = json(&svc.get_policy("f", q).unwrap().policy);
            assert_eq!(doc["Statement"].as_array().unwrap().len(), 1, "{q:?}");
        }
        svc.remove_permission("f", Some("1"), "v", None).unwrap();
        assert!(svc.get_policy("f", Some("1")).is_err());
        assert!(svc.get_policy("f", None).is_ok());
        assert!(svc.resource_policy("f", Some("live")).unwrap().is_some());
        assert_eq!(svc.resource_policy("f", Some("1")).unwrap(), None);
    }

    #[test]
    fn deleting_a_version_or_alias_deletes_its_policy() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path());
        create_active(&svc, "f");
        svc.publish_version("f", PublishVersion::default()).unwrap();
        svc.create_alias(
            "f",
            CreateAlias {
                name: "live".into(),
                function_version: "$LATEST".into(),
                ..CreateAlias::default()
            },
        )
        .unwrap();
        for q in [None, Some("1"), Some("live")] {
            svc.add_permission("f", q, input("s", "*")).unwrap();
        }
        svc.delete("f", Some("1")).unwrap();
        svc.delete_alias("f", "live").unwrap();
        // An alias made again under the same name starts without the old one's policy.
        svc.create_alias(
            "f",
            CreateAlias {
                name: "live".into(),
                function_version: "$LATEST".into(),
                ..CreateAlias::default()
            },
        )
        .unwrap();
        assert_eq!(svc.resource_policy("f", Some("live")).unwrap(), None);
        let (rec, _) = svc.load("f").unwrap().unwrap();
        assert_eq!(rec.policies.keys().collect::<Vec<_>>(), [FUNCTION_KEY]);
        // The function's goes with the function.
        svc.delete("f", None).unwrap();
        create_active(&svc, "f");
        assert_eq!(svc.resource_policy("f", None).unwrap(), None);
    }

    #[test]
    fn records_written_before_policies_existed_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path());
        create_active(&svc, "f");
        let (rec, _) = svc.load("f").unwrap().unwrap();
        let mut old = serde_json::to_value(&rec).unwrap();
        // A record with no policies is written without the member, as older builds wrote it.
        assert!(old.get("policies").is_none());
        old.as_object_mut().unwrap().remove("policies");
        let back: FunctionRecord = serde_json::from_value(old).unwrap();
        assert!(back.policies.is_empty());
        // And one with policies keeps them.
        svc.add_permission("f", None, input("s", "*")).unwrap();
        let (rec, _) = svc.load("f").unwrap().unwrap();
        let bytes = encode(&rec).unwrap();
        let back: FunctionRecord = crate::records::decode(&bytes).unwrap();
        assert_eq!(back.policies, rec.policies);
    }
}
