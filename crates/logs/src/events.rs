//! PutLogEvents, GetLogEvents and FilterLogEvents.
//!
//! Read positions are (segment sequence number, byte offset) pairs: stable across rotation
//! and dropped segments. GetLogEvents tokens are `f/` or `b/` and 40 digits (the two
//! numbers, 20 each); FilterLogEvents tokens name the last event returned in the merge
//! order (timestamp, stream name, position), and the next page resumes after it.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use memchr::memmem::Finder;
use stratus_aws::clock;

use crate::filter::FilterPattern;
use crate::model::{
    FilterLogEventsInput, FilterLogEventsOutput, FilteredLogEvent, GetLogEventsInput,
    GetLogEventsOutput, OutputLogEvent, PutLogEventsInput, PutLogEventsOutput,
    RejectedLogEventsInfo, SearchedLogStream,
};
use crate::names;
use crate::record;
use crate::scan::{LineReader, lines_backward};
use crate::service::{DAY_MS, LogService, check_limit, hex, invalid_token, unhex};
use crate::store::{Group, Segment, Stream};
use crate::{LogsError, Result};

/// The largest event PutLogEvents takes: 256 KiB, counting AWS's 26 bytes of overhead.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// The largest PutLogEvents batch, counted the same way.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// The most events in a batch, and the most a read returns.
pub const MAX_EVENTS: usize = 10_000;
/// The most bytes of events (counted as in a batch) one read returns.
pub const MAX_RESPONSE_BYTES: usize = 1_048_576;
const HOUR_MS: i64 = 3_600_000;

type Pos = (u64, u64);

/// 56 digits, as AWS's are (clients that still send them back only pass them through).
pub(crate) fn sequence_token(seq: u64, off: u64) -> String {
    format!("{seq:028}{off:028}")
}

fn position_token(dir: char, (seq, off): Pos) -> String {
    format!("{dir}/{seq:020}{off:020}")
}

fn parse_position_token(token: &str) -> Result<(char, Pos)> {
    let (dir, digits) = match token.split_at_checked(2) {
        Some(("f/", d)) => ('f', d),
        Some(("b/", d)) => ('b', d),
        _ => return Err(invalid_token()),
    };
    if digits.len() != 40 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid_token());
    }
    let seq = digits[..20].parse().map_err(|_| invalid_token())?;
    let off = digits[20..].parse().map_err(|_| invalid_token())?;
    Ok((dir, (seq, off)))
}

/// The oldest timestamp a group still shows at `now`.
fn retention_floor(group: &Group, now: i64) -> i64 {
    group
        .meta()
        .retention_in_days
        .map_or(i64::MIN, |d| now - i64::from(d) * DAY_MS)
}

/// A line's timestamp, ingestion time and raw message, whatever its shape; the message is
/// JSON-escaped when `escaped`.
fn read_line(line: &[u8]) -> Option<(i64, i64, std::borrow::Cow<'_, [u8]>, bool)> {
    match record::parse(line) {
        Some(r) => Some((r.timestamp, r.ingestion, r.message.into(), true)),
        None => {
            let (t, i, m) = record::decode_slow(line)?;
            Some((t, i, m.into_bytes().into(), false))
        }
    }
}

fn owned_message(raw: &[u8], escaped: bool) -> Option<String> {
    if escaped {
        record::message_owned(raw)
    } else {
        String::from_utf8(raw.to_vec()).ok()
    }
}

