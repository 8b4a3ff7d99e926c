//! Capturing an environment's stdout and stderr (one pipe), line by line, into its log
//! stream and, while an invocation runs, into that invocation's log (for `LogType: Tail`).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use tokio::net::unix::pipe;

use stratus_aws::LogWriter;

/// What `Tail` returns: the last 4 KB of the invocation's log.
pub const TAIL_BYTES: usize = 4096;

struct State {
    partial: Vec<u8>,
    stream: Box<dyn LogWriter>,
    invocation: Option<Vec<u8>>,
}

pub struct Output {
    rx: pipe::Receiver,
    /// The same pipe, read directly: tokio's `try_read` answers "would block" without
    /// looking while its reactor has not yet seen the pipe become readable, so a line written
    /// just before the function answered (or exited) could miss its invocation's log.
    direct: File,
    state: Mutex<State>,
}

impl Output {
    pub fn new(fd: OwnedFd, stream: Box<dyn LogWriter>) -> std::io::Result<Arc<Output>> {
        let rx = pipe::Receiver::from_owned_fd(fd)?;
        let direct = File::from(rx.as_fd().try_clone_to_owned()?);
        Ok(Arc::new(Output {
            rx,
            direct,
            state: Mutex::new(State {
                partial: Vec::new(),
                stream,
                invocation: None,
            }),
        }))
    }

    /// Reads everything the pipe holds now (its lines reach the log stream in one write).
    /// Returns true at end of file.
    pub fn pump(&self) -> bool {
        self.pump_with(None)
    }

    /// [`Output::pump`], and then what tokio has not seen yet: for an environment that
    /// exited or failed, whose last lines may be in the pipe before the reactor knows. (Not
    /// on the warm path: it costs a system call per pump.)
    pub fn pump_to_now(&self) -> bool {
        self.pump_with(Some(&self.direct))
    }

    fn pump_with(&self, direct: Option<&File>) -> bool {
        let Ok(mut st) = self.state.lock() else {
            return true;
        };
        let ended = st.drain(&self.rx, direct);
        st.stream.flush();
        ended
    }

    /// Reads until end of file, as the pipe becomes readable.
    pub async fn run(self: Arc<Self>) {
        loop {
            if self.rx.readable().await.is_err() || self.pump() {
                return;
            }
        }
    }

    /// Writes a platform line (START, END, REPORT...) to the stream and the invocation log.
    pub fn platform_line(&self, line: &str) {
        self.platform_lines(&[line]);
    }

    /// Adds a platform line (START) without writing it yet: it reaches the stream with the
    /// function's first output or the invocation's END, saving a write per invocation.
    pub fn platform_line_deferred(&self, line: &str) {
        if let Ok(mut st) = self.state.lock() {
            st.line(line.as_bytes());
        }
    }

    /// Writes platform lines, in order, with one write to the stream.
    pub fn platform_lines(&self, lines: &[&str]) {
        if let Ok(mut st) = self.state.lock() {
            for line in lines {
                st.line(line.as_bytes());
            }
            st.stream.flush();
        }
    }

    pub fn begin_invocation(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.invocation = Some(Vec::new());
        }
    }

    /// Ends the invocation's log and returns its last [`TAIL_BYTES`] bytes.
    pub fn end_invocation(&self) -> Vec<u8> {
        let log = self
            .state
            .lock()
            .ok()
            .and_then(|mut st| st.invocation.take())
            .unwrap_or_default();
        let start = log.len().saturating_sub(TAIL_BYTES);
        log[start..].to_vec()
    }
}

impl State {
    /// Reads everything the pipe holds now into lines; true at end of file. Through tokio
    /// first (which clears its readiness once the pipe is empty, so the reading task
    /// sleeps), then, given `direct`, straight from the pipe, for what tokio has not
    /// noticed yet.
    fn drain(&mut self, rx: &pipe::Receiver, direct: Option<&File>) -> bool {
        let mut buf = [0u8; 16 * 1024];
        let mut through_tokio = true;
        loop {
            let read = match (through_tokio, direct) {
                (true, _) => rx.try_read(&mut buf),
                (false, Some(mut f)) => f.read(&mut buf),
                (false, None) => return false,
            };
            match read {
                Ok(0) => {
                    let rest = std::mem::take(&mut self.partial);
                    if !rest.is_empty() {
                        self.line(&rest);
                    }
                    return true;
                }
                Ok(n) => {
                    self.feed(&buf[..n]);
                    through_tokio = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && through_tokio => {
                    through_tokio = false;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return true,
            }
        }
    }

    fn feed(&mut self, mut data: &[u8]) {
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&data[..i]);
            self.line(&line);
            data = &data[i + 1..];
        }
        self.partial.extend_from_slice(data);
        // A runaway line without a newline is cut rather than held forever.
        if self.partial.len() > 256 * 1024 {
            let line = std::mem::take(&mut self.partial);
            self.line(&line);
        }
    }

    fn line(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        self.stream.write(stratus_aws::clock::now_ms(), &text);
        if let Some(log) = &mut self.invocation {
            log.extend_from_slice(line);
            log.push(b'\n');
            // Only the tail is ever returned: bound what is kept.
            if log.len() > 4 * TAIL_BYTES {
                log.drain(..log.len() - TAIL_BYTES);
            }
        }
    }
}
