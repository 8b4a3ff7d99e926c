//! [`FunctionService`]: the operations of the Lambda control plane over the store.
//!
//! Storage layout (tables of `stratus_store::MetaStore`):
//! * `lambda.functions/<name>`: a [`FunctionRecord`] (the `$LATEST` configuration, tags,
//!   version counter), referencing its zip blob.
//! * `lambda.versions/<name>/<version as 10 digits>`: a published [`FunctionConfig`] snapshot,
//!   referencing its zip blob. Zero-padding keeps versions in numeric order.
//! * `lambda.aliases/<name>/<alias>`: an alias (see `aliases.rs`).
//!
//! Every operation is one store commit. New code is written as a blob *before* the commit
//! that references it; the store's garbage collection removes a blob whose commit never
//! happened, so a crash at any point leaves either the old state or the new one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};

use stratus_store::{Digest, Expect, Op, Store};

use crate::code::{self, CodePackage};
use crate::model::FunctionRecord;
use crate::names::{FunctionRef, Scope};
use crate::runtimes::RuntimeCatalog;
use crate::validate;
use crate::{
    AccountSettings, CreateFunction, FunctionConfig, FunctionState, FunctionView, LambdaError,
    LastUpdateStatus, ListPage, UpdateCode, UpdateConfig,
};

pub(crate) const FUNCTIONS: &str = "lambda.functions";
pub(crate) const VERSIONS: &str = "lambda.versions";
pub(crate) const LATEST: &str = "$LATEST";

/// Lambda's default regional concurrency quota.
pub const DEFAULT_CONCURRENT_EXECUTIONS: u32 = 1000;
/// Lambda's default code storage quota (75 GB).
const TOTAL_CODE_SIZE_LIMIT: u64 = 80_530_636_800;

#[derive(Debug, Clone)]
pub struct ServiceOptions {
    pub scope: Scope,
    /// Where unpacked code packages live (`<dir>/<sha256 hex>/`). Derived data: it can be
    /// deleted at any time and is rebuilt from the blobs.
    pub code_dir: PathBuf,
    pub concurrent_executions: u32,
}

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
    pub(crate) concurrency_listeners: Mutex<Vec<crate::concurrency::ConcurrencyListener>>,
}

