//! [`FunctionService`]: the type every operation hangs off, its constructor, and the guards
//! and lookups the operation modules share (the write lock, loading a record, not-found
//! errors, the view of a configuration). The operations themselves live one family a file.
//!
//! Every operation is one store commit. New code is written as a blob *before* the commit
//! that references it; the store's garbage collection removes a blob whose commit never
//! happened, so a crash at any point leaves either the old state or the new one.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};

use stratus_store::Store;

use crate::code;
use crate::model::FunctionRecord;
use crate::names::{FunctionRef, Scope};
use crate::records::{FUNCTIONS, LATEST, decode, needs_preparation};
use crate::runtimes::RuntimeCatalog;
use crate::validate;
use crate::{FunctionConfig, FunctionView, LambdaError};

/// Lambda's default regional concurrency quota.
pub const DEFAULT_CONCURRENT_EXECUTIONS: u32 = 1000;

/// Told the name of a function whose reserved concurrency changed (and with it, the
/// unreserved pool).
pub(crate) type ConcurrencyListener = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Debug, Clone)]
pub struct ServiceOptions {
    pub scope: Scope,
    /// Where unpacked code packages live (`<dir>/<sha256 hex>/`). Derived data: it can be
    /// deleted at any time and is rebuilt from the blobs.
    pub code_dir: PathBuf,
    pub concurrent_executions: u32,
}

/// A record as stored, and as decoded from those bytes.
type Decoded = (Vec<u8>, Arc<FunctionRecord>);

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) opts: ServiceOptions,
    catalog: RuntimeCatalog,
    /// Serialises writers that store blobs and commit, against garbage collection.
    write_lock: Mutex<()>,
    /// The sum of every function's reserved concurrency, kept current by the writers that
    /// change it (under the write lock) so the invoke path never scans the store.
    pub(crate) reserved_total: std::sync::atomic::AtomicU32,
    prepare: Mutex<mpsc::Sender<String>>,
    /// Called with a function's name after its reserved concurrency changed.
    pub(crate) concurrency_listeners: Mutex<Vec<ConcurrencyListener>>,
    /// Function records as last decoded, by name, with the stored bytes they came from:
    /// reads that find the same bytes in the store skip decoding them again (every invoke
    /// reads its function's record). Bytes, not versions, say "the same": a function
    /// deleted and created again starts its versions over.
    decoded: Mutex<std::collections::HashMap<String, Decoded>>,
    /// Execution roles: when set, a function's role must be one Lambda may assume.
    roles: std::sync::OnceLock<Arc<dyn stratus_aws::RoleSessions>>,
}

/// The function service. Cheap to clone; every method is synchronous (store I/O and zip
/// checks), so async callers should run them on a blocking thread.
#[derive(Clone)]
pub struct FunctionService {
    pub(crate) inner: Arc<Inner>,
}

impl FunctionService {
    /// Opens the service over `store`, and resumes the preparation of any function a
    /// previous run left `Pending` or `InProgress`.
    pub fn new(
        store: Store,
        opts: ServiceOptions,
        catalog: RuntimeCatalog,
    ) -> Result<FunctionService, LambdaError> {
        code::sweep_unpack_leftovers(&opts.code_dir);
        let (tx, rx) = mpsc::channel::<String>();
        let svc = FunctionService {
            inner: Arc::new(Inner {
                store,
                opts,
                catalog,
                write_lock: Mutex::new(()),
                reserved_total: std::sync::atomic::AtomicU32::new(0),
                prepare: Mutex::new(tx),
                concurrency_listeners: Mutex::default(),
                decoded: Mutex::default(),
                roles: std::sync::OnceLock::new(),
            }),
        };
        // The worker holds a weak handle: when the last service handle goes, the sender goes
        // with it and the worker's loop ends.
        let weak = Arc::downgrade(&svc.inner);
        std::thread::Builder::new()
            .name("lambda-prepare".into())
            .spawn(move || {
                for name in rx {
                    let Some(inner) = weak.upgrade() else { break };
                    let worker = FunctionService { inner };
                    if let Err(e) = worker.prepare(&name) {
                        tracing::error!(function = %name, error = %e, "preparing function failed");
                    }
                }
            })
            .map_err(|e| LambdaError::Internal(format!("spawning preparer: {e}")))?;
        svc.refresh_reserved_total()?;
        svc.for_each_function(|rec| {
            if needs_preparation(&rec.latest) {
                svc.enqueue(&rec.latest.name);
            }
        })?;
        Ok(svc)
    }

    /// Checks functions' execution roles with `roles` from now on (see
    /// [`FunctionService::check_role`]); without it any well-formed role ARN is accepted.
    pub fn check_roles_with(&self, roles: Arc<dyn stratus_aws::RoleSessions>) {
        let _ = self.inner.roles.set(roles);
    }

