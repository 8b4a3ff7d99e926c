//! Layers: PublishLayerVersion, GetLayerVersion(ByArn), ListLayers, ListLayerVersions,
//! DeleteLayerVersion, the layer versions' permissions, and what functions do with them
//! (resolving `Layers`, extracting them for execution, keeping their directories).
//!
//! A layer version's zip is a blob like a function's code. A function configuration that
//! names the version copies what it needs (ARN, digest, sizes) and references the blob
//! itself, so deleting the layer version removes only its record: the functions using it
//! keep running, and the blob goes once the last of them does.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use stratus_store::{Expect, Op};

use crate::code::{self, CodePackage, MAX_UNZIPPED_BYTES};
use crate::records::{
    FUNCTIONS, LAYER_VERSIONS, LAYERS, VERSIONS, decode, encode, new_revision, now_ms,
};
use crate::{FunctionConfig, FunctionService, LambdaError, validate};

/// Lambda's limit of layers per function.
pub const MAX_LAYERS: usize = 5;

/// PublishLayerVersion's input.
#[derive(Debug, Clone, Default)]
pub struct PublishLayer {
    /// A layer name or a layer ARN (without version).
    pub name: String,
    pub description: Option<String>,
    pub zip_file: Option<Vec<u8>>,
    /// Content given in a form this server cannot take (an S3 location): its name.
    pub unsupported_code_source: Option<&'static str>,
    pub compatible_runtimes: Vec<String>,
    pub compatible_architectures: Vec<String>,
    pub license_info: Option<String>,
}

/// One statement of a layer version's policy (AddLayerVersionPermission).
/// Field names are the storage format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerStatement {
    pub sid: String,
    pub action: String,
    /// `*` or an account id.
    pub principal: String,
    pub organization_id: Option<String>,
}

/// A layer version as stored. Field names are the storage format.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerVersion {
    pub name: String,
    pub version: u32,
    pub description: String,
    pub compatible_runtimes: Vec<String>,
    pub compatible_architectures: Vec<String>,
    pub license_info: Option<String>,
    /// Hex SHA-256 of the zip: the blob that holds it.
    pub digest: String,
    /// Base64 SHA-256, as AWS reports `CodeSha256`.
    pub code_sha256: String,
    pub code_size: u64,
    pub unzipped_size: u64,
    pub created_ms: i64,
    #[serde(default)]
    pub policy: Vec<LayerStatement>,
    pub revision_id: String,
}

/// A layer version with its ARNs, as reads return it.
#[derive(Debug, Clone)]
pub struct LayerVersionView {
    pub layer_arn: String,
    pub layer_version_arn: String,
    pub layer: LayerVersion,
}

/// One page of ListLayers (the latest matching version of each layer) or ListLayerVersions.
#[derive(Debug, Clone)]
pub struct LayersPage {
    pub layers: Vec<LayerVersionView>,
    pub next_marker: Option<String>,
}

/// A layer version's policy document and revision (GetLayerVersionPolicy).
#[derive(Debug, Clone)]
pub struct LayerPolicy {
    pub policy: String,
    pub revision_id: String,
}

/// The stored record of a layer: the last version number handed out, kept after its
/// versions are deleted so that a number is never reused.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LayerRecord {
    last_version: u32,
}

