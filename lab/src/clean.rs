//! Leftovers of a runner that was itself killed: every process the lab
//! starts has a pid file naming its program, and each stack folder has a
//! `runner.pid` naming the runner that owns it. A folder whose runner is gone
//! has its processes stopped, and a run's stack folder is removed.

use std::path::Path;

/// The file in a run or stack folder that names the runner owning it.
pub const RUNNER_PID: &str = "runner.pid";

/// Stops the processes of every stack folder under `dir` (at any depth)
/// whose runner is no longer alive. Returns the pids it stopped.
pub fn clean(dir: &Path) -> Vec<u32> {
    // A folder whose runner is alive is left alone, all the way down.
    if runner_alive(dir) {
        return Vec::new();
    }
    // The stack folder of a run (`runs/<run>-<pid>-<repetition>`, made by
    // the runner for the run alone) goes with its processes; a folder given
    // to `stack up --dir` is the user's and stays.
    let a_runs_stack = (dir.join(RUNNER_PID).is_file()
        || dir.join(crate::run_folder::RUN_FOLDER_LINK).is_file())
        && dir
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|name| name == "runs");
    let mut stopped = faultline_stack::process::clean_leftovers(dir);
    if a_runs_stack {
        // Its processes keep their pid files in folders of their own
        // (`postgres/`, `broker/`, `services/<architecture>/`).
        stopped.extend(stop_below(dir));
        close_run_folder(dir);
        if let Err(error) = std::fs::remove_dir_all(dir) {
            tracing::warn!(%error, dir = %dir.display(), "Could not remove a dead run's stack folder.");
        }
        return stopped;
    }
    // Its owner is gone (checked above): the mark goes too.
    let _ = std::fs::remove_file(dir.join(RUNNER_PID));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stopped.extend(clean(&entry.path()));
            }
        }
    }
    stopped
}

/// Closes the run folder a dead run's stack folder `dir` names, if its
/// runner never did.
fn close_run_folder(dir: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(run) = std::fs::read(dir.join(crate::run_folder::RUN_FOLDER_LINK)) else {
        return;
    };
    let run = Path::new(std::ffi::OsStr::from_bytes(&run));
    // Requests k6 drove: its CSV, written every second, into rows.
    crate::k6::salvage(run);
    match crate::run_folder::close_killed(run) {
        Ok(true) => tracing::warn!(
            run = %run.display(),
            "The run's runner was killed; its run folder now says so."
        ),
        Ok(false) => {}
        Err(error) => tracing::warn!(%error, "Could not close a killed run's folder."),
    }
}

/// Stops the processes of every pid file in the folders below `dir`.
fn stop_below(dir: &Path) -> Vec<u32> {
    let mut stopped = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            stopped.extend(faultline_stack::process::clean_leftovers(&entry.path()));
            stopped.extend(stop_below(&entry.path()));
        }
    }
    stopped
}

