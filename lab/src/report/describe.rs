//! The scenario in words: its rate and each architecture with every
//! setting that shapes what it does.

use crate::experiment::{ArchitectureSettings, Mode, Pool, RateShape, Span, Workload};

pub fn describe_rate(rate: &RateShape) -> String {
    match rate {
        RateShape::Constant { rps } => format!("{rps} req/s per architecture"),
        RateShape::Ramp { from_rps, to_rps } => {
            format!("{from_rps} → {to_rps} req/s per architecture")
        }
        RateShape::Steps { steps } => format!("{} rate steps per architecture", steps.len()),
        RateShape::Spike {
            base_rps, peak_rps, ..
        } => {
            format!("{base_rps} req/s with a spike to {peak_rps} req/s per architecture")
        }
    }
}

/// An architecture in words, with every setting that shapes what it does
/// (pool timeouts, batches, breaker, its clients' retries), as the
/// scenario set them or as their defaults.
pub fn describe_architecture(a: &ArchitectureSettings, workload: &Workload) -> String {
    let pool = |pool: &Pool| {
        format!(
            "pool of {} (connect timeout {}, wait for a connection {}, statement timeout {}, \
             idle connections closed after {})",
            pool.size,
            pool.connect_timeout,
            pool.acquire_timeout,
            pool.statement_timeout,
            pool.idle_timeout
        )
    };
    let retries = a.retries(workload);
    let clients = if retries.max_retries == 0 {
        "clients do not retry".to_string()
    } else {
        format!(
            "clients retry a failure up to {} times, waiting {} doubling to at most {} \
             (the last attempt {} after the first, timeouts aside)",
            retries.max_retries,
            retries.backoff,
            retries.max_backoff,
            Span(retries.total_wait())
        )
    };
    match a {
        ArchitectureSettings::Rest {
            pool: p,
            group_commit,
            ..
        } => format!(
            "REST: POST → INSERT into PostgreSQL → 201{}; {}; {clients}",
            match group_commit {
                Some(group) => format!(
                    " after a group commit of up to {} rows (waiting at most {})",
                    group.max_rows, group.max_wait
                ),
                None => ", one commit per request".to_string(),
            },
            pool(p)
        ),
        ArchitectureSettings::Kafka {
            consumer,
            breaker,
            batch_size,
            batch_linger,
            delivery_timeout,
            pool: p,
            ..
        } => format!(
            "Kafka: POST → produce (acks=all, delivery timeout {delivery_timeout}) → 202; {} \
             consumer in batches of up to {batch_size} (linger {batch_linger}), breaker opens \
             after {} failures for {} and closes after {} successes{}; consumer {}; {clients}",
            match consumer {
                Mode::Buffered => "buffered",
                Mode::Drop => "drop",
            },
            breaker.failures,
            breaker.open_for,
            breaker.successes,
            match consumer {
                Mode::Buffered => ", pausing its partitions while open (nothing dropped)",
                Mode::Drop =>
                    ", dropping what fails and what arrives while open (the original policy)",
            },
            pool(p)
        ),
        ArchitectureSettings::Service {
            processes,
            request,
            audit,
            ..
        } => format!(
            "Your service: {} {} → {} (acknowledged by {}); processes {}; stored events found by the query {}; {clients}",
            request.method,
            request.path,
            match &request.process {
                Some(process) => process.clone(),
                None => processes
                    .first()
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
            },
            request
                .ok
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            processes
                .iter()
                .map(|p| format!("{} ({})", p.name, p.command.join(" ")))
                .collect::<Vec<_>>()
                .join(", "),
            audit.query.trim()
        ),
    }
}