fn version_key(name: &str, version: u32) -> String {
    format!("{name}/{version:010}")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 140
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn name_error(value: &str) -> LambdaError {
    LambdaError::Validation(format!(
        "1 validation error detected: Value '{value}' at 'layerName' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: \
         (arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{{12}}:layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+"
    ))
}

fn sort_unique(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

impl FunctionService {
    pub fn layer_arn(&self, name: &str) -> String {
        let s = self.scope();
        format!("arn:aws:lambda:{}:{}:layer:{name}", s.region, s.account_id)
    }

    fn layer_view(&self, layer: LayerVersion) -> LayerVersionView {
        let layer_arn = self.layer_arn(&layer.name);
        LayerVersionView {
            layer_version_arn: format!("{layer_arn}:{}", layer.version),
            layer_arn,
            layer,
        }
    }

    /// The layer a `LayerName` names: a plain name, or a layer ARN of this account and region.
    fn layer_name(&self, given: &str) -> Result<String, LambdaError> {
        let name = match given.strip_prefix("arn:") {
            None => given,
            Some(_) => {
                let parts: Vec<&str> = given.splitn(7, ':').collect();
                if parts.len() != 7 || parts[2] != "lambda" || parts[5] != "layer" {
                    return Err(name_error(given));
                }
                if parts[3] != self.scope().region || parts[4] != self.scope().account_id {
                    return Err(LambdaError::NotFound(format!(
                        "Layer {given} does not exist in this account and region."
                    )));
                }
                parts[6]
            }
        };
        if !valid_name(name) {
            return Err(name_error(given));
        }
        Ok(name.to_owned())
    }

    /// A layer version ARN's layer name and version, if it is one of this account's.
    fn parse_layer_version_arn(&self, arn: &str) -> Result<(String, u32), LambdaError> {
        let invalid = || {
            LambdaError::Validation(format!(
                "1 validation error detected: Value '{arn}' at 'arn' failed to satisfy constraint: \
                 Member must satisfy regular expression pattern: \
                 arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{{12}}:layer:[a-zA-Z0-9-_]+:[0-9]+"
            ))
        };
        let parts: Vec<&str> = arn.split(':').collect();
        if parts.len() != 8
            || parts[0] != "arn"
            || parts[2] != "lambda"
            || parts[5] != "layer"
            || !valid_name(parts[6])
            || parts[4].len() != 12
            || !parts[4].bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid());
        }
        let version: u32 = parts[7].parse().map_err(|_| invalid())?;
        Ok((parts[6].to_owned(), version))
    }

    fn load_layer_version(
        &self,
        name: &str,
        version: u32,
    ) -> Result<Option<(LayerVersion, u64)>, LambdaError> {
        match self
            .inner
            .store
            .meta
            .get(LAYER_VERSIONS, &version_key(name, version))?
        {
            Some(doc) => Ok(Some((decode(&doc.value)?, doc.version))),
            None => Ok(None),
        }
    }

    fn layer_not_found(&self) -> LambdaError {
        LambdaError::NotFound("The resource you requested does not exist.".into())
    }

    // ---- PublishLayerVersion ----------------------------------------------------------------

    pub fn publish_layer_version(
        &self,
        input: PublishLayer,
    ) -> Result<LayerVersionView, LambdaError> {
        let name = self.layer_name(&input.name)?;
        let description = input.description.unwrap_or_default();
        validate::max_len(&description, "description", 256)?;
        if let Some(l) = &input.license_info {
            validate::max_len(l, "licenseInfo", 512)?;
        }
        if input.compatible_runtimes.len() > 15 {
            return Err(LambdaError::Validation(
                "1 validation error detected: Value at 'compatibleRuntimes' failed to satisfy constraint: \
                 Member must have length less than or equal to 15"
                    .into(),
            ));
        }
        for r in &input.compatible_runtimes {
            if r.is_empty()
                || !r
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.')
            {
                return Err(LambdaError::Validation(format!(
                    "1 validation error detected: Value '[{r}]' at 'compatibleRuntimes' failed to satisfy \
                     constraint: Member must satisfy constraint: [Member must satisfy enum value set]"
                )));
            }
        }
        if input.compatible_architectures.len() > 2 {
            return Err(LambdaError::Validation(
                "1 validation error detected: Value at 'compatibleArchitectures' failed to satisfy \
                 constraint: Member must have length less than or equal to 2"
                    .into(),
            ));
        }
        for a in &input.compatible_architectures {
            validate::architectures(std::slice::from_ref(a))?;
        }
        if let Some(source) = input.unsupported_code_source {
            return Err(LambdaError::Unsupported(format!(
                "Content.{source} is not supported yet: upload the layer as Content.ZipFile."
            )));
        }
        let Some(zip) = input.zip_file else {
            return Err(LambdaError::InvalidParameter(
                "Please provide a source for the layer content.".into(),
            ));
        };
        let pkg = CodePackage::inspect(zip)?;
        let _w = self.write_guard()?;
        let (mut rec, expect) = match self.inner.store.meta.get(LAYERS, &name)? {
            Some(doc) => (
                decode::<LayerRecord>(&doc.value)?,
                Expect::Version(doc.version),
            ),
            None => (LayerRecord::default(), Expect::Absent),
        };
        rec.last_version += 1;
        let layer = LayerVersion {
            name: name.clone(),
            version: rec.last_version,
            description,
            compatible_runtimes: sort_unique(input.compatible_runtimes),
            compatible_architectures: sort_unique(input.compatible_architectures),
            license_info: input.license_info,
            digest: hex::encode(pkg.sha256),
            code_sha256: pkg.sha256_base64(),
            code_size: pkg.bytes.len() as u64,
            unzipped_size: pkg.unzipped_size,
            created_ms: now_ms(),
            policy: Vec::new(),
            revision_id: new_revision(),
        };
        // Pinned until the commit that references it is done.
        let blob = self.inner.store.blobs.put(&pkg.bytes)?;
        self.inner.store.meta.commit(&[
            Op::put(LAYERS, &name, encode(&rec)?, expect),
            Op::put_with_blobs(
                LAYER_VERSIONS,
                &version_key(&name, layer.version),
                encode(&layer)?,
                vec![blob.digest()],
                Expect::Absent,
            ),
        ])?;
        tracing::info!(layer = %name, version = layer.version, "layer version published");
        Ok(self.layer_view(layer))
    }

    // ---- Reads ------------------------------------------------------------------------------

    pub fn get_layer_version(
        &self,
        name: &str,
        version: u32,
    ) -> Result<LayerVersionView, LambdaError> {
        let name = self.layer_name(name)?;
        let (layer, _) = self
            .load_layer_version(&name, version)?
            .ok_or_else(|| self.layer_not_found())?;
        Ok(self.layer_view(layer))
    }

    pub fn get_layer_version_by_arn(&self, arn: &str) -> Result<LayerVersionView, LambdaError> {
        let (name, version) = self.parse_layer_version_arn(arn)?;
        if self.layer_arn(&name) != arn.rsplit_once(':').map_or("", |(l, _)| l) {
            return Err(self.layer_not_found());
        }
        self.get_layer_version(&name, version)
    }

    fn matches(layer: &LayerVersion, runtime: Option<&str>, arch: Option<&str>) -> bool {
        runtime.is_none_or(|r| layer.compatible_runtimes.iter().any(|c| c == r))
            && arch.is_none_or(|a| layer.compatible_architectures.iter().any(|c| c == a))
    }

    /// ListLayers: the latest version of each layer that matches the filters, by name.
    /// The marker is the last layer name of the previous page.
    pub fn list_layers(
        &self,
        runtime: Option<&str>,
        arch: Option<&str>,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<LayersPage, LambdaError> {
        let limit = page_limit(max_items)?;
        let mut latest: BTreeMap<String, LayerVersion> = BTreeMap::new();
        for (_, doc) in self
            .inner
            .store
            .meta
            .list(LAYER_VERSIONS, "", None, usize::MAX)?
        {
            let layer: LayerVersion = decode(&doc.value)?;
            if marker.is_some_and(|m| layer.name.as_str() <= m)
                || !Self::matches(&layer, runtime, arch)
            {
                continue;
            }
            // Keys are in version order within a layer: the last one seen is the latest.
            latest.insert(layer.name.clone(), layer);
        }
        let more = latest.len() > limit;
        let layers: Vec<_> = latest
            .into_values()
            .take(limit)
            .map(|l| self.layer_view(l))
            .collect();
        let next_marker = more
            .then(|| layers.last().map(|v| v.layer.name.clone()))
            .flatten();
        Ok(LayersPage {
            layers,
            next_marker,
        })
    }

    /// ListLayerVersions: a layer's versions that match the filters, newest first. The
    /// marker is the last version number of the previous page.
    pub fn list_layer_versions(
        &self,
        name: &str,
        runtime: Option<&str>,
        arch: Option<&str>,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<LayersPage, LambdaError> {
        let name = self.layer_name(name)?;
        let limit = page_limit(max_items)?;
        let below: Option<u32> = marker
            .filter(|m| !m.is_empty())
            .map(|m| {
                m.parse()
                    .map_err(|_| LambdaError::InvalidParameter(format!("Invalid marker: {m}")))
            })
            .transpose()?;
        let mut versions = Vec::new();
        for (_, doc) in
            self.inner
                .store
                .meta
                .list(LAYER_VERSIONS, &format!("{name}/"), None, usize::MAX)?
        {
            let layer: LayerVersion = decode(&doc.value)?;
            if below.is_none_or(|b| layer.version < b) && Self::matches(&layer, runtime, arch) {
                versions.push(layer);
            }
        }
        versions.reverse();
        let more = versions.len() > limit;
        versions.truncate(limit);
        let next_marker = more
            .then(|| versions.last().map(|l| l.version.to_string()))
            .flatten();
        Ok(LayersPage {
            layers: versions.into_iter().map(|l| self.layer_view(l)).collect(),
            next_marker,
        })
    }

    // ---- DeleteLayerVersion -----------------------------------------------------------------

    /// Deletes a layer version's record. Functions that use it keep its zip referenced, so
    /// they go on running; its number is never handed out again. Deleting a version that
    /// does not exist succeeds, as on AWS.
    pub fn delete_layer_version(&self, name: &str, version: u32) -> Result<(), LambdaError> {
        let name = self.layer_name(name)?;
        let _w = self.write_guard()?;
        let key = version_key(&name, version);
        if self.inner.store.meta.get(LAYER_VERSIONS, &key)?.is_none() {
            return Ok(());
        }
        self.inner
            .store
            .meta
            .commit(&[Op::delete(LAYER_VERSIONS, &key, Expect::Present)])?;
        self.collect_garbage()?;
        tracing::info!(layer = %name, version, "layer version deleted");
        Ok(())
    }

    // ---- Permissions ------------------------------------------------------------------------

    /// AddLayerVersionPermission: returns the statement added (JSON) and the new revision.
    pub fn add_layer_version_permission(
        &self,
        name: &str,
        version: u32,
        statement: LayerStatement,
        revision_id: Option<&str>,
    ) -> Result<(String, String), LambdaError> {
        let name = self.layer_name(name)?;
        validate_statement(&statement)?;
        let _w = self.write_guard()?;
        let (mut layer, doc_version) = self
            .load_layer_version(&name, version)?
            .ok_or_else(|| self.layer_not_found())?;
        check_revision(&layer, revision_id)?;
        if layer.policy.iter().any(|s| s.sid == statement.sid) {
            return Err(LambdaError::Conflict(format!(
                "The statement id ({}) provided already exists. Please provide a new statement id, \
                 or remove the existing statement.",
                statement.sid
            )));
        }
        layer.policy.push(statement.clone());
        layer.revision_id = new_revision();
        self.commit_layer_version(&layer, doc_version)?;
        let arn = self.layer_view(layer.clone()).layer_version_arn;
        Ok((
            statement_json(&statement, &arn).to_string(),
            layer.revision_id,
        ))
    }

    pub fn remove_layer_version_permission(
        &self,
        name: &str,
        version: u32,
        sid: &str,
        revision_id: Option<&str>,
    ) -> Result<(), LambdaError> {
        let name = self.layer_name(name)?;
        let _w = self.write_guard()?;
        let (mut layer, doc_version) = self
            .load_layer_version(&name, version)?
            .ok_or_else(|| self.layer_not_found())?;
        check_revision(&layer, revision_id)?;
        let before = layer.policy.len();
        layer.policy.retain(|s| s.sid != sid);
        if layer.policy.len() == before {
            return Err(LambdaError::NotFound(format!(
                "Statement {sid} is not found in resource policy."
            )));
        }
        layer.revision_id = new_revision();
        self.commit_layer_version(&layer, doc_version)
    }

    pub fn get_layer_version_policy(
        &self,
        name: &str,
        version: u32,
    ) -> Result<LayerPolicy, LambdaError> {
        let name = self.layer_name(name)?;
        let (layer, _) = self
            .load_layer_version(&name, version)?
            .ok_or_else(|| self.layer_not_found())?;
        if layer.policy.is_empty() {
            return Err(LambdaError::NotFound(
                "No policy is associated with the given resource.".into(),
            ));
        }
        let arn = self.layer_view(layer.clone()).layer_version_arn;
        let doc = serde_json::json!({
            "Version": "2012-10-17",
            "Id": "default",
            "Statement": layer.policy.iter().map(|s| statement_json(s, &arn)).collect::<Vec<_>>(),
        });
        Ok(LayerPolicy {
            policy: doc.to_string(),
            revision_id: layer.revision_id,
        })
    }

    fn commit_layer_version(
        &self,
        layer: &LayerVersion,
        doc_version: u64,
    ) -> Result<(), LambdaError> {
        let digest = stratus_store::Digest::from_hex(&layer.digest)
            .ok_or_else(|| LambdaError::Internal(format!("bad layer digest {}", layer.digest)))?;
        self.inner.store.meta.commit(&[Op::put_with_blobs(
            LAYER_VERSIONS,
            &version_key(&layer.name, layer.version),
            encode(layer)?,
            vec![digest],
            Expect::Version(doc_version),
        )])?;
        Ok(())
    }

    // ---- Functions' layers ------------------------------------------------------------------

    /// Resolves a function's `Layers` (layer version ARNs, in order) and checks the code and
    /// the layers together against the unzipped size limit.
    pub(crate) fn resolve_layers(
        &self,
        arns: &[String],
        code_unzipped: u64,
    ) -> Result<Vec<crate::model::FunctionLayer>, LambdaError> {
        if arns.len() > MAX_LAYERS {
            return Err(LambdaError::InvalidParameter(format!(
                "Cannot reference more than {MAX_LAYERS} layers."
            )));
        }
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(arns.len());
        let mut total = code_unzipped;
        for arn in arns {
            let (name, version) = self.parse_layer_version_arn(arn)?;
            if !seen.insert(name.clone()) {
                return Err(LambdaError::InvalidParameter(format!(
                    "Two different versions of the same layer are not allowed to be referenced \
                     in the same function. {arn} is used more than once."
                )));
            }
            let missing =
                || LambdaError::InvalidParameter(format!("Layer version {arn} does not exist."));
            if self.layer_arn(&name) != arn.rsplit_once(':').map_or("", |(l, _)| l) {
                return Err(missing());
            }
            let (layer, _) = self
                .load_layer_version(&name, version)?
                .ok_or_else(missing)?;
            total += layer.unzipped_size;
            out.push(crate::model::FunctionLayer {
                arn: arn.clone(),
                code_size: layer.code_size,
                unzipped_size: layer.unzipped_size,
                digest: layer.digest,
            });
        }
        if total > MAX_UNZIPPED_BYTES {
            return Err(LambdaError::InvalidParameter(format!(
                "Function code combined with layers exceeds the maximum allowed size of \
                 {MAX_UNZIPPED_BYTES} bytes. The actual size is {total} bytes."
            )));
        }
        Ok(out)
    }

    /// Extracts `config`'s layers, in order, into their shared directory unless it is there
    /// (once per distinct list, off the invoke path: the preparation worker calls this).
    pub(crate) fn unpack_layers(&self, config: &FunctionConfig) -> Result<(), LambdaError> {
        let Some(dir) = config.layers_dir_name() else {
            return Ok(());
        };
        if self.inner.opts.code_dir.join(&dir).is_dir() {
            return Ok(());
        }
        let zips = config
            .layers
            .iter()
            .map(|l| {
                let d = stratus_store::Digest::from_hex(&l.digest).ok_or_else(|| {
                    LambdaError::Internal(format!("bad layer digest {}", l.digest))
                })?;
                Ok(self.inner.store.blobs.get(&d)?)
            })
            .collect::<Result<Vec<Vec<u8>>, LambdaError>>()?;
        let refs: Vec<&[u8]> = zips.iter().map(Vec::as_slice).collect();
        code::unpack_all(&refs, &dir, &self.inner.opts.code_dir)?;
        Ok(())
    }

    /// The layer directories some function version still uses (for garbage collection).
    pub(crate) fn live_layer_dirs(&self) -> Result<HashSet<String>, LambdaError> {
        let mut live = HashSet::new();
        for (_, doc) in self
            .inner
            .store
            .meta
            .list(FUNCTIONS, "", None, usize::MAX)?
        {
            let rec: crate::model::FunctionRecord = decode(&doc.value)?;
            live.extend(rec.latest.layers_dir_name());
        }
        for (_, doc) in self.inner.store.meta.list(VERSIONS, "", None, usize::MAX)? {
            let c: FunctionConfig = decode(&doc.value)?;
            live.extend(c.layers_dir_name());
        }
        Ok(live)
    }
}

fn page_limit(max_items: Option<i64>) -> Result<usize, LambdaError> {
    Ok(match max_items {
        None => 50,
        Some(n) => validate::range(n, "maxItems", 1, 50)? as usize,
    })
}

fn check_revision(layer: &LayerVersion, revision_id: Option<&str>) -> Result<(), LambdaError> {
    match revision_id {
        Some(r) if r != layer.revision_id => Err(LambdaError::PreconditionFailed(
            "The Revision Id provided does not match the latest Revision Id. \
             Call the GetLayerVersionPolicy API to retrieve the latest Revision Id"
                .into(),
        )),
        _ => Ok(()),
    }
}

fn validate_statement(s: &LayerStatement) -> Result<(), LambdaError> {
    let constraint = |value: &str, field: &str, pattern: &str| {
        LambdaError::Validation(format!(
            "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: {pattern}"
        ))
    };
    if s.sid.is_empty()
        || s.sid.len() > 100
        || !s
            .sid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(constraint(&s.sid, "statementId", "([a-zA-Z0-9-_]+)"));
    }
    if s.action != "lambda:GetLayerVersion" {
        return Err(constraint(&s.action, "action", "lambda:GetLayerVersion"));
    }
    if s.principal != "*" && principal_account(&s.principal).is_none() {
        return Err(constraint(
            &s.principal,
            "principal",
            "\\d{12}|\\*|arn:(aws[a-zA-Z-]*):iam::\\d{12}:root",
        ));
    }
    if let Some(org) = &s.organization_id
        && (org.len() > 34 || !org.starts_with("o-"))
    {
        return Err(constraint(org, "organizationId", "o-[a-z0-9]{10,32}"));
    }
    Ok(())
}

/// The account a principal names: an account id, or its root's ARN.
fn principal_account(p: &str) -> Option<&str> {
    let id = p
        .strip_prefix("arn:aws:iam::")
        .and_then(|rest| rest.strip_suffix(":root"))
        .unwrap_or(p);
    (id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())).then_some(id)
}

