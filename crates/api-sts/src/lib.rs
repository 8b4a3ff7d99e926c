//! STS (`sts/2011-06-15`, query protocol): `GetCallerIdentity`, `AssumeRole`,
//! `GetSessionToken`.
//!
//! The caller is the one the gateway authenticated; roles, trust and sessions are
//! `stratus-iam`'s ([`IamService::assume_role`], [`IamService::get_session_token`]), called
//! on the blocking pool (they read and commit the store).
//!
//! Invariant: wire only. No state, no knowledge of how keys or sessions are stored.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use stratus_aws::clock::iso8601;
use stratus_iam::eval::Principal;
use stratus_iam::{AssumeRoleInput, Credentials, IamError, IamService};
use stratus_protocol::query::Params;
use stratus_protocol::xml::Writer;
use stratus_protocol::{
    AwsError, AwsRequest, BodyPolicy, BoxFuture, Caller, Protocol, Service, ServiceInfo,
};

const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// STS, as the front door sees it.
#[derive(Debug, Clone)]
pub struct StsApi {
    iam: IamService,
}

impl StsApi {
    pub fn new(iam: IamService) -> StsApi {
        StsApi { iam }
    }
}

impl Service for StsApi {
    fn info(&self) -> ServiceInfo {
        ServiceInfo {
            signing_name: "sts",
            protocol: Protocol::Query,
            targets: &[],
            body: BodyPolicy::Buffered { limit: 64 * 1024 },
        }
    }

    fn handle(&self, req: AwsRequest) -> BoxFuture<Response> {
        let iam = self.iam.clone();
        Box::pin(async move {
            let params =
                Params::from_request(req.parts.uri.query().unwrap_or(""), &req.body.bytes());
            // AssumeRole needs the caller's own permission too (in the same account AWS asks
            // for it unless the trust policy names the caller itself; here it always asks);
            // GetCallerIdentity and GetSessionToken need none, as on AWS.
            if params.action() == Some("AssumeRole") {
                let role = params.get("RoleArn").unwrap_or("*");
                if let Err(denied) = req.authorize("sts:AssumeRole", role) {
                    return AwsError::denied(Protocol::Query, denied)
                        .render(Protocol::Query, &req.request_id);
                }
            }
            let caller = req.caller.clone();
            let rid = req.request_id.clone();
            let result =
                tokio::task::spawn_blocking(move || dispatch(&iam, &caller, &params, &rid)).await;
            match result {
                Ok(Ok(xml)) => {
                    (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml")], xml).into_response()
                }
                Ok(Err(e)) => e.render(Protocol::Query, &req.request_id),
                Err(e) => AwsError::internal(e).render(Protocol::Query, &req.request_id),
            }
        })
    }
}

fn aws_error(e: IamError) -> AwsError {
    if e.is_server_fault() {
        let mut err = AwsError::internal(&e);
        err.code = e.code();
        return err;
    }
    AwsError::new(
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
        e.code(),
        e.to_string(),
    )
}

fn validation(message: String) -> AwsError {
    AwsError::new(StatusCode::BAD_REQUEST, "ValidationError", message)
}

fn required<'a>(p: &'a Params, name: &str, member: &str) -> Result<&'a str, AwsError> {
    p.get(name).ok_or_else(|| {
        validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

fn duration(p: &Params) -> Result<Option<i64>, AwsError> {
    match p.get("DurationSeconds") {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            validation(format!(
                "1 validation error detected: Value '{v}' at 'durationSeconds' failed to satisfy constraint: Member must be a number"
            ))
        }),
    }
}

fn dispatch(
    iam: &IamService,
    caller: &Caller,
    p: &Params,
    request_id: &str,
) -> Result<String, AwsError> {
    let action = match p.action() {
        Some(a) => a,
        None => {
            return Err(AwsError::new(
                StatusCode::BAD_REQUEST,
                "MissingAction",
                "Missing Action",
            ));
        }
    };
    let mut w = Writer::new();
    w.open_ns(&format!("{action}Response"), XMLNS)
        .open(&format!("{action}Result"));
    match action {
        "GetCallerIdentity" => {
            w.leaf("Arn", &caller.arn)
                .leaf("UserId", &user_id(iam, caller))
                .leaf("Account", &caller.account_id);
        }
        "AssumeRole" => {
            if p.get("PolicyArns.member.1.arn").is_some() {
                return Err(validation(
                    "Session policies (PolicyArns) are not supported by this server yet.".into(),
                ));
            }
            let input = AssumeRoleInput {
                role_arn: required(p, "RoleArn", "roleArn")?.into(),
                session_name: required(p, "RoleSessionName", "roleSessionName")?.into(),
                duration_secs: duration(p)?,
                policy: p.get("Policy").map(Into::into),
                external_id: p.get("ExternalId").map(Into::into),
            };
            let principal = Principal::Aws {
                arn: &caller.arn,
                account: &caller.account_id,
            };
            let assumed = iam.assume_role(principal, input).map_err(aws_error)?;
            credentials(&mut w, &assumed.credentials);
            w.open("AssumedRoleUser")
                .leaf("AssumedRoleId", &assumed.assumed_role_id)
                .leaf("Arn", &assumed.arn)
                .close();
        }
        "GetSessionToken" => {
            let c = iam
                .get_session_token(&caller.arn, duration(p)?)
                .map_err(aws_error)?;
            credentials(&mut w, &c);
        }
        other => {
            return Err(AwsError::new(
                StatusCode::BAD_REQUEST,
                "InvalidAction",
                format!("Could not find operation {other} for version 2011-06-15"),
            ));
        }
    }
    w.close()
        .open("ResponseMetadata")
        .leaf("RequestId", request_id);
    Ok(w.finish())
}

