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
//! all times which blobs are live. [`Store::collect_garbage`] removes a blob only when a
//! durable record says it may: the commit that dropped its last reference recorded its
//! release, or its pending marker shows a write whose commit never came (a `kill -9` between
//! "blob written" and "metadata committed"). A blob that merely looks unreferenced is kept:
//! a database rolled back (a cut-short WAL, an old copy) must not cost the packages that
//! would let it be repaired.
//!
//! [`Store::open`] refuses a damaged database (see [`SqliteStore`] for how lost commits are
//! told apart from a whole database); [`Store::open_with`] can accept one.
//!
//! Invariant: this crate knows nothing about HTTP, AWS or what the documents mean.

mod blob;
mod cache;
mod error;
mod namespace;
pub mod private;
mod sqlite;

pub use blob::{BlobStore, Digest};
pub use cache::{CachedMeta, cache_only};
pub use error::StoreError;
pub use namespace::Namespaced;
pub use sqlite::{Damage, SqliteStore, make_private, record_path};

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

    /// Blobs whose last reference a commit removed (and no later commit added back): the
    /// only ones, besides pending writes, that garbage collection may delete.
    fn released_blobs(&self) -> Result<Vec<Digest>, StoreError>;

    /// Drops the release records of `digests` (their blobs are gone, or must be kept).
    fn forget_released(&self, digests: &[Digest]) -> Result<(), StoreError>;

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
    /// Removes leftovers of interrupted writes and released blobs before returning. A
    /// damaged database is refused ([`StoreError::Damaged`]), the files left as they are.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Self::open_with(dir, false)
    }

    /// [`Store::open`], but with `accept_damaged` a damaged database is opened as it is:
    /// the damage is logged, and nothing on disk is collected on what it says — release
    /// records and pending markers written before the damage are dropped (their blobs kept,
    /// as every blob the database no longer references), since a commit the database lost
    /// may have referenced them again.
    pub fn open_with(dir: &Path, accept_damaged: bool) -> Result<Store, StoreError> {
        private::create_dir(dir).map_err(|e| StoreError::io(dir, e))?;
        let (sqlite, damage) = SqliteStore::open_with(&dir.join("stratus.db"), accept_damaged)?;
        let meta = Arc::new(CachedMeta::new(sqlite));
        let blobs = Arc::new(BlobStore::open(&dir.join("blobs"))?);
        let store = Store { meta, blobs };
        if let Some(damage) = damage {
            let released = store.meta.released_blobs()?;
            store.meta.forget_released(&released)?;
            store.blobs.forget_pending()?;
            let live: std::collections::HashSet<Digest> =
                store.meta.referenced_blobs()?.into_iter().collect();
            let unreferenced = store
                .blobs
                .list()?
                .into_iter()
                .filter(|d| !live.contains(d))
                .count();
            tracing::warn!(
                %damage,
                unreferenced_blobs_kept = unreferenced,
                blobs = %dir.join("blobs").display(),
                "running on a damaged store, as accepted; blobs no document references are \
                 kept (named by their SHA-256) for repair"
            );
            return Ok(store);
        }
        let removed = store.collect_garbage()?;
        if removed > 0 {
            tracing::info!(
                removed,
                "removed released blobs and blobs of writes that never committed"
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

    /// Deletes every blob whose release was committed or whose write never was (see the
    /// crate docs), and no other. Safe while any number of writers store blobs: a blob
    /// pinned at any moment of the collection (written, not yet committed, see
    /// [`BlobStore::put`]) is kept, and one unpinned before it started was committed (or
    /// abandoned) before the references are read.
    pub fn collect_garbage(&self) -> Result<usize, StoreError> {
        let collection = self.blobs.begin_collection()?;
        let released = self.meta.released_blobs()?;
        let pending = self.blobs.pending()?;
        let live: std::collections::HashSet<Digest> =
            self.meta.referenced_blobs()?.into_iter().collect();
        let mut removed = 0;
        let mut forgotten = Vec::new();
        for digest in released {
            if !live.contains(&digest) && collection.remove_if_unpinned(&digest)? {
                removed += 1;
                forgotten.push(digest);
            }
        }
        for digest in pending {
            if forgotten.contains(&digest) {
                continue; // released, and removed above with its marker
            }
            if live.contains(&digest) {
                collection.settle(&digest)?;
            } else if collection.remove_if_unpinned(&digest)? {
                removed += 1;
            }
        }
        drop(collection);
        self.meta.forget_released(&forgotten)?;
        Ok(removed)
    }
}
