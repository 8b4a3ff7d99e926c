//! Shapes of PutFunctionConcurrency / GetFunctionConcurrency (the handlers sit in `run`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PutConcurrencyIn {
    pub reserved_concurrent_executions: Option<i64>,
}

/// `Concurrency` / `GetFunctionConcurrencyResponse`: empty when nothing is reserved.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConcurrencyOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved_concurrent_executions: Option<u32>,
}
