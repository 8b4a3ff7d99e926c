//! Identity wired into the server: IAM's keys and sessions in the key ring, IAM's policies
//! deciding every request ([`IamAuthorizer`]), and functions' credentials as sessions of
//! their execution roles ([`FunctionSessions`]).

use std::collections::HashMap;
use std::sync::Mutex;

use stratus_aws::{Access, Authorizer, Denied, RoleSessions, TemporaryCredentials};
use stratus_iam::IamService;
use stratus_iam::eval::{self, Context, Decision, Principal, Request};
use stratus_iam::policy::PolicyDocument;

use crate::credentials::{self, KeyEntry, KeyRing, KeySource};

/// Decides requests by IAM: the account's root may do everything; any other principal what
/// its identity policies allow (an explicit Deny wins), as AWS evaluates them.
pub struct IamAuthorizer {
    iam: IamService,
    root: String,
    account_id: String,
}

impl IamAuthorizer {
    pub fn new(iam: IamService, account_id: &str) -> IamAuthorizer {
        IamAuthorizer {
            iam,
            root: format!("arn:aws:iam::{account_id}:root"),
            account_id: account_id.to_owned(),
        }
    }
}

impl IamAuthorizer {
    /// The global condition keys of a request.
    fn context(&self, access: &Access<'_>) -> Context {
        let mut context = Context::new();
        let now = stratus_aws::clock::now_ms();
        context
            .set("aws:PrincipalArn", access.principal)
            .set("aws:PrincipalAccount", self.account_id.as_str())
            .set("aws:RequestedRegion", access.region)
            .set("aws:CurrentTime", stratus_aws::clock::iso8601(now))
            .set("aws:EpochTime", (now / 1000).to_string())
            .set("aws:SecureTransport", "false");
        if let Some(ip) = access.source_ip {
            context.set("aws:SourceIp", ip.to_string());
        }
        if let Some((_, user)) = access.principal.split_once(":user/") {
            context.set("aws:username", user.rsplit('/').next().unwrap_or(user));
        }
        context
    }
}

impl Authorizer for IamAuthorizer {
    fn authorize(&self, access: &Access<'_>) -> Result<(), Denied> {
        if access.principal == self.root {
            return Ok(());
        }
        let Ok(policies) = self.iam.policies_of(access.principal) else {
            return Err(Denied::not_allowed(access));
        };
        let context = self.context(access);
        let refs: Vec<_> = policies.iter().collect();
        let req = Request {
            action: access.action,
            resource: access.resource,
            context: &context,
        };
        match eval::identity(&refs, &req) {
            Decision::Allow => Ok(()),
            Decision::Deny => Err(Denied::explicitly(access)),
            Decision::NoMatch => Err(Denied::not_allowed(access)),
        }
    }

    fn policy_allows(&self, policy: &str, access: &Access<'_>, extra: &[(&str, &str)]) -> bool {
        // Parsed at each call: asked only when identity policies did not allow, or when a
        // service acts on a resource.
        let Ok(doc) = PolicyDocument::resource(policy) else {
            return false;
        };
        let mut context = self.context(access);
        for (k, v) in extra {
            context.set(k, *v);
        }
        let principal = if access.principal.starts_with("arn:") {
            Principal::Aws {
                arn: access.principal,
                account: access.principal.split(':').nth(4).unwrap_or(""),
            }
        } else {
            Principal::Service(access.principal)
        };
        let req = Request {
            action: access.action,
            resource: access.resource,
            context: &context,
        };
        eval::resource(&doc, principal, &req) == Decision::Allow
    }
}

/// IAM's users' keys and STS's sessions, for the key ring.
pub struct IamKeys(pub IamService);

impl KeySource for IamKeys {
    fn key(&self, access_key_id: &str) -> Option<KeyEntry> {
        let k = self.0.access_key(access_key_id)?;
        Some(KeyEntry {
            secret_access_key: k.secret,
            principal_arn: k.principal_arn,
            session_token: k.session_token,
            expires_ms: k.expires_at,
            active: k.active,
        })
    }
}