/// A statement as AWS writes it into a layer version's policy.
fn statement_json(s: &LayerStatement, layer_version_arn: &str) -> serde_json::Value {
    let principal = match principal_account(&s.principal) {
        Some(account) => serde_json::json!({ "AWS": format!("arn:aws:iam::{account}:root") }),
        None => serde_json::json!("*"),
    };
    let mut v = serde_json::json!({
        "Sid": s.sid,
        "Effect": "Allow",
        "Principal": principal,
        "Action": s.action,
        "Resource": layer_version_arn,
    });
    if let Some(org) = &s.organization_id {
        v["Condition"] = serde_json::json!({ "StringEquals": { "aws:PrincipalOrgID": org } });
    }
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::code::tests::zip_of;
    use crate::test_support::{open, wait_for};
    use crate::{CreateFunction, FunctionState, UpdateConfig};

    fn publish(
        svc: &FunctionService,
        name: &str,
        files: &[(&str, &[u8])],
        runtimes: &[&str],
    ) -> LayerVersionView {
        svc.publish_layer_version(PublishLayer {
            name: name.into(),
            zip_file: Some(zip_of(files)),
            compatible_runtimes: runtimes.iter().map(|r| r.to_string()).collect(),
            ..PublishLayer::default()
        })
        .unwrap()
    }

    fn create(
        svc: &FunctionService,
        name: &str,
        layers: Vec<String>,
    ) -> Result<crate::FunctionView, LambdaError> {
        svc.create(CreateFunction {
            name: name.into(),
            runtime: Some("provided.al2".into()),
            role: "arn:aws:iam::000000000000:role/r".into(),
            handler: Some("bootstrap".into()),
            zip_file: Some(zip_of(&[("bootstrap", b"x")])),
            layers: Some(layers),
            ..CreateFunction::default()
        })
    }

    #[test]
    fn versions_are_numbered_per_layer_and_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path());
        assert_eq!(publish(&svc, "a", &[("x", b"1")], &[]).layer.version, 1);
        assert_eq!(publish(&svc, "a", &[("x", b"2")], &[]).layer.version, 2);
        let b = publish(&svc, "b", &[("x", b"1")], &[]);
        assert_eq!(b.layer.version, 1);
        assert_eq!(
            b.layer_version_arn,
            "arn:aws:lambda:us-east-1:000000000000:layer:b:1"
        );
        svc.delete_layer_version("a", 2).unwrap();
        assert!(matches!(
            svc.get_layer_version("a", 2),
            Err(LambdaError::NotFound(_))
        ));
        // Deleting it again is not an error, and its number is not handed out again.
        svc.delete_layer_version("a", 2).unwrap();
        assert_eq!(publish(&svc, "a", &[("x", b"3")], &[]).layer.version, 3);
        // By name or by layer ARN.
        let arn = "arn:aws:lambda:us-east-1:000000000000:layer:a";
        assert_eq!(svc.get_layer_version(arn, 3).unwrap().layer.version, 3);
        assert_eq!(
            svc.get_layer_version_by_arn(&format!("{arn}:1"))
                .unwrap()
                .layer
                .version,
            1
        );
        assert!(matches!(
            svc.get_layer_version_by_arn("arn:aws:lambda:us-east-1:999999999999:layer:a:1"),
            Err(LambdaError::NotFound(_))
        ));
        assert!(matches!(
            svc.get_layer_version("bad name!", 1),
            Err(LambdaError::Validation(_))
        ));
    }

    #[test]
    fn listings_filter_by_runtime_and_page() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path());
        publish(&svc, "a", &[("x", b"1")], &["python3.11"]);
        publish(&svc, "a", &[("x", b"2")], &["nodejs20.x"]);
        publish(&svc, "b", &[("x", b"1")], &["python3.11"]);
        publish(&svc, "c", &[("x", b"1")], &[]);
        let latest = |runtime| {
            svc.list_layers(runtime, None, None, None)
                .unwrap()
                .layers
                .into_iter()
                .map(|v| (v.layer.name, v.layer.version))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            latest(None),
            [("a".into(), 2), ("b".into(), 1), ("c".into(), 1)]
        );
        assert_eq!(
            latest(Some("python3.11")),
            [("a".into(), 1), ("b".into(), 1)]
        );
        let page = svc.list_layers(None, None, None, Some(2)).unwrap();
        assert_eq!(page.layers.len(), 2);
        let rest = svc
            .list_layers(None, None, page.next_marker.as_deref(), Some(2))
            .unwrap();
        assert_eq!(rest.layers[0].layer.name, "c");
        assert!(rest.next_marker.is_none());
        let versions = |runtime, marker, max| {
            svc.list_layer_versions("a", runtime, None, marker, max)
                .unwrap()
                .layers
                .into_iter()
                .map(|v| v.layer.version)
                .collect::<Vec<_>>()
        };
        assert_eq!(versions(None, None, None), [2, 1]);
        assert_eq!(versions(Some("nodejs20.x"), None, None), [2]);
        assert_eq!(versions(None, None, Some(1)), [2]);
        assert_eq!(versions(None, Some("2"), None), [1]);
    }

    #[test]
    fn functions_take_at_most_five_existing_distinct_layers() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path());
        let arns: Vec<String> = (0..6)
            .map(|i| publish(&svc, &format!("l{i}"), &[("f", b"x")], &[]).layer_version_arn)
            .collect();
        let err = create(&svc, "f", arns.clone()).unwrap_err();
        assert!(
            matches!(&err, LambdaError::InvalidParameter(m) if m.contains("more than 5")),
            "{err}"
        );
        let missing = "arn:aws:lambda:us-east-1:000000000000:layer:l0:9".to_owned();
        let err = create(&svc, "f", vec![missing]).unwrap_err();
        assert!(
            matches!(&err, LambdaError::InvalidParameter(m) if m.contains("does not exist")),
            "{err}"
        );
        let v2 = publish(&svc, "l0", &[("f", b"y")], &[]).layer_version_arn;
        let err = create(&svc, "f", vec![arns[0].clone(), v2]).unwrap_err();
        assert!(matches!(err, LambdaError::InvalidParameter(_)));
        assert!(matches!(
            create(&svc, "f", vec!["layer:l0:1".into()]),
            Err(LambdaError::Validation(_))
        ));
        let view = create(&svc, "f", arns[..5].to_vec()).unwrap();
        let got: Vec<&str> = view.config.layers.iter().map(|l| l.arn.as_str()).collect();
        assert_eq!(
            got,
            arns[..5].iter().map(String::as_str).collect::<Vec<_>>()
        );
    }

    #[test]
    fn code_and_layers_together_must_fit_the_unzipped_limit() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path());
        // Two layers of 130 MB of zeros each (small zips): each fits, both do not.
        let big = |name: &str| {
            use std::io::Write;
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            w.start_file("zeros", zip::write::SimpleFileOptions::default())
                .unwrap();
            let chunk = vec![0u8; 1 << 20];
            for _ in 0..130 {
                w.write_all(&chunk).unwrap();
            }
            svc.publish_layer_version(PublishLayer {
                name: name.into(),
                zip_file: Some(w.finish().unwrap().into_inner()),
                ..PublishLayer::default()
            })
            .unwrap()
            .layer_version_arn
        };
        let (a, b) = (big("a"), big("b"));
        create(&svc, "one", vec![a.clone()]).unwrap();
        let err = create(&svc, "two", vec![a.clone(), b.clone()]).unwrap_err();
        assert!(
            matches!(&err, LambdaError::InvalidParameter(m) if m.contains("combined with layers")),
            "{err}"
        );
        wait_for(&svc, "one", FunctionState::Active);
        let err = svc
            .update_config(
                "one",
                UpdateConfig {
                    layers: Some(vec![a, b]),
                    ..UpdateConfig::default()
                },
            )
            .unwrap_err();
        assert!(matches!(err, LambdaError::InvalidParameter(_)));
    }

    #[test]
    fn layers_are_extracted_in_order_when_prepared_and_outlive_their_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path());
        let first = publish(&svc, "first", &[("python/m.py", b"1"), ("a", b"a")], &[]);
        let second = publish(&svc, "second", &[("python/m.py", b"2")], &[]);
        let arns = vec![
            first.layer_version_arn.clone(),
            second.layer_version_arn.clone(),
        ];
        create(&svc, "f", arns).unwrap();
        wait_for(&svc, "f", FunctionState::Active);
        let config = svc.get("f", None).unwrap().config;
        let code = svc.unpacked_code(&config).unwrap();
        let opt = config.layers_path(&code).unwrap();
        assert_eq!(std::fs::read(opt.join("python/m.py")).unwrap(), b"2");
        assert_eq!(std::fs::read(opt.join("a")).unwrap(), b"a");

        // Deleted layer versions: the function's copy stays, and comes back if removed.
        svc.delete_layer_version("first", 1).unwrap();
        svc.delete_layer_version("second", 1).unwrap();
        assert!(opt.is_dir());
        std::fs::remove_dir_all(&opt).unwrap();
        assert!(svc.unpacked_code(&config).is_none());
        svc.ensure_code(&config).unwrap();
        assert_eq!(std::fs::read(opt.join("python/m.py")).unwrap(), b"2");

        // Without layers, the directory nothing uses goes.
        svc.update_config(
            "f",
            UpdateConfig {
                layers: Some(vec![]),
                ..UpdateConfig::default()
            },
        )
        .unwrap();
        assert!(!opt.exists());
        assert!(svc.get("f", None).unwrap().config.layers.is_empty());
    }
}