/// The function service. Cheap to clone; every method is synchronous (store I/O and zip
/// checks), so async callers should run them on a blocking thread.
#[derive(Clone)]
pub struct FunctionService {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn new_revision() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(crate) fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, LambdaError> {
    serde_json::to_vec(v).map_err(|e| LambdaError::Internal(format!("encoding: {e}")))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, LambdaError> {
    serde_json::from_slice(bytes).map_err(|e| LambdaError::Internal(format!("decoding: {e}")))
}

pub(crate) fn version_key(name: &str, version: u32) -> String {
    format!("{name}/{version:010}")
}

pub(crate) fn digest_of(config: &FunctionConfig) -> Result<Digest, LambdaError> {
    Digest::from_hex(&config.code_digest)
        .ok_or_else(|| LambdaError::Internal(format!("bad code digest {}", config.code_digest)))
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

    fn enqueue(&self, name: &str) {
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

    fn check_runtime(&self, runtime: &str) -> Result<(), LambdaError> {
        if self.inner.catalog.get(runtime).is_some() {
            return Ok(());
        }
        Err(LambdaError::InvalidParameter(format!(
            "Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [{}] \
             (the runtimes this host offers)",
            self.inner.catalog.ids().join(", ")
        )))
    }

    // ---- CreateFunction -------------------------------------------------------------------

    pub fn create(&self, input: CreateFunction) -> Result<FunctionView, LambdaError> {
        let r = FunctionRef::parse(&input.name, None, self.scope())?;
        if r.qualifier.is_some() {
            return Err(LambdaError::Validation(format!(
                "1 validation error detected: Value '{}' at 'functionName' failed to satisfy constraint: \
                 Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{{2}}(-gov)?-[a-z]+-\\d{{1}}:)?(\\d{{12}}:)?(function:)?([a-zA-Z0-9-_]+)",
                input.name
            )));
        }
        let package_type = input.package_type.clone().unwrap_or_else(|| "Zip".into());
        match package_type.as_str() {
            "Zip" => {}
            "Image" => {
                return Err(LambdaError::Unsupported(
                    "PackageType Image is not supported yet: the container registry arrives with a later release. Use PackageType Zip."
                        .into(),
                ));
            }
            other => {
                return Err(LambdaError::Validation(format!(
                    "1 validation error detected: Value '{other}' at 'packageType' failed to satisfy constraint: \
                     Member must satisfy enum value set: [Zip, Image]"
                )));
            }
        }
        let (Some(runtime), Some(handler)) = (input.runtime.clone(), input.handler.clone()) else {
            return Err(LambdaError::InvalidParameter(
                "Runtime and Handler are mandatory parameters for functions created with deployment packages."
                    .into(),
            ));
        };
        validate::role(&input.role)?;
        validate::handler(&handler)?;
        self.check_runtime(&runtime)?;
        let description = input.description.clone().unwrap_or_default();
        validate::max_len(&description, "description", 256)?;
        let timeout = validate::timeout(input.timeout.unwrap_or(3))?;
        let memory_size = validate::memory_size(input.memory_size.unwrap_or(128))?;
        let ephemeral_storage =
            validate::ephemeral_storage(input.ephemeral_storage.unwrap_or(512))?;
        let architectures = input
            .architectures
            .clone()
            .unwrap_or_else(|| vec!["x86_64".into()]);
        validate::architectures(&architectures)?;
        if let Some(env) = &input.environment {
            validate::environment(env)?;
        }
        let tracing_mode = input
            .tracing_mode
            .clone()
            .unwrap_or_else(|| "PassThrough".into());
        validate::tracing_mode(&tracing_mode)?;
        let log_format = input.log_format.clone().unwrap_or_else(|| "Text".into());
        validate::log_format(&log_format)?;
        let tags = input.tags.clone().unwrap_or_default();
        validate::tags(&tags)?;
        if let Some(source) = input.unsupported_code_source {
            return Err(LambdaError::Unsupported(format!(
                "Code.{source} is not supported yet: upload the package as Code.ZipFile."
            )));
        }
        let Some(zip) = input.zip_file else {
            return Err(LambdaError::InvalidParameter(
                "Please provide a source for function code.".into(),
            ));
        };
        let pkg = CodePackage::inspect(zip)?;

        let now = now_ms();
        let latest = FunctionConfig {
            name: r.name.clone(),
            version: LATEST.into(),
            package_type,
            runtime,
            handler,
            role: input.role,
            description,
            timeout,
            memory_size,
            ephemeral_storage,
            architectures,
            environment: input.environment.filter(|e| !e.is_empty()),
            tracing_mode,
            dead_letter_target: input.dead_letter_target.filter(|t| !t.is_empty()),
            log_format,
            log_group: input
                .log_group
                .unwrap_or_else(|| format!("/aws/lambda/{}", r.name)),
            code_digest: hex::encode(pkg.sha256),
            code_sha256: pkg.sha256_base64(),
            code_size: pkg.bytes.len() as u64,
            last_modified_ms: now,
            revision_id: new_revision(),
            state: FunctionState::Pending,
            state_reason: Some("The function is being created.".into()),
            state_reason_code: Some("Creating".into()),
            last_update_status: None,
            last_update_status_reason: None,
            last_update_status_reason_code: None,
        };
        let mut rec = FunctionRecord {
            latest,
            tags,
            last_published: 0,
            reserved_concurrency: None,
            published_fingerprint: None,
        };
        let mut ops = Vec::new();
        let mut published = None;
        if input.publish {
            let v = self.snapshot(&mut rec);
            ops.push(Op::put_with_blobs(
                VERSIONS,
                &version_key(&r.name, rec.last_published),
                encode(&v)?,
                vec![digest_of(&v)?],
                Expect::Absent,
            ));
            published = Some(v);
        }
        ops.insert(
            0,
            Op::put_with_blobs(
                FUNCTIONS,
                &r.name,
                encode(&rec)?,
                vec![digest_of(&rec.latest)?],
                Expect::Absent,
            ),
        );
        {
            let _w = self.write_guard()?;
            if self.inner.store.meta.get(FUNCTIONS, &r.name)?.is_some() {
                return Err(LambdaError::Conflict(format!(
                    "Function already exist: {}",
                    r.name
                )));
            }
            // Pinned until the commit that references it is done.
            let _blob = self.inner.store.blobs.put(&pkg.bytes)?;
            self.inner.store.meta.commit(&ops).map_err(|e| match e {
                stratus_store::StoreError::Conflict { .. } => {
                    LambdaError::Conflict(format!("Function already exist: {}", r.name))
                }
                other => other.into(),
            })?;
        }
        tracing::info!(function = %r.name, code_size = pkg.bytes.len(), "function created");
        self.enqueue(&r.name);
        let shown = published.unwrap_or_else(|| rec.latest.clone());
        Ok(self.view(shown, &rec))
    }

    /// Makes the next published version of `rec.latest` (the caller commits it).
    pub(crate) fn snapshot(&self, rec: &mut FunctionRecord) -> FunctionConfig {
        rec.last_published += 1;
        rec.published_fingerprint = Some(crate::versions::fingerprint(&rec.latest));
        let mut v = rec.latest.clone();
        v.version = rec.last_published.to_string();
        v.revision_id = new_revision();
        v.last_update_status = None;
        v.last_update_status_reason = None;
        v.last_update_status_reason_code = None;
        if needs_preparation(&rec.latest) {
            v.state = FunctionState::Pending;
            v.state_reason = Some("The function is being created.".into());
            v.state_reason_code = Some("Creating".into());
        }
        v
    }

    // ---- Preparation: Pending → Active, InProgress → Successful ----------------------------

    /// Unpacks the function's code and marks `$LATEST` (and versions waiting on it) ready.
    fn prepare(&self, name: &str) -> Result<(), LambdaError> {
        loop {
            let Some((mut rec, doc_version)) = self.load(name)? else {
                return Ok(());
            };
            if !needs_preparation(&rec.latest) {
                return Ok(());
            }
            let digest = digest_of(&rec.latest)?;
            let zip = self.inner.store.blobs.get(&digest)?;
            let outcome = code::unpack(&zip, &digest.to_hex(), &self.inner.opts.code_dir);
            let ok = outcome.is_ok();
            if let Err(e) = &outcome {
                tracing::error!(function = %name, error = %e, "unpacking code failed");
            }
            mark_prepared(&mut rec.latest, ok);
            let mut ops = vec![Op::put_with_blobs(
                FUNCTIONS,
                name,
                encode(&rec)?,
                vec![digest],
                Expect::Version(doc_version),
            )];
            for (key, doc) in
                self.inner
                    .store
                    .meta
                    .list(VERSIONS, &format!("{name}/"), None, usize::MAX)?
            {
                let mut v: FunctionConfig = decode(&doc.value)?;
                if v.state == FunctionState::Pending && v.code_digest == rec.latest.code_digest {
                    mark_prepared(&mut v, ok);
                    ops.push(Op::put_with_blobs(
                        VERSIONS,
                        &key,
                        encode(&v)?,
                        vec![digest],
                        Expect::Version(doc.version),
                    ));
                }
            }
            match self.inner.store.meta.commit(&ops) {
                Ok(()) => return Ok(()),
                // The function changed under us: look again.
                Err(stratus_store::StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The unpacked code of a ready function version, for the execution layer.
    pub fn code_path(&self, config: &FunctionConfig) -> PathBuf {
        self.inner.opts.code_dir.join(&config.code_digest)
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

    /// The unpacked code of `config` if it is there now (one `stat`, no unpacking).
    pub fn unpacked_code(&self, config: &FunctionConfig) -> Option<PathBuf> {
        let path = self.code_path(config);
        path.is_dir().then_some(path)
    }

    /// The unpacked code of `config`, unpacking it again if the derived copy is gone.
    pub fn ensure_code(&self, config: &FunctionConfig) -> Result<PathBuf, LambdaError> {
        if let Some(path) = self.unpacked_code(config) {
            return Ok(path);
        }
        let zip = self.code_zip(config)?;
        code::unpack(&zip, &config.code_digest, &self.inner.opts.code_dir)
    }

    // ---- Reads ----------------------------------------------------------------------------

    /// GetFunction / GetFunctionConfiguration.
    pub fn get(&self, name: &str, qualifier: Option<&str>) -> Result<FunctionView, LambdaError> {
        let r = FunctionRef::parse(name, qualifier, self.scope())?;
        let (rec, _) = self.load(&r.name)?.ok_or_else(|| self.not_found(&r))?;
        if r.is_latest() {
            let latest = rec.latest.clone();
            return Ok(self.view(latest, &rec));
        }
        let q = r.qualifier.as_deref().unwrap_or(LATEST);
        if !crate::aliases::is_version_number(q) {
            // Not a version number: an alias, read as the version it points to.
            return self.get_through_alias(&r, &rec, q);
        }
        let number: u32 = q.parse().map_err(|_| self.not_found(&r))?;
        let doc = self
            .inner
            .store
            .meta
            .get(VERSIONS, &version_key(&r.name, number))?
            .ok_or_else(|| self.not_found(&r))?;
        let config: FunctionConfig = decode(&doc.value)?;
        Ok(self.view(config, &rec))
    }

    /// The zip of a function version, for GetFunction's download location.
    pub fn code_zip(&self, config: &FunctionConfig) -> Result<Vec<u8>, LambdaError> {
        Ok(self.inner.store.blobs.get(&digest_of(config)?)?)
    }

    /// ListFunctions: `$LATEST` of each function, in name order.
    pub fn list(
        &self,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<ListPage, LambdaError> {
        let limit = match max_items {
            None => 50,
            Some(n) => validate::range(n, "maxItems", 1, 10000)?.min(50) as usize,
        };
        let mut page = self.inner.store.meta.list(
            FUNCTIONS,
            "",
            marker.filter(|m| !m.is_empty()),
            limit + 1,
        )?;
        let more = page.len() > limit;
        page.truncate(limit);
        let next_marker = if more {
            page.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        let functions = page
            .into_iter()
            .map(|(_, doc)| {
                let rec: FunctionRecord = decode(&doc.value)?;
                Ok(self.view(rec.latest.clone(), &rec))
            })
            .collect::<Result<Vec<_>, LambdaError>>()?;
        Ok(ListPage {
            functions,
            next_marker,
        })
    }

    // ---- Updates --------------------------------------------------------------------------

    pub(crate) fn check_updatable(
        &self,
        rec: &FunctionRecord,
        revision_id: Option<&str>,
    ) -> Result<(), LambdaError> {
        if let Some(rev) = revision_id
            && rev != rec.latest.revision_id
        {
            return Err(LambdaError::PreconditionFailed(
                "The Revision Id provided does not match the latest Revision Id. \
                 Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
                    .into(),
            ));
        }
        let arn = self.scope().function_arn(&rec.latest.name);
        if rec.latest.state == FunctionState::Pending {
            return Err(LambdaError::Conflict(format!(
                "The operation cannot be performed at this time. The function is currently in the following state: Pending ({arn})"
            )));
        }
        if rec.latest.last_update_status == Some(LastUpdateStatus::InProgress) {
            return Err(LambdaError::Conflict(format!(
                "The operation cannot be performed at this time. An update is in progress for resource: {arn}"
            )));
        }
        Ok(())
    }

    fn load_latest_for_update(&self, name: &str) -> Result<(FunctionRecord, u64), LambdaError> {
        let r = FunctionRef::parse(name, None, self.scope())?;
        if !r.is_latest() {
            return Err(LambdaError::InvalidParameter(
                "Only the $LATEST version of a function can be updated.".into(),
            ));
        }
        self.load(&r.name)?.ok_or_else(|| self.not_found(&r))
    }

    /// Commits `rec` (and a new published version when `publish`), keeping the write atomic.
    fn commit_update(
        &self,
        mut rec: FunctionRecord,
        doc_version: u64,
        publish: bool,
        new_blob: Option<&[u8]>,
    ) -> Result<FunctionView, LambdaError> {
        let name = rec.latest.name.clone();
        let mut published = None;
        let mut ops = Vec::new();
        if publish {
            let v = self.snapshot(&mut rec);
            ops.push(Op::put_with_blobs(
                VERSIONS,
                &version_key(&name, rec.last_published),
                encode(&v)?,
                vec![digest_of(&v)?],
                Expect::Absent,
            ));
            published = Some(v);
        }
        ops.insert(
            0,
            Op::put_with_blobs(
                FUNCTIONS,
                &name,
                encode(&rec)?,
                vec![digest_of(&rec.latest)?],
                Expect::Version(doc_version),
            ),
        );
        {
            let _w = self.write_guard()?;
            // Pinned until the commit that references it is done.
            let _blob = new_blob
                .map(|bytes| self.inner.store.blobs.put(bytes))
                .transpose()?;
            self.inner.store.meta.commit(&ops).map_err(|e| match e {
                stratus_store::StoreError::Conflict { .. } => LambdaError::Conflict(format!(
                    "The operation cannot be performed at this time. An update is in progress for resource: {}",
                    self.scope().function_arn(&name)
                )),
                other => other.into(),
            })?;
            // The old package may have lost its last reference.
            self.collect_garbage()?;
        }
        if needs_preparation(&rec.latest) {
            self.enqueue(&name);
        }
        let shown = published.unwrap_or_else(|| rec.latest.clone());
        Ok(self.view(shown, &rec))
    }

    pub fn update_code(&self, name: &str, input: UpdateCode) -> Result<FunctionView, LambdaError> {
        let (mut rec, doc_version) = self.load_latest_for_update(name)?;
        self.check_updatable(&rec, input.revision_id.as_deref())?;
        if let Some(source) = input.unsupported_code_source {
            return Err(LambdaError::Unsupported(format!(
                "{source} is not supported yet: upload the package as ZipFile."
            )));
        }
        let Some(zip) = input.zip_file else {
            return Err(LambdaError::InvalidParameter(
                "Please provide a source for function code.".into(),
            ));
        };
        if let Some(arch) = &input.architectures {
            validate::architectures(arch)?;
        }
        let pkg = CodePackage::inspect(zip)?;
        let latest = &mut rec.latest;
        if let Some(arch) = input.architectures {
            latest.architectures = arch;
        }
        latest.code_digest = hex::encode(pkg.sha256);
        latest.code_sha256 = pkg.sha256_base64();
        latest.code_size = pkg.bytes.len() as u64;
        latest.last_modified_ms = now_ms();
        latest.revision_id = new_revision();
        latest.last_update_status = Some(LastUpdateStatus::InProgress);
        latest.last_update_status_reason = Some("The function is being created.".into());
        latest.last_update_status_reason_code = Some("Creating".into());
        if input.dry_run {
            let shown = rec.latest.clone();
            return Ok(self.view(shown, &rec));
        }
        self.commit_update(rec, doc_version, input.publish, Some(&pkg.bytes))
    }

    pub fn update_config(
        &self,
        name: &str,
        input: UpdateConfig,
    ) -> Result<FunctionView, LambdaError> {
        let (mut rec, doc_version) = self.load_latest_for_update(name)?;
        self.check_updatable(&rec, input.revision_id.as_deref())?;
        let c = &mut rec.latest;
        if let Some(runtime) = input.runtime {
            self.check_runtime(&runtime)?;
            c.runtime = runtime;
        }
        if let Some(role) = input.role {
            validate::role(&role)?;
            c.role = role;
        }
        if let Some(handler) = input.handler {
            validate::handler(&handler)?;
            c.handler = handler;
        }
        if let Some(d) = input.description {
            validate::max_len(&d, "description", 256)?;
            c.description = d;
        }
        if let Some(t) = input.timeout {
            c.timeout = validate::timeout(t)?;
        }
        if let Some(m) = input.memory_size {
            c.memory_size = validate::memory_size(m)?;
        }
        if let Some(e) = input.ephemeral_storage {
            c.ephemeral_storage = validate::ephemeral_storage(e)?;
        }
        if let Some(env) = input.environment {
            validate::environment(&env)?;
            c.environment = Some(env).filter(|e| !e.is_empty());
        }
        if let Some(mode) = input.tracing_mode {
            validate::tracing_mode(&mode)?;
            c.tracing_mode = mode;
        }
        if let Some(t) = input.dead_letter_target {
            c.dead_letter_target = Some(t).filter(|t| !t.is_empty());
        }
        if let Some(f) = input.log_format {
            validate::log_format(&f)?;
            c.log_format = f;
        }
        if let Some(g) = input.log_group {
            c.log_group = g;
        }
        c.last_modified_ms = now_ms();
        c.revision_id = new_revision();
        // Nothing to prepare for a configuration change: it is in effect at once.
        c.last_update_status = Some(LastUpdateStatus::Successful);
        c.last_update_status_reason = None;
        c.last_update_status_reason_code = None;
        self.commit_update(rec, doc_version, false, None)
    }

    // ---- DeleteFunction -------------------------------------------------------------------

    /// Deletes every function (the server's test mode resets between conformance tests).
    pub fn delete_all(&self) -> Result<(), LambdaError> {
        loop {
            let page = self.list(None, Some(50))?;
            if page.functions.is_empty() {
                return Ok(());
            }
            for f in page.functions {
                match self.delete(&f.config.name, None) {
                    Ok(()) | Err(LambdaError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    pub fn delete(&self, name: &str, qualifier: Option<&str>) -> Result<(), LambdaError> {
        let r = FunctionRef::parse(name, qualifier, self.scope())?;
        let _w = self.write_guard()?;
        if self.inner.store.meta.get(FUNCTIONS, &r.name)?.is_none() {
            return Err(self.not_found(&FunctionRef {
                name: r.name.clone(),
                qualifier: None,
            }));
        }
        let mut ops = Vec::new();
        match r.qualifier.as_deref() {
            None => {
                ops.push(Op::delete(FUNCTIONS, &r.name, Expect::Present));
                for (key, _) in self.inner.store.meta.list(
                    VERSIONS,
                    &format!("{}/", r.name),
                    None,
                    usize::MAX,
                )? {
                    ops.push(Op::delete(VERSIONS, &key, Expect::Present));
                }
                ops.extend(self.alias_delete_ops(&r.name)?);
                for (key, _) in self.inner.store.meta.list(
                    crate::provisioned::PROVISIONED,
                    &format!("{}/", r.name),
                    None,
                    usize::MAX,
                )? {
                    ops.push(Op::delete(
                        crate::provisioned::PROVISIONED,
                        &key,
                        Expect::Present,
                    ));
                }
                for (key, _) in self.inner.store.meta.list(
                    crate::event_config::EVENT_CONFIGS,
                    &format!("{}/", r.name),
                    None,
                    usize::MAX,
                )? {
                    ops.push(Op::delete(
                        crate::event_config::EVENT_CONFIGS,
                        &key,
                        Expect::Present,
                    ));
                }
            }
            Some(LATEST) => {
                return Err(LambdaError::InvalidParameter(
                    "$LATEST version cannot be deleted without deleting the function.".into(),
                ));
            }
            Some(q) => {
                let number: u32 = q.parse().map_err(|_| self.not_found(&r))?;
                let key = version_key(&r.name, number);
                if self.inner.store.meta.get(VERSIONS, &key)?.is_none() {
                    return Err(self.not_found(&r));
                }
                self.check_version_unaliased(&r.name, q)?;
                ops.push(Op::delete(VERSIONS, &key, Expect::Present));
            }
        }
        self.inner.store.meta.commit(&ops)?;
        self.collect_garbage()?;
        self.refresh_reserved_total()?;
        tracing::info!(function = %r.name, qualifier = ?r.qualifier, "function deleted");
        Ok(())
    }

    /// Removes blobs and unpacked code nothing references. Caller holds the write lock.
    fn collect_garbage(&self) -> Result<(), LambdaError> {
        self.inner.store.collect_garbage()?;
        let live: std::collections::HashSet<String> = self
            .inner
            .store
            .meta
            .referenced_blobs()?
            .iter()
            .map(Digest::to_hex)
            .collect();
        if let Ok(rd) = std::fs::read_dir(&self.inner.opts.code_dir) {
            for entry in rd.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') && !live.contains(&name) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(())
    }

    // ---- Tags -----------------------------------------------------------------------------

    fn tag_target(&self, resource: &str) -> Result<(FunctionRecord, u64), LambdaError> {
        if !resource.starts_with("arn:") {
            return Err(LambdaError::Validation(format!(
                "1 validation error detected: Value '{resource}' at 'resource' failed to satisfy constraint: \
                 Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*):lambda:[a-z]{{2}}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{{1}}:\\d{{12}}:(function:[a-zA-Z0-9-_]+(:(\\$LATEST|[a-zA-Z0-9-_]+))?)"
            )));
        }
        let r = FunctionRef::parse(resource, None, self.scope())?;
        if r.qualifier.is_some() {
            return Err(LambdaError::InvalidParameter(
                "Tags are not supported on function versions or aliases: tag the unqualified function ARN."
                    .into(),
            ));
        }
        self.load(&r.name)?.ok_or_else(|| self.not_found(&r))
    }

    pub fn tag(&self, resource: &str, tags: BTreeMap<String, String>) -> Result<(), LambdaError> {
        let _w = self.write_guard()?;
        let (mut rec, v) = self.tag_target(resource)?;
        rec.tags.extend(tags);
        validate::tags(&rec.tags)?;
        self.commit_tags(&rec, v)
    }

    pub fn untag(&self, resource: &str, keys: &[String]) -> Result<(), LambdaError> {
        let _w = self.write_guard()?;
        let (mut rec, v) = self.tag_target(resource)?;
        for k in keys {
            rec.tags.remove(k);
        }
        self.commit_tags(&rec, v)
    }

    fn commit_tags(&self, rec: &FunctionRecord, doc_version: u64) -> Result<(), LambdaError> {
        self.inner.store.meta.commit(&[Op::put_with_blobs(
            FUNCTIONS,
            &rec.latest.name,
            encode(rec)?,
            vec![digest_of(&rec.latest)?],
            Expect::Version(doc_version),
        )])?;
        Ok(())
    }

    pub fn list_tags(&self, resource: &str) -> Result<BTreeMap<String, String>, LambdaError> {
        Ok(self.tag_target(resource)?.0.tags)
    }

    // ---- GetAccountSettings ---------------------------------------------------------------

    pub fn account_settings(&self) -> Result<AccountSettings, LambdaError> {
        let meta = &self.inner.store.meta;
        let mut total = 0u64;
        for table in [FUNCTIONS, VERSIONS] {
            for (_, doc) in meta.list(table, "", None, usize::MAX)? {
                let size = if table == FUNCTIONS {
                    decode::<FunctionRecord>(&doc.value)?.latest.code_size
                } else {
                    decode::<FunctionConfig>(&doc.value)?.code_size
                };
                total += size;
            }
        }
        Ok(AccountSettings {
            total_code_size_limit: TOTAL_CODE_SIZE_LIMIT,
            code_size_unzipped: code::MAX_UNZIPPED_BYTES,
            code_size_zipped: code::MAX_ZIPPED_BYTES as u64,
            concurrent_executions: self.inner.opts.concurrent_executions,
            unreserved_concurrent_executions: self
                .inner
                .opts
                .concurrent_executions
                .saturating_sub(self.reserved_total()),
            total_code_size_used: total,
            function_count: meta.count(FUNCTIONS, "")?,
        })
    }
}

fn needs_preparation(c: &FunctionConfig) -> bool {
    c.state == FunctionState::Pending || c.last_update_status == Some(LastUpdateStatus::InProgress)
}

fn mark_prepared(c: &mut FunctionConfig, ok: bool) {
    c.revision_id = new_revision();
    let creating = c.state == FunctionState::Pending;
    if ok {
        c.state = FunctionState::Active;
        c.state_reason = None;
        c.state_reason_code = None;
        c.last_update_status = Some(LastUpdateStatus::Successful);
        c.last_update_status_reason = None;
        c.last_update_status_reason_code = None;
    } else if creating {
        c.state = FunctionState::Failed;
        c.state_reason = Some("Lambda was unable to unpack the function's code.".into());
        c.state_reason_code = Some("InvalidZipFileException".into());
    } else {
        c.last_update_status = Some(LastUpdateStatus::Failed);
        c.last_update_status_reason =
            Some("Lambda was unable to unpack the function's code.".into());
        c.last_update_status_reason_code = Some("InvalidZipFileException".into());
    }
}

/// A service over a temporary directory, for the crate's unit tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod test_support {
    use super::*;
    use crate::{RuntimeInfo, RuntimeKind};

    /// A service in `dir` offering only `provided.al2`.
    pub fn open(dir: &std::path::Path) -> FunctionService {
        let catalog = RuntimeCatalog::from_runtimes(vec![RuntimeInfo {
            id: "provided.al2".into(),
            kind: RuntimeKind::Provided,
            interpreter: None,
        }]);
        let opts = ServiceOptions {
            scope: Scope {
                region: "us-east-1".into(),
                account_id: "000000000000".into(),
            },
            code_dir: dir.join("code"),
            concurrent_executions: DEFAULT_CONCURRENT_EXECUTIONS,
        };
        FunctionService::new(Store::open(&dir.join("state")).unwrap(), opts, catalog).unwrap()
    }

    /// Creates function `name` (a `bootstrap` only) and waits until it is Active.
    pub fn create_active(svc: &FunctionService, name: &str) {
        svc.create(CreateFunction {
            name: name.into(),
            runtime: Some("provided.al2".into()),
            role: "arn:aws:iam::000000000000:role/r".into(),
            handler: Some("bootstrap".into()),
            zip_file: Some(crate::code::tests::zip_of(&[("bootstrap", b"x")])),
            ..CreateFunction::default()
        })
        .unwrap();
        wait_for(svc, name, FunctionState::Active);
    }

    /// Changes function `name`'s `$LATEST` straight in the store, behind the service's
    /// back (no preparation worker runs for it).
    pub fn edit_latest(store: &Store, name: &str, f: impl FnOnce(&mut FunctionConfig)) {
        let doc = store.meta.get(FUNCTIONS, name).unwrap().unwrap();
        let mut rec: FunctionRecord = decode(&doc.value).unwrap();
        f(&mut rec.latest);
        store
            .meta
            .commit(&[Op::put_with_blobs(
                FUNCTIONS,
                name,
                encode(&rec).unwrap(),
                vec![digest_of(&rec.latest).unwrap()],
                Expect::Version(doc.version),
            )])
            .unwrap();
    }

    pub fn wait_for(svc: &FunctionService, name: &str, want: FunctionState) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while svc.get(name, None).unwrap().config.state != want {
            assert!(
                std::time::Instant::now() < deadline,
                "{name} never became {want:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::test_support::{create_active, edit_latest, open, wait_for};
    use super::*;

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

    /// A crash after the commit but before the worker ran leaves a `Pending` function and no
    /// unpacked code; the next start must finish the job.
    #[test]
    fn pending_functions_are_prepared_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let svc = open(dir.path());
            create_active(&svc, "p");
        }
        {
            let store = Store::open(&dir.path().join("state")).unwrap();
            edit_latest(&store, "p", |c| c.state = FunctionState::Pending);
            std::fs::remove_dir_all(dir.path().join("code")).unwrap();
        }
        let svc = open(dir.path());
        wait_for(&svc, "p", FunctionState::Active);
        let config = svc.get("p", None).unwrap().config;
        assert!(svc.code_path(&config).join("bootstrap").is_file());
    }
}
