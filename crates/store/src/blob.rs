//! Content-addressed files: `blobs/<first two hex digits>/<sha256 hex>`.
//!
//! A blob is written (and synced) before the commit that references it. Between the two it
//! is *pinned*: [`BlobStore::put`] and [`BlobWriter::finish`] return a [`Pinned`] that the
//! writer holds until its commit is done, and garbage collection keeps every blob pinned at
//! any moment of a collection. So any number of services may write blobs while another
//! collects.
//!
//! A blob is only ever deleted when something durable says it may be: the database's record
//! that its last reference was removed (see [`crate::SqliteStore`]), or its *pending marker*,
//! `pending/<sha256 hex>`, written (and synced) before a new blob gets its name and removed
//! by the first collection that finds the blob referenced. A marked blob that no document
//! references and nobody pins is a write whose commit never happened (the writer failed, or
//! the process died in between): a collection deletes it. A blob that is neither marked nor
//! released is kept whatever the database says, so one rolled back past the commit that
//! referenced it still has its package on disk.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest as _, Sha256};

use crate::StoreError;
use crate::private::{self, DIR_MODE, FILE_MODE};

/// A SHA-256 digest naming a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Digest> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Digest(out))
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

pub struct BlobStore {
    root: PathBuf,
    pins: Arc<Mutex<Pins>>,
    /// One collection at a time.
    collecting: Mutex<()>,
}

#[derive(Default)]
struct Pins {
    counts: HashMap<Digest, usize>,
    /// While a collection runs: every digest pinned since it began.
    touched: Option<HashSet<Digest>>,
}

impl Pins {
    fn pin(&mut self, digest: Digest) {
        *self.counts.entry(digest).or_insert(0) += 1;
        if let Some(t) = &mut self.touched {
            t.insert(digest);
        }
    }
}

fn lock(pins: &Mutex<Pins>) -> MutexGuard<'_, Pins> {
    // A panic while holding this lock leaves counts that are at worst too high, which only
    // keeps blobs longer: recovering the guard is safe.
    pins.lock().unwrap_or_else(|p| p.into_inner())
}

/// A blob written and not yet committed: garbage collection keeps it while this lives.
/// Hold it until the commit that references the blob has returned.
#[must_use = "a blob is only safe from garbage collection while its pin is held"]
pub struct Pinned {
    digest: Digest,
    pins: Arc<Mutex<Pins>>,
}

impl Pinned {
    pub fn digest(&self) -> Digest {
        self.digest
    }
}

impl std::ops::Deref for Pinned {
    type Target = Digest;
    fn deref(&self) -> &Digest {
        &self.digest
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let mut pins = lock(&self.pins);
        if let Some(n) = pins.counts.get_mut(&self.digest) {
            *n -= 1;
            if *n == 0 {
                pins.counts.remove(&self.digest);
            }
        }
    }
}

/// A garbage collection in progress (see [`crate::Store::collect_garbage`]).
pub struct Collection<'a> {
    store: &'a BlobStore,
    _one_at_a_time: MutexGuard<'a, ()>,
}

impl Collection<'_> {
    /// Removes `digest` unless it is pinned now or was pinned since the collection began;
    /// true if it was removed.
    pub fn remove_if_unpinned(&self, digest: &Digest) -> Result<bool, StoreError> {
        let pins = lock(&self.store.pins);
        let touched = pins.touched.as_ref().is_some_and(|t| t.contains(digest));
        if touched || pins.counts.contains_key(digest) {
            return Ok(false);
        }
        // Removed under the lock: a writer finding the file still there pins it first.
        self.store.remove(digest)?;
        self.store.unmark(digest)?;
        Ok(true)
    }

    /// Drops the pending marker of a blob found referenced: its commit is done.
    pub fn settle(&self, digest: &Digest) -> Result<(), StoreError> {
        self.store.unmark(digest)
    }
}

impl Drop for Collection<'_> {
    fn drop(&mut self) {
        lock(&self.store.pins).touched = None;
    }
}

