//! The embedded [`MetaStore`]: one SQLite database in WAL mode with `synchronous=FULL`, so a
//! commit that returned is on disk even if the process is killed the next instant.
//!
//! **Knowing that nothing acknowledged was lost.** SQLite alone cannot tell a whole database
//! from one that lost its last commits: when the WAL is cut short (disk full, a copy made
//! without it or mid-write), recovery stops at the first frame whose checksum fails and
//! silently ignores everything after it. So every write transaction also increments a commit
//! counter kept in the database (`store_meta`), and once SQLite has committed, the new count
//! is written and synced to a small file beside the database (`<db>-commits`, the *commit
//! record*) before the commit returns. The record is therefore never above what was
//! acknowledged and never below it by more than one unacknowledged commit (a crash between
//! the two writes). At open, a database holding fewer commits than the record says lost
//! acknowledged writes; with `PRAGMA quick_check` for damage inside the file, that is what
//! [`SqliteStore::open_with`] reports as [`Damage`]. While it checks, the connection is set
//! not to checkpoint on close, so a refused open leaves the WAL exactly as it found it.
//!
//! **Releasing blobs durably.** The commit that removes the last reference to a blob records
//! it in `released_blobs`, in the same transaction; a later reference removes that record
//! again. Garbage collection deletes released blobs only (see [`crate::Store`]), never one that
//! merely looks unreferenced: a database rolled back past the commit that referenced a blob
//! holds no release for it, so its package stays on disk for repair.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::private::{self, FILE_MODE};
use crate::{Digest, Doc, Expect, MetaStore, Op, StoreError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS docs (
    tbl     TEXT    NOT NULL,
    key     TEXT    NOT NULL,
    value   BLOB    NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (tbl, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blob_refs (
    tbl    TEXT NOT NULL,
    key    TEXT NOT NULL,
    digest BLOB NOT NULL,
    PRIMARY KEY (tbl, key, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blob_refs_digest ON blob_refs (digest);
CREATE TABLE IF NOT EXISTS store_meta (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO store_meta (name, value) VALUES ('commits', 0);
CREATE TABLE IF NOT EXISTS released_blobs (
    digest BLOB PRIMARY KEY
) WITHOUT ROWID;
";

/// What is wrong with a database found at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// SQLite's own check found the file damaged (first problems reported).
    Corrupt { problems: Vec<String> },
    /// The database holds fewer commits than were acknowledged: its WAL was cut short, or
    /// it was replaced by an older copy.
    LostCommits { holds: u64, acknowledged: u64 },
    /// The database has commits but the record of them beside it is missing or unreadable,
    /// so nothing tells whether it is whole (a copy of the database file alone, say).
    NoRecord { holds: u64 },
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Corrupt { problems } => write!(
                f,
                "the database file is damaged (integrity check: {})",
                problems.join("; ")
            ),
            Damage::LostCommits {
                holds,
                acknowledged,
            } => write!(
                f,
                "the database holds {holds} commits but {acknowledged} were acknowledged: \
                 the last {} are lost (its write-ahead log was cut short, or it was replaced \
                 by an older copy)",
                acknowledged - holds
            ),
            Damage::NoRecord { holds } => write!(
                f,
                "the database holds {holds} commits but their record beside it is missing \
                 or unreadable, so whether it lost any cannot be told"
            ),
        }
    }
}

struct Inner {
    conn: Connection,
    /// The commit record, written after every commit (see the module docs).
    record: File,
    record_path: PathBuf,
}

pub struct SqliteStore {
    // One connection behind a mutex: SQLite has a single writer anyway, and control-plane
    // traffic is small. Reads could move to a pool if they ever show up in a profile.
    inner: Mutex<Inner>,
}

/// The commit record of the database at `db`.
pub fn record_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-commits");
    PathBuf::from(name)
}

/// The database's own files: the database, its WAL and shared-memory index.
pub(crate) fn database_files(db: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [db.to_owned(), with("-wal"), with("-shm")]
}

/// Makes the database's files private before SQLite opens them: existing ones tightened
/// (with a warning), a new database created empty at 0600 (SQLite takes an empty file for a
/// new database, and gives its WAL and index the database file's mode).
pub fn make_private(db: &Path) -> Result<(), StoreError> {
    for f in database_files(db)
        .into_iter()
        .chain(std::iter::once(record_path(db)))
    {
        private::tighten_and_warn(&f, FILE_MODE).map_err(|e| StoreError::io(&f, e))?;
    }
    if !db.exists() {
        private::create_file(db).map_err(|e| StoreError::io(db, e))?;
    }
    Ok(())
}

/// The count in a commit record; `None` if there is no record, an error if it is garbled.
fn read_record(path: &Path) -> Result<Option<u64>, ()> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| ()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(_) => Err(()),
    }
}

