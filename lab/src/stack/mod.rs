//! The whole stack of one run: PostgreSQL behind the fault proxy, the broker,
//! and per architecture its services. Dropping it stops everything (a frozen
//! database is thawed first).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faultline_services::consumer::Mode;
use faultline_stack::broker::TopicSettings;
use faultline_stack::{Broker, FaultProxy, Postgres, ProbeError, Service, ServiceKind, StackError};

use crate::collect::{CpuTarget, PidOf, ScrapeTarget};
use crate::experiment::DatabaseChoice;
use crate::plan::{Architecture, DatabaseTarget, StackPlan, mode_name};
use crate::run_folder::rows::Process;
use faultline_services::vars;
use service::Context;

mod service;
pub use service::ServiceParts;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_is_pointed_at_the_proxy() {
        let proxy: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        for (url, expected) in [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:4000/postgres",
            ),
            (
                "postgresql://u:p%40ss@db.example:6543/app?sslmode=disable",
                "postgres://u:p%40ss@127.0.0.1:4000/app?sslmode=disable",
            ),
            ("postgres://db.example/app", "postgres://127.0.0.1:4000/app"),
            ("postgres://u@db.example", "postgres://u@127.0.0.1:4000"),
            // TLS: the host stays, for the certificate's name.
            (
                "postgres://u:p@db.example:6543/app?sslmode=verify-full&hostaddr=10.0.0.7",
                "postgres://u:p@db.example:4000/app?sslmode=verify-full&hostaddr=127.0.0.1",
            ),
            (
                "postgres://db.example?sslmode=require",
                "postgres://db.example:4000?sslmode=require&hostaddr=127.0.0.1",
            ),
        ] {
            assert_eq!(with_address(url, proxy).unwrap(), expected);
        }
        assert!(with_address("mysql://x", proxy).is_err());
    }
}

/// The database of a run.
#[derive(Debug)]
pub enum Database {
    Local(Postgres),
    External { url: String, addr: SocketAddr },
}

impl Database {
    /// The direct URL (not through the fault proxy).
    pub fn url(&self) -> String {
        match self {
            Database::Local(postgres) => postgres.url(),
            Database::External { url, .. } => url.clone(),
        }
    }

    /// The cluster's process, for faults that act on it.
    pub fn local(&mut self) -> Result<&mut Postgres, StackError> {
        match self {
            Database::Local(postgres) => Ok(postgres),
            Database::External { .. } => Err(StackError::External("database")),
        }
    }
}

impl Database {
    /// Starts a local cluster under `dir`, or checks that an external one
    /// answers.
    async fn start(
        target: &DatabaseTarget,
        dir: &Path,
        progress: &impl Fn(&str),
    ) -> Result<Self, StackError> {
        match target.choice {
            DatabaseChoice::Local => {
                let postgres = Postgres::start(&dir.join("postgres")).await?;
                progress(&format!("PostgreSQL ready on port {}", postgres.port()));
                Ok(Database::Local(postgres))
            }
            DatabaseChoice::External => {
                let url = target
                    .url
                    .as_deref()
                    .ok_or(StackError::NoAddress("database's URL"))?;
                let addr = address_of(url)?;
                query_time(url, Duration::from_secs(5))
                    .await
                    .map_err(|error| StackError::NotReady {
                        what: "the external database".into(),
                        waited: Duration::from_secs(5),
                        detail: error.to_string(),
                    })?;
                progress(&format!("external PostgreSQL answers at {addr}"));
                Ok(Database::External {
                    url: url.to_string(),
                    addr,
                })
            }
        }
    }
}

/// Connects to the database at `url` (over TLS if it asks for it) and times
/// one query on the open connection.
pub async fn query_time(url: &str, timeout: Duration) -> Result<Duration, ProbeError> {
    let target = faultline_services::tls::Target::parse(url)
        .map_err(|error| ProbeError::Failed(error.to_string()))?;
    faultline_stack::postgres::query_time_with(target.config, target.tls, timeout).await
}

