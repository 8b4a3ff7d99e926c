//! Lambda layers on the wire: PublishLayerVersion, GetLayerVersion(ByArn), ListLayers,
//! ListLayerVersions, DeleteLayerVersion and the layer versions' permissions.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use stratus_lambda::{LayerStatement, LayerVersionView, PublishLayer};

use crate::ApiState;
use crate::error::ApiError;
use crate::functions::{blocking, json, parse_json};
use crate::router::{Endpoint, LayerFilter};
use crate::wire::{decode_blob, lambda_timestamp};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct LayerContentIn {
    zip_file: Option<String>,
    s3_bucket: Option<String>,
    s3_key: Option<String>,
    s3_object_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PublishLayerVersionIn {
    description: Option<String>,
    content: Option<LayerContentIn>,
    compatible_runtimes: Vec<String>,
    compatible_architectures: Vec<String>,
    license_info: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AddLayerVersionPermissionIn {
    statement_id: Option<String>,
    action: Option<String>,
    principal: Option<String>,
    organization_id: Option<String>,
}

/// `LayerVersionContentOutput`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ContentOut {
    code_sha256: String,
    code_size: u64,
}

/// GetLayerVersion's and PublishLayerVersion's output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct LayerVersionOut {
    content: ContentOut,
    layer_arn: String,
    layer_version_arn: String,
    description: String,
    created_date: String,
    version: u32,
    compatible_runtimes: Vec<String>,
    compatible_architectures: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    license_info: Option<String>,
}

impl LayerVersionOut {
    fn from_view(v: LayerVersionView) -> LayerVersionOut {
        let l = v.layer;
        LayerVersionOut {
            content: ContentOut {
                code_sha256: l.code_sha256,
                code_size: l.code_size,
            },
            layer_arn: v.layer_arn,
            layer_version_arn: v.layer_version_arn,
            description: l.description,
            created_date: lambda_timestamp(l.created_ms),
            version: l.version,
            compatible_runtimes: l.compatible_runtimes,
            compatible_architectures: l.compatible_architectures,
            license_info: l.license_info,
        }
    }
}

/// `LayerVersionsListItem`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct LayerVersionItem {
    layer_version_arn: String,
    version: u32,
    description: String,
    created_date: String,
    compatible_runtimes: Vec<String>,
    compatible_architectures: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    license_info: Option<String>,
}

impl LayerVersionItem {
    fn from_view(v: LayerVersionView) -> LayerVersionItem {
        let l = v.layer;
        LayerVersionItem {
            layer_version_arn: v.layer_version_arn,
            version: l.version,
            description: l.description,
            created_date: lambda_timestamp(l.created_ms),
            compatible_runtimes: l.compatible_runtimes,
            compatible_architectures: l.compatible_architectures,
            license_info: l.license_info,
        }
    }
}

/// `LayersListItem`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct LayerItem {
    layer_name: String,
    layer_arn: String,
    latest_matching_version: LayerVersionItem,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListLayersOut {
    layers: Vec<LayerItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListLayerVersionsOut {
    layer_versions: Vec<LayerVersionItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct StatementOut {
    statement: String,
    revision_id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyOut {
    policy: String,
    revision_id: String,
}

/// A `VersionNumber` path member.
fn version_number(v: &str) -> Result<u32, ApiError> {
    v.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            format!(
                "1 validation error detected: Value '{v}' at 'versionNumber' failed to satisfy \
                 constraint: Member must be a number"
            ),
        )
    })
}

fn max_items(m: Option<String>) -> Result<Option<i64>, ApiError> {
    m.map(|m| {
        m.parse::<i64>()
            .map_err(|_| ApiError::invalid_parameter(format!("MaxItems '{m}' is not a number.")))
    })
    .transpose()
}

/// The model's wording for a required member that is missing.
fn missing(field: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "ValidationException",
        format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: \
             Member must not be null"
        ),
    )
}

fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value.ok_or_else(|| missing(field))
}

