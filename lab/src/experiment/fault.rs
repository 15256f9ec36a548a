//! Faults as a scenario writes them: the one list of fault kinds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::*;

/// A fault on the run's clock.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(from = "RawFault", into = "RawFault")]
pub struct Fault {
    /// What breaks.
    pub kind: FaultKind,
    /// When it starts, from the run's start.
    pub at: Span,
    /// How long it lasts.
    pub duration: Span,
}

/// What a fault breaks: the one list of fault kinds, used by the scenario,
/// the plan, the command line (`stack up --fault`) and the fault code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL to every PostgreSQL process; restart with crash recovery.
    DbCrash,
    /// Fast shutdown of PostgreSQL; restart.
    DbStop,
    /// SIGSTOP to every PostgreSQL process; SIGCONT at the end.
    DbFreeze,
    /// Latency (± jitter, seeded from the scenario's seed) on the link
    /// between the services and PostgreSQL: every chunk, each way, leaves
    /// the fault proxy that long after it arrived, order kept (Toxiproxy's
    /// semantics), so a round trip costs twice the delay and a large result
    /// the delay plus its transfer.
    DbLatency { delay: Span, jitter: Span },
    /// Traffic between the services and PostgreSQL silently dropped.
    DbBlackhole,
    /// SIGKILL to the broker; restart.
    BrokerKill,
    /// Latency (± jitter, seeded) on the link between every Kafka client
    /// (producers, consumers) and the broker, through the fault proxy the
    /// broker advertises: Toxiproxy's semantics, as `db-latency`.
    BrokerLatency { delay: Span, jitter: Span },
    /// Traffic between every Kafka client and the broker silently dropped.
    BrokerBlackhole,
    /// Traffic between the consumers and the broker silently dropped, the
    /// producers' link untouched (the link proxy knows each connection's
    /// Kafka `client.id`): a network partition of the consumers alone.
    ConsumerPartition,
    /// SIGKILL to the consumers; restart.
    ConsumerKill,
    /// SIGKILL to one process of a `service` architecture (with everything
    /// it started); restart with the same command and port.
    ProcessKill {
        architecture: String,
        process: String,
    },
    /// Shell commands on the run's clock: any chaos tool as a fault.
    Command(CommandFault),
}

/// A fault carried out by shell commands (`sh -c`), with the stack in
/// their environment (`FAULTLINE_DATABASE_URL`, `FAULTLINE_POSTGRES_PID`,
/// `FAULTLINE_POSTGRES_DATA`, `FAULTLINE_BOOTSTRAP_SERVERS`,
/// `FAULTLINE_STACK_DIR`, where every service's pid file is); each is
/// killed, with everything it started, past `timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommandFault {
    /// Starts the fault.
    pub start: String,
    /// Ends it; run at the fault's end, and at cleanup whatever happened
    /// (Ctrl-C included).
    pub end: String,
    /// Succeeds while the system is healthy: the fault is verified when it
    /// fails after `start`, and over when it succeeds again after `end`.
    /// Without it, only the commands' exit statuses are checked.
    pub verify: Option<String>,
    /// The longest any one command may run.
    pub timeout: Span,
}

impl FaultKind {
    /// Every kind (settings at their defaults).
    pub const ALL: [FaultKind; 12] = [
        FaultKind::DbCrash,
        FaultKind::DbStop,
        FaultKind::DbFreeze,
        FaultKind::DbLatency {
            delay: Span::millis(100),
            jitter: Span::millis(0),
        },
        FaultKind::DbBlackhole,
        FaultKind::BrokerKill,
        FaultKind::BrokerLatency {
            delay: Span::millis(100),
            jitter: Span::millis(0),
        },
        FaultKind::BrokerBlackhole,
        FaultKind::ConsumerPartition,
        FaultKind::ConsumerKill,
        FaultKind::ProcessKill {
            architecture: String::new(),
            process: String::new(),
        },
        FaultKind::Command(CommandFault {
            start: String::new(),
            end: String::new(),
            verify: None,
            timeout: Span::secs(30),
        }),
    ];

