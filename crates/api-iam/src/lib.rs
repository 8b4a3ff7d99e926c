//! IAM's wire: `iam/2010-05-08`, the query protocol (`Action=CreateUser&UserName=x`), XML
//! answers in `https://iam.amazonaws.com/doc/2010-05-08/`.
//!
//! [`IamApi`] reads the parameters (`params.rs`), calls [`stratus_iam::IamService`] on the
//! blocking pool, and writes the result shapes (`encode.rs`); an [`stratus_iam::IamError`]
//! becomes the query protocol's `ErrorResponse` with the status botocore's model gives its
//! code. Operations on a user's, group's or role's policies share one implementation per
//! verb, the entity kind taken from the operation's name ([`KINDED`]).
//!
//! Invariant: wire only. What an entity is, who may be deleted and what a document may say
//! belong to `stratus-iam`.

mod encode;
mod params;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use stratus_iam::{CreatePolicy, CreateRole, EntityKind, IamService, KeyStatus, PolicyScope};
use stratus_protocol::query::Params;
use stratus_protocol::xml::Writer;
use stratus_protocol::{
    AwsError, AwsRequest, BodyPolicy, BoxFuture, Caller, Protocol, Service, ServiceInfo,
};

use crate::encode::{
    access_key, date, document, group, list, policy, role, truncation, user, version,
};
use crate::params::{Failure, boolean, int, listing, members, required, validation};

const XMLNS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

/// Policy documents are at most a few KiB (10 KiB of a role's inline policies), sent
/// form-encoded: a request is never near this.
const MAX_BODY: usize = 256 * 1024;

/// IAM, as the front door sees it.
#[derive(Clone, Debug)]
pub struct IamApi {
    iam: IamService,
}

impl IamApi {
    pub fn new(iam: IamService) -> IamApi {
        IamApi { iam }
    }
}

impl Service for IamApi {
    fn info(&self) -> ServiceInfo {
        ServiceInfo {
            signing_name: "iam",
            protocol: Protocol::Query,
            targets: &[],
            body: BodyPolicy::Buffered { limit: MAX_BODY },
        }
    }

    fn handle(&self, req: AwsRequest) -> BoxFuture<Response> {
        let iam = self.iam.clone();
        Box::pin(async move {
            let params =
                Params::from_request(req.parts.uri.query().unwrap_or(""), &req.body.bytes());
            let caller = req.caller.clone();
            let request_id = req.request_id.clone();
            let action = format!("iam:{}", params.action().unwrap_or(""));
            if let Err(denied) = req.authorize(&action, &resource_of(&params, &caller)) {
                return AwsError::denied(Protocol::Query, denied)
                    .render(Protocol::Query, &request_id);
            }
            let rid = request_id.clone();
            let result =
                tokio::task::spawn_blocking(move || dispatch(&iam, &caller, &params, &rid)).await;
            match result {
                Ok(Ok(xml)) => {
                    (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml")], xml).into_response()
                }
                Ok(Err(e)) => e.into_aws().render(Protocol::Query, &request_id),
                Err(e) => AwsError::internal(e).render(Protocol::Query, &request_id),
            }
        })
    }

    fn reset(&self) -> BoxFuture<Result<(), String>> {
        let iam = self.iam.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || iam.delete_all())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        })
    }
}

/// The resource an IAM operation acts on, as its policies name it: the user, role or group
/// it names (without the entity's path: `user/*` style patterns match either way), else the
/// policy, else `*`. Operations on "my own keys" (no `UserName`) act on the calling user.
fn resource_of(params: &Params, caller: &stratus_protocol::Caller) -> String {
    let account = &caller.account_id;
    let arn = |kind: &str, name: &str| format!("arn:aws:iam::{account}:{kind}/{name}");
    if let Some(user) = params.get("UserName") {
        return arn("user", user);
    }
    if let Some(role) = params.get("RoleName") {
        return arn("role", role);
    }
    if let Some(group) = params.get("GroupName") {
        return arn("group", group);
    }
    if let Some(policy) = params.get("PolicyArn") {
        return policy.to_owned();
    }
    if let Some(policy) = params.get("PolicyName") {
        return arn("policy", policy);
    }
    if caller.arn.contains(":user/") {
        return caller.arn.clone();
    }
    "*".to_owned()
}

/// What an operation on a user's, group's or role's policies does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Attach,
    Detach,
    ListAttached,
    Put,
    Get,
    List,
    Delete,
}

