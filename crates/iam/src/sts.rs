//! STS over IAM's entities: `AssumeRole` (a role's trust policy decides), `GetSessionToken`,
//! and [`IamService::access_key`], the one lookup the front door makes per request for any
//! key (a user's `AKIA…`, a session's `ASIA…`).
//!
//! Sessions are documents in the `sessions` table, by access key id, with their expiry: they
//! survive restarts. An expired session is still found (so the front door can answer
//! `ExpiredToken` rather than an unknown key) until it is purged: the next `AssumeRole` or
//! `GetSessionToken` after it has been expired for [`PURGE_AFTER_MS`] deletes it (at most one
//! sweep a minute).

use std::sync::atomic::Ordering;

use stratus_store::{Expect, Op};

use crate::error::IamError;
use crate::eval::{Context, Principal};
use crate::model::*;
use crate::service::{IamService, KEYS, SESSIONS, USERS, put};

/// How long an expired session is still reported as expired before it is deleted.
pub const PURGE_AFTER_MS: i64 = 60 * 60 * 1000;
/// Sweeps for expired sessions are at least this far apart.
const SWEEP_EVERY_MS: i64 = 60 * 1000;

/// `AssumeRole`'s input.
#[derive(Debug, Clone, Default)]
pub struct AssumeRoleInput {
    pub role_arn: String,
    pub session_name: String,
    /// 900 to the role's `MaxSessionDuration`; 3600 if not given.
    pub duration_secs: Option<i64>,
    /// An inline session policy: refused, not supported yet.
    pub policy: Option<String>,
    /// `sts:ExternalId`, for trust policies that require it.
    pub external_id: Option<String>,
}

fn validation(value: &str, member: &str, constraint: &str) -> IamError {
    IamError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    ))
}

impl IamService {
    /// `sts:AssumeRole` for `caller`: an IAM principal (a user, a role's session, the root)
    /// or a service (`lambda.amazonaws.com`, for a function's execution role). The role's
    /// trust policy must allow it; a role that does not exist is refused the same way, as
    /// AWS refuses it (`AccessDenied`, naming the caller and the role).
    pub fn assume_role(
        &self,
        caller: Principal<'_>,
        input: AssumeRoleInput,
    ) -> Result<AssumedRole, IamError> {
        let name = &input.session_name;
        let len = name.chars().count();
        if !(2..=64).contains(&len) {
            return Err(validation(
                name,
                "roleSessionName",
                "Member must have length greater than or equal to 2 and less than or equal to 64",
            ));
        }
        if !name.chars().all(crate::model::name_char) {
            return Err(validation(
                name,
                "roleSessionName",
                r"Member must satisfy regular expression pattern: [\w+=,.@-]*",
            ));
        }
        if input.role_arn.len() < 20 {
            return Err(validation(
                &input.role_arn,
                "roleArn",
                "Member must have length greater than or equal to 20",
            ));
        }
        if input.policy.is_some() {
            return Err(IamError::Validation(
                "Session policies (Policy) are not supported by this server yet.".into(),
            ));
        }
        if let Some(d) = input.duration_secs
            && d < 900
        {
            return Err(validation(
                &d.to_string(),
                "durationSeconds",
                "Member must have value greater than or equal to 900",
            ));
        }
        let caller_name = match caller {
            Principal::Aws { arn, .. } => arn,
            Principal::Service(s) => s,
        };
        let denied = || {
            IamError::AccessDenied(format!(
                "User: {caller_name} is not authorized to perform: sts:AssumeRole on resource: {}",
                input.role_arn
            ))
        };
        let role = match self.role(&input.role_arn) {
            Ok(r) => r,
            Err(IamError::NoSuchEntity(_)) => return Err(denied()),
            Err(e) => return Err(e),
        };
        let now = self.now();
        let mut context = Context::new();
        context.set("aws:CurrentTime", stratus_aws::clock::iso8601(now));
        context.set("aws:EpochTime", (now / 1000).to_string());
        context.set("sts:RoleSessionName", name.clone());
        match caller {
            Principal::Aws { arn, account } => {
                context.set("aws:PrincipalArn", arn);
                context.set("aws:PrincipalAccount", account);
            }
            Principal::Service(s) => {
                context.set("aws:PrincipalServiceName", s);
            }
        }
        if let Some(id) = &input.external_id {
            context.set("sts:ExternalId", id.clone());
        }
        if !self.trusts(&role, caller, &context) {
            tracing::info!(caller = caller_name, role = %role.arn, "AssumeRole denied by the trust policy");
            return Err(denied());
        }
        let duration = input.duration_secs.unwrap_or(3600);
        if duration > role.max_session_secs {
            return Err(IamError::Validation(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                    .into(),
            ));
        }
        let arn = format!(
            "arn:aws:sts::{}:assumed-role/{}/{name}",
            self.scope().account_id,
            role.name
        );
        let assumed_role_id = format!("{}:{name}", role.id);
        let session = Session {
            credentials: self.new_credentials(now, duration),
            principal_arn: arn.clone(),
            principal_id: assumed_role_id.clone(),
            role: Some((role.name.clone(), role.arn.clone())),
            user: None,
            session_name: Some(name.clone()),
            create_ms: now,
        };
        self.store_session(&session)?;
        tracing::info!(caller = caller_name, assumed = %arn, "role assumed");
        Ok(AssumedRole {
            credentials: session.credentials,
            arn,
            assumed_role_id,
        })
    }

