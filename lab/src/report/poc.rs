//! The README's table of the original proof of concept's claims, written
//! from a run of the default scenario (`docs/example-run`): every figure
//! and every verdict in it is computed from that run's summary, and a test
//! fails when the README's copy differs.

use crate::experiment::{ArchitectureSettings, Mode, Phase};
use crate::run_folder::RunFiles;
use crate::run_folder::Summary;
use crate::run_folder::summary::ArchitectureSummary;

use super::format::{count, percent};

/// Where the table starts and ends in the README.
pub const BEGIN: &str = "<!-- poc-claims: generated from docs/example-run by `FAULTLINE_BLESS=1 cargo test --test analyze poc` -->";
pub const END: &str = "<!-- /poc-claims -->";

/// The PoC's claimed saving, per its "5 minutes".
const CLAIMED_SAVING: f64 = 9_000.0;

fn dollars(v: f64) -> String {
    format!("${}", super::format::money(v.max(0.0)))
}

fn secs(s: f64) -> String {
    format!("{s:.1} s")
}

/// The architectures of the default scenario, by role.
struct Roles<'a> {
    rest: (&'a str, &'a ArchitectureSummary),
    retry: Option<(&'a str, &'a ArchitectureSummary)>,
    buffered: (&'a str, &'a ArchitectureSummary),
    drop: (&'a str, &'a ArchitectureSummary),
}

impl<'a> Roles<'a> {
    fn of(files: &'a RunFiles, summary: &'a Summary) -> anyhow::Result<Self> {
        let experiment = &files.experiment;
        let find = |want: &dyn Fn(&ArchitectureSettings) -> bool| {
            experiment
                .architectures
                .iter()
                .find(|a| want(a))
                .and_then(|a| Some((a.name(), summary.architectures.get(a.name())?)))
        };
        let retries = |a: &ArchitectureSettings| a.retries(&experiment.workload).max_retries;
        let missing = |role: &str| anyhow::anyhow!("the run has no {role} architecture");
        Ok(Self {
            rest: find(&|a| matches!(a, ArchitectureSettings::Rest { .. }) && retries(a) == 0)
                .ok_or_else(|| missing("REST"))?,
            retry: find(&|a| matches!(a, ArchitectureSettings::Rest { .. }) && retries(a) > 0),
            buffered: find(&|a| {
                matches!(
                    a,
                    ArchitectureSettings::Kafka {
                        consumer: Mode::Buffered,
                        ..
                    }
                )
            })
            .ok_or_else(|| missing("buffered Kafka"))?,
            drop: find(&|a| {
                matches!(
                    a,
                    ArchitectureSettings::Kafka {
                        consumer: Mode::Drop,
                        ..
                    }
                )
            })
            .ok_or_else(|| missing("drop-policy Kafka"))?,
        })
    }
}

/// One row of the table: the claim, what was measured, the verdict.
type Row = (&'static str, String, String);

/// What every row is computed from.
struct Claims<'a> {
    files: &'a RunFiles,
    summary: &'a Summary,
    roles: Roles<'a>,
    fault: &'a crate::experiment::Fault,
    budget: crate::experiment::Span,
}

/// The README section: a paragraph saying what run it is, then the table.
pub fn claims(files: &RunFiles, summary: &Summary) -> anyhow::Result<String> {
    let claims = Claims {
        files,
        summary,
        roles: Roles::of(files, summary)?,
        fault: files
            .experiment
            .faults
            .first()
            .ok_or_else(|| anyhow::anyhow!("the run has no fault"))?,
        budget: files.experiment.economics.staleness_budget,
    };
    let mut out = claims.header();
    out.push_str("| the PoC's claim | measured | verdict |\n|---|---|---|\n");
    let rows = [
        Some(claims.rest_errors()),
        Some(claims.kafka_errors()),
        Some(claims.degradation()),
        Some(claims.data()),
        Some(claims.money()),
        claims.fair_rest(),
        Some(claims.latency()),
    ];
    for (claim, measured, verdict) in rows.into_iter().flatten() {
        out.push_str(&format!("| {claim} | {measured} | {verdict} |\n"));
    }
    Ok(out)
}

