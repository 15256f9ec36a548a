//! A Kafka-protocol broker on a free loopback port, or an external cluster.
//!
//! - **Apache Kafka** in KRaft mode when its scripts are on PATH (as under
//!   Nix): storage formatted per run, a generated `server.properties`, its own
//!   `LOG_DIR`. Durable: acknowledged messages survive a kill.
//! - **nisshi / tansu** (one broker line under two names) with memory
//!   storage: it forgets everything when killed, which a report must state.
//!   Found through `FAULTLINE_BROKER_BIN`, then PATH, then the set-up
//!   script's cache. Its memory storage lists every batch a partition holds
//!   on each fetch that finds records, so its cost grows with the log.
//! - **nisshi-sqlite**: the same broker with its log in a SQLite file in its
//!   folder (write-ahead log): durable across a broker kill, and a fetch
//!   reads by index, so its cost does not grow with the log. Needs a build
//!   with SQLite storage (`scripts/setup --broker-sqlite`).
//! - **external**: bootstrap servers given by the scenario; nothing to start
//!   or kill.
//!
//! A broker the lab starts listens on one port and advertises another, the
//! port of a fault proxy in front of it: every client (the services' and
//! the lab's) reaches it through that proxy, so the link can be slowed or
//! cut (`broker-latency`, `broker-blackhole`) like the database's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::process::Managed;
use crate::{FaultProxy, ProbeError, StackError};

/// Which broker implementation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// Apache Kafka in KRaft mode.
    Kafka,
    /// nisshi, the renamed tansu broker, with memory storage.
    Nisshi,
    /// tansu (the same broker line under its earlier name), memory storage.
    Tansu,
    /// A cluster the lab does not own.
    External,
}

impl BrokerKind {
    pub fn name(self) -> &'static str {
        match self {
            BrokerKind::Kafka => "kafka",
            BrokerKind::Nisshi => "nisshi",
            BrokerKind::Tansu => "tansu",
            BrokerKind::External => "external",
        }
    }

    /// Whether acknowledged messages survive a broker kill.
    pub fn durable(self) -> bool {
        matches!(self, BrokerKind::Kafka | BrokerKind::External)
    }
}

/// Which broker to use: the one list, for the scenario format, the command
/// line and the stack.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum BrokerChoice {
    /// Apache Kafka if its scripts are on PATH, else nisshi/tansu.
    #[default]
    Auto,
    /// Apache Kafka in KRaft mode.
    Kafka,
    /// nisshi or tansu, whichever is found.
    Nisshi,
    /// nisshi with its log in a SQLite file: durable, and a cost that does
    /// not grow with the log.
    #[serde(rename = "nisshi-sqlite")]
    NisshiSqlite,
    /// A cluster the lab does not own, at its bootstrap servers.
    External,
}

/// A broker to bring up or reach: which, and where an external one is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BrokerTarget {
    pub choice: BrokerChoice,
    /// Bootstrap servers of an external cluster.
    pub bootstrap_servers: Option<String>,
    /// librdkafka properties for every client of the cluster (TLS, SASL):
    /// the lab's own admin and probe clients as well as the services'.
    pub properties: Vec<(String, String)>,
}

/// How a topic is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSettings {
    pub partitions: i32,
    pub replication_factor: i32,
    /// Set on the topic when more than one.
    pub min_insync_replicas: i32,
}

impl TopicSettings {
    /// `partitions` partitions of one replica: a single local broker.
    pub fn single(partitions: i32) -> Self {
        Self {
            partitions,
            replication_factor: 1,
            min_insync_replicas: 1,
        }
    }
}

/// `auto`, `kafka`, `nisshi`, `nisshi-sqlite` or `external:HOST:PORT`.
impl std::fmt::Display for BrokerTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.choice, &self.bootstrap_servers) {
            (BrokerChoice::Auto, _) => f.write_str("auto"),
            (BrokerChoice::Kafka, _) => f.write_str("kafka"),
            (BrokerChoice::Nisshi, _) => f.write_str("nisshi"),
            (BrokerChoice::NisshiSqlite, _) => f.write_str("nisshi-sqlite"),
            (BrokerChoice::External, servers) => {
                write!(f, "external:{}", servers.as_deref().unwrap_or_default())
            }
        }
    }
}

