//! Faults on the run's clock. Each fault is injected at its start and ended
//! after its duration, and both are **verified**: a probe shows that the fault
//! took effect and that it ended. What happened is recorded, with the planned
//! and actual times; a fault that could not be verified makes the run
//! incomplete.

use std::fmt;
use std::time::{Duration, Instant};

use faultline_services::consumer;
use faultline_stack::{ProbeError, Program, ProxyMode, StackError};
use tokio_util::sync::CancellationToken;

use crate::experiment::FaultKind;
use crate::plan::FaultSpec;
use crate::run_folder::rows::FaultRecord;
use crate::stack::LabStack;

mod command;
use command::{shell, verified};

/// How long a probe may wait for the effect of a fault.
const EFFECT_LIMIT: Duration = Duration::from_secs(10);
/// How long a probe may wait for the system to be back after a fault: a
/// database thawed or restarted under load may take a while to answer
/// (crash recovery, a queue of connections), and judging too early would
/// call a correct run incomplete.
const RECOVERY_LIMIT: Duration = Duration::from_secs(60);
/// A probe's own timeout: a frozen or blackholed database fails it.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

impl FaultRecord {
    fn planned(spec: &FaultSpec) -> Self {
        Self {
            kind: spec.kind.name().to_string(),
            target: spec.kind.target().to_string(),
            planned_start_s: spec.start.as_secs_f64(),
            planned_end_s: spec.end().as_secs_f64(),
            actual_start_s: None,
            actual_end_s: None,
            verified_start: false,
            verified_end: false,
            effect_ms: None,
            recovery_ms: None,
            verified: false,
            detail: String::new(),
        }
    }

    fn note(&mut self, text: impl fmt::Display) {
        if !self.detail.is_empty() {
            self.detail.push_str("; ");
        }
        self.detail.push_str(&text.to_string());
    }
}

/// Checks that every fault can run on this stack, before anything starts.
/// A fault the stack it would act on cannot carry out.
#[derive(Debug, thiserror::Error)]
#[error("{fault}: {reason}")]
pub struct Unsupported {
    /// The fault, as `KIND@START+DURATION`.
    pub fault: String,
    pub reason: &'static str,
}

pub fn check(faults: &[FaultSpec], stack: &LabStack) -> Result<(), Unsupported> {
    for fault in faults {
        let external_broker = stack
            .broker
            .as_ref()
            .is_some_and(|b| b.kind() == faultline_stack::BrokerKind::External);
        let external_database = matches!(stack.database, crate::stack::Database::External { .. });
        let reason = match fault.kind {
            FaultKind::BrokerKill
            | FaultKind::BrokerLatency { .. }
            | FaultKind::BrokerBlackhole
            | FaultKind::ConsumerPartition
                if stack.broker.is_none() =>
            {
                "no architecture uses a broker"
            }
            FaultKind::BrokerKill if external_broker => {
                "an external broker cannot be killed by the lab"
            }
            FaultKind::BrokerLatency { .. }
            | FaultKind::BrokerBlackhole
            | FaultKind::ConsumerPartition
                if external_broker =>
            {
                "the clients reach an external broker at the addresses it advertises, not \
                 through the lab's proxy"
            }
            ref kind if kind.needs_local_database() && external_database => {
                "the database is external, so the lab cannot crash, stop or freeze it \
                 (db-latency and db-blackhole act on the link and still work)"
            }
            FaultKind::ConsumerKill | FaultKind::ConsumerPartition if stack.kafka.is_empty() => {
                "no architecture has a consumer"
            }
            FaultKind::ProcessKill {
                ref architecture,
                ref process,
            } if !stack.services.iter().any(|s| {
                &s.name == architecture && s.processes.iter().any(|(p, _)| p == process)
            }) =>
            {
                "no service architecture has that process"
            }
            _ => continue,
        };
        return Err(Unsupported {
            fault: fault.to_string(),
            reason,
        });
    }
    Ok(())
}

