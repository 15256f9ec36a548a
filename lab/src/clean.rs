//! Leftovers of a runner that was itself killed: every process the lab
//! starts has a pid file naming its program, and each stack folder has a
//! `runner.pid` naming the runner that owns it. A folder whose runner is gone
//! has its processes stopped.

use std::path::Path;

/// Stops the processes of every stack folder under `dir` (at any depth)
/// whose runner is no longer alive. Returns the pids it stopped.
pub fn clean(dir: &Path) -> Vec<u32> {
    let mut stopped = Vec::new();
    if !runner_alive(dir) {
        stopped.extend(faultline_stack::process::clean_leftovers(dir));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stopped.extend(clean(&entry.path()));
            }
        }
    }
    stopped
}

/// Whether `dir/runner.pid` names a live faultline process other than this one.
fn runner_alive(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("runner.pid")) else {
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
