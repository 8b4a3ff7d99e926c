//! The typed inputs and outputs of the Logs operations. Field names follow the AWS model
//! (`logGroupName` is `log_group_name`); optional request members are `Option`s so the
//! wire crate passes through exactly what the caller sent and this crate applies AWS's
//! defaults and range checks.

use std::collections::BTreeMap;

/// Tags of a log group: key to value, at most 50.
pub type Tags = BTreeMap<String, String>;

/// DescribeLogGroups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeLogGroupsInput {
    /// Only groups whose name starts with this.
    pub log_group_name_prefix: Option<String>,
    /// Only groups whose name contains this (case-sensitive); excludes the prefix.
    pub log_group_name_pattern: Option<String>,
    /// 1 to 50, default 50.
    pub limit: Option<i64>,
    pub next_token: Option<String>,
}

/// A log group as DescribeLogGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogGroup {
    pub log_group_name: String,
    /// Milliseconds since the epoch.
    pub creation_time: i64,
    pub retention_in_days: Option<i32>,
    /// Bytes on disk for the group's events.
    pub stored_bytes: u64,
    /// `arn:aws:logs:<region>:<account>:log-group:<name>:*`.
    pub arn: String,
    /// The same without the trailing `:*`.
    pub log_group_arn: String,
}

/// The order DescribeLogStreams lists streams in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OrderBy {
    #[default]
    LogStreamName,
    LastEventTime,
}

impl std::str::FromStr for OrderBy {
    type Err = crate::LogsError;

    fn from_str(s: &str) -> crate::Result<OrderBy> {
        match s {
            "LogStreamName" => Ok(OrderBy::LogStreamName),
            "LastEventTime" => Ok(OrderBy::LastEventTime),
            _ => Err(crate::LogsError::invalid(format!(
                "1 validation error detected: Value '{s}' at 'orderBy' failed to satisfy constraint: Member must satisfy enum value set: [LogStreamName, LastEventTime]"
            ))),
        }
    }
}

/// DescribeLogStreams. The group is a name; [`crate::LogService::resolve_group`] turns a
/// `logGroupIdentifier` (name or ARN) into one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeLogStreamsInput {
    pub log_group_name: String,
    /// Not allowed with [`OrderBy::LastEventTime`].
    pub log_stream_name_prefix: Option<String>,
    pub order_by: OrderBy,
    pub descending: bool,
    /// 1 to 50, default 50.
    pub limit: Option<i64>,
    pub next_token: Option<String>,
}

/// A log stream as DescribeLogStreams reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStream {
    pub log_stream_name: String,
    pub creation_time: i64,
    /// Absent while the stream holds no event.
    pub first_event_timestamp: Option<i64>,
    pub last_event_timestamp: Option<i64>,
    pub last_ingestion_time: Option<i64>,
    /// Accepted and ignored by PutLogEvents, as AWS now does; reported for old clients.
    pub upload_sequence_token: String,
    /// `arn:aws:logs:<region>:<account>:log-group:<group>:log-stream:<stream>`.
    pub arn: String,
    /// Bytes on disk. (AWS reports 0 here since 2019; Stratus reports the truth.)
    pub stored_bytes: u64,
}

/// One event of a PutLogEvents batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputLogEvent {
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub message: String,
}

/// PutLogEvents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutLogEventsInput {
    pub log_group_name: String,
    pub log_stream_name: String,
    /// 1 to 10,000 events in chronological order.
    pub log_events: Vec<InputLogEvent>,
    /// Ignored, as AWS ignores it now.
    pub sequence_token: Option<String>,
}

/// Which events of a batch were not stored, by index into the batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectedLogEventsInfo {
    /// The first event more than 2 hours in the future; it and every later one were rejected.
    pub too_new_log_event_start_index: Option<i32>,
    /// The events before this index were more than 14 days old (exclusive end).
    pub too_old_log_event_end_index: Option<i32>,
    /// The events before this index were older than the group's retention (exclusive end).
    pub expired_log_event_end_index: Option<i32>,
}

/// What PutLogEvents returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutLogEventsOutput {
    pub next_sequence_token: String,
    /// Present when some events were rejected.
    pub rejected_log_events_info: Option<RejectedLogEventsInfo>,
}

/// GetLogEvents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetLogEventsInput {
    pub log_group_name: String,
    pub log_stream_name: String,
    /// Inclusive: events at or after it.
    pub start_time: Option<i64>,
    /// Exclusive: events before it.
    pub end_time: Option<i64>,
    /// A `f/...` or `b/...` token from an earlier answer.
    pub next_token: Option<String>,
    /// 1 to 10,000; default as many as fit in 1 MB, up to 10,000.
    pub limit: Option<i64>,
    /// Default false: the latest events. Ignored when `next_token` is given (the token's
    /// direction wins).
    pub start_from_head: Option<bool>,
}

/// An event read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLogEvent {
    pub timestamp: i64,
    pub message: String,
    pub ingestion_time: i64,
}

/// What GetLogEvents returns. Both tokens are always present; at either end of the stream
/// the token for that direction is the one passed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetLogEventsOutput {
    /// In timestamp order, oldest first, whichever the direction.
    pub events: Vec<OutputLogEvent>,
    pub next_forward_token: String,
    pub next_backward_token: String,
}

/// FilterLogEvents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterLogEventsInput {
    pub log_group_name: String,
    /// 1 to 100 names; excludes `log_stream_name_prefix`.
    pub log_stream_names: Option<Vec<String>>,
    pub log_stream_name_prefix: Option<String>,
    /// Inclusive.
    pub start_time: Option<i64>,
    /// Inclusive (FilterLogEvents returns nothing *later* than it).
    pub end_time: Option<i64>,
    /// The filter pattern ([`crate::filter`]); absent or empty matches every event.
    pub filter_pattern: Option<String>,
    /// 1 to 10,000, default 10,000 (and at most 1 MB of events).
    pub limit: Option<i64>,
    pub next_token: Option<String>,
    /// Accepted for old clients; events are always interleaved.
    pub interleaved: Option<bool>,
}

/// An event FilterLogEvents found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilteredLogEvent {
    pub log_stream_name: String,
    pub timestamp: i64,
    pub message: String,
    pub ingestion_time: i64,
    /// Unique within the group, 56 digits as AWS's are.
    pub event_id: String,
}

/// Whether FilterLogEvents has reported everything a stream holds in the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchedLogStream {
    pub log_stream_name: String,
    pub searched_completely: bool,
}

/// What FilterLogEvents returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterLogEventsOutput {
    /// Merged across streams in timestamp order.
    pub events: Vec<FilteredLogEvent>,
    pub searched_log_streams: Vec<SearchedLogStream>,
    /// Present while more events may follow.
    pub next_token: Option<String>,
}