/// Runs `faults` on the clock that started at `t0`, calling `report` as each
/// one starts and ends (with every record so far, the index of that one, and
/// whether it started). On cancellation, faults still active are ended
/// (verified as far as possible) and the records so far are returned with
/// `false`.
pub async fn run_timeline(
    stack: &mut LabStack,
    faults: &[FaultSpec],
    t0: Instant,
    cancel: &CancellationToken,
    report: impl Fn(&[FaultRecord], usize, bool),
) -> (Vec<FaultRecord>, bool) {
    let mut records: Vec<FaultRecord> = faults.iter().map(FaultRecord::planned).collect();
    // (time, fault index, is_start), in time order; at equal times ends first.
    let mut events: Vec<(Duration, usize, bool)> = Vec::new();
    for (i, fault) in faults.iter().enumerate() {
        events.push((fault.start, i, true));
        events.push((fault.end(), i, false));
    }
    events.sort_by_key(|(at, i, start)| (*at, *start, *i));
    let mut active = vec![false; faults.len()];
    for (at, i, start) in events {
        if !start && !active[i] {
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep_until((t0 + at).into()) => {}
            () = cancel.cancelled() => {
                end_active(stack, faults, &mut records, &active, t0).await;
                return (records, false);
            }
        }
        if start {
            inject(stack, &faults[i], &mut records[i], t0).await;
            active[i] = records[i].actual_start_s.is_some();
        } else {
            end(stack, &faults[i], &mut records[i], t0).await;
            active[i] = false;
        }
        report(&records, i, start);
    }
    (records, true)
}

async fn end_active(
    stack: &mut LabStack,
    faults: &[FaultSpec],
    records: &mut [FaultRecord],
    active: &[bool],
    t0: Instant,
) {
    for (i, fault) in faults.iter().enumerate() {
        if active[i] {
            records[i].note("ended early: the run was interrupted");
            end(stack, fault, &mut records[i], t0).await;
        }
    }
}

/// Injects one fault and verifies that it took effect.
pub async fn inject(stack: &mut LabStack, spec: &FaultSpec, record: &mut FaultRecord, t0: Instant) {
    let injected = Instant::now();
    record.actual_start_s = Some(injected.duration_since(t0).as_secs_f64());
    let action: Result<(), StackError> = match &spec.kind {
        FaultKind::DbCrash => stack.database.local().map(|p| p.kill()),
        FaultKind::DbStop => stack.database.local().map(|p| {
            p.stop();
        }),
        FaultKind::DbFreeze => stack.database.local().and_then(|p| p.freeze()),
        FaultKind::DbLatency { delay, jitter } => {
            stack.proxy.set_mode(ProxyMode::Delay {
                delay: delay.0,
                jitter: jitter.0,
                seed: spec.seed,
            });
            Ok(())
        }
        FaultKind::DbBlackhole => {
            stack.proxy.set_mode(ProxyMode::Blackhole);
            Ok(())
        }
        FaultKind::BrokerKill => match stack.broker.as_mut() {
            Some(broker) => broker.kill(),
            None => Err(StackError::NotRunning("broker")),
        },
        FaultKind::BrokerLatency { delay, jitter } => broker_link(stack).map(|link| {
            link.set_mode(ProxyMode::Delay {
                delay: delay.0,
                jitter: jitter.0,
                seed: spec.seed,
            })
        }),
        FaultKind::BrokerBlackhole => {
            broker_link(stack).map(|link| link.set_mode(ProxyMode::Blackhole))
        }
        FaultKind::ConsumerPartition => broker_link(stack)
            .map(|link| link.set_mode_for(consumer::SERVICE, ProxyMode::Blackhole)),
        FaultKind::ConsumerKill => {
            for kafka in &mut stack.kafka {
                kafka.consumer.kill();
            }
            Ok(())
        }
        FaultKind::ProcessKill {
            architecture,
            process,
        } => program_of(stack, architecture, process).map(Program::kill),
        FaultKind::Command(command) => {
            let ran = shell(&command.start, command.timeout.0, stack, false).await;
            record.note(format!("start: {ran}"));
            ran.succeeded().then_some(()).ok_or(StackError::Failed {
                what: "the start command".into(),
                detail: "its outcome is above".into(),
            })
        }
    };
    if let Err(error) = action {
        record.note(format!("could not inject: {error}"));
        record.actual_start_s = None;
        return;
    }
    match verify_effect(stack, &spec.kind).await {
        Ok(()) => {
            record.verified_start = true;
            record.effect_ms = Some(injected.elapsed().as_secs_f64() * 1000.0);
        }
        Err(why) => record.note(format!("no effect seen: {why}")),
    }
}