/// A blob being written as it arrives (an object, an image layer): hashed and written to a
/// temporary file, named by its digest only at [`BlobWriter::finish`].
pub struct BlobWriter<'a> {
    store: &'a BlobStore,
    file: fs::File,
    tmp: PathBuf,
    hasher: Sha256,
    len: u64,
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl BlobWriter<'_> {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Syncs the blob and gives it its name. Durable (file and directory synced) when this
    /// returns, and pinned until the returned [`Pinned`] is dropped.
    pub fn finish(mut self) -> Result<Pinned, StoreError> {
        let tmp = std::mem::take(&mut self.tmp);
        let result = (|| {
            self.file.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
            let digest = Digest(std::mem::take(&mut self.hasher).finalize().into());
            self.store.install(&tmp, digest)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        // Abandoned (or failed): the partial file was never visible.
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl BlobStore {
    pub fn open(root: &Path) -> Result<BlobStore, StoreError> {
        for dir in [root.to_owned(), root.join("tmp"), root.join(PENDING)] {
            private::create_dir(&dir).map_err(|e| StoreError::io(&dir, e))?;
            private::tighten_and_warn(&dir, DIR_MODE).map_err(|e| StoreError::io(&dir, e))?;
        }
        tighten_blobs(root)?;
        // Anything in tmp/ is a write that never reached its rename: it was never visible.
        let tmp = root.join("tmp");
        for entry in fs::read_dir(&tmp).map_err(|e| StoreError::io(&tmp, e))? {
            let entry = entry.map_err(|e| StoreError::io(&tmp, e))?;
            let _ = fs::remove_file(entry.path());
        }
        Ok(BlobStore {
            root: root.to_owned(),
            pins: Arc::default(),
            collecting: Mutex::new(()),
        })
    }

    /// Starts a garbage collection: from now until it is dropped, every digest pinned is
    /// remembered, and so kept.
    pub fn begin_collection(&self) -> Result<Collection<'_>, StoreError> {
        let guard = self.collecting.lock().map_err(|_| StoreError::Poisoned)?;
        let mut pins = lock(&self.pins);
        pins.touched = Some(pins.counts.keys().copied().collect());
        drop(pins);
        Ok(Collection {
            store: self,
            _one_at_a_time: guard,
        })
    }

    /// A writer for a blob whose bytes arrive over time; nothing is held in memory.
    pub fn writer(&self) -> Result<BlobWriter<'_>, StoreError> {
        let tmp =
            self.root
                .join("tmp")
                .join(format!("stream-{}-{}", std::process::id(), uuid_like()));
        let file = private::create_file(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        Ok(BlobWriter {
            store: self,
            file,
            tmp,
            hasher: Sha256::new(),
            len: 0,
        })
    }

    /// Pins `digest`, then gives the synced temporary file `tmp` that name (or drops it if
    /// a blob of that name exists). Pinning first means a collection never sees the new
    /// file unpinned.
    fn install(&self, tmp: &Path, digest: Digest) -> Result<Pinned, StoreError> {
        let dest = self.path(&digest);
        let dir = dest.parent().unwrap_or(&self.root).to_owned();
        let pinned = self.pin(digest);
        if dest.is_file() {
            let _ = fs::remove_file(tmp);
            return Ok(pinned);
        }
        private::create_dir(&dir).map_err(|e| StoreError::io(&dir, e))?;
        // Marked before it is named: from the moment the blob exists, a crash before its
        // commit leaves something that says it may go.
        self.mark(&digest)?;
        fs::rename(tmp, &dest).map_err(|e| StoreError::io(&dest, e))?;
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::io(&dir, e))?;
        Ok(pinned)
    }

    fn pin(&self, digest: Digest) -> Pinned {
        lock(&self.pins).pin(digest);
        Pinned {
            digest,
            pins: self.pins.clone(),
        }
    }

    fn marker(&self, digest: &Digest) -> PathBuf {
        self.root.join(PENDING).join(digest.to_hex())
    }

    /// Writes `digest`'s pending marker, durably.
    fn mark(&self, digest: &Digest) -> Result<(), StoreError> {
        let path = self.marker(digest);
        private::create_file(&path).map_err(|e| StoreError::io(&path, e))?;
        let dir = self.root.join(PENDING);
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::io(&dir, e))
    }

    fn unmark(&self, digest: &Digest) -> Result<(), StoreError> {
        let path = self.marker(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    /// Blobs with a pending marker: written, their commit not yet seen by a collection.
    pub fn pending(&self) -> Result<Vec<Digest>, StoreError> {
        let dir = self.root.join(PENDING);
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
            if let Some(d) = entry.file_name().to_str().and_then(Digest::from_hex) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Drops every pending marker, keeping the blobs: after the database was found to have
    /// lost commits, a marked blob may be one whose commit was acknowledged and then lost.
    pub fn forget_pending(&self) -> Result<(), StoreError> {
        for d in self.pending()? {
            self.unmark(&d)?;
        }
        Ok(())
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Stores `bytes` and returns their digest, pinned until the caller's commit is done.
    /// The blob is durable (file and directory synced) when this returns; storing the same
    /// bytes twice writes nothing the second time.
    pub fn put(&self, bytes: &[u8]) -> Result<Pinned, StoreError> {
        let digest = Digest::of(bytes);
        let pinned = self.pin(digest);
        if self.path(&digest).is_file() {
            return Ok(pinned);
        }
        let mut w = self.writer()?;
        w.write_all(bytes).map_err(|e| StoreError::io(&w.tmp, e))?;
        let written = w.finish()?;
        drop(pinned);
        Ok(written)
    }

    pub fn get(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.path(digest);
        fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::MissingBlob(digest.to_hex()),
            _ => StoreError::io(&path, e),
        })
    }

    pub fn remove(&self, digest: &Digest) -> Result<(), StoreError> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    /// Every blob on disk.
    pub fn list(&self) -> Result<Vec<Digest>, StoreError> {
        let mut out = Vec::new();
        let rd = fs::read_dir(&self.root).map_err(|e| StoreError::io(&self.root, e))?;
        for shard in rd {
            let shard = shard.map_err(|e| StoreError::io(&self.root, e))?;
            let name = shard.file_name();
            if name.len() != 2 || !shard.path().is_dir() {
                continue;
            }
            let sp = shard.path();
            for entry in fs::read_dir(&sp).map_err(|e| StoreError::io(&sp, e))? {
                let entry = entry.map_err(|e| StoreError::io(&sp, e))?;
                if let Some(d) = entry.file_name().to_str().and_then(Digest::from_hex) {
                    out.push(d);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Tightens shard directories and blob files an older version left readable by others
/// (one warning for all of them: there may be thousands).
fn tighten_blobs(root: &Path) -> Result<(), StoreError> {
    let mut tightened = 0usize;
    let rd = fs::read_dir(root).map_err(|e| StoreError::io(root, e))?;
    for shard in rd {
        let shard = shard.map_err(|e| StoreError::io(root, e))?.path();
        if !shard.is_dir() {
            continue;
        }
        tightened += usize::from(
            private::tighten(&shard, DIR_MODE)
                .map_err(|e| StoreError::io(&shard, e))?
                .is_some(),
        );
        for entry in fs::read_dir(&shard).map_err(|e| StoreError::io(&shard, e))? {
            let path = entry.map_err(|e| StoreError::io(&shard, e))?.path();
            tightened += usize::from(
                private::tighten(&path, FILE_MODE)
                    .map_err(|e| StoreError::io(&path, e))?
                    .is_some(),
            );
        }
    }
    if tightened > 0 {
        tracing::warn!(
            path = %root.display(),
            tightened,
            "blobs and their directories were readable by others than Stratus's owner: \
             tightened to 0600/0700"
        );
    }
    Ok(())
}

/// Where pending markers live, under the blob root.
const PENDING: &str = "pending";

/// A name no other temporary file of this process has.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn put_is_content_addressed_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let a = store.put(b"hello").unwrap().digest();
        let b = store.put(b"hello").unwrap().digest();
        assert_eq!(a, b);
        assert_eq!(store.get(&a).unwrap(), b"hello");
        assert_eq!(store.list().unwrap(), vec![a]);
        store.remove(&a).unwrap();
        assert!(store.list().unwrap().is_empty());
        assert!(matches!(store.get(&a), Err(StoreError::MissingBlob(_))));
    }

    #[test]
    fn leftover_temp_files_are_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        BlobStore::open(dir.path()).unwrap();
        fs::write(dir.path().join("tmp").join("half-written"), b"x").unwrap();
        BlobStore::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn a_streamed_blob_is_named_by_its_digest_and_a_dropped_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = store.writer().unwrap();
        for chunk in [&b"hel"[..], b"lo ", b"world"] {
            w.write_all(chunk).unwrap();
        }
        assert_eq!(w.len(), 11);
        let pinned = w.finish().unwrap();
        assert_eq!(*pinned, Digest::of(b"hello world"));
        assert_eq!(store.get(&pinned).unwrap(), b"hello world");
        // The same bytes again: one file.
        let again = store.put(b"hello world").unwrap();
        assert_eq!(*again, *pinned);
        assert_eq!(store.list().unwrap().len(), 1);

        let mut abandoned = store.writer().unwrap();
        abandoned.write_all(b"never finished").unwrap();
        drop(abandoned);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn a_collection_keeps_what_is_pinned_now_or_was_pinned_while_it_ran() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let held = store.put(b"held").unwrap();
        let released = *store.put(b"released before").unwrap();
        let c = store.begin_collection().unwrap();
        // Pinned and released while the collection runs: its commit may have come after
        // the collection read the references, so it stays.
        let during = *store.put(b"during").unwrap();
        assert!(!c.remove_if_unpinned(&held).unwrap());
        assert!(!c.remove_if_unpinned(&during).unwrap());
        assert!(c.remove_if_unpinned(&released).unwrap());
        drop(c);
        // The next collection may take it.
        let c = store.begin_collection().unwrap();
        assert!(c.remove_if_unpinned(&during).unwrap());
        assert!(!c.remove_if_unpinned(&held).unwrap());
        drop(c);
        drop(held);
        let c = store.begin_collection().unwrap();
        assert!(c.remove_if_unpinned(&Digest::of(b"held")).unwrap());
        assert!(store.list().unwrap().is_empty());
    }
}
