//! [`LogService`]: groups, streams, tags, retention and the size cap. The event
//! operations are in `events.rs`, the [`stratus_aws::LogSink`] side in `sink.rs`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use stratus_aws::{Arn, Page, Scope, clock};

use crate::model::{
    DescribeLogGroupsInput, DescribeLogStreamsInput, LogGroup, LogStream, OrderBy, Tags,
};
use crate::names;
use crate::store::{Group, GroupMeta, Stream};
use crate::{LogsError, Result};

/// The retention periods, in days, PutRetentionPolicy accepts (AWS's list).
pub const RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

pub(crate) const DAY_MS: i64 = 86_400_000;

/// Limits and sizes of the service. The defaults suit a server; tests shrink them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsOptions {
    /// The most bytes a log group keeps on disk. Past it, the group's oldest segments are
    /// deleted until it fits again, so a group holds between this less one segment and
    /// this. Default 1 GiB.
    pub max_group_bytes: u64,
    /// The size at which a stream's newest segment is closed and a new one started. The
    /// size used is at most an eighth of `max_group_bytes` (so the cap drops at most an
    /// eighth at a time) and at least 4 KiB. Default 64 MiB.
    pub segment_bytes: u64,
    /// What a [`stratus_aws::LogWriter`] buffers before it writes without waiting for a
    /// flush: the memory an open writer may hold. Default 256 KiB.
    pub writer_buffer_bytes: usize,
    /// The most log groups there may be (CreateLogGroup then fails with
    /// LimitExceededException). Default 1,000,000, AWS's quota.
    pub max_log_groups: usize,
}

impl Default for LogsOptions {
    fn default() -> LogsOptions {
        LogsOptions {
            max_group_bytes: 1 << 30,
            segment_bytes: 64 << 20,
            writer_buffer_bytes: 256 << 10,
            max_log_groups: 1_000_000,
        }
    }
}

/// What one [`LogService::sweep`] deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepStats {
    pub segments_deleted: usize,
    pub streams_deleted: usize,
    pub bytes_freed: u64,
}

/// CloudWatch Logs over a directory. Cheap to clone: clones share one index.
#[derive(Clone)]
pub struct LogService {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for LogService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogService")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub root: PathBuf,
    pub scope: Scope,
    pub options: LogsOptions,
    groups: RwLock<BTreeMap<String, Arc<Group>>>,
}

