//! How a service writes log events to CloudWatch Logs without depending on it.

/// Opens log streams for writing. The Logs service implements it; the binary hands it to
/// the services that produce logs (Lambda's environments today).
pub trait LogSink: Send + Sync {
    /// Opens `stream` in `group` for appending, creating both if they do not exist.
    fn open(&self, group: &str, stream: &str) -> std::io::Result<Box<dyn LogWriter>>;
}

/// A stream being written. Events are buffered by [`LogWriter::write`] and reach the
/// stream, in order and visible to readers, at the next [`LogWriter::flush`]; dropping the
/// writer flushes it.
pub trait LogWriter: Send {
    /// Adds one event, stamped `timestamp_ms`.
    fn write(&mut self, timestamp_ms: i64, message: &str);
    /// Makes every event written so far visible to readers, in one write where possible.
    fn flush(&mut self);
}