    /// The kind's name, as written in a scenario.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::DbCrash => "db-crash",
            FaultKind::DbStop => "db-stop",
            FaultKind::DbFreeze => "db-freeze",
            FaultKind::DbLatency { .. } => "db-latency",
            FaultKind::DbBlackhole => "db-blackhole",
            FaultKind::BrokerKill => "broker-kill",
            FaultKind::BrokerLatency { .. } => "broker-latency",
            FaultKind::BrokerBlackhole => "broker-blackhole",
            FaultKind::ConsumerPartition => "consumer-partition",
            FaultKind::ConsumerKill => "consumer-kill",
            FaultKind::ProcessKill { .. } => "process-kill",
            FaultKind::Command(_) => "command",
        }
    }

    /// Every kind's name.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Self::ALL.map(|kind| kind.name()).into_iter()
    }

    /// What it acts on, as recorded in `faults.parquet`.
    pub fn target(&self) -> &'static str {
        match self {
            FaultKind::DbCrash | FaultKind::DbStop | FaultKind::DbFreeze => "postgres",
            FaultKind::DbLatency { .. } | FaultKind::DbBlackhole => "postgres-link",
            FaultKind::BrokerKill => "broker",
            FaultKind::BrokerLatency { .. } | FaultKind::BrokerBlackhole => "broker-link",
            FaultKind::ConsumerPartition => "consumer-link",
            FaultKind::ConsumerKill => "consumers",
            FaultKind::ProcessKill { .. } => "process",
            FaultKind::Command(_) => "command",
        }
    }

    /// Whether it needs the database's process (not only its link).
    pub fn needs_local_database(&self) -> bool {
        matches!(
            self,
            FaultKind::DbCrash | FaultKind::DbStop | FaultKind::DbFreeze
        )
    }
}

/// A fault as written: its kind, its time, and the kind's own settings.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RawFault {
    /// SIGKILL to every PostgreSQL process; restart with crash recovery.
    DbCrash {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
    },
    /// Fast shutdown of PostgreSQL; restart.
    DbStop {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
    },
    /// SIGSTOP to every PostgreSQL process; SIGCONT at the end.
    DbFreeze {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
    },
    /// Delay on the link to PostgreSQL.
    DbLatency {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
        /// Each chunk, each way, leaves this long after it arrived, e.g. "200ms".
        delay: Span,
        /// Random spread around the delay, e.g. "50ms".
        #[serde(default)]
        jitter: Span,
    },
    /// Traffic to PostgreSQL silently dropped.
    DbBlackhole {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
    },
    /// SIGKILL to the broker; restart.
    BrokerKill {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
    },
    /// Delay on the link between every Kafka client and the broker.
    BrokerLatency {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
        /// Each chunk, each way, leaves this long after it arrived, e.g. "200ms".
        delay: Span,
        /// Random spread around the delay, e.g. "50ms".
        #[serde(default)]
        jitter: Span,
    },
    /// Traffic between every Kafka client and the broker silently dropped.
    BrokerBlackhole {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
    },
    /// Traffic between the consumers and the broker silently dropped; the
    /// producers still reach it.
    ConsumerPartition {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
    },
    /// SIGKILL to the consumers; restart.
    ConsumerKill {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
    },
    /// SIGKILL to one process of a `service` architecture; restart.
    ProcessKill {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
        /// The `service` architecture, e.g. "orders-api".
        architecture: String,
        /// Its process, e.g. "api".
        process: String,
    },
    /// Shell commands (`sh -c`) that start and end the fault: any chaos
    /// tool as a fault. The stack is in their environment:
    /// FAULTLINE_DATABASE_URL, FAULTLINE_POSTGRES_PID, FAULTLINE_POSTGRES_DATA,
    /// FAULTLINE_BOOTSTRAP_SERVERS, FAULTLINE_STACK_DIR (the services' pid
    /// files are in services/NAME/). Their output is kept in faults.parquet.
    Command {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
        /// Starts the fault, e.g. "kubectl apply -f delay.yaml".
        start: String,
        /// Ends it, at the fault's end and at cleanup whatever happened
        /// (Ctrl-C included), e.g. "kubectl delete -f delay.yaml".
        end: String,
        /// Succeeds while the system is healthy: the fault is verified when
        /// it fails after `start` and over when it succeeds again after
        /// `end`, e.g. "pg_isready -h db -t 1".
        #[serde(default)]
        verify: Option<String>,
        /// The longest any one command may run, e.g. "30s".
        #[serde(default = "defaults::command_timeout")]
        timeout: Span,
    },
}