/// Functions' credentials: one session per execution role and function (named after the
/// function, as Lambda names it), made in memory when the function's first environment
/// starts and held in the key ring for the server's life. A session acts as
/// `arn:aws:sts::<account>:assumed-role/<role>/<function>`, so what it may do is what the
/// role's policies allow, read at each request (a policy changed later applies at once; a
/// role deleted later leaves the session nothing). Whether Lambda may assume the role is
/// checked when a function is created or its role changed, not here: a function created
/// before IAM existed (whose role was never made), or whose role went since, still runs,
/// with a session no policy allows anything.
pub struct FunctionSessions {
    iam: IamService,
    keys: KeyRing,
    account_id: String,
    made: Mutex<HashMap<(String, String), TemporaryCredentials>>,
}

impl FunctionSessions {
    pub fn new(iam: IamService, keys: KeyRing, account_id: &str) -> FunctionSessions {
        FunctionSessions {
            iam,
            keys,
            account_id: account_id.to_owned(),
            made: Mutex::default(),
        }
    }
}

/// The service principal functions' roles must trust.
const LAMBDA: &str = "lambda.amazonaws.com";

impl RoleSessions for FunctionSessions {
    fn assumable(&self, role_arn: &str) -> bool {
        match self.iam.role(role_arn) {
            Ok(role) => self
                .iam
                .trusts(&role, Principal::Service(LAMBDA), &Context::new()),
            Err(_) => false,
        }
    }

