//! STS (`sts/2011-06-15`, query protocol): `GetCallerIdentity`.
//!
//! The caller is the one the gateway authenticated, so this needs no state of its own;
//! identities, roles and `AssumeRole` come with IAM and get a domain crate then.
//!
//! Invariant: wire only. No state, no knowledge of how keys are stored.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use stratus_protocol::query::Params;
use stratus_protocol::xml::Writer;
use stratus_protocol::{
    AwsError, AwsRequest, BodyPolicy, BoxFuture, Protocol, Service, ServiceInfo,
};

const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// STS, as the front door sees it.
#[derive(Debug, Clone, Default)]
pub struct StsApi;

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
        Box::pin(async move {
            let params =
                Params::from_request(req.parts.uri.query().unwrap_or(""), &req.body.bytes());
            match params.action() {
                Some("GetCallerIdentity") => get_caller_identity(&req),
                Some(other) => AwsError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidAction",
                    format!("Could not find operation {other} for version 2011-06-15"),
                )
                .render(Protocol::Query, &req.request_id),
                None => AwsError::new(StatusCode::BAD_REQUEST, "MissingAction", "Missing Action")
                    .render(Protocol::Query, &req.request_id),
            }
        })
    }
}

fn get_caller_identity(req: &AwsRequest) -> Response {
    let c = &req.caller;
    // A root key's user id is the account id; a session's, the role's id and session name.
    let user_id = match c.arn.rsplit_once(":assumed-role/") {
        Some((_, role_session)) => role_session.replacen('/', ":", 1),
        None => c.account_id.clone(),
    };
    let mut w = Writer::new();
    w.open_ns("GetCallerIdentityResponse", XMLNS)
        .open("GetCallerIdentityResult")
        .leaf("Arn", &c.arn)
        .leaf("UserId", &user_id)
        .leaf("Account", &c.account_id)
        .close()
        .open("ResponseMetadata")
        .leaf("RequestId", &req.request_id);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml")],
        w.finish(),
    )
        .into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use stratus_protocol::{Caller, RequestBody};

    use super::*;

    async fn call(body: &'static str, arn: &str) -> (StatusCode, String) {
        let (parts, ()) = http::Request::builder()
            .method("POST")
            .uri("/")
            .body(())
            .unwrap()
            .into_parts();
        let req = AwsRequest {
            parts,
            body: RequestBody::Buffered(body.into()),
            caller: Caller {
                access_key_id: "AKID".into(),
                account_id: "123456789012".into(),
                arn: arn.into(),
            },
            request_id: "rid".into(),
            authorizer: std::sync::Arc::new(stratus_aws::AllowAll),
            region: "us-east-1".into(),
        };
        let resp = StsApi.handle(req).await;
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
}
