//! [`IamService`]: IAM's entities and their policies over the store, and what the front door
//! asks of them per request (the policies of a principal, cached).
//!
//! Tables (in the `iam` namespace): `users`, `groups`, `roles` by name; `policies` by ARN
//! (the account's own, and AWS's managed ones the account has attached: their record holds
//! the attachments); `keys` by access key id; `sessions` (see `sts.rs`).
//!
//! Invariants: every write happens under one write lock and commits every document it
//! changes atomically, each with the version it read as precondition; both sides of a
//! relation (membership, attachment, a user's keys) change in the same commit. Every commit
//! that can change what a principal's policies are clears the per-principal cache, after the
//! commit, and a reader that computed an entry across such a commit does not keep it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;
use stratus_aws::{Page, Scope};
use stratus_store::{Expect, Op, Store};

use crate::error::IamError;
use crate::eval::{self, Principal};
use crate::managed;
use crate::model::*;
use crate::policy::PolicyDocument;

pub(crate) const USERS: &str = "users";
pub(crate) const GROUPS: &str = "groups";
pub(crate) const ROLES: &str = "roles";
pub(crate) const POLICIES: &str = "policies";
pub(crate) const KEYS: &str = "keys";
pub(crate) const SESSIONS: &str = "sessions";

/// Access keys a user may have (AWS's quota).
const KEYS_PER_USER: usize = 2;
/// Versions a managed policy keeps.
const VERSIONS_PER_POLICY: usize = 5;
/// Managed policies attached to one user, group or role (AWS's default quota).
const ATTACHED_PER_ENTITY: usize = 10;
/// Characters (whitespace not counted) of a managed policy's document.
const MANAGED_POLICY_SIZE: usize = 6144;
/// Characters of a role's trust policy.
const TRUST_POLICY_SIZE: usize = 2048;

/// The clock sessions are made and judged by (epoch milliseconds).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// IAM (and STS, see `sts.rs`) over one store namespace. Cheap to clone.
#[derive(Clone)]
pub struct IamService {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) scope: Scope,
    write: Mutex<()>,
    cache: Mutex<PolicyCache>,
    pub(crate) now: Clock,
    /// When sessions were last swept for expired ones.
    pub(crate) last_sweep_ms: AtomicI64,
}

#[derive(Default)]
struct PolicyCache {
    /// Bumped by every invalidation: an entry computed under an older one is stale.
    generation: u64,
    by_principal: HashMap<String, Arc<Vec<PolicyDocument>>>,
}

impl std::fmt::Debug for IamService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamService")
            .field("scope", &self.inner.scope)
            .finish_non_exhaustive()
    }
}

/// `CreateRole`'s input.
#[derive(Debug, Clone, Default)]
pub struct CreateRole {
    pub name: String,
    pub path: Option<String>,
    pub trust_policy: String,
    pub description: Option<String>,
    pub max_session_secs: Option<i64>,
    pub tags: Vec<Tag>,
}

/// `CreatePolicy`'s input.
#[derive(Debug, Clone, Default)]
pub struct CreatePolicy {
    pub name: String,
    pub path: Option<String>,
    pub document: String,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
}

/// `ListPolicies`' `Scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyScope {
    #[default]
    All,
    /// AWS's managed policies.
    Aws,
    /// The account's own.
    Local,
}

/// Where a listing starts and how long its page is (`Marker`, `MaxItems`: 1 to 1000,
/// 100 if not given), and which paths it keeps (`PathPrefix`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Listing<'a> {
    pub marker: Option<&'a str>,
    pub max_items: Option<i64>,
    pub path_prefix: Option<&'a str>,
}

/// A user, group or role, loaded for a change to its policies.
enum Entity {
    User(User),
    Group(Group),
    Role(Role),
}

impl Entity {
    fn name(&self) -> &str {
        match self {
            Entity::User(u) => &u.name,
            Entity::Group(g) => &g.name,
            Entity::Role(r) => &r.name,
        }
    }

    fn inline(&mut self) -> &mut BTreeMap<String, String> {
        match self {
            Entity::User(u) => &mut u.inline,
            Entity::Group(g) => &mut g.inline,
            Entity::Role(r) => &mut r.inline,
        }
    }

    fn attached(&mut self) -> &mut Vec<String> {
        match self {
            Entity::User(u) => &mut u.attached,
            Entity::Group(g) => &mut g.attached,
            Entity::Role(r) => &mut r.attached,
        }
    }

    fn op(&self, version: u64) -> Result<Op, IamError> {
        let name = self.name().to_owned();
        match self {
            Entity::User(u) => put(USERS, &name, u, Some(version)),
            Entity::Group(g) => put(GROUPS, &name, g, Some(version)),
            Entity::Role(r) => put(ROLES, &name, r, Some(version)),
        }
    }
}

/// A write of `value` at `table/key`: over `version` if it was read, else where nothing is.
pub(crate) fn put<T: Serialize>(
    table: &str,
    key: &str,
    value: &T,
    version: Option<u64>,
) -> Result<Op, IamError> {
    let expect = match version {
        Some(v) => Expect::Version(v),
        None => Expect::Absent,
    };
    Ok(Op::put(table, key, serde_json::to_vec(value)?, expect))
}

/// AWS counts a policy's size without its whitespace.
fn policy_size(text: &str) -> usize {
    text.chars().filter(|c| !c.is_whitespace()).count()
}

fn malformed(e: crate::policy::PolicyError) -> IamError {
    IamError::MalformedPolicyDocument(e.0)
}

fn not_found(kind: EntityKind, name: &str) -> IamError {
    IamError::NoSuchEntity(format!(
        "The {} with name {name} cannot be found.",
        kind.noun()
    ))
}

