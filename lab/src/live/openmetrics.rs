//! The live state in the OpenMetrics text format (`/metrics`), and the
//! latency histogram it keeps for it.

use faultline_services::metrics::names;

use super::State;

/// Upper bounds of the latency histogram's buckets, in seconds (and one
/// for everything above).
pub const LATENCY_BUCKETS_S: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Latencies counted by bucket, as an OpenMetrics histogram holds them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    /// Per bucket of [`LATENCY_BUCKETS_S`], then above the last: not
    /// cumulative.
    pub counts: [u64; LATENCY_BUCKETS_S.len() + 1],
    pub sum_s: f64,
    pub count: u64,
}

impl Histogram {
    /// Counts a latency of `us` microseconds.
    pub fn add(&mut self, us: u64) {
        let s = us as f64 / 1e6;
        let bucket = LATENCY_BUCKETS_S
            .iter()
            .position(|&le| s <= le)
            .unwrap_or(LATENCY_BUCKETS_S.len());
        self.counts[bucket] += 1;
        self.sum_s += s;
        self.count += 1;
    }
}

/// A label value as OpenMetrics writes it.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The lab's series: requests by architecture and outcome, backlog,
/// breaker, faults active; labelled with the run and the repetition.
pub fn openmetrics(state: &State) -> String {
    let mut out = String::new();
    let run = label(&state.run_id);
    let Some(r) = state.repetitions.last() else {
        return "# EOF\n".into();
    };
    let base = |arch: &str| {
        format!(
            "run=\"{run}\",repetition=\"{}\",architecture=\"{}\"",
            r.number + 1,
            label(arch)
        )
    };
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        out.push_str(&format!("# TYPE {name} {kind}\n# HELP {name} {help}\n"));
    };
    family(
        &mut out,
        names::LAB_REQUESTS,
        "counter",
        "Requests answered, by outcome (ok: a 2xx the architecture acknowledges).",
    );
    for (i, arch) in state.architectures.iter().enumerate() {
        for (outcome, totals) in [("ok", &r.ok_total), ("failed", &r.failed_total)] {
            out.push_str(&format!(
                "{}_total{{{},outcome=\"{outcome}\"}} {}\n",
                names::LAB_REQUESTS,
                base(arch),
                totals.get(i).copied().unwrap_or(0)
            ));
        }
    }
    family(
        &mut out,
        names::LAB_REQUEST_DURATION,
        "histogram",
        "Latency of the requests answered ok, from the time each was due.",
    );
    for (i, arch) in state.architectures.iter().enumerate() {
        let Some(h) = r.latency.get(i) else { continue };
        let name = names::LAB_REQUEST_DURATION;
        let mut cumulative = 0;
        for (j, count) in h.counts.iter().enumerate() {
            cumulative += count;
            let le = LATENCY_BUCKETS_S
                .get(j)
                .map_or("+Inf".to_string(), |le| format!("{le}"));
            out.push_str(&format!(
                "{name}_bucket{{{},le=\"{le}\"}} {cumulative}\n",
                base(arch)
            ));
        }
        out.push_str(&format!("{name}_sum{{{}}} {}\n", base(arch), h.sum_s));
        out.push_str(&format!("{name}_count{{{}}} {}\n", base(arch), h.count));
    }
    let last = |i: usize| r.seconds.iter().rev().find(|s| s.architecture == i);
    family(
        &mut out,
        names::LAB_BACKLOG_MESSAGES,
        "gauge",
        "A consumer's backlog as the lab measures it.",
    );
    for (i, arch) in state.architectures.iter().enumerate() {
        if let Some(backlog) = last(i).and_then(|s| s.backlog) {
            out.push_str(&format!(
                "{}{{{}}} {backlog}\n",
                names::LAB_BACKLOG_MESSAGES,
                base(arch)
            ));
        }
    }
    family(
        &mut out,
        names::LAB_BREAKER_STATE,
        "gauge",
        "A consumer's breaker: 0 closed, 1 half-open, 2 open.",
    );
    for (i, arch) in state.architectures.iter().enumerate() {
        if let Some(breaker) = last(i).and_then(|s| s.breaker) {
            out.push_str(&format!(
                "{}{{{}}} {breaker}\n",
                names::LAB_BREAKER_STATE,
                base(arch)
            ));
        }
    }
    family(
        &mut out,
        names::LAB_FAULT_ACTIVE,
        "gauge",
        "1 while a fault of the kind is injected.",
    );
    let mut kinds: Vec<&str> = r.faults.iter().map(|f| f.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for kind in kinds {
        let active = r.faults.iter().any(|f| f.kind == kind && f.end_s.is_none());
        out.push_str(&format!(
            "{}{{run=\"{run}\",repetition=\"{}\",kind=\"{}\"}} {}\n",
            names::LAB_FAULT_ACTIVE,
            r.number + 1,
            label(kind),
            u8::from(active)
        ));
    }
    out.push_str("# EOF\n");
    out
}
