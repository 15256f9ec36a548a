//! Stopping a run on a signal: the first SIGINT or SIGTERM cancels the run
//! gracefully (faults are ended, the stack is torn down with each service
//! given its grace, the figures so far are kept); a second one asks the
//! teardown to hurry. Either way no process is left behind.

use tokio_util::sync::CancellationToken;

/// The two stages of stopping.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Stop the run: end the load and the faults, tear down, keep the data.
    pub graceful: CancellationToken,
    /// Tear down now: services get a short grace instead of their full one.
    pub force: CancellationToken,
}

impl Shutdown {
    /// A shutdown cancelled by SIGINT and SIGTERM: the first signal cancels
    /// `graceful`, the second `force`. Needs a tokio runtime.
    pub fn on_signals() -> Self {
        let shutdown = Self::default();
        let tokens = shutdown.clone();
        tokio::spawn(async move {
            let Ok(mut signals) = faultline_services::Signals::install() else {
                tracing::error!("Could not install signal handlers.");
                return;
            };
            for (i, token) in [tokens.graceful, tokens.force].into_iter().enumerate() {
                signals.next().await;
                token.cancel();
                if i == 0 {
                    eprintln!(
                        "\nfaultline: stopping: ending the faults and tearing the stack down \
                         (Ctrl-C again to hurry)"
                    );
                } else {
                    eprintln!("\nfaultline: hurrying the teardown");
                }
            }
        });
        shutdown
    }
}

/// Makes this process the reaper of its orphaned descendants (Linux), so a
/// grandchild whose parent died is re-parented here rather than to init and
/// [`stop_orphans`] can still find it.
pub fn become_subreaper() {
    if let Err(error) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(%error, "Could not become a child subreaper.");
    }
}

/// Kills and reaps every process still descending from this one: after a
/// teardown there should be none, and an orphan that came back to the
/// subreaper must not outlive the runner.
pub fn stop_orphans() -> usize {
    use nix::sys::signal::{Signal, kill};
    use nix::sys::wait::{WaitPidFlag, waitpid};
    use nix::unistd::Pid;
    // The watchdog waits for this process to end, on purpose.
    let watchdog = crate::clean::watchdog_pid().map(|pid| pid as i32);
    let orphans: Vec<i32> = faultline_stack::process::descendants(std::process::id() as i32)
        .into_iter()
        .filter(|pid| Some(*pid) != watchdog)
        .collect();
    for pid in &orphans {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        tracing::warn!(pid, "Killed a process left after the teardown.");
    }
    for pid in &orphans {
        let _ = waitpid(Pid::from_raw(*pid), Some(WaitPidFlag::empty()));
    }
    orphans.len()
}
