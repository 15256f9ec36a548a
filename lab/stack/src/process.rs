//! Child processes owned by a guard: each runs in its own process group, its
//! pid is recorded in a file, and dropping the guard stops the process and
//! everything it started (thaw, polite signal, wait, SIGKILL), so a panic
//! cannot leave one behind.
//!
//! Signals go to the process *tree*, not only the process group: PostgreSQL's
//! backends each call `setsid()`, so a signal to the postmaster's group never
//! reaches them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::StackError;

/// A running child process and its process group.
#[derive(Debug)]
pub struct Managed {
    name: String,
    child: Child,
    pid_file: Option<PathBuf>,
    /// The signal that asks the process to stop cleanly.
    stop_signal: Signal,
}

impl Managed {
    /// Spawns `command` as the leader of a new process group and records its
    /// pid in `pid_file`.
    pub fn spawn(
        name: &str,
        mut command: Command,
        pid_file: Option<PathBuf>,
        stop_signal: Signal,
    ) -> Result<Self, StackError> {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
        let program = Path::new(command.get_program())
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let child = command.spawn().map_err(|source| StackError::Spawn {
            what: name.to_string(),
            source,
        })?;
        if let Some(path) = &pid_file {
            // The program name lets a later clean-up tell this process from
            // an unrelated one that reused the pid.
            fs::write(path, format!("{} {program}\n", child.id())).map_err(|source| {
                StackError::Io {
                    path: path.clone(),
                    source,
                }
            })?;
        }
        tracing::debug!(name, pid = child.id(), "Started process.");
        Ok(Self {
            name: name.to_string(),
            child,
            pid_file,
            stop_signal,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn group(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Sends `signal` to the process and all its descendants. The leader is
    /// stopped first so that it cannot start new children meanwhile; it gets
    /// `signal` last.
    pub fn signal_tree(&self, signal: Signal) -> Result<(), StackError> {
        let leader = self.group();
        let error = |errno| StackError::Signal {
            what: self.name.clone(),
            signal: signal.as_str(),
            errno,
        };
        if signal != Signal::SIGCONT {
            nix::sys::signal::kill(leader, Signal::SIGSTOP).map_err(error)?;
        }
        for pid in descendants(leader.as_raw()) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
        }
        let _ = killpg(leader, signal);
        nix::sys::signal::kill(leader, signal).map_err(error)
    }

    /// `Some(status)` if the leader has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL to the process and all its descendants; waits until every one
    /// of them is gone.
    pub fn kill(&mut self) {
        let tree = descendants(self.group().as_raw());
        let _ = self.signal_tree(Signal::SIGKILL);
        let _ = self.child.wait();
        let started = Instant::now();
        while tree.iter().any(|pid| alive(*pid)) && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Asks the process to stop, waits up to `grace`, then kills the group.
    /// A stopped (frozen) group is thawed first. Returns how long it took.
    pub fn stop(&mut self, grace: Duration) -> Duration {
        let started = Instant::now();
        let _ = self.signal_tree(Signal::SIGCONT);
        if self.exited().is_none() {
            let _ = nix::sys::signal::kill(self.group(), self.stop_signal);
            while started.elapsed() < grace && self.exited().is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if self.exited().is_none() {
            tracing::warn!(name = %self.name, ?grace, "Process did not stop in time; killing it.");
        }
        self.kill();
        started.elapsed()
    }
}

/// A process that may be running: a service's or a program's, between a
/// kill and its restart empty. What ends it (a kill, a stop) empties it, so
/// a process that ended by itself is told from one the lab ended.
#[derive(Debug, Default)]
pub struct Slot(Option<Managed>);

impl Slot {
    /// Holds `process`, the one started now.
    pub fn hold(&mut self, process: Managed) {
        self.0 = Some(process);
    }

    pub fn pid(&self) -> Option<u32> {
        self.0.as_ref().map(Managed::pid)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// `Some(status)` if its process ended by itself (a crash, an exit); an
    /// empty slot has no process to ask.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.0.as_mut()?.exited()
    }

    /// SIGKILL to the process and everything it started.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.0.take() {
            process.kill();
        }
    }

    /// SIGTERM, then SIGKILL if it has not stopped within `grace`.
    pub fn stop(&mut self, grace: Duration) -> Duration {
        self.0.take().map(|mut p| p.stop(grace)).unwrap_or_default()
    }
}

/// The state letter of a process from `/proc/PID/stat`, with its parent.
fn stat(pid: i32) -> Option<(char, i32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself hold any character.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

/// The CPU time (user and system) the process `pid` has used, in seconds;
/// with `children`, that of every living descendant too and of the
/// children it has waited for (a PostgreSQL cluster: the postmaster, its
/// backends and those that ended). `None` if there is no such process.
pub fn cpu_seconds(pid: u32, children: bool) -> Option<f64> {
    let ticks = clock_ticks();
    let own = cpu_ticks(pid)?;
    if !children {
        return Some((own.0) as f64 / ticks);
    }
    // Every process's parent, to find the descendants.
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some((_, parent)) = stat(child as i32) {
            parents.push((child, parent as u32));
        }
    }
    let mut total = own.0 + own.1;
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (child, _) in parents.iter().filter(|(_, p)| *p == parent) {
            if let Some((used, _)) = cpu_ticks(*child) {
                total += used;
            }
            frontier.push(*child);
        }
    }
    Some(total as f64 / ticks)
}

/// The CPU time, in seconds, of the threads of `pid` named `name` (their
/// `comm`), from `/proc/PID/task`; `None` if the process cannot be read.
pub fn thread_cpu_seconds(pid: u32, name: &str) -> Option<f64> {
    let mut ticks = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let path = task.path();
        let named = fs::read_to_string(path.join("comm")).is_ok_and(|comm| comm.trim_end() == name);
        if named
            && let Some((own, _)) = fs::read_to_string(path.join("stat"))
                .ok()
                .as_deref()
                .and_then(stat_ticks)
        {
            ticks += own;
        }
    }
    Some(ticks as f64 / clock_ticks())
}

/// Clock ticks a second, the unit of `/proc`'s CPU times.
fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as f64
}

