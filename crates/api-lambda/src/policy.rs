//! AddPermission, RemovePermission and GetPolicy: a function's resource-based policy on the
//! wire. The statements and the document are JSON text inside the JSON body, as AWS sends them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use stratus_lambda::AddPermission;

use crate::ApiState;
use crate::error::ApiError;
use crate::functions::{blocking, json, parse_json};

/// AddPermission's body. `Qualifier` is in the query string.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AddPermissionIn {
    statement_id: Option<String>,
    action: Option<String>,
    principal: Option<String>,
    source_arn: Option<String>,
    source_account: Option<String>,
    #[serde(rename = "PrincipalOrgID")]
    principal_org_id: Option<String>,
    function_url_auth_type: Option<String>,
    invoked_via_function_url: Option<bool>,
    event_source_token: Option<String>,
    revision_id: Option<String>,
}

/// The model's wording for a required member that is missing.
fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            format!(
                "1 validation error detected: Value null at '{field}' failed to satisfy constraint: \
                 Member must not be null"
            ),
        )
    })
}

impl AddPermissionIn {
    fn into_input(self) -> Result<AddPermission, ApiError> {
        Ok(AddPermission {
            statement_id: required(self.statement_id, "statementId")?,
            action: required(self.action, "action")?,
            principal: required(self.principal, "principal")?,
            source_arn: self.source_arn,
            source_account: self.source_account,
            principal_org_id: self.principal_org_id,
            function_url_auth_type: self.function_url_auth_type,
            invoked_via_function_url: self.invoked_via_function_url,
            event_source_token: self.event_source_token,
            revision_id: self.revision_id,
        })
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct AddPermissionOut {
    statement: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetPolicyOut {
    policy: String,
    revision_id: String,
}

pub(crate) async fn add(
    state: &ApiState,
    name: String,
    qualifier: Option<String>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let input = parse_json::<AddPermissionIn>(body)?.into_input()?;
    let statement = blocking(&state.functions, move |s| {
        s.add_permission(&name, qualifier.as_deref(), input)
    })
    .await?;
    Ok(json(StatusCode::CREATED, &AddPermissionOut { statement }))
}

pub(crate) async fn remove(
    state: &ApiState,
    name: String,
    sid: String,
    qualifier: Option<String>,
    revision_id: Option<String>,
) -> Result<Response, ApiError> {
    blocking(&state.functions, move |s| {
        s.remove_permission(&name, qualifier.as_deref(), &sid, revision_id.as_deref())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn get(
    state: &ApiState,
    name: String,
    qualifier: Option<String>,
) -> Result<Response, ApiError> {
    let view = blocking(&state.functions, move |s| {
        s.get_policy(&name, qualifier.as_deref())
    })
    .await?;
    Ok(json(
        StatusCode::OK,
        &GetPolicyOut {
            policy: view.policy,
            revision_id: view.revision_id,
        },
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn add_permission_body_decodes_every_member() {
        let body = br#"{"StatementId":"s","Action":"lambda:InvokeFunction","Principal":"s3.amazonaws.com",
            "SourceArn":"arn:aws:s3:::b","SourceAccount":"123456789012","PrincipalOrgID":"o-abcdefghij",
            "FunctionUrlAuthType":"NONE","InvokedViaFunctionUrl":true,"EventSourceToken":"t","RevisionId":"r"}"#;
        let i = parse_json::<AddPermissionIn>(body)
            .unwrap()
            .into_input()
            .unwrap();
        assert_eq!(i.statement_id, "s");
        assert_eq!(i.principal, "s3.amazonaws.com");
        assert_eq!(i.source_arn.as_deref(), Some("arn:aws:s3:::b"));
        assert_eq!(i.source_account.as_deref(), Some("123456789012"));
        assert_eq!(i.principal_org_id.as_deref(), Some("o-abcdefghij"));
        assert_eq!(i.function_url_auth_type.as_deref(), Some("NONE"));
        assert_eq!(i.invoked_via_function_url, Some(true));
        assert_eq!(i.event_source_token.as_deref(), Some("t"));
        assert_eq!(i.revision_id.as_deref(), Some("r"));
    }

    #[test]
    fn missing_required_members_are_validation_errors() {
        for (body, field) in [
            (&br#"{"Action":"*","Principal":"*"}"#[..], "statementId"),
            (br#"{"StatementId":"s","Principal":"*"}"#, "action"),
            (br#"{"StatementId":"s","Action":"*"}"#, "principal"),
        ] {
            let e = parse_json::<AddPermissionIn>(body)
                .unwrap()
                .into_input()
                .unwrap_err();
            assert_eq!(e.code, "ValidationException");
            assert!(e.message.contains(&format!("'{field}'")), "{}", e.message);
        }
    }
}
