//! Benchmark function for Stratus (bench/harness.py), on the `lambda_runtime` crate.
//!
//! Answers `"ok"`; an event `{"sleep_ms": N}` first sleeps N milliseconds without using the
//! CPU, which is how the scale-out measurement keeps every environment busy at once.

use std::time::Duration;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    if let Some(ms) = event.payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    Ok(Value::from("ok"))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