/// Ends one fault and verifies that the system is back.
pub async fn end(stack: &mut LabStack, spec: &FaultSpec, record: &mut FaultRecord, t0: Instant) {
    let ended = Instant::now();
    record.actual_end_s = Some(ended.duration_since(t0).as_secs_f64());
    let action: Result<(), StackError> = async {
        match &spec.kind {
            FaultKind::DbCrash | FaultKind::DbStop => {
                stack.database.local()?.restart().await.map(drop)
            }
            FaultKind::DbFreeze => stack.database.local()?.thaw(),
            FaultKind::DbLatency { .. } | FaultKind::DbBlackhole => {
                stack.proxy.set_mode(ProxyMode::Pass);
                Ok(())
            }
            FaultKind::BrokerLatency { .. }
            | FaultKind::BrokerBlackhole
            | FaultKind::ConsumerPartition => {
                broker_link(stack).map(|link| link.set_mode(ProxyMode::Pass))
            }
            FaultKind::BrokerKill => {
                let broker = stack
                    .broker
                    .as_mut()
                    .ok_or(StackError::NotRunning("broker"))?;
                broker.restart().await?;
                if !broker.durable() {
                    // Memory storage forgot the topics with everything else.
                    for kafka in &stack.kafka {
                        broker.create_topic_with(&kafka.topic, stack.topics).await?;
                        crate::stack::create_probe_topic(broker, &kafka.topic, stack.topics)
                            .await?;
                    }
                }
                Ok(())
            }
            FaultKind::ConsumerKill => {
                for kafka in &mut stack.kafka {
                    kafka.consumer.restart().await?;
                }
                Ok(())
            }
            FaultKind::ProcessKill {
                architecture,
                process,
            } => program_of(stack, architecture, process)?
                .restart()
                .await
                .map(drop),
            FaultKind::Command(command) => {
                let ran = shell(&command.end, command.timeout.0, stack, true).await;
                record.note(format!("end: {ran}"));
                ran.succeeded().then_some(()).ok_or(StackError::Failed {
                    what: "the end command".into(),
                    detail: "its outcome is above".into(),
                })
            }
        }
    }
    .await;
    if let Err(error) = action {
        // What could not be ended is not over, whatever a probe says.
        record.note(format!("could not end: {error}"));
        record.verified = false;
        return;
    }
    match verify_recovery(stack, &spec.kind).await {
        Ok(()) => {
            record.verified_end = true;
            record.recovery_ms = Some(ended.elapsed().as_secs_f64() * 1000.0);
        }
        Err(why) => record.note(format!("no recovery seen: {why}")),
    }
    record.verified = record.verified_start && record.verified_end;
}

/// The fault proxy in front of the lab's broker.
fn broker_link(stack: &LabStack) -> Result<&faultline_stack::FaultProxy, StackError> {
    stack
        .broker
        .as_ref()
        .ok_or(StackError::NotRunning("broker"))?
        .link()
        .ok_or(StackError::External("broker"))
}

/// Why a fault could not be seen to take effect or to end.
#[derive(Debug, thiserror::Error)]
pub enum Unverified {
    #[error("the probe still succeeds")]
    StillSucceeds,
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("a query took {0:?}, less than the delay")]
    TooFast(Duration),
    #[error("a query still took {0:?}")]
    StillSlow(Duration),
    #[error("no {0} is running")]
    Missing(&'static str),
}

