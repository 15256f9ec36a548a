//! An ephemeral PostgreSQL cluster in a folder of its own: initdb, a free
//! loopback port, a private socket directory, run as the `postgres` user when
//! the lab runs as root. It can be crashed (SIGKILL to every process of it),
//! stopped, frozen (SIGSTOP), thawed and restarted with its data kept.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid, User};

use crate::process::Managed;
use crate::{ProbeError, StackError};

/// How long a start or restart may take before it is an error.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running (or crashed, or frozen) PostgreSQL cluster.
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    owner: Option<(Uid, Gid)>,
    process: Option<Managed>,
    frozen: bool,
    /// The `postgres` role's password, made for this cluster: no local
    /// user reaches it without it (scram-sha-256, not trust).
    password: String,
}

/// 32 hex digits from the kernel's random source.
fn random_password() -> Result<String, StackError> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|source| StackError::Io {
            path: "/dev/urandom".into(),
            source,
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Finds `initdb` and `postgres`: on PATH (as under Nix), else the newest
/// `/usr/lib/postgresql/*/bin`.
pub fn find_binaries() -> Result<PathBuf, StackError> {
    find_binaries_in(
        crate::which("postgres").as_deref(),
        Path::new("/usr/lib/postgresql"),
    )
}

/// [`find_binaries`] given where `postgres` is on PATH (if it is) and
/// Debian's versioned root.
fn find_binaries_in(on_path: Option<&Path>, debian: &Path) -> Result<PathBuf, StackError> {
    if let Some(dir) = on_path.and_then(Path::parent)
        && dir.join("initdb").is_file()
    {
        return Ok(dir.to_path_buf());
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(debian)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("postgres").is_file() && bin.join("initdb").is_file())
                .then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or(StackError::Missing {
            what: "PostgreSQL (initdb and postgres)",
            hint: "install it (Debian: apt-get install postgresql; Nix: the dev shell has it) or put its bin directory on PATH",
        })
}

impl Postgres {
    /// Creates a cluster in `dir` (which must not hold one yet), starts it on
    /// a free port and waits until it answers a query.
    pub async fn start(dir: &Path) -> Result<Self, StackError> {
        Self::start_at(dir, crate::free_port()?).await
    }

    /// [`Postgres::start`] trying `port` first: another port if a process
    /// holds that one.
    async fn start_at(dir: &Path, port: u16) -> Result<Self, StackError> {
        let bin = find_binaries()?;
        let owner = if Uid::effective().is_root() {
            let user = User::from_name("postgres")
                .ok()
                .flatten()
                .ok_or(StackError::Missing {
                    what: "a 'postgres' system user (PostgreSQL refuses to run as root)",
                    hint: "create one (useradd --system postgres) or run the lab as a normal user",
                })?;
            Some((user.uid, user.gid))
        } else {
            None
        };
        crate::create_dir(dir)?;
        let mut postgres = Self {
            bin,
            dir: dir.to_path_buf(),
            port,
            owner,
            process: None,
            frozen: false,
            password: random_password()?,
        };
        postgres.chown(dir)?;
        postgres.initdb()?;
        let log = postgres.log_path();
        crate::start_on_a_free_port("postgres", port, &log, crate::PORT_ATTEMPTS, async |port| {
            postgres.port = port;
            postgres.launch().await
        })
        .await?;
        Ok(postgres)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.join("socket")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    fn chown(&self, path: &Path) -> Result<(), StackError> {
        if let Some((uid, gid)) = self.owner {
            nix::unistd::chown(path, Some(uid), Some(gid)).map_err(|errno| StackError::Io {
                path: path.to_path_buf(),
                source: errno.into(),
            })?;
        }
        Ok(())
    }

    fn command(&self, program: &str) -> Command {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.owner {
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
        command.current_dir(&self.dir).stdin(Stdio::null());
        command
    }

    fn initdb(&self) -> Result<(), StackError> {
        use std::os::unix::fs::OpenOptionsExt;
        let started = Instant::now();
        // The password reaches initdb in a file only its owner reads,
        // removed once the cluster exists.
        let pwfile = self.dir.join("pwfile");
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&pwfile)
            .and_then(|mut file| {
                use std::io::Write;
                file.write_all(self.password.as_bytes())
            });
        written.map_err(|source| StackError::Io {
            path: pwfile.clone(),
            source,
        })?;
        self.chown(&pwfile)?;
        let output = self
            .command("initdb")
            .args(["-D"])
            .arg(self.data())
            .args(["-U", "postgres", "--auth=scram-sha-256", "--pwfile"])
            .arg(&pwfile)
            .args(["-E", "UTF8", "--locale=C", "--no-sync"])
            .output();
        let _ = std::fs::remove_file(&pwfile);
        let output = output.map_err(|source| StackError::Spawn {
            what: "initdb".into(),
            source,
        })?;
        if !output.status.success() {
            return Err(StackError::Failed {
                what: "initdb".into(),
                detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        tracing::debug!(elapsed = ?started.elapsed(), "Initialised the cluster.");
        Ok(())
    }

    /// Starts the postmaster and waits until it answers a query.
    async fn launch(&mut self) -> Result<Duration, StackError> {
        let started = Instant::now();
        // A Unix socket path is limited to 107 bytes; with a deep run folder
        // the cluster listens on TCP only.
        let socket = self.socket_dir();
        let socket = if socket.as_os_str().len() + ".s.PGSQL.65535".len() < 100 {
            crate::create_dir(&socket)?;
            self.chown(&socket)?;
            socket
        } else {
            PathBuf::new()
        };
        let mut command = self.command("postgres");
        command
            .arg("-D")
            .arg(self.data())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&socket)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=200",
                "-c",
                "logging_collector=off",
                // UTC whatever the machine's zone: a service's `timestamp`
                // column and the audit's `timestamptz` then mean one instant.
                "-c",
                "timezone=UTC",
            ]);
        crate::log_to(&mut command, &self.log_path())?;
        self.process = Some(Managed::spawn(
            "postgres",
            command,
            Some(self.pid_file()),
            Signal::SIGINT,
        )?);
        self.frozen = false;
        self.wait_ready(READY_TIMEOUT).await?;
        let elapsed = started.elapsed();
        tracing::info!(
            port = self.port,
            pid = self.pid(),
            ?elapsed,
            "Started PostgreSQL."
        );
        Ok(elapsed)
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            self.password, self.port
        )
    }

    /// The `postgres` role's password, made for this cluster.
    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The postmaster's pid, which is also its process group.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Managed::pid)
    }

    /// Where the postmaster's pid is written, again at each start.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("postgres.pid")
    }

    /// Whether the postmaster is running (it may be frozen).
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| p.exited().is_none())
    }

    /// One query with a short connect timeout.
    pub async fn probe(&self, timeout: Duration) -> Result<(), ProbeError> {
        probe_url(&self.url(), timeout).await
    }

    /// Waits until a query succeeds (during crash recovery the port accepts
    /// connections but refuses logins).
    pub async fn wait_ready(&mut self, limit: Duration) -> Result<Duration, StackError> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.process.as_mut().and_then(Managed::exited) {
                return Err(StackError::Failed {
                    what: "postgres".into(),
                    detail: format!(
                        "exited with {status} during start-up; log:\n{}",
                        crate::tail(&self.log_path(), 20)
                    ),
                });
            }
            let error = match self.probe(Duration::from_secs(1)).await {
                Ok(()) => return Ok(started.elapsed()),
                Err(error) => error,
            };
            if started.elapsed() > limit {
                return Err(StackError::NotReady {
                    what: "postgres".into(),
                    waited: limit,
                    detail: format!("{error}; log:\n{}", crate::tail(&self.log_path(), 20)),
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Crash: SIGKILL to every process of the cluster. Committed data stays on
    /// disk; [`Postgres::restart`] recovers it.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
        self.frozen = false;
    }

    /// Fast shutdown (SIGINT): active transactions are rolled back.
    pub fn stop(&mut self) -> Duration {
        let elapsed = self
            .process
            .take()
            .map(|mut p| p.stop(Duration::from_secs(10)))
            .unwrap_or_default();
        self.frozen = false;
        elapsed
    }

    /// Starts a stopped or crashed cluster again on the same port, with crash
    /// recovery where needed. Returns the time until it answered a query.
    pub async fn restart(&mut self) -> Result<Duration, StackError> {
        if self.is_running() {
            self.stop();
        }
        self.launch().await
    }

    /// Freeze: SIGSTOP to every process of the cluster. Clients hang.
    pub fn freeze(&mut self) -> Result<(), StackError> {
        let process = self
            .process
            .as_ref()
            .ok_or(StackError::NotRunning("postgres"))?;
        process.signal_tree(Signal::SIGSTOP)?;
        self.frozen = true;
        Ok(())
    }

    /// Thaw: SIGCONT to every process of the cluster.
    pub fn thaw(&mut self) -> Result<(), StackError> {
        let process = self
            .process
            .as_ref()
            .ok_or(StackError::NotRunning("postgres"))?;
        process.signal_tree(Signal::SIGCONT)?;
        self.frozen = false;
        Ok(())
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Managed's own drop thaws and stops the group.
        if let Some(process) = self.process.take() {
            drop(process);
            tracing::debug!(port = self.port, "Stopped PostgreSQL.");
        }
    }
}

/// Connects to `url` and runs one query, all within `timeout`.
pub async fn probe_url(url: &str, timeout: Duration) -> Result<(), ProbeError> {
    query_time(url, timeout).await.map(drop)
}

/// Connects to `url` and times one `SELECT 1` on the open connection: the
/// link's round trip, not the cost of connecting and authenticating.
pub async fn query_time(url: &str, timeout: Duration) -> Result<Duration, ProbeError> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| ProbeError::Failed(e.to_string()))?;
    query_time_with(config, tokio_postgres::NoTls, timeout).await
}