/// The database's commit counter, `None` before the counter existed (a new database, or
/// one written by a version without it).
fn counter(conn: &Connection) -> Result<Option<u64>, rusqlite::Error> {
    let has_table: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'store_meta')",
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        return Ok(None);
    }
    Ok(conn
        .query_row(
            "SELECT value FROM store_meta WHERE name = 'commits'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .map(|v| v as u64))
}

/// `PRAGMA quick_check`'s findings (its few first), empty when the file is sound.
fn quick_check(conn: &Connection) -> Vec<String> {
    let rows = (|| -> Result<Vec<String>, rusqlite::Error> {
        let mut stmt = conn.prepare("PRAGMA quick_check(10)")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    })();
    match rows {
        Ok(rows) if rows == ["ok"] => Vec::new(),
        Ok(rows) => rows,
        Err(e) => vec![e.to_string()],
    }
}

/// What open finds wrong with the database, if anything.
fn examine(conn: &Connection, record: Result<Option<u64>, ()>) -> Option<Damage> {
    let problems = quick_check(conn);
    if !problems.is_empty() {
        return Some(Damage::Corrupt { problems });
    }
    let holds = match counter(conn) {
        Ok(h) => h,
        Err(e) => {
            return Some(Damage::Corrupt {
                problems: vec![e.to_string()],
            });
        }
    };
    match (holds, record) {
        (h, Ok(Some(acknowledged))) if h.unwrap_or(0) < acknowledged => Some(Damage::LostCommits {
            holds: h.unwrap_or(0),
            acknowledged,
        }),
        (Some(holds), Err(())) if holds > 0 => Some(Damage::NoRecord { holds }),
        (Some(holds), Ok(None)) if holds > 0 => Some(Damage::NoRecord { holds }),
        _ => None,
    }
}

impl SqliteStore {
    /// Opens the database at `path`, refusing a damaged one ([`StoreError::Damaged`]).
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, false).map(|(s, _)| s)
    }

    /// Opens (creating if needed) the database at `path` and checks it (see the module
    /// docs). A damaged database is refused, untouched, unless `accept_damaged`: then it is
    /// opened as it is, its commit record is reset to what it holds, and the damage found
    /// comes back with it.
    pub fn open_with(
        path: &Path,
        accept_damaged: bool,
    ) -> Result<(SqliteStore, Option<Damage>), StoreError> {
        let record_path = record_path(path);
        make_private(path)?;
        let conn = Connection::open(path)?;
        // Until the database is known to be whole, closing it must not checkpoint: a
        // refused open leaves the WAL, and whatever lies past its cut, as it was.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let damage = examine(&conn, read_record(&record_path));
        if let Some(damage) = &damage
            && !accept_damaged
        {
            return Err(StoreError::Damaged {
                path: path.to_owned(),
                damage: damage.clone(),
            });
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        let holds = counter(&conn)?.unwrap_or(0);
        let record =
            private::create_file(&record_path).map_err(|e| StoreError::io(&record_path, e))?;
        let inner = Inner {
            conn,
            record,
            record_path,
        };
        // Sets the record to what the database holds: the same on a whole database, one
        // ahead of it after a crash between a commit and its record, lower after an
        // accepted loss.
        inner.write_record(holds)?;
        inner
            .conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)?;
        Ok((
            SqliteStore {
                inner: Mutex::new(inner),
            },
            damage,
        ))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        self.inner.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Runs `f` in one immediate write transaction that also counts itself, and records
    /// the count durably before returning: the caller may acknowledge the write then.
    fn write<R>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut inner = self.lock()?;
        let tx = inner
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Dropping `tx` on an early return rolls everything back.
        let out = f(&tx)?;
        let count: i64 = tx
            .prepare_cached(
                "UPDATE store_meta SET value = value + 1 WHERE name = 'commits' RETURNING value",
            )?
            .query_row([], |r| r.get(0))?;
        tx.commit()?;
        inner.write_record(count as u64)?;
        Ok(out)
    }
}