pub(crate) async fn dispatch(
    state: &ApiState,
    endpoint: Endpoint,
    body: &bytes::Bytes,
) -> Result<Response, ApiError> {
    let svc = &state.functions;
    match endpoint {
        Endpoint::PublishLayerVersion { layer } => {
            let input: PublishLayerVersionIn = if body.len() <= crate::LARGE_BODY {
                parse_json(body)?
            } else {
                let body = body.clone();
                tokio::task::spawn_blocking(move || parse_json(&body))
                    .await
                    .map_err(ApiError::internal)??
            };
            let c = input.content.ok_or_else(|| missing("content"))?;
            let publish = PublishLayer {
                name: layer,
                description: input.description,
                unsupported_code_source: (c.s3_bucket.is_some()
                    || c.s3_key.is_some()
                    || c.s3_object_version.is_some())
                .then_some("S3Bucket"),
                zip_file: decode_blob(c.zip_file)?,
                compatible_runtimes: input.compatible_runtimes,
                compatible_architectures: input.compatible_architectures,
                license_info: input.license_info,
            };
            let view = blocking(svc, move |s| s.publish_layer_version(publish)).await?;
            Ok(json(StatusCode::CREATED, &LayerVersionOut::from_view(view)))
        }
        Endpoint::GetLayerVersion { layer, version } => {
            let version = version_number(&version)?;
            let view = blocking(svc, move |s| s.get_layer_version(&layer, version)).await?;
            Ok(json(StatusCode::OK, &LayerVersionOut::from_view(view)))
        }
        Endpoint::GetLayerVersionByArn { arn } => {
            let view = blocking(svc, move |s| s.get_layer_version_by_arn(&arn)).await?;
            Ok(json(StatusCode::OK, &LayerVersionOut::from_view(view)))
        }
        Endpoint::ListLayers { filter } => {
            let LayerFilter {
                runtime,
                architecture,
                marker,
                max_items: m,
            } = filter;
            let m = max_items(m)?;
            let page = blocking(svc, move |s| {
                s.list_layers(
                    runtime.as_deref(),
                    architecture.as_deref(),
                    marker.as_deref(),
                    m,
                )
            })
            .await?;
            let layers = page
                .layers
                .into_iter()
                .map(|v| LayerItem {
                    layer_name: v.layer.name.clone(),
                    layer_arn: v.layer_arn.clone(),
                    latest_matching_version: LayerVersionItem::from_view(v),
                })
                .collect();
            Ok(json(
                StatusCode::OK,
                &ListLayersOut {
                    layers,
                    next_marker: page.next_marker,
                },
            ))
        }
        Endpoint::ListLayerVersions { layer, filter } => {
            let LayerFilter {
                runtime,
                architecture,
                marker,
                max_items: m,
            } = filter;
            let m = max_items(m)?;
            let page = blocking(svc, move |s| {
                s.list_layer_versions(
                    &layer,
                    runtime.as_deref(),
                    architecture.as_deref(),
                    marker.as_deref(),
                    m,
                )
            })
            .await?;
            Ok(json(
                StatusCode::OK,
                &ListLayerVersionsOut {
                    layer_versions: page
                        .layers
                        .into_iter()
                        .map(LayerVersionItem::from_view)
                        .collect(),
                    next_marker: page.next_marker,
                },
            ))
        }
        Endpoint::DeleteLayerVersion { layer, version } => {
            let version = version_number(&version)?;
            blocking(svc, move |s| s.delete_layer_version(&layer, version)).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Endpoint::AddLayerVersionPermission {
            layer,
            version,
            revision_id,
        } => {
            let version = version_number(&version)?;
            let input: AddLayerVersionPermissionIn = parse_json(body)?;
            let statement = LayerStatement {
                sid: required(input.statement_id, "statementId")?,
                action: required(input.action, "action")?,
                principal: required(input.principal, "principal")?,
                organization_id: input.organization_id,
            };
            let (statement, revision_id) = blocking(svc, move |s| {
                s.add_layer_version_permission(&layer, version, statement, revision_id.as_deref())
            })
            .await?;
            Ok(json(
                StatusCode::CREATED,
                &StatementOut {
                    statement,
                    revision_id,
                },
            ))
        }
        Endpoint::RemoveLayerVersionPermission {
            layer,
            version,
            statement_id,
            revision_id,
        } => {
            let version = version_number(&version)?;
            blocking(svc, move |s| {
                s.remove_layer_version_permission(
                    &layer,
                    version,
                    &statement_id,
                    revision_id.as_deref(),
                )
            })
            .await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Endpoint::GetLayerVersionPolicy { layer, version } => {
            let version = version_number(&version)?;
            let p = blocking(svc, move |s| s.get_layer_version_policy(&layer, version)).await?;
            Ok(json(
                StatusCode::OK,
                &PolicyOut {
                    policy: p.policy,
                    revision_id: p.revision_id,
                },
            ))
        }
        _ => Err(ApiError::unknown_operation()),
    }
}
