//! Small process helpers shared by every process of the crate: the children the kernel lists
//! for a process, and the normal scheduling policy.
//!
//! Runs in the helper, the preparer and a sandbox's init alike; depends on no other module.
//! Each helper is a system call or a `/proc` read and keeps no state, so it may run in a
//! freshly cloned child as well as in the helper.

use nix::unistd::Pid;

/// Puts process `pid` (0: ourselves) under `SCHED_OTHER`.
pub(crate) fn sched_other(pid: Pid) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler with a valid, initialised parameter.
    if unsafe { libc::sched_setscheduler(pid.as_raw(), libc::SCHED_OTHER, &param) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The children of process `pid`, as the kernel lists them.
pub(crate) fn children_of(pid: Pid) -> Vec<Pid> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .map(Pid::from_raw),
            );
        }
    }
    out
}