/// Points a `postgres://` URL at `addr` (the fault proxy). A URL that asks
/// for TLS keeps its host, the name the server's certificate is checked
/// against, and reaches `addr` by `hostaddr`; another gets `addr` as its
/// host and port.
pub fn with_address(url: &str, addr: SocketAddr) -> Result<String, StackError> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or_else(|| StackError::BadUrl {
            url: url.to_string(),
            detail: "it does not start with postgres://".into(),
        })?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    if !faultline_services::tls::wants_tls(url) {
        return Ok(format!("postgres://{user}{addr}{tail}"));
    }
    let host = match host.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let mut query: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("hostaddr="))
        .collect();
    let hostaddr = format!("hostaddr={}", addr.ip());
    query.push(&hostaddr);
    Ok(format!(
        "postgres://{user}{host}:{}{path}?{}",
        addr.port(),
        query.join("&")
    ))
}

/// The address a `postgres://` URL connects to: its first `hostaddr`, or
/// its first host resolved; its first port.
fn address_of(url: &str) -> Result<SocketAddr, StackError> {
    let bad = |detail: String| StackError::BadUrl {
        url: url.to_string(),
        detail,
    };
    let (plain, _, _) = faultline_services::tls::split_tls_parameters(url);
    let config: tokio_postgres::Config = plain.parse().map_err(|e| bad(format!("{e}")))?;
    let port = config.get_ports().first().copied().unwrap_or(5432);
    if let Some(ip) = config.get_hostaddrs().first() {
        return Ok(SocketAddr::new(*ip, port));
    }
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => return Err(bad("it names no TCP host".into())),
    };
    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .map_err(|e| bad(format!("{host}:{port}: {e}")))?
        .next()
        .ok_or_else(|| bad(format!("{host}:{port} resolves to nothing")))
}

/// A running REST architecture.
#[derive(Debug)]
pub struct RestParts {
    pub name: String,
    pub service: Service,
}

/// A running Kafka architecture.
#[derive(Debug)]
pub struct KafkaParts {
    pub name: String,
    pub mode: Mode,
    pub topic: String,
    /// The consumer's group, under which it stores its position.
    pub group: String,
    pub producer: Service,
    pub consumer: Service,
}

/// Creates the one-partition topic the producer of `topic` delivers its
/// probes to (`POST /probe`), replicated as `topics` says.
pub async fn create_probe_topic(
    broker: &Broker,
    topic: &str,
    topics: TopicSettings,
) -> Result<(), StackError> {
    let settings = TopicSettings {
        partitions: 1,
        ..topics
    };
    broker
        .create_topic_with(&faultline_services::producer::probe_topic(topic), settings)
        .await
}

impl KafkaParts {
    /// Creates the architecture's topic and starts its producer and its
    /// consumer (whose database URL is `database_url`), logs under `dir`.
    /// The topic and the consumer group are this stack's own (`run` names
    /// it): on a broker that outlives the stack (an external cluster), a
    /// run never reads an earlier run's events.
    async fn start(
        broker: &Broker,
        topics: TopicSettings,
        (name, mode, run): (&str, Mode, &str),
        (producer_args, consumer_args): (&[String], &[String]),
        database_url: &str,
        dir: &Path,
    ) -> Result<Self, StackError> {
        let topic = format!("driver-locations-{name}-{run}");
        let group = format!("location-group-{name}-{run}");
        broker.create_topic_with(&topic, topics).await?;
        create_probe_topic(broker, &topic, topics).await?;
        let common = vec![
            "--bootstrap-servers".to_string(),
            broker.bootstrap(),
            "--topic".to_string(),
            topic.clone(),
        ];
        let mut args = common.clone();
        args.extend(producer_args.iter().cloned());
        // In the environment, where `ps` does not show them.
        let properties: Vec<(String, String)> = if broker.properties().is_empty() {
            Vec::new()
        } else {
            vec![(
                vars::KAFKA_PROPERTIES.to_string(),
                broker
                    .properties()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )]
        };
        let producer = Service::start(ServiceKind::Producer, args, properties.clone(), dir).await?;
        let mut args = common;
        args.extend([
            "--mode".to_string(),
            mode_name(mode),
            "--group".to_string(),
            group.clone(),
        ]);
        args.extend(consumer_args.iter().cloned());
        let mut env = database_env(database_url);
        env.extend(properties);
        let consumer = Service::start(ServiceKind::Consumer, args, env, dir).await?;
        Ok(Self {
            name: name.to_string(),
            mode,
            topic,
            group,
            producer,
            consumer,
        })
    }
}

