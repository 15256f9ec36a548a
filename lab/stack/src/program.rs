//! Any program as a process of the stack: the user's own services, started
//! from a command with an environment, given a port, waited on until ready,
//! and killed, restarted and stopped like the lab's own services.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::StackError;
use crate::process::{Managed, Slot};

/// When a program counts as ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// A GET of this path on its port answers 2xx.
    Http(String),
    /// Its port accepts a connection.
    Tcp,
    /// It is still running after this long.
    Wait(Duration),
}

/// How to start one program.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Its name, for logs and messages (`<architecture>-<process>`).
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// On top of the lab's own environment; may hold secrets (`ps` does
    /// not show it).
    pub env: Vec<(String, String)>,
    /// The folder it runs in.
    pub folder: PathBuf,
    /// The loopback port it is told to listen on.
    pub port: u16,
    pub ready: Readiness,
    /// Longest wait for readiness.
    pub ready_within: Duration,
}

/// A program running as a child process.
#[derive(Debug)]
pub struct Program {
    launch: Launch,
    dir: PathBuf,
    process: Slot,
}

/// Finds a program named in a command: a name with a `/` is a path (a
/// relative one from `folder`); a bare name is looked for beside the
/// running executable (and its parent, for test binaries), then on PATH.
pub fn find_program(name: &str, folder: &Path) -> Result<PathBuf, String> {
    if name.contains('/') {
        let path = folder.join(name);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{}: no such file", path.display()))
        };
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    crate::which(name).ok_or_else(|| format!("{name}: not found beside faultline nor on PATH"))
}

impl Program {
    /// Starts it, logs in `dir`, and waits until it is ready.
    pub async fn start(launch: Launch, dir: &Path) -> Result<Self, StackError> {
        crate::create_dir(dir)?;
        let mut program = Self {
            launch,
            dir: dir.to_path_buf(),
            process: Slot::default(),
        };
        program.launch().await?;
        Ok(program)
    }

    pub fn name(&self) -> &str {
        &self.launch.name
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.launch.port))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr(), path)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Where the running process's pid is written, again at each start.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join(format!("{}.pid", self.launch.name))
    }

    pub fn log_path(&self) -> PathBuf {
        Self::log_in(&self.dir, &self.launch.name)
    }

    /// Where the program called `name`, started in `dir`, writes its output.
    pub fn log_in(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}.log"))
    }

    async fn launch(&mut self) -> Result<Duration, StackError> {
        let started = Instant::now();
        let mut command = Command::new(&self.launch.program);
        command
            .args(&self.launch.args)
            .envs(self.launch.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.launch.folder)
            .stdin(Stdio::null());
        crate::log_to(&mut command, &self.log_path())?;
        self.process.hold(Managed::spawn(
            &self.launch.name,
            command,
            Some(self.pid_file()),
            Signal::SIGTERM,
        )?);
        self.wait_ready().await?;
        let elapsed = started.elapsed();
        tracing::info!(
            program = self.launch.name,
            port = self.launch.port,
            pid = self.pid(),
            ?elapsed,
            "Started program."
        );
        Ok(elapsed)
    }

    async fn wait_ready(&mut self) -> Result<(), StackError> {
        let limit = self.launch.ready_within;
        let started = Instant::now();
        let mut last = String::from("no probe answered yet");
        loop {
            if let Some(status) = self.exited() {
                return Err(StackError::Failed {
                    what: self.launch.name.clone(),
                    detail: format!(
                        "exited with {status} during start-up; log:\n{}",
                        crate::tail(&self.log_path(), 20)
                    ),
                });
            }
            match &self.launch.ready {
                Readiness::Wait(wait) if started.elapsed() >= *wait => return Ok(()),
                Readiness::Wait(_) => {}
                _ => match self.probe().await {
                    Ok(()) => return Ok(()),
                    Err(why) => last = why,
                },
            }
            if started.elapsed() >= limit {
                return Err(StackError::NotReady {
                    what: self.launch.name.clone(),
                    waited: limit,
                    detail: format!("{last}; log:\n{}", crate::tail(&self.log_path(), 20)),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One readiness probe: `Ok` if it is running and its probe passes.
    pub async fn probe(&mut self) -> Result<(), String> {
        if self.process.is_empty() {
            return Err("not running".into());
        }
        if let Some(status) = self.exited() {
            return Err(format!("exited with {status}"));
        }
        let limit = Duration::from_secs(1);
        match &self.launch.ready {
            Readiness::Http(path) => match crate::services::get(self.addr(), path, limit).await {
                Ok((status, _)) if (200..300).contains(&status) => Ok(()),
                Ok((status, body)) => Err(format!(
                    "GET {path} answered {status}: {}",
                    body.chars().take(200).collect::<String>()
                )),
                Err(error) => Err(format!("GET {path}: {error}")),
            },
            Readiness::Tcp => {
                match tokio::time::timeout(limit, tokio::net::TcpStream::connect(self.addr())).await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => Err(format!("port {}: {error}", self.launch.port)),
                    Err(_) => Err(format!(
                        "port {}: no answer within {limit:?}",
                        self.launch.port
                    )),
                }
            }
            Readiness::Wait(_) => Ok(()),
        }
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

impl Drop for Program {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}
