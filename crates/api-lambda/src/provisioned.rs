//! Put/Get/Delete/ListProvisionedConcurrencyConfig(s).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use stratus_lambda::ProvisionedConfig;

use crate::ApiState;
use crate::error::ApiError;
use crate::functions::{blocking, json, parse_json};
use crate::wire::lambda_timestamp;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PutIn {
    provisioned_concurrent_executions: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    function_arn: Option<String>,
    requested_provisioned_concurrent_executions: u32,
    available_provisioned_concurrent_executions: u32,
    allocated_provisioned_concurrent_executions: u32,
    status: &'static str,
    last_modified: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListOut {
    provisioned_concurrency_configs: Vec<ConfigOut>,
}

/// The configuration's output shape; `allocated` counts initialised environments.
fn out(state: &ApiState, c: &ProvisionedConfig, allocated: u32, with_arn: bool) -> ConfigOut {
    let allocated = allocated.min(c.requested);
    ConfigOut {
        function_arn: with_arn.then(|| {
            state
                .functions
                .scope()
                .qualified_arn(&c.function_name, &c.qualifier)
        }),
        requested_provisioned_concurrent_executions: c.requested,
        available_provisioned_concurrent_executions: allocated,
        allocated_provisioned_concurrent_executions: allocated,
        status: if allocated >= c.requested {
            "READY"
        } else {
            "IN_PROGRESS"
        },
        last_modified: lambda_timestamp(c.last_modified_ms),
    }
}

/// Environments allocated now for `c` (its qualifier followed to a version).
fn allocated(
    state: &ApiState,
    svc: &stratus_lambda::FunctionService,
    c: &ProvisionedConfig,
) -> u32 {
    match (
        &state.provisioner,
        svc.get(&c.function_name, Some(&c.qualifier)),
    ) {
        (Some(p), Ok(view)) => p.allocated(&view.config),
        _ => 0,
    }
}

pub(crate) enum Op {
    Put,
    Get,
    Delete,
    List,
}

pub(crate) async fn handle(
    state: &ApiState,
    op: Op,
    name: String,
    qualifier: Option<String>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let svc = &state.functions;
    match op {
        Op::Put => {
            let n = parse_json::<PutIn>(body)?
                .provisioned_concurrent_executions
                .ok_or_else(|| {
                    ApiError::invalid_parameter("ProvisionedConcurrentExecutions is required.")
                })?;
            let c = blocking(svc, move |s| {
                s.put_provisioned(&name, qualifier.as_deref(), n)
            })
            .await?;
            let n = allocated(state, svc, &c);
            Ok(json(StatusCode::ACCEPTED, &out(state, &c, n, false)))
        }
        Op::Get => {
            let c = blocking(svc, move |s| s.get_provisioned(&name, qualifier.as_deref())).await?;
            let n = allocated(state, svc, &c);
            Ok(json(StatusCode::OK, &out(state, &c, n, false)))
        }
        Op::Delete => {
            blocking(svc, move |s| {
                s.delete_provisioned(&name, qualifier.as_deref())
            })
            .await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Op::List => {
            let list = blocking(svc, move |s| s.list_provisioned(Some(&name))).await?;
            Ok(json(
                StatusCode::OK,
                &ListOut {
                    provisioned_concurrency_configs: list
                        .iter()
                        .map(|c| out(state, c, allocated(state, svc, c), true))
                        .collect(),
                },
            ))
        }
    }
}
