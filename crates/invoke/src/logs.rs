//! Function logs: one stream per environment under the function's log group, stored as
//! JSON lines `{"timestamp": <ms>, "message": "..."}` in
//! `<logs>/<group>/<stream>.jsonl` (path separators in names percent-escaped).
//! Never mixed into the server's own log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct LogStore {
    root: PathBuf,
}

fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '/' => out.push_str("%2F"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
    out
}

pub fn now_ms() -> u64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u64
}

impl LogStore {
    pub fn new(root: &Path) -> LogStore {
        LogStore {
            root: root.to_owned(),
        }
    }

    pub fn stream_path(&self, group: &str, stream: &str) -> PathBuf {
        self.root
            .join(escape(group))
            .join(format!("{}.jsonl", escape(stream)))
    }

    pub fn open(&self, group: &str, stream: &str) -> std::io::Result<LogStream> {
        let path = self.stream_path(group, stream);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(LogStream {
            file,
            pending: Vec::new(),
        })
    }

    /// Every message of a stream, in order (tests and, later, the Logs API).
    pub fn read(&self, group: &str, stream: &str) -> Vec<(u64, String)> {
        std::fs::read_to_string(self.stream_path(group, stream))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                Some((
                    v.get("timestamp")?.as_u64()?,
                    v.get("message")?.as_str()?.to_owned(),
                ))
            })
            .collect()
    }

    /// The streams of a group.
    pub fn streams(&self, group: &str) -> Vec<PathBuf> {
        std::fs::read_dir(self.root.join(escape(group)))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

/// A log stream being written. Records are built in memory and reach the file with one
/// `write` per [`LogStream::flush`] (formatting straight into the file would cost a system
/// call per JSON fragment).
pub struct LogStream {
    file: File,
    pending: Vec<u8>,
}

impl LogStream {
    /// Adds one record; it reaches the file at the next [`LogStream::flush`].
    pub fn write(&mut self, message: &str) {
        #[derive(serde::Serialize)]
        struct Record<'a> {
            timestamp: u64,
            message: &'a str,
        }
        let record = Record {
            timestamp: now_ms(),
            message,
        };
        let start = self.pending.len();
        if serde_json::to_writer(&mut self.pending, &record).is_err() {
            self.pending.truncate(start);
            return;
        }
        self.pending.push(b'\n');
    }

    /// Writes every pending record, in one `write`.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if let Err(e) = self.file.write_all(&self.pending) {
            tracing::warn!(error = %e, "writing a function log");
        }
        self.pending.clear();
    }
}

impl Drop for LogStream {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn streams_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let store = LogStore::new(d.path());
        let mut s = store
            .open("/aws/lambda/f", "2024/01/01/[$LATEST]abc")
            .unwrap();
        s.write("START RequestId: 1");
        s.write("hello\tworld");
        // Nothing reaches the file before the flush, then both records at once.
        assert!(
            store
                .read("/aws/lambda/f", "2024/01/01/[$LATEST]abc")
                .is_empty()
        );
        s.flush();
        let got: Vec<String> = store
            .read("/aws/lambda/f", "2024/01/01/[$LATEST]abc")
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        assert_eq!(got, ["START RequestId: 1", "hello\tworld"]);
        assert_eq!(store.streams("/aws/lambda/f").len(), 1);
    }
}