/// What names this stack's topics and consumer groups: its folder's name
/// (the run, the runner's pid and the repetition), in the characters a
/// Kafka topic name allows.
fn run_tag(dir: &Path) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tag: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // Topic names are at most 249 characters; the architecture's name and
    // the prefix take some.
    tag.chars()
        .rev()
        .take(120)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

/// The database URL handed to a service in its environment, where `ps`
/// does not show it (a password in it stays out of sight).
fn database_env(url: &str) -> Vec<(String, String)> {
    vec![(vars::DATABASE_URL.to_string(), url.to_string())]
}

/// The running stack. Fields drop in order: services first, then the
/// broker, the proxy and the database.
#[derive(Debug)]
pub struct LabStack {
    pub rest: Vec<RestParts>,
    pub kafka: Vec<KafkaParts>,
    /// The `service` architectures: the user's own processes.
    pub services: Vec<ServiceParts>,
    pub broker: Option<Broker>,
    pub proxy: FaultProxy,
    pub database: Database,
    pub dir: PathBuf,
    /// How each architecture's topic was created.
    pub topics: TopicSettings,
    /// How long bringing it up took.
    pub startup: Duration,
}

impl LabStack {
    /// The services whose metrics are scraped, in the order of the
    /// architectures `order`: each built-in service's `/metrics`, each
    /// `service` process that declares metrics.
    pub fn scrape_targets(&self, order: &[String]) -> Vec<ScrapeTarget> {
        let target = ScrapeTarget::built_in;
        let mut scrape = Vec::new();
        for name in order {
            if let Some(rest) = self.rest.iter().find(|r| &r.name == name) {
                scrape.push(target(name, "rest", rest.service.addr()));
            } else if let Some(kafka) = self.kafka.iter().find(|k| &k.name == name) {
                scrape.push(target(name, "producer", kafka.producer.addr()));
                scrape.push(target(name, "consumer", kafka.consumer.addr()));
            } else if let Some(parts) = self.services.iter().find(|s| &s.name == name) {
                scrape.extend(parts.scrape_targets());
            }
        }
        scrape
    }

    /// Every service whose process ended by itself, said as a reason a run
    /// is incomplete: what it measured after that is a dead service's.
    pub fn services_that_died(&mut self) -> Vec<String> {
        let mut died = Vec::new();
        let mut check = |service: &mut Service, role: &str, name: &str| {
            if let Some(status) = service.exited() {
                died.push(format!(
                    "the {role} of {name} ended by itself during the run ({status})"
                ));
            }
        };
        for rest in &mut self.rest {
            check(&mut rest.service, "service", &rest.name);
        }
        for kafka in &mut self.kafka {
            check(&mut kafka.producer, "producer", &kafka.name);
            check(&mut kafka.consumer, "consumer", &kafka.name);
        }
        for parts in &mut self.services {
            for (process, program) in &mut parts.processes {
                if let Some(status) = program.exited() {
                    died.push(format!(
                        "the process {process} of {} ended by itself during the run ({status})",
                        parts.name
                    ));
                }
            }
        }
        died
    }