/// As [`query_time`], with a configuration and TLS connector of the
/// caller's (an external database over TLS).
pub async fn query_time_with<T>(
    mut config: tokio_postgres::Config,
    tls: T,
    timeout: Duration,
) -> Result<Duration, ProbeError>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    config.connect_timeout(timeout.max(Duration::from_secs(1)));
    let failed = |error: tokio_postgres::Error| {
        let timed_out = std::error::Error::source(&error)
            .and_then(|source| source.downcast_ref::<std::io::Error>())
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
        if timed_out {
            ProbeError::NoAnswer(timeout)
        } else {
            // The causes too: "error performing TLS handshake" alone does
            // not say that the certificate named another host.
            let mut said = error.to_string();
            let mut cause = std::error::Error::source(&error);
            while let Some(source) = cause {
                let text = source.to_string();
                if !said.contains(&text) {
                    said = format!("{said}: {text}");
                }
                cause = source.source();
            }
            ProbeError::Failed(said)
        }
    };
    let attempt = async {
        let (client, connection) = config.connect(tls).await.map_err(failed)?;
        tokio::spawn(connection);
        let started = Instant::now();
        client
            .simple_query("SELECT 1")
            .await
            .map(|_| started.elapsed())
            .map_err(failed)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::NoAnswer(timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_port_taken_before_the_postmaster_binds_it_is_exchanged_for_another() {
        let dir = std::env::temp_dir()
            .join("faultline-tests")
            .join(format!("pg-port-taken-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = holder.local_addr().unwrap().port();
        let postgres = Postgres::start_at(&dir, taken).await.unwrap();
        assert_ne!(postgres.port(), taken);
        postgres.probe(Duration::from_secs(5)).await.unwrap();
        let log = fs::read_to_string(postgres.log_path()).unwrap();
        assert!(log.contains("already in use"), "{log}");
        drop(postgres);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_postgresql_says_how_to_install_it() {
        let nowhere = std::env::temp_dir().join("faultline-no-postgresql-here");
        let error = find_binaries_in(None, &nowhere).unwrap_err().to_string();
        assert!(
            error.contains("PostgreSQL (initdb and postgres) not found")
                && error.contains("apt-get install postgresql")
                && error.contains("PATH"),
            "{error}"
        );
    }

    #[test]
    fn the_newest_debian_version_is_chosen() {
        let root = std::env::temp_dir().join(format!("faultline-pg-{}", std::process::id()));
        for version in ["9", "15", "17"] {
            let bin = root.join(version).join("bin");
            fs::create_dir_all(&bin).unwrap();
            fs::write(bin.join("postgres"), "").unwrap();
            fs::write(bin.join("initdb"), "").unwrap();
        }
        assert_eq!(
            find_binaries_in(None, &root).unwrap(),
            root.join("17").join("bin")
        );
        let _ = fs::remove_dir_all(&root);
    }
}
