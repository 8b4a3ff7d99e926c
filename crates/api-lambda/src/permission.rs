//! What each Lambda operation asks the authorizer for: the IAM action (`lambda:<Action>`,
//! as AWS's service authorization reference names them) and the resource, the function's
//! ARN — qualified when the request names a version or alias, as AWS matches it (a policy
//! on `...:function:f` does not cover `...:function:f:prod`; `f*` or `f:*` does).

use stratus_lambda::{FunctionRef, Scope};

use crate::router::Endpoint;

/// The action and resource of `endpoint` (whose JSON body is `body`), or `None` for
/// Stratus's own presigned code download (GetFunction, which made the URL, was authorized).
pub(crate) fn access(endpoint: &Endpoint, body: &[u8], scope: &Scope) -> Option<(String, String)> {
    let action = match endpoint {
        Endpoint::DownloadCode { .. } => return None,
        Endpoint::Invoke { .. } => "lambda:InvokeFunction".to_owned(),
        // The same permission reads a layer version however it is named.
        Endpoint::GetLayerVersionByArn { .. } => "lambda:GetLayerVersion".to_owned(),
        e => format!("lambda:{}", e.name()),
    };
    let function = |name: &str, qualifier: Option<&String>| -> String {
        match FunctionRef::parse(name, qualifier.map(String::as_str), scope) {
            Ok(r) => match &r.qualifier {
                Some(q) => scope.qualified_arn(&r.name, q),
                None => scope.function_arn(&r.name),
            },
            // A name the operation will refuse anyway: judged as written.
            Err(_) => scope.function_arn(name),
        }
    };
    // A layer named by its ARN stays that ARN; a name becomes this account's layer ARN.
    let layer = |layer: &str| -> String {
        if layer.starts_with("arn:") {
            layer.to_owned()
        } else {
            format!(
                "arn:aws:lambda:{}:{}:layer:{layer}",
                scope.region, scope.account_id
            )
        }
    };
    let resource = match endpoint {
        // As AWS's service authorization reference lists them: the listings are on `*`.
        Endpoint::ListFunctions { .. }
        | Endpoint::GetAccountSettings
        | Endpoint::ListLayers { .. }
        | Endpoint::ListLayerVersions { .. } => "*".to_owned(),
        Endpoint::PublishLayerVersion { layer: l } => layer(l),
        Endpoint::GetLayerVersionByArn { arn } => arn.clone(),
        Endpoint::GetLayerVersion { layer: l, version }
        | Endpoint::DeleteLayerVersion { layer: l, version }
        | Endpoint::AddLayerVersionPermission {
            layer: l, version, ..
        }
        | Endpoint::RemoveLayerVersionPermission {
            layer: l, version, ..
        }
        | Endpoint::GetLayerVersionPolicy { layer: l, version } => {
            format!("{}:{version}", layer(l))
        }
        Endpoint::CreateFunction => {
            let name = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("FunctionName")?.as_str().map(str::to_owned))
                .unwrap_or_default();
            function(&name, None)
        }
        Endpoint::TagResource { resource }
        | Endpoint::UntagResource { resource, .. }
        | Endpoint::ListTags { resource } => resource.clone(),
        Endpoint::GetFunction { name, qualifier }
        | Endpoint::GetFunctionConfiguration { name, qualifier }
        | Endpoint::DeleteFunction { name, qualifier }
        | Endpoint::Invoke { name, qualifier }
        | Endpoint::EventInvokeConfig {
            name, qualifier, ..
        }
        | Endpoint::ProvisionedConcurrency {
            name, qualifier, ..
        }
        | Endpoint::AddPermission { name, qualifier }
        | Endpoint::RemovePermission {
            name, qualifier, ..
        }
        | Endpoint::GetPolicy { name, qualifier } => function(name, qualifier.as_ref()),
        Endpoint::UpdateFunctionCode { name }
        | Endpoint::UpdateFunctionConfiguration { name }
        | Endpoint::PutFunctionConcurrency { name }
        | Endpoint::ListFunctionEventInvokeConfigs { name }
        | Endpoint::GetFunctionConcurrency { name }
        | Endpoint::DeleteFunctionConcurrency { name }
        | Endpoint::PublishVersion { name }
        | Endpoint::ListVersionsByFunction { name, .. }
        | Endpoint::CreateAlias { name }
        | Endpoint::ListAliases { name, .. }
        | Endpoint::GetAlias { name, .. }
        | Endpoint::UpdateAlias { name, .. }
        | Endpoint::DeleteAlias { name, .. } => function(name, None),
        Endpoint::DownloadCode { .. } => return None,
    };
    Some((action, resource))
}