    fn credentials(&self, role_arn: &str, session_name: &str) -> Option<TemporaryCredentials> {
        let key = (role_arn.to_owned(), session_name.to_owned());
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = made.get(&key) {
            return Some(c.clone());
        }
        let role_name = role_arn.rsplit('/').next()?;
        let (pair, token) = credentials::session();
        let creds = TemporaryCredentials {
            access_key_id: pair.access_key_id,
            secret_access_key: pair.secret_access_key,
            session_token: token,
        };
        self.keys.add_session(
            &creds.access_key_id,
            KeyEntry {
                secret_access_key: creds.secret_access_key.clone(),
                principal_arn: format!(
                    "arn:aws:sts::{}:assumed-role/{role_name}/{session_name}",
                    self.account_id
                ),
                session_token: Some(creds.session_token.clone()),
                expires_ms: None,
                active: true,
            },
        );
        made.insert(key, creds.clone());
        Some(creds)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use stratus_iam::{CreateRole, EntityKind};

    use super::*;

    const ACCOUNT: &str = "123456789012";
    const LAMBDA_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

    fn iam(dir: &std::path::Path) -> IamService {
        let store = stratus_store::Store::open(dir).unwrap().namespace("iam");
        IamService::new(
            store,
            stratus_aws::Scope {
                region: "us-east-1".into(),
                account_id: ACCOUNT.into(),
            },
        )
    }

    fn access<'a>(principal: &'a str, action: &'a str, resource: &'a str) -> Access<'a> {
        Access {
            principal,
            action,
            resource,
            source_ip: None,
            region: "us-east-1",
        }
    }

    #[test]
    fn root_may_do_everything_others_what_their_policies_say() {
        let dir = tempfile::tempdir().unwrap();
        let iam = iam(dir.path());
        iam.create_user("ro", None, vec![]).unwrap();
        iam.put_inline_policy(
            EntityKind::User,
            "ro",
            "read",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["lambda:Get*","lambda:List*"],"Resource":"*"},{"Effect":"Deny","Action":"lambda:GetFunction","Resource":"arn:aws:lambda:us-east-1:123456789012:function:secret"}]}"#,
        )
        .unwrap();
        let auth = IamAuthorizer::new(iam, ACCOUNT);
        let f = "arn:aws:lambda:us-east-1:123456789012:function:f";
        let root = "arn:aws:iam::123456789012:root";
        let ro = "arn:aws:iam::123456789012:user/ro";
        assert!(
            auth.authorize(&access(root, "lambda:DeleteFunction", f))
                .is_ok()
        );
        assert!(
            auth.authorize(&access(ro, "lambda:ListFunctions", "*"))
                .is_ok()
        );
        let denied = auth
            .authorize(&access(ro, "lambda:DeleteFunction", f))
            .unwrap_err();
        assert!(!denied.explicit);
        assert_eq!(
            denied.message,
            "User: arn:aws:iam::123456789012:user/ro is not authorized to perform: \
             lambda:DeleteFunction on resource: arn:aws:lambda:us-east-1:123456789012:function:f \
             because no identity-based policy allows the lambda:DeleteFunction action"
        );
        let secret = "arn:aws:lambda:us-east-1:123456789012:function:secret";
        let denied = auth
            .authorize(&access(ro, "lambda:GetFunction", secret))
            .unwrap_err();
        assert!(denied.explicit, "{denied}");
        // A principal IAM does not know may do nothing.
        let ghost = "arn:aws:iam::123456789012:user/ghost";
        assert!(
            auth.authorize(&access(ghost, "lambda:ListFunctions", "*"))
                .is_err()
        );
    }

    #[test]
    fn a_function_policy_lets_the_service_and_source_it_names_invoke() {
        let dir = tempfile::tempdir().unwrap();
        let auth = IamAuthorizer::new(iam(dir.path()), ACCOUNT);
        let f = "arn:aws:lambda:us-east-1:123456789012:function:f";
        // As AddPermission writes it.
        let policy = format!(
            r#"{{"Version":"2012-10-17","Id":"default","Statement":[{{"Sid":"s3","Effect":"Allow","Principal":{{"Service":"s3.amazonaws.com"}},"Action":"lambda:InvokeFunction","Resource":"{f}","Condition":{{"StringEquals":{{"AWS:SourceAccount":"123456789012"}},"ArnLike":{{"AWS:SourceArn":"arn:aws:s3:::uploads"}}}}}}]}}"#
        );
        let s3 = access("s3.amazonaws.com", "lambda:InvokeFunction", f);
        let from = |arn: &'static str| [("aws:SourceArn", arn), ("aws:SourceAccount", ACCOUNT)];
        assert!(auth.policy_allows(&policy, &s3, &from("arn:aws:s3:::uploads")));
        assert!(!auth.policy_allows(&policy, &s3, &from("arn:aws:s3:::other")));
        let sqs = access("sqs.amazonaws.com", "lambda:InvokeFunction", f);
        assert!(!auth.policy_allows(&policy, &sqs, &from("arn:aws:s3:::uploads")));
        let other_fn = access(
            "s3.amazonaws.com",
            "lambda:InvokeFunction",
            "arn:aws:lambda:us-east-1:123456789012:function:g",
        );
        assert!(!auth.policy_allows(&policy, &other_fn, &from("arn:aws:s3:::uploads")));
        assert!(!auth.policy_allows("not json", &s3, &from("arn:aws:s3:::uploads")));
    }

    #[test]
    fn functions_get_sessions_of_roles_that_trust_lambda_only() {
        let dir = tempfile::tempdir().unwrap();
        let iam = iam(dir.path());
        let role = |name: &str, trust: &str| {
            iam.create_role(CreateRole {
                name: name.into(),
                trust_policy: trust.into(),
                ..Default::default()
            })
            .unwrap()
            .arn
        };
        let good = role("fn-role", LAMBDA_TRUST);
        let other = role(
            "ec2-role",
            &LAMBDA_TRUST.replace("lambda.amazonaws.com", "ec2.amazonaws.com"),
        );
        let ring = KeyRing::with(&credentials::generate(), ACCOUNT);
        let sessions = FunctionSessions::new(iam, ring.clone(), ACCOUNT);
        assert!(sessions.assumable(&good));
        assert!(!sessions.assumable(&other));
        assert!(!sessions.assumable("arn:aws:iam::123456789012:role/missing"));
        // A role Lambda may not assume (checked at CreateFunction) still gives a session:
        // one that its (absent) policies allow nothing.
        assert!(sessions.credentials(&other, "f").is_some());

        let creds = sessions.credentials(&good, "f").unwrap();
        assert!(creds.access_key_id.starts_with("ASIA"));
        // The same function's environments share the session.
        assert_eq!(sessions.credentials(&good, "f").unwrap(), creds);
        use stratus_gateway::{KeyRefusal, Keys};
        let caller = ring
            .caller(&creds.access_key_id, Some(&creds.session_token))
            .unwrap();
        assert_eq!(
            caller.arn,
            "arn:aws:sts::123456789012:assumed-role/fn-role/f"
        );
        assert_eq!(
            ring.caller(&creds.access_key_id, Some("wrong")),
            Err(KeyRefusal::Invalid)
        );
        assert_eq!(
            ring.caller(&creds.access_key_id, None),
            Err(KeyRefusal::Invalid)
        );
    }
}
