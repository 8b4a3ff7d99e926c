//! The embedded [`MetaStore`]: one SQLite database in WAL mode with `synchronous=FULL`, so a
//! commit that returned is on disk even if the process is killed the next instant.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

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
";

pub struct SqliteStore {
    // One connection behind a mutex: SQLite has a single writer anyway, and control-plane
    // traffic is small. Reads could move to a pool if they ever show up in a profile.
    conn: Mutex<Connection>,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
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
        let conn = self.lock()?;
        Ok(conn
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
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(
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
        let conn = self.lock()?;
        let n: i64 = conn
            .prepare_cached("SELECT COUNT(*) FROM docs WHERE tbl = ?1 AND key LIKE ?2 ESCAPE '\\'")?
            .query_row(params![table, like_prefix(prefix)], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn commit(&self, ops: &[Op]) -> Result<(), StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for op in ops {
            match op {
                Op::Put {
                    table,
                    key,
                    value,
                    blobs,
                    expect,
                } => {
                    let current = current_version(&tx, table, key)?;
                    check(*expect, current, table, key)?;
                    let version = current.unwrap_or(0) as i64 + 1;
                    tx.prepare_cached(
                        "INSERT INTO docs (tbl, key, value, version) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value, version = excluded.version",
                    )?
                    .execute(params![table, key, value, version])?;
                    tx.prepare_cached("DELETE FROM blob_refs WHERE tbl = ?1 AND key = ?2")?
                        .execute(params![table, key])?;
                    for d in blobs {
                        tx.prepare_cached(
                            "INSERT OR IGNORE INTO blob_refs (tbl, key, digest) VALUES (?1, ?2, ?3)",
                        )?
                        .execute(params![table, key, &d.0[..]])?;
                    }
                }
                Op::Delete { table, key, expect } => {
                    let current = current_version(&tx, table, key)?;
                    check(*expect, current, table, key)?;
                    tx.prepare_cached("DELETE FROM docs WHERE tbl = ?1 AND key = ?2")?
                        .execute(params![table, key])?;
                    tx.prepare_cached("DELETE FROM blob_refs WHERE tbl = ?1 AND key = ?2")?
                        .execute(params![table, key])?;
                }
            }
        }
        // Dropping `tx` on an early return above rolls everything back.
        tx.commit()?;
        Ok(())
    }

    fn adopt_unnamespaced(&self, namespace: &str) -> Result<usize, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let prefix = format!("{namespace}/");
        let moved = tx.execute(
            "UPDATE docs SET tbl = ?1 || tbl WHERE instr(tbl, '/') = 0",
            params![prefix],
        )?;
        tx.execute(
            "UPDATE blob_refs SET tbl = ?1 || tbl WHERE instr(tbl, '/') = 0",
            params![prefix],
        )?;
        tx.commit()?;
        Ok(moved)
    }

    fn referenced_blobs(&self) -> Result<Vec<Digest>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached("SELECT DISTINCT digest FROM blob_refs")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for row in rows {
            if let Ok(bytes) = <[u8; 32]>::try_from(row?.as_slice()) {
                out.push(Digest(bytes));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Store;

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
}
