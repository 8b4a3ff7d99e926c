//! CloudWatch Logs' wire: `logs/2014-03-28`, JSON 1.1, `X-Amz-Target: Logs_20140328.<Op>`.
//!
//! [`LogsApi`] decodes each operation's JSON input (`wire.rs`), calls
//! [`stratus_logs::LogService`] on the blocking pool, and encodes the output; a
//! [`stratus_logs::LogsError`] becomes the JSON 1.1 envelope with the code the error
//! carries.
//!
//! Invariant: wire only. What a group, a stream or a filter pattern is belongs to the
//! Logs service; this crate never touches the disk.

mod wire;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde::de::DeserializeOwned;
use stratus_logs::{LogService, LogsError};
use stratus_protocol::{
    AwsError, AwsRequest, BodyPolicy, BoxFuture, Protocol, Service, ServiceInfo, json,
};

use crate::wire::*;

/// PutLogEvents' batch limit is 1 MiB of events; the JSON around them (escapes, names)
/// can make the body larger.
const MAX_BODY: usize = 8 << 20;

/// CloudWatch Logs, as the front door sees it.
#[derive(Clone)]
pub struct LogsApi {
    logs: LogService,
}

impl LogsApi {
    pub fn new(logs: LogService) -> LogsApi {
        LogsApi { logs }
    }
}

impl Service for LogsApi {
    fn info(&self) -> ServiceInfo {
        ServiceInfo {
            signing_name: "logs",
            protocol: Protocol::Json11,
            targets: &["Logs_20140328"],
            body: BodyPolicy::Buffered { limit: MAX_BODY },
        }
    }

    fn handle(&self, req: AwsRequest) -> BoxFuture<Response> {
        let logs = self.logs.clone();
        Box::pin(async move {
            let op = req.target_operation().unwrap_or("").to_owned();
            let body = req.body.bytes();
            let resource = resource_of(logs.scope(), &body);
            if let Err(denied) = req.authorize(&format!("logs:{op}"), &resource) {
                return AwsError::denied(Protocol::Json11, denied)
                    .render(Protocol::Json11, &req.request_id);
            }
            let result = tokio::task::spawn_blocking(move || dispatch(&logs, &op, &body)).await;
            match result {
                Ok(Ok(value)) => json::response(Protocol::Json11, StatusCode::OK, &value),
                Ok(Err(e)) => e.render(Protocol::Json11, &req.request_id),
                Err(e) => AwsError::internal(e).render(Protocol::Json11, &req.request_id),
            }
        })
    }

    fn reset(&self) -> BoxFuture<Result<(), String>> {
        let logs = self.logs.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || logs.delete_all())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        })
    }
}

/// The resource an operation acts on, as CloudWatch Logs' ARNs name it: a stream
/// (`log-group:<g>:log-stream:<s>`), a group (`log-group:<g>:*`), or `*` for operations on
/// no one group (DescribeLogGroups). Read from the body's `logGroupName` and
/// `logStreamName`; a group named by ARN or identifier is judged as `*`.
fn resource_of(scope: &stratus_aws::Scope, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Names {
        #[serde(rename = "logGroupName")]
        group: Option<String>,
        #[serde(rename = "logStreamName")]
        stream: Option<String>,
    }
    match serde_json::from_slice::<Names>(body) {
        Ok(Names {
            group: Some(g),
            stream: Some(s),
        }) => scope.arn("logs", &format!("log-group:{g}:log-stream:{s}")),
        Ok(Names { group: Some(g), .. }) => scope.arn("logs", &format!("log-group:{g}:*")),
        _ => "*".to_owned(),
    }
}

pub(crate) fn aws_error(e: LogsError) -> AwsError {
    if e.is_server_fault() {
        let mut err = AwsError::internal(&e);
        err.code = e.code();
        return err;
    }
    AwsError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string())
}

fn input<T: DeserializeOwned>(body: &[u8]) -> Result<T, AwsError> {
    json::parse(body).map_err(|e| {
        AwsError::new(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            format!("Could not parse the request body: {e}"),
        )
    })
}

fn out<T: Serialize>(value: T) -> Result<serde_json::Value, AwsError> {
    serde_json::to_value(value).map_err(AwsError::internal)
}

fn empty() -> Result<serde_json::Value, AwsError> {
    Ok(serde_json::json!({}))
}

pub(crate) fn required<T>(value: Option<T>, member: &str) -> Result<T, AwsError> {
    value.ok_or_else(|| {
        AwsError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterException",
            format!(
                "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
            ),
        )
    })
}

