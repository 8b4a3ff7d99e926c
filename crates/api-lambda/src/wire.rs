//! Lambda's REST-JSON shapes (botocore `lambda/2015-03-31`) and their mapping to the
//! function service's typed values.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use stratus_lambda::{
    AccountSettings, CreateFunction, FunctionConfig, FunctionView, UpdateCode, UpdateConfig,
};

use crate::error::ApiError;

/// A `Blob` member: base64 in JSON.
pub(crate) fn decode_blob(b64: Option<String>) -> Result<Option<Vec<u8>>, ApiError> {
    b64.map(|s| {
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map_err(|e| ApiError::bad_json(format!("ZipFile is not valid base64: {e}")))
    })
    .transpose()
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FunctionCodeIn {
    pub zip_file: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_key: Option<String>,
    pub image_uri: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EnvironmentIn {
    pub variables: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EphemeralStorageIn {
    pub size: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TracingConfigIn {
    pub mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeadLetterConfigIn {
    pub target_arn: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LoggingConfigIn {
    pub log_format: Option<String>,
    pub log_group: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateFunctionIn {
    pub function_name: String,
    pub role: String,
    pub code: FunctionCodeIn,
    #[serde(default)]
    pub runtime: Option<String>,
    #[serde(default)]
    pub handler: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub timeout: Option<i64>,
    #[serde(default)]
    pub memory_size: Option<i64>,
    #[serde(default)]
    pub publish: Option<bool>,
    #[serde(default)]
    pub package_type: Option<String>,
    #[serde(default)]
    pub environment: Option<EnvironmentIn>,
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    #[serde(default)]
    pub ephemeral_storage: Option<EphemeralStorageIn>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub tracing_config: Option<TracingConfigIn>,
    #[serde(default)]
    pub dead_letter_config: Option<DeadLetterConfigIn>,
    #[serde(default)]
    pub logging_config: Option<LoggingConfigIn>,
    #[serde(default)]
    pub layers: Option<Vec<String>>,
}

fn unsupported_source(s3: bool, image: bool) -> Option<&'static str> {
    if s3 {
        Some("S3Bucket")
    } else if image {
        Some("ImageUri")
    } else {
        None
    }
}

impl CreateFunctionIn {
    pub fn into_input(self) -> Result<CreateFunction, ApiError> {
        let logging = self.logging_config.unwrap_or_default();
        Ok(CreateFunction {
            name: self.function_name,
            runtime: self.runtime,
            role: self.role,
            handler: self.handler,
            unsupported_code_source: unsupported_source(
                self.code.s3_bucket.is_some() || self.code.s3_key.is_some(),
                self.code.image_uri.is_some(),
            ),
            zip_file: decode_blob(self.code.zip_file)?,
            description: self.description,
            timeout: self.timeout,
            memory_size: self.memory_size,
            publish: self.publish.unwrap_or(false),
            package_type: self.package_type,
            environment: self.environment.and_then(|e| e.variables),
            architectures: self.architectures,
            ephemeral_storage: self.ephemeral_storage.and_then(|e| e.size),
            tags: self.tags,
            tracing_mode: self.tracing_config.and_then(|t| t.mode),
            dead_letter_target: self.dead_letter_config.and_then(|d| d.target_arn),
            log_format: logging.log_format,
            log_group: logging.log_group,
            layers: self.layers,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateCodeIn {
    pub zip_file: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_key: Option<String>,
    pub image_uri: Option<String>,
    pub publish: Option<bool>,
    pub dry_run: Option<bool>,
    pub revision_id: Option<String>,
    pub architectures: Option<Vec<String>>,
}

impl UpdateCodeIn {
    pub fn into_input(self) -> Result<UpdateCode, ApiError> {
        Ok(UpdateCode {
            unsupported_code_source: unsupported_source(
                self.s3_bucket.is_some() || self.s3_key.is_some(),
                self.image_uri.is_some(),
            ),
            zip_file: decode_blob(self.zip_file)?,
            publish: self.publish.unwrap_or(false),
            dry_run: self.dry_run.unwrap_or(false),
            revision_id: self.revision_id,
            architectures: self.architectures,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateConfigIn {
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub environment: Option<EnvironmentIn>,
    pub ephemeral_storage: Option<EphemeralStorageIn>,
    pub tracing_config: Option<TracingConfigIn>,
    pub dead_letter_config: Option<DeadLetterConfigIn>,
    pub logging_config: Option<LoggingConfigIn>,
    pub layers: Option<Vec<String>>,
    pub revision_id: Option<String>,
}

impl UpdateConfigIn {
    pub fn into_input(self) -> UpdateConfig {
        let logging = self.logging_config.unwrap_or_default();
        UpdateConfig {
            runtime: self.runtime,
            role: self.role,
            handler: self.handler,
            description: self.description,
            timeout: self.timeout,
            memory_size: self.memory_size,
            // `Environment: {}` (no Variables) clears them, as on AWS.
            environment: self.environment.map(|e| e.variables.unwrap_or_default()),
            ephemeral_storage: self.ephemeral_storage.and_then(|e| e.size),
            tracing_mode: self.tracing_config.and_then(|t| t.mode),
            dead_letter_target: self
                .dead_letter_config
                .map(|d| d.target_arn.unwrap_or_default()),
            log_format: logging.log_format,
            log_group: logging.log_group,
            layers: self.layers,
            revision_id: self.revision_id,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceIn {
    pub tags: BTreeMap<String, String>,
}

// ---- Output shapes ---------------------------------------------------------------------

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnvironmentOut {
    pub variables: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SizeOut {
    pub size: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModeOut {
    pub mode: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetOut {
    pub target_arn: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoggingOut {
    pub log_format: String,
    pub log_group: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnapStartOut {
    pub apply_on: &'static str,
    pub optimization_status: &'static str,
}

/// `FunctionConfiguration`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionConfigurationOut {
    pub function_name: String,
    pub function_arn: String,
    pub runtime: String,
    pub role: String,
    pub handler: String,
    pub code_size: u64,
    pub description: String,
    pub timeout: u32,
    pub memory_size: u32,
    pub last_modified: String,
    pub code_sha256: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentOut>,
    pub tracing_config: ModeOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_config: Option<TargetOut>,
    pub revision_id: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_status_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_status_reason_code: Option<String>,
    pub package_type: String,
    pub architectures: Vec<String>,
    pub ephemeral_storage: SizeOut,
    pub snap_start: SnapStartOut,
    pub logging_config: LoggingOut,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerOut>,
}

/// `Layer`, in a function's configuration.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LayerOut {
    pub arn: String,
    pub code_size: u64,
}

/// Lambda's timestamp form: `2024-05-01T12:34:56.789+0000`.
pub fn lambda_timestamp(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000"
    );
    t.format(&fmt).unwrap_or_default()
}

impl FunctionConfigurationOut {
    pub fn from_view(v: &FunctionView) -> FunctionConfigurationOut {
        let c: &FunctionConfig = &v.config;
        FunctionConfigurationOut {
            function_name: c.name.clone(),
            function_arn: v.arn.clone(),
            runtime: c.runtime.clone(),
            role: c.role.clone(),
            handler: c.handler.clone(),
            code_size: c.code_size,
            description: c.description.clone(),
            timeout: c.timeout,
            memory_size: c.memory_size,
            last_modified: lambda_timestamp(c.last_modified_ms),
            code_sha256: c.code_sha256.clone(),
            version: c.version.clone(),
            environment: c
                .environment
                .clone()
                .map(|variables| EnvironmentOut { variables }),
            tracing_config: ModeOut {
                mode: c.tracing_mode.clone(),
            },
            dead_letter_config: c
                .dead_letter_target
                .clone()
                .map(|target_arn| TargetOut { target_arn }),
            revision_id: c.revision_id.clone(),
            state: c.state.as_str(),
            state_reason: c.state_reason.clone(),
            state_reason_code: c.state_reason_code.clone(),
            last_update_status: c.last_update_status.map(|s| s.as_str()),
            last_update_status_reason: c.last_update_status_reason.clone(),
            last_update_status_reason_code: c.last_update_status_reason_code.clone(),
            package_type: c.package_type.clone(),
            architectures: c.architectures.clone(),
            ephemeral_storage: SizeOut {
                size: c.ephemeral_storage,
            },
            snap_start: SnapStartOut {
                apply_on: "None",
                optimization_status: "Off",
            },
            logging_config: LoggingOut {
                log_format: c.log_format.clone(),
                log_group: c.log_group.clone(),
            },
            layers: c
                .layers
                .iter()
                .map(|l| LayerOut {
                    arn: l.arn.clone(),
                    code_size: l.code_size,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CodeLocationOut {
    pub repository_type: &'static str,
    pub location: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetFunctionOut {
    pub configuration: FunctionConfigurationOut,
    pub code: CodeLocationOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<crate::concurrency::ConcurrencyOut>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListFunctionsOut {
    pub functions: Vec<FunctionConfigurationOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagsOut {
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccountLimitOut {
    pub total_code_size: u64,
    pub code_size_unzipped: u64,
    pub code_size_zipped: u64,
    pub concurrent_executions: u32,
    pub unreserved_concurrent_executions: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccountUsageOut {
    pub total_code_size: u64,
    pub function_count: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccountSettingsOut {
    pub account_limit: AccountLimitOut,
    pub account_usage: AccountUsageOut,
}

impl From<AccountSettings> for AccountSettingsOut {
    fn from(a: AccountSettings) -> AccountSettingsOut {
        AccountSettingsOut {
            account_limit: AccountLimitOut {
                total_code_size: a.total_code_size_limit,
                code_size_unzipped: a.code_size_unzipped,
                code_size_zipped: a.code_size_zipped,
                concurrent_executions: a.concurrent_executions,
                unreserved_concurrent_executions: a.unreserved_concurrent_executions,
            },
            account_usage: AccountUsageOut {
                total_code_size: a.total_code_size_used,
                function_count: a.function_count,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_use_lambdas_format() {
        assert_eq!(lambda_timestamp(0), "1970-01-01T00:00:00.000+0000");
        assert_eq!(
            lambda_timestamp(1_700_000_000_123),
            "2023-11-14T22:13:20.123+0000"
        );
    }
}