/// The operations on an entity's policies, by name.
const KINDED: &[(&str, Verb, EntityKind)] = &[
    ("AttachUserPolicy", Verb::Attach, EntityKind::User),
    ("AttachGroupPolicy", Verb::Attach, EntityKind::Group),
    ("AttachRolePolicy", Verb::Attach, EntityKind::Role),
    ("DetachUserPolicy", Verb::Detach, EntityKind::User),
    ("DetachGroupPolicy", Verb::Detach, EntityKind::Group),
    ("DetachRolePolicy", Verb::Detach, EntityKind::Role),
    (
        "ListAttachedUserPolicies",
        Verb::ListAttached,
        EntityKind::User,
    ),
    (
        "ListAttachedGroupPolicies",
        Verb::ListAttached,
        EntityKind::Group,
    ),
    (
        "ListAttachedRolePolicies",
        Verb::ListAttached,
        EntityKind::Role,
    ),
    ("PutUserPolicy", Verb::Put, EntityKind::User),
    ("PutGroupPolicy", Verb::Put, EntityKind::Group),
    ("PutRolePolicy", Verb::Put, EntityKind::Role),
    ("GetUserPolicy", Verb::Get, EntityKind::User),
    ("GetGroupPolicy", Verb::Get, EntityKind::Group),
    ("GetRolePolicy", Verb::Get, EntityKind::Role),
    ("ListUserPolicies", Verb::List, EntityKind::User),
    ("ListGroupPolicies", Verb::List, EntityKind::Group),
    ("ListRolePolicies", Verb::List, EntityKind::Role),
    ("DeleteUserPolicy", Verb::Delete, EntityKind::User),
    ("DeleteGroupPolicy", Verb::Delete, EntityKind::Group),
    ("DeleteRolePolicy", Verb::Delete, EntityKind::Role),
];

/// The parameter naming an entity of `kind`.
fn name_param(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::User => "UserName",
        EntityKind::Group => "GroupName",
        EntityKind::Role => "RoleName",
    }
}

/// The user a request without `UserName` is about: the caller, if the caller is a user
/// (as AWS infers it from the signing key).
fn user_or_caller<'a>(p: &'a Params, caller: &'a Caller) -> Result<&'a str, Failure> {
    if let Some(u) = p.get("UserName") {
        return Ok(u);
    }
    caller
        .arn
        .split_once(":user/")
        .and_then(|(_, rest)| rest.rsplit('/').next())
        .ok_or_else(|| {
            validation("Must specify userName when calling with non-User credentials".into())
        })
}