impl LogService {
    /// PutLogEvents: validates the batch as AWS does, stores the events that are neither
    /// too new, too old nor expired (reporting the others), and returns once they are on
    /// disk (written and fsynced).
    pub fn put_log_events(&self, input: &PutLogEventsInput) -> Result<PutLogEventsOutput> {
        let events = &input.log_events;
        if events.is_empty() || events.len() > MAX_EVENTS {
            return Err(LogsError::invalid(format!(
                "1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member must have length between 1 and {MAX_EVENTS}"
            )));
        }
        let (g, s) = self
            .inner
            .stream(&input.log_group_name, &input.log_stream_name)?;
        let mut total = 0;
        for (i, e) in events.iter().enumerate() {
            if e.message.is_empty() {
                return Err(LogsError::invalid(format!(
                    "1 validation error detected: Value '' at 'logEvents.{}.member.message' failed to satisfy constraint: Member must have length greater than or equal to 1",
                    i + 1
                )));
            }
            let size = record::event_size(&e.message);
            if size > MAX_EVENT_BYTES {
                return Err(LogsError::invalid(format!(
                    "Log event too large: {size} bytes exceeds limit of {MAX_EVENT_BYTES}"
                )));
            }
            if e.timestamp < 0 {
                return Err(LogsError::invalid(format!(
                    "1 validation error detected: Value '{}' at 'logEvents.{}.member.timestamp' failed to satisfy constraint: Member must have value greater than or equal to 0",
                    e.timestamp,
                    i + 1
                )));
            }
            total += size;
        }
        if total > MAX_BATCH_BYTES {
            return Err(LogsError::invalid(format!(
                "Upload too large: {total} bytes exceeds limit of {MAX_BATCH_BYTES}"
            )));
        }
        if events.windows(2).any(|w| w[1].timestamp < w[0].timestamp) {
            return Err(LogsError::invalid(
                "Log events in a single PutLogEvents request must be in chronological order.",
            ));
        }

        let now = clock::now_ms();
        let too_old_before = now - 14 * DAY_MS;
        let expired_before = retention_floor(&g, now);
        let too_new_after = now + 2 * HOUR_MS;
        // Sorted by time: the too old and the expired are prefixes, the too new a suffix.
        let too_old_end = events.partition_point(|e| e.timestamp < too_old_before);
        let expired_end = events.partition_point(|e| e.timestamp < expired_before);
        let too_new_start = events.partition_point(|e| e.timestamp <= too_new_after);
        let first = too_old_end.max(expired_end).min(too_new_start);
        let accepted = &events[first..too_new_start];
        if let (Some(a), Some(b)) = (accepted.first(), accepted.last())
            && b.timestamp - a.timestamp > 24 * HOUR_MS
        {
            return Err(LogsError::invalid(
                "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
            ));
        }
        let to_index = |i: usize| i32::try_from(i).ok();
        let rejected = RejectedLogEventsInfo {
            too_new_log_event_start_index: (too_new_start < events.len())
                .then(|| to_index(too_new_start))
                .flatten(),
            too_old_log_event_end_index: (too_old_end > 0).then(|| to_index(too_old_end)).flatten(),
            expired_log_event_end_index: (expired_end > 0).then(|| to_index(expired_end)).flatten(),
        };
        let rejected = (rejected != RejectedLogEventsInfo::default()).then_some(rejected);

        let (seq, off) = match (accepted.first(), accepted.last()) {
            (Some(a), Some(b)) => {
                let mut buf = Vec::with_capacity(total + accepted.len() * 64);
                for e in accepted {
                    record::encode(&mut buf, e.timestamp, now, &e.message);
                }
                let (file, end) = g
                    .append(
                        &s,
                        &buf,
                        a.timestamp,
                        b.timestamp,
                        now,
                        self.inner.segment_bytes(),
                    )
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::NotFound => LogsError::stream_not_found(),
                        _ => LogsError::Storage(e),
                    })?;
                file.sync_data()?;
                self.inner.enforce_cap(&g);
                end
            }
            _ => s.lock().end(),
        };
        Ok(PutLogEventsOutput {
            next_sequence_token: sequence_token(seq, off),
            rejected_log_events_info: rejected,
        })
    }

    /// GetLogEvents: one stream, forward or backward from a token or either end.
    pub fn get_log_events(&self, input: &GetLogEventsInput) -> Result<GetLogEventsOutput> {
        let limit = check_limit(input.limit, "limit", MAX_EVENTS, MAX_EVENTS)?;
        let (g, s) = self
            .inner
            .stream(&input.log_group_name, &input.log_stream_name)?;
        let lo = input
            .start_time
            .unwrap_or(i64::MIN)
            .max(retention_floor(&g, clock::now_ms()));
        let hi = input.end_time.unwrap_or(i64::MAX);
        let (segments, end, start) = {
            let st = s.lock();
            let start = (st.rotated.front().map_or(st.active.seq, |r| r.seq), 0);
            (st.segments(), st.end(), start)
        };
        let given = input.next_token.as_deref();
        let (dir, pos) = match given {
            Some(t) => parse_position_token(t)?,
            None if input.start_from_head.unwrap_or(false) => ('f', start),
            None => ('b', end),
        };
        let in_range = |seg: &Segment| !seg.is_empty() && seg.max_ts >= lo && seg.min_ts < hi;
        let mut events = Vec::new();
        let mut bytes = 0;
        if dir == 'f' {
            let mut first = None;
            let mut resume = None;
            'segments: for seg in segments.iter().filter(|seg| seg.seq >= pos.0) {
                if !in_range(seg) {
                    continue;
                }
                let from = if seg.seq == pos.0 {
                    pos.1.min(seg.size)
                } else {
                    0
                };
                let Some(mut reader) = LineReader::open(&seg.path, from, seg.size)? else {
                    continue;
                };
                while let Some((off, line)) = reader.next_line()? {
                    let Some((ts, ingestion, raw, escaped)) = read_line(line) else {
                        continue;
                    };
                    if ts < lo || ts >= hi {
                        continue;
                    }
                    let Some(message) = owned_message(&raw, escaped) else {
                        continue;
                    };
                    let size = record::event_size(&message);
                    if events.len() == limit || bytes + size > MAX_RESPONSE_BYTES {
                        resume = Some((seg.seq, off));
                        break 'segments;
                    }
                    bytes += size;
                    first.get_or_insert((seg.seq, off));
                    events.push(OutputLogEvent {
                        timestamp: ts,
                        message,
                        ingestion_time: ingestion,
                    });
                }
            }
            let forward = match (resume, given) {
                (Some(p), _) => position_token('f', p),
                // At the end with nothing new: the token passed in, as AWS does.
                (None, Some(t)) if events.is_empty() => t.to_owned(),
                (None, _) => position_token('f', end.max(pos)),
            };
            Ok(GetLogEventsOutput {
                events,
                next_forward_token: forward,
                next_backward_token: position_token('b', first.unwrap_or(pos)),
            })
        } else {
            let mut earliest = None;
            let mut after_latest = None;
            let mut full = false;
            for seg in segments.iter().rev().filter(|seg| seg.seq <= pos.0) {
                if !in_range(seg) {
                    continue;
                }
                let to = if seg.seq == pos.0 {
                    pos.1.min(seg.size)
                } else {
                    seg.size
                };
                lines_backward(&seg.path, to, |off, line| {
                    let Some((ts, ingestion, raw, escaped)) = read_line(line) else {
                        return true;
                    };
                    if ts < lo || ts >= hi {
                        return true;
                    }
                    let Some(message) = owned_message(&raw, escaped) else {
                        return true;
                    };
                    let size = record::event_size(&message);
                    if events.len() == limit || bytes + size > MAX_RESPONSE_BYTES {
                        full = true;
                        return false;
                    }
                    bytes += size;
                    earliest = Some((seg.seq, off));
                    after_latest.get_or_insert((seg.seq, off + line.len() as u64 + 1));
                    events.push(OutputLogEvent {
                        timestamp: ts,
                        message,
                        ingestion_time: ingestion,
                    });
                    true
                })?;
                if full {
                    break;
                }
            }
            events.reverse();
            let backward = match (earliest, given) {
                (Some(p), _) => position_token('b', p),
                (None, Some(t)) => t.to_owned(),
                (None, None) => position_token('b', start),
            };
            Ok(GetLogEventsOutput {
                events,
                next_forward_token: position_token('f', after_latest.unwrap_or(pos)),
                next_backward_token: backward,
            })
        }
    }

    /// FilterLogEvents: the events of the chosen streams that match the pattern, merged in
    /// timestamp order (ties by stream name, then position).
    pub fn filter_log_events(&self, input: &FilterLogEventsInput) -> Result<FilterLogEventsOutput> {
        let limit = check_limit(input.limit, "limit", MAX_EVENTS, MAX_EVENTS)?;
        let g = self.inner.group(&input.log_group_name)?;
        if input.log_stream_names.is_some() && input.log_stream_name_prefix.is_some() {
            return Err(LogsError::invalid(
                "Cannot specify both logStreamNames and logStreamNamePrefix.",
            ));
        }
        if let Some(list) = &input.log_stream_names {
            if list.is_empty() || list.len() > 100 {
                return Err(LogsError::invalid(
                    "1 validation error detected: Value at 'logStreamNames' failed to satisfy constraint: Member must have length between 1 and 100",
                ));
            }
            for n in list {
                names::check_stream_name(n, "logStreamNames")?;
            }
        }
        if let Some(p) = &input.log_stream_name_prefix {
            names::check_stream_name(p, "logStreamNamePrefix")?;
        }
        let pattern = FilterPattern::parse(input.filter_pattern.as_deref().unwrap_or(""))?;
        let cursor = input
            .next_token
            .as_deref()
            .map(parse_filter_token)
            .transpose()?;
        let lo = input
            .start_time
            .unwrap_or(i64::MIN)
            .max(retention_floor(&g, clock::now_ms()));
        let hi = input.end_time.unwrap_or(i64::MAX);

        // The streams searched, in name order (their index breaks timestamp ties).
        let streams: Vec<Arc<Stream>> = g
            .streams()
            .values()
            .filter(
                |s| match (&input.log_stream_names, &input.log_stream_name_prefix) {
                    (Some(list), _) => list.contains(&s.name),
                    (None, Some(p)) => s.name.starts_with(p.as_str()),
                    (None, None) => true,
                },
            )
            .cloned()
            .collect();

        let literal = pattern
            .required_literal()
            .map(|l| Finder::new(l.as_bytes()).into_owned());
        let mut heap: BinaryHeap<Candidate> = BinaryHeap::with_capacity(limit.min(1024) + 1);
        let mut more = vec![false; streams.len()];
        let mut scratch = String::new();
        for (i, s) in streams.iter().enumerate() {
            let segments = s.lock().segments();
            let name_cmp = cursor
                .as_ref()
                .map(|c| s.name.as_str().cmp(c.name.as_str()));
            for seg in &segments {
                let heap_max = (heap.len() == limit)
                    .then(|| heap.peek().map(|c| c.key))
                    .flatten();
                if seg.is_empty()
                    || seg.max_ts < lo
                    || seg.min_ts > hi
                    || cursor.as_ref().is_some_and(|c| seg.max_ts < c.ts)
                    || heap_max.is_some_and(|m| seg.min_ts > m.0 && more[i])
                {
                    continue;
                }
                let Some(mut reader) = LineReader::open(&seg.path, 0, seg.size)? else {
                    continue;
                };
                loop {
                    let next = match &literal {
                        Some(f) => reader.next_line_containing(f)?,
                        None => reader.next_line()?,
                    };
                    let Some((off, line)) = next else { break };
                    // The cheap tests first: time range, cursor, and whether it could
                    // still make the page.
                    let Some(ts) = record::timestamp_of(line)
                        .or_else(|| record::decode_slow(line).map(|d| d.0))
                    else {
                        continue;
                    };
                    if ts < lo || ts > hi {
                        continue;
                    }
                    let key = (ts, i, seg.seq, off);
                    if let (Some(c), Some(ord)) = (&cursor, name_cmp)
                        && !c.is_before(ts, ord, seg.seq, off)
                    {
                        continue;
                    }
                    let full_and_later =
                        heap.len() == limit && heap.peek().is_some_and(|m| key > m.key);
                    if full_and_later && more[i] {
                        continue;
                    }
                    let Some((_, ingestion, raw, escaped)) = read_line(line) else {
                        continue;
                    };
                    let message: &str = if escaped {
                        match record::message(&raw, &mut scratch) {
                            Some(m) => m,
                            None => continue,
                        }
                    } else {
                        match std::str::from_utf8(&raw) {
                            Ok(m) => m,
                            Err(_) => continue,
                        }
                    };
                    if !pattern.matches(message) {
                        continue;
                    }
                    if full_and_later {
                        more[i] = true;
                        continue;
                    }
                    if heap.len() == limit
                        && let Some(dropped) = heap.pop()
                    {
                        more[dropped.key.1] = true;
                    }
                    heap.push(Candidate {
                        key,
                        ingestion,
                        message: message.to_owned(),
                    });
                }
            }
        }

        let mut bytes = 0;
        let mut events = Vec::with_capacity(heap.len());
        let mut last_key = None;
        for c in heap.into_sorted_vec() {
            let size = record::event_size(&c.message);
            if !events.is_empty() && bytes + size > MAX_RESPONSE_BYTES {
                more[c.key.1] = true;
                continue;
            }
            bytes += size;
            let (ts, i, seq, off) = c.key;
            let name = &streams[i].name;
            last_key = Some(c.key);
            events.push(FilteredLogEvent {
                log_stream_name: name.clone(),
                timestamp: ts,
                message: c.message,
                ingestion_time: c.ingestion,
                event_id: format!("{:020}{seq:020}{off:016}", names::fnv1a(name.as_bytes())),
            });
        }
        let next_token = match last_key {
            Some((ts, i, seq, off)) if more.iter().any(|m| *m) => Some(format!(
                "{ts}/{seq}/{off}/{}",
                hex(streams[i].name.as_bytes())
            )),
            _ => None,
        };
        let searched_log_streams = streams
            .iter()
            .zip(&more)
            .map(|(s, m)| SearchedLogStream {
                log_stream_name: s.name.clone(),
                searched_completely: !m,
            })
            .collect();
        Ok(FilterLogEventsOutput {
            events,
            searched_log_streams,
            next_token,
        })
    }
}