impl Inner {
    pub(crate) fn groups(&self) -> RwLockReadGuard<'_, BTreeMap<String, Arc<Group>>> {
        self.groups.read().unwrap_or_else(|p| p.into_inner())
    }

    fn groups_mut(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Arc<Group>>> {
        self.groups.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn segment_bytes(&self) -> u64 {
        self.options
            .segment_bytes
            .min(self.options.max_group_bytes / 8)
            .max(4096)
    }

    pub(crate) fn group(&self, name: &str) -> Result<Arc<Group>> {
        names::check_group_name(name, "logGroupName")?;
        self.groups()
            .get(name)
            .cloned()
            .ok_or_else(LogsError::group_not_found)
    }

    pub(crate) fn stream(&self, group: &str, stream: &str) -> Result<(Arc<Group>, Arc<Stream>)> {
        let g = self.group(group)?;
        names::check_stream_name(stream, "logStreamName")?;
        let s = g.stream(stream).ok_or_else(LogsError::stream_not_found)?;
        Ok((g, s))
    }

    /// Creates a group. `Ok(None)` if it exists.
    pub(crate) fn create_group(
        &self,
        name: &str,
        tags: Tags,
        now: i64,
        durable: bool,
    ) -> Result<Option<Arc<Group>>> {
        let mut groups = self.groups_mut();
        if groups.contains_key(name) {
            return Ok(None);
        }
        if groups.len() >= self.options.max_log_groups {
            return Err(LogsError::LimitExceeded("Resource limit exceeded.".into()));
        }
        let (stem, _) = names::file_stem(name);
        let meta = GroupMeta {
            name: name.to_owned(),
            creation_time: now,
            retention_in_days: None,
            tags,
        };
        let group = Arc::new(Group::create(self.root.join(stem), meta, durable)?);
        groups.insert(name.to_owned(), group.clone());
        Ok(Some(group))
    }

    /// The group and stream, created if missing (the writers' way in).
    pub(crate) fn open_stream(
        &self,
        group: &str,
        stream: &str,
    ) -> Result<(Arc<Group>, Arc<Stream>)> {
        let now = clock::now_ms();
        let existing = self.groups().get(group).cloned();
        let g = match existing {
            Some(g) => g,
            None => {
                names::check_group_name(group, "logGroupName")?;
                match self.create_group(group, Tags::new(), now, false)? {
                    Some(g) => g,
                    None => self.group(group)?,
                }
            }
        };
        if let Some(s) = g.stream(stream) {
            return Ok((g, s));
        }
        names::check_stream_name(stream, "logStreamName")?;
        let s = match g.create_stream(stream, now, false)? {
            Some(s) => s,
            None => g.stream(stream).ok_or_else(LogsError::stream_not_found)?,
        };
        Ok((g, s))
    }

    /// Deletes the group's oldest segments until it is within the cap.
    pub(crate) fn enforce_cap(&self, group: &Group) {
        let cap = self.options.max_group_bytes;
        if group.stored.load(Ordering::Relaxed) <= cap {
            return;
        }
        let _trim = group.trim_lock();
        while group.stored.load(Ordering::Relaxed) > cap {
            // The segment whose newest event is oldest, across the group's streams.
            let mut victim: Option<(i64, u64, Arc<Stream>)> = None;
            for s in group.streams().values() {
                let st = s.lock();
                let oldest = st
                    .rotated
                    .front()
                    .or((!st.active.is_empty()).then_some(&st.active));
                if let Some(seg) = oldest
                    && victim.as_ref().is_none_or(|v| seg.max_ts < v.0)
                {
                    victim = Some((seg.max_ts, seg.seq, s.clone()));
                }
            }
            let Some((_, seq, stream)) = victim else {
                break;
            };
            match group.drop_segment(&stream, seq) {
                Ok(freed) => tracing::debug!(
                    group = %group.meta().name, stream = %stream.name, seq, freed,
                    "log group over its size cap: dropped its oldest segment"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "dropping a log segment for the size cap");
                    break;
                }
            }
        }
    }

    fn arn_base(&self, group: &str) -> String {
        self.scope.arn("logs", &format!("log-group:{group}"))
    }
}

impl LogService {
    /// The account and region this service's ARNs carry.
    pub fn scope(&self) -> &Scope {
        &self.inner.scope
    }

