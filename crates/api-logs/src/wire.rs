//! Logs' JSON shapes, as botocore's model names their members (camelCase).

use serde::{Deserialize, Serialize};
use stratus_logs::{
    DescribeLogGroupsInput, DescribeLogStreamsInput, FilterLogEventsInput, FilterLogEventsOutput,
    GetLogEventsInput, GetLogEventsOutput, InputLogEvent, LogGroup, LogStream, OrderBy,
    PutLogEventsInput, PutLogEventsOutput, Tags,
};
use stratus_protocol::AwsError;

use crate::{aws_error, required};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupIn {
    pub log_group_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateLogGroupIn {
    pub log_group_name: Option<String>,
    pub tags: Option<Tags>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamIn {
    pub log_group_name: Option<String>,
    pub log_stream_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionIn {
    pub log_group_name: Option<String>,
    pub retention_in_days: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagLogGroupIn {
    pub log_group_name: Option<String>,
    pub tags: Option<Tags>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UntagLogGroupIn {
    pub log_group_name: Option<String>,
    pub tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagResourceIn {
    pub resource_arn: Option<String>,
    pub tags: Option<Tags>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UntagResourceIn {
    pub resource_arn: Option<String>,
    pub tag_keys: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeLogGroupsIn {
    pub log_group_name_prefix: Option<String>,
    pub log_group_name_pattern: Option<String>,
    pub limit: Option<i64>,
    pub next_token: Option<String>,
}

impl DescribeLogGroupsIn {
    pub fn into_input(self) -> DescribeLogGroupsInput {
        DescribeLogGroupsInput {
            log_group_name_prefix: self.log_group_name_prefix,
            log_group_name_pattern: self.log_group_name_pattern,
            limit: self.limit,
            next_token: self.next_token,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogGroupOut {
    log_group_name: String,
    creation_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    retention_in_days: Option<i32>,
    metric_filter_count: u32,
    arn: String,
    stored_bytes: u64,
    log_group_class: &'static str,
    log_group_arn: String,
}

impl From<LogGroup> for LogGroupOut {
    fn from(g: LogGroup) -> LogGroupOut {
        LogGroupOut {
            log_group_name: g.log_group_name,
            creation_time: g.creation_time,
            retention_in_days: g.retention_in_days,
            metric_filter_count: 0,
            arn: g.arn,
            stored_bytes: g.stored_bytes,
            log_group_class: "STANDARD",
            log_group_arn: g.log_group_arn,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeLogGroupsOut {
    pub log_groups: Vec<LogGroupOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeLogStreamsIn {
    pub log_group_name: Option<String>,
    pub log_group_identifier: Option<String>,
    pub log_stream_name_prefix: Option<String>,
    pub order_by: Option<String>,
    pub descending: Option<bool>,
    pub limit: Option<i64>,
    pub next_token: Option<String>,
}

impl DescribeLogStreamsIn {
    pub fn into_input(self, group: String) -> Result<DescribeLogStreamsInput, AwsError> {
        let order_by = match self.order_by.as_deref() {
            None => OrderBy::default(),
            Some(s) => s.parse().map_err(aws_error)?,
        };
        Ok(DescribeLogStreamsInput {
            log_group_name: group,
            log_stream_name_prefix: self.log_stream_name_prefix,
            order_by,
            descending: self.descending.unwrap_or(false),
            limit: self.limit,
            next_token: self.next_token,
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogStreamOut {
    log_stream_name: String,
    creation_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_event_timestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_event_timestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_ingestion_time: Option<i64>,
    upload_sequence_token: String,
    arn: String,
    stored_bytes: u64,
}

impl From<LogStream> for LogStreamOut {
    fn from(s: LogStream) -> LogStreamOut {
        LogStreamOut {
            log_stream_name: s.log_stream_name,
            creation_time: s.creation_time,
            first_event_timestamp: s.first_event_timestamp,
            last_event_timestamp: s.last_event_timestamp,
            last_ingestion_time: s.last_ingestion_time,
            upload_sequence_token: s.upload_sequence_token,
            arn: s.arn,
            stored_bytes: s.stored_bytes,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeLogStreamsOut {
    pub log_streams: Vec<LogStreamOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Deserialize)]
pub struct EventIn {
    pub timestamp: Option<i64>,
    pub message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutLogEventsIn {
    pub log_group_name: Option<String>,
    pub log_stream_name: Option<String>,
    pub log_events: Option<Vec<EventIn>>,
    pub sequence_token: Option<String>,
}

impl PutLogEventsIn {
    pub fn into_input(self) -> Result<PutLogEventsInput, AwsError> {
        let events = required(self.log_events, "logEvents")?
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                Ok(InputLogEvent {
                    timestamp: required(
                        e.timestamp,
                        &format!("logEvents.{}.member.timestamp", i + 1),
                    )?,
                    message: required(e.message, &format!("logEvents.{}.member.message", i + 1))?,
                })
            })
            .collect::<Result<Vec<_>, AwsError>>()?;
        Ok(PutLogEventsInput {
            log_group_name: required(self.log_group_name, "logGroupName")?,
            log_stream_name: required(self.log_stream_name, "logStreamName")?,
            log_events: events,
            sequence_token: self.sequence_token,
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    too_new_log_event_start_index: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    too_old_log_event_end_index: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expired_log_event_end_index: Option<i32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PutLogEventsOut {
    next_sequence_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected_log_events_info: Option<RejectedOut>,
}

impl From<PutLogEventsOutput> for PutLogEventsOut {
    fn from(o: PutLogEventsOutput) -> PutLogEventsOut {
        PutLogEventsOut {
            next_sequence_token: o.next_sequence_token,
            rejected_log_events_info: o.rejected_log_events_info.map(|r| RejectedOut {
                too_new_log_event_start_index: r.too_new_log_event_start_index,
                too_old_log_event_end_index: r.too_old_log_event_end_index,
                expired_log_event_end_index: r.expired_log_event_end_index,
            }),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetLogEventsIn {
    pub log_group_name: Option<String>,
    pub log_group_identifier: Option<String>,
    pub log_stream_name: Option<String>,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub next_token: Option<String>,
    pub limit: Option<i64>,
    pub start_from_head: Option<bool>,
}

impl GetLogEventsIn {
    pub fn into_input(self, group: String) -> Result<GetLogEventsInput, AwsError> {
        Ok(GetLogEventsInput {
            log_group_name: group,
            log_stream_name: required(self.log_stream_name, "logStreamName")?,
            start_time: self.start_time,
            end_time: self.end_time,
            next_token: self.next_token,
            limit: self.limit,
            start_from_head: self.start_from_head,
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputEventOut {
    timestamp: i64,
    message: String,
    ingestion_time: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetLogEventsOut {
    events: Vec<OutputEventOut>,
    next_forward_token: String,
    next_backward_token: String,
}

impl From<GetLogEventsOutput> for GetLogEventsOut {
    fn from(o: GetLogEventsOutput) -> GetLogEventsOut {
        GetLogEventsOut {
            events: o
                .events
                .into_iter()
                .map(|e| OutputEventOut {
                    timestamp: e.timestamp,
                    message: e.message,
                    ingestion_time: e.ingestion_time,
                })
                .collect(),
            next_forward_token: o.next_forward_token,
            next_backward_token: o.next_backward_token,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterLogEventsIn {
    pub log_group_name: Option<String>,
    pub log_group_identifier: Option<String>,
    pub log_stream_names: Option<Vec<String>>,
    pub log_stream_name_prefix: Option<String>,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub filter_pattern: Option<String>,
    pub limit: Option<i64>,
    pub next_token: Option<String>,
    pub interleaved: Option<bool>,
}

impl FilterLogEventsIn {
    pub fn into_input(self, group: String) -> FilterLogEventsInput {
        FilterLogEventsInput {
            log_group_name: group,
            log_stream_names: self.log_stream_names,
            log_stream_name_prefix: self.log_stream_name_prefix,
            start_time: self.start_time,
            end_time: self.end_time,
            filter_pattern: self.filter_pattern,
            limit: self.limit,
            next_token: self.next_token,
            interleaved: self.interleaved,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FilteredEventOut {
    log_stream_name: String,
    timestamp: i64,
    message: String,
    ingestion_time: i64,
    event_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchedOut {
    log_stream_name: String,
    searched_completely: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterLogEventsOut {
    events: Vec<FilteredEventOut>,
    searched_log_streams: Vec<SearchedOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

impl From<FilterLogEventsOutput> for FilterLogEventsOut {
    fn from(o: FilterLogEventsOutput) -> FilterLogEventsOut {
        FilterLogEventsOut {
            events: o
                .events
                .into_iter()
                .map(|e| FilteredEventOut {
                    log_stream_name: e.log_stream_name,
                    timestamp: e.timestamp,
                    message: e.message,
                    ingestion_time: e.ingestion_time,
                    event_id: e.event_id,
                })
                .collect(),
            searched_log_streams: o
                .searched_log_streams
                .into_iter()
                .map(|s| SearchedOut {
                    log_stream_name: s.log_stream_name,
                    searched_completely: s.searched_completely,
                })
                .collect(),
            next_token: o.next_token,
        }
    }
}