/// Probes until `ok` holds for a probe result, or the limit passes.
async fn until<F>(
    limit: Duration,
    mut probe: impl AsyncFnMut() -> Result<(), Unverified>,
    ok: F,
) -> Result<(), Unverified>
where
    F: Fn(&Result<(), Unverified>) -> bool,
{
    let started = Instant::now();
    loop {
        let result = probe().await;
        if ok(&result) {
            return Ok(());
        }
        if started.elapsed() > limit {
            return Err(match result {
                Ok(()) => Unverified::StillSucceeds,
                Err(error) => error,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One query on `url`.
async fn query(url: &str, limit: Duration) -> Result<(), Unverified> {
    timed_query(url, limit).await.map(drop)
}

/// Runs one query on `url`; how long the query took on the open connection.
async fn timed_query(url: &str, limit: Duration) -> Result<Duration, Unverified> {
    Ok(crate::stack::query_time(url, limit).await?)
}

/// The process `process` of the `service` architecture `architecture`.
fn program_of<'a>(
    stack: &'a mut LabStack,
    architecture: &str,
    process: &str,
) -> Result<&'a mut Program, StackError> {
    stack
        .services
        .iter_mut()
        .find(|s| s.name == architecture)
        .and_then(|s| s.process_mut(process))
        .ok_or_else(|| StackError::Failed {
            what: format!("{architecture}/{process}"),
            detail: "no such process".into(),
        })
}

/// Whether a program runs and passes its readiness probe.
async fn probe(program: &mut Program) -> Result<(), Unverified> {
    program
        .probe()
        .await
        .map_err(|why| ProbeError::Failed(why).into())
}

/// Whether a service answers 200 on `/healthz`.
async fn healthy(addr: std::net::SocketAddr) -> Result<(), Unverified> {
    match faultline_stack::services::get(addr, "/healthz", Duration::from_secs(2)).await {
        Ok((200, _)) => Ok(()),
        Ok((status, _)) => Err(ProbeError::Failed(format!("/healthz answered {status}")).into()),
        Err(error) => Err(error.into()),
    }
}

/// Every Kafka architecture's producer delivers a probe record through its
/// own client (`POST /probe`): a broker that answers metadata again is not
/// yet a path that works (a producer the broker forgot delivers nothing).
async fn producers_deliver(stack: &LabStack) -> Result<(), Unverified> {
    for kafka in &stack.kafka {
        match faultline_stack::services::post(kafka.producer.addr(), "/probe", PROBE_TIMEOUT).await
        {
            Ok((200, _)) => {}
            Ok((status, body)) => {
                return Err(ProbeError::Failed(format!(
                    "the producer of {} answered its probe with {status}: {body}",
                    kafka.topic
                ))
                .into());
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

async fn verify_effect(stack: &mut LabStack, kind: &FaultKind) -> Result<(), Unverified> {
    let direct = stack.database.url();
    let linked = stack.service_database_url();
    match kind {
        FaultKind::DbCrash | FaultKind::DbStop => {
            until(
                EFFECT_LIMIT,
                async || query(&direct, PROBE_TIMEOUT).await,
                Result::is_err,
            )
            .await
        }
        FaultKind::DbFreeze => {
            until(
                EFFECT_LIMIT,
                async || query(&direct, PROBE_TIMEOUT).await,
                |r| matches!(r, Err(Unverified::Probe(ProbeError::NoAnswer(_)))),
            )
            .await
        }
        FaultKind::DbBlackhole => {
            until(
                EFFECT_LIMIT,
                async || query(&linked, PROBE_TIMEOUT).await,
                Result::is_err,
            )
            .await
        }
        FaultKind::DbLatency { delay, .. } => {
            let delay = delay.0;
            until(
                EFFECT_LIMIT,
                // Connecting and authenticating (scram) take several round
                // trips through the slow link before the timed query.
                async || match timed_query(&linked, delay * 12 + PROBE_TIMEOUT).await? {
                    took if took >= delay => Ok(()),
                    took => Err(Unverified::TooFast(took)),
                },
                Result::is_ok,
            )
            .await
        }
        FaultKind::BrokerKill => {
            let broker = stack.broker.as_ref().ok_or(Unverified::Missing("broker"))?;
            until(
                EFFECT_LIMIT,
                async || Ok(broker.probe_direct(Duration::from_millis(500)).await?),
                Result::is_err,
            )
            .await
        }
        FaultKind::BrokerBlackhole => {
            let broker = stack.broker.as_ref().ok_or(Unverified::Missing("broker"))?;
            until(
                EFFECT_LIMIT,
                async || Ok(broker.probe(Duration::from_millis(500)).await?),
                Result::is_err,
            )
            .await
        }
        FaultKind::BrokerLatency { delay, .. } => {
            let broker = stack.broker.as_ref().ok_or(Unverified::Missing("broker"))?;
            let delay = delay.0;
            until(
                EFFECT_LIMIT,
                async || {
                    let started = Instant::now();
                    broker.probe(delay * 12 + PROBE_TIMEOUT).await?;
                    match started.elapsed() {
                        took if took >= delay => Ok(()),
                        took => Err(Unverified::TooFast(took)),
                    }
                },
                Result::is_ok,
            )
            .await
        }
        FaultKind::ConsumerPartition => {
            let broker = stack.broker.as_ref().ok_or(Unverified::Missing("broker"))?;
            until(
                EFFECT_LIMIT,
                async || {
                    // The consumers are cut off; the producers are not.
                    let consumers = broker.probe_as(consumer::SERVICE, Duration::from_millis(500));
                    if consumers.await.is_ok() {
                        return Err(Unverified::StillSucceeds);
                    }
                    producers_deliver(stack).await
                },
                Result::is_ok,
            )
            .await
        }
        FaultKind::ConsumerKill => {
            for kafka in &stack.kafka {
                let addr = kafka.consumer.addr();
                until(EFFECT_LIMIT, async || healthy(addr).await, Result::is_err).await?;
            }
            Ok(())
        }
        FaultKind::ProcessKill {
            architecture,
            process,
        } => {
            let program = program_of(stack, architecture, process)
                .map_err(|_| Unverified::Missing("process"))?;
            until(EFFECT_LIMIT, async || probe(program).await, Result::is_err).await
        }
        FaultKind::Command(command) => {
            let limit = EFFECT_LIMIT.max(command.timeout.0);
            match &command.verify {
                Some(verify) => {
                    until(
                        limit,
                        async || verified(verify, command, stack).await,
                        Result::is_err,
                    )
                    .await
                }
                None => Ok(()),
            }
        }
    }
}

async fn verify_recovery(stack: &mut LabStack, kind: &FaultKind) -> Result<(), Unverified> {
    let direct = stack.database.url();
    let linked = stack.service_database_url();
    match kind {
        FaultKind::DbCrash | FaultKind::DbStop | FaultKind::DbFreeze => {
            until(
                RECOVERY_LIMIT,
                async || query(&direct, PROBE_TIMEOUT).await,
                Result::is_ok,
            )
            .await
        }
        FaultKind::DbLatency { delay, .. } => {
            let delay = delay.0;
            until(
                RECOVERY_LIMIT,
                async || match timed_query(&linked, PROBE_TIMEOUT).await? {
                    took if took < delay => Ok(()),
                    took => Err(Unverified::StillSlow(took)),
                },
                Result::is_ok,
            )
            .await
        }
        FaultKind::DbBlackhole => {
            until(
                RECOVERY_LIMIT,
                async || query(&linked, PROBE_TIMEOUT).await,
                Result::is_ok,
            )
            .await
        }
        FaultKind::BrokerKill => {
            let broker = stack.broker.as_ref().ok_or(Unverified::Missing("broker"))?;
            until(
                RECOVERY_LIMIT,
                async || {
                    broker.probe_direct(Duration::from_secs(1)).await?;
                    producers_deliver(stack).await
                },
                Result::is_ok,
            )
            .await
        }
        FaultKind::BrokerBlackhole => {
            let broker = stack.broker.as_ref().ok_or(Unverified::Missing("broker"))?;
            until(
                RECOVERY_LIMIT,
                async || {
                    broker.probe(Duration::from_secs(1)).await?;
                    producers_deliver(stack).await
                },
                Result::is_ok,
            )
            .await
        }
        FaultKind::BrokerLatency { delay, .. } => {
            let broker = stack.broker.as_ref().ok_or(Unverified::Missing("broker"))?;
            let delay = delay.0;
            until(
                RECOVERY_LIMIT,
                async || {
                    let started = Instant::now();
                    broker.probe(PROBE_TIMEOUT).await?;
                    match started.elapsed() {
                        took if took < delay => producers_deliver(stack).await,
                        took => Err(Unverified::StillSlow(took)),
                    }
                },
                Result::is_ok,
            )
            .await
        }
        FaultKind::ConsumerPartition => {
            let broker = stack.broker.as_ref().ok_or(Unverified::Missing("broker"))?;
            until(
                RECOVERY_LIMIT,
                async || {
                    Ok(broker
                        .probe_as(consumer::SERVICE, Duration::from_secs(1))
                        .await?)
                },
                Result::is_ok,
            )
            .await
        }
        FaultKind::ConsumerKill => {
            for kafka in &stack.kafka {
                let addr = kafka.consumer.addr();
                until(RECOVERY_LIMIT, async || healthy(addr).await, Result::is_ok).await?;
            }
            Ok(())
        }
        FaultKind::ProcessKill {
            architecture,
            process,
        } => {
            let program = program_of(stack, architecture, process)
                .map_err(|_| Unverified::Missing("process"))?;
            until(RECOVERY_LIMIT, async || probe(program).await, Result::is_ok).await
        }
        FaultKind::Command(command) => match &command.verify {
            Some(verify) => {
                until(
                    RECOVERY_LIMIT,
                    async || verified(verify, command, stack).await,
                    Result::is_ok,
                )
                .await
            }
            None => Ok(()),
        },
    }
}