impl From<RawFault> for Fault {
    fn from(raw: RawFault) -> Self {
        let (kind, at, duration) = match raw {
            RawFault::DbCrash { at, duration } => (FaultKind::DbCrash, at, duration),
            RawFault::DbStop { at, duration } => (FaultKind::DbStop, at, duration),
            RawFault::DbFreeze { at, duration } => (FaultKind::DbFreeze, at, duration),
            RawFault::DbLatency {
                at,
                duration,
                delay,
                jitter,
            } => (FaultKind::DbLatency { delay, jitter }, at, duration),
            RawFault::DbBlackhole { at, duration } => (FaultKind::DbBlackhole, at, duration),
            RawFault::BrokerKill { at, duration } => (FaultKind::BrokerKill, at, duration),
            RawFault::BrokerLatency {
                at,
                duration,
                delay,
                jitter,
            } => (FaultKind::BrokerLatency { delay, jitter }, at, duration),
            RawFault::BrokerBlackhole { at, duration } => {
                (FaultKind::BrokerBlackhole, at, duration)
            }
            RawFault::ConsumerPartition { at, duration } => {
                (FaultKind::ConsumerPartition, at, duration)
            }
            RawFault::ConsumerKill { at, duration } => (FaultKind::ConsumerKill, at, duration),
            RawFault::ProcessKill {
                at,
                duration,
                architecture,
                process,
            } => (
                FaultKind::ProcessKill {
                    architecture,
                    process,
                },
                at,
                duration,
            ),
            RawFault::Command {
                at,
                duration,
                start,
                end,
                verify,
                timeout,
            } => (
                FaultKind::Command(CommandFault {
                    start,
                    end,
                    verify,
                    timeout,
                }),
                at,
                duration,
            ),
        };
        Self { kind, at, duration }
    }
}

impl From<Fault> for RawFault {
    fn from(fault: Fault) -> Self {
        let (at, duration) = (fault.at, fault.duration);
        match fault.kind {
            FaultKind::DbCrash => RawFault::DbCrash { at, duration },
            FaultKind::DbStop => RawFault::DbStop { at, duration },
            FaultKind::DbFreeze => RawFault::DbFreeze { at, duration },
            FaultKind::DbLatency { delay, jitter } => RawFault::DbLatency {
                at,
                duration,
                delay,
                jitter,
            },
            FaultKind::DbBlackhole => RawFault::DbBlackhole { at, duration },
            FaultKind::BrokerKill => RawFault::BrokerKill { at, duration },
            FaultKind::BrokerLatency { delay, jitter } => RawFault::BrokerLatency {
                at,
                duration,
                delay,
                jitter,
            },
            FaultKind::BrokerBlackhole => RawFault::BrokerBlackhole { at, duration },
            FaultKind::ConsumerPartition => RawFault::ConsumerPartition { at, duration },
            FaultKind::ConsumerKill => RawFault::ConsumerKill { at, duration },
            FaultKind::ProcessKill {
                architecture,
                process,
            } => RawFault::ProcessKill {
                at,
                duration,
                architecture,
                process,
            },
            FaultKind::Command(CommandFault {
                start,
                end,
                verify,
                timeout,
            }) => RawFault::Command {
                at,
                duration,
                start,
                end,
                verify,
                timeout,
            },
        }
    }
}
