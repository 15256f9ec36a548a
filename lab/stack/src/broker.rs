//! A Kafka-protocol broker on a free loopback port.
//!
//! On these machines the broker is nisshi (formerly tansu) with memory
//! storage: it forgets everything when killed, which a report must state.
//! The binary is found through `FAULTLINE_BROKER_BIN`, then `nisshi` or `tansu`
//! on PATH, then the set-up script's cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::StackError;
use crate::process::Managed;

/// Which broker implementation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// nisshi, the renamed tansu broker, with memory storage.
    Nisshi,
    /// tansu (the same broker line under its earlier name), memory storage.
    Tansu,
}

impl BrokerKind {
    pub fn name(self) -> &'static str {
        match self {
            BrokerKind::Nisshi => "nisshi",
            BrokerKind::Tansu => "tansu",
        }
    }

    /// Whether acknowledged messages survive a broker kill.
    pub fn durable(self) -> bool {
        false
    }
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

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    bin: PathBuf,
    kind: BrokerKind,
    dir: PathBuf,
    port: u16,
    process: Option<Managed>,
}

impl Broker {
    /// Starts a broker with its working directory in `dir` and waits until it
    /// answers a metadata request.
    pub async fn start(dir: &Path) -> Result<Self, StackError> {
        let (bin, kind) = find_broker()?;
        crate::create_dir(dir)?;
        let mut broker = Self {
            bin,
            kind,
            dir: dir.to_path_buf(),
            port: crate::free_port()?,
            process: None,
        };
        broker.launch().await?;
        Ok(broker)
    }

    pub fn kind(&self) -> BrokerKind {
        self.kind
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Managed::pid)
    }

    /// The broker's version as it reports it.
    pub fn version(&self) -> String {
        Command::new(&self.bin)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("broker.log")
    }

    async fn launch(&mut self) -> Result<Duration, StackError> {
        let started = Instant::now();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let storage = format!("memory://{}/", self.kind.name());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|source| StackError::Io {
                path: self.log_path(),
                source,
            })?;
        let mut command = Command::new(&self.bin);
        command
            .arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", &storage])
            // It reads a `.env` from its working directory: give it a clean one.
            .current_dir(&self.dir)
            .env_remove("LISTENER_URL")
            .env_remove("ADVERTISED_LISTENER_URL")
            .env_remove("STORAGE_ENGINE")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|source| StackError::Io {
                path: self.log_path(),
                source,
            })?)
            .stderr(log);
        self.process = Some(Managed::spawn(
            "broker",
            command,
            Some(self.dir.join("broker.pid")),
            Signal::SIGTERM,
        )?);
        self.wait_ready(Duration::from_secs(15)).await?;
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
            match self.probe(Duration::from_millis(500)).await {
                Ok(()) => return Ok(started.elapsed()),
                Err(error) if started.elapsed() > limit => {
                    return Err(StackError::NotReady {
                        what: "broker".into(),
                        waited: limit,
                        detail: error,
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
            }
        }
    }

    /// One metadata round trip.
    pub async fn probe(&self, timeout: Duration) -> Result<(), String> {
        let bootstrap = self.bootstrap();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("socket.connection.setup.timeout.ms", "1000")
                .set("log_level", "0")
                .create()
                .map_err(|e| e.to_string())?;
            consumer
                .fetch_metadata(None, timeout)
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Creates a topic (if it does not exist) and waits until its metadata
    /// shows every partition.
    pub async fn create_topic(&self, name: &str, partitions: i32) -> Result<(), StackError> {
        let failed = |detail: String| StackError::Failed {
            what: format!("creating topic {name}"),
            detail,
        };
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .map_err(|e| failed(e.to_string()))?;
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
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
        let bootstrap = self.bootstrap();
        let topic = name.to_string();
        let started = Instant::now();
        loop {
            let bootstrap = bootstrap.clone();
            let topic = topic.clone();
            let seen = tokio::task::spawn_blocking(move || {
                let consumer: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", &bootstrap)
                    .create()
                    .ok()?;
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
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts a killed broker again on the same port.
    pub async fn restart(&mut self) -> Result<Duration, StackError> {
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