/// The function and qualifier an operation that a function's own policy can grant names
/// (`lambda:InvokeFunction`, `lambda:GetFunction*`): asked when the caller's identity
/// policies do not allow it.
pub(crate) fn granted_by_function_policy(endpoint: &Endpoint) -> Option<(&str, Option<&str>)> {
    match endpoint {
        Endpoint::Invoke { name, qualifier }
        | Endpoint::GetFunction { name, qualifier }
        | Endpoint::GetFunctionConfiguration { name, qualifier } => {
            Some((name, qualifier.as_deref()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
        }
    }

    #[test]
    fn operations_ask_for_their_action_on_the_function_they_name() {
        let f = "arn:aws:lambda:us-east-1:123456789012:function:f";
        let cases = [
            (
                Endpoint::Invoke {
                    name: "f".into(),
                    qualifier: None,
                },
                &b""[..],
                "lambda:InvokeFunction",
                f.to_owned(),
            ),
            (
                Endpoint::Invoke {
                    name: "f:prod".into(),
                    qualifier: None,
                },
                b"",
                "lambda:InvokeFunction",
                format!("{f}:prod"),
            ),
            (
                Endpoint::GetFunction {
                    name: f.into(),
                    qualifier: Some("3".into()),
                },
                b"",
                "lambda:GetFunction",
                format!("{f}:3"),
            ),
            (
                Endpoint::CreateFunction,
                br#"{"FunctionName":"f","Runtime":"python3.12"}"#,
                "lambda:CreateFunction",
                f.to_owned(),
            ),
            (
                Endpoint::ListFunctions {
                    marker: None,
                    max_items: None,
                },
                b"",
                "lambda:ListFunctions",
                "*".to_owned(),
            ),
            (
                Endpoint::DeleteAlias {
                    name: "f".into(),
                    alias: "live".into(),
                },
                b"",
                "lambda:DeleteAlias",
                f.to_owned(),
            ),
        ];
        for (endpoint, body, action, resource) in cases {
            assert_eq!(
                access(&endpoint, body, &scope()),
                Some((action.to_owned(), resource)),
                "{endpoint:?}"
            );
        }
        let policy_cases = [
            (
                Endpoint::AddPermission {
                    name: "f".into(),
                    qualifier: None,
                },
                "lambda:AddPermission",
                f.to_owned(),
            ),
            (
                Endpoint::AddPermission {
                    name: "f".into(),
                    qualifier: Some("live".into()),
                },
                "lambda:AddPermission",
                format!("{f}:live"),
            ),
            (
                Endpoint::RemovePermission {
                    name: "f:2".into(),
                    statement_id: "s".into(),
                    qualifier: None,
                    revision_id: None,
                },
                "lambda:RemovePermission",
                format!("{f}:2"),
            ),
            (
                Endpoint::GetPolicy {
                    name: f.into(),
                    qualifier: Some("3".into()),
                },
                "lambda:GetPolicy",
                format!("{f}:3"),
            ),
        ];
        for (endpoint, action, resource) in policy_cases {
            assert_eq!(
                access(&endpoint, b"", &scope()),
                Some((action.to_owned(), resource)),
                "{endpoint:?}"
            );
        }
        let download = Endpoint::DownloadCode {
            name: "f".into(),
            version: "1".into(),
        };
        assert_eq!(access(&download, b"", &scope()), None);
    }
}