/// An event that may make the page; the heap keeps the `limit` smallest keys.
struct Candidate {
    /// (timestamp, stream index, segment, offset): the merge order.
    key: (i64, usize, u64, u64),
    ingestion: i64,
    message: String,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Candidate) -> bool {
        self.key == other.key
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Candidate) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Candidate) -> CmpOrdering {
        self.key.cmp(&other.key)
    }
}

/// Where a FilterLogEvents page ended: its last event.
struct Cursor {
    ts: i64,
    name: String,
    seq: u64,
    off: u64,
}

impl Cursor {
    /// Whether the cursor comes before the event (`name_cmp`: the event's stream name
    /// against the cursor's).
    fn is_before(&self, ts: i64, name_cmp: CmpOrdering, seq: u64, off: u64) -> bool {
        (ts, name_cmp, seq, off) > (self.ts, CmpOrdering::Equal, self.seq, self.off)
    }
}

fn parse_filter_token(t: &str) -> Result<Cursor> {
    let mut parts = t.splitn(4, '/');
    let mut next = || parts.next().ok_or_else(invalid_token);
    let ts = next()?.parse().map_err(|_| invalid_token())?;
    let seq = next()?.parse().map_err(|_| invalid_token())?;
    let off = next()?.parse().map_err(|_| invalid_token())?;
    let name = unhex(next()?).ok_or_else(invalid_token)?;
    Ok(Cursor { ts, name, seq, off })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let t = position_token('f', (3, 12345));
        assert_eq!(t.len(), 42);
        assert_eq!(parse_position_token(&t).unwrap(), ('f', (3, 12345)));
        assert_eq!(
            parse_position_token(&position_token('b', (0, 0))).unwrap(),
            ('b', (0, 0))
        );
        for bad in [
            "",
            "f/",
            "x/0000000000000000000000000000000000000000",
            "f/12",
            "f/000000000000000000000000000000000000000a",
        ] {
            assert!(parse_position_token(bad).is_err(), "{bad}");
        }
        let c = parse_filter_token(&format!("5/1/2/{}", hex(b"s/1"))).unwrap();
        assert_eq!((c.ts, c.name.as_str(), c.seq, c.off), (5, "s/1", 1, 2));
        for bad in ["", "5/1/2", "x/1/2/00", "5/1/2/zz"] {
            assert!(parse_filter_token(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursor_order() {
        let c = Cursor {
            ts: 10,
            name: "b".into(),
            seq: 1,
            off: 100,
        };
        use CmpOrdering::*;
        for (ts, name, seq, off, after) in [
            (11, Less, 0, 0, true),
            (9, Greater, 9, 9, false),
            (10, Greater, 0, 0, true),
            (10, Less, 9, 9, false),
            (10, Equal, 1, 100, false),
            (10, Equal, 1, 101, true),
            (10, Equal, 2, 0, true),
        ] {
            assert_eq!(
                c.is_before(ts, name, seq, off),
                after,
                "{ts} {name:?} {seq} {off}"
            );
        }
    }
}
