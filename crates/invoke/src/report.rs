//! What an invocation reports besides its response: the platform's lines in the function's
//! log (`START`, `END`, `REPORT`, a timeout), and the error payloads the platform writes for
//! a function that crashed, timed out or could not start.

use std::time::Duration;

use bytes::Bytes;
use stratus_sandbox::Exit;

/// The JSON body of an error the platform reports for the function.
pub(crate) fn error_json(error_type: &str, message: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "errorType": error_type, "errorMessage": message }).to_string())
}

fn describe_exit(exit: Option<&Exit>) -> String {
    match exit {
        Some(Exit {
            signal: Some(sig), ..
        }) => format!("signal: {}", signal_name(*sig)),
        Some(Exit {
            exit_code: Some(code),
            ..
        }) => format!("exit status {code}"),
        _ => "exit status unknown".into(),
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        9 => "killed".into(),
        11 => "segmentation fault".into(),
        6 => "aborted".into(),
        15 => "terminated".into(),
        n => format!("signal {n}"),
    }
}

/// The error of a runtime that exited: out of memory, or its exit status or signal.
pub(crate) fn crash_error(request_id: &str, exit: Option<&Exit>) -> Bytes {
    let oom = exit.is_some_and(|e| e.usage.oom_kills > 0);
    let error_type = if oom {
        "Runtime.OutOfMemory"
    } else {
        "Runtime.ExitError"
    };
    error_json(
        error_type,
        &format!(
            "RequestId: {request_id} Error: Runtime exited with error: {}",
            describe_exit(exit)
        ),
    )
}

/// A duration in milliseconds, as REPORT lines print it.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `START`, which opens every invocation's log.
pub(crate) fn start(request_id: &str, version: &str) -> String {
    format!("START RequestId: {request_id} Version: {version}")
}

/// `END`, after the function's last output.
pub(crate) fn end(request_id: &str) -> String {
    format!("END RequestId: {request_id}")
}

/// `REPORT` for an invocation that ran.
pub(crate) fn report(
    request_id: &str,
    duration: Duration,
    init: Option<Duration>,
    memory_size: u32,
    max_used_mb: u64,
) -> String {
    // The same figure metering records.
    let billed = stratus_aws::usage::billed_ms(duration, init);
    let mut report = format!(
        "REPORT RequestId: {request_id}\tDuration: {:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {memory_size} MB\tMax Memory Used: {max_used_mb} MB",
        ms(duration),
    );
    if let Some(i) = init {
        report.push_str(&format!("\tInit Duration: {:.2} ms", ms(i)));
    }
    report
}

/// `REPORT` for an invocation whose environment never became ready (init took `init`).
pub(crate) fn init_failed(request_id: &str, init: Duration, memory_size: u32) -> String {
    format!(
        "REPORT RequestId: {request_id}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\tInit Duration: {:.2} ms\tStatus: error",
        ms(init),
        ms(init).ceil() as u64,
        memory_size,
        0,
        ms(init)
    )
}

/// The line a timed-out invocation's log ends with, stamped now.
pub(crate) fn timed_out(request_id: &str, secs: f64) -> String {
    let ts = time::OffsetDateTime::now_utc();
    format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}Z {request_id} Task timed out after {secs:.2} seconds",
        ts.year(),
        u8::from(ts.month()),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_are_lambdas() {
        let d = Duration::from_micros(12_345);
        assert_eq!(
            report("r", d, None, 128, 30),
            "REPORT RequestId: r\tDuration: 12.35 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\tMax Memory Used: 30 MB"
        );
        // A cold start bills the init too: the sum, rounded up to the millisecond (the same
        // figure metering records).
        assert_eq!(
            report("r", d, Some(Duration::from_micros(100_100)), 256, 40),
            "REPORT RequestId: r\tDuration: 12.35 ms\tBilled Duration: 113 ms\tMemory Size: 256 MB\tMax Memory Used: 40 MB\tInit Duration: 100.10 ms"
        );
        assert_eq!(start("r", "$LATEST"), "START RequestId: r Version: $LATEST");
        assert_eq!(end("r"), "END RequestId: r");
        assert!(
            init_failed("r", Duration::from_millis(5), 128)
                .ends_with("\tInit Duration: 5.00 ms\tStatus: error")
        );
    }
}
