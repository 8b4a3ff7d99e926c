//! `<data-dir>/usage.db`: one SQLite file of its own (WAL, `synchronous = FULL`), one row per
//! invocation. Only the writer thread writes; queries open a connection of their own.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};
use stratus_aws::{InvocationRecord, Outcome};

use crate::usage::Row;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS invocations (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    function TEXT NOT NULL,
    version TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    init_us INTEGER,
    billed_ms INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    max_memory_used_mb INTEGER NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS invocations_by_start ON invocations (start_ms);
CREATE INDEX IF NOT EXISTS invocations_by_function ON invocations (function, start_ms);
";

pub(crate) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

pub(crate) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// Appends `batch` in one transaction.
pub(crate) fn insert(conn: &mut Connection, batch: &[InvocationRecord]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO invocations (request_id, function, version, start_ms, duration_us,
                 init_us, billed_ms, memory_mb, max_memory_used_mb, outcome)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for r in batch {
            stmt.execute(params![
                r.request_id,
                r.function,
                r.version,
                clamp(r.start_ms),
                clamp(r.duration.as_micros() as u64),
                r.init.map(|i| clamp(i.as_micros() as u64)),
                clamp(r.billed_ms),
                r.memory_mb,
                clamp(r.max_memory_used_mb),
                r.outcome.as_str(),
            ])?;
        }
    }
    tx.commit()
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Deletes rows that started before `cutoff_ms`, then the oldest rows beyond `max_rows`.
/// Returns how many went.
pub(crate) fn enforce_retention(
    conn: &Connection,
    cutoff_ms: u64,
    max_rows: u64,
) -> rusqlite::Result<usize> {
    let old = conn.execute(
        "DELETE FROM invocations WHERE start_ms < ?1",
        params![clamp(cutoff_ms)],
    )?;
    // Ids only grow, so the newest `max_rows` rows are those above max(id) - max_rows.
    let excess = conn.execute(
        "DELETE FROM invocations WHERE id <= (SELECT MAX(id) FROM invocations) - ?1",
        params![clamp(max_rows)],
    )?;
    Ok(old + excess)
}

/// Rows that started at or after `since_ms`, of `function` if given.
pub(crate) fn rows(
    conn: &Connection,
    since_ms: u64,
    function: Option<&str>,
) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = conn.prepare_cached(
        "SELECT function, duration_us, billed_ms, memory_mb, init_us IS NOT NULL, outcome,
             max_memory_used_mb
         FROM invocations WHERE start_ms >= ?1 AND (?2 IS NULL OR function = ?2)",
    )?;
    let rows = stmt.query_map(params![clamp(since_ms), function], |r| {
        let outcome: String = r.get(5)?;
        Ok(Row {
            function: r.get(0)?,
            duration_us: r.get::<_, i64>(1)?.max(0) as u64,
            billed_ms: r.get::<_, i64>(2)?.max(0) as u64,
            memory_mb: r.get(3)?,
            max_memory_used_mb: r.get::<_, i64>(6)?.max(0) as u64,
            cold: r.get(4)?,
            // A name this build does not know counts as an error, never as a success.
            outcome: Outcome::parse(&outcome).unwrap_or(Outcome::FunctionError),
        })
    })?;
    rows.collect()
}
