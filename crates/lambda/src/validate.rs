//! Checks against the Lambda API model's constraints and Lambda's quotas.
//!
//! Model constraints (ranges, lengths, patterns) fail as [`LambdaError::Validation`] with the
//! "1 validation error detected" wording AWS uses; service rules (reserved variables, size of
//! the environment) fail as [`LambdaError::InvalidParameter`].

use std::collections::BTreeMap;

use crate::LambdaError;

pub const MEMORY_MIN: i64 = 128;
pub const MEMORY_MAX: i64 = 10240;
pub const TIMEOUT_MAX: i64 = 900;
pub const EPHEMERAL_MIN: i64 = 512;
pub const EPHEMERAL_MAX: i64 = 10240;
/// Lambda's cap on the environment variables of one function, counted as AWS does: the
/// JSON-encoded map.
pub const ENVIRONMENT_MAX_BYTES: usize = 4096;

/// Variables the platform sets itself; AWS refuses them in a function's configuration.
const RESERVED_VARIABLES: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

pub(crate) fn constraint(value: impl std::fmt::Display, field: &str, rule: &str) -> LambdaError {
    LambdaError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {rule}"
    ))
}

pub fn range(value: i64, field: &str, min: i64, max: i64) -> Result<u32, LambdaError> {
    if value < min {
        return Err(constraint(
            value,
            field,
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if value > max {
        return Err(constraint(
            value,
            field,
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    // In range, and every range here fits in u32.
    Ok(value as u32)
}

pub fn memory_size(v: i64) -> Result<u32, LambdaError> {
    range(v, "memorySize", MEMORY_MIN, MEMORY_MAX)
}

pub fn timeout(v: i64) -> Result<u32, LambdaError> {
    range(v, "timeout", 1, TIMEOUT_MAX)
}

pub fn ephemeral_storage(v: i64) -> Result<u32, LambdaError> {
    range(v, "ephemeralStorage.size", EPHEMERAL_MIN, EPHEMERAL_MAX)
}

pub fn max_len(value: &str, field: &str, max: usize) -> Result<(), LambdaError> {
    if value.chars().count() > max {
        return Err(constraint(
            value,
            field,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

pub fn handler(v: &str) -> Result<(), LambdaError> {
    max_len(v, "handler", 128)?;
    if v.is_empty() || v.chars().any(char::is_whitespace) {
        return Err(constraint(
            v,
            "handler",
            "Member must satisfy regular expression pattern: [^\\s]+",
        ));
    }
    Ok(())
}

/// `arn:aws:iam::<12 digits>:role/<path and name>`.
pub fn role(v: &str) -> Result<(), LambdaError> {
    let ok = (|| {
        let rest = v.strip_prefix("arn:")?;
        let (partition, rest) = rest.split_once(':')?;
        if !partition.starts_with("aws") {
            return None;
        }
        let rest = rest.strip_prefix("iam::")?;
        let (account, rest) = rest.split_once(':')?;
        let name = rest.strip_prefix("role")?;
        let name = name.strip_prefix('/').unwrap_or(name);
        let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_/".contains(&b));
        (account_ok && name_ok).then_some(())
    })();
    ok.ok_or_else(|| {
        constraint(
            v,
            "role",
            "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+",
        )
    })
}

pub fn environment(vars: &BTreeMap<String, String>) -> Result<(), LambdaError> {
    for key in vars.keys() {
        let mut chars = key.chars();
        let ok = key.len() >= 2
            && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(constraint(
                key,
                "environment.variables",
                "Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]",
            ));
        }
    }
    let reserved: Vec<&str> = vars
        .keys()
        .map(String::as_str)
        .filter(|k| RESERVED_VARIABLES.contains(k))
        .collect();
    if !reserved.is_empty() {
        return Err(LambdaError::InvalidParameter(format!(
            "Lambda was unable to configure your environment variables because the environment variables \
             you have provided contains reserved keys that are currently not supported for modification. \
             Reserved keys used in this request: {}",
            reserved.join(", ")
        )));
    }
    let measured = serde_json::to_string(vars).unwrap_or_default();
    if measured.len() > ENVIRONMENT_MAX_BYTES {
        return Err(LambdaError::InvalidParameter(format!(
            "Lambda was unable to configure your environment variables because the environment variables \
             you have provided exceeded the 4KB limit. String measured: {measured}"
        )));
    }
    Ok(())
}

pub fn architectures(v: &[String]) -> Result<(), LambdaError> {
    if v.len() != 1 {
        return Err(constraint(
            format!("{v:?}"),
            "architectures",
            "Member must have length less than or equal to 1",
        ));
    }
    if !matches!(v[0].as_str(), "x86_64" | "arm64") {
        return Err(constraint(
            &v[0],
            "architectures",
            "Member must satisfy enum value set: [x86_64, arm64]",
        ));
    }
    Ok(())
}

pub fn tracing_mode(v: &str) -> Result<(), LambdaError> {
    if !matches!(v, "Active" | "PassThrough") {
        return Err(constraint(
            v,
            "tracingConfig.mode",
            "Member must satisfy enum value set: [Active, PassThrough]",
        ));
    }
    Ok(())
}

pub fn log_format(v: &str) -> Result<(), LambdaError> {
    if !matches!(v, "Text" | "JSON") {
        return Err(constraint(
            v,
            "loggingConfig.logFormat",
            "Member must satisfy enum value set: [JSON, Text]",
        ));
    }
    Ok(())
}

pub fn tags(tags: &BTreeMap<String, String>) -> Result<(), LambdaError> {
    if tags.len() > 50 {
        return Err(LambdaError::InvalidParameter(
            "Number of tags exceeds resource tag limit.".into(),
        ));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || k.starts_with("aws:") {
            return Err(LambdaError::InvalidParameter(format!(
                "Tag key '{k}' is invalid: keys are 1-128 characters and may not start with 'aws:'."
            )));
        }
        if v.chars().count() > 256 {
            return Err(LambdaError::InvalidParameter(format!(
                "Tag value for key '{k}' exceeds 256 characters."
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_lambda_quotas() {
        assert!(memory_size(127).is_err());
        assert_eq!(memory_size(128).unwrap(), 128);
        assert_eq!(memory_size(10240).unwrap(), 10240);
        assert!(memory_size(10241).is_err());
        assert!(timeout(0).is_err());
        assert!(timeout(901).is_err());
        assert!(ephemeral_storage(511).is_err());
        assert!(ephemeral_storage(10241).is_err());
    }

    #[test]
    fn roles_must_be_iam_role_arns() {
        assert!(role("arn:aws:iam::123456789012:role/lambda-role").is_ok());
        assert!(role("arn:aws:iam::123456789012:role/path/to/r").is_ok());
        for bad in [
            "",
            "role",
            "arn:aws:iam::1234:role/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::123456789012:user/x",
        ] {
            assert!(role(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn environment_rules() {
        let vars = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(environment(&vars(&[("FOO", "bar"), ("A1_B", "")])).is_ok());
        assert!(matches!(
            environment(&vars(&[("AWS_REGION", "x")])),
            Err(LambdaError::InvalidParameter(m)) if m.contains("AWS_REGION")
        ));
        assert!(matches!(
            environment(&vars(&[("1X", "y")])),
            Err(LambdaError::Validation(_))
        ));
        let big = "x".repeat(4100);
        assert!(matches!(
            environment(&vars(&[("BIG", &big)])),
            Err(LambdaError::InvalidParameter(m)) if m.contains("4KB")
        ));
    }
}