fn no_policy(arn: &str) -> IamError {
    IamError::NoSuchEntity(format!("Policy {arn} does not exist or is not attachable."))
}

/// One page of `items` (sorted by `key`), after `marker`.
pub(crate) fn page<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> String,
    listing: Listing<'_>,
) -> Result<Page<T>, IamError> {
    let max = listing.max_items.unwrap_or(100);
    if !(1..=1000).contains(&max) {
        return Err(IamError::Validation(format!(
            "1 validation error detected: Value '{max}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000"
        )));
    }
    items.sort_by_key(|a| key(a));
    let start = match listing.marker {
        Some(m) => items.partition_point(|i| key(i).as_str() <= m),
        None => 0,
    };
    let mut rest: Vec<T> = items.into_iter().skip(start).collect();
    let next = if rest.len() > max as usize {
        rest.truncate(max as usize);
        rest.last().map(&key)
    } else {
        None
    };
    Ok(Page { items: rest, next })
}

impl IamService {
    /// IAM over `store` (the binary passes `store.namespace("iam")`) for `scope`'s account.
    pub fn new(store: Store, scope: Scope) -> IamService {
        IamService::with_clock(store, scope, Arc::new(stratus_aws::clock::now_ms))
    }

    /// [`IamService::new`] with another clock (tests move time to expire sessions).
    pub fn with_clock(store: Store, scope: Scope, now: Clock) -> IamService {
        IamService {
            inner: Arc::new(Inner {
                store,
                scope,
                write: Mutex::new(()),
                cache: Mutex::new(PolicyCache::default()),
                now,
                last_sweep_ms: AtomicI64::new(i64::MIN),
            }),
        }
    }

    pub fn scope(&self) -> &Scope {
        &self.inner.scope
    }

    pub(crate) fn now(&self) -> i64 {
        (self.inner.now)()
    }

    fn account(&self) -> &str {
        &self.inner.scope.account_id
    }

    /// `arn:aws:iam::<account>:<kind>/<path><name>`.
    fn arn(&self, kind: &str, path: &str, name: &str) -> String {
        format!("arn:aws:iam::{}:{kind}{path}{name}", self.account())
    }