    /// A role Lambda may assume, or AWS's refusal.
    pub(crate) fn check_role(&self, role: &str) -> Result<(), LambdaError> {
        validate::role(role)?;
        match self.inner.roles.get() {
            Some(roles) if !roles.assumable(role) => Err(LambdaError::InvalidParameter(
                "The role defined for the function cannot be assumed by Lambda.".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Calls `f` with every function's record, in name order, a page at a time.
    pub(crate) fn for_each_function(
        &self,
        mut f: impl FnMut(FunctionRecord),
    ) -> Result<(), LambdaError> {
        let mut after: Option<String> = None;
        loop {
            let page = self
                .inner
                .store
                .meta
                .list(FUNCTIONS, "", after.as_deref(), 500)?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            for (_, doc) in page {
                f(decode(&doc.value)?);
            }
        }
    }

    /// The store this service keeps its state in (the asynchronous queue shares it).
    pub fn store(&self) -> Store {
        self.inner.store.clone()
    }

    pub fn scope(&self) -> &Scope {
        &self.inner.opts.scope
    }

    pub fn catalog(&self) -> &RuntimeCatalog {
        &self.inner.catalog
    }

    pub(crate) fn write_guard(&self) -> Result<MutexGuard<'_, ()>, LambdaError> {
        self.inner
            .write_lock
            .lock()
            .map_err(|_| LambdaError::Internal("write lock poisoned".into()))
    }

    pub(crate) fn enqueue(&self, name: &str) {
        if let Ok(tx) = self.inner.prepare.lock() {
            let _ = tx.send(name.to_owned());
        }
    }

    pub(crate) fn not_found(&self, r: &FunctionRef) -> LambdaError {
        let arn = match &r.qualifier {
            Some(q) => self.scope().qualified_arn(&r.name, q),
            None => self.scope().function_arn(&r.name),
        };
        LambdaError::NotFound(format!("Function not found: {arn}"))
    }

    pub(crate) fn load(&self, name: &str) -> Result<Option<(FunctionRecord, u64)>, LambdaError> {
        match self.inner.store.meta.get(FUNCTIONS, name)? {
            Some(doc) => Ok(Some((decode(&doc.value)?, doc.version))),
            None => Ok(None),
        }
    }

    /// [`FunctionService::load`] for readers: the record shared, decoded once per stored
    /// state.
    pub(crate) fn load_shared(
        &self,
        name: &str,
    ) -> Result<Option<Arc<FunctionRecord>>, LambdaError> {
        let Some(doc) = self.inner.store.meta.get(FUNCTIONS, name)? else {
            if let Ok(mut d) = self.inner.decoded.lock() {
                d.remove(name);
            }
            return Ok(None);
        };
        if let Ok(d) = self.inner.decoded.lock()
            && let Some((bytes, rec)) = d.get(name)
            && *bytes == doc.value
        {
            return Ok(Some(rec.clone()));
        }
        let rec = Arc::new(decode::<FunctionRecord>(&doc.value)?);
        if let Ok(mut d) = self.inner.decoded.lock() {
            d.insert(name.to_owned(), (doc.value, rec.clone()));
        }
        Ok(Some(rec))
    }

    pub(crate) fn view(&self, config: FunctionConfig, rec: &FunctionRecord) -> FunctionView {
        let arn = if config.version == LATEST {
            self.scope().function_arn(&config.name)
        } else {
            self.scope().qualified_arn(&config.name, &config.version)
        };
        FunctionView {
            config,
            arn,
            tags: rec.tags.clone(),
            reserved_concurrency: rec.reserved_concurrency,
        }
    }

    /// Runs `f` with the store answering from memory only: `None` when `f` needed the
    /// database (then run it again where blocking is fine). For hot paths on an async
    /// runtime.
    pub fn from_memory<T>(
        &self,
        f: impl FnOnce(&FunctionService) -> Result<T, LambdaError>,
    ) -> Option<Result<T, LambdaError>> {
        match stratus_store::cache_only(|| f(self)) {
            Err(LambdaError::Store(stratus_store::StoreError::NotCached)) => None,
            other => Some(other),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::UpdateConfig;
    use crate::test_support::{create_active, open};

    #[test]
    fn invoke_reads_come_from_memory_and_see_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path());
        create_active(&svc, "m");
        let resolve = |s: &FunctionService| s.resolve_for_invoke("m", None);
        // Read once the ordinary way; from then on memory answers.
        let first = resolve(&svc).unwrap();
        let cached = svc.from_memory(resolve).unwrap().unwrap();
        assert_eq!(cached.config.timeout, first.config.timeout);
        svc.update_config(
            "m",
            UpdateConfig {
                timeout: Some(42),
                ..UpdateConfig::default()
            },
        )
        .unwrap();
        // The change dropped the cached record: memory answers the new configuration or
        // nothing, never the old one.
        if let Some(r) = svc.from_memory(resolve) {
            assert_eq!(r.unwrap().config.timeout, 42);
        }
        assert_eq!(resolve(&svc).unwrap().config.timeout, 42);
        assert_eq!(
            svc.from_memory(resolve).unwrap().unwrap().config.timeout,
            42
        );
        // Errors that need no database come back as they are.
        let missing = svc.from_memory(|s| s.resolve_for_invoke("nope", None));
        assert!(matches!(
            missing,
            None | Some(Err(LambdaError::NotFound(_)))
        ));
    }

    #[test]
    fn a_function_created_again_is_never_read_as_the_one_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path());
        create_active(&svc, "m");
        svc.update_config(
            "m",
            UpdateConfig {
                timeout: Some(42),
                ..UpdateConfig::default()
            },
        )
        .unwrap();
        assert_eq!(svc.get("m", None).unwrap().config.timeout, 42);
        svc.delete("m", None).unwrap();
        assert!(matches!(svc.get("m", None), Err(LambdaError::NotFound(_))));
        // The same name, its record's versions starting over: the new one is read.
        create_active(&svc, "m");
        let again = svc.get("m", None).unwrap();
        assert_ne!(again.config.timeout, 42);
        let (stored, _) = svc.load("m").unwrap().unwrap();
        assert_eq!(again.config.revision_id, stored.latest.revision_id);
    }
}