/// One operation: decode, call, encode.
fn dispatch(logs: &LogService, op: &str, body: &[u8]) -> Result<serde_json::Value, AwsError> {
    let group = |name: Option<String>, id: Option<String>| {
        logs.resolve_group(name.as_deref(), id.as_deref())
            .map_err(aws_error)
    };
    match op {
        "CreateLogGroup" => {
            let i: CreateLogGroupIn = input(body)?;
            let name = required(i.log_group_name, "logGroupName")?;
            logs.create_log_group(&name, i.tags.unwrap_or_default())
                .map_err(aws_error)?;
            empty()
        }
        "DeleteLogGroup" => {
            let i: GroupIn = input(body)?;
            let name = required(i.log_group_name, "logGroupName")?;
            logs.delete_log_group(&name).map_err(aws_error)?;
            empty()
        }
        "DescribeLogGroups" => {
            let i: DescribeLogGroupsIn = input(body)?;
            let page = logs
                .describe_log_groups(&i.into_input())
                .map_err(aws_error)?;
            out(DescribeLogGroupsOut {
                log_groups: page.items.into_iter().map(LogGroupOut::from).collect(),
                next_token: page.next,
            })
        }
        "CreateLogStream" => {
            let i: StreamIn = input(body)?;
            let g = required(i.log_group_name, "logGroupName")?;
            let s = required(i.log_stream_name, "logStreamName")?;
            logs.create_log_stream(&g, &s).map_err(aws_error)?;
            empty()
        }
        "DeleteLogStream" => {
            let i: StreamIn = input(body)?;
            let g = required(i.log_group_name, "logGroupName")?;
            let s = required(i.log_stream_name, "logStreamName")?;
            logs.delete_log_stream(&g, &s).map_err(aws_error)?;
            empty()
        }
        "DescribeLogStreams" => {
            let i: DescribeLogStreamsIn = input(body)?;
            let g = group(i.log_group_name.clone(), i.log_group_identifier.clone())?;
            let page = logs
                .describe_log_streams(&i.into_input(g)?)
                .map_err(aws_error)?;
            out(DescribeLogStreamsOut {
                log_streams: page.items.into_iter().map(LogStreamOut::from).collect(),
                next_token: page.next,
            })
        }
        "PutLogEvents" => {
            let i: PutLogEventsIn = input(body)?;
            let o = logs.put_log_events(&i.into_input()?).map_err(aws_error)?;
            out(PutLogEventsOut::from(o))
        }
        "GetLogEvents" => {
            let i: GetLogEventsIn = input(body)?;
            let g = group(i.log_group_name.clone(), i.log_group_identifier.clone())?;
            let o = logs.get_log_events(&i.into_input(g)?).map_err(aws_error)?;
            out(GetLogEventsOut::from(o))
        }
        "FilterLogEvents" => {
            let i: FilterLogEventsIn = input(body)?;
            let g = group(i.log_group_name.clone(), i.log_group_identifier.clone())?;
            let o = logs
                .filter_log_events(&i.into_input(g))
                .map_err(aws_error)?;
            out(FilterLogEventsOut::from(o))
        }
        "PutRetentionPolicy" => {
            let i: RetentionIn = input(body)?;
            let g = required(i.log_group_name, "logGroupName")?;
            let days = required(i.retention_in_days, "retentionInDays")?;
            logs.put_retention_policy(&g, days).map_err(aws_error)?;
            empty()
        }
        "DeleteRetentionPolicy" => {
            let i: GroupIn = input(body)?;
            let g = required(i.log_group_name, "logGroupName")?;
            logs.delete_retention_policy(&g).map_err(aws_error)?;
            empty()
        }
        "TagLogGroup" => {
            let i: TagLogGroupIn = input(body)?;
            let g = required(i.log_group_name, "logGroupName")?;
            logs.tag_log_group(&g, &i.tags.unwrap_or_default())
                .map_err(aws_error)?;
            empty()
        }
        "UntagLogGroup" => {
            let i: UntagLogGroupIn = input(body)?;
            let g = required(i.log_group_name, "logGroupName")?;
            logs.untag_log_group(&g, &i.tags.unwrap_or_default())
                .map_err(aws_error)?;
            empty()
        }
        "ListTagsLogGroup" => {
            let i: GroupIn = input(body)?;
            let g = required(i.log_group_name, "logGroupName")?;
            let tags = logs.list_tags_log_group(&g).map_err(aws_error)?;
            Ok(serde_json::json!({ "tags": tags }))
        }
        "TagResource" => {
            let i: TagResourceIn = input(body)?;
            let arn = required(i.resource_arn, "resourceArn")?;
            logs.tag_resource(&arn, &i.tags.unwrap_or_default())
                .map_err(aws_error)?;
            empty()
        }
        "UntagResource" => {
            let i: UntagResourceIn = input(body)?;
            let arn = required(i.resource_arn, "resourceArn")?;
            logs.untag_resource(&arn, &i.tag_keys.unwrap_or_default())
                .map_err(aws_error)?;
            empty()
        }
        "ListTagsForResource" => {
            let i: TagResourceIn = input(body)?;
            let arn = required(i.resource_arn, "resourceArn")?;
            let tags: BTreeMap<String, String> =
                logs.list_tags_for_resource(&arn).map_err(aws_error)?;
            Ok(serde_json::json!({ "tags": tags }))
        }
        other => Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("Stratus's CloudWatch Logs does not implement {other:?}."),
        )),
    }
}