    pub(crate) fn write_guard(&self) -> MutexGuard<'_, ()> {
        // A panic while holding the lock left no partial commit behind (commits are
        // atomic), so the lock stays usable.
        self.inner.write.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn load<T: DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
    ) -> Result<Option<(T, u64)>, IamError> {
        match self.inner.store.meta.get(table, key)? {
            Some(doc) => Ok(Some((serde_json::from_slice(&doc.value)?, doc.version))),
            None => Ok(None),
        }
    }

    fn load_all<T: DeserializeOwned>(&self, table: &str) -> Result<Vec<T>, IamError> {
        self.inner
            .store
            .meta
            .list(table, "", None, usize::MAX)?
            .into_iter()
            .map(|(_, doc)| Ok(serde_json::from_slice(&doc.value)?))
            .collect()
    }

    /// Commits `ops` and clears the policy cache: for writes that may change a principal's
    /// policies.
    fn commit(&self, ops: &[Op]) -> Result<(), IamError> {
        self.inner.store.meta.commit(ops)?;
        self.invalidate();
        Ok(())
    }

    /// Commits `ops` that cannot change any principal's policies (keys, sessions).
    pub(crate) fn commit_quiet(&self, ops: &[Op]) -> Result<(), IamError> {
        self.inner.store.meta.commit(ops)?;
        Ok(())
    }

    fn invalidate(&self) {
        let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.generation += 1;
        cache.by_principal.clear();
    }

    fn user_doc(&self, name: &str) -> Result<(User, u64), IamError> {
        self.load(USERS, name)?
            .ok_or_else(|| not_found(EntityKind::User, name))
    }

    fn group_doc(&self, name: &str) -> Result<(Group, u64), IamError> {
        self.load(GROUPS, name)?
            .ok_or_else(|| not_found(EntityKind::Group, name))
    }

    fn role_doc(&self, name: &str) -> Result<(Role, u64), IamError> {
        self.load(ROLES, name)?
            .ok_or_else(|| not_found(EntityKind::Role, name))
    }

    fn entity(&self, kind: EntityKind, name: &str) -> Result<(Entity, u64), IamError> {
        Ok(match kind {
            EntityKind::User => {
                let (u, v) = self.user_doc(name)?;
                (Entity::User(u), v)
            }
            EntityKind::Group => {
                let (g, v) = self.group_doc(name)?;
                (Entity::Group(g), v)
            }
            EntityKind::Role => {
                let (r, v) = self.role_doc(name)?;
                (Entity::Role(r), v)
            }
        })
    }

    /// A managed policy by ARN, with its stored version (`None`: an AWS managed policy the
    /// account has not attached, never stored).
    fn policy_doc(&self, arn: &str) -> Result<(ManagedPolicy, Option<u64>), IamError> {
        if let Some((p, v)) = self.load::<ManagedPolicy>(POLICIES, arn)? {
            return Ok((p, Some(v)));
        }
        managed::lookup(arn)
            .map(|p| (p, None))
            .ok_or_else(|| IamError::NoSuchEntity(format!("Policy {arn} was not found.")))
    }

    // ---- users --------------------------------------------------------------------------

    pub fn create_user(
        &self,
        name: &str,
        path: Option<&str>,
        tags: Vec<Tag>,
    ) -> Result<User, IamError> {
        check_name(name, "userName", 64)?;
        let path = check_path(path)?;
        check_tags(&tags)?;
        let _w = self.write_guard();
        if self.load::<User>(USERS, name)?.is_some() {
            return Err(IamError::EntityAlreadyExists(format!(
                "User with name {name} already exists."
            )));
        }
        let user = User {
            name: name.into(),
            id: unique_id("AIDA"),
            arn: self.arn("user", &path, name),
            path,
            create_ms: self.now(),
            tags,
            inline: BTreeMap::new(),
            attached: Vec::new(),
            groups: Vec::new(),
            keys: Vec::new(),
        };
        self.commit(&[put(USERS, name, &user, None)?])?;
        tracing::info!(user = name, "user created");
        Ok(user)
    }

    pub fn get_user(&self, name: &str) -> Result<User, IamError> {
        Ok(self.user_doc(name)?.0)
    }

    pub fn list_users(&self, listing: Listing<'_>) -> Result<Page<User>, IamError> {
        let users: Vec<User> = self
            .load_all::<User>(USERS)?
            .into_iter()
            .filter(|u| u.path.starts_with(listing.path_prefix.unwrap_or("/")))
            .collect();
        page(users, |u| u.name.clone(), listing)
    }

    /// Refused (`DeleteConflict`) while the user has access keys, policies or groups, as AWS
    /// refuses it.
    pub fn delete_user(&self, name: &str) -> Result<(), IamError> {
        let _w = self.write_guard();
        let (user, version) = self.user_doc(name)?;
        let conflict = if !user.keys.is_empty() {
            Some("must delete access keys first")
        } else if !user.inline.is_empty() {
            Some("must delete policies first")
        } else if !user.attached.is_empty() {
            Some("must detach all policies first")
        } else if !user.groups.is_empty() {
            Some("must remove users from group first")
        } else {
            None
        };
        if let Some(why) = conflict {
            return Err(IamError::DeleteConflict(format!(
                "Cannot delete entity, {why}."
            )));
        }
        self.commit(&[Op::delete(USERS, name, Expect::Version(version))])?;
        tracing::info!(user = name, "user deleted");
        Ok(())
    }

    pub fn tag_user(&self, name: &str, tags: Vec<Tag>) -> Result<(), IamError> {
        check_tags(&tags)?;
        let _w = self.write_guard();
        let (mut user, version) = self.user_doc(name)?;
        merge_tags(&mut user.tags, tags);
        check_tags(&user.tags)?;
        self.commit_quiet(&[put(USERS, name, &user, Some(version))?])
    }

    pub fn untag_user(&self, name: &str, keys: &[String]) -> Result<(), IamError> {
        let _w = self.write_guard();
        let (mut user, version) = self.user_doc(name)?;
        user.tags.retain(|t| !keys.contains(&t.key));
        self.commit_quiet(&[put(USERS, name, &user, Some(version))?])
    }

    pub fn list_user_tags(&self, name: &str, listing: Listing<'_>) -> Result<Page<Tag>, IamError> {
        let user = self.user_doc(name)?.0;
        page(user.tags, |t| t.key.clone(), listing)
    }

    // ---- access keys --------------------------------------------------------------------

    /// A new active key for `user`; at most two per user (`LimitExceeded`).
    pub fn create_access_key(&self, user: &str) -> Result<AccessKey, IamError> {
        let _w = self.write_guard();
        let (mut u, version) = self.user_doc(user)?;
        if u.keys.len() >= KEYS_PER_USER {
            return Err(IamError::LimitExceeded(format!(
                "Cannot exceed quota for AccessKeysPerUser: {KEYS_PER_USER}"
            )));
        }
        let key = AccessKey {
            id: access_key_id("AKIA"),
            secret: secret(),
            user: user.into(),
            status: KeyStatus::Active,
            create_ms: self.now(),
        };
        u.keys.push(key.id.clone());
        self.commit_quiet(&[
            put(USERS, user, &u, Some(version))?,
            put(KEYS, &key.id, &key, None)?,
        ])?;
        tracing::info!(user, access_key_id = %key.id, "access key created");
        Ok(key)
    }

    fn key_of(&self, user: &str, key_id: &str) -> Result<(AccessKey, u64), IamError> {
        match self.load::<AccessKey>(KEYS, key_id)? {
            Some((k, v)) if k.user == user => Ok((k, v)),
            _ => Err(IamError::NoSuchEntity(format!(
                "The Access Key with id {key_id} cannot be found."
            ))),
        }
    }

    /// The user's keys (their secrets included: the wire shows only metadata).
    pub fn list_access_keys(
        &self,
        user: &str,
        listing: Listing<'_>,
    ) -> Result<Page<AccessKey>, IamError> {
        let u = self.user_doc(user)?.0;
        let mut keys = Vec::new();
        for id in &u.keys {
            if let Some((k, _)) = self.load::<AccessKey>(KEYS, id)? {
                keys.push(k);
            }
        }
        page(keys, |k| k.id.clone(), listing)
    }

    pub fn update_access_key(
        &self,
        user: &str,
        key_id: &str,
        status: KeyStatus,
    ) -> Result<(), IamError> {
        let _w = self.write_guard();
        self.user_doc(user)?;
        let (mut key, version) = self.key_of(user, key_id)?;
        key.status = status;
        self.commit_quiet(&[put(KEYS, key_id, &key, Some(version))?])
    }

    pub fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), IamError> {
        let _w = self.write_guard();
        let (mut u, user_version) = self.user_doc(user)?;
        let (_, key_version) = self.key_of(user, key_id)?;
        u.keys.retain(|k| k != key_id);
        self.commit_quiet(&[
            put(USERS, user, &u, Some(user_version))?,
            Op::delete(KEYS, key_id, Expect::Version(key_version)),
        ])?;
        tracing::info!(user, access_key_id = key_id, "access key deleted");
        Ok(())
    }

    // ---- groups -------------------------------------------------------------------------

    pub fn create_group(&self, name: &str, path: Option<&str>) -> Result<Group, IamError> {
        check_name(name, "groupName", 128)?;
        let path = check_path(path)?;
        let _w = self.write_guard();
        if self.load::<Group>(GROUPS, name)?.is_some() {
            return Err(IamError::EntityAlreadyExists(format!(
                "Group with name {name} already exists."
            )));
        }
        let group = Group {
            name: name.into(),
            id: unique_id("AGPA"),
            arn: self.arn("group", &path, name),
            path,
            create_ms: self.now(),
            inline: BTreeMap::new(),
            attached: Vec::new(),
            members: Vec::new(),
        };
        self.commit(&[put(GROUPS, name, &group, None)?])?;
        Ok(group)
    }

    /// The group and one page of its members.
    pub fn get_group(
        &self,
        name: &str,
        listing: Listing<'_>,
    ) -> Result<(Group, Page<User>), IamError> {
        let group = self.group_doc(name)?.0;
        let mut users = Vec::new();
        for member in &group.members {
            if let Some((u, _)) = self.load::<User>(USERS, member)? {
                users.push(u);
            }
        }
        let users = page(users, |u| u.name.clone(), listing)?;
        Ok((group, users))
    }

    pub fn list_groups(&self, listing: Listing<'_>) -> Result<Page<Group>, IamError> {
        let groups: Vec<Group> = self
            .load_all::<Group>(GROUPS)?
            .into_iter()
            .filter(|g| g.path.starts_with(listing.path_prefix.unwrap_or("/")))
            .collect();
        page(groups, |g| g.name.clone(), listing)
    }

    /// Refused (`DeleteConflict`) while the group has members or policies.
    pub fn delete_group(&self, name: &str) -> Result<(), IamError> {
        let _w = self.write_guard();
        let (group, version) = self.group_doc(name)?;
        let conflict = if !group.members.is_empty() {
            Some("must remove users from group first")
        } else if !group.inline.is_empty() {
            Some("must delete policies first")
        } else if !group.attached.is_empty() {
            Some("must detach all policies first")
        } else {
            None
        };
        if let Some(why) = conflict {
            return Err(IamError::DeleteConflict(format!(
                "Cannot delete entity, {why}."
            )));
        }
        self.commit(&[Op::delete(GROUPS, name, Expect::Version(version))])
    }

    /// Adding a member twice is not an error (as on AWS).
    pub fn add_user_to_group(&self, group: &str, user: &str) -> Result<(), IamError> {
        let _w = self.write_guard();
        let (mut g, gv) = self.group_doc(group)?;
        let (mut u, uv) = self.user_doc(user)?;
        if g.members.iter().any(|m| m == user) {
            return Ok(());
        }
        g.members.push(user.into());
        u.groups.push(group.into());
        self.commit(&[
            put(GROUPS, group, &g, Some(gv))?,
            put(USERS, user, &u, Some(uv))?,
        ])
    }

    pub fn remove_user_from_group(&self, group: &str, user: &str) -> Result<(), IamError> {
        let _w = self.write_guard();
        let (mut g, gv) = self.group_doc(group)?;
        let (mut u, uv) = self.user_doc(user)?;
        if !g.members.iter().any(|m| m == user) {
            return Err(IamError::NoSuchEntity(format!(
                "The user with name {user} cannot be found in group {group}."
            )));
        }
        g.members.retain(|m| m != user);
        u.groups.retain(|n| n != group);
        self.commit(&[
            put(GROUPS, group, &g, Some(gv))?,
            put(USERS, user, &u, Some(uv))?,
        ])
    }

    pub fn list_groups_for_user(
        &self,
        user: &str,
        listing: Listing<'_>,
    ) -> Result<Page<Group>, IamError> {
        let u = self.user_doc(user)?.0;
        let mut groups = Vec::new();
        for name in &u.groups {
            if let Some((g, _)) = self.load::<Group>(GROUPS, name)? {
                groups.push(g);
            }
        }
        page(groups, |g| g.name.clone(), listing)
    }

    // ---- roles --------------------------------------------------------------------------

    fn check_trust_policy(text: &str) -> Result<(), IamError> {
        if policy_size(text) > TRUST_POLICY_SIZE {
            return Err(IamError::LimitExceeded(format!(
                "Cannot exceed quota for ACLSizePerRole: {TRUST_POLICY_SIZE}"
            )));
        }
        PolicyDocument::resource(text).map_err(malformed)?;
        Ok(())
    }

    pub fn create_role(&self, input: CreateRole) -> Result<Role, IamError> {
        check_name(&input.name, "roleName", 64)?;
        let path = check_path(input.path.as_deref())?;
        check_tags(&input.tags)?;
        let max_session_secs = input.max_session_secs.unwrap_or(3600);
        if !(3600..=43200).contains(&max_session_secs) {
            return Err(IamError::Validation(format!(
                "1 validation error detected: Value '{max_session_secs}' at 'maxSessionDuration' failed to satisfy constraint: Member must have value greater than or equal to 3600 and less than or equal to 43200"
            )));
        }
        if let Some(d) = &input.description
            && d.chars().count() > 1000
        {
            return Err(IamError::Validation(
                "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 1000".into(),
            ));
        }
        Self::check_trust_policy(&input.trust_policy)?;
        let _w = self.write_guard();
        if self.load::<Role>(ROLES, &input.name)?.is_some() {
            return Err(IamError::EntityAlreadyExists(format!(
                "Role with name {} already exists.",
                input.name
            )));
        }
        let role = Role {
            id: unique_id("AROA"),
            arn: self.arn("role", &path, &input.name),
            name: input.name,
            path,
            create_ms: self.now(),
            trust_policy: input.trust_policy,
            description: input.description,
            max_session_secs,
            tags: input.tags,
            inline: BTreeMap::new(),
            attached: Vec::new(),
        };
        self.commit(&[put(ROLES, &role.name, &role, None)?])?;
        tracing::info!(role = %role.name, "role created");
        Ok(role)
    }

    pub fn get_role(&self, name: &str) -> Result<Role, IamError> {
        Ok(self.role_doc(name)?.0)
    }

    /// A role by name or ARN (`arn:aws:iam::<account>:role/<path><name>`): what Lambda's
    /// `CreateFunction` checks its `Role` against. An ARN must be the role's exactly.
    pub fn role(&self, name_or_arn: &str) -> Result<Role, IamError> {
        if !name_or_arn.starts_with("arn:") {
            return self.get_role(name_or_arn);
        }
        let missing =
            || IamError::NoSuchEntity(format!("The role with name {name_or_arn} cannot be found."));
        let name = name_or_arn
            .split_once(":role/")
            .and_then(|(_, rest)| rest.rsplit('/').next())
            .ok_or_else(missing)?;
        match self.load::<Role>(ROLES, name)? {
            Some((role, _)) if role.arn == name_or_arn => Ok(role),
            _ => Err(missing()),
        }
    }

    /// Whether `role`'s trust policy lets `principal` assume it (`sts:AssumeRole` on the
    /// role's ARN, with `context`'s keys). A trust policy that no longer parses trusts no one.
    pub fn trusts(&self, role: &Role, principal: Principal<'_>, context: &eval::Context) -> bool {
        let policy = match PolicyDocument::resource(&role.trust_policy) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(role = %role.name, error = %e, "a stored trust policy does not parse");
                return false;
            }
        };
        let req = eval::Request {
            action: "sts:AssumeRole",
            resource: &role.arn,
            context,
        };
        eval::resource(&policy, principal, &req) == eval::Decision::Allow
    }

    pub fn list_roles(&self, listing: Listing<'_>) -> Result<Page<Role>, IamError> {
        let roles: Vec<Role> = self
            .load_all::<Role>(ROLES)?
            .into_iter()
            .filter(|r| r.path.starts_with(listing.path_prefix.unwrap_or("/")))
            .collect();
        page(roles, |r| r.name.clone(), listing)
    }

    pub fn update_assume_role_policy(&self, name: &str, document: &str) -> Result<(), IamError> {
        Self::check_trust_policy(document)?;
        let _w = self.write_guard();
        let (mut role, version) = self.role_doc(name)?;
        role.trust_policy = document.into();
        self.commit(&[put(ROLES, name, &role, Some(version))?])
    }

    /// `UpdateRole`: the description and the longest session.
    pub fn update_role(
        &self,
        name: &str,
        description: Option<String>,
        max_session_secs: Option<i64>,
    ) -> Result<(), IamError> {
        let _w = self.write_guard();
        let (mut role, version) = self.role_doc(name)?;
        if let Some(m) = max_session_secs {
            if !(3600..=43200).contains(&m) {
                return Err(IamError::Validation(format!(
                    "1 validation error detected: Value '{m}' at 'maxSessionDuration' failed to satisfy constraint: Member must have value greater than or equal to 3600 and less than or equal to 43200"
                )));
            }
            role.max_session_secs = m;
        }
        if description.is_some() {
            role.description = description;
        }
        self.commit_quiet(&[put(ROLES, name, &role, Some(version))?])
    }

    /// Refused (`DeleteConflict`) while the role has attached or inline policies.
    pub fn delete_role(&self, name: &str) -> Result<(), IamError> {
        let _w = self.write_guard();
        let (role, version) = self.role_doc(name)?;
        if !role.attached.is_empty() {
            return Err(IamError::DeleteConflict(
                "Cannot delete entity, must detach all policies first.".into(),
            ));
        }
        if !role.inline.is_empty() {
            return Err(IamError::DeleteConflict(
                "Cannot delete entity, must delete policies first.".into(),
            ));
        }
        self.commit(&[Op::delete(ROLES, name, Expect::Version(version))])?;
        tracing::info!(role = name, "role deleted");
        Ok(())
    }

    pub fn tag_role(&self, name: &str, tags: Vec<Tag>) -> Result<(), IamError> {
        check_tags(&tags)?;
        let _w = self.write_guard();
        let (mut role, version) = self.role_doc(name)?;
        merge_tags(&mut role.tags, tags);
        check_tags(&role.tags)?;
        self.commit_quiet(&[put(ROLES, name, &role, Some(version))?])
    }

    pub fn untag_role(&self, name: &str, keys: &[String]) -> Result<(), IamError> {
        let _w = self.write_guard();
        let (mut role, version) = self.role_doc(name)?;
        role.tags.retain(|t| !keys.contains(&t.key));
        self.commit_quiet(&[put(ROLES, name, &role, Some(version))?])
    }

    pub fn list_role_tags(&self, name: &str, listing: Listing<'_>) -> Result<Page<Tag>, IamError> {
        let role = self.role_doc(name)?.0;
        page(role.tags, |t| t.key.clone(), listing)
    }

    // ---- managed policies ---------------------------------------------------------------

    fn check_identity_policy(text: &str, limit: usize) -> Result<(), IamError> {
        if policy_size(text) > limit {
            return Err(IamError::LimitExceeded(format!(
                "Cannot exceed quota for PolicySize: {limit}"
            )));
        }
        PolicyDocument::identity(text).map_err(malformed)?;
        Ok(())
    }

    pub fn create_policy(&self, input: CreatePolicy) -> Result<ManagedPolicy, IamError> {
        check_name(&input.name, "policyName", 128)?;
        let path = check_path(input.path.as_deref())?;
        check_tags(&input.tags)?;
        Self::check_identity_policy(&input.document, MANAGED_POLICY_SIZE)?;
        let arn = self.arn("policy", &path, &input.name);
        let _w = self.write_guard();
        // Names are unique in an account, whatever the path.
        let taken = self
            .load_all::<ManagedPolicy>(POLICIES)?
            .iter()
            .any(|p| !p.aws_managed && p.name == input.name);
        if taken {
            return Err(IamError::EntityAlreadyExists(format!(
                "A policy called {} already exists. Duplicate names are not allowed.",
                input.name
            )));
        }
        let now = self.now();
        let policy = ManagedPolicy {
            name: input.name,
            id: unique_id("ANPA"),
            path,
            arn: arn.clone(),
            description: input.description,
            create_ms: now,
            update_ms: now,
            default_version: "v1".into(),
            versions: vec![PolicyVersion {
                id: "v1".into(),
                document: input.document,
                create_ms: now,
            }],
            next_version: 2,
            attachments: Vec::new(),
            tags: input.tags,
            aws_managed: false,
        };
        self.commit(&[put(POLICIES, &arn, &policy, None)?])?;
        tracing::info!(policy = %arn, "policy created");
        Ok(policy)
    }

    pub fn get_policy(&self, arn: &str) -> Result<ManagedPolicy, IamError> {
        Ok(self.policy_doc(arn)?.0)
    }

    /// One version, and whether it is the default.
    pub fn get_policy_version(
        &self,
        arn: &str,
        version_id: &str,
    ) -> Result<(PolicyVersion, bool), IamError> {
        let p = self.policy_doc(arn)?.0;
        let is_default = p.default_version == version_id;
        p.versions
            .into_iter()
            .find(|v| v.id == version_id)
            .map(|v| (v, is_default))
            .ok_or_else(|| {
                IamError::NoSuchEntity(format!(
                    "Policy {arn} version {version_id} does not exist or is not attachable."
                ))
            })
    }

    fn customer_policy(&self, arn: &str) -> Result<(ManagedPolicy, u64), IamError> {
        match self.policy_doc(arn)? {
            (p, Some(v)) if !p.aws_managed => Ok((p, v)),
            _ if arn.starts_with("arn:aws:iam::aws:") => Err(IamError::InvalidInput(format!(
                "Policy {arn} is an AWS managed policy and cannot be modified."
            ))),
            _ => Err(IamError::NoSuchEntity(format!(
                "Policy {arn} was not found."
            ))),
        }
    }

    /// A new version (at most five: `LimitExceeded`), made the default if `set_as_default`.
    pub fn create_policy_version(
        &self,
        arn: &str,
        document: &str,
        set_as_default: bool,
    ) -> Result<(PolicyVersion, bool), IamError> {
        Self::check_identity_policy(document, MANAGED_POLICY_SIZE)?;
        let _w = self.write_guard();
        let (mut p, version) = self.customer_policy(arn)?;
        if p.versions.len() >= VERSIONS_PER_POLICY {
            return Err(IamError::LimitExceeded(format!(
                "A managed policy can have up to {VERSIONS_PER_POLICY} versions. Before you create a new version, you must delete an existing version."
            )));
        }
        let now = self.now();
        let v = PolicyVersion {
            id: format!("v{}", p.next_version),
            document: document.into(),
            create_ms: now,
        };
        p.next_version += 1;
        p.versions.push(v.clone());
        if set_as_default {
            p.default_version = v.id.clone();
        }
        p.update_ms = now;
        self.commit(&[put(POLICIES, arn, &p, Some(version))?])?;
        Ok((v, set_as_default))
    }

    pub fn set_default_policy_version(&self, arn: &str, version_id: &str) -> Result<(), IamError> {
        let _w = self.write_guard();
        let (mut p, version) = self.customer_policy(arn)?;
        if !p.versions.iter().any(|v| v.id == version_id) {
            return Err(IamError::NoSuchEntity(format!(
                "Policy {arn} version {version_id} does not exist or is not attachable."
            )));
        }
        p.default_version = version_id.into();
        p.update_ms = self.now();
        self.commit(&[put(POLICIES, arn, &p, Some(version))?])
    }

    /// Versions, newest first (as AWS lists them), each with whether it is the default.
    pub fn list_policy_versions(
        &self,
        arn: &str,
        listing: Listing<'_>,
    ) -> Result<Page<(PolicyVersion, bool)>, IamError> {
        let p = self.policy_doc(arn)?.0;
        let default = p.default_version.clone();
        let versions: Vec<(PolicyVersion, bool)> = p
            .versions
            .into_iter()
            .map(|v| {
                let d = v.id == default;
                (v, d)
            })
            .collect();
        // Newest first: sort keys that order larger version numbers first.
        page(
            versions,
            |(v, _)| {
                let n: u32 = v.id.trim_start_matches('v').parse().unwrap_or(0);
                format!("{:010}", u32::MAX - n)
            },
            listing,
        )
    }

    /// Refused (`DeleteConflict`) for the default version.
    pub fn delete_policy_version(&self, arn: &str, version_id: &str) -> Result<(), IamError> {
        let _w = self.write_guard();
        let (mut p, version) = self.customer_policy(arn)?;
        if !p.versions.iter().any(|v| v.id == version_id) {
            return Err(IamError::NoSuchEntity(format!(
                "Policy {arn} version {version_id} does not exist or is not attachable."
            )));
        }
        if p.default_version == version_id {
            return Err(IamError::DeleteConflict(
                "Cannot delete the default version of a policy.".into(),
            ));
        }
        p.versions.retain(|v| v.id != version_id);
        self.commit(&[put(POLICIES, arn, &p, Some(version))?])
    }

    /// Refused (`DeleteConflict`) while the policy is attached, or has versions besides the
    /// default (AWS asks for those to be deleted first).
    pub fn delete_policy(&self, arn: &str) -> Result<(), IamError> {
        let _w = self.write_guard();
        let (p, version) = self.customer_policy(arn)?;
        if !p.attachments.is_empty() {
            return Err(IamError::DeleteConflict(
                "Cannot delete a policy attached to entities.".into(),
            ));
        }
        if p.versions.len() > 1 {
            return Err(IamError::DeleteConflict(
                "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.".into(),
            ));
        }
        self.commit(&[Op::delete(POLICIES, arn, Expect::Version(version))])?;
        tracing::info!(policy = arn, "policy deleted");
        Ok(())
    }

    /// `ListPolicies`: the account's own (`Local`), AWS's (`Aws`) or both, optionally only
    /// those attached somewhere; sorted by name.
    pub fn list_policies(
        &self,
        scope: PolicyScope,
        only_attached: bool,
        listing: Listing<'_>,
    ) -> Result<Page<ManagedPolicy>, IamError> {
        let stored = self.load_all::<ManagedPolicy>(POLICIES)?;
        let mut all: Vec<ManagedPolicy> = Vec::new();
        if scope != PolicyScope::Aws {
            all.extend(stored.iter().filter(|p| !p.aws_managed).cloned());
        }
        if scope != PolicyScope::Local {
            for p in managed::all() {
                all.push(stored.iter().find(|s| s.arn == p.arn).cloned().unwrap_or(p));
            }
        }
        let prefix = listing.path_prefix.unwrap_or("/");
        all.retain(|p| p.path.starts_with(prefix) && (!only_attached || !p.attachments.is_empty()));
        page(all, |p| format!("{}\u{0}{}", p.name, p.arn), listing)
    }

    // ---- attached policies --------------------------------------------------------------

    /// Attaches a managed policy (the account's or AWS's) to a user, group or role; attaching
    /// it again changes nothing.
    pub fn attach_policy(
        &self,
        kind: EntityKind,
        entity: &str,
        policy_arn: &str,
    ) -> Result<(), IamError> {
        let _w = self.write_guard();
        let (mut e, ev) = self.entity(kind, entity)?;
        let (mut p, pv) = match self.policy_doc(policy_arn) {
            Ok(found) => found,
            Err(IamError::NoSuchEntity(_)) => return Err(no_policy(policy_arn)),
            Err(other) => return Err(other),
        };
        if e.attached().iter().any(|a| a == policy_arn) {
            return Ok(());
        }
        if e.attached().len() >= ATTACHED_PER_ENTITY {
            let quota = match kind {
                EntityKind::User => "PoliciesPerUser",
                EntityKind::Group => "PoliciesPerGroup",
                EntityKind::Role => "PoliciesPerRole",
            };
            return Err(IamError::LimitExceeded(format!(
                "Cannot exceed quota for {quota}: {ATTACHED_PER_ENTITY}"
            )));
        }
        e.attached().push(policy_arn.into());
        p.attachments.push(Attachment {
            kind,
            name: entity.into(),
        });
        self.commit(&[e.op(ev)?, put(POLICIES, policy_arn, &p, pv)?])
    }

    pub fn detach_policy(
        &self,
        kind: EntityKind,
        entity: &str,
        policy_arn: &str,
    ) -> Result<(), IamError> {
        let _w = self.write_guard();
        let (mut e, ev) = self.entity(kind, entity)?;
        if !e.attached().iter().any(|a| a == policy_arn) {
            return Err(IamError::NoSuchEntity(format!(
                "Policy {policy_arn} was not found."
            )));
        }
        e.attached().retain(|a| a != policy_arn);
        let mut ops = vec![e.op(ev)?];
        if let (mut p, Some(pv)) = self.policy_doc(policy_arn)? {
            p.attachments
                .retain(|a| !(a.kind == kind && a.name == entity));
            if p.aws_managed && p.attachments.is_empty() {
                // An AWS policy's record only says where it is attached: none left, no record.
                ops.push(Op::delete(POLICIES, policy_arn, Expect::Version(pv)));
            } else {
                ops.push(put(POLICIES, policy_arn, &p, Some(pv))?);
            }
        }
        self.commit(&ops)
    }

    /// The managed policies attached to an entity: `(name, ARN)`, by name.
    pub fn list_attached_policies(
        &self,
        kind: EntityKind,
        entity: &str,
        listing: Listing<'_>,
    ) -> Result<Page<(String, String)>, IamError> {
        let (mut e, _) = self.entity(kind, entity)?;
        let prefix = listing.path_prefix.unwrap_or("/");
        let mut out = Vec::new();
        for arn in e.attached().clone() {
            if let Ok((p, _)) = self.policy_doc(&arn)
                && p.path.starts_with(prefix)
            {
                out.push((p.name, arn));
            }
        }
        page(out, |(name, arn)| format!("{name}\u{0}{arn}"), listing)
    }

    // ---- inline policies ----------------------------------------------------------------

    /// Creates or replaces an inline policy. The sizes of an entity's inline policies
    /// together are limited as AWS limits them (users 2048, groups 5120, roles 10240).
    pub fn put_inline_policy(
        &self,
        kind: EntityKind,
        entity: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<(), IamError> {
        check_name(policy_name, "policyName", 128)?;
        PolicyDocument::identity(document).map_err(malformed)?;
        let _w = self.write_guard();
        let (mut e, ev) = self.entity(kind, entity)?;
        e.inline().insert(policy_name.into(), document.into());
        let limit = match kind {
            EntityKind::User => 2048,
            EntityKind::Group => 5120,
            EntityKind::Role => 10240,
        };
        let total: usize = e.inline().values().map(|d| policy_size(d)).sum();
        if total > limit {
            return Err(IamError::LimitExceeded(format!(
                "Maximum policy size of {limit} bytes exceeded for {} {entity}",
                kind.noun()
            )));
        }
        self.commit(&[e.op(ev)?])
    }

    pub fn get_inline_policy(
        &self,
        kind: EntityKind,
        entity: &str,
        policy_name: &str,
    ) -> Result<String, IamError> {
        let (mut e, _) = self.entity(kind, entity)?;
        e.inline().get(policy_name).cloned().ok_or_else(|| {
            IamError::NoSuchEntity(format!(
                "The {} policy with name {policy_name} cannot be found.",
                kind.noun()
            ))
        })
    }

    pub fn list_inline_policies(
        &self,
        kind: EntityKind,
        entity: &str,
        listing: Listing<'_>,
    ) -> Result<Page<String>, IamError> {
        let (mut e, _) = self.entity(kind, entity)?;
        page(e.inline().keys().cloned().collect(), String::clone, listing)
    }

    pub fn delete_inline_policy(
        &self,
        kind: EntityKind,
        entity: &str,
        policy_name: &str,
    ) -> Result<(), IamError> {
        let _w = self.write_guard();
        let (mut e, ev) = self.entity(kind, entity)?;
        if e.inline().remove(policy_name).is_none() {
            return Err(IamError::NoSuchEntity(format!(
                "The {} policy with name {policy_name} cannot be found.",
                kind.noun()
            )));
        }
        self.commit(&[e.op(ev)?])
    }

    // ---- what the front door asks -------------------------------------------------------

    /// The identity policies that judge `principal_arn`'s requests: a user's inline and
    /// attached policies and those of its groups; a role's (for the role's ARN or any of its
    /// sessions' `assumed-role` ARNs). The root has none (it is allowed everything; that is
    /// the caller's rule). `NoSuchEntity` for a principal that no longer exists.
    ///
    /// Cached per principal until the next write that could change any principal's policies,
    /// so a call per request costs a map lookup.
    pub fn policies_of(&self, principal_arn: &str) -> Result<Arc<Vec<PolicyDocument>>, IamError> {
        let generation = {
            let cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(hit) = cache.by_principal.get(principal_arn) {
                return Ok(hit.clone());
            }
            cache.generation
        };
        let docs = Arc::new(self.compute_policies(principal_arn)?);
        let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        // A write committed since `generation` was read may not be in `docs`: keep it only
        // if none was.
        if cache.generation == generation {
            cache
                .by_principal
                .insert(principal_arn.to_owned(), docs.clone());
        }
        Ok(docs)
    }

    fn compute_policies(&self, principal_arn: &str) -> Result<Vec<PolicyDocument>, IamError> {
        let unknown = || IamError::NoSuchEntity(format!("No principal {principal_arn}."));
        let own_account = |arn: &str| arn.split(':').nth(4) == Some(self.account());
        if !own_account(principal_arn) {
            return Err(unknown());
        }
        let mut texts: Vec<String> = Vec::new();
        let mut add =
            |inline: &BTreeMap<String, String>, attached: &[String]| -> Result<(), IamError> {
                texts.extend(inline.values().cloned());
                for arn in attached {
                    let (p, _) = self.policy_doc(arn)?;
                    if let Some(v) = p.default_document() {
                        texts.push(v.document.clone());
                    }
                }
                Ok(())
            };
        if principal_arn.ends_with(":root") {
            return Ok(Vec::new());
        } else if let Some((_, rest)) = principal_arn.split_once(":user/") {
            let name = rest.rsplit('/').next().unwrap_or(rest);
            let user = match self.load::<User>(USERS, name)? {
                Some((u, _)) if u.arn == principal_arn => u,
                _ => return Err(unknown()),
            };
            add(&user.inline, &user.attached)?;
            for g in &user.groups {
                if let Some((group, _)) = self.load::<Group>(GROUPS, g)? {
                    add(&group.inline, &group.attached)?;
                }
            }
        } else if let Some((_, rest)) = principal_arn.split_once(":assumed-role/") {
            let name = rest.split('/').next().unwrap_or(rest);
            let role = self.load::<Role>(ROLES, name)?.ok_or_else(unknown)?.0;
            add(&role.inline, &role.attached)?;
        } else if principal_arn.contains(":role/") {
            let role = self.role(principal_arn).map_err(|_| unknown())?;
            add(&role.inline, &role.attached)?;
        } else {
            return Err(unknown());
        }
        texts
            .iter()
            .map(|t| {
                // Stored documents were validated on write; one that no longer parses must
                // not be skipped (it may hold a Deny): the principal's requests fail instead.
                PolicyDocument::identity(t).map_err(|e| {
                    tracing::error!(principal = principal_arn, error = %e, "a stored policy does not parse");
                    malformed(e)
                })
            })
            .collect()
    }

    /// Deletes everything (the server's test mode resets between conformance tests).
    pub fn delete_all(&self) -> Result<(), IamError> {
        let _w = self.write_guard();
        let mut ops = Vec::new();
        for table in [USERS, GROUPS, ROLES, POLICIES, KEYS, SESSIONS] {
            for (key, _) in self.inner.store.meta.list(table, "", None, usize::MAX)? {
                ops.push(Op::delete(table, &key, Expect::Any));
            }
        }
        self.commit(&ops)
    }
}
