//! Reserved concurrency: PutFunctionConcurrency, GetFunctionConcurrency,
//! DeleteFunctionConcurrency, and the figures the invoker admits invocations by.

use stratus_store::{Expect, Op};

use crate::LambdaError;
use crate::model::FunctionRecord;
use crate::names::FunctionRef;
use crate::records::{FUNCTIONS, blobs_of, encode};
use crate::service::FunctionService;

/// Lambda keeps at least this much of the account's concurrency unreserved.
pub const MIN_UNRESERVED: u32 = 100;

impl FunctionService {
    /// The sum of all functions' reserved concurrency (cached).
    pub(crate) fn reserved_total(&self) -> u32 {
        self.inner
            .reserved_total
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Recomputes [`Self::reserved_total`] from the store. Callers hold the write lock
    /// (or are still constructing the service).
    pub(crate) fn refresh_reserved_total(&self) -> Result<(), LambdaError> {
        let mut total = 0u32;
        self.for_each_function(|rec| {
            total = total.saturating_add(rec.reserved_concurrency.unwrap_or(0));
        })?;
        self.inner
            .reserved_total
            .store(total, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn unqualified(&self, name: &str) -> Result<(FunctionRecord, u64), LambdaError> {
        let r = FunctionRef::parse(name, None, self.scope())?;
        if r.qualifier.is_some() {
            return Err(LambdaError::InvalidParameter(
                "Concurrency is set on the function, not on a version or alias: use the unqualified name."
                    .into(),
            ));
        }
        self.load(&r.name)?.ok_or_else(|| self.not_found(&r))
    }

    /// PutFunctionConcurrency.
    pub fn put_concurrency(&self, name: &str, reserved: i64) -> Result<u32, LambdaError> {
        let limit = self.inner.opts.concurrent_executions;
        let value = crate::validate::range(
            reserved,
            "reservedConcurrentExecutions",
            0,
            i64::from(limit),
        )?;
        let _w = self.write_guard()?;
        let (mut rec, version) = self.unqualified(name)?;
        let others = self.reserved_total() - rec.reserved_concurrency.unwrap_or(0);
        if limit.saturating_sub(others + value) < MIN_UNRESERVED {
            return Err(LambdaError::InvalidParameter(format!(
                "Specified ReservedConcurrentExecutions for function decreases account's \
                 UnreservedConcurrentExecution below its minimum value of [{MIN_UNRESERVED}]."
            )));
        }
        rec.reserved_concurrency = Some(value);
        self.commit_record(&rec, version)?;
        self.refresh_reserved_total()?;
        self.concurrency_changed(&rec.latest.name);
        Ok(value)
    }

    /// GetFunctionConcurrency.
    pub fn get_concurrency(&self, name: &str) -> Result<Option<u32>, LambdaError> {
        Ok(self.unqualified(name)?.0.reserved_concurrency)
    }

    /// DeleteFunctionConcurrency.
    pub fn delete_concurrency(&self, name: &str) -> Result<(), LambdaError> {
        let _w = self.write_guard()?;
        let (mut rec, version) = self.unqualified(name)?;
        rec.reserved_concurrency = None;
        self.commit_record(&rec, version)?;
        self.refresh_reserved_total()?;
        self.concurrency_changed(&rec.latest.name);
        Ok(())
    }

    /// Calls `f` with the function's name whenever a function's reserved concurrency is set
    /// or removed (the asynchronous queue wakes the events waiting for capacity). `f` runs
    /// on the writer's thread, after the commit, and must not call back into this service.
    pub fn on_concurrency_change(&self, f: impl Fn(&str) + Send + Sync + 'static) {
        self.inner
            .concurrency_listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(std::sync::Arc::new(f));
    }

    fn concurrency_changed(&self, name: &str) {
        let listeners = self
            .inner
            .concurrency_listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for f in listeners {
            f(name);
        }
    }

    /// The account's unreserved pool: the limit minus every reservation.
    pub fn unreserved_limit(&self) -> u32 {
        self.inner
            .opts
            .concurrent_executions
            .saturating_sub(self.reserved_total())
    }

    fn commit_record(&self, rec: &FunctionRecord, version: u64) -> Result<(), LambdaError> {
        self.inner.store.meta.commit(&[Op::put_with_blobs(
            FUNCTIONS,
            &rec.latest.name,
            encode(rec)?,
            blobs_of(&rec.latest)?,
            Expect::Version(version),
        )])?;
        Ok(())
    }
}
