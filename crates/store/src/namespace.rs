//! One service's part of the store: its tables, named `<namespace>/<table>` underneath, so
//! services that share the database never see or collide with each other's documents.

use std::sync::Arc;

use crate::{Digest, Doc, MetaStore, Op, StoreError};

/// A [`MetaStore`] whose tables are those of one namespace.
pub struct Namespaced {
    inner: Arc<dyn MetaStore>,
    prefix: String,
}

impl Namespaced {
    pub fn new(inner: Arc<dyn MetaStore>, namespace: &str) -> Namespaced {
        Namespaced {
            inner,
            prefix: format!("{namespace}/"),
        }
    }

    fn table(&self, table: &str) -> String {
        let mut t = String::with_capacity(self.prefix.len() + table.len());
        t.push_str(&self.prefix);
        t.push_str(table);
        t
    }

    fn op(&self, op: &Op) -> Op {
        match op {
            Op::Put {
                table,
                key,
                value,
                blobs,
                expect,
            } => Op::Put {
                table: self.table(table),
                key: key.clone(),
                value: value.clone(),
                blobs: blobs.clone(),
                expect: *expect,
            },
            Op::Delete { table, key, expect } => Op::Delete {
                table: self.table(table),
                key: key.clone(),
                expect: *expect,
            },
        }
    }

    /// The error as the service wrote it: its own table names.
    fn unprefix(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Conflict { table, key } => StoreError::Conflict {
                table: table
                    .strip_prefix(&self.prefix)
                    .map_or(table.clone(), str::to_owned),
                key,
            },
            other => other,
        }
    }
}

impl MetaStore for Namespaced {
    fn get(&self, table: &str, key: &str) -> Result<Option<Doc>, StoreError> {
        self.inner.get(&self.table(table), key)
    }

    fn list(
        &self,
        table: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Doc)>, StoreError> {
        self.inner
            .list(&self.table(table), prefix, start_after, limit)
    }

    fn count(&self, table: &str, prefix: &str) -> Result<u64, StoreError> {
        self.inner.count(&self.table(table), prefix)
    }

    fn commit(&self, ops: &[Op]) -> Result<(), StoreError> {
        let ops: Vec<Op> = ops.iter().map(|op| self.op(op)).collect();
        self.inner.commit(&ops).map_err(|e| self.unprefix(e))
    }

    /// Every blob referenced by any document of any namespace: blobs are shared, and
    /// collecting them must see every reference.
    fn referenced_blobs(&self) -> Result<Vec<Digest>, StoreError> {
        self.inner.referenced_blobs()
    }

    fn released_blobs(&self) -> Result<Vec<Digest>, StoreError> {
        self.inner.released_blobs()
    }

    fn forget_released(&self, digests: &[Digest]) -> Result<(), StoreError> {
        self.inner.forget_released(digests)
    }

    fn adopt_unnamespaced(&self, _namespace: &str) -> Result<usize, StoreError> {
        Err(StoreError::Nested)
    }
}