/// `auto`, `kafka`, `nisshi` (or `tansu`), `nisshi-sqlite`, or
/// `external:HOST:PORT`.
impl std::str::FromStr for BrokerTarget {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let local = |choice| {
            Ok(Self {
                choice,
                bootstrap_servers: None,
                properties: Vec::new(),
            })
        };
        match text {
            "auto" => local(BrokerChoice::Auto),
            "kafka" => local(BrokerChoice::Kafka),
            "nisshi" | "tansu" => local(BrokerChoice::Nisshi),
            "nisshi-sqlite" => local(BrokerChoice::NisshiSqlite),
            other => match other.strip_prefix("external:") {
                Some(servers) if !servers.is_empty() => Ok(Self {
                    choice: BrokerChoice::External,
                    bootstrap_servers: Some(servers.into()),
                    properties: Vec::new(),
                }),
                _ => Err(format!(
                    "unknown broker {other:?}; expected auto, kafka, nisshi, nisshi-sqlite or \
                     external:HOST:PORT"
                )),
            },
        }
    }
}

/// A client configuration for `bootstrap` with `properties` on top.
pub fn client_for(bootstrap: &str, properties: &[(String, String)]) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", bootstrap);
    for (key, value) in properties {
        client.set(key, value);
    }
    client
}

/// The Apache Kafka scripts: `kafka-server-start.sh` and `kafka-storage.sh`.
pub fn find_kafka() -> Option<(PathBuf, PathBuf)> {
    for suffix in [".sh", ""] {
        let start = crate::which(&format!("kafka-server-start{suffix}"));
        let storage = crate::which(&format!("kafka-storage{suffix}"));
        if let (Some(start), Some(storage)) = (start, storage) {
            return Some((start, storage));
        }
    }
    None
}

/// Where the set-up script installs the broker: `$FAULTLINE_CACHE`, else
/// `$XDG_CACHE_HOME/faultline`, else `~/.cache/faultline`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FAULTLINE_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("faultline");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache").join("faultline")
}

/// Finds a broker binary and tells which kind it is.
pub fn find_broker() -> Result<(PathBuf, BrokerKind), StackError> {
    let kind_of = |path: &Path| {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.contains("nisshi") {
            BrokerKind::Nisshi
        } else {
            BrokerKind::Tansu
        }
    };
    if let Some(path) = std::env::var_os("FAULTLINE_BROKER_BIN") {
        let path = PathBuf::from(path);
        if path.is_file() {
            let kind = kind_of(&path);
            return Ok((path, kind));
        }
        return Err(StackError::Missing {
            what: "the broker named by FAULTLINE_BROKER_BIN",
            hint: "point FAULTLINE_BROKER_BIN at a nisshi or tansu binary, or unset it",
        });
    }
    for name in ["nisshi", "tansu"] {
        if let Some(path) = crate::which(name) {
            let kind = kind_of(&path);
            return Ok((path, kind));
        }
    }
    for name in ["nisshi", "tansu"] {
        let path = cache_dir().join("bin").join(name);
        if path.is_file() {
            let kind = kind_of(&path);
            return Ok((path, kind));
        }
    }
    Err(StackError::Missing {
        what: "a Kafka-protocol broker (nisshi or tansu)",
        hint: "run scripts/setup, which installs one, or put nisshi or tansu on PATH",
    })
}

/// The file, in the broker's folder, of a log kept in SQLite.
pub const SQLITE_LOG: &str = "log.db";

/// The file, in the broker's folder, its output goes to.
const LOG_FILE: &str = "broker.log";

/// Whether the nisshi or tansu binary at `bin` was built with SQLite
/// storage (its help lists `libsql` among its storage engines).
fn keeps_sqlite(bin: &Path) -> bool {
    Command::new(bin)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.starts_with("Storage engines:") && l.contains("libsql"))
        })
}

