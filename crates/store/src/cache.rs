//! A read-through cache in front of a [`MetaStore`], and a way to run code that must not
//! wait for the database.
//!
//! Reads of one document (`get`) are answered from memory after the first; every commit that
//! goes through the cache drops the keys it wrote. The cache is only correct when every
//! writer of the underlying store goes through it, which holds for the embedded store (one
//! process owns the database).
//!
//! [`cache_only`] runs a closure in which a read the cache cannot answer fails with
//! [`StoreError::NotCached`] instead of touching the database: hot paths on an async runtime
//! try that first and move to a blocking thread only when it fails.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::{Digest, Doc, MetaStore, Op, StoreError};

/// Beyond this many cached keys the cache starts over (documents are small, but the set of
/// keys read is not bounded by anything else).
const MAX_ENTRIES: usize = 50_000;

thread_local! {
    static CACHE_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with database access turned off on this thread: store reads that miss the cache,
/// and every list, count or commit, fail with [`StoreError::NotCached`].
pub fn cache_only<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            CACHE_ONLY.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(CACHE_ONLY.with(|c| c.replace(true)));
    f()
}

fn refuse_io() -> Result<(), StoreError> {
    if CACHE_ONLY.with(Cell::get) {
        Err(StoreError::NotCached)
    } else {
        Ok(())
    }
}

#[derive(Default)]
struct Entries {
    /// Bumped by every commit: a read that started before a commit must not fill the cache
    /// with what it read (it may be the old value).
    generation: u64,
    docs: HashMap<(String, String), Option<Doc>>,
}

pub struct CachedMeta<S> {
    inner: S,
    entries: Mutex<Entries>,
}

impl<S: MetaStore> CachedMeta<S> {
    pub fn new(inner: S) -> CachedMeta<S> {
        CachedMeta {
            inner,
            entries: Mutex::default(),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Entries>, StoreError> {
        self.entries.lock().map_err(|_| StoreError::Poisoned)
    }
}

impl<S: MetaStore> MetaStore for CachedMeta<S> {
    fn get(&self, table: &str, key: &str) -> Result<Option<Doc>, StoreError> {
        let generation = {
            let e = self.lock()?;
            if let Some(doc) = e.docs.get(&(table.to_owned(), key.to_owned())) {
                return Ok(doc.clone());
            }
            e.generation
        };
        refuse_io()?;
        let doc = self.inner.get(table, key)?;
        let mut e = self.lock()?;
        if e.generation == generation {
            if e.docs.len() >= MAX_ENTRIES {
                e.docs.clear();
            }
            e.docs
                .insert((table.to_owned(), key.to_owned()), doc.clone());
        }
        Ok(doc)
    }

    fn list(
        &self,
        table: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Doc)>, StoreError> {
        refuse_io()?;
        self.inner.list(table, prefix, start_after, limit)
    }

    fn count(&self, table: &str, prefix: &str) -> Result<u64, StoreError> {
        refuse_io()?;
        self.inner.count(table, prefix)
    }

    fn commit(&self, ops: &[Op]) -> Result<(), StoreError> {
        refuse_io()?;
        let result = self.inner.commit(ops);
        // Even a failed commit invalidates: the keys' state is whatever the database says.
        let mut e = self.lock()?;
        e.generation += 1;
        for op in ops {
            let (Op::Put { table, key, .. } | Op::Delete { table, key, .. }) = op;
            e.docs.remove(&(table.clone(), key.clone()));
        }
        result
    }

    fn referenced_blobs(&self) -> Result<Vec<Digest>, StoreError> {
        refuse_io()?;
        self.inner.referenced_blobs()
    }

    fn released_blobs(&self) -> Result<Vec<Digest>, StoreError> {
        refuse_io()?;
        self.inner.released_blobs()
    }

    fn forget_released(&self, digests: &[Digest]) -> Result<(), StoreError> {
        refuse_io()?;
        self.inner.forget_released(digests)
    }

    fn adopt_unnamespaced(&self, namespace: &str) -> Result<usize, StoreError> {
        refuse_io()?;
        let moved = self.inner.adopt_unnamespaced(namespace)?;
        // Every key may have moved: start over.
        let mut entries = self.entries.lock().map_err(|_| StoreError::Poisoned)?;
        entries.generation += 1;
        entries.docs.clear();
        Ok(moved)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Expect, SqliteStore};

    fn store() -> (tempfile::TempDir, CachedMeta<SqliteStore>) {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&d.path().join("db")).unwrap();
        (d, CachedMeta::new(s))
    }

    #[test]
    fn reads_after_the_first_need_no_database_and_commits_are_seen() {
        let (_d, s) = store();
        s.commit(&[Op::put("t", "k", b"v1".to_vec(), Expect::Absent)])
            .unwrap();
        // Not read yet: cache-only cannot answer.
        assert!(matches!(
            cache_only(|| s.get("t", "k")),
            Err(StoreError::NotCached)
        ));
        assert_eq!(s.get("t", "k").unwrap().unwrap().value, b"v1");
        assert_eq!(
            cache_only(|| s.get("t", "k")).unwrap().unwrap().value,
            b"v1"
        );
        // An absent key is remembered too.
        assert!(s.get("t", "absent").unwrap().is_none());
        assert!(cache_only(|| s.get("t", "absent")).unwrap().is_none());
        // A commit drops what it wrote: the next read sees the new value.
        s.commit(&[
            Op::put("t", "k", b"v2".to_vec(), Expect::Version(1)),
            Op::put("t", "absent", b"now".to_vec(), Expect::Absent),
        ])
        .unwrap();
        assert!(matches!(
            cache_only(|| s.get("t", "k")),
            Err(StoreError::NotCached)
        ));
        assert_eq!(s.get("t", "k").unwrap().unwrap().value, b"v2");
        assert_eq!(s.get("t", "absent").unwrap().unwrap().value, b"now");
        s.commit(&[Op::delete("t", "k", Expect::Present)]).unwrap();
        assert!(s.get("t", "k").unwrap().is_none());
    }

    #[test]
    fn cache_only_refuses_every_other_operation_and_ends_with_its_closure() {
        let (_d, s) = store();
        cache_only(|| {
            assert!(matches!(
                s.list("t", "", None, 10),
                Err(StoreError::NotCached)
            ));
            assert!(matches!(s.count("t", ""), Err(StoreError::NotCached)));
            assert!(matches!(
                s.commit(&[Op::put("t", "k", b"v".to_vec(), Expect::Any)]),
                Err(StoreError::NotCached)
            ));
        });
        s.commit(&[Op::put("t", "k", b"v".to_vec(), Expect::Any)])
            .unwrap();
        assert_eq!(s.count("t", "").unwrap(), 1);
    }
}