fn credentials(w: &mut Writer, c: &Credentials) {
    w.open("Credentials")
        .leaf("AccessKeyId", &c.access_key_id)
        .leaf("SecretAccessKey", &c.secret_access_key)
        .leaf("SessionToken", &c.session_token)
        .leaf("Expiration", &iso8601(c.expires_ms))
        .close();
}

/// `GetCallerIdentity`'s `UserId`: a session's (`AROA…:<session>`, or its user's id), a
/// user's id, the account id for the root. A key IAM does not know (the functions' own
/// pair) is described from its ARN.
fn user_id(iam: &IamService, c: &Caller) -> String {
    if let Ok(Some(s)) = iam.session(&c.access_key_id) {
        return s.principal_id;
    }
    if let Some((_, rest)) = c.arn.split_once(":user/")
        && let Ok(u) = iam.get_user(rest.rsplit('/').next().unwrap_or(rest))
        && u.arn == c.arn
    {
        return u.id;
    }
    match c.arn.rsplit_once(":assumed-role/") {
        Some((_, role_session)) => role_session.replacen('/', ":", 1),
        None => c.account_id.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use stratus_iam::{CreateRole, EntityKind};
    use stratus_protocol::RequestBody;

    use super::*;

    fn service() -> (IamService, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = stratus_store::Store::open(dir.path())
            .unwrap()
            .namespace("iam");
        let scope = stratus_aws::Scope {
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
        };
        (IamService::new(store, scope), dir)
    }

    async fn call(body: &str, arn: &str) -> (StatusCode, String) {
        let (iam, _dir) = service();
        call_with(&iam, body, arn, "AKID").await
    }

    async fn call_with(iam: &IamService, body: &str, arn: &str, key: &str) -> (StatusCode, String) {
        let (parts, ()) = http::Request::builder()
            .method("POST")
            .uri("/")
            .body(())
            .unwrap()
            .into_parts();
        let req = AwsRequest {
            parts,
            body: RequestBody::Buffered(body.to_owned().into()),
            caller: Caller {
                access_key_id: key.into(),
                account_id: "123456789012".into(),
                arn: arn.into(),
            },
            request_id: "rid".into(),
            authorizer: std::sync::Arc::new(stratus_aws::AllowAll),
            region: "us-east-1".into(),
        };
        let resp = StsApi::new(iam.clone()).handle(req).await;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn get_caller_identity_names_the_authenticated_caller() {
        let (status, body) = call(
            "Action=GetCallerIdentity&Version=2011-06-15",
            "arn:aws:iam::123456789012:root",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("<Arn>arn:aws:iam::123456789012:root</Arn><UserId>123456789012</UserId><Account>123456789012</Account>"), "{body}");
        assert!(body.contains("<RequestId>rid</RequestId>"), "{body}");

        let (_, body) = call(
            "Action=GetCallerIdentity",
            "arn:aws:sts::123456789012:assumed-role/role/session",
        )
        .await;
        assert!(body.contains("<UserId>role:session</UserId>"), "{body}");
    }

    #[tokio::test]
    async fn unknown_actions_are_refused_in_the_query_envelope() {
        let (status, body) = call("Action=AssumeRoot", "arn:aws:iam::1:root").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("<Code>InvalidAction</Code>"), "{body}");
        let (_, body) = call("", "arn:aws:iam::1:root").await;
        assert!(body.contains("<Code>MissingAction</Code>"), "{body}");
    }

    #[tokio::test]
    async fn assume_role_is_refused_unless_the_trust_policy_allows_the_caller() {
        let (iam, _dir) = service();
        let role = iam
            .create_role(CreateRole {
                name: "other".into(),
                trust_policy: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:root"},"Action":"sts:AssumeRole"}]}"#.into(),
                ..Default::default()
            })
            .unwrap();
        let body = format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=s1",
            role.arn
        );
        let (status, body) = call_with(&iam, &body, "arn:aws:iam::123456789012:root", "AKID").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("<Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:root is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::123456789012:role/other</Message>"), "{body}");
        let (status, body) = call_with(
            &iam,
            "Action=AssumeRole&RoleSessionName=s1",
            "arn:aws:iam::1:root",
            "AKID",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("<Code>ValidationError</Code>"), "{body}");
    }

    #[tokio::test]
    async fn session_tokens_come_with_credentials_and_name_their_user() {
        let (iam, _dir) = service();
        let alice = iam.create_user("alice", None, vec![]).unwrap();
        iam.put_inline_policy(EntityKind::User, "alice", "p", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#).unwrap();
        let (status, body) = call_with(
            &iam,
            "Action=GetSessionToken&DurationSeconds=900",
            &alice.arn,
            "AKID",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            body.contains("<GetSessionTokenResult><Credentials><AccessKeyId>ASIA"),
            "{body}"
        );
        assert!(
            body.contains("<SessionToken>") && body.contains("<Expiration>"),
            "{body}"
        );
        let key = body
            .split("<AccessKeyId>")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap()
            .to_owned();
        // A request signed with the session's key: its UserId is the user's.
        let (_, body) = call_with(&iam, "Action=GetCallerIdentity", &alice.arn, &key).await;
        assert!(
            body.contains(&format!("<UserId>{}</UserId>", alice.id)),
            "{body}"
        );
    }
}