/// Waits until the process `runner` has ended, then cleans `dir`: what a
/// runner killed outright (SIGKILL, the OOM killer) left there is stopped
/// at once, a frozen database included, not at the next command.
pub fn watch(runner: u32, dir: &Path) {
    while running(runner) {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let stopped = clean(dir);
    if !stopped.is_empty() {
        tracing::warn!(
            runner,
            stopped = stopped.len(),
            "The runner ended without stopping its stack; stopped it."
        );
    }
}

/// The watchdog this process started, if any.
static WATCHDOG: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// The pid of this process's watchdog: it outlives the runner on purpose.
pub fn watchdog_pid() -> Option<u32> {
    WATCHDOG.get().copied()
}

/// Whether process `pid` runs: its /proc entry is there and not a
/// zombie's (one that ended and waits for its parent to read its status).
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

/// The first argument that makes `faultline` a watchdog (`faultline
/// __watchdog RUNNER DIR`): an internal command, handled before the
/// command line is parsed, so that no completion or manual page offers it.
pub const WATCHDOG_ARG: &str = "__watchdog";

/// Starts the watchdog ([`WATCHDOG_ARG`]) for this process over `dir` (once), in a
/// process group of its own (a Ctrl-C at the terminal is the runner's to
/// handle).
pub fn start_watchdog(dir: &Path) {
    use std::os::unix::process::CommandExt;
    if WATCHDOG.get().is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let spawned = std::process::Command::new(exe)
        .arg(WATCHDOG_ARG)
        .arg(std::process::id().to_string())
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn();
    match spawned {
        Ok(child) => {
            let _ = WATCHDOG.set(child.id());
        }
        Err(error) => tracing::warn!(
            %error,
            "Could not start the watchdog; `faultline clean` stops what a killed runner leaves."
        ),
    }
}

/// Marks `dir` as this runner's: `dir/runner.pid` names this process. The
/// file is written aside and renamed into place, so that a `clean` of
/// another process never reads it empty (which would take the folder for a
/// dead runner's and remove what a live run is writing).
pub fn mark_owned(dir: &Path) -> std::io::Result<()> {
    let aside = dir.join(format!("{RUNNER_PID}.{}", std::process::id()));
    std::fs::write(&aside, format!("{} faultline\n", std::process::id()))?;
    std::fs::rename(&aside, dir.join(RUNNER_PID))
}

/// The live faultline process that owns `dir` (its `runner.pid`), if any
/// other than this one.
pub fn owner(dir: &Path) -> Option<u32> {
    runner_alive(dir)
        .then(|| std::fs::read_to_string(dir.join(RUNNER_PID)).ok())
        .flatten()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
        .filter(|pid| *pid != std::process::id())
}

/// Whether `dir/runner.pid` names a live faultline process other than this one.
fn runner_alive(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(RUNNER_PID)) else {
        return false;
    };
    let Some(pid) = text
        .split_whitespace()
        .next()
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return false;
    };
    if pid == std::process::id() {
        return true;
    }
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("faultline"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `sleep 30` child, once it has exec'd (until then it still runs
    /// this test's program, which a pid file naming `sleep` would not match).
    fn sleeper() -> std::process::Child {
        let sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while !std::fs::read_to_string(format!("/proc/{}/cmdline", sleeper.id()))
            .unwrap_or_default()
            .starts_with("sleep")
            && started.elapsed() < std::time::Duration::from_secs(2)
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        sleeper
    }

    #[test]
    fn a_runner_marking_its_folder_again_is_never_seen_dead_meanwhile() {
        let dir = std::env::temp_dir().join(format!("faultline-mark-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        mark_owned(&dir).unwrap();
        // `runner_alive` counts this process as alive only through the
        // file's contents: a moment of an empty file reads as dead.
        let marking = {
            let dir = dir.clone();
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    mark_owned(&dir).unwrap();
                }
            })
        };
        let mut dead = 0;
        while !marking.is_finished() {
            dead += usize::from(!runner_alive(&dir));
        }
        marking.join().unwrap();
        assert_eq!(
            dead, 0,
            "read as dead {dead} times while it was marked again"
        );
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "only runner.pid is left"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_folder_with_a_live_runner_is_left_alone_all_the_way_down() {
        let dir = std::env::temp_dir().join(format!("faultline-clean-{}", std::process::id()));
        let nested = dir.join("runs/a/postgres");
        std::fs::create_dir_all(&nested).unwrap();
        // This test process stands in for the live runner.
        std::fs::write(
            dir.join("runs/a/runner.pid"),
            format!("{} faultline\n", std::process::id()),
        )
        .unwrap();
        let mut sleeper = sleeper();
        std::fs::write(
            nested.join("postgres.pid"),
            format!("{} sleep\n", sleeper.id()),
        )
        .unwrap();
        assert!(clean(&dir).is_empty());
        assert!(
            sleeper.try_wait().unwrap().is_none(),
            "a live runner's process was stopped"
        );
        // Once the runner is gone, its leftovers are stopped.
        std::fs::remove_file(dir.join("runs/a/runner.pid")).unwrap();
        assert_eq!(clean(&dir), vec![sleeper.id()]);
        assert!(sleeper.wait().is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_dead_runs_stack_folder_goes_and_a_folder_given_by_hand_stays() {
        let dir = std::env::temp_dir().join(format!("faultline-clean-dead-{}", std::process::id()));
        let run = dir.join("runs/20261201T000000Z-quick-1-0");
        let by_hand = dir.join("my-stack");
        for folder in [&run, &by_hand] {
            std::fs::create_dir_all(folder.join("postgres")).unwrap();
            std::fs::write(folder.join("postgres/data"), "rows").unwrap();
        }
        // A runner that has exited.
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        gone.wait().unwrap();
        for folder in [&run, &by_hand] {
            std::fs::write(
                folder.join(RUNNER_PID),
                format!("{} faultline\n", gone.id()),
            )
            .unwrap();
        }
        // A process of the dead run, its pid file in a folder of its own.
        let mut sleeper = sleeper();
        std::fs::write(
            run.join("postgres/postgres.pid"),
            format!("{} sleep\n", sleeper.id()),
        )
        .unwrap();
        assert_eq!(clean(&dir), vec![sleeper.id()]);
        assert!(sleeper.wait().is_ok());
        assert!(!run.exists(), "the dead run's stack folder is still there");
        assert!(by_hand.join("postgres/data").is_file());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