impl Inner {
    fn write_record(&self, count: u64) -> Result<(), StoreError> {
        // Fixed width, so an overwrite in place never leaves a longer old number's tail.
        let text = format!("{count:020}\n");
        self.record
            .write_all_at(text.as_bytes(), 0)
            .and_then(|()| self.record.set_len(text.len() as u64))
            .and_then(|()| self.record.sync_data())
            .map_err(|e| StoreError::io(&self.record_path, e))
    }
}

fn current_version(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    key: &str,
) -> Result<Option<u64>, StoreError> {
    Ok(tx
        .prepare_cached("SELECT version FROM docs WHERE tbl = ?1 AND key = ?2")?
        .query_row(params![table, key], |r| r.get::<_, i64>(0))
        .optional()?
        .map(|v| v as u64))
}

fn check(expect: Expect, current: Option<u64>, table: &str, key: &str) -> Result<(), StoreError> {
    let ok = match (expect, current) {
        (Expect::Any, _) => true,
        (Expect::Absent, None) => true,
        (Expect::Present, Some(_)) => true,
        (Expect::Version(want), Some(have)) => want == have,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::Conflict {
            table: table.to_owned(),
            key: key.to_owned(),
        })
    }
}

/// Escapes `prefix` for a LIKE pattern with `\` as the escape character.
fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl MetaStore for SqliteStore {
    fn get(&self, table: &str, key: &str) -> Result<Option<Doc>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .conn
            .prepare_cached("SELECT value, version FROM docs WHERE tbl = ?1 AND key = ?2")?
            .query_row(params![table, key], |r| {
                Ok(Doc {
                    value: r.get(0)?,
                    version: r.get::<_, i64>(1)? as u64,
                })
            })
            .optional()?)
    }

    fn list(
        &self,
        table: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Doc)>, StoreError> {
        let inner = self.lock()?;
        let mut stmt = inner.conn.prepare_cached(
            "SELECT key, value, version FROM docs
             WHERE tbl = ?1 AND key LIKE ?2 ESCAPE '\\' AND key > ?3
             ORDER BY key LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![
                table,
                like_prefix(prefix),
                start_after.unwrap_or(""),
                limit.min(i64::MAX as usize) as i64
            ],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Doc {
                        value: r.get(1)?,
                        version: r.get::<_, i64>(2)? as u64,
                    },
                ))
            },
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn count(&self, table: &str, prefix: &str) -> Result<u64, StoreError> {
        let inner = self.lock()?;
        let n: i64 = inner
            .conn
            .prepare_cached("SELECT COUNT(*) FROM docs WHERE tbl = ?1 AND key LIKE ?2 ESCAPE '\\'")?
            .query_row(params![table, like_prefix(prefix)], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn commit(&self, ops: &[Op]) -> Result<(), StoreError> {
        self.write(|tx| {
            // Blobs whose references this commit removes or adds: the first may have lost
            // their last one, the second are live again.
            let mut dropped: Vec<Vec<u8>> = Vec::new();
            let mut added: Vec<Vec<u8>> = Vec::new();
            for op in ops {
                let (table, key, expect) = match op {
                    Op::Put {
                        table, key, expect, ..
                    }
                    | Op::Delete { table, key, expect } => (table, key, expect),
                };
                let current = current_version(tx, table, key)?;
                check(*expect, current, table, key)?;
                {
                    let mut stmt = tx.prepare_cached(
                        "DELETE FROM blob_refs WHERE tbl = ?1 AND key = ?2 RETURNING digest",
                    )?;
                    let rows = stmt.query_map(params![table, key], |r| r.get::<_, Vec<u8>>(0))?;
                    for row in rows {
                        dropped.push(row?);
                    }
                }
                match op {
                    Op::Put { value, blobs, .. } => {
                        let version = current.unwrap_or(0) as i64 + 1;
                        tx.prepare_cached(
                            "INSERT INTO docs (tbl, key, value, version) VALUES (?1, ?2, ?3, ?4)
                             ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value, version = excluded.version",
                        )?
                        .execute(params![table, key, value, version])?;
                        for d in blobs {
                            tx.prepare_cached(
                                "INSERT OR IGNORE INTO blob_refs (tbl, key, digest) VALUES (?1, ?2, ?3)",
                            )?
                            .execute(params![table, key, &d.0[..]])?;
                            added.push(d.0.to_vec());
                        }
                    }
                    Op::Delete { .. } => {
                        tx.prepare_cached("DELETE FROM docs WHERE tbl = ?1 AND key = ?2")?
                            .execute(params![table, key])?;
                    }
                }
            }
            for d in &added {
                tx.prepare_cached("DELETE FROM released_blobs WHERE digest = ?1")?
                    .execute(params![d])?;
            }
            for d in &dropped {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO released_blobs (digest)
                     SELECT ?1 WHERE NOT EXISTS (SELECT 1 FROM blob_refs WHERE digest = ?1)",
                )?
                .execute(params![d])?;
            }
            Ok(())
        })
    }

    fn adopt_unnamespaced(&self, namespace: &str) -> Result<usize, StoreError> {
        let prefix = format!("{namespace}/");
        self.write(|tx| {
            let moved = tx.execute(
                "UPDATE docs SET tbl = ?1 || tbl WHERE instr(tbl, '/') = 0",
                params![prefix],
            )?;
            tx.execute(
                "UPDATE blob_refs SET tbl = ?1 || tbl WHERE instr(tbl, '/') = 0",
                params![prefix],
            )?;
            Ok(moved)
        })
    }

    fn released_blobs(&self) -> Result<Vec<Digest>, StoreError> {
        let inner = self.lock()?;
        let mut stmt = inner
            .conn
            .prepare_cached("SELECT digest FROM released_blobs")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        digests(rows)
    }

    fn forget_released(&self, digests: &[Digest]) -> Result<(), StoreError> {
        if digests.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            for d in digests {
                tx.prepare_cached("DELETE FROM released_blobs WHERE digest = ?1")?
                    .execute(params![&d.0[..]])?;
            }
            Ok(())
        })
    }

    fn referenced_blobs(&self) -> Result<Vec<Digest>, StoreError> {
        let inner = self.lock()?;
        let mut stmt = inner
            .conn
            .prepare_cached("SELECT DISTINCT digest FROM blob_refs")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        digests(rows)
    }
}