    /// Opens (creating if needed) `<data_dir>/logs` and loads every group in it.
    pub fn open(data_dir: &Path, scope: Scope, options: LogsOptions) -> Result<LogService> {
        let root = data_dir.join("logs");
        fs::create_dir_all(&root)?;
        let now = clock::now_ms();
        let mut groups = BTreeMap::new();
        for entry in fs::read_dir(&root)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                // A group deleted while the server stopped half-way.
                if name.starts_with(".deleted-") {
                    let _ = fs::remove_dir_all(entry.path());
                }
                continue;
            }
            if !entry.file_type()?.is_dir() {
                continue;
            }
            if let Some(group) = Group::load(entry.path(), now)? {
                let name = group.meta().name.clone();
                groups.insert(name, Arc::new(group));
            }
        }
        tracing::debug!(root = %root.display(), groups = groups.len(), "log groups loaded");
        Ok(LogService {
            inner: Arc::new(Inner {
                root,
                scope,
                options,
                groups: RwLock::new(groups),
            }),
        })
    }

    /// The options the service runs with.
    pub fn options(&self) -> &LogsOptions {
        &self.inner.options
    }

    /// The group name a request names, from `logGroupName` or `logGroupIdentifier` (a name
    /// or a log group ARN, with or without `:*`): exactly one of them must be given.
    pub fn resolve_group(&self, name: Option<&str>, identifier: Option<&str>) -> Result<String> {
        match (name, identifier) {
            (Some(n), None) => {
                names::check_group_name(n, "logGroupName")?;
                Ok(n.to_owned())
            }
            // The model's pattern for the member: an ARN ending `:*` does not match it.
            (None, Some(id))
                if !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_#+=/:,.@-".contains(&b)) =>
            {
                Err(LogsError::invalid(
                    "1 validation error detected: Value at 'logGroupIdentifier' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w#+=/:,.@-]*",
                ))
            }
            (None, Some(id)) if id.starts_with("arn:") => self.group_name_from_arn(id),
            (None, Some(id)) => {
                names::check_group_name(id, "logGroupIdentifier")?;
                Ok(id.to_owned())
            }
            (Some(_), Some(_)) => Err(LogsError::invalid(
                "LogGroup name and LogGroup ARN are mutually exclusive parameters.",
            )),
            (None, None) => Err(LogsError::invalid(
                "Should provide either name or ARN of the log group.",
            )),
        }
    }

    /// The group a log group ARN names (`...:log-group:<name>` or `...:log-group:<name>:*`).
    /// An ARN of another account or region, or of something else, names nothing here.
    pub fn group_name_from_arn(&self, arn: &str) -> Result<String> {
        let parsed: Arn = arn
            .parse()
            .map_err(|_| LogsError::invalid(format!("Invalid ARN: {arn}")))?;
        if parsed.service != "logs" {
            return Err(LogsError::invalid(format!("Invalid ARN: {arn}")));
        }
        let Some(rest) = parsed.resource.strip_prefix("log-group:") else {
            return Err(LogsError::ResourceNotFound(format!(
                "The specified resource does not exist: {arn}"
            )));
        };
        let name = rest.strip_suffix(":*").unwrap_or(rest);
        names::check_group_name(name, "resourceArn")?;
        if parsed.account_id != self.inner.scope.account_id
            || parsed.region != self.inner.scope.region
        {
            return Err(LogsError::group_not_found());
        }
        Ok(name.to_owned())
    }

    /// Deletes every log group (the server's test mode resets between conformance tests).
    pub fn delete_all(&self) -> Result<()> {
        let names: Vec<String> = match self.inner.groups.read() {
            Ok(groups) => groups.keys().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().keys().cloned().collect(),
        };
        for name in names {
            match self.delete_log_group(&name) {
                Ok(()) | Err(LogsError::ResourceNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// CreateLogGroup.
    pub fn create_log_group(&self, name: &str, tags: Tags) -> Result<()> {
        names::check_group_name(name, "logGroupName")?;
        if name.starts_with("aws/") {
            return Err(LogsError::invalid(
                "Log group names can't start with the string aws/",
            ));
        }
        check_tag_count(&tags, 0)?;
        names::check_tags(&tags)?;
        match self.inner.create_group(name, tags, clock::now_ms(), true)? {
            Some(_) => Ok(()),
            None => Err(LogsError::ResourceAlreadyExists(
                "The specified log group already exists".into(),
            )),
        }
    }

    /// DeleteLogGroup: the group, its streams and their events.
    pub fn delete_log_group(&self, name: &str) -> Result<()> {
        names::check_group_name(name, "logGroupName")?;
        // The directory moves aside while the index is locked, so a writer re-creating the
        // group cannot find the old directory in place; a crash after the rename leaves a
        // grave the start-up load removes.
        let grave = self.inner.root.join(format!(
            ".deleted-{:016x}-{}",
            names::fnv1a(name.as_bytes()),
            clock::now_ms()
        ));
        {
            let mut groups = self.inner.groups_mut();
            let group = groups.remove(name).ok_or_else(LogsError::group_not_found)?;
            group.deleted.store(true, Ordering::Relaxed);
            for s in group.streams().values() {
                s.lock().deleted = true;
            }
            if let Err(e) = fs::rename(&group.dir, &grave) {
                groups.insert(name.to_owned(), group.clone());
                group.deleted.store(false, Ordering::Relaxed);
                for s in group.streams().values() {
                    s.lock().deleted = false;
                }
                return Err(e.into());
            }
        }
        fs::remove_dir_all(&grave)?;
        Ok(())
    }

    /// DescribeLogGroups: by name, ASCII order.
    pub fn describe_log_groups(&self, input: &DescribeLogGroupsInput) -> Result<Page<LogGroup>> {
        let limit = check_limit(input.limit, "limit", 50, 50)?;
        if let Some(p) = &input.log_group_name_prefix {
            names::check_group_name(p, "logGroupNamePrefix")?;
        }
        if input.log_group_name_prefix.is_some() && input.log_group_name_pattern.is_some() {
            return Err(LogsError::invalid(
                "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.",
            ));
        }
        let after = input
            .next_token
            .as_deref()
            .map(decode_name_token)
            .transpose()?;
        let groups: Vec<Arc<Group>> = self
            .inner
            .groups()
            .iter()
            .filter(|(n, _)| after.as_deref().is_none_or(|a| n.as_str() > a))
            .filter(|(n, _)| {
                input
                    .log_group_name_prefix
                    .as_deref()
                    .is_none_or(|p| n.starts_with(p))
                    && input
                        .log_group_name_pattern
                        .as_deref()
                        .is_none_or(|p| n.contains(p))
            })
            .take(limit + 1)
            .map(|(_, g)| g.clone())
            .collect();
        let more = groups.len() > limit;
        let items: Vec<LogGroup> = groups
            .iter()
            .take(limit)
            .map(|g| self.describe_group(g))
            .collect();
        let next = if more {
            items.last().map(|g| encode_name_token(&g.log_group_name))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    fn describe_group(&self, g: &Group) -> LogGroup {
        let meta = g.meta();
        let base = self.inner.arn_base(&meta.name);
        LogGroup {
            log_group_name: meta.name.clone(),
            creation_time: meta.creation_time,
            retention_in_days: meta.retention_in_days,
            stored_bytes: g.stored.load(Ordering::Relaxed),
            arn: format!("{base}:*"),
            log_group_arn: base,
        }
    }

    /// CreateLogStream.
    pub fn create_log_stream(&self, group: &str, stream: &str) -> Result<()> {
        let g = self.inner.group(group)?;
        names::check_stream_name(stream, "logStreamName")?;
        match g.create_stream(stream, clock::now_ms(), true)? {
            Some(_) => Ok(()),
            None => Err(LogsError::ResourceAlreadyExists(
                "The specified log stream already exists".into(),
            )),
        }
    }

    /// DeleteLogStream.
    pub fn delete_log_stream(&self, group: &str, stream: &str) -> Result<()> {
        let g = self.inner.group(group)?;
        names::check_stream_name(stream, "logStreamName")?;
        if g.delete_stream(stream)? {
            Ok(())
        } else {
            Err(LogsError::stream_not_found())
        }
    }

    /// DescribeLogStreams.
    pub fn describe_log_streams(&self, input: &DescribeLogStreamsInput) -> Result<Page<LogStream>> {
        let limit = check_limit(input.limit, "limit", 50, 50)?;
        if let Some(p) = &input.log_stream_name_prefix {
            names::check_stream_name(p, "logStreamNamePrefix")?;
            if input.order_by == OrderBy::LastEventTime {
                return Err(LogsError::invalid(
                    "Cannot order by LastEventTime with a logStreamNamePrefix.",
                ));
            }
        }
        let g = self.inner.group(&input.log_group_name)?;
        let mut all: Vec<LogStream> = g
            .streams()
            .values()
            .filter(|s| {
                input
                    .log_stream_name_prefix
                    .as_deref()
                    .is_none_or(|p| s.name.starts_with(p))
            })
            .map(|s| self.describe_stream(&input.log_group_name, s))
            .collect();
        // The sort key: (last event time or 0 when ordering by it, name).
        let key = |s: &LogStream| -> (i64, String) {
            match input.order_by {
                OrderBy::LogStreamName => (0, s.log_stream_name.clone()),
                OrderBy::LastEventTime => (
                    s.last_event_timestamp.unwrap_or(0),
                    s.log_stream_name.clone(),
                ),
            }
        };
        all.sort_by_key(|s| key(s));
        if input.descending {
            all.reverse();
        }
        let after = match &input.next_token {
            Some(t) => Some(decode_key_token(t)?),
            None => None,
        };
        let mut items: Vec<LogStream> = all
            .into_iter()
            .filter(|s| match &after {
                None => true,
                Some(a) if input.descending => key(s) < *a,
                Some(a) => key(s) > *a,
            })
            .take(limit + 1)
            .collect();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|s| encode_key_token(&key(s)))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    fn describe_stream(&self, group: &str, s: &Stream) -> LogStream {
        let st = s.lock();
        let (seq, off) = st.end();
        LogStream {
            log_stream_name: s.name.clone(),
            creation_time: st.creation_time,
            first_event_timestamp: st.first_event(),
            last_event_timestamp: st.last_event(),
            last_ingestion_time: st.last_ingestion,
            upload_sequence_token: crate::events::sequence_token(seq, off),
            arn: format!("{}:log-stream:{}", self.inner.arn_base(group), s.name),
            stored_bytes: st.stored_bytes(),
        }
    }

    /// PutRetentionPolicy: `days` must be one of [`RETENTION_DAYS`].
    pub fn put_retention_policy(&self, group: &str, days: i64) -> Result<()> {
        let Some(days) = i32::try_from(days)
            .ok()
            .filter(|d| RETENTION_DAYS.contains(d))
        else {
            let allowed: Vec<String> = RETENTION_DAYS.iter().map(|d| d.to_string()).collect();
            return Err(LogsError::invalid(format!(
                "1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            )));
        };
        self.update_meta(group, |m| {
            m.retention_in_days = Some(days);
            Ok(())
        })
    }

    /// DeleteRetentionPolicy: events never expire again.
    pub fn delete_retention_policy(&self, group: &str) -> Result<()> {
        self.update_meta(group, |m| {
            m.retention_in_days = None;
            Ok(())
        })
    }

    fn update_meta(&self, group: &str, f: impl FnOnce(&mut GroupMeta) -> Result<()>) -> Result<()> {
        let g = self.inner.group(group)?;
        let mut meta = g.meta();
        let mut next = meta.clone();
        f(&mut next)?;
        g.save_meta(&next)?;
        *meta = next;
        Ok(())
    }

    /// TagLogGroup: adds or replaces tags (at most 50 in all).
    pub fn tag_log_group(&self, group: &str, tags: &Tags) -> Result<()> {
        self.add_tags(group, tags, LogsError::InvalidParameter)
    }

    /// UntagLogGroup.
    pub fn untag_log_group(&self, group: &str, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Err(LogsError::invalid(
                "1 validation error detected: Value '[]' at 'tags' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ));
        }
        self.remove_tags(group, keys)
    }

    /// ListTagsLogGroup.
    pub fn list_tags_log_group(&self, group: &str) -> Result<Tags> {
        Ok(self.inner.group(group)?.meta().tags.clone())
    }

    /// TagResource: by log group ARN; more than 50 tags in all is TooManyTagsException.
    pub fn tag_resource(&self, arn: &str, tags: &Tags) -> Result<()> {
        let group = self.group_name_from_arn(arn)?;
        self.add_tags(&group, tags, LogsError::TooManyTags)
    }

    /// UntagResource: by log group ARN.
    pub fn untag_resource(&self, arn: &str, keys: &[String]) -> Result<()> {
        let group = self.group_name_from_arn(arn)?;
        if keys.len() > 50 {
            return Err(LogsError::invalid(
                "1 validation error detected: Value at 'tagKeys' failed to satisfy constraint: Member must have length less than or equal to 50",
            ));
        }
        self.remove_tags(&group, keys)
    }

    /// ListTagsForResource: by log group ARN.
    pub fn list_tags_for_resource(&self, arn: &str) -> Result<Tags> {
        let group = self.group_name_from_arn(arn)?;
        self.list_tags_log_group(&group)
    }

    fn add_tags(
        &self,
        group: &str,
        tags: &Tags,
        too_many: impl FnOnce(String) -> LogsError,
    ) -> Result<()> {
        if tags.is_empty() {
            return Err(LogsError::invalid(
                "1 validation error detected: Value '{}' at 'tags' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ));
        }
        names::check_tags(tags)?;
        self.update_meta(group, |m| {
            let mut merged = m.tags.clone();
            merged.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            if merged.len() > 50 {
                return Err(too_many(format!(
                    "A resource can have no more than 50 tags; {} would have {}.",
                    m.name,
                    merged.len()
                )));
            }
            m.tags = merged;
            Ok(())
        })
    }

    fn remove_tags(&self, group: &str, keys: &[String]) -> Result<()> {
        self.update_meta(group, |m| {
            for k in keys {
                m.tags.remove(k);
            }
            Ok(())
        })
    }

    /// Enforces retention as of `now_ms`: deletes every segment whose newest event is past
    /// its group's retention, and every stream left without events whose last activity is
    /// past it. (Reads already hide expired events; this frees their space.)
    pub fn sweep(&self, now_ms: i64) -> Result<SweepStats> {
        let mut stats = SweepStats::default();
        let groups: Vec<Arc<Group>> = self.inner.groups().values().cloned().collect();
        for g in groups {
            let Some(days) = g.meta().retention_in_days else {
                continue;
            };
            let cutoff = now_ms - i64::from(days) * DAY_MS;
            let _trim = g.trim_lock();
            let streams: Vec<Arc<Stream>> = g.streams().values().cloned().collect();
            for s in streams {
                let expired: Vec<u64> = s
                    .lock()
                    .segments()
                    .iter()
                    .filter(|seg| !seg.is_empty() && seg.max_ts < cutoff)
                    .map(|seg| seg.seq)
                    .collect();
                for seq in expired {
                    let freed = g.drop_segment(&s, seq)?;
                    if freed > 0 {
                        stats.segments_deleted += 1;
                        stats.bytes_freed += freed;
                    }
                }
                let idle = {
                    let st = s.lock();
                    st.stored_bytes() == 0
                        && st.creation_time.max(st.last_ingestion.unwrap_or(i64::MIN)) < cutoff
                };
                if idle && g.delete_stream(&s.name)? {
                    stats.streams_deleted += 1;
                }
            }
        }
        if stats != SweepStats::default() {
            tracing::debug!(?stats, "log retention sweep");
        }
        Ok(stats)
    }
}

/// Checks an optional limit against `1..=max`, giving `default` when absent.
pub(crate) fn check_limit(
    v: Option<i64>,
    member: &str,
    max: usize,
    default: usize,
) -> Result<usize> {
    match v {
        None => Ok(default),
        Some(n) if n >= 1 && n <= max as i64 => Ok(n as usize),
        Some(n) if n < 1 => Err(LogsError::invalid(format!(
            "1 validation error detected: Value '{n}' at '{member}' failed to satisfy constraint: Member must have value greater than or equal to 1"
        ))),
        Some(n) => Err(LogsError::invalid(format!(
            "1 validation error detected: Value '{n}' at '{member}' failed to satisfy constraint: Member must have value less than or equal to {max}"
        ))),
    }
}

fn check_tag_count(tags: &Tags, existing: usize) -> Result<()> {
    if tags.len() + existing > 50 {
        return Err(LogsError::invalid(
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50",
        ));
    }
    Ok(())
}

pub(crate) fn invalid_token() -> LogsError {
    LogsError::invalid("The specified nextToken is invalid.")
}

/// A listing token: the last name returned, hex-encoded so it reads as opaque.
fn encode_name_token(name: &str) -> String {
    hex(name.as_bytes())
}

fn decode_name_token(token: &str) -> Result<String> {
    unhex(token).ok_or_else(invalid_token)
}

fn encode_key_token(key: &(i64, String)) -> String {
    format!("{}/{}", key.0, hex(key.1.as_bytes()))
}

fn decode_key_token(token: &str) -> Result<(i64, String)> {
    let (ts, name) = token.split_once('/').ok_or_else(invalid_token)?;
    Ok((
        ts.parse().map_err(|_| invalid_token())?,
        unhex(name).ok_or_else(invalid_token)?,
    ))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    String::from_utf8(bytes?).ok()
}
