//! IAM's entities as they are stored and returned: users, groups, roles, managed policies,
//! access keys and STS sessions; the ids and secrets AWS's shapes use; name and path rules.
//!
//! Invariant: an entity's document holds both sides of what it takes part in that a delete
//! must check (a user lists its groups and keys, a group its members, a policy the entities
//! it is attached to), and every write that changes one side changes the other in the same
//! commit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::IamError;

/// A tag on a user or a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// Which kind of entity a policy is attached to or embedded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntityKind {
    User,
    Group,
    Role,
}

impl EntityKind {
    /// As AWS's messages name it: `user`, `group`, `role`.
    pub fn noun(self) -> &'static str {
        match self {
            EntityKind::User => "user",
            EntityKind::Group => "group",
            EntityKind::Role => "role",
        }
    }
}

/// An IAM user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    /// `AIDA` + 17 characters.
    pub id: String,
    pub path: String,
    pub arn: String,
    pub create_ms: i64,
    pub tags: Vec<Tag>,
    /// Inline policies: name → document text.
    pub inline: BTreeMap<String, String>,
    /// Attached managed policies' ARNs, in attachment order.
    pub attached: Vec<String>,
    /// The groups the user belongs to, by name.
    pub groups: Vec<String>,
    /// The user's access key ids.
    pub keys: Vec<String>,
}

/// An IAM group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    /// `AGPA` + 17 characters.
    pub id: String,
    pub path: String,
    pub arn: String,
    pub create_ms: i64,
    pub inline: BTreeMap<String, String>,
    pub attached: Vec<String>,
    /// Members, by user name.
    pub members: Vec<String>,
}

/// An IAM role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    /// `AROA` + 17 characters.
    pub id: String,
    pub path: String,
    pub arn: String,
    pub create_ms: i64,
    /// The trust policy (`AssumeRolePolicyDocument`), as it was written.
    pub trust_policy: String,
    pub description: Option<String>,
    /// The longest session `AssumeRole` grants, in seconds (3600 unless set, at most 43200).
    pub max_session_secs: i64,
    pub tags: Vec<Tag>,
    pub inline: BTreeMap<String, String>,
    pub attached: Vec<String>,
}

/// One version of a managed policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// `v1`, `v2`, ...: never reused within a policy.
    pub id: String,
    pub document: String,
    pub create_ms: i64,
}

/// Where a managed policy is attached.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Attachment {
    pub kind: EntityKind,
    pub name: String,
}

/// A managed policy: the account's own (`arn:aws:iam::<account>:policy/...`) or one of
/// AWS's (`arn:aws:iam::aws:policy/...`, whose record holds only where the account attached
/// it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedPolicy {
    pub name: String,
    /// `ANPA` + 17 characters.
    pub id: String,
    pub path: String,
    pub arn: String,
    pub description: Option<String>,
    pub create_ms: i64,
    pub update_ms: i64,
    pub default_version: String,
    /// At most five, oldest first.
    pub versions: Vec<PolicyVersion>,
    /// The number the next version gets.
    pub next_version: u32,
    pub attachments: Vec<Attachment>,
    pub tags: Vec<Tag>,
    pub aws_managed: bool,
}

impl ManagedPolicy {
    /// The default version (every policy has one).
    pub fn default_document(&self) -> Option<&PolicyVersion> {
        self.versions.iter().find(|v| v.id == self.default_version)
    }
}

/// An access key's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyStatus {
    Active,
    Inactive,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "Active",
            KeyStatus::Inactive => "Inactive",
        }
    }

    pub fn parse(s: &str) -> Result<KeyStatus, IamError> {
        match s {
            "Active" => Ok(KeyStatus::Active),
            "Inactive" => Ok(KeyStatus::Inactive),
            other => Err(IamError::Validation(format!(
                "1 validation error detected: Value '{other}' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]"
            ))),
        }
    }
}

/// A user's long-term access key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    /// `AKIA` + 16 characters.
    pub id: String,
    /// 40 characters; returned once, by `CreateAccessKey`.
    pub secret: String,
    pub user: String,
    pub status: KeyStatus,
    pub create_ms: i64,
}

/// Temporary credentials (`AssumeRole`, `GetSessionToken`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// `ASIA` + 16 characters.
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expires_ms: i64,
}

/// A live (or expired, not yet purged) STS session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub credentials: Credentials,
    /// Who requests signed with it act as: `arn:aws:sts::<account>:assumed-role/<role>/<session>`
    /// for a role's session, the user's (or root's) ARN for `GetSessionToken`'s.
    pub principal_arn: String,
    /// `AROA…:<session>` for a role's session; the user's id (or the account id) otherwise.
    pub principal_id: String,
    /// The role's name and ARN, for a role's session.
    pub role: Option<(String, String)>,
    /// The user, for `GetSessionToken`'s sessions of a user.
    pub user: Option<String>,
    pub session_name: Option<String>,
    pub create_ms: i64,
}

/// What `AssumeRole` hands back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumedRole {
    pub credentials: Credentials,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub arn: String,
    /// `AROA…:<session>`.
    pub assumed_role_id: String,
}

/// What the front door needs of an access key: its secret, whose it is, and whether it may
/// still be used. Covers users' keys and STS sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub secret: String,
    /// The principal requests signed with the key act as (see [`Session::principal_arn`]).
    pub principal_arn: String,
    /// The user the key (or the `GetSessionToken` session) belongs to.
    pub user_name: Option<String>,
    /// `false` for a key made `Inactive` (AWS answers `InvalidClientTokenId`).
    pub active: bool,
    /// A session's token: a request must carry it in `X-Amz-Security-Token`.
    pub session_token: Option<String>,
    /// A session's expiry, epoch milliseconds (AWS answers `ExpiredToken` after it).
    pub expires_at: Option<i64>,
}

