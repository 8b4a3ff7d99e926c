//! What metering adds to an invocation's path: building the record (the invoker clones the
//! request id, function name and version) and `Meter::record`, measured while the writer
//! thread drains and commits. `cargo run --release -p stratus-metering --example record_cost`.

use std::time::{Duration, Instant};

use stratus_aws::{InvocationRecord, Meter, Outcome};
use stratus_metering::{Metering, MeteringOptions, UsageQuery};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("stratus-record-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let m = Metering::open(&dir, MeteringOptions::default())?;
    let (request_id, function, version) = (
        "8f5e0a4e-0c4b-4c3e-9a3c-7f0d2b1e6a55".to_owned(),
        "my-function".to_owned(),
        "$LATEST".to_owned(),
    );
    // Batches of 10,000 at about 13,000/s, the warm throughput: the queue never fills.
    let (batches, per_batch) = (20, 10_000);
    let mut spent = Duration::ZERO;
    for _ in 0..batches {
        let t = Instant::now();
        for _ in 0..per_batch {
            m.record(InvocationRecord {
                request_id: request_id.clone(),
                function: function.clone(),
                version: version.clone(),
                start_ms: 1,
                duration: Duration::from_micros(140),
                init: None,
                billed_ms: 1,
                memory_mb: 128,
                max_memory_used_mb: 30,
                outcome: Outcome::Success,
            });
        }
        spent += t.elapsed();
        std::thread::sleep(Duration::from_millis(750).saturating_sub(t.elapsed()));
    }
    let n = batches * per_batch;
    let t = Instant::now();
    let report = m.usage(&UsageQuery::default())?;
    println!(
        "record: {:.0} ns each over {n}; kept {}, dropped {}; usage report over them: {:.0} ms",
        spent.as_nanos() as f64 / n as f64,
        report.functions.first().map_or(0, |f| f.invocations),
        report.dropped_records,
        t.elapsed().as_secs_f64() * 1000.0,
    );
    m.close();
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
