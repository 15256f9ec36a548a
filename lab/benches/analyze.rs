//! Analysis and rendering of a whole run folder: `summary.json`, eight
//! charts, `report.html` and `report.md` from the Parquet files, at 250k,
//! 500k and 1M request rows (synthetic folders with one fault window).
//!
//!     cargo bench -p faultline --bench analyze
//!
//! Target (2 cores): 1,000,000 request rows in at most 3 s, growing linearly.

use std::time::Instant;

use faultline::synthetic::Synthetic;

fn main() {
    let root = std::env::temp_dir().join(format!("faultline-bench-analyze-{}", std::process::id()));
    println!(
        "{:>10} {:>10} {:>10} {:>14}",
        "rows", "best s", "median s", "µs per 1k rows"
    );
    for rows in [250_000u32, 500_000, 1_000_000] {
        // Two architectures for 300 s.
        let run = Synthetic {
            rps: rows / 600,
            seconds: 300,
            fault: (90, 210),
            ..Synthetic::default()
        };
        let dir = root.join(rows.to_string());
        run.write(&dir).expect("write the synthetic run");
        let mut times: Vec<f64> = (0..5)
            .map(|_| {
                let start = Instant::now();
                faultline::analyse_and_report(&dir).expect("analyze and render");
                start.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let n = 2 * run.requests();
        println!(
            "{n:>10} {:>10.3} {:>10.3} {:>14.1}",
            times[0],
            times[2],
            times[2] * 1e6 / (n as f64 / 1000.0)
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}
