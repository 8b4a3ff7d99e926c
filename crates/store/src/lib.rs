//! Durable state for Stratus.
//!
//! This crate owns two primitives that every service builds on:
//!
//! * [`MetaStore`]: a transactional store of small documents (bytes, in practice JSON)
//!   grouped into tables and keyed by string, with optimistic preconditions on each write.
//!   [`SqliteStore`] is the embedded implementation; the trait is shaped so a cluster can
//!   later put it on PostgreSQL or etcd (ordered keys, per-key versions, atomic multi-key commits).
//! * [`BlobStore`]: content-addressed files on disk (code packages), named by SHA-256.
//!
//! Documents declare the blobs they reference inside the same commit, so the store knows at
//! all times which blobs are live and [`Store::collect_garbage`] can remove the others. This
//! is what keeps a `kill -9` between "blob written" and "metadata committed" from leaving an
//! orphaned package behind.
//!
//! Invariant: this crate knows nothing about HTTP, AWS or what the documents mean.

mod blob;
mod cache;
mod error;
mod namespace;
mod sqlite;

pub use blob::{BlobStore, Digest};
pub use cache::{CachedMeta, cache_only};
pub use error::StoreError;
pub use namespace::Namespaced;
pub use sqlite::SqliteStore;

use std::path::Path;
use std::sync::Arc;

/// A stored document and its version. The version starts at 1 and grows by one on every write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub value: Vec<u8>,
    pub version: u64,
}

/// A precondition on the current state of one key, checked inside the commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No precondition.
    Any,
    /// The key must not exist.
    Absent,
    /// The key must exist (any version).
    Present,
    /// The key must exist with exactly this version.
    Version(u64),
}

/// One write inside an atomic commit.
#[derive(Debug, Clone)]
pub enum Op {
    /// Create or replace `table/key`. `blobs` are the blobs this document references;
    /// they replace whatever the previous version referenced.
    Put {
        table: String,
        key: String,
        value: Vec<u8>,
        blobs: Vec<Digest>,
        expect: Expect,
    },
    /// Remove `table/key` and its blob references.
    Delete {
        table: String,
        key: String,
        expect: Expect,
    },
}

impl Op {
    pub fn put(table: &str, key: &str, value: Vec<u8>, expect: Expect) -> Op {
        Op::Put {
            table: table.to_owned(),
            key: key.to_owned(),
            value,
            blobs: Vec::new(),
            expect,
        }
    }

    pub fn put_with_blobs(
        table: &str,
        key: &str,
        value: Vec<u8>,
        blobs: Vec<Digest>,
        expect: Expect,
    ) -> Op {
        Op::Put {
            table: table.to_owned(),
            key: key.to_owned(),
            value,
            blobs,
            expect,
        }
    }

    pub fn delete(table: &str, key: &str, expect: Expect) -> Op {
        Op::Delete {
            table: table.to_owned(),
            key: key.to_owned(),
            expect,
        }
    }
}

/// A transactional document store.
///
/// Every method is synchronous and quick; callers on an async runtime may call it directly
/// for small documents or move it to a blocking thread for bulk work.
pub trait MetaStore: Send + Sync {
    /// Reads one document.
    fn get(&self, table: &str, key: &str) -> Result<Option<Doc>, StoreError>;

    /// Lists documents whose key starts with `prefix`, in key order, strictly after `start_after`.
    fn list(
        &self,
        table: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Doc)>, StoreError>;

    /// Counts the documents whose key starts with `prefix`.
    fn count(&self, table: &str, prefix: &str) -> Result<u64, StoreError>;

    /// Applies every op atomically, or none of them: if any precondition fails the commit
    /// returns [`StoreError::Conflict`] and nothing changes. A successful commit is durable
    /// before this returns.
    fn commit(&self, ops: &[Op]) -> Result<(), StoreError>;

    /// Every blob referenced by at least one document.
    fn referenced_blobs(&self) -> Result<Vec<Digest>, StoreError>;

    /// Moves tables written before namespaces existed (names without a `/`) into
    /// `namespace`; returns how many documents moved. Idempotent: once moved, nothing is
    /// left to move. Only the root store can do this.
    fn adopt_unnamespaced(&self, namespace: &str) -> Result<usize, StoreError>;
}

/// The data directory's durable state: documents and blobs, opened together.
#[derive(Clone)]
pub struct Store {
    pub meta: Arc<dyn MetaStore>,
    pub blobs: Arc<BlobStore>,
}

impl Store {
    /// Opens (creating if needed) the store under `dir`: `dir/stratus.db` and `dir/blobs/`.
    /// Removes leftovers of interrupted writes and unreferenced blobs before returning.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let meta = Arc::new(CachedMeta::new(SqliteStore::open(&dir.join("stratus.db"))?));
        let blobs = Arc::new(BlobStore::open(&dir.join("blobs"))?);
        let store = Store { meta, blobs };
        let removed = store.collect_garbage()?;
        if removed > 0 {
            tracing::info!(
                removed,
                "removed unreferenced blobs left by an interrupted write"
            );
        }
        Ok(store)
    }

    /// The part of the store that belongs to one service: its tables live under
    /// `namespace/`, blobs are shared (content-addressed, so two services storing the same
    /// bytes share one file).
    pub fn namespace(&self, namespace: &str) -> Store {
        Store {
            meta: Arc::new(Namespaced::new(self.meta.clone(), namespace)),
            blobs: self.blobs.clone(),
        }
    }

    /// Deletes every blob no document references. Safe while any number of writers store
    /// blobs: a blob pinned at any moment of the collection (written, not yet committed,
    /// see [`BlobStore::put`]) is kept, and one unpinned before it started was committed
    /// before the references are read.
    pub fn collect_garbage(&self) -> Result<usize, StoreError> {
        let collection = self.blobs.begin_collection()?;
        let on_disk = self.blobs.list()?;
        let live: std::collections::HashSet<Digest> =
            self.meta.referenced_blobs()?.into_iter().collect();
        let mut removed = 0;
        for digest in on_disk {
            if !live.contains(&digest) && collection.remove_if_unpinned(&digest)? {
                removed += 1;
            }
        }
        Ok(removed)
    }
}
