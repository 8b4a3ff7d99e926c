//! GetAccountSettings: the account's quotas and what is used of them.

use crate::code;
use crate::model::FunctionRecord;
use crate::records::{FUNCTIONS, VERSIONS, decode};
use crate::{AccountSettings, FunctionConfig, FunctionService, LambdaError};

/// Lambda's default code storage quota (75 GB).
const TOTAL_CODE_SIZE_LIMIT: u64 = 80_530_636_800;

impl FunctionService {
    pub fn account_settings(&self) -> Result<AccountSettings, LambdaError> {
        let meta = &self.inner.store.meta;
        let mut total = 0u64;
        for table in [FUNCTIONS, VERSIONS] {
            for (_, doc) in meta.list(table, "", None, usize::MAX)? {
                let size = if table == FUNCTIONS {
                    decode::<FunctionRecord>(&doc.value)?.latest.code_size
                } else {
                    decode::<FunctionConfig>(&doc.value)?.code_size
                };
                total += size;
            }
        }
        Ok(AccountSettings {
            total_code_size_limit: TOTAL_CODE_SIZE_LIMIT,
            code_size_unzipped: code::MAX_UNZIPPED_BYTES,
            code_size_zipped: code::MAX_ZIPPED_BYTES as u64,
            concurrent_executions: self.inner.opts.concurrent_executions,
            unreserved_concurrent_executions: self
                .inner
                .opts
                .concurrent_executions
                .saturating_sub(self.reserved_total()),
            total_code_size_used: total,
            function_count: meta.count(FUNCTIONS, "")?,
        })
    }
}
