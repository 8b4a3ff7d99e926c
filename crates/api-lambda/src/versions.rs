//! PublishVersion, ListVersionsByFunction and the alias operations (CreateAlias, GetAlias,
//! UpdateAlias, DeleteAlias, ListAliases): shapes and handlers.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use stratus_lambda::{AliasView, CreateAlias, PublishVersion, UpdateAlias};

use crate::ApiState;
use crate::error::ApiError;
use crate::functions::{blocking, json, parse_json};
use crate::router::Endpoint;
use crate::wire::FunctionConfigurationOut;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PublishVersionIn {
    code_sha256: Option<String>,
    description: Option<String>,
    revision_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
struct RoutingConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    additional_version_weights: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateAliasIn {
    name: Option<String>,
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<RoutingConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UpdateAliasIn {
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<RoutingConfig>,
    revision_id: Option<String>,
}

/// `AliasConfiguration`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct AliasConfigurationOut {
    alias_arn: String,
    name: String,
    function_version: String,
    description: String,
    /// Present only when the alias routes to a second version.
    #[serde(skip_serializing_if = "Option::is_none")]
    routing_config: Option<RoutingConfig>,
    revision_id: String,
}

impl From<AliasView> for AliasConfigurationOut {
    fn from(a: AliasView) -> AliasConfigurationOut {
        AliasConfigurationOut {
            alias_arn: a.arn,
            name: a.name,
            function_version: a.function_version,
            description: a.description,
            routing_config: (!a.routing.is_empty()).then_some(RoutingConfig {
                additional_version_weights: Some(a.routing),
            }),
            revision_id: a.revision_id,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListVersionsOut {
    versions: Vec<FunctionConfigurationOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListAliasesOut {
    aliases: Vec<AliasConfigurationOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
}

fn max_items(raw: Option<String>) -> Result<Option<i64>, ApiError> {
    raw.map(|m| {
        m.parse::<i64>()
            .map_err(|_| ApiError::invalid_parameter(format!("MaxItems '{m}' is not a number.")))
    })
    .transpose()
}

/// A required member the body left out: the model's "must not be null" validation error.
fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            format!(
                "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
            ),
        )
    })
}

fn routing(r: Option<RoutingConfig>) -> Option<BTreeMap<String, f64>> {
    r.map(|r| r.additional_version_weights.unwrap_or_default())
}

/// Runs one of this module's endpoints; `run` hands over only these variants.
pub(crate) async fn handle(
    state: &ApiState,
    endpoint: Endpoint,
    body: &[u8],
) -> Result<Response, ApiError> {
    let svc = &state.functions;
    match endpoint {
        Endpoint::PublishVersion { name } => {
            let input: PublishVersionIn = parse_json(body)?;
            let input = PublishVersion {
                code_sha256: input.code_sha256,
                description: input.description,
                revision_id: input.revision_id,
            };
            let view = blocking(svc, move |s| s.publish_version(&name, input)).await?;
            Ok(json(
                StatusCode::CREATED,
                &FunctionConfigurationOut::from_view(&view),
            ))
        }
        Endpoint::ListVersionsByFunction {
            name,
            marker,
            max_items: raw,
        } => {
            let n = max_items(raw)?;
            let page = blocking(svc, move |s| s.list_versions(&name, marker.as_deref(), n)).await?;
            Ok(json(
                StatusCode::OK,
                &ListVersionsOut {
                    versions: page
                        .versions
                        .iter()
                        .map(FunctionConfigurationOut::from_view)
                        .collect(),
                    next_marker: page.next_marker,
                },
            ))
        }
        Endpoint::CreateAlias { name } => {
            let input: CreateAliasIn = parse_json(body)?;
            let input = CreateAlias {
                name: required(input.name, "name")?,
                function_version: required(input.function_version, "functionVersion")?,
                description: input.description,
                routing: routing(input.routing_config),
            };
            let alias = blocking(svc, move |s| s.create_alias(&name, input)).await?;
            Ok(json(
                StatusCode::CREATED,
                &AliasConfigurationOut::from(alias),
            ))
        }
        Endpoint::GetAlias { name, alias } => {
            let alias = blocking(svc, move |s| s.get_alias(&name, &alias)).await?;
            Ok(json(StatusCode::OK, &AliasConfigurationOut::from(alias)))
        }
        Endpoint::UpdateAlias { name, alias } => {
            let input: UpdateAliasIn = parse_json(body)?;
            let input = UpdateAlias {
                function_version: input.function_version,
                description: input.description,
                routing: routing(input.routing_config),
                revision_id: input.revision_id,
            };
            let alias = blocking(svc, move |s| s.update_alias(&name, &alias, input)).await?;
            Ok(json(StatusCode::OK, &AliasConfigurationOut::from(alias)))
        }
        Endpoint::DeleteAlias { name, alias } => {
            blocking(svc, move |s| s.delete_alias(&name, &alias)).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Endpoint::ListAliases {
            name,
            function_version,
            marker,
            max_items: raw,
        } => {
            let n = max_items(raw)?;
            let page = blocking(svc, move |s| {
                s.list_aliases(&name, function_version.as_deref(), marker.as_deref(), n)
            })
            .await?;
            Ok(json(
                StatusCode::OK,
                &ListAliasesOut {
                    aliases: page
                        .aliases
                        .into_iter()
                        .map(AliasConfigurationOut::from)
                        .collect(),
                    next_marker: page.next_marker,
                },
            ))
        }
        other => Err(ApiError::internal(format!(
            "versions::handle got {other:?}"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn alias_configuration_omits_routing_when_there_is_none() {
        let mut view = AliasView {
            arn: "arn:aws:lambda:us-east-1:000000000000:function:f:live".into(),
            name: "live".into(),
            function_version: "1".into(),
            description: String::new(),
            routing: BTreeMap::new(),
            revision_id: "r".into(),
        };
        let plain = serde_json::to_value(AliasConfigurationOut::from(view.clone())).unwrap();
        assert_eq!(
            plain,
            serde_json::json!({
                "AliasArn": "arn:aws:lambda:us-east-1:000000000000:function:f:live",
                "Name": "live",
                "FunctionVersion": "1",
                "Description": "",
                "RevisionId": "r"
            })
        );
        view.routing.insert("2".into(), 0.25);
        let weighted = serde_json::to_value(AliasConfigurationOut::from(view)).unwrap();
        assert_eq!(
            weighted["RoutingConfig"],
            serde_json::json!({"AdditionalVersionWeights": {"2": 0.25}})
        );
    }
}