impl KeyInfo {
    /// Whether a session's credentials have expired at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_at.is_some_and(|t| t <= now_ms)
    }
}

// ---- ids and secrets ------------------------------------------------------------------------

const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const TOKEN: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn random(alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| alphabet[rand::random_range(0..alphabet.len())] as char)
        .collect()
}

/// A unique id as IAM makes them: a four-letter prefix naming the kind (`AIDA` users, `AROA`
/// roles, `AGPA` groups, `ANPA` policies) and 17 base-32 characters.
pub(crate) fn unique_id(prefix: &str) -> String {
    format!("{prefix}{}", random(BASE32, 17))
}

/// An access key id: `AKIA` (long-term) or `ASIA` (temporary) and 16 base-32 characters.
pub(crate) fn access_key_id(prefix: &str) -> String {
    format!("{prefix}{}", random(BASE32, 16))
}

/// A 40-character secret access key.
pub(crate) fn secret() -> String {
    random(SECRET, 40)
}

/// A session token: opaque, long, URL- and header-safe.
pub(crate) fn session_token() -> String {
    random(TOKEN, 128)
}

// ---- names and paths ------------------------------------------------------------------------

fn invalid(value: &str, member: &str, constraint: &str) -> IamError {
    IamError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    ))
}

/// A user, group, role or policy name: `[\w+=,.@-]+`, 1 to `max` characters.
pub(crate) fn check_name(value: &str, member: &str, max: usize) -> Result<(), IamError> {
    let len = value.chars().count();
    if len < 1 || len > max {
        return Err(invalid(
            value,
            member,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    if !value.chars().all(name_char) {
        return Err(invalid(
            value,
            member,
            r"Member must satisfy regular expression pattern: [\w+=,.@-]+",
        ));
    }
    Ok(())
}

/// `\w` and `+=,.@-`, as IAM's name patterns spell it.
pub(crate) fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// A path: `/`, or `/` + printable ASCII + `/`, at most 512 characters. `None` is `/`.
pub(crate) fn check_path(value: Option<&str>) -> Result<String, IamError> {
    let path = value.unwrap_or("/");
    let ok = path.len() <= 512
        && (path == "/"
            || (path.len() >= 2
                && path.starts_with('/')
                && path.ends_with('/')
                && path.chars().all(|c| ('!'..='~').contains(&c))));
    if !ok {
        return Err(invalid(
            path,
            "path",
            r"Member must satisfy regular expression pattern: (\u002F)|(\u002F[\u0021-\u007E]+\u002F)",
        ));
    }
    Ok(path.to_owned())
}

/// Tags as AWS accepts them: at most 50, keys 1–128 characters, values at most 256, keys
/// unique.
pub(crate) fn check_tags(tags: &[Tag]) -> Result<(), IamError> {
    if tags.len() > 50 {
        return Err(IamError::LimitExceeded(
            "The number of tags has reached the maximum limit.".into(),
        ));
    }
    for (i, t) in tags.iter().enumerate() {
        if t.key.is_empty() || t.key.chars().count() > 128 {
            return Err(invalid(
                &t.key,
                "tags.member.key",
                "Member must have length between 1 and 128",
            ));
        }
        if t.value.chars().count() > 256 {
            return Err(invalid(
                &t.value,
                "tags.member.value",
                "Member must have length less than or equal to 256",
            ));
        }
        if tags[..i].iter().any(|o| o.key == t.key) {
            return Err(IamError::InvalidInput(
                "Duplicate tag keys found. Please note that Tag keys are case insensitive.".into(),
            ));
        }
    }
    Ok(())
}

/// `existing` with `new` merged in (a key given again takes the new value).
pub(crate) fn merge_tags(existing: &mut Vec<Tag>, new: Vec<Tag>) {
    for t in new {
        match existing.iter_mut().find(|e| e.key == t.key) {
            Some(e) => e.value = t.value,
            None => existing.push(t),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_aws_shapes() {
        let id = unique_id("AIDA");
        assert_eq!(id.len(), 21);
        assert!(id.starts_with("AIDA"));
        assert!(id[4..].bytes().all(|b| BASE32.contains(&b)));
        assert_eq!(access_key_id("AKIA").len(), 20);
        assert_eq!(secret().len(), 40);
        assert_ne!(secret(), secret());
    }

    #[test]
    fn names_and_paths() {
        assert!(check_name("a.b+c=d,e@f-g_h", "userName", 64).is_ok());
        assert!(check_name("", "userName", 64).is_err());
        assert!(check_name(&"a".repeat(65), "userName", 64).is_err());
        assert!(check_name("a b", "userName", 64).is_err());
        assert!(check_name("a/b", "userName", 64).is_err());
        assert_eq!(check_path(None).unwrap(), "/");
        assert_eq!(check_path(Some("/a/b/")).unwrap(), "/a/b/");
        for bad in ["", "a/", "/a", "/a b/"] {
            assert!(check_path(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_are_checked_and_merged() {
        let t = |k: &str, v: &str| Tag {
            key: k.into(),
            value: v.into(),
        };
        assert!(check_tags(&[t("a", "1"), t("a", "2")]).is_err());
        assert!(check_tags(&[t("", "1")]).is_err());
        let mut tags = vec![t("a", "1")];
        merge_tags(&mut tags, vec![t("a", "2"), t("b", "3")]);
        assert_eq!(tags, vec![t("a", "2"), t("b", "3")]);
    }
}
