//! The function itself: CreateFunction, GetFunction(Configuration), ListFunctions,
//! UpdateFunctionCode, UpdateFunctionConfiguration and DeleteFunction.

use stratus_store::{Digest, Expect, Op};

use crate::code::CodePackage;
use crate::model::FunctionRecord;
use crate::names::FunctionRef;
use crate::records::{
    EVENT_CONFIGS, FUNCTIONS, LATEST, PROVISIONED, VERSIONS, blobs_of, decode, encode,
    is_version_number, needs_preparation, new_revision, now_ms, version_key,
};
use crate::validate;
use crate::{
    CreateFunction, FunctionConfig, FunctionService, FunctionState, FunctionView, LambdaError,
    LastUpdateStatus, ListPage, UpdateCode, UpdateConfig,
};

impl FunctionService {
    fn check_runtime(&self, runtime: &str) -> Result<(), LambdaError> {
        if self.catalog().get(runtime).is_some() {
            return Ok(());
        }
        Err(LambdaError::InvalidParameter(format!(
            "Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [{}] \
             (the runtimes this host offers)",
            self.catalog().ids().join(", ")
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
        self.check_role(&input.role)?;
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
        let layers = self.resolve_layers(
            input.layers.as_deref().unwrap_or_default(),
            pkg.unzipped_size,
        )?;

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
            layers,
            code_unzipped_size: pkg.unzipped_size,
        };
        let mut rec = FunctionRecord {
            latest,
            tags,
            last_published: 0,
            reserved_concurrency: None,
            published_fingerprint: None,
            policies: Default::default(),
        };
        let mut ops = Vec::new();
        let mut published = None;
        if input.publish {
            let v = self.snapshot(&mut rec);
            ops.push(Op::put_with_blobs(
                VERSIONS,
                &version_key(&r.name, rec.last_published),
                encode(&v)?,
                blobs_of(&v)?,
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
                blobs_of(&rec.latest)?,
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

    // ---- Reads ----------------------------------------------------------------------------

    /// GetFunction / GetFunctionConfiguration.
    pub fn get(&self, name: &str, qualifier: Option<&str>) -> Result<FunctionView, LambdaError> {
        let r = FunctionRef::parse(name, qualifier, self.scope())?;
        let rec = self
            .load_shared(&r.name)?
            .ok_or_else(|| self.not_found(&r))?;
        if r.is_latest() {
            let latest = rec.latest.clone();
            return Ok(self.view(latest, &rec));
        }
        let q = r.qualifier.as_deref().unwrap_or(LATEST);
        if !is_version_number(q) {
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
                blobs_of(&v)?,
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
                blobs_of(&rec.latest)?,
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
        // The new code must still fit beside the function's layers.
        let layers_unzipped: u64 = rec.latest.layers.iter().map(|l| l.unzipped_size).sum();
        if pkg.unzipped_size + layers_unzipped > crate::MAX_UNZIPPED_BYTES {
            return Err(LambdaError::InvalidParameter(format!(
                "Function code combined with layers exceeds the maximum allowed size of {} bytes. \
                 The actual size is {} bytes.",
                crate::MAX_UNZIPPED_BYTES,
                pkg.unzipped_size + layers_unzipped
            )));
        }
        let latest = &mut rec.latest;
        latest.code_unzipped_size = pkg.unzipped_size;
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
            self.check_role(&role)?;
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
        // New layers must be extracted before an environment can use them: the preparation
        // worker does it, as it unpacks new code.
        let mut layers_changed = false;
        if let Some(arns) = input.layers {
            let layers = self.resolve_layers(&arns, c.code_unzipped_size)?;
            layers_changed = layers != c.layers;
            c.layers = layers;
        }
        c.last_modified_ms = now_ms();
        c.revision_id = new_revision();
        if layers_changed && c.layers_dir_name().is_some() {
            c.last_update_status = Some(LastUpdateStatus::InProgress);
            c.last_update_status_reason = Some("The function is being updated.".into());
            c.last_update_status_reason_code = Some("Updating".into());
        } else {
            // Nothing to prepare for a configuration change: it is in effect at once.
            c.last_update_status = Some(LastUpdateStatus::Successful);
            c.last_update_status_reason = None;
            c.last_update_status_reason_code = None;
        }
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
                    PROVISIONED,
                    &format!("{}/", r.name),
                    None,
                    usize::MAX,
                )? {
                    ops.push(Op::delete(PROVISIONED, &key, Expect::Present));
                }
                for (key, _) in self.inner.store.meta.list(
                    EVENT_CONFIGS,
                    &format!("{}/", r.name),
                    None,
                    usize::MAX,
                )? {
                    ops.push(Op::delete(EVENT_CONFIGS, &key, Expect::Present));
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
                // Its resource-based policy goes with it.
                ops.extend(self.drop_policy_op(&r.name, q)?);
            }
        }
        self.inner.store.meta.commit(&ops)?;
        self.collect_garbage()?;
        self.refresh_reserved_total()?;
        tracing::info!(function = %r.name, qualifier = ?r.qualifier, "function deleted");
        Ok(())
    }

    /// Removes blobs and unpacked code nothing references. Caller holds the write lock.
    pub(crate) fn collect_garbage(&self) -> Result<(), LambdaError> {
        self.inner.store.collect_garbage()?;
        let live: std::collections::HashSet<String> = self
            .inner
            .store
            .meta
            .referenced_blobs()?
            .iter()
            .map(Digest::to_hex)
            .chain(self.live_layer_dirs()?)
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
}