    /// `sts:GetSessionToken` for a user or the root (`caller_arn`): temporary credentials
    /// acting as the caller. Users' sessions last 900 to 129600 seconds (43200 if not
    /// given); the root's at most an hour (longer asks get an hour, as on AWS). A role's
    /// session cannot ask (`AccessDenied`).
    pub fn get_session_token(
        &self,
        caller_arn: &str,
        duration_secs: Option<i64>,
    ) -> Result<Credentials, IamError> {
        if caller_arn.contains(":assumed-role/") {
            return Err(IamError::AccessDenied(
                "Cannot call GetSessionToken with session credentials".into(),
            ));
        }
        if let Some(d) = duration_secs
            && !(900..=129_600).contains(&d)
        {
            return Err(validation(
                &d.to_string(),
                "durationSeconds",
                "Member must have value greater than or equal to 900 and less than or equal to 129600",
            ));
        }
        let (principal_id, user, duration) = if caller_arn.ends_with(":root") {
            let d = duration_secs.unwrap_or(3600).min(3600);
            (self.scope().account_id.clone(), None, d)
        } else if let Some((_, rest)) = caller_arn.split_once(":user/") {
            let name = rest.rsplit('/').next().unwrap_or(rest);
            match self.load::<User>(USERS, name)? {
                Some((u, _)) if u.arn == caller_arn => {
                    (u.id, Some(u.name), duration_secs.unwrap_or(43_200))
                }
                _ => {
                    return Err(IamError::AccessDenied(format!(
                        "User: {caller_arn} is not authorized to perform: sts:GetSessionToken"
                    )));
                }
            }
        } else {
            return Err(IamError::AccessDenied(format!(
                "User: {caller_arn} is not authorized to perform: sts:GetSessionToken"
            )));
        };
        let now = self.now();
        let session = Session {
            credentials: self.new_credentials(now, duration),
            principal_arn: caller_arn.into(),
            principal_id,
            role: None,
            user,
            session_name: None,
            create_ms: now,
        };
        self.store_session(&session)?;
        Ok(session.credentials)
    }

    fn new_credentials(&self, now: i64, duration_secs: i64) -> Credentials {
        Credentials {
            access_key_id: access_key_id("ASIA"),
            secret_access_key: secret(),
            session_token: session_token(),
            expires_ms: now + duration_secs * 1000,
        }
    }

    fn store_session(&self, session: &Session) -> Result<(), IamError> {
        self.commit_quiet(&[put(
            SESSIONS,
            &session.credentials.access_key_id,
            session,
            None,
        )?])?;
        if let Err(e) = self.sweep_sessions() {
            tracing::warn!(error = %e, "purging expired sessions");
        }
        Ok(())
    }

    /// Deletes sessions expired for longer than [`PURGE_AFTER_MS`]; at most one sweep a
    /// minute does the work. Returns how many went.
    pub fn sweep_sessions(&self) -> Result<usize, IamError> {
        let now = self.now();
        let last = self.inner.last_sweep_ms.load(Ordering::Relaxed);
        if last != i64::MIN && now - last < SWEEP_EVERY_MS {
            return Ok(0);
        }
        self.inner.last_sweep_ms.store(now, Ordering::Relaxed);
        let mut ops = Vec::new();
        for (key, doc) in self.inner.store.meta.list(SESSIONS, "", None, usize::MAX)? {
            let s: Session = serde_json::from_slice(&doc.value)?;
            if s.credentials.expires_ms + PURGE_AFTER_MS <= now {
                ops.push(Op::delete(SESSIONS, &key, Expect::Version(doc.version)));
            }
        }
        if !ops.is_empty() {
            self.commit_quiet(&ops)?;
            tracing::debug!(purged = ops.len(), "expired sessions purged");
        }
        Ok(ops.len())
    }

    /// The session whose access key is `access_key_id`, expired or not (until purged).
    pub fn session(&self, access_key_id: &str) -> Result<Option<Session>, IamError> {
        Ok(self
            .load::<Session>(SESSIONS, access_key_id)?
            .map(|(s, _)| s))
    }

    /// Any access key this account knows: a user's (`AKIA…`, with its status) or a
    /// session's (`ASIA…`, with its token and expiry; an expired one is returned as such,
    /// see [`KeyInfo::expired`], until it is purged). `None` for a key it does not know; a
    /// store failure is logged and answered `None` too, so a request is refused rather than
    /// let through.
    pub fn access_key(&self, access_key_id: &str) -> Option<KeyInfo> {
        match self.lookup_key(access_key_id) {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(access_key_id, error = %e, "looking up an access key");
                None
            }
        }
    }

    fn lookup_key(&self, access_key_id: &str) -> Result<Option<KeyInfo>, IamError> {
        if let Some(s) = self.session(access_key_id)? {
            return Ok(Some(KeyInfo {
                secret: s.credentials.secret_access_key,
                principal_arn: s.principal_arn,
                user_name: s.user,
                active: true,
                session_token: Some(s.credentials.session_token),
                expires_at: Some(s.credentials.expires_ms),
            }));
        }
        let Some((key, _)) = self.load::<AccessKey>(KEYS, access_key_id)? else {
            return Ok(None);
        };
        let Some((user, _)) = self.load::<User>(USERS, &key.user)? else {
            return Ok(None);
        };
        Ok(Some(KeyInfo {
            secret: key.secret,
            principal_arn: user.arn,
            user_name: Some(user.name),
            active: key.status == KeyStatus::Active,
            session_token: None,
            expires_at: None,
        }))
    }
}