/// Finds a nisshi or tansu binary built with SQLite storage:
/// `FAULTLINE_BROKER_BIN`, then `nisshi-sqlite`, `nisshi` and `tansu` on
/// PATH and in the set-up script's cache.
pub fn find_sqlite_broker() -> Result<PathBuf, StackError> {
    let names = ["nisshi-sqlite", "nisshi", "tansu"];
    std::env::var_os("FAULTLINE_BROKER_BIN")
        .map(PathBuf::from)
        .into_iter()
        .chain(names.iter().filter_map(|name| crate::which(name)))
        .chain(names.iter().map(|name| cache_dir().join("bin").join(name)))
        .find(|path| path.is_file() && keeps_sqlite(path))
        .ok_or(StackError::Missing {
            what: "a nisshi broker built with SQLite storage",
            hint: "run scripts/setup --broker-sqlite, which builds one (about 14 minutes, once), \
                   or choose broker = \"nisshi\"",
        })
}

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    bin: PathBuf,
    kind: BrokerKind,
    /// Its log in [`SQLITE_LOG`], not in memory.
    sqlite: bool,
    dir: PathBuf,
    port: u16,
    /// Apache Kafka's controller port.
    controller_port: u16,
    bootstrap: String,
    process: Option<Managed>,
    /// librdkafka properties of every client the lab opens on it.
    properties: Vec<(String, String)>,
    /// In front of a broker the lab starts: the address it advertises.
    link: Option<FaultProxy>,
}

impl Broker {
    /// The librdkafka properties every client of this broker gets.
    pub fn properties(&self) -> &[(String, String)] {
        &self.properties
    }

    /// A client configuration for this broker: its bootstrap servers and
    /// the target's properties.
    fn client(&self) -> ClientConfig {
        client_for(&self.bootstrap, &self.properties)
    }
    /// Starts the broker `choice` names (`auto`: Apache Kafka if present,
    /// else nisshi/tansu) with its files in `dir`, and waits until it answers
    /// a metadata request.
    pub async fn start(dir: &Path, target: &BrokerTarget) -> Result<Self, StackError> {
        Self::start_at(dir, target, crate::free_port()?).await
    }

    /// [`Broker::start`] trying `port` first: another port if a process
    /// holds that one.
    async fn start_at(dir: &Path, target: &BrokerTarget, port: u16) -> Result<Self, StackError> {
        crate::create_dir(dir)?;
        let (bin, kind) = match target.choice {
            BrokerChoice::External => {
                let bootstrap = target
                    .bootstrap_servers
                    .as_ref()
                    .ok_or(StackError::NoAddress("broker's bootstrap servers"))?;
                let broker = Self {
                    bin: PathBuf::new(),
                    kind: BrokerKind::External,
                    sqlite: false,
                    dir: dir.to_path_buf(),
                    port: 0,
                    controller_port: 0,
                    bootstrap: bootstrap.clone(),
                    process: None,
                    properties: target.properties.clone(),
                    link: None,
                };
                broker
                    .probe(Duration::from_secs(5))
                    .await
                    .map_err(|error| StackError::NotReady {
                        what: format!("external broker {bootstrap}"),
                        waited: Duration::from_secs(5),
                        detail: error.to_string(),
                    })?;
                return Ok(broker);
            }
            BrokerChoice::Kafka => {
                let (start, _) = find_kafka().ok_or(StackError::Missing {
                    what: "Apache Kafka (kafka-server-start.sh and kafka-storage.sh)",
                    hint: "use the Nix dev shell, put Kafka's bin directory on PATH, or choose broker = \"nisshi\"",
                })?;
                (start, BrokerKind::Kafka)
            }
            BrokerChoice::Auto => match find_kafka() {
                Some((start, _)) => (start, BrokerKind::Kafka),
                None => find_broker()?,
            },
            BrokerChoice::Nisshi => find_broker()?,
            BrokerChoice::NisshiSqlite => {
                let bin = find_sqlite_broker()?;
                let kind = match bin.file_name().and_then(|n| n.to_str()) {
                    Some(name) if name.starts_with("tansu") => BrokerKind::Tansu,
                    _ => BrokerKind::Nisshi,
                };
                (bin, kind)
            }
        };
        let log = dir.join(LOG_FILE);
        // Apache Kafka's storage is formatted for its first ports: one try.
        let attempts = if kind == BrokerKind::Kafka {
            1
        } else {
            crate::PORT_ATTEMPTS
        };
        crate::start_on_a_free_port("broker", port, &log, attempts, async |port| {
            let link =
                FaultProxy::start_kafka(std::net::SocketAddr::from(([127, 0, 0, 1], port))).await?;
            let mut broker = Self {
                bin: bin.clone(),
                kind,
                sqlite: target.choice == BrokerChoice::NisshiSqlite,
                dir: dir.to_path_buf(),
                port,
                controller_port: crate::free_port()?,
                bootstrap: link.addr().to_string(),
                process: None,
                properties: target.properties.clone(),
                link: Some(link),
            };
            if kind == BrokerKind::Kafka {
                broker.format_kafka()?;
            }
            broker.launch().await?;
            Ok(broker)
        })
        .await
    }

