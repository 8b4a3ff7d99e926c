//! Aggregation: per-function usage from records, the percentiles of their durations, and
//! the price AWS would charge for them. Pure functions of the rows, so they are tested
//! without a database.

use std::collections::BTreeMap;

use serde::Serialize;
use stratus_aws::Outcome;

/// Public x86 Lambda prices (us-east-1), used to estimate what the usage would cost on AWS.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prices {
    /// Dollars per million requests (AWS: $0.20).
    pub per_million_requests: f64,
    /// Dollars per GB-second of billed duration at the configured memory (AWS: $0.0000166667).
    pub per_gb_second: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            per_million_requests: 0.20,
            per_gb_second: 0.000_016_666_7,
        }
    }
}

impl Prices {
    /// Requests are charged whatever their outcome, except throttles (the function never ran).
    pub fn estimate(&self, requests: u64, gb_seconds: f64) -> f64 {
        requests as f64 / 1e6 * self.per_million_requests + gb_seconds * self.per_gb_second
    }
}

/// GB-seconds of one invocation: billed duration times configured memory, in Lambda's
/// units (1 GB = 1024 MB).
pub fn gb_seconds(billed_ms: u64, memory_mb: u32) -> f64 {
    billed_ms as f64 / 1000.0 * f64::from(memory_mb) / 1024.0
}

/// The nearest-rank percentile `p` (0 < p <= 100) of `sorted`, which must be in
/// ascending order; `None` when it is empty.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// One row of the usage table, as aggregation reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub function: String,
    pub duration_us: u64,
    pub billed_ms: u64,
    pub memory_mb: u32,
    pub max_memory_used_mb: u64,
    pub cold: bool,
    pub outcome: Outcome,
}

/// A function's usage over a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionUsage {
    pub function: String,
    /// Invocations that ran (throttles excluded, as Lambda's `Invocations` metric).
    pub invocations: u64,
    /// Invocations that failed: function errors, timeouts and out-of-memory kills.
    pub errors: u64,
    pub timeouts: u64,
    pub out_of_memory: u64,
    pub throttles: u64,
    pub cold_starts: u64,
    /// Billed milliseconds (init included on cold starts).
    pub billed_ms: u64,
    pub gb_seconds: f64,
    /// Nearest-rank percentiles of the duration in milliseconds (init excluded); absent
    /// when nothing ran.
    pub duration_p50_ms: Option<f64>,
    pub duration_p99_ms: Option<f64>,
    pub duration_max_ms: Option<f64>,
    /// The most memory one invocation used (its environment's peak), in MB.
    pub max_memory_used_mb: u64,
    /// What AWS would charge, at [`Prices`], before any free tier.
    pub estimated_cost_usd: f64,
}