    /// Brings up everything `plan` asks for under `dir`, reporting progress
    /// through `progress`.
    pub async fn up(
        plan: &StackPlan,
        dir: &Path,
        progress: impl Fn(&str),
    ) -> Result<Self, StackError> {
        let started = Instant::now();
        faultline_stack::create_dir(dir)?;
        crate::clean::mark_owned(dir).map_err(|source| StackError::Io {
            path: dir.join(crate::clean::RUNNER_PID),
            source,
        })?;
        let database = Database::start(&plan.database, dir, &progress).await?;
        let upstream = match &database {
            Database::Local(postgres) => SocketAddr::from(([127, 0, 0, 1], postgres.port())),
            Database::External { addr, .. } => *addr,
        };
        let proxy = FaultProxy::start(upstream).await?;
        let via_proxy = with_address(&database.url(), proxy.addr())?;
        let needs_broker = plan.architectures.iter().any(Architecture::needs_broker);
        let broker = if needs_broker {
            let broker = Broker::start(&dir.join("broker"), &plan.broker).await?;
            progress(&format!(
                "broker ready: {} ({}, {})",
                broker.bootstrap(),
                broker.version(),
                broker.storage()
            ));
            Some(broker)
        } else {
            None
        };
        let run = run_tag(dir);
        let mut rest = Vec::new();
        let mut kafka = Vec::new();
        let mut services = Vec::new();
        let direct_url = database.url();
        for architecture in &plan.architectures {
            let services_dir = dir.join("services").join(architecture.name());
            match architecture {
                Architecture::Rest { name, args } => {
                    let service = Service::start(
                        ServiceKind::Rest,
                        args.clone(),
                        database_env(&via_proxy),
                        &services_dir,
                    )
                    .await?;
                    progress(&format!("{name}: REST at {}", service.url("")));
                    rest.push(RestParts {
                        name: name.clone(),
                        service,
                    });
                }
                Architecture::Kafka {
                    name,
                    mode,
                    producer_args,
                    consumer_args,
                } => {
                    let broker = broker.as_ref().expect("a broker was started");
                    let parts = KafkaParts::start(
                        broker,
                        plan.topics(),
                        (name, *mode, &run),
                        (producer_args, consumer_args),
                        &via_proxy,
                        &services_dir,
                    )
                    .await?;
                    progress(&format!(
                        "{name}: producer at {}, consumer ({}) at {}",
                        parts.producer.url(""),
                        mode_name(*mode),
                        parts.consumer.url("")
                    ));
                    kafka.push(parts);
                }
                Architecture::Service(service) => {
                    let context = Context {
                        database_url: &via_proxy,
                        proxy: proxy.addr(),
                        direct_url: &direct_url,
                        broker: broker.as_ref(),
                        topics: plan.topics(),
                        run: &run,
                    };
                    let parts =
                        ServiceParts::start(service, &context, &services_dir, &progress).await?;
                    progress(&format!(
                        "{}: requests go to {}",
                        parts.name,
                        parts.target().url(&parts.plan.request.path)
                    ));
                    services.push(parts);
                }
            }
        }
        Ok(Self {
            rest,
            kafka,
            services,
            broker,
            proxy,
            database,
            dir: dir.to_path_buf(),
            topics: plan.topics(),
            startup: started.elapsed(),
        })
    }

    /// The database URL through the fault proxy, as the services use it.
    pub fn service_database_url(&self) -> String {
        with_address(&self.database.url(), self.proxy.addr())
            .expect("the URL was checked when the stack came up")
    }

    /// Every URL and connection string, as `NAME=value` pairs.
    pub fn variables(&self) -> Vec<(String, String)> {
        let mut set = vec![
            (vars::DATABASE_URL.to_string(), self.database.url()),
            (
                "FAULTLINE_SERVICES_DATABASE_URL".to_string(),
                self.service_database_url(),
            ),
        ];
        if let Some(broker) = &self.broker {
            set.push((vars::BOOTSTRAP_SERVERS.into(), broker.bootstrap()));
        }
        let key = |name: &str| name.to_uppercase().replace('-', "_");
        for rest in &self.rest {
            set.push((
                format!("FAULTLINE_{}_URL", key(&rest.name)),
                rest.service.url(""),
            ));
        }
        for kafka in &self.kafka {
            set.push((
                format!("FAULTLINE_{}_PRODUCER_URL", key(&kafka.name)),
                kafka.producer.url(""),
            ));
            set.push((
                format!("FAULTLINE_{}_CONSUMER_URL", key(&kafka.name)),
                kafka.consumer.url(""),
            ));
        }
        for parts in &self.services {
            for (process, program) in &parts.processes {
                set.push((
                    format!("FAULTLINE_{}_{}_URL", key(&parts.name), key(process)),
                    program.url(""),
                ));
            }
        }
        set
    }