fn digests(
    rows: impl Iterator<Item = Result<Vec<u8>, rusqlite::Error>>,
) -> Result<Vec<Digest>, StoreError> {
    let mut out = Vec::new();
    for row in rows {
        if let Ok(bytes) = <[u8; 32]>::try_from(row?.as_slice()) {
            out.push(Digest(bytes));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Store;
    use std::path::Path;

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db")).unwrap();
        (dir, s)
    }

    #[test]
    fn versions_grow_and_preconditions_hold() {
        let (_d, s) = open();
        s.commit(&[Op::put("t", "a", b"1".to_vec(), Expect::Absent)])
            .unwrap();
        let doc = s.get("t", "a").unwrap().unwrap();
        assert_eq!((doc.value.as_slice(), doc.version), (&b"1"[..], 1));
        // Absent fails now that it exists.
        assert!(matches!(
            s.commit(&[Op::put("t", "a", b"2".to_vec(), Expect::Absent)]),
            Err(StoreError::Conflict { .. })
        ));
        // Wrong version fails, right version succeeds.
        assert!(
            s.commit(&[Op::put("t", "a", b"2".to_vec(), Expect::Version(7))])
                .is_err()
        );
        s.commit(&[Op::put("t", "a", b"2".to_vec(), Expect::Version(1))])
            .unwrap();
        assert_eq!(s.get("t", "a").unwrap().unwrap().version, 2);
        assert!(
            s.commit(&[Op::delete("t", "missing", Expect::Present)])
                .is_err()
        );
    }

    #[test]
    fn a_failed_precondition_rolls_back_the_whole_commit() {
        let (_d, s) = open();
        s.commit(&[Op::put("t", "b", b"x".to_vec(), Expect::Absent)])
            .unwrap();
        let res = s.commit(&[
            Op::put("t", "a", b"new".to_vec(), Expect::Absent),
            Op::put("t", "b", b"y".to_vec(), Expect::Absent),
        ]);
        assert!(res.is_err());
        assert!(s.get("t", "a").unwrap().is_none());
        assert_eq!(s.get("t", "b").unwrap().unwrap().value, b"x");
    }

    #[test]
    fn list_is_ordered_paged_and_prefix_safe() {
        let (_d, s) = open();
        let ops: Vec<Op> = ["b", "a", "c", "a_x", "a%y"]
            .iter()
            .map(|k| Op::put("t", k, k.as_bytes().to_vec(), Expect::Any))
            .collect();
        s.commit(&ops).unwrap();
        let keys = |v: Vec<(String, Doc)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys(s.list("t", "", None, 10).unwrap()),
            ["a", "a%y", "a_x", "b", "c"]
        );
        assert_eq!(keys(s.list("t", "", Some("a_x"), 2).unwrap()), ["b", "c"]);
        // '_' and '%' in a prefix are literal, not LIKE wildcards.
        assert_eq!(keys(s.list("t", "a_", None, 10).unwrap()), ["a_x"]);
        assert_eq!(s.count("t", "a").unwrap(), 3);
        assert_eq!(s.count("other", "").unwrap(), 0);
    }

    #[test]
    fn blob_references_follow_documents_and_gc_removes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let pinned = store.blobs.put(b"kept").unwrap();
        let kept = pinned.digest();
        // Stored, then its writer gave up before committing: the pin is gone.
        let orphan = store.blobs.put(b"orphan").unwrap().digest();
        store
            .meta
            .commit(&[Op::put_with_blobs(
                "t",
                "f",
                b"{}".to_vec(),
                vec![kept],
                Expect::Absent,
            )])
            .unwrap();
        drop(pinned);
        assert_eq!(store.collect_garbage().unwrap(), 1);
        assert!(store.blobs.contains(&kept));
        assert!(!store.blobs.contains(&orphan));
        store
            .meta
            .commit(&[Op::delete("t", "f", Expect::Present)])
            .unwrap();
        assert!(store.meta.referenced_blobs().unwrap().is_empty());
        // Reopening collects what the delete left.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert!(store.blobs.list().unwrap().is_empty());
    }

    #[test]
    fn namespaces_keep_services_apart_and_adopt_old_tables() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // A table written before namespaces existed.
        store
            .meta
            .commit(&[Op::put("functions", "f", b"old".to_vec(), Expect::Absent)])
            .unwrap();
        let lambda = store.namespace("lambda");
        let logs = store.namespace("logs");
        assert_eq!(lambda.meta.get("functions", "f").unwrap(), None);
        assert_eq!(store.meta.adopt_unnamespaced("lambda").unwrap(), 1);
        assert_eq!(
            store.meta.adopt_unnamespaced("lambda").unwrap(),
            0,
            "idempotent"
        );
        assert_eq!(
            lambda.meta.get("functions", "f").unwrap().unwrap().value,
            b"old"
        );
        // Same table and key in another namespace: another document.
        logs.meta
            .commit(&[Op::put("functions", "f", b"logs'".to_vec(), Expect::Absent)])
            .unwrap();
        assert_eq!(
            lambda.meta.get("functions", "f").unwrap().unwrap().value,
            b"old"
        );
        assert_eq!(lambda.meta.count("functions", "").unwrap(), 1);
        // A conflict names the service's own table.
        let err = lambda
            .meta
            .commit(&[Op::put("functions", "f", b"x".to_vec(), Expect::Absent)])
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Conflict { table, .. } if table == "functions"),
            "{err:?}"
        );
        assert!(matches!(
            lambda.meta.adopt_unnamespaced("x"),
            Err(StoreError::Nested)
        ));
    }

    #[test]
    fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SqliteStore::open(&dir.path().join("db")).unwrap();
            s.commit(&[Op::put("t", "k", b"v".to_vec(), Expect::Absent)])
                .unwrap();
        }
        let s = SqliteStore::open(&dir.path().join("db")).unwrap();
        assert_eq!(s.get("t", "k").unwrap().unwrap().value, b"v");
    }

    /// Copies the database's files as they are on disk now (a backup, or a bad copy).
    fn snapshot(db: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for f in database_files(db).iter().take(2) {
            if f.exists() {
                std::fs::copy(f, to.join(f.file_name().unwrap())).unwrap();
            }
        }
    }

    fn restore(from: &Path, db: &Path) {
        for f in database_files(db) {
            let _ = std::fs::remove_file(&f);
            let saved = from.join(f.file_name().unwrap());
            if saved.exists() {
                std::fs::copy(saved, &f).unwrap();
            }
        }
    }

    #[test]
    fn a_cut_short_wal_is_refused_untouched_and_accepted_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("live/stratus.db");
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        let s = SqliteStore::open(&db).unwrap();
        for i in 0..8 {
            s.commit(&[Op::put(
                "t",
                &format!("k{i}"),
                vec![b'x'; 3000],
                Expect::Absent,
            )])
            .unwrap();
        }
        // A copy taken while the server runs: the database file and its WAL, whose second
        // half never made it (disk full, a copy cut short).
        let copy = dir.path().join("copy");
        snapshot(&db, &copy);
        std::fs::copy(record_path(&db), record_path(&copy.join("stratus.db"))).unwrap();
        drop(s);
        let wal = copy.join("stratus.db-wal");
        let len = std::fs::metadata(&wal).unwrap().len();
        assert!(len > 4096, "the commits are in the WAL");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&wal)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
        let cut = copy.join("stratus.db");
        let err = SqliteStore::open(&cut).err().unwrap();
        let StoreError::Damaged {
            damage:
                Damage::LostCommits {
                    holds,
                    acknowledged,
                },
            ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert!(holds < acknowledged, "{err}");
        assert_eq!(*acknowledged, 8);
        assert!(err.to_string().contains("lost"), "{err}");
        // Refused twice: the refusal changed nothing (no checkpoint, no new record).
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), len / 2);
        assert!(SqliteStore::open(&cut).is_err());
        // Accepted: it runs on what is left, and the next start is clean.
        let (s, damage) = SqliteStore::open_with(&cut, true).unwrap();
        assert!(matches!(damage, Some(Damage::LostCommits { .. })));
        let left = s.count("t", "").unwrap();
        assert!(left < 8, "{left}");
        s.commit(&[Op::put("t", "after", b"v".to_vec(), Expect::Absent)])
            .unwrap();
        drop(s);
        let s = SqliteStore::open(&cut).unwrap();
        assert_eq!(s.count("t", "").unwrap(), left + 1);
    }

    #[test]
    fn a_missing_record_or_a_damaged_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("stratus.db");
        {
            let s = SqliteStore::open(&db).unwrap();
            s.commit(&[Op::put("t", "k", b"v".to_vec(), Expect::Absent)])
                .unwrap();
        }
        std::fs::remove_file(record_path(&db)).unwrap();
        assert!(matches!(
            SqliteStore::open(&db),
            Err(StoreError::Damaged {
                damage: Damage::NoRecord { holds: 1 },
                ..
            })
        ));
        SqliteStore::open_with(&db, true).unwrap();
        SqliteStore::open(&db).unwrap();
        // The database file removed while its record stays: everything was lost.
        for f in database_files(&db) {
            let _ = std::fs::remove_file(f);
        }
        assert!(matches!(
            SqliteStore::open(&db),
            Err(StoreError::Damaged {
                damage: Damage::LostCommits {
                    holds: 0,
                    acknowledged: 1
                },
                ..
            })
        ));
        // Damage inside the file.
        let db2 = dir.path().join("other.db");
        {
            let s = SqliteStore::open(&db2).unwrap();
            let ops: Vec<Op> = (0..200)
                .map(|i| Op::put("t", &format!("k{i:04}"), vec![b'y'; 200], Expect::Any))
                .collect();
            s.commit(&ops).unwrap();
        }
        let mut bytes = std::fs::read(&db2).unwrap();
        assert!(bytes.len() > 3 * 4096);
        for b in &mut bytes[4096 + 100..3 * 4096] {
            *b = 0xA5;
        }
        std::fs::write(&db2, bytes).unwrap();
        let err = SqliteStore::open(&db2).err().unwrap();
        assert!(
            matches!(
                &err,
                StoreError::Damaged {
                    damage: Damage::Corrupt { .. },
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_rolled_back_database_keeps_the_blobs_it_forgot_and_released_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("stratus.db");
        let put = |store: &Store, key: &str, bytes: &[u8]| {
            let pinned = store.blobs.put(bytes).unwrap();
            store
                .meta
                .commit(&[Op::put_with_blobs(
                    "t",
                    key,
                    b"{}".to_vec(),
                    vec![*pinned],
                    Expect::Any,
                )])
                .unwrap();
            drop(pinned);
            store.collect_garbage().unwrap();
            Digest::of(bytes)
        };
        let store = Store::open(dir.path()).unwrap();
        let a = put(&store, "a", b"package a");
        let backup = dir.path().join("backup");
        snapshot(&db, &backup);
        // Acknowledged after the backup: lost when the database is rolled back to it.
        let b = put(&store, "b", b"package b");
        // Released after the backup: its release was committed, so it goes at once.
        let c = put(&store, "c", b"package c");
        store
            .meta
            .commit(&[Op::delete("t", "c", Expect::Present)])
            .unwrap();
        assert_eq!(store.meta.released_blobs().unwrap(), vec![c]);
        assert_eq!(store.collect_garbage().unwrap(), 1);
        assert!(!store.blobs.contains(&c));
        assert!(store.meta.released_blobs().unwrap().is_empty());
        drop(store);

        restore(&backup, &db);
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::Damaged { .. })
        ));
        let store = Store::open_with(dir.path(), true).unwrap();
        assert!(store.meta.get("t", "b").unwrap().is_none(), "rolled back");
        // b's package is unreferenced now but was never released: kept, for repair.
        assert!(store.blobs.contains(&b));
        assert_eq!(store.collect_garbage().unwrap(), 0);
        assert!(store.blobs.contains(&b) && store.blobs.contains(&a));
        // What this database releases from now on is collected as usual.
        store
            .meta
            .commit(&[Op::delete("t", "a", Expect::Present)])
            .unwrap();
        assert_eq!(store.collect_garbage().unwrap(), 1);
        assert!(!store.blobs.contains(&a));
        assert!(store.blobs.contains(&b));
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert!(store.blobs.contains(&b));
    }

    #[test]
    fn a_write_cut_off_before_its_commit_is_collected_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let orphan = store.blobs.put(b"never committed").unwrap().digest();
        // The process dies here: no collection ran.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.blobs.contains(&orphan));
        assert!(store.blobs.pending().unwrap().is_empty());
    }

    #[test]
    fn the_store_is_private_and_a_wider_one_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let store = Store::open(&root).unwrap();
        let pinned = store.blobs.put(b"code").unwrap();
        store
            .meta
            .commit(&[Op::put_with_blobs(
                "t",
                "k",
                b"{}".to_vec(),
                vec![*pinned],
                Expect::Absent,
            )])
            .unwrap();
        let db = root.join("stratus.db");
        let mut files: Vec<PathBuf> = database_files(&db).into();
        files.push(record_path(&db));
        files.push(store.blobs.path(&pinned));
        for f in &files {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
        let shard = store.blobs.path(&pinned).parent().unwrap().to_owned();
        for d in [&root, &root.join("blobs"), &shard] {
            assert_eq!(mode(d), 0o700, "{}", d.display());
        }
        drop(pinned);
        drop(store);
        // As an older version left them.
        for f in &files {
            let _ = std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644));
        }
        for d in [&root.join("blobs"), &shard] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let _store = Store::open(&root).unwrap();
        for f in files.iter().filter(|f| f.exists()) {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
        for d in [&root.join("blobs"), &shard] {
            assert_eq!(mode(d), 0o700, "{}", d.display());
        }
    }
}
