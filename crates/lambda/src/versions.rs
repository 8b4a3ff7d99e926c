//! Published versions: PublishVersion and ListVersionsByFunction.
//!
//! A version is an immutable snapshot of `$LATEST` stored at
//! `lambda.versions/<name>/<number as 10 digits>`, referencing its code blob. Numbers come from
//! the function record's `last_published` counter, so they start at 1 and are never reused,
//! not even after the highest version is deleted.
//!
//! Publishing runs under the service's write lock and commits the record (with
//! `Expect::Version`) and the new snapshot (with `Expect::Absent`) together.

use sha2::{Digest as _, Sha256};
use stratus_store::{Expect, Op, StoreError};

use crate::model::FunctionRecord;
use crate::names::FunctionRef;
use crate::records::{
    FUNCTIONS, LATEST, VERSIONS, blobs_of, decode, encode, is_version_number, needs_preparation,
    new_revision, page_size, version_key,
};
use crate::{FunctionConfig, FunctionService, FunctionState, FunctionView, LambdaError, validate};

/// PublishVersion's input.
#[derive(Debug, Clone, Default)]
pub struct PublishVersion {
    /// Publish only if `$LATEST`'s code has this SHA-256 (base64, as AWS reports it).
    pub code_sha256: Option<String>,
    /// The version's description, instead of the one `$LATEST` has.
    pub description: Option<String>,
    /// Publish only if `$LATEST` has this RevisionId.
    pub revision_id: Option<String>,
}

/// One page of ListVersionsByFunction.
#[derive(Debug, Clone)]
pub struct VersionsPage {
    pub versions: Vec<FunctionView>,
    pub next_marker: Option<String>,
}