/// A process's own CPU ticks (utime + stime) and those of its children it
/// waited for (cutime + cstime), from `/proc/PID/stat`.
fn cpu_ticks(pid: u32) -> Option<(u64, u64)> {
    stat_ticks(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// [`cpu_ticks`] from the text of a `stat` file (a process's or a thread's).
fn stat_ticks(text: &str) -> Option<(u64, u64)> {
    let rest = &text[text.rfind(')')? + 2..];
    // After the name: state (3), ppid (4), ..., utime (14), stime (15),
    // cutime (16), cstime (17).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<i64>().ok());
    let own = field(14)? + field(15)?;
    let waited = field(16)? + field(17)?;
    Some((own.max(0) as u64, waited.max(0) as u64))
}

/// Whether the command line of `pid` names `program`.
fn runs(pid: i32, program: &str) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    // The program's own name, not a part of its path: every binary under
    // a folder called `faultline` would otherwise pass for `faultline`.
    use std::os::unix::ffi::OsStrExt;
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    !program.is_empty()
        && Path::new(std::ffi::OsStr::from_bytes(argv0))
            .file_name()
            .is_some_and(|name| name == program)
}

/// Whether a process exists and is not a zombie.
fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// Every live descendant of `root`, children before grandchildren.
pub fn descendants(root: i32) -> Vec<i32> {
    let mut parents: Vec<(i32, i32)> = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some((state, parent)) = stat(pid)
                && state != 'Z'
            {
                parents.push((pid, parent));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

impl Drop for Managed {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
        if let Some(path) = &self.pid_file {
            let _ = fs::remove_file(path);
        }
    }
}

/// Stops the process groups named by the pid files (`*.pid`) in `dir`: what
/// a runner killed with SIGKILL left behind. Returns the pids it signalled.
pub fn clean_leftovers(dir: &Path) -> Vec<u32> {
    let mut stopped = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return stopped;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // `runner.pid` names the folder's owner, not a process of the
        // stack: whoever cleans has found that runner gone, and its pid may
        // be anyone's by now.
        if path.extension().is_none_or(|e| e != "pid")
            || path.file_name().is_some_and(|n| n == "runner.pid")
        {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap_or_default();
        let mut fields = text.split_whitespace();
        let pid = fields.next().and_then(|p| p.parse::<i32>().ok());
        let program = fields.next().unwrap_or("");
        if let Some(pid) = pid.filter(|p| *p > 1 && alive(*p) && runs(*p, program)) {
            let leader = Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(leader, Signal::SIGSTOP);
            for child in descendants(pid) {
                let _ = nix::sys::signal::kill(Pid::from_raw(child), Signal::SIGKILL);
            }
            let _ = killpg(leader, Signal::SIGKILL);
            let _ = nix::sys::signal::kill(leader, Signal::SIGKILL);
            stopped.push(pid as u32);
        }
        let _ = fs::remove_file(&path);
    }
    stopped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_counts_the_descendants_when_asked() {
        // A shell that spins, then sleeps: its CPU time is this process's
        // descendants' only.
        let mut child = Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 30",
            ])
            .spawn()
            .unwrap();
        let started = Instant::now();
        let spun = loop {
            let used = cpu_seconds(child.id(), false).unwrap();
            if used >= 0.05 || started.elapsed() > Duration::from_secs(20) {
                break used;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let me = std::process::id();
        let alone = cpu_seconds(me, false).unwrap();
        let with_children = cpu_seconds(me, true).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(spun >= 0.05, "the child used {spun} s");
        assert!(
            with_children >= alone + spun - 0.02,
            "{with_children} s with children, {alone} s alone, the child {spun} s"
        );
        assert!(cpu_seconds(u32::MAX - 1, true).is_none());
    }

    #[test]
    fn the_cpu_time_of_named_threads_is_read_apart_from_the_rest() {
        // A thread that spins for 0.4 s, then waits while it is read.
        let (done, finished) = std::sync::mpsc::channel();
        let spinner = std::thread::Builder::new()
            .name("fl-test-spin".into())
            .spawn(move || {
                let mut x = 0u64;
                let begun = Instant::now();
                while begun.elapsed() < Duration::from_millis(400) {
                    x = x.wrapping_mul(31).wrapping_add(1);
                    std::hint::black_box(x);
                }
                done.send(()).unwrap();
                std::thread::sleep(Duration::from_secs(1));
            })
            .unwrap();
        finished.recv().unwrap();
        let me = std::process::id();
        let spun = thread_cpu_seconds(me, "fl-test-spin").unwrap();
        let whole = cpu_seconds(me, false).unwrap();
        let none = thread_cpu_seconds(me, "fl-no-such").unwrap();
        spinner.join().unwrap();
        // Spinning 0.4 s of wall time on a loaded machine: at least a
        // quarter of it on a core.
        assert!(spun >= 0.1, "the spinning thread used {spun} s");
        assert!(spun <= whole + 0.01, "{spun} s of {whole} s");
        assert_eq!(none, 0.0);
        assert!(thread_cpu_seconds(u32::MAX - 1, "fl-test-spin").is_none());
    }

    #[test]
    fn a_pid_is_taken_for_a_program_by_its_name_not_by_a_part_of_its_path() {
        let me = std::process::id() as i32;
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_string_lossy().to_string();
        assert!(runs(me, &name));
        // This test's binary lives under a folder named after the project:
        // that does not make it the `faultline` program.
        assert!(exe.to_string_lossy().contains("faultline"), "{exe:?}");
        assert!(!runs(me, "faultline"));
        assert!(!runs(me, ""));
    }

    #[test]
    fn a_runner_pid_file_is_never_acted_on() {
        let dir = std::env::temp_dir().join(format!("faultline-runner-pid-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_string_lossy().to_string();
        // A runner.pid that names a live process with the right name: this
        // very test. Cleaning must leave it alone.
        fs::write(
            dir.join("runner.pid"),
            format!("{} {name}\n", std::process::id()),
        )
        .unwrap();
        assert!(clean_leftovers(&dir).is_empty());
        assert!(dir.join("runner.pid").exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