    /// Writes `server.properties` for a single-node KRaft cluster and formats
    /// its storage.
    fn format_kafka(&self) -> Result<(), StackError> {
        let (_, storage) = find_kafka().ok_or(StackError::NotRunning("kafka"))?;
        let data = self.dir.join("data");
        let properties = format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.voters=1@127.0.0.1:{controller}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
             advertised.listeners=PLAINTEXT://{advertised}\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
             log.dirs={data}\n\
             num.partitions=1\n\
             offsets.topic.replication.factor=1\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             group.initial.rebalance.delay.ms=0\n\
             auto.create.topics.enable=false\n",
            controller = self.controller_port,
            port = self.port,
            advertised = self.bootstrap,
            data = data.display(),
        );
        let path = self.dir.join("server.properties");
        std::fs::write(&path, properties).map_err(|source| StackError::Io { path, source })?;
        let run = |args: &[&str]| {
            let output = Command::new(&storage)
                .args(args)
                .env("LOG_DIR", self.dir.join("logs"))
                .output()
                .map_err(|source| StackError::Spawn {
                    what: "kafka-storage".into(),
                    source,
                })?;
            if !output.status.success() {
                return Err(StackError::Failed {
                    what: format!("kafka-storage {}", args.join(" ")),
                    detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
                });
            }
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
        };
        let cluster = run(&["random-uuid"])?;
        let config = self.dir.join("server.properties");
        run(&["format", "-t", &cluster, "-c", &config.to_string_lossy()])?;
        Ok(())
    }

    pub fn kind(&self) -> BrokerKind {
        self.kind
    }

    /// The port the broker itself listens on (clients reach it through
    /// [`Broker::bootstrap`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The fault proxy between every client and a broker the lab started;
    /// `None` for an external cluster.
    pub fn link(&self) -> Option<&FaultProxy> {
        self.link.as_ref()
    }

    /// For `bootstrap.servers`: the link proxy's `127.0.0.1:PORT`, or the
    /// external cluster's.
    pub fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Managed::pid)
    }

    /// Where the broker's pid is written, again at each start.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("broker.pid")
    }

    /// The broker's version as it reports it.
    /// Whether acknowledged messages survive a kill of this broker.
    pub fn durable(&self) -> bool {
        self.kind.durable() || self.sqlite
    }

    /// Where it keeps its log, in words.
    pub fn storage(&self) -> &'static str {
        match (self.kind, self.sqlite) {
            (BrokerKind::External, _) => "external",
            (BrokerKind::Kafka, _) => "durable: log on disk",
            (_, true) => "durable: log on disk",
            (_, false) => "memory storage: a kill loses what it held",
        }
    }

    pub fn version(&self) -> String {
        if self.kind == BrokerKind::External {
            return "external".into();
        }
        if self.kind == BrokerKind::Kafka {
            return std::fs::read_dir(
                self.bin
                    .parent()
                    .and_then(Path::parent)
                    .unwrap_or(Path::new("/"))
                    .join("libs"),
            )
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let version = name.strip_prefix("kafka-clients-")?.strip_suffix(".jar")?;
                Some(format!("Apache Kafka {version}"))
            })
            .next()
            .unwrap_or_else(|| "Apache Kafka".into());
        }
        let version = Command::new(&self.bin)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        if self.sqlite {
            format!("{version} with its log in SQLite")
        } else {
            version
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    async fn launch(&mut self) -> Result<Duration, StackError> {
        let started = Instant::now();
        let mut command = Command::new(&self.bin);
        let limit = match self.kind {
            BrokerKind::Kafka => {
                command
                    .arg(self.dir.join("server.properties"))
                    .env("LOG_DIR", self.dir.join("logs"))
                    .env("KAFKA_HEAP_OPTS", "-Xms512m -Xmx512m");
                Duration::from_secs(90)
            }
            _ => {
                let url = format!("tcp://127.0.0.1:{}", self.port);
                let advertised = format!("tcp://{}", self.bootstrap);
                let storage = if self.sqlite {
                    format!("sqlite://{SQLITE_LOG}")
                } else {
                    format!("memory://{}/", self.kind.name())
                };
                command
                    .arg("broker")
                    .args(["--listener-url", &url])
                    .args(["--advertised-listener-url", &advertised])
                    .args(["--storage-engine", &storage])
                    .env_remove("LISTENER_URL")
                    .env_remove("ADVERTISED_LISTENER_URL")
                    .env_remove("STORAGE_ENGINE");
                Duration::from_secs(15)
            }
        };
        command
            // nisshi reads a `.env` from its working directory: give it a clean one.
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        crate::log_to(&mut command, &self.log_path())?;
        self.process = Some(Managed::spawn(
            "broker",
            command,
            Some(self.pid_file()),
            Signal::SIGTERM,
        )?);
        self.wait_ready(limit).await?;
        let elapsed = started.elapsed();
        tracing::info!(
            port = self.port,
            pid = self.pid(),
            kind = self.kind.name(),
            ?elapsed,
            "Started broker."
        );
        Ok(elapsed)
    }

    /// Waits until the broker answers a metadata request.
    pub async fn wait_ready(&mut self, limit: Duration) -> Result<Duration, StackError> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.process.as_mut().and_then(Managed::exited) {
                return Err(StackError::Failed {
                    what: "broker".into(),
                    detail: format!(
                        "exited with {status} during start-up; log:\n{}",
                        crate::tail(&self.log_path(), 20)
                    ),
                });
            }
            // Straight to the broker: a fault on its link is not its start.
            match self.probe_direct(Duration::from_millis(500)).await {
                Ok(()) => return Ok(started.elapsed()),
                Err(error) if started.elapsed() > limit => {
                    return Err(StackError::NotReady {
                        what: "broker".into(),
                        waited: limit,
                        detail: error.to_string(),
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
            }
        }
    }

    /// One metadata round trip, through the link as clients go.
    pub async fn probe(&self, timeout: Duration) -> Result<(), ProbeError> {
        self.probe_at(&self.bootstrap, None, timeout).await
    }

    /// As [`Broker::probe`], as the Kafka client `client_id`: through the
    /// link as that client's connections go (see
    /// [`FaultProxy::set_mode_for`]).
    pub async fn probe_as(&self, client_id: &str, timeout: Duration) -> Result<(), ProbeError> {
        self.probe_at(&self.bootstrap, Some(client_id), timeout)
            .await
    }

    /// One metadata round trip straight to the broker, past its link (a
    /// fault on the link does not fail it).
    pub async fn probe_direct(&self, timeout: Duration) -> Result<(), ProbeError> {
        let direct = match self.link {
            Some(_) => format!("127.0.0.1:{}", self.port),
            None => self.bootstrap.clone(),
        };
        self.probe_at(&direct, None, timeout).await
    }

    /// One metadata round trip to `bootstrap`, as `client_id` if given.
    async fn probe_at(
        &self,
        bootstrap: &str,
        client_id: Option<&str>,
        timeout: Duration,
    ) -> Result<(), ProbeError> {
        let mut client = client_for(bootstrap, &self.properties);
        if let Some(id) = client_id {
            client.set("client.id", id);
        }
        let failed = |e: &dyn std::fmt::Display| ProbeError::Failed(e.to_string());
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = client
                .clone()
                .set("socket.connection.setup.timeout.ms", "1000")
                .set("log_level", "0")
                .create()
                .map_err(|e| failed(&e))?;
            consumer
                .fetch_metadata(None, timeout)
                .map(drop)
                .map_err(|e| failed(&e))
        })
        .await
        .map_err(|e| failed(&e))?
    }

    /// Creates a topic of one replica (if it does not exist) and waits until
    /// its metadata shows every partition.
    pub async fn create_topic(&self, name: &str, partitions: i32) -> Result<(), StackError> {
        self.create_topic_with(name, TopicSettings::single(partitions))
            .await
    }

    /// Creates a topic (if it does not exist) as `settings` say and waits
    /// until its metadata shows every partition.
    pub async fn create_topic_with(
        &self,
        name: &str,
        settings: TopicSettings,
    ) -> Result<(), StackError> {
        let partitions = settings.partitions;
        let failed = |detail: String| StackError::Failed {
            what: format!("creating topic {name}"),
            detail,
        };
        let admin: AdminClient<DefaultClientContext> =
            self.client().create().map_err(|e| failed(e.to_string()))?;
        let min_insync = settings.min_insync_replicas.to_string();
        let mut topic = NewTopic::new(
            name,
            partitions,
            TopicReplication::Fixed(settings.replication_factor),
        );
        if settings.min_insync_replicas > 1 {
            topic = topic.set("min.insync.replicas", &min_insync);
        }
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics([&topic], &options)
            .await
            .map_err(|e| failed(e.to_string()))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(failed(code.to_string())),
            }
        }
        let client = self.client();
        let topic = name.to_string();
        let started = Instant::now();
        loop {
            let client = client.clone();
            let topic = topic.clone();
            let seen = tokio::task::spawn_blocking(move || {
                let consumer: BaseConsumer = client.create().ok()?;
                let metadata = consumer
                    .fetch_metadata(Some(&topic), Duration::from_secs(2))
                    .ok()?;
                metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == topic && t.error().is_none())
                    .map(|t| t.partitions().len() as i32)
            })
            .await
            .ok()
            .flatten();
            if seen == Some(partitions) {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(10) {
                return Err(failed(format!(
                    "metadata shows {seen:?} partitions, expected {partitions}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL to the broker. With memory storage, everything it held is gone.
    pub fn kill(&mut self) -> Result<(), StackError> {
        if self.kind == BrokerKind::External {
            return Err(StackError::NotRunning(
                "an external broker, which the lab cannot kill,",
            ));
        }
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
        Ok(())
    }

    /// Starts a killed broker again on the same port.
    pub async fn restart(&mut self) -> Result<Duration, StackError> {
        if self.kind == BrokerKind::External {
            return Err(StackError::NotRunning(
                "an external broker, which the lab cannot restart,",
            ));
        }
        if let Some(mut process) = self.process.take() {
            process.stop(Duration::from_secs(5));
        }
        self.launch().await
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(process) = self.process.take() {
            drop(process);
            tracing::debug!(port = self.port, "Stopped broker.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_port_taken_before_the_broker_binds_it_is_exchanged_for_another() {
        let dir = std::env::temp_dir()
            .join("faultline-tests")
            .join(format!("broker-port-taken-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = holder.local_addr().unwrap().port();
        let broker = Broker::start_at(&dir, &BrokerTarget::default(), taken)
            .await
            .unwrap();
        assert_ne!(broker.port, taken);
        broker.create_topic("t", 1).await.unwrap();
        let log = std::fs::read_to_string(broker.log_path()).unwrap();
        assert!(log.contains("AddrInUse"), "{log}");
        drop(broker);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
