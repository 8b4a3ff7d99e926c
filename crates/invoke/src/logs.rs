//! The clock the invoker stamps logs and deadlines with.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    stratus_aws::clock::now_ms().max(0) as u64
}
