//! Benchmark function for Stratus (bench/harness.py), on the `lambda_runtime` crate.
//!
//! Answers `"ok"`; an event `{"sleep_ms": N}` first sleeps N milliseconds without using the
//! CPU, which is how the scale-out measurement keeps every environment busy at once. An event
//! `{"print_lines": N, "marker": "M"}` prints N lines of about 100 bytes to stdout, one
//! `println!` (one write) each, every line carrying the word M, then a last line `Mend`
//! (the logs measurement watches its log group for it).
//!
//! An environment serves one invocation at a time, so the function runs on tokio's
//! single-threaded runtime. With `BENCH_TOKIO_MULTI_THREAD` set it runs on the multi-threaded
//! one instead (what `#[tokio::main]` gives, as lambda_runtime's examples write it), which
//! hands each event between its I/O thread and the handler's: the harness measures both, to
//! show how much of a warm invoke's CPU is the function's own choice of runtime.

use std::time::Duration;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    if let Some(ms) = event.payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(n) = event.payload.get("print_lines").and_then(Value::as_u64) {
        let marker = event.payload.get("marker").and_then(Value::as_str).unwrap_or("bench");
        for i in 0..n {
            println!("{i:08} {marker} bench line: lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do");
        }
        println!("{marker}end");
    }
    Ok(Value::from("ok"))
}

fn main() -> Result<(), Error> {
    let mut runtime = if std::env::var_os("BENCH_TOKIO_MULTI_THREAD").is_some() {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    runtime
        .enable_all()
        .build()?
        .block_on(lambda_runtime::run(service_fn(handler)))
}
