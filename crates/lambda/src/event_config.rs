//! Asynchronous invocation settings (Put/Update/Get/Delete/ListFunctionEventInvokeConfig):
//! retry attempts, maximum event age, and destinations on success and on failure.
//! Stored per function and qualifier in `lambda.event-invoke-configs/<name>/<qualifier>`.

use serde::{Deserialize, Serialize};
use stratus_store::{Expect, Op};

use crate::LambdaError;
use crate::names::FunctionRef;
use crate::records::{EVENT_CONFIGS, decode, encode, now_ms};
use crate::service::FunctionService;

/// Lambda's defaults for asynchronous invocation.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
pub const DEFAULT_MAX_EVENT_AGE_SECONDS: u32 = 21_600;

/// One function qualifier's asynchronous invocation settings, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventInvokeConfig {
    pub function_name: String,
    pub qualifier: String,
    pub maximum_retry_attempts: Option<u32>,
    pub maximum_event_age_seconds: Option<u32>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
    pub last_modified_ms: i64,
}

impl EventInvokeConfig {
    pub fn retries(&self) -> u32 {
        self.maximum_retry_attempts.unwrap_or(DEFAULT_MAX_RETRIES)
    }

    pub fn max_age_seconds(&self) -> u32 {
        self.maximum_event_age_seconds
            .unwrap_or(DEFAULT_MAX_EVENT_AGE_SECONDS)
    }
}

/// Put/Update input: `None` leaves a field unset (Put) or unchanged (Update); a destination
/// of `Some("")` removes it on Update.
#[derive(Debug, Clone, Default)]
pub struct EventInvokeConfigInput {
    pub maximum_retry_attempts: Option<i64>,
    pub maximum_event_age_seconds: Option<i64>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
}

fn check_destination(arn: &str) -> Result<(), LambdaError> {
    let service = arn
        .strip_prefix("arn:aws:")
        .and_then(|r| r.split(':').next());
    match service {
        Some("lambda" | "sqs" | "sns" | "events" | "s3") => Ok(()),
        _ => Err(LambdaError::InvalidParameter(format!(
            "The destination ARN {arn} is invalid: destinations are Lambda functions, SQS queues, \
             SNS topics, EventBridge event buses or S3 buckets."
        ))),
    }
}

