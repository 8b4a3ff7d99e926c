//! The ground floor of the crate: how Lambda's state is laid out in the store, and the small
//! helpers every operation module shares. Nothing here knows [`crate::FunctionService`]; every
//! other module may use this one.
//!
//! Storage layout (tables of `stratus_store::MetaStore`):
//! * `lambda.functions/<name>`: a [`crate::model::FunctionRecord`] (the `$LATEST`
//!   configuration, tags, version counter, reserved concurrency, resource-based policies),
//!   referencing its zip blob.
//! * `lambda.versions/<name>/<version as 10 digits>`: a published [`FunctionConfig`] snapshot,
//!   referencing its zip blob. Zero-padding keeps versions in numeric order.
//! * `lambda.aliases/<name>/<alias>`: an alias (see `aliases.rs`).
//! * `lambda.provisioned/<name>/<qualifier>`: a provisioned concurrency configuration.
//! * `lambda.event-invoke-configs/<name>/<qualifier>`: asynchronous invocation settings.
//! * `lambda.layers/<layer>`: the highest version number a layer ever had (never reused).
//! * `lambda.layer-versions/<layer>/<version as 10 digits>`: a layer version, referencing
//!   its zip blob; function configurations using it reference that blob too.
//!
//! Records are stored as JSON ([`encode`], [`decode`]); their field names are the storage format.

use stratus_store::Digest;

use crate::{FunctionConfig, FunctionState, LambdaError, LastUpdateStatus, validate};

pub(crate) use stratus_aws::clock::now_ms;

pub(crate) const FUNCTIONS: &str = "lambda.functions";
pub(crate) const VERSIONS: &str = "lambda.versions";
pub(crate) const ALIASES: &str = "lambda.aliases";
pub(crate) const PROVISIONED: &str = "lambda.provisioned";
pub(crate) const EVENT_CONFIGS: &str = "lambda.event-invoke-configs";
pub(crate) const LAYERS: &str = "lambda.layers";
pub(crate) const LAYER_VERSIONS: &str = "lambda.layer-versions";

/// The qualifier of a function's unpublished, editable configuration.
pub(crate) const LATEST: &str = "$LATEST";

pub(crate) fn new_revision() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(crate) fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, LambdaError> {
    serde_json::to_vec(v).map_err(|e| LambdaError::Internal(format!("encoding: {e}")))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, LambdaError> {
    serde_json::from_slice(bytes).map_err(|e| LambdaError::Internal(format!("decoding: {e}")))
}

/// The key of published version `version` of function `name` in [`VERSIONS`].
pub(crate) fn version_key(name: &str, version: u32) -> String {
    format!("{name}/{version:010}")
}

/// The code blob a configuration references.
pub(crate) fn digest_of(config: &FunctionConfig) -> Result<Digest, LambdaError> {
    Digest::from_hex(&config.code_digest)
        .ok_or_else(|| LambdaError::Internal(format!("bad code digest {}", config.code_digest)))
}

/// Every blob a configuration references: its code package and its layers' zips, so a
/// layer version's zip lives on while any function version uses it, even once deleted.
pub(crate) fn blobs_of(config: &FunctionConfig) -> Result<Vec<Digest>, LambdaError> {
    let mut out = vec![digest_of(config)?];
    for l in &config.layers {
        let d = Digest::from_hex(&l.digest)
            .ok_or_else(|| LambdaError::Internal(format!("bad layer digest {}", l.digest)))?;
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

/// True for a published version number (as opposed to `$LATEST` or an alias name).
pub(crate) fn is_version_number(q: &str) -> bool {
    !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit())
}

/// True while a configuration waits for its code to be unpacked (`Pending` after creation,
/// `InProgress` after a code update).
pub(crate) fn needs_preparation(c: &FunctionConfig) -> bool {
    c.state == FunctionState::Pending || c.last_update_status == Some(LastUpdateStatus::InProgress)
}

/// ListVersionsByFunction and ListAliases return at most 50 items a page, whatever MaxItems says.
pub(crate) fn page_size(max_items: Option<i64>) -> Result<usize, LambdaError> {
    Ok(match max_items {
        None => 50,
        Some(n) => validate::range(n, "maxItems", 1, 10000)?.min(50) as usize,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_capped_at_50_and_validated() {
        assert_eq!(page_size(None).unwrap(), 50);
        assert_eq!(page_size(Some(3)).unwrap(), 3);
        assert_eq!(page_size(Some(10000)).unwrap(), 50);
        assert!(matches!(
            page_size(Some(0)),
            Err(LambdaError::Validation(_))
        ));
        assert!(matches!(
            page_size(Some(10001)),
            Err(LambdaError::Validation(_))
        ));
    }
}
