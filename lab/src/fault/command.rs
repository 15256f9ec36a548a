//! Command faults' shell commands: run in a process group of their own,
//! their output read as it comes and kept bounded, their leftovers killed.

use std::fmt;
use std::time::{Duration, Instant};

use faultline_stack::ProbeError;

use super::Unverified;
use crate::experiment::CommandFault;
use crate::stack::LabStack;

/// A shell command's outcome, as the fault record keeps it.
pub(super) struct Ran {
    command: String,
    /// The exit status; `None` if it could not start or was killed.
    status: Option<i32>,
    took: Duration,
    /// Standard output and error, trimmed and cut to a few kilobytes.
    output: String,
    timed_out: bool,
}

impl Ran {
    pub(super) fn succeeded(&self) -> bool {
        self.status == Some(0)
    }
}

impl fmt::Display for Ran {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` ", self.command)?;
        match (self.timed_out, self.status) {
            (true, _) => write!(f, "killed after {:.1} s", self.took.as_secs_f64())?,
            (false, Some(code)) => write!(f, "exit {code} in {:.1} s", self.took.as_secs_f64())?,
            (false, None) => write!(f, "did not run")?,
        }
        if !self.output.is_empty() {
            write!(f, ": {}", self.output)?;
        }
        Ok(())
    }
}

/// What the commands of a command fault see of the stack.
fn command_env(stack: &mut LabStack) -> Vec<(&'static str, String)> {
    let mut env = vec![
        (faultline_services::vars::DATABASE_URL, stack.database.url()),
        ("FAULTLINE_STACK_DIR", stack.dir.display().to_string()),
    ];
    if let Ok(postgres) = stack.database.local() {
        if let Some(pid) = postgres.pid() {
            env.push(("FAULTLINE_POSTGRES_PID", pid.to_string()));
        }
        env.push((
            "FAULTLINE_POSTGRES_DATA",
            postgres.dir().display().to_string(),
        ));
    }
    if let Some(broker) = &stack.broker {
        env.push((
            faultline_services::vars::BOOTSTRAP_SERVERS,
            broker.bootstrap(),
        ));
    }
    env
}

/// The most bytes of a command's output kept; the rest is read and
/// counted, never held.
const KEPT_BYTES: usize = 16 * 1024;
/// How long the output of a command that has exited is still read: a
/// background process it left holding the pipe is not waited for.
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// What a command wrote, up to [`KEPT_BYTES`], and how much in all.
#[derive(Default)]
struct Output {
    kept: Vec<u8>,
    total: usize,
}

/// Reads `pipe` to its end into `output`, keeping at most [`KEPT_BYTES`].
async fn drain(
    pipe: Option<impl tokio::io::AsyncRead + Unpin>,
    output: std::sync::Arc<std::sync::Mutex<Output>>,
) {
    use tokio::io::AsyncReadExt;
    let Some(mut pipe) = pipe else { return };
    let mut buffer = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        let mut output = output.lock().expect("output lock");
        let room = KEPT_BYTES.saturating_sub(output.kept.len()).min(n);
        output.kept.extend_from_slice(&buffer[..room]);
        output.total += n;
    }
}

/// Runs `command` with `sh -c` in a process group of its own, killing the
/// group past `timeout`. Its output is read as it comes, at most
/// [`KEPT_BYTES`] kept; once `sh` has exited, what is left of its group (a
/// background process) is killed when `and_its_group` says so, and its
/// output is not waited for. Returns when `sh` has ended.
pub(super) async fn shell(
    command: &str,
    timeout: Duration,
    stack: &mut LabStack,
    and_its_group: bool,
) -> Ran {
    const KEPT: usize = 2000;
    let started = Instant::now();
    let mut ran = Ran {
        command: command.to_string(),
        status: None,
        took: Duration::ZERO,
        output: String::new(),
        timed_out: false,
    };
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(command_env(stack))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            ran.output = format!("could not start sh: {error}");
            return ran;
        }
    };
    let group = child.id().map(|pid| nix::unistd::Pid::from_raw(pid as i32));
    let output = std::sync::Arc::new(std::sync::Mutex::new(Output::default()));
    let readers = [
        tokio::spawn(drain(child.stdout.take(), output.clone())),
        tokio::spawn(drain(child.stderr.take(), output.clone())),
    ];
    let kill_group = || {
        if let Some(group) = group {
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => {
            ran.status = status.code();
            if and_its_group {
                kill_group();
            }
        }
        Ok(Err(error)) => ran.output = format!("waiting for it failed: {error}"),
        Err(_) => {
            ran.timed_out = true;
            kill_group();
        }
    }
    ran.took = started.elapsed();
    let mut held = false;
    for reader in readers {
        if tokio::time::timeout(OUTPUT_GRACE, reader).await.is_err() {
            held = true;
        }
    }
    let output = std::mem::take(&mut *output.lock().expect("output lock"));
    let text = String::from_utf8_lossy(&output.kept);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut said = match text.char_indices().nth(KEPT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    };
    if output.total > output.kept.len() || said.ends_with('…') {
        said.push_str(&format!(" ({} bytes of output in all)", output.total));
    }
    if held {
        said.push_str(" (a process it left running still holds its output)");
    }
    if ran.output.is_empty() {
        ran.output = said;
    }
    ran
}

/// A command fault's `verify`: `Ok` while the system is healthy.
pub(super) async fn verified(
    verify: &str,
    command: &CommandFault,
    stack: &mut LabStack,
) -> Result<(), Unverified> {
    let ran = shell(verify, command.timeout.0, stack, true).await;
    if ran.succeeded() {
        Ok(())
    } else {
        Err(Unverified::Probe(ProbeError::Failed(ran.to_string())))
    }
}
