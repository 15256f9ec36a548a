//! The three services under test as child processes on free ports, with the
//! preflight that checks each one's identity and health before load starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faultline_services::http::{Health, Identity, Readiness};
use nix::sys::signal::Signal;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::process::{Managed, Slot};
use crate::{ProbeError, StackError};

/// Which service a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    Rest,
    Producer,
    Consumer,
}

impl ServiceKind {
    /// The binary's name, which is also the name it reports in `/identity`.
    pub fn binary(self) -> &'static str {
        match self {
            ServiceKind::Rest => "faultline-rest",
            ServiceKind::Producer => "faultline-producer",
            ServiceKind::Consumer => "faultline-consumer",
        }
    }
}

/// Finds a service binary: next to the running executable (and its parent,
/// for test binaries in `target/*/deps`), else on PATH.
pub fn find_service(kind: ServiceKind) -> Result<PathBuf, StackError> {
    let name = kind.binary();
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    crate::which(name).ok_or(StackError::Missing {
        what: "a faultline service binary",
        hint: "build the workspace (cargo build --workspace) or put faultline-rest, faultline-producer and faultline-consumer on PATH",
    })
}

/// A service running as a child process.
#[derive(Debug)]
pub struct Service {
    kind: ServiceKind,
    bin: PathBuf,
    args: Vec<String>,
    /// Settings handed over in the environment (secrets: they do not show
    /// in `ps`).
    env: Vec<(String, String)>,
    dir: PathBuf,
    addr: SocketAddr,
    process: Slot,
}

impl Service {
    /// Starts `kind` with `args` (plus `--listen` on a free port) and `env`,
    /// logs in `dir`, and waits until its preflight passes.
    pub async fn start(
        kind: ServiceKind,
        args: Vec<String>,
        env: Vec<(String, String)>,
        dir: &Path,
    ) -> Result<Self, StackError> {
        Self::start_at(kind, args, env, dir, crate::free_port()?).await
    }

    /// [`Service::start`] trying `port` first: another port if a process
    /// holds that one.
    pub async fn start_at(
        kind: ServiceKind,
        args: Vec<String>,
        env: Vec<(String, String)>,
        dir: &Path,
        port: u16,
    ) -> Result<Self, StackError> {
        crate::create_dir(dir)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut service = Self {
            kind,
            bin: find_service(kind)?,
            args,
            env,
            dir: dir.to_path_buf(),
            addr,
            process: Slot::default(),
        };
        let log = service.log_path();
        crate::start_on_a_free_port(
            kind.binary(),
            port,
            &log,
            crate::PORT_ATTEMPTS,
            async |port| {
                service.addr.set_port(port);
                service.launch().await
            },
        )
        .await?;
        Ok(service)
    }

    pub fn kind(&self) -> ServiceKind {
        self.kind
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Where the running process's pid is written, again at each start.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join(format!("{}.pid", self.kind.binary()))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.kind.binary()))
    }

    async fn launch(&mut self) -> Result<Duration, StackError> {
        let started = Instant::now();
        let mut command = Command::new(&self.bin);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("--listen")
            .arg(self.addr.to_string())
            .stdin(Stdio::null());
        crate::log_to(&mut command, &self.log_path())?;
        self.process.hold(Managed::spawn(
            self.kind.binary(),
            command,
            Some(self.pid_file()),
            Signal::SIGTERM,
        )?);
        self.preflight(Duration::from_secs(15)).await?;
        let elapsed = started.elapsed();
        tracing::info!(service = self.kind.binary(), addr = %self.addr, pid = self.pid(), ?elapsed, "Started service.");
        Ok(elapsed)
    }

    /// Checks that the process on the port is this service (by its
    /// `/identity`, pid included) and that it is healthy.
    pub async fn preflight(&mut self, limit: Duration) -> Result<(), StackError> {
        let started = Instant::now();
        let not_ready = |detail: String| StackError::NotReady {
            what: self.kind.binary().to_string(),
            waited: limit,
            detail,
        };
        let mut last = String::new();
        while started.elapsed() < limit {
            if let Some(status) = self.process.exited() {
                return Err(StackError::Failed {
                    what: self.kind.binary().into(),
                    detail: format!(
                        "exited with {status} during start-up; log:\n{}",
                        crate::tail(&self.log_path(), 20)
                    ),
                });
            }
            match get_as::<Identity>(self.addr, "/identity").await {
                Ok(identity) => {
                    if identity.service != self.kind.binary() || Some(identity.pid) != self.pid() {
                        return Err(not_ready(format!(
                            "another process answers on {}: it says it is {} with pid {}",
                            self.addr, identity.service, identity.pid
                        )));
                    }
                    match get_as::<Health<Readiness>>(self.addr, "/healthz").await {
                        // A service that applies the schema is ready once
                        // it has: a request before would fail on a missing
                        // table.
                        Ok(health) if health.own.schema_ready != Some(false) => return Ok(()),
                        Ok(_) => last = "/healthz: the schema is not applied yet".into(),
                        Err(error) => last = error,
                    }
                }
                Err(error) => last = error,
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(not_ready(last))
    }

    /// `Some(status)` if its process ended by itself (a crash, an exit);
    /// one the lab killed or stopped has no process to ask.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.process.exited()
    }

    /// SIGKILL to it, with everything it started.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts it again, killed or stopped, on the same port.
    pub async fn restart(&mut self) -> Result<Duration, StackError> {
        self.process.stop(Duration::from_secs(10));
        self.launch().await
    }

    /// SIGTERM, then SIGKILL if it has not stopped within `grace`.
    pub fn stop(&mut self, grace: Duration) -> Duration {
        self.process.stop(grace)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// A GET of `path` whose 200 answer is read as `T`, the service's own type
/// of it; another answer, or a body that is not a `T`, is the error, in
/// words.
pub async fn get_as<T: DeserializeOwned>(addr: SocketAddr, path: &str) -> Result<T, String> {
    match get(addr, path, Duration::from_secs(2)).await {
        Ok((200, body)) => {
            serde_json::from_str(&body).map_err(|e| format!("{path} answered {body:?}: {e}"))
        }
        Ok((status, body)) => Err(format!("{path} answered {status}: {body}")),
        Err(error) => Err(error.to_string()),
    }
}

/// A plain HTTP/1.1 GET within `limit`: the status and the body as text.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    limit: Duration,
) -> Result<(u16, String), ProbeError> {
    exchange(addr, "GET", path, limit).await
}

/// A plain HTTP/1.1 POST with no body within `limit`: the status and the
/// body as text.
pub async fn post(
    addr: SocketAddr,
    path: &str,
    limit: Duration,
) -> Result<(u16, String), ProbeError> {
    exchange(addr, "POST", path, limit).await
}

async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    limit: Duration,
) -> Result<(u16, String), ProbeError> {
    let failed = |what: String| ProbeError::Failed(format!("{addr}{path}: {what}"));
    let exchange = async {
        let io = |e: std::io::Error| failed(e.to_string());
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(io)?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.map_err(io)?;
        Ok::<_, ProbeError>(response)
    };
    let response = tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| ProbeError::NoAnswer(limit))??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| failed("not an HTTP answer".into()))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| failed("no status in the answer".into()))?;
    Ok((status, body.to_string()))
}