impl FunctionService {
    fn event_config_key(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(String, String), LambdaError> {
        let r = FunctionRef::parse(name, qualifier, self.scope())?;
        if self.load(&r.name)?.is_none() {
            return Err(self.not_found(&FunctionRef {
                name: r.name,
                qualifier: None,
            }));
        }
        let q = r.qualifier.unwrap_or_else(|| "$LATEST".into());
        Ok((format!("{}/{}", r.name, q), r.name))
    }

    fn write_event_config(
        &self,
        name: &str,
        qualifier: Option<&str>,
        input: EventInvokeConfigInput,
        merge: bool,
    ) -> Result<EventInvokeConfig, LambdaError> {
        let _w = self.write_guard()?;
        let (key, fname) = self.event_config_key(name, qualifier)?;
        let existing = match self.inner.store.meta.get(EVENT_CONFIGS, &key)? {
            Some(doc) => Some(decode::<EventInvokeConfig>(&doc.value)?),
            None => None,
        };
        if merge && existing.is_none() {
            return Err(LambdaError::NotFound(format!(
                "The function {} doesn't have an EventInvokeConfig",
                self.scope()
                    .qualified_arn(&fname, key.rsplit('/').next().unwrap_or("$LATEST"))
            )));
        }
        let base = if merge { existing } else { None };
        let mut c = base.unwrap_or(EventInvokeConfig {
            function_name: fname,
            qualifier: key.rsplit('/').next().unwrap_or("$LATEST").to_owned(),
            maximum_retry_attempts: None,
            maximum_event_age_seconds: None,
            on_success: None,
            on_failure: None,
            last_modified_ms: 0,
        });
        if let Some(n) = input.maximum_retry_attempts {
            c.maximum_retry_attempts =
                Some(crate::validate::range(n, "maximumRetryAttempts", 0, 2)?);
        }
        if let Some(n) = input.maximum_event_age_seconds {
            c.maximum_event_age_seconds = Some(crate::validate::range(
                n,
                "maximumEventAgeInSeconds",
                60,
                21_600,
            )?);
        }
        for (slot, given) in [
            (&mut c.on_success, input.on_success),
            (&mut c.on_failure, input.on_failure),
        ] {
            if let Some(arn) = given {
                if arn.is_empty() {
                    *slot = None;
                } else {
                    check_destination(&arn)?;
                    *slot = Some(arn);
                }
            }
        }
        c.last_modified_ms = now_ms();
        self.inner
            .store
            .meta
            .commit(&[Op::put(EVENT_CONFIGS, &key, encode(&c)?, Expect::Any)])?;
        Ok(c)
    }

    /// PutFunctionEventInvokeConfig: replaces the settings.
    pub fn put_event_config(
        &self,
        name: &str,
        qualifier: Option<&str>,
        input: EventInvokeConfigInput,
    ) -> Result<EventInvokeConfig, LambdaError> {
        self.write_event_config(name, qualifier, input, false)
    }

    /// UpdateFunctionEventInvokeConfig: changes only the given settings.
    pub fn update_event_config(
        &self,
        name: &str,
        qualifier: Option<&str>,
        input: EventInvokeConfigInput,
    ) -> Result<EventInvokeConfig, LambdaError> {
        self.write_event_config(name, qualifier, input, true)
    }

    /// GetFunctionEventInvokeConfig.
    pub fn get_event_config(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<EventInvokeConfig, LambdaError> {
        let (key, fname) = self.event_config_key(name, qualifier)?;
        match self.inner.store.meta.get(EVENT_CONFIGS, &key)? {
            Some(doc) => decode(&doc.value),
            None => Err(LambdaError::NotFound(format!(
                "The function {} doesn't have an EventInvokeConfig",
                self.scope()
                    .qualified_arn(&fname, key.rsplit('/').next().unwrap_or("$LATEST"))
            ))),
        }
    }

    /// The settings an asynchronous invocation of `name:qualifier` runs with (defaults when
    /// none are configured).
    pub fn effective_event_config(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<EventInvokeConfig, LambdaError> {
        match self.get_event_config(name, qualifier) {
            Err(LambdaError::NotFound(_)) => {
                let r = FunctionRef::parse(name, qualifier, self.scope())?;
                Ok(EventInvokeConfig {
                    function_name: r.name,
                    qualifier: r.qualifier.unwrap_or_else(|| "$LATEST".into()),
                    maximum_retry_attempts: None,
                    maximum_event_age_seconds: None,
                    on_success: None,
                    on_failure: None,
                    last_modified_ms: 0,
                })
            }
            other => other,
        }
    }

    /// DeleteFunctionEventInvokeConfig.
    pub fn delete_event_config(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(), LambdaError> {
        let _w = self.write_guard()?;
        self.get_event_config(name, qualifier)?;
        let (key, _) = self.event_config_key(name, qualifier)?;
        self.inner
            .store
            .meta
            .commit(&[Op::delete(EVENT_CONFIGS, &key, Expect::Present)])?;
        Ok(())
    }

    /// ListFunctionEventInvokeConfigs.
    pub fn list_event_configs(&self, name: &str) -> Result<Vec<EventInvokeConfig>, LambdaError> {
        let (_, fname) = self.event_config_key(name, None)?;
        self.inner
            .store
            .meta
            .list(EVENT_CONFIGS, &format!("{fname}/"), None, 1000)?
            .into_iter()
            .map(|(_, doc)| decode(&doc.value))
            .collect()
    }
}
