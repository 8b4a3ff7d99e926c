//! The function service's typed values: what callers pass in and what they get back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `State` of a function version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FunctionState {
    Pending,
    Active,
    Inactive,
    Failed,
}

impl FunctionState {
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionState::Pending => "Pending",
            FunctionState::Active => "Active",
            FunctionState::Inactive => "Inactive",
            FunctionState::Failed => "Failed",
        }
    }
}

/// `LastUpdateStatus` of a function version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LastUpdateStatus {
    InProgress,
    Successful,
    Failed,
}

impl LastUpdateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LastUpdateStatus::InProgress => "InProgress",
            LastUpdateStatus::Successful => "Successful",
            LastUpdateStatus::Failed => "Failed",
        }
    }
}

/// The configuration of one function version (`$LATEST` or a published number), as stored.
/// Field names are the storage format: renaming one is a migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionConfig {
    pub name: String,
    /// `$LATEST` or a published version number.
    pub version: String,
    pub package_type: String,
    pub runtime: String,
    pub handler: String,
    pub role: String,
    pub description: String,
    pub timeout: u32,
    pub memory_size: u32,
    pub ephemeral_storage: u32,
    pub architectures: Vec<String>,
    pub environment: Option<BTreeMap<String, String>>,
    pub tracing_mode: String,
    pub dead_letter_target: Option<String>,
    pub log_format: String,
    pub log_group: String,
    /// Hex SHA-256 of the zip: the blob that holds it.
    pub code_digest: String,
    /// Base64 SHA-256 of the zip, as AWS reports it.
    pub code_sha256: String,
    pub code_size: u64,
    /// Milliseconds since the Unix epoch.
    pub last_modified_ms: i64,
    pub revision_id: String,
    pub state: FunctionState,
    pub state_reason: Option<String>,
    pub state_reason_code: Option<String>,
    pub last_update_status: Option<LastUpdateStatus>,
    pub last_update_status_reason: Option<String>,
    pub last_update_status_reason_code: Option<String>,
    /// The function's layers, in extraction order (a later layer's files win), each as it
    /// was when the function named it: a deleted layer version keeps running here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<FunctionLayer>,
    /// The unzipped size of the code alone, counted with the layers against Lambda's
    /// 250 MB limit (0 in records written before layers existed).
    #[serde(default)]
    pub code_unzipped_size: u64,
}

/// One layer version a function uses. Field names are the storage format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionLayer {
    /// The layer version's ARN, `arn:aws:lambda:<region>:<account>:layer:<name>:<version>`.
    pub arn: String,
    pub code_size: u64,
    pub unzipped_size: u64,
    /// Hex SHA-256 of the layer's zip: the blob that holds it.
    pub digest: String,
}

impl FunctionConfig {
    /// The name, beside the unpacked code packages, of the directory holding this
    /// configuration's layers extracted in order (`None` without layers). One directory per
    /// distinct ordered list of layer versions, shared by every function using that list.
    pub fn layers_dir_name(&self) -> Option<String> {
        use sha2::Digest as _;
        if self.layers.is_empty() {
            return None;
        }
        let mut h = sha2::Sha256::new();
        for l in &self.layers {
            h.update(l.digest.as_bytes());
            h.update(b"\n");
        }
        Some(format!("opt-{}", hex::encode(h.finalize())))
    }

    /// Where this configuration's layers are extracted, given where its code is unpacked
    /// (both live in the service's code directory), or `None` without layers.
    pub fn layers_path(&self, code_path: &std::path::Path) -> Option<std::path::PathBuf> {
        let name = self.layers_dir_name()?;
        Some(code_path.parent()?.join(name))
    }
}

/// What a read of one function returns: the configuration of the version asked for, plus the
/// function-level data AWS reports beside it.
#[derive(Debug, Clone)]
pub struct FunctionView {
    pub config: FunctionConfig,
    pub arn: String,
    /// Tags belong to the function, not to a version.
    pub tags: BTreeMap<String, String>,
    /// The function's reserved concurrency, if set.
    pub reserved_concurrency: Option<u32>,
}

/// CreateFunction's input. `None` means "not given": defaults are the service's business.
#[derive(Debug, Clone, Default)]
pub struct CreateFunction {
    pub name: String,
    pub runtime: Option<String>,
    pub role: String,
    pub handler: Option<String>,
    pub zip_file: Option<Vec<u8>>,
    /// Code given in a form this server cannot take (S3 location, image URI): its name.
    pub unsupported_code_source: Option<&'static str>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub publish: bool,
    pub package_type: Option<String>,
    pub environment: Option<BTreeMap<String, String>>,
    pub architectures: Option<Vec<String>>,
    pub ephemeral_storage: Option<i64>,
    pub tags: Option<BTreeMap<String, String>>,
    pub tracing_mode: Option<String>,
    pub dead_letter_target: Option<String>,
    pub log_format: Option<String>,
    pub log_group: Option<String>,
    /// Layer version ARNs, in extraction order.
    pub layers: Option<Vec<String>>,
}

/// UpdateFunctionCode's input.
#[derive(Debug, Clone, Default)]
pub struct UpdateCode {
    pub zip_file: Option<Vec<u8>>,
    pub unsupported_code_source: Option<&'static str>,
    pub publish: bool,
    pub dry_run: bool,
    pub revision_id: Option<String>,
    pub architectures: Option<Vec<String>>,
}

/// UpdateFunctionConfiguration's input: only the given fields change.
#[derive(Debug, Clone, Default)]
pub struct UpdateConfig {
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    /// `Some(map)` replaces the variables; an empty map removes them.
    pub environment: Option<BTreeMap<String, String>>,
    pub ephemeral_storage: Option<i64>,
    pub tracing_mode: Option<String>,
    /// `Some("")` removes the dead-letter target.
    pub dead_letter_target: Option<String>,
    pub log_format: Option<String>,
    pub log_group: Option<String>,
    /// `Some(arns)` replaces the layers; an empty list removes them.
    pub layers: Option<Vec<String>>,
    pub revision_id: Option<String>,
}

/// One page of ListFunctions.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub functions: Vec<FunctionView>,
    pub next_marker: Option<String>,
}

/// GetAccountSettings' figures.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    pub total_code_size_limit: u64,
    pub code_size_unzipped: u64,
    pub code_size_zipped: u64,
    pub concurrent_executions: u32,
    pub unreserved_concurrent_executions: u32,
    pub total_code_size_used: u64,
    pub function_count: u64,
}

/// The stored record of a function: its `$LATEST` configuration and function-level data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FunctionRecord {
    pub latest: FunctionConfig,
    pub tags: BTreeMap<String, String>,
    /// The highest version number ever published (versions are never renumbered).
    pub last_published: u32,
    /// Reserved concurrency (PutFunctionConcurrency); 0 disables the function.
    #[serde(default)]
    pub reserved_concurrency: Option<u32>,
    /// Fingerprint of `$LATEST`'s code and configuration when version `last_published` was
    /// cut from it, so PublishVersion can tell "nothing changed" (see `versions.rs`).
    #[serde(default)]
    pub published_fingerprint: Option<String>,
    /// Resource-based policies (AddPermission), by qualifier: `""` for the function itself
    /// (unqualified or `$LATEST`), else a version number or an alias name. Kept here so the
    /// invoke path reads them from the record it already has; see `permissions.rs`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, crate::permissions::ResourcePolicy>,
}
