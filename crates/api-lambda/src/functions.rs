//! Lambda's function operations (create, read, update, delete, tags, account settings,
//! concurrency) and the dispatch of every endpoint. Each decodes its input, calls the
//! function service on a blocking thread, and encodes the AWS output shape.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use stratus_lambda::{FunctionService, LambdaError};

use crate::error::ApiError;
use crate::router::Endpoint;
use crate::wire::*;
use crate::{
    ApiState, Authed, concurrency, event_config, invoke, layers, policy, provisioned, versions,
};

pub(crate) fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.is_empty() { &b"{}"[..] } else { body };
    serde_json::from_slice(body).map_err(ApiError::bad_json)
}

/// Decodes a body that may hold a code package (base64 in JSON, up to 70 MB): a large one on
/// the blocking pool, so that it does not hold up the threads serving invocations.
async fn parse_upload<T, I>(
    body: &bytes::Bytes,
    into: impl FnOnce(T) -> Result<I, ApiError> + Send + 'static,
) -> Result<I, ApiError>
where
    T: DeserializeOwned,
    I: Send + 'static,
{
    if body.len() <= crate::LARGE_BODY {
        return into(parse_json(body)?);
    }
    let body = body.clone();
    tokio::task::spawn_blocking(move || into(parse_json(&body)?))
        .await
        .map_err(ApiError::internal)?
}