impl Claims<'_> {
    /// A count over every repetition, as the table says counts: per
    /// repetition (the mean, to the event).
    fn n(&self, total: u64) -> String {
        let repetitions = self.summary.repetitions.max(1) as u64;
        count((total + repetitions / 2) / repetitions)
    }

    /// When the database came back: the time written, or with a jittered
    /// fault each repetition's outage.
    fn restarted(&self) -> String {
        let experiment = &self.files.experiment;
        if experiment.fault_jitter.is_none() && experiment.fault_length_jitter.is_none() {
            return format!(
                "restarted at {}",
                crate::experiment::Span(self.fault.at.0 + self.fault.duration.0)
            );
        }
        let lengths: Vec<String> = self
            .summary
            .faults
            .iter()
            .filter_map(|f| Some(format!("{:.1} s", f.actual_end_s? - f.actual_start_s?)))
            .collect();
        format!(
            "restarted about {} later (each repetition's outage drawn within ±{}: {})",
            crate::experiment::Span(self.fault.duration.0),
            experiment
                .fault_length_jitter
                .or(experiment.fault_jitter)
                .unwrap_or_default(),
            lengths.join(", ")
        )
    }

    /// The paragraph: which run, what it reproduces, on what.
    fn header(&self) -> String {
        let (experiment, manifest, fault) =
            (&self.files.experiment, &self.files.manifest, self.fault);
        let roles = &self.roles;
        let durable = manifest
            .repetitions
            .first()
            .is_some_and(|r| r.broker_durable);
        let postgres = manifest
            .versions
            .postgres
            .split_whitespace()
            .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
            .unwrap_or("?");
        format!(
            "From run `{}` of the default scenario (the PoC's experiment: {} for {}, the database killed \
             at {} and {}{}){}. \
             {}-core machine, PostgreSQL {postgres}. Every 202 of the Kafka paths comes from a single \
             {} broker{}.\n\n",
            manifest.run_id,
            super::describe::describe_rate(&experiment.workload.rate),
            experiment.duration,
            fault.at,
            self.restarted(),
            if roles.retry.is_some() {
                "; beside the PoC's architectures, a REST API whose clients retry"
            } else {
                ""
            },
            match (
                self.summary.repetitions,
                manifest.repetitions.iter().filter(|r| r.control).count(),
            ) {
                (0 | 1, 0) => String::new(),
                (0 | 1, c) => format!(", with {c} control repetition(s) beside it"),
                (n, 0) => format!(", {n} times: counts below are per repetition, their mean"),
                (n, c) => format!(
                    ", {n} times, with {c} control repetitions among them: counts below are per \
                     repetition, their mean"
                ),
            },
            manifest.host.cores,
            manifest.versions.broker,
            if durable {
                " that writes its log to disk"
            } else {
                " that keeps its log in memory: had the broker crashed, what it acknowledged would have been lost with it"
            },
        )
    }

    /// REST's error rate.
    fn rest_errors(&self) -> Row {
        let (rest_name, rest) = self.roles.rest;
        let during = rest.phases.get(&Phase::During);
        let after_failed = rest.phases.get(&Phase::After).map_or(0, |p| p.failed);
        let classes: Vec<String> = rest
            .totals
            .failures
            .iter()
            .map(|(class, n)| format!("{class}: {}", self.n(*n)))
            .collect();
        (
            "REST: \"40–50 % error rate, immediate service degradation\"",
            format!(
                "`{rest_name}`: {} of {} requests failed ({}): {} of the {} sent while the database was down, {} after it was back",
                percent(rest.totals.error_rate),
                self.n(rest.totals.requests),
                classes.join(", "),
                self.n(during.map_or(0, |p| p.failed)),
                self.n(during.map_or(0, |p| p.requests)),
                self.n(after_failed),
            ),
            if (0.40..=0.50).contains(&rest.totals.error_rate) {
                "holds".into()
            } else {
                format!("does not hold ({})", percent(rest.totals.error_rate))
            },
        )
    }

    /// The Kafka paths' error rate.
    fn kafka_errors(&self) -> Row {
        let roles = &self.roles;
        let kafka = [roles.buffered, roles.drop];
        let failed: u64 = kafka.iter().map(|(_, a)| a.totals.failed).sum();
        let requests: u64 = kafka.iter().map(|(_, a)| a.totals.requests).sum();
        let worst = kafka
            .iter()
            .map(|(_, a)| a.totals.error_rate)
            .fold(0.0, f64::max);
        (
            "Kafka: \"0.33 % error rate\"",
            format!(
                "{} of {} requests failed on the two Kafka paths{}",
                self.n(failed),
                self.n(requests),
                if failed == 0 {
                    ": the broker was up and acknowledged every event"
                } else {
                    ""
                }
            ),
            if worst <= 0.0033 {
                format!("holds ({})", percent(worst))
            } else {
                format!("does not hold ({})", percent(worst))
            },
        )
    }

    /// Graceful degradation: the drop policy's losses.
    fn degradation(&self) -> Row {
        let roles = &self.roles;
        let (drop_name, drop) = roles.drop;
        let (buffered_name, buffered) = roles.buffered;
        let breaker = match (drop.breaker_open_s, drop.breaker_closed_s) {
            (Some(open), Some(closed)) => format!(
                ": its breaker read open for {} and closed for good {} after the database was back, and it drops whatever arrives while open",
                secs(open),
                secs(closed)
            ),
            _ => String::new(),
        };
        (
            "Kafka: \"graceful degradation with auto-recovery\", \"buffers on failure\"",
            format!(
                "the original consumer's policy (`{drop_name}`) answered 202 to {} of {} events and **lost {} of them ({})**{breaker}. A consumer that pauses and retries (`{buffered_name}`) lost {}",
                self.n(drop.acknowledged),
                self.n(drop.totals.requests),
                self.n(drop.lost),
                percent(drop.lost as f64 / drop.acknowledged.max(1) as f64),
                self.n(buffered.lost),
            ),
            format!(
                "{}; {}",
                if drop.lost > 0 {
                    "**does not hold for the original code**"
                } else {
                    "holds for the original code"
                },
                if buffered.lost == 0 {
                    "holds for a buffering consumer"
                } else {
                    "does not hold for a buffering consumer either"
                }
            ),
        )
    }

    /// The data gets there, late.
    fn data(&self) -> Row {
        let (buffered_name, buffered) = self.roles.buffered;
        let budget = self.budget;
        let freshness = buffered.freshness_ms.as_ref();
        (
            "the data gets to the database",
            format!(
                "`{buffered_name}` stored {} of {}, {} of them more than {budget} after they were sent{}{}",
                self.n(buffered.stored),
                self.n(buffered.acknowledged),
                self.n(buffered.stale),
                freshness
                    .map(|f| format!(
                        " (freshness p99 {}, max {})",
                        secs(f.p99 / 1000.0),
                        secs(f.max / 1000.0)
                    ))
                    .unwrap_or_default(),
                match (buffered.peak_backlog, buffered.drain_s) {
                    (Some(peak), Some(drain)) => format!(
                        "; its backlog peaked at {} and was back to its usual level {} after the database was",
                        count(peak as u64),
                        secs(drain)
                    ),
                    _ => String::new(),
                }
            ),
            match (buffered.lost, freshness) {
                (0, Some(f)) if f.max >= 120_000.0 => {
                    format!("holds, {:.0} minutes late", f.max / 60_000.0)
                }
                (0, Some(f)) if f.max >= 60_000.0 => "holds, a minute late and more".into(),
                (0, _) => "holds".into(),
                _ => "does not hold".into(),
            },
        )
    }

    /// The money, under the PoC's formula and the lab's.
    fn money(&self) -> Row {
        let (experiment, fault, budget) = (&self.files.experiment, self.fault, self.budget);
        let ((_, rest), (_, buffered), (_, drop)) =
            (self.roles.rest, self.roles.buffered, self.roles.drop);
        let roles = &self.roles;
        let run_minutes = experiment.duration.0.as_secs_f64() / 60.0;
        let outage_minutes = fault.duration.0.as_secs_f64() / 60.0;
        let poc_saving = rest.cost.poc_per_outage - buffered.cost.poc_per_outage;
        let mut lab = vec![format!("REST {}", dollars(rest.cost.per_outage))];
        if let Some((name, retry)) = roles.retry {
            lab.push(format!(
                "REST with retrying clients (`{name}`) {}",
                dollars(retry.cost.per_outage)
            ));
        }
        lab.push(format!(
            "buffered Kafka {} (saves {})",
            dollars(buffered.cost.per_outage),
            dollars(rest.cost.per_outage - buffered.cost.per_outage)
        ));
        let drop_extra = drop.cost.per_outage - rest.cost.per_outage;
        lab.push(format!(
            "the original drop policy {} ({})",
            dollars(drop.cost.per_outage),
            if drop_extra > 0.0 {
                format!("**costs {} more than REST**", dollars(drop_extra))
            } else {
                format!("saves {}", dollars(-drop_extra))
            }
        ));
        let economics = &experiment.economics;
        (
            "\"Kafka saves $9K+ in revenue per 5 minutes of database downtime\"",
            format!(
                "judged as the PoC measured it: one {run_minutes:.0}-minute run with {outage_minutes:.0} minutes of downtime. \
                 Under the PoC's own formula (failed requests × {} × {}): REST {}, buffered Kafka {}, a saving of {}. \
                 Charging lost events and events later than {budget} like failed ones: {}",
                economics.orders_lost_per_failed_event,
                dollars(economics.order_value),
                dollars(rest.cost.poc_per_outage),
                dollars(buffered.cost.poc_per_outage),
                dollars(poc_saving),
                lab.join(", "),
            ),
            if poc_saving >= CLAIMED_SAVING {
                "holds under its own formula".into()
            } else {
                format!(
                    "does not hold, even under its own formula ({} saved)",
                    dollars(poc_saving)
                )
            },
        )
    }

    /// A fair REST: clients that retry (not the PoC's).
    fn fair_rest(&self) -> Option<Row> {
        let (_, buffered) = self.roles.buffered;
        let budget = self.budget;
        let (name, retry) = self.roles.retry?;
        {
            let cheaper = retry.cost.per_outage < buffered.cost.per_outage;
            Some((
                "(not the PoC's) REST with clients that retry",
                format!(
                    "`{name}` failed {} of {} requests; {} events were stored later than {budget}, {} lost",
                    self.n(retry.totals.failed),
                    self.n(retry.totals.requests),
                    self.n(retry.stale),
                    self.n(retry.lost),
                ),
                format!(
                    "the failures become late events: {} per outage, {} than buffered Kafka",
                    dollars(retry.cost.per_outage),
                    if cheaper { "less" } else { "more" }
                ),
            ))
        }
    }

    /// Response times.
    fn latency(&self) -> Row {
        let ((_, rest), (_, buffered)) = (self.roles.rest, self.roles.buffered);
        let p = |a: &ArchitectureSummary, f: fn(&crate::run_folder::summary::Latency) -> f64| {
            a.totals.latency_ms.as_ref().map_or(f64::NAN, f)
        };
        let (rest_p50, kafka_p50) = (p(rest, |l| l.p50), p(buffered, |l| l.p50));
        (
            "response time REST 25 ms, Kafka 5 ms",
            format!(
                "p50 {rest_p50:.1} ms (REST) vs {kafka_p50:.1} ms (Kafka); p99 {:.1} ms vs {:.1} ms",
                p(rest, |l| l.p99),
                p(buffered, |l| l.p99)
            ),
            if rest_p50 < kafka_p50 {
                "reversed on this machine (everything local)".into()
            } else {
                "holds".into()
            },
        )
    }
}