/// Aggregates rows per function, sorted by name.
pub fn summarize(rows: impl IntoIterator<Item = Row>, prices: &Prices) -> Vec<FunctionUsage> {
    #[derive(Default)]
    struct Acc {
        invocations: u64,
        errors: u64,
        timeouts: u64,
        out_of_memory: u64,
        throttles: u64,
        cold: u64,
        billed_ms: u64,
        gb_seconds: f64,
        max_memory: u64,
        durations: Vec<u64>,
    }
    let mut by_fn: BTreeMap<String, Acc> = BTreeMap::new();
    for r in rows {
        let a = by_fn.entry(r.function).or_default();
        if r.outcome == Outcome::Throttled {
            a.throttles += 1;
            continue;
        }
        a.invocations += 1;
        a.errors += u64::from(r.outcome.is_error());
        a.timeouts += u64::from(r.outcome == Outcome::Timeout);
        a.out_of_memory += u64::from(r.outcome == Outcome::OutOfMemory);
        a.cold += u64::from(r.cold);
        a.billed_ms += r.billed_ms;
        a.gb_seconds += gb_seconds(r.billed_ms, r.memory_mb);
        a.max_memory = a.max_memory.max(r.max_memory_used_mb);
        a.durations.push(r.duration_us);
    }
    by_fn
        .into_iter()
        .map(|(function, mut a)| {
            a.durations.sort_unstable();
            let ms = |us: Option<u64>| us.map(|us| us as f64 / 1000.0);
            FunctionUsage {
                function,
                invocations: a.invocations,
                errors: a.errors,
                timeouts: a.timeouts,
                out_of_memory: a.out_of_memory,
                throttles: a.throttles,
                cold_starts: a.cold,
                billed_ms: a.billed_ms,
                gb_seconds: a.gb_seconds,
                duration_p50_ms: ms(percentile(&a.durations, 50.0)),
                duration_p99_ms: ms(percentile(&a.durations, 99.0)),
                duration_max_ms: ms(a.durations.last().copied()),
                max_memory_used_mb: a.max_memory,
                estimated_cost_usd: prices.estimate(a.invocations, a.gb_seconds),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(function: &str, duration_ms: u64, outcome: Outcome, cold: bool) -> Row {
        Row {
            function: function.into(),
            duration_us: duration_ms * 1000,
            billed_ms: duration_ms,
            memory_mb: 512,
            max_memory_used_mb: duration_ms / 10,
            cold,
            outcome,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let hundred: Vec<u64> = (1..=100).collect();
        for (data, p, want) in [
            (&hundred[..], 50.0, Some(50)),
            (&hundred[..], 99.0, Some(99)),
            (&hundred[..], 100.0, Some(100)),
            (&hundred[..], 0.1, Some(1)),
            (&[7][..], 50.0, Some(7)),
            (&[7][..], 99.0, Some(7)),
            (&[1, 2][..], 50.0, Some(1)),
            (&[1, 2][..], 99.0, Some(2)),
            (&[][..], 50.0, None),
        ] {
            assert_eq!(percentile(data, p), want, "p{p} of {} values", data.len());
        }
    }

    #[test]
    fn gb_seconds_and_price_follow_lambdas_units() {
        // 1 s at 1024 MB is one GB-second; 128 MB for 100 ms is 1/80 of one.
        assert_eq!(gb_seconds(1000, 1024), 1.0);
        assert_eq!(gb_seconds(100, 128), 0.0125);
        let p = Prices::default();
        // A million requests of 1 s at 1 GB: $0.20 + $16.6667.
        let cost = p.estimate(1_000_000, 1_000_000.0);
        assert!((cost - 16.8667).abs() < 1e-9, "{cost}");
        assert_eq!(p.estimate(0, 0.0), 0.0);
    }

    #[test]
    fn summaries_count_outcomes_and_leave_throttles_out_of_durations() {
        let rows = vec![
            row("b", 10, Outcome::Success, true),
            row("a", 200, Outcome::Success, true),
            row("a", 100, Outcome::Success, false),
            row("a", 300, Outcome::FunctionError, false),
            row("a", 900, Outcome::Timeout, false),
            row("a", 50, Outcome::OutOfMemory, false),
            Row {
                duration_us: 0,
                billed_ms: 0,
                ..row("a", 0, Outcome::Throttled, false)
            },
        ];
        let s = summarize(rows, &Prices::default());
        assert_eq!(
            s.iter().map(|u| u.function.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let a = &s[0];
        assert_eq!(
            (a.invocations, a.errors, a.timeouts, a.out_of_memory),
            (5, 3, 1, 1)
        );
        assert_eq!((a.throttles, a.cold_starts, a.billed_ms), (1, 1, 1550));
        assert_eq!(a.duration_p50_ms, Some(200.0));
        assert_eq!(a.duration_p99_ms, Some(900.0));
        assert_eq!(a.duration_max_ms, Some(900.0));
        assert_eq!(a.max_memory_used_mb, 90);
        assert!((a.gb_seconds - 1.55 * 0.5).abs() < 1e-12);
        let want = 5.0 / 1e6 * 0.20 + a.gb_seconds * 0.000_016_666_7;
        assert!((a.estimated_cost_usd - want).abs() < 1e-15);
        // Only throttles: counted, nothing billed, no durations.
        let t = summarize(
            vec![Row {
                duration_us: 0,
                billed_ms: 0,
                ..row("t", 0, Outcome::Throttled, false)
            }],
            &Prices::default(),
        );
        assert_eq!((t[0].invocations, t[0].throttles), (0, 1));
        assert_eq!(t[0].duration_p50_ms, None);
        assert_eq!(t[0].estimated_cost_usd, 0.0);
    }
}