/// Runs a service call on the blocking pool: the service does store I/O and zip checks.
pub(crate) async fn blocking<T, F>(svc: &FunctionService, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(FunctionService) -> Result<T, LambdaError> + Send + 'static,
{
    let svc = svc.clone();
    tokio::task::spawn_blocking(move || f(svc))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}

pub(crate) async fn dispatch(state: Arc<ApiState>, req: Authed) -> Response {
    match run(&state, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn run(state: &ApiState, req: Authed) -> Result<Response, ApiError> {
    let svc = &state.functions;
    match req.endpoint.clone() {
        Endpoint::CreateFunction => {
            let input = parse_upload(&req.body, CreateFunctionIn::into_input).await?;
            let view = blocking(svc, move |s| s.create(input)).await?;
            Ok(json(
                StatusCode::CREATED,
                &FunctionConfigurationOut::from_view(&view),
            ))
        }
        Endpoint::ListFunctions { marker, max_items } => {
            let max_items = max_items
                .map(|m| {
                    m.parse::<i64>().map_err(|_| {
                        ApiError::invalid_parameter(format!("MaxItems '{m}' is not a number."))
                    })
                })
                .transpose()?;
            let page = blocking(svc, move |s| s.list(marker.as_deref(), max_items)).await?;
            Ok(json(
                StatusCode::OK,
                &ListFunctionsOut {
                    functions: page
                        .functions
                        .iter()
                        .map(FunctionConfigurationOut::from_view)
                        .collect(),
                    next_marker: page.next_marker,
                },
            ))
        }
        Endpoint::GetFunction { name, qualifier } => {
            let view = blocking(svc, move |s| s.get(&name, qualifier.as_deref())).await?;
            let location = code_location(state, &req, &view.config.name, &view.config.version);
            Ok(json(
                StatusCode::OK,
                &GetFunctionOut {
                    configuration: FunctionConfigurationOut::from_view(&view),
                    code: CodeLocationOut {
                        repository_type: "S3",
                        location,
                    },
                    tags: Some(view.tags.clone()).filter(|t| !t.is_empty()),
                    concurrency: view
                        .reserved_concurrency
                        .map(|n| concurrency::ConcurrencyOut {
                            reserved_concurrent_executions: Some(n),
                        }),
                },
            ))
        }
        Endpoint::GetFunctionConfiguration { name, qualifier } => {
            let view = blocking(svc, move |s| s.get(&name, qualifier.as_deref())).await?;
            Ok(json(
                StatusCode::OK,
                &FunctionConfigurationOut::from_view(&view),
            ))
        }
        Endpoint::DeleteFunction { name, qualifier } => {
            let function =
                stratus_lambda::FunctionRef::parse(&name, qualifier.as_deref(), svc.scope());
            blocking(svc, move |s| s.delete(&name, qualifier.as_deref())).await?;
            // Its environments go with it: nothing of a deleted function runs on.
            if let (Some(invoker), Ok(f)) = (state.invoke.invoker(), function) {
                invoker.end_function(&f.name, f.qualifier.as_deref());
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Endpoint::UpdateFunctionCode { name } => {
            let input = parse_upload(&req.body, UpdateCodeIn::into_input).await?;
            let view = blocking(svc, move |s| s.update_code(&name, input)).await?;
            Ok(json(
                StatusCode::OK,
                &FunctionConfigurationOut::from_view(&view),
            ))
        }
        Endpoint::UpdateFunctionConfiguration { name } => {
            let input = parse_json::<UpdateConfigIn>(&req.body)?.into_input();
            let view = blocking(svc, move |s| s.update_config(&name, input)).await?;
            Ok(json(
                StatusCode::OK,
                &FunctionConfigurationOut::from_view(&view),
            ))
        }
        Endpoint::TagResource { resource } => {
            let input: TagResourceIn = parse_json(&req.body)?;
            blocking(svc, move |s| s.tag(&resource, input.tags)).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Endpoint::UntagResource { resource, keys } => {
            blocking(svc, move |s| s.untag(&resource, &keys)).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Endpoint::ListTags { resource } => {
            let tags = blocking(svc, move |s| s.list_tags(&resource)).await?;
            Ok(json(StatusCode::OK, &TagsOut { tags }))
        }
        Endpoint::GetAccountSettings => {
            let settings = blocking(svc, |s| s.account_settings()).await?;
            Ok(json(StatusCode::OK, &AccountSettingsOut::from(settings)))
        }
        Endpoint::PutFunctionConcurrency { name } => {
            let input: concurrency::PutConcurrencyIn = parse_json(&req.body)?;
            let n = input.reserved_concurrent_executions.ok_or_else(|| {
                ApiError::invalid_parameter("ReservedConcurrentExecutions is required.")
            })?;
            let value = blocking(svc, move |s| s.put_concurrency(&name, n)).await?;
            Ok(json(
                StatusCode::OK,
                &concurrency::ConcurrencyOut {
                    reserved_concurrent_executions: Some(value),
                },
            ))
        }
        Endpoint::GetFunctionConcurrency { name } => {
            let value = blocking(svc, move |s| s.get_concurrency(&name)).await?;
            Ok(json(
                StatusCode::OK,
                &concurrency::ConcurrencyOut {
                    reserved_concurrent_executions: value,
                },
            ))
        }
        Endpoint::EventInvokeConfig {
            method,
            name,
            qualifier,
        } => {
            let op = match method.as_str() {
                "PUT" => event_config::Op::Put,
                "POST" => event_config::Op::Update,
                "DELETE" => event_config::Op::Delete,
                _ => event_config::Op::Get,
            };
            event_config::handle(state, op, name, qualifier, &req.body).await
        }
        Endpoint::ProvisionedConcurrency {
            method,
            name,
            qualifier,
            list,
        } => {
            let op = match (method.as_str(), list) {
                ("PUT", _) => provisioned::Op::Put,
                ("DELETE", _) => provisioned::Op::Delete,
                (_, true) => provisioned::Op::List,
                _ => provisioned::Op::Get,
            };
            provisioned::handle(state, op, name, qualifier, &req.body).await
        }
        Endpoint::ListFunctionEventInvokeConfigs { name } => {
            event_config::handle(state, event_config::Op::List, name, None, &req.body).await
        }
        Endpoint::DeleteFunctionConcurrency { name } => {
            blocking(svc, move |s| s.delete_concurrency(&name)).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Endpoint::Invoke { name, qualifier } => {
            let mut req = req;
            let caller = std::mem::take(&mut req.caller);
            invoke::invoke(state, &req, caller, name, qualifier).await
        }
        ep @ (Endpoint::PublishVersion { .. }
        | Endpoint::ListVersionsByFunction { .. }
        | Endpoint::CreateAlias { .. }
        | Endpoint::GetAlias { .. }
        | Endpoint::UpdateAlias { .. }
        | Endpoint::DeleteAlias { .. }
        | Endpoint::ListAliases { .. }) => versions::handle(state, ep, &req.body).await,
        Endpoint::AddPermission { name, qualifier } => {
            policy::add(state, name, qualifier, &req.body).await
        }
        Endpoint::RemovePermission {
            name,
            statement_id,
            qualifier,
            revision_id,
        } => policy::remove(state, name, statement_id, qualifier, revision_id).await,
        Endpoint::GetPolicy { name, qualifier } => policy::get(state, name, qualifier).await,
        Endpoint::PublishLayerVersion { .. }
        | Endpoint::ListLayerVersions { .. }
        | Endpoint::ListLayers { .. }
        | Endpoint::GetLayerVersion { .. }
        | Endpoint::GetLayerVersionByArn { .. }
        | Endpoint::DeleteLayerVersion { .. }
        | Endpoint::AddLayerVersionPermission { .. }
        | Endpoint::RemoveLayerVersionPermission { .. }
        | Endpoint::GetLayerVersionPolicy { .. } => {
            layers::dispatch(state, req.endpoint, &req.body).await
        }
        Endpoint::DownloadCode { name, version } => {
            let zip = blocking(svc, move |s| {
                let view = s.get(&name, Some(&version))?;
                s.code_zip(&view.config)
            })
            .await?;
            Ok((
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, "application/zip")],
                zip,
            )
                .into_response())
        }
    }
}

/// GetFunction's `Code.Location`: a presigned URL, valid ten minutes as on AWS, that this
/// server answers with the function version's zip.
fn code_location(state: &ApiState, req: &Authed, name: &str, version: &str) -> String {
    let path = format!(
        "/_stratus/code/{}/{}",
        name,
        percent_encoding::utf8_percent_encode(version, percent_encoding::NON_ALPHANUMERIC)
    );
    crate::presign::presign_get(state, &req.host, &path, 600)
}