/// What makes two snapshots "the same code and configuration": every field except those that
/// name the version or change on their own (revision, timestamps, preparation states).
/// Clearing fields rather than listing them keeps fields added later covered.
fn fingerprint(c: &FunctionConfig) -> String {
    let mut c = c.clone();
    c.version = String::new();
    c.revision_id = String::new();
    c.last_modified_ms = 0;
    c.state = FunctionState::Active;
    c.state_reason = None;
    c.state_reason_code = None;
    c.last_update_status = None;
    c.last_update_status_reason = None;
    c.last_update_status_reason_code = None;
    // Struct fields serialise in declaration order and maps are BTreeMaps: the bytes are stable.
    let bytes = serde_json::to_vec(&c).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

impl FunctionService {
    /// Makes the next published version of `rec.latest` (the caller commits it).
    pub(crate) fn snapshot(&self, rec: &mut FunctionRecord) -> FunctionConfig {
        rec.last_published += 1;
        rec.published_fingerprint = Some(fingerprint(&rec.latest));
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

    /// Parses a function name for the operations that act on the function as a whole
    /// (versions, aliases): a qualifier there is refused rather than silently ignored.
    pub(crate) fn function_only(&self, name: &str) -> Result<FunctionRef, LambdaError> {
        let r = FunctionRef::parse(name, None, self.scope())?;
        if let Some(q) = &r.qualifier {
            return Err(LambdaError::InvalidParameter(format!(
                "This operation takes an unqualified function name or ARN; remove the qualifier '{q}'."
            )));
        }
        Ok(r)
    }

    /// A published version's configuration, if `version` names one.
    pub(crate) fn load_version(
        &self,
        function: &str,
        version: &str,
    ) -> Result<Option<FunctionConfig>, LambdaError> {
        let Ok(number) = version.parse::<u32>() else {
            return Ok(None);
        };
        match self
            .inner
            .store
            .meta
            .get(VERSIONS, &version_key(function, number))?
        {
            Some(doc) => Ok(Some(decode(&doc.value)?)),
            None => Ok(None),
        }
    }

    /// PublishVersion: snapshots `$LATEST`, or returns the latest version when `$LATEST` has
    /// not changed since it was published.
    pub fn publish_version(
        &self,
        name: &str,
        input: PublishVersion,
    ) -> Result<FunctionView, LambdaError> {
        let r = self.function_only(name)?;
        if let Some(d) = &input.description {
            validate::max_len(d, "description", 256)?;
        }
        let _w = self.write_guard()?;
        let (mut rec, doc_version) = self.load(&r.name)?.ok_or_else(|| self.not_found(&r))?;
        // RevisionId first (412), then Pending / InProgress (409), as for the updates.
        self.check_updatable(&rec, input.revision_id.as_deref())?;
        if let Some(sha) = input.code_sha256.as_deref().filter(|s| !s.is_empty())
            && sha != rec.latest.code_sha256
        {
            // AWS answers a CodeSha256 mismatch with 400 InvalidParameterValueException (not
            // 412), in these words.
            return Err(LambdaError::InvalidParameter(format!(
                "CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST ({}). \
                 Please try again with the CodeSHA256 in $LATEST.",
                rec.latest.code_sha256
            )));
        }
        if let Some(existing) = self.unchanged_version(&rec)? {
            return Ok(self.view(existing, &rec));
        }
        let mut v = self.snapshot(&mut rec);
        if let Some(d) = input.description {
            v.description = d;
        }
        let ops = [
            Op::put_with_blobs(
                FUNCTIONS,
                &r.name,
                encode(&rec)?,
                blobs_of(&rec.latest)?,
                Expect::Version(doc_version),
            ),
            Op::put_with_blobs(
                VERSIONS,
                &version_key(&r.name, rec.last_published),
                encode(&v)?,
                blobs_of(&v)?,
                Expect::Absent,
            ),
        ];
        self.inner.store.meta.commit(&ops).map_err(|e| match e {
            StoreError::Conflict { .. } => LambdaError::Conflict(format!(
                "The operation cannot be performed at this time. An update is in progress for resource: {}",
                self.scope().function_arn(&r.name)
            )),
            other => other.into(),
        })?;
        tracing::info!(function = %r.name, version = %v.version, "version published");
        Ok(self.view(v, &rec))
    }

    /// The last published version, when `$LATEST` still has its code and configuration.
    /// If that version was deleted, there is nothing to return and a new one is published.
    fn unchanged_version(
        &self,
        rec: &FunctionRecord,
    ) -> Result<Option<FunctionConfig>, LambdaError> {
        if rec.last_published == 0 {
            return Ok(None);
        }
        let Some(last) = self.load_version(&rec.latest.name, &rec.last_published.to_string())?
        else {
            return Ok(None);
        };
        let now = fingerprint(&rec.latest);
        let same = match &rec.published_fingerprint {
            Some(f) => *f == now,
            // A record written before fingerprints existed: compare with the snapshot itself
            // (a description given at publish time then counts as a change).
            None => fingerprint(&last) == now,
        };
        Ok(same.then_some(last))
    }

    /// ListVersionsByFunction: `$LATEST` first, then the published versions in numeric order.
    /// The marker is the last version of the previous page.
    pub fn list_versions(
        &self,
        name: &str,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<VersionsPage, LambdaError> {
        let r = self.function_only(name)?;
        let limit = page_size(max_items)?;
        let (rec, _) = self.load(&r.name)?.ok_or_else(|| self.not_found(&r))?;
        let mut versions = Vec::new();
        let start_after = match marker.filter(|m| !m.is_empty()) {
            None => {
                let mut latest = self.view(rec.latest.clone(), &rec);
                // In this listing AWS qualifies `$LATEST`'s ARN too.
                latest.arn = self.scope().qualified_arn(&r.name, LATEST);
                versions.push(latest);
                None
            }
            Some(LATEST) => None,
            Some(m) => {
                let number: u32 = m
                    .parse()
                    .ok()
                    .filter(|_| is_version_number(m))
                    .ok_or_else(|| LambdaError::InvalidParameter(format!("Invalid marker: {m}")))?;
                Some(version_key(&r.name, number))
            }
        };
        // One more than fits says whether another page follows.
        let want = (limit + 1).saturating_sub(versions.len());
        for (_, doc) in self.inner.store.meta.list(
            VERSIONS,
            &format!("{}/", r.name),
            start_after.as_deref(),
            want,
        )? {
            versions.push(self.view(decode(&doc.value)?, &rec));
        }
        let next_marker = if versions.len() > limit {
            versions.truncate(limit);
            versions.last().map(|v| v.config.version.clone())
        } else {
            None
        };
        Ok(VersionsPage {
            versions,
            next_marker,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config() -> FunctionConfig {
        FunctionConfig {
            name: "f".into(),
            version: "$LATEST".into(),
            package_type: "Zip".into(),
            runtime: "python3.11".into(),
            handler: "app.handler".into(),
            role: "arn:aws:iam::000000000000:role/r".into(),
            description: String::new(),
            timeout: 3,
            memory_size: 128,
            ephemeral_storage: 512,
            architectures: vec!["x86_64".into()],
            environment: None,
            tracing_mode: "PassThrough".into(),
            dead_letter_target: None,
            log_format: "Text".into(),
            log_group: "/aws/lambda/f".into(),
            code_digest: "00".repeat(32),
            code_sha256: "AA==".into(),
            code_size: 1,
            last_modified_ms: 1,
            revision_id: "r1".into(),
            state: FunctionState::Pending,
            state_reason: Some("Creating".into()),
            state_reason_code: None,
            last_update_status: None,
            last_update_status_reason: None,
            last_update_status_reason_code: None,
            layers: Vec::new(),
            code_unzipped_size: 0,
        }
    }

    #[test]
    fn fingerprint_ignores_bookkeeping_but_not_configuration() {
        let a = config();
        let mut b = a.clone();
        b.version = "3".into();
        b.revision_id = "r2".into();
        b.last_modified_ms = 99;
        b.state = FunctionState::Active;
        b.state_reason = None;
        b.last_update_status = Some(crate::LastUpdateStatus::Successful);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        for change in [
            (|c: &mut FunctionConfig| c.memory_size = 256) as fn(&mut FunctionConfig),
            |c| c.description = "d".into(),
            |c| c.code_sha256 = "BB==".into(),
            |c| c.environment = Some([("K".to_string(), "V".to_string())].into()),
        ] {
            let mut c = a.clone();
            change(&mut c);
            assert_ne!(fingerprint(&a), fingerprint(&c));
        }
    }

    /// `$LATEST` caught Pending or InProgress (set directly in the store, so no preparation
    /// worker races the test) cannot be published.
    #[test]
    fn publishing_is_refused_while_latest_is_being_prepared() {
        use crate::LastUpdateStatus;

        let dir = tempfile::tempdir().unwrap();
        let svc = crate::test_support::open(dir.path());
        let store = svc.store();
        crate::test_support::create_active(&svc, "p");
        let set = |f: fn(&mut FunctionConfig)| {
            crate::test_support::edit_latest(&store, "p", f);
        };
        for (busy, word) in [
            (
                (|c: &mut FunctionConfig| c.state = FunctionState::Pending)
                    as fn(&mut FunctionConfig),
                "Pending",
            ),
            (
                |c| {
                    c.state = FunctionState::Active;
                    c.last_update_status = Some(LastUpdateStatus::InProgress);
                },
                "An update is in progress",
            ),
        ] {
            set(busy);
            let e = svc
                .publish_version("p", PublishVersion::default())
                .unwrap_err();
            assert!(
                matches!(&e, LambdaError::Conflict(m) if m.contains(word)),
                "{e:?}"
            );
        }
        set(|c| c.last_update_status = Some(LastUpdateStatus::Successful));
        assert_eq!(
            svc.publish_version("p", PublishVersion::default())
                .unwrap()
                .config
                .version,
            "1"
        );
    }
}