    /// The processes whose CPU time the lab samples: every service, the
    /// local PostgreSQL (with its backends) and broker, and the runner.
    pub fn cpu_targets(&mut self) -> Vec<CpuTarget> {
        let target = |architecture: &str, process: Process, pid, children| CpuTarget {
            architecture: architecture.to_string(),
            process: process.name().to_string(),
            pid,
            children,
        };
        let mut targets = Vec::new();
        for rest in &self.rest {
            targets.push(target(
                &rest.name,
                Process::Rest,
                PidOf::File(rest.service.pid_file()),
                false,
            ));
        }
        for kafka in &self.kafka {
            targets.push(target(
                &kafka.name,
                Process::Producer,
                PidOf::File(kafka.producer.pid_file()),
                false,
            ));
            targets.push(target(
                &kafka.name,
                Process::Consumer,
                PidOf::File(kafka.consumer.pid_file()),
                false,
            ));
        }
        for parts in &self.services {
            for (process, program) in &parts.processes {
                targets.push(CpuTarget {
                    architecture: parts.name.clone(),
                    process: process.clone(),
                    pid: PidOf::File(program.pid_file()),
                    children: true,
                });
            }
        }
        if let Ok(postgres) = self.database.local() {
            targets.push(target(
                "",
                Process::Postgresql,
                PidOf::File(postgres.pid_file()),
                true,
            ));
        }
        if let Some(broker) = self.broker.as_ref().filter(|b| b.pid().is_some()) {
            targets.push(target(
                "",
                Process::Broker,
                PidOf::File(broker.pid_file()),
                false,
            ));
        }
        targets.push(target("", Process::Proxy, PidOf::Proxies, false));
        targets.push(target("", Process::Driver, PidOf::Driver, false));
        targets.push(target("", Process::Lab, PidOf::Runner, false));
        targets
    }

    /// Every process the stack started, by name.
    pub fn pids(&mut self) -> Vec<(String, u32)> {
        let mut pids = Vec::new();
        if let Some(pid) = self.database.local().ok().and_then(|p| p.pid()) {
            pids.push(("postgres".into(), pid));
        }
        if let Some(pid) = self.broker.as_ref().and_then(Broker::pid) {
            pids.push(("broker".into(), pid));
        }
        for rest in &self.rest {
            pids.extend(rest.service.pid().map(|p| (rest.name.clone(), p)));
        }
        for kafka in &self.kafka {
            pids.extend(
                kafka
                    .producer
                    .pid()
                    .map(|p| (format!("{}-producer", kafka.name), p)),
            );
            pids.extend(
                kafka
                    .consumer
                    .pid()
                    .map(|p| (format!("{}-consumer", kafka.name), p)),
            );
        }
        for parts in &self.services {
            for (_, program) in &parts.processes {
                pids.extend(program.pid().map(|p| (program.name().to_string(), p)));
            }
        }
        pids
    }
}

impl LabStack {
    /// Stops everything, blocking: the services first (each given
    /// [`SERVICE_GRACE`], or [`HURRIED_GRACE`] once `hurry` says so), then
    /// the broker, the proxy and the database. Call it off the async
    /// workers. Returns how long it took.
    pub fn down(mut self, hurry: &dyn Fn() -> bool) -> Duration {
        let started = Instant::now();
        self.thaw();
        let grace = || {
            if hurry() {
                HURRIED_GRACE
            } else {
                SERVICE_GRACE
            }
        };
        for rest in &mut self.rest {
            rest.service.stop(grace());
        }
        for kafka in &mut self.kafka {
            kafka.producer.stop(grace());
            kafka.consumer.stop(grace());
        }
        for parts in &mut self.services {
            // The load's target last: a worker stops before its source.
            for (_, program) in parts.processes.iter_mut().rev() {
                program.stop(grace());
            }
        }
        drop(self);
        started.elapsed()
    }

    /// A frozen database would make every service's shutdown wait on it.
    fn thaw(&mut self) {
        if let Ok(postgres) = self.database.local()
            && postgres.is_frozen()
        {
            let _ = postgres.thaw();
        }
    }
}

/// How long a service may take to stop on SIGTERM before it is killed.
pub const SERVICE_GRACE: Duration = Duration::from_secs(10);
/// The same after a second Ctrl-C.
pub const HURRIED_GRACE: Duration = Duration::from_millis(200);

impl Drop for LabStack {
    fn drop(&mut self) {
        self.thaw();
        let _ = std::fs::remove_file(self.dir.join(crate::clean::RUNNER_PID));
    }
}