/// One operation: read, call, write. Returns the whole response document.
fn dispatch(
    iam: &IamService,
    caller: &Caller,
    p: &Params,
    request_id: &str,
) -> Result<String, Failure> {
    let action = match p.action() {
        Some(a) => a.to_owned(),
        None => {
            return Err(
                AwsError::new(StatusCode::BAD_REQUEST, "MissingAction", "Missing Action").into(),
            );
        }
    };
    let mut w = Writer::new();
    w.open_ns(&format!("{action}Response"), XMLNS);
    // The result element, opened by the arms that have one (each closes what it opens
    // inside it).
    let result = format!("{action}Result");
    let mut has_result = false;
    match action.as_str() {
        // ---- users ----
        "CreateUser" => {
            let u = iam.create_user(
                required(p, "UserName")?,
                p.get("Path"),
                params::tags(p, "Tags")?,
            )?;
            open_result(&mut w, &result, &mut has_result);
            w.open("User");
            user(&mut w, &u);
            w.close();
        }
        "GetUser" => {
            open_result(&mut w, &result, &mut has_result);
            w.open("User");
            match user_or_caller(p, caller) {
                Ok(name) => user(&mut w, &iam.get_user(name)?),
                // The root: AWS describes it by its account and ARN only.
                Err(_) => {
                    w.leaf("UserId", &caller.account_id)
                        .leaf("Arn", &caller.arn)
                        .leaf("CreateDate", &date(0));
                }
            }
            w.close();
        }
        "ListUsers" => {
            let page = iam.list_users(listing(p)?)?;
            open_result(&mut w, &result, &mut has_result);
            list(&mut w, "Users", &page.items, user);
            truncation(&mut w, &page);
        }
        "DeleteUser" => iam.delete_user(required(p, "UserName")?)?,
        "TagUser" => iam.tag_user(required(p, "UserName")?, params::tags(p, "Tags")?)?,
        "UntagUser" => iam.untag_user(required(p, "UserName")?, &members(p, "TagKeys"))?,
        "ListUserTags" => {
            let page = iam.list_user_tags(required(p, "UserName")?, listing(p)?)?;
            open_result(&mut w, &result, &mut has_result);
            encode::tags(&mut w, &page.items);
            truncation(&mut w, &page);
        }

        // ---- access keys ----
        "CreateAccessKey" => {
            let k = iam.create_access_key(user_or_caller(p, caller)?)?;
            open_result(&mut w, &result, &mut has_result);
            w.open("AccessKey");
            access_key(&mut w, &k, true);
            w.close();
        }
        "ListAccessKeys" => {
            let name = user_or_caller(p, caller)?;
            let page = iam.list_access_keys(name, listing(p)?)?;
            open_result(&mut w, &result, &mut has_result);
            list(&mut w, "AccessKeyMetadata", &page.items, |w, k| {
                access_key(w, k, false)
            });
            truncation(&mut w, &page);
        }
        "UpdateAccessKey" => {
            let status = KeyStatus::parse(required(p, "Status")?)?;
            iam.update_access_key(
                user_or_caller(p, caller)?,
                required(p, "AccessKeyId")?,
                status,
            )?;
        }
        "DeleteAccessKey" => {
            iam.delete_access_key(user_or_caller(p, caller)?, required(p, "AccessKeyId")?)?
        }

        // ---- groups ----
        "CreateGroup" => {
            let g = iam.create_group(required(p, "GroupName")?, p.get("Path"))?;
            open_result(&mut w, &result, &mut has_result);
            w.open("Group");
            group(&mut w, &g);
            w.close();
        }
        "GetGroup" => {
            let (g, users) = iam.get_group(required(p, "GroupName")?, listing(p)?)?;
            open_result(&mut w, &result, &mut has_result);
            w.open("Group");
            group(&mut w, &g);
            w.close();
            list(&mut w, "Users", &users.items, user);
            truncation(&mut w, &users);
        }
        "ListGroups" => {
            let page = iam.list_groups(listing(p)?)?;
            open_result(&mut w, &result, &mut has_result);
            list(&mut w, "Groups", &page.items, group);
            truncation(&mut w, &page);
        }
        "DeleteGroup" => iam.delete_group(required(p, "GroupName")?)?,
        "AddUserToGroup" => {
            iam.add_user_to_group(required(p, "GroupName")?, required(p, "UserName")?)?
        }
        "RemoveUserFromGroup" => {
            iam.remove_user_from_group(required(p, "GroupName")?, required(p, "UserName")?)?
        }
        "ListGroupsForUser" => {
            let page = iam.list_groups_for_user(required(p, "UserName")?, listing(p)?)?;
            open_result(&mut w, &result, &mut has_result);
            list(&mut w, "Groups", &page.items, group);
            truncation(&mut w, &page);
        }

        // ---- roles ----
        "CreateRole" => {
            let r = iam.create_role(CreateRole {
                name: required(p, "RoleName")?.into(),
                path: p.get("Path").map(Into::into),
                trust_policy: required(p, "AssumeRolePolicyDocument")?.into(),
                description: p.get("Description").map(Into::into),
                max_session_secs: int(p, "MaxSessionDuration")?,
                tags: params::tags(p, "Tags")?,
            })?;
            open_result(&mut w, &result, &mut has_result);
            w.open("Role");
            role(&mut w, &r);
            w.close();
        }
        "GetRole" => {
            let r = iam.get_role(required(p, "RoleName")?)?;
            open_result(&mut w, &result, &mut has_result);
            w.open("Role");
            role(&mut w, &r);
            w.open("RoleLastUsed").close();
            w.close();
        }
        "ListRoles" => {
            let page = iam.list_roles(listing(p)?)?;
            open_result(&mut w, &result, &mut has_result);
            list(&mut w, "Roles", &page.items, role);
            truncation(&mut w, &page);
        }
        "UpdateAssumeRolePolicy" => {
            iam.update_assume_role_policy(required(p, "RoleName")?, required(p, "PolicyDocument")?)?
        }
        "UpdateRole" => {
            iam.update_role(
                required(p, "RoleName")?,
                p.get("Description").map(Into::into),
                int(p, "MaxSessionDuration")?,
            )?;
            open_result(&mut w, &result, &mut has_result);
        }
        "DeleteRole" => iam.delete_role(required(p, "RoleName")?)?,
        "TagRole" => iam.tag_role(required(p, "RoleName")?, params::tags(p, "Tags")?)?,
        "UntagRole" => iam.untag_role(required(p, "RoleName")?, &members(p, "TagKeys"))?,
        "ListRoleTags" => {
            let page = iam.list_role_tags(required(p, "RoleName")?, listing(p)?)?;
            open_result(&mut w, &result, &mut has_result);
            encode::tags(&mut w, &page.items);
            truncation(&mut w, &page);
        }

        // ---- managed policies ----
        "CreatePolicy" => {
            let pol = iam.create_policy(CreatePolicy {
                name: required(p, "PolicyName")?.into(),
                path: p.get("Path").map(Into::into),
                document: required(p, "PolicyDocument")?.into(),
                description: p.get("Description").map(Into::into),
                tags: params::tags(p, "Tags")?,
            })?;
            open_result(&mut w, &result, &mut has_result);
            w.open("Policy");
            policy(&mut w, &pol);
            w.close();
        }
        "GetPolicy" => {
            let pol = iam.get_policy(required(p, "PolicyArn")?)?;
            open_result(&mut w, &result, &mut has_result);
            w.open("Policy");
            policy(&mut w, &pol);
            w.close();
        }
        "GetPolicyVersion" => {
            let (v, is_default) =
                iam.get_policy_version(required(p, "PolicyArn")?, required(p, "VersionId")?)?;
            open_result(&mut w, &result, &mut has_result);
            w.open("PolicyVersion");
            version(&mut w, &v, is_default, true);
            w.close();
        }
        "CreatePolicyVersion" => {
            let (v, is_default) = iam.create_policy_version(
                required(p, "PolicyArn")?,
                required(p, "PolicyDocument")?,
                boolean(p, "SetAsDefault")?,
            )?;
            open_result(&mut w, &result, &mut has_result);
            w.open("PolicyVersion");
            version(&mut w, &v, is_default, false);
            w.close();
        }
        "ListPolicyVersions" => {
            let page = iam.list_policy_versions(required(p, "PolicyArn")?, listing(p)?)?;
            open_result(&mut w, &result, &mut has_result);
            list(&mut w, "Versions", &page.items, |w, (v, d)| {
                version(w, v, *d, false)
            });
            truncation(&mut w, &page);
        }
        "DeletePolicyVersion" => {
            iam.delete_policy_version(required(p, "PolicyArn")?, required(p, "VersionId")?)?
        }
        "SetDefaultPolicyVersion" => {
            iam.set_default_policy_version(required(p, "PolicyArn")?, required(p, "VersionId")?)?
        }
        "ListPolicies" => {
            let scope = match p.get("Scope") {
                None | Some("All") => PolicyScope::All,
                Some("AWS") => PolicyScope::Aws,
                Some("Local") => PolicyScope::Local,
                Some(other) => {
                    return Err(validation(format!(
                        "1 validation error detected: Value '{other}' at 'scope' failed to satisfy constraint: Member must satisfy enum value set: [All, AWS, Local]"
                    )));
                }
            };
            let page = iam.list_policies(scope, boolean(p, "OnlyAttached")?, listing(p)?)?;
            open_result(&mut w, &result, &mut has_result);
            list(&mut w, "Policies", &page.items, policy);
            truncation(&mut w, &page);
        }
        "DeletePolicy" => iam.delete_policy(required(p, "PolicyArn")?)?,

        // ---- a user's, group's or role's policies ----
        other => match KINDED.iter().find(|(name, _, _)| *name == other) {
            Some(&(_, verb, kind)) => {
                let entity = required(p, name_param(kind))?;
                match verb {
                    Verb::Attach => iam.attach_policy(kind, entity, required(p, "PolicyArn")?)?,
                    Verb::Detach => iam.detach_policy(kind, entity, required(p, "PolicyArn")?)?,
                    Verb::ListAttached => {
                        let page = iam.list_attached_policies(kind, entity, listing(p)?)?;
                        open_result(&mut w, &result, &mut has_result);
                        list(&mut w, "AttachedPolicies", &page.items, |w, (name, arn)| {
                            w.leaf("PolicyName", name).leaf("PolicyArn", arn);
                        });
                        truncation(&mut w, &page);
                    }
                    Verb::Put => iam.put_inline_policy(
                        kind,
                        entity,
                        required(p, "PolicyName")?,
                        required(p, "PolicyDocument")?,
                    )?,
                    Verb::Get => {
                        let name = required(p, "PolicyName")?;
                        let doc = iam.get_inline_policy(kind, entity, name)?;
                        open_result(&mut w, &result, &mut has_result);
                        w.leaf(name_param(kind), entity)
                            .leaf("PolicyName", name)
                            .leaf("PolicyDocument", &document(&doc));
                    }
                    Verb::List => {
                        let page = iam.list_inline_policies(kind, entity, listing(p)?)?;
                        open_result(&mut w, &result, &mut has_result);
                        w.open("PolicyNames");
                        for n in &page.items {
                            w.leaf("member", n);
                        }
                        w.close();
                        truncation(&mut w, &page);
                    }
                    Verb::Delete => {
                        iam.delete_inline_policy(kind, entity, required(p, "PolicyName")?)?
                    }
                }
            }
            None => {
                return Err(AwsError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidAction",
                    format!("Could not find operation {other} for version 2010-05-08"),
                )
                .into());
            }
        },
    }
    if has_result {
        w.close();
    }
    w.open("ResponseMetadata").leaf("RequestId", request_id);
    Ok(w.finish())
}

fn open_result(w: &mut Writer, result: &str, has_result: &mut bool) {
    w.open(result);
    *has_result = true;
}

#[cfg(test)]
mod tests;
