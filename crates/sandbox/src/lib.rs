//! Execution-environment sandboxes.
//!
//! Owns every contact with the kernel's isolation machinery: user, PID, mount, IPC, UTS and
//! network namespaces; the read-only root filesystem ([`rootfs`]); cgroups v1 and v2
//! ([`cgroup`]); the seccomp deny list ([`seccomp`]); and the single-threaded helper process
//! that clones sandboxes on the server's behalf ([`helper`]).
//!
//! Invariant: the only crate with `unsafe` and the only one that mounts, clones or writes
//! cgroup files. It knows nothing about Lambda, HTTP or the store: it runs a program with
//! given limits and reports how it ended.

pub mod cgroup;
mod fds;
pub mod helper;
mod init_process;
mod mounts;
pub mod net;
mod netns;
mod parent_process;
mod pool;
mod procs;
pub mod rootfs;
pub mod seccomp;
pub mod spec;

pub use cgroup::{Layout, Limits, PeakMeter, Usage};
pub use helper::{Exit, SpawnedSandbox, Spawner};
pub use spec::{Bind, HelperConfig, SandboxSpec, Zygote};

/// Kills a sandbox: SIGKILL to its init takes its whole PID namespace down. The helper then
/// reports the exit and removes the cgroup.
pub fn kill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// An error with what was being done: the text a sandbox's init writes to its status pipe,
/// and the helper sends on in [`spec::Event::Failed`].
pub(crate) fn err(context: &str, e: impl std::fmt::Display) -> String {
    format!("{context}: {e}")
}
