//! Put/Update/Get/Delete/ListFunctionEventInvokeConfig(s): shapes and handlers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use stratus_lambda::{EventInvokeConfig, EventInvokeConfigInput};

use crate::ApiState;
use crate::error::ApiError;
use crate::functions::{blocking, json, parse_json};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DestinationIn {
    destination: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DestinationConfigIn {
    on_success: Option<DestinationIn>,
    on_failure: Option<DestinationIn>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct EventInvokeConfigIn {
    maximum_retry_attempts: Option<i64>,
    maximum_event_age_in_seconds: Option<i64>,
    destination_config: Option<DestinationConfigIn>,
}

impl EventInvokeConfigIn {
    fn into_input(self) -> EventInvokeConfigInput {
        let d = self.destination_config.unwrap_or_default();
        // A destination object without `Destination` clears it.
        let dest = |o: Option<DestinationIn>| o.map(|o| o.destination.unwrap_or_default());
        EventInvokeConfigInput {
            maximum_retry_attempts: self.maximum_retry_attempts,
            maximum_event_age_seconds: self.maximum_event_age_in_seconds,
            on_success: dest(d.on_success),
            on_failure: dest(d.on_failure),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DestinationOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    destination: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DestinationConfigOut {
    on_success: DestinationOut,
    on_failure: DestinationOut,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct EventInvokeConfigOut {
    /// REST-JSON timestamps are epoch seconds.
    last_modified: f64,
    function_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    maximum_retry_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    maximum_event_age_in_seconds: Option<u32>,
    destination_config: DestinationConfigOut,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListOut {
    function_event_invoke_configs: Vec<EventInvokeConfigOut>,
}

fn out(state: &ApiState, c: EventInvokeConfig) -> EventInvokeConfigOut {
    EventInvokeConfigOut {
        last_modified: c.last_modified_ms as f64 / 1000.0,
        function_arn: state
            .functions
            .scope()
            .qualified_arn(&c.function_name, &c.qualifier),
        maximum_retry_attempts: c.maximum_retry_attempts,
        maximum_event_age_in_seconds: c.maximum_event_age_seconds,
        destination_config: DestinationConfigOut {
            on_success: DestinationOut {
                destination: c.on_success,
            },
            on_failure: DestinationOut {
                destination: c.on_failure,
            },
        },
    }
}

pub(crate) enum Op {
    Put,
    Update,
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
        Op::Put | Op::Update => {
            let input = parse_json::<EventInvokeConfigIn>(body)?.into_input();
            let update = matches!(op, Op::Update);
            let c = blocking(svc, move |s| {
                if update {
                    s.update_event_config(&name, qualifier.as_deref(), input)
                } else {
                    s.put_event_config(&name, qualifier.as_deref(), input)
                }
            })
            .await?;
            Ok(json(StatusCode::OK, &out(state, c)))
        }
        Op::Get => {
            let c = blocking(svc, move |s| {
                s.get_event_config(&name, qualifier.as_deref())
            })
            .await?;
            Ok(json(StatusCode::OK, &out(state, c)))
        }
        Op::Delete => {
            blocking(svc, move |s| {
                s.delete_event_config(&name, qualifier.as_deref())
            })
            .await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Op::List => {
            let list = blocking(svc, move |s| s.list_event_configs(&name)).await?;
            Ok(json(
                StatusCode::OK,
                &ListOut {
                    function_event_invoke_configs: list
                        .into_iter()
                        .map(|c| out(state, c))
                        .collect(),
                },
            ))
        }
    }
}
