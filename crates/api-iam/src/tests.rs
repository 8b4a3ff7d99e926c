//! Requests in, XML out: shapes, lists, pages, and errors in the query envelope.
#![allow(clippy::unwrap_used)]

use stratus_protocol::{Caller, RequestBody};

use super::*;

struct Fixture {
    api: IamApi,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = stratus_store::Store::open(dir.path())
        .unwrap()
        .namespace("iam");
    let scope = stratus_aws::Scope {
        region: "us-east-1".into(),
        account_id: "123456789012".into(),
    };
    Fixture {
        api: IamApi::new(IamService::new(store, scope)),
        _dir: dir,
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Fixture {
    async fn call(&self, pairs: &[(&str, &str)]) -> (StatusCode, String) {
        self.call_as(pairs, "arn:aws:iam::123456789012:root").await
    }

    async fn call_as(&self, pairs: &[(&str, &str)], arn: &str) -> (StatusCode, String) {
        let (parts, ()) = http::Request::builder()
            .method("POST")
            .uri("/")
            .body(())
            .unwrap()
            .into_parts();
        let req = AwsRequest {
            parts,
            body: RequestBody::Buffered(form(pairs).into()),
            caller: Caller {
                access_key_id: "AKID".into(),
                account_id: "123456789012".into(),
                arn: arn.into(),
            },
            request_id: "rid".into(),
            authorizer: std::sync::Arc::new(stratus_aws::AllowAll),
            region: "us-east-1".into(),
        };
        let resp = self.api.handle(req).await;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }
}

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

#[tokio::test]
async fn roles_come_back_with_their_documents_url_encoded() {
    let f = fixture();
    let (status, body) = f
        .call(&[
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", "exec"),
            ("AssumeRolePolicyDocument", TRUST),
            ("Tags.member.1.Key", "team"),
            ("Tags.member.1.Value", "a"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("<CreateRoleResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><CreateRoleResult><Role><Path>/</Path><RoleName>exec</RoleName><RoleId>AROA"),
        "{body}"
    );
    assert!(
        body.contains("<AssumeRolePolicyDocument>%7B%22Version%22%3A%222012-10-17%22"),
        "{body}"
    );
    assert!(
        body.contains("<Tags><member><Key>team</Key><Value>a</Value></member></Tags></Role></CreateRoleResult><ResponseMetadata><RequestId>rid</RequestId></ResponseMetadata></CreateRoleResponse>"),
        "{body}"
    );
    let (_, body) = f.call(&[("Action", "GetRole"), ("RoleName", "exec")]).await;
    assert!(
        body.contains("<RoleLastUsed></RoleLastUsed></Role></GetRoleResult>"),
        "{body}"
    );
}

#[tokio::test]
async fn errors_use_the_models_codes_and_statuses() {
    let f = fixture();
    let (status, body) = f
        .call(&[("Action", "GetUser"), ("UserName", "nobody")])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body.contains("<Type>Sender</Type><Code>NoSuchEntity</Code><Message>The user with name nobody cannot be found.</Message>"),
        "{body}"
    );
    f.call(&[("Action", "CreateUser"), ("UserName", "u")]).await;
    let (status, body) = f.call(&[("Action", "CreateUser"), ("UserName", "u")]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("<Code>EntityAlreadyExists</Code>"), "{body}");
    let (status, body) = f.call(&[("Action", "CreateUser")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("<Code>ValidationError</Code>"), "{body}");
    assert!(body.contains("&apos;userName&apos;"), "{body}");
    let (status, body) = f.call(&[("Action", "CreateAccessKey")]).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "root must name the user: {body}"
    );
    let (status, body) = f.call(&[("Action", "Frobnicate")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("<Code>InvalidAction</Code>"), "{body}");
}

#[tokio::test]
async fn lists_are_members_and_pages_carry_a_marker() {
    let f = fixture();
    for name in ["a", "b", "c"] {
        f.call(&[("Action", "CreateUser"), ("UserName", name)])
            .await;
    }
    let (_, body) = f.call(&[("Action", "ListUsers"), ("MaxItems", "2")]).await;
    assert!(
        body.contains("<Users><member><Path>/</Path><UserName>a</UserName>"),
        "{body}"
    );
    assert!(
        body.contains("<IsTruncated>true</IsTruncated><Marker>b</Marker>"),
        "{body}"
    );
    let (_, body) = f
        .call(&[("Action", "ListUsers"), ("MaxItems", "2"), ("Marker", "b")])
        .await;
    assert!(body.contains("<UserName>c</UserName>"), "{body}");
    assert!(body.contains("<IsTruncated>false</IsTruncated>"), "{body}");

    f.call(&[
        ("Action", "PutUserPolicy"),
        ("UserName", "a"),
        ("PolicyName", "p1"),
        ("PolicyDocument", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#),
    ])
    .await;
    let (_, body) = f
        .call(&[("Action", "ListUserPolicies"), ("UserName", "a")])
        .await;
    assert!(
        body.contains("<PolicyNames><member>p1</member></PolicyNames>"),
        "{body}"
    );
    let (_, body) = f
        .call(&[
            ("Action", "GetUserPolicy"),
            ("UserName", "a"),
            ("PolicyName", "p1"),
        ])
        .await;
    assert!(
        body.contains("<UserName>a</UserName><PolicyName>p1</PolicyName><PolicyDocument>%7B"),
        "{body}"
    );
}

#[tokio::test]
async fn a_user_caller_is_the_default_user_of_key_operations() {
    let f = fixture();
    f.call(&[("Action", "CreateUser"), ("UserName", "alice")])
        .await;
    let alice = "arn:aws:iam::123456789012:user/alice";
    let (status, body) = f.call_as(&[("Action", "CreateAccessKey")], alice).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("<UserName>alice</UserName><AccessKeyId>AKIA"),
        "{body}"
    );
    assert!(body.contains("<SecretAccessKey>"), "{body}");
    let (_, body) = f.call_as(&[("Action", "ListAccessKeys")], alice).await;
    assert!(
        body.contains("<AccessKeyMetadata><member><UserName>alice</UserName>"),
        "{body}"
    );
    assert!(!body.contains("SecretAccessKey"), "{body}");
    let (_, body) = f.call_as(&[("Action", "GetUser")], alice).await;
    assert!(body.contains("<UserName>alice</UserName>"), "{body}");
    let (_, body) = f.call(&[("Action", "GetUser")]).await;
    assert!(
        body.contains("<Arn>arn:aws:iam::123456789012:root</Arn>"),
        "{body}"
    );
}

#[test]
fn every_kinded_operation_names_its_entity_and_verb() {
    for (name, verb, kind) in KINDED {
        let noun = match kind {
            EntityKind::User => "User",
            EntityKind::Group => "Group",
            EntityKind::Role => "Role",
        };
        assert!(name.contains(noun), "{name}");
        let prefix = format!("{verb:?}");
        assert!(name.starts_with(&prefix), "{name} {prefix}");
    }
    assert_eq!(KINDED.len(), 21);
}
