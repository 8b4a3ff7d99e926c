//! [`stratus_aws::LogSink`] for [`LogService`]: how function output reaches a stream.
//!
//! A writer encodes events into a buffer of its own and appends the buffer with one
//! `write` at [`LogWriter::flush`] (or when the buffer reaches
//! [`crate::LogsOptions::writer_buffer_bytes`], so an open writer never holds more). No
//! fsync: function output is cheap and may be lost in a crash of the host, as the page
//! cache's contents are. Readers see flushed events at once. Events larger than
//! PutLogEvents allows are cut to that size. If the stream or group was deleted meanwhile,
//! the next flush creates them again.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use stratus_aws::{LogSink, LogWriter, clock};

use crate::events::MAX_EVENT_BYTES;
use crate::record::{self, EVENT_OVERHEAD};
use crate::service::{Inner, LogService};
use crate::store::{Group, Stream};

impl LogSink for LogService {
    fn open(&self, group: &str, stream: &str) -> io::Result<Box<dyn LogWriter>> {
        let (g, s) = self
            .inner
            .open_stream(group, stream)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(Box::new(Writer {
            inner: self.inner.clone(),
            group_name: group.to_owned(),
            group: g,
            stream: s,
            buf: Vec::new(),
            min_ts: i64::MAX,
            max_ts: i64::MIN,
        }))
    }
}

struct Writer {
    inner: Arc<Inner>,
    group_name: String,
    group: Arc<Group>,
    stream: Arc<Stream>,
    buf: Vec<u8>,
    min_ts: i64,
    max_ts: i64,
}

impl LogWriter for Writer {
    fn write(&mut self, timestamp_ms: i64, message: &str) {
        let mut cut = message.len().min(MAX_EVENT_BYTES - EVENT_OVERHEAD);
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        record::encode(
            &mut self.buf,
            timestamp_ms,
            clock::now_ms(),
            &message[..cut],
        );
        self.min_ts = self.min_ts.min(timestamp_ms);
        self.max_ts = self.max_ts.max(timestamp_ms);
        if self.buf.len() >= self.inner.options.writer_buffer_bytes {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let segment = self.inner.segment_bytes();
        let mut result = Err(io::Error::new(io::ErrorKind::NotFound, "deleted"));
        for _attempt in 0..2 {
            if !self.group.deleted.load(Ordering::Relaxed) {
                result = self.group.append(
                    &self.stream,
                    &self.buf,
                    self.min_ts,
                    self.max_ts,
                    clock::now_ms(),
                    segment,
                );
                if !matches!(&result, Err(e) if e.kind() == io::ErrorKind::NotFound) {
                    break;
                }
            }
            // Deleted under us: create the group and stream again, as a new function
            // environment would.
            match self.inner.open_stream(&self.group_name, &self.stream.name) {
                Ok((g, s)) => {
                    self.group = g;
                    self.stream = s;
                }
                Err(e) => {
                    result = Err(io::Error::other(e.to_string()));
                    break;
                }
            }
        }
        if let Err(e) = result {
            tracing::warn!(error = %e, group = %self.group_name, stream = %self.stream.name, "dropping function log lines");
        }
        self.buf.clear();
        if self.buf.capacity() > 2 * self.inner.options.writer_buffer_bytes {
            self.buf.shrink_to(self.inner.options.writer_buffer_bytes);
        }
        self.min_ts = i64::MAX;
        self.max_ts = i64::MIN;
        self.inner.enforce_cap(&self.group);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.flush();
    }
}
