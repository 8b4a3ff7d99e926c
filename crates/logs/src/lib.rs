//! CloudWatch Logs: log groups and streams, their events on disk, and the operations AWS
//! defines over them (groups, streams, PutLogEvents, GetLogEvents, FilterLogEvents with
//! the filter pattern language, retention, tags).
//!
//! [`LogService`] owns `<data-dir>/logs/`: the layout and event format are described in
//! `store.rs` and `record.rs`, the pattern language in [`filter`]. Every operation is a synchronous
//! method taking and returning typed values ([`model`]) or a [`LogsError`] that carries its
//! AWS code; the wire crate calls them on the blocking pool. The service also implements
//! [`stratus_aws::LogSink`], through which functions' output arrives: those writers buffer
//! in memory and append with one `write` per flush, no fsync, and create their group and
//! stream on first use exactly as the API would.
//!
//! Each group is bounded by [`LogsOptions::max_group_bytes`]: past it the oldest segments
//! of the group are deleted (journald-style), so a flood of output cannot fill the disk and
//! never blocks the writer. Retention is enforced by [`LogService::sweep`], which the binary
//! calls periodically.
//!
//! Invariant: no HTTP, no JSON 1.1 wire shapes, no knowledge of Lambda or of any other
//! service. Names of AWS error codes live here ([`LogsError::code`]); how they travel
//! does not.

mod error;
mod events;
pub mod filter;
pub mod model;
mod names;
mod record;
mod scan;
mod service;
mod sink;
mod store;

pub use error::{LogsError, Result};
pub use filter::FilterPattern;
pub use model::*;
pub use service::{LogService, LogsOptions, RETENTION_DAYS, SweepStats};
