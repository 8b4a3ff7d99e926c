use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A commit's precondition did not hold; nothing was written.
    #[error("precondition failed for {table}/{key}")]
    Conflict { table: String, key: String },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("blob {0} is missing")]
    MissingBlob(String),
    #[error("the store is poisoned by an earlier panic")]
    Poisoned,
    /// An operation only the root store can do, asked of a namespace.
    #[error("only the root store can do this")]
    Nested,
    /// Inside [`crate::cache_only`]: the answer needs the database.
    #[error("not in the cache")]
    NotCached,
    /// The database at `path` was found damaged at open and left untouched (see
    /// [`crate::Damage`]).
    #[error("the store at {path} is damaged: {damage}")]
    Damaged {
        path: PathBuf,
        damage: crate::Damage,
    },
}

impl StoreError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
