//! The systems under test of the faultline lab.
//!
//! - [`event`]: the driver location update, its strict decoding and validation
//! - [`store`]: the PostgreSQL schema, a bounded pool, idempotent writes
//! - [`breaker`]: the circuit breaker, a pure state machine
//! - [`metrics`]: the metric names (shared with the lab) and their registries
//! - [`http`]: the HTTP server every service shares
//! - [`rest`], [`producer`], [`consumer`]: the three services; each binary
//!   parses its configuration and calls `run`

pub mod breaker;
pub mod consumer;
pub mod defaults;
pub mod event;
pub mod group;
pub mod http;
pub mod metrics;
pub mod producer;
pub mod rest;
pub mod store;
pub mod tls;

use tokio_util::sync::CancellationToken;

/// The faultline version, reported by every service.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// SIGINT and SIGTERM, as one stream of signals.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; needs a tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next SIGINT or SIGTERM; its name.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// A token cancelled on the first SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let Ok(mut signals) = Signals::install() else {
            tracing::error!("Could not install signal handlers.");
            return;
        };
        let signal = signals.next().await;
        tracing::info!(signal, "Shutting down.");
        cancel.cancel();
    });
    token
}

/// A duration flag in milliseconds: a bare number is milliseconds (`1500`),
/// anything else a duration as the lab writes it (`5s`, `1m 30s`, `250ms`).
pub fn millis(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    let duration = humantime::parse_duration(text).map_err(|error| {
        format!("{text:?} is not a duration: {error} (write milliseconds, 1500, or 1.5s, 2m)")
    })?;
    u64::try_from(duration.as_millis()).map_err(|_| format!("{text:?} is too long"))
}

/// The environment variables the services read that the lab sets, where
/// `ps` does not show them: the one spelling of each.
pub mod vars {
    /// The database URL (it may hold a password).
    pub const DATABASE_URL: &str = "FAULTLINE_DATABASE_URL";
    /// Kafka bootstrap servers.
    pub const BOOTSTRAP_SERVERS: &str = "FAULTLINE_BOOTSTRAP_SERVERS";
    /// More librdkafka properties, one `key=value` per line.
    pub const KAFKA_PROPERTIES: &str = "FAULTLINE_KAFKA_PROPERTIES";
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    init_logging_with("info,rdkafka=warn");
}

/// Logs to stderr, filtered by `RUST_LOG`, else by `default_filter`: the
/// one logging set-up of the services and the lab.
pub fn init_logging_with(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, and never with NO_COLOR.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .init();
}

/// How many threads run a service's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct RuntimeArgs {
    /// Threads that run the service's work. With 1 (the default) one thread
    /// runs it all: the HTTP connections, the database connections and the
    /// timers, with no hand-off between threads, the least CPU per request.
    /// More spread the work over that many threads, for a service that needs
    /// more than one core.
    #[arg(long, env = "FAULTLINE_WORKER_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: u16,
}

impl Default for RuntimeArgs {
    fn default() -> Self {
        Self { worker_threads: 1 }
    }
}

impl RuntimeArgs {
    /// The runtime asked for: one thread, or a pool of them.
    pub fn build(self) -> std::io::Result<tokio::runtime::Runtime> {
        match self.worker_threads {
            0 | 1 => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            n => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(usize::from(n))
                .enable_all()
                .build(),
        }
    }
}

/// Starts the allocator's background thread, which returns memory freed for
/// some seconds to the system: after an overload (thousands of connections at
/// once) a service shrinks back to its working size instead of keeping its
/// peak for the rest of the run. The services' binaries allocate with jemalloc;
/// in a process that does not, this starts an idle thread and nothing else.
pub fn give_memory_back() {
    if let Err(error) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(%error, "Could not start the allocator's background thread: memory freed after an overload may not return to the system.");
    }
}

/// The body of every service binary: logs, binds `listen`, runs the service
/// on the runtime asked for until SIGINT or SIGTERM.
pub fn main<F, E>(
    listen: std::net::SocketAddr,
    runtime: RuntimeArgs,
    run: impl FnOnce(tokio::net::TcpListener, CancellationToken) -> F,
) -> anyhow::Result<()>
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    use anyhow::Context;
    init_logging();
    give_memory_back();
    let runtime = runtime
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(listener) => listener,
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => anyhow::bail!(
                "port {port} is already in use: stop what listens there (`ss -ltnp 'sport = :{port}'` \
                 names it) or pass --listen 127.0.0.1:<another port> (FAULTLINE_LISTEN)",
                port = listen.port()
            ),
            Err(error) => {
                return Err(error).with_context(|| format!("could not listen on {listen}"));
            }
        };
        let shutdown = shutdown_on_signals();
        run(listener, shutdown).await?;
        Ok(())
    })
}
