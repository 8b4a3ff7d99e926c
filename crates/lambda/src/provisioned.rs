//! Provisioned concurrency configurations (Put/Get/Delete/ListProvisionedConcurrencyConfig):
//! how many environments of a published version or alias to keep initialised ahead.
//! Stored in `lambda.provisioned/<name>/<qualifier>`; the invoker's provisioner makes
//! them real and reports how many are allocated.

use serde::{Deserialize, Serialize};
use stratus_store::{Expect, Op};

use crate::LambdaError;
use crate::names::FunctionRef;
use crate::records::{PROVISIONED, decode, encode, now_ms};
use crate::service::FunctionService;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionedConfig {
    pub function_name: String,
    /// A published version number or an alias.
    pub qualifier: String,
    pub requested: u32,
    pub last_modified_ms: i64,
}

impl FunctionService {
    fn provisioned_key(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(String, FunctionRef), LambdaError> {
        let r = FunctionRef::parse(name, qualifier, self.scope())?;
        let q = match r.qualifier.as_deref() {
            None | Some("$LATEST") => {
                return Err(LambdaError::InvalidParameter(
                    "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
                        .into(),
                ));
            }
            Some(q) => q.to_owned(),
        };
        // The version or alias must exist.
        self.get(&r.name, Some(&q))?;
        Ok((format!("{}/{q}", r.name), r))
    }

    fn provisioned_not_found(&self, r: &FunctionRef) -> LambdaError {
        LambdaError::ProvisionedConcurrencyNotFound(format!(
            "No Provisioned Concurrency Config found for this function: {}",
            self.scope()
                .qualified_arn(&r.name, r.qualifier.as_deref().unwrap_or("$LATEST"))
        ))
    }

    /// PutProvisionedConcurrencyConfig.
    pub fn put_provisioned(
        &self,
        name: &str,
        qualifier: Option<&str>,
        requested: i64,
    ) -> Result<ProvisionedConfig, LambdaError> {
        let limit = self.inner.opts.concurrent_executions;
        let requested = crate::validate::range(
            requested,
            "provisionedConcurrentExecutions",
            1,
            i64::from(limit),
        )?;
        let _w = self.write_guard()?;
        let (key, r) = self.provisioned_key(name, qualifier)?;
        let c = ProvisionedConfig {
            function_name: r.name,
            qualifier: r.qualifier.unwrap_or_default(),
            requested,
            last_modified_ms: now_ms(),
        };
        self.inner
            .store
            .meta
            .commit(&[Op::put(PROVISIONED, &key, encode(&c)?, Expect::Any)])?;
        Ok(c)
    }

    /// GetProvisionedConcurrencyConfig.
    pub fn get_provisioned(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<ProvisionedConfig, LambdaError> {
        let (key, r) = self.provisioned_key(name, qualifier)?;
        match self.inner.store.meta.get(PROVISIONED, &key)? {
            Some(doc) => decode(&doc.value),
            None => Err(self.provisioned_not_found(&r)),
        }
    }

    /// DeleteProvisionedConcurrencyConfig.
    pub fn delete_provisioned(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(), LambdaError> {
        let _w = self.write_guard()?;
        let (key, r) = self.provisioned_key(name, qualifier)?;
        if self.inner.store.meta.get(PROVISIONED, &key)?.is_none() {
            return Err(self.provisioned_not_found(&r));
        }
        self.inner
            .store
            .meta
            .commit(&[Op::delete(PROVISIONED, &key, Expect::Present)])?;
        Ok(())
    }

    /// ListProvisionedConcurrencyConfigs for one function, or for every function (`None`).
    pub fn list_provisioned(
        &self,
        name: Option<&str>,
    ) -> Result<Vec<ProvisionedConfig>, LambdaError> {
        let prefix = match name {
            Some(n) => {
                let r = FunctionRef::parse(n, None, self.scope())?;
                if self.load(&r.name)?.is_none() {
                    return Err(self.not_found(&r));
                }
                format!("{}/", r.name)
            }
            None => String::new(),
        };
        self.inner
            .store
            .meta
            .list(PROVISIONED, &prefix, None, usize::MAX)?
            .into_iter()
            .map(|(_, doc)| decode(&doc.value))
            .collect()
    }
}
