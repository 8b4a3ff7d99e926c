//! Execution-environment sandboxes.
//!
//! Owns every contact with the kernel's isolation machinery: user, PID, mount, IPC, UTS and
//! network namespaces; the read-only root filesystem ([`rootfs`]); cgroups v1 and v2
//! ([`cgroup`]); the seccomp deny list ([`seccomp`]); and the single-threaded helper process
//! that clones sandboxes on the server's behalf ([`helper`]).
//!
//! Files are named for the process that runs them: `spawner` (the server), [`helper`] and
//! `pool` (the helper; the pool also holds its preparer, a fork of the helper),
//! `parent_process` (the helper or the preparer making and claiming a sandbox),
//! `init_process` (the sandbox's init, and the start of its function's process). Module
//! dependencies run one way, from the top row down and left to right along an arrow:
//!
//! ```text
//! server:  spawner
//! helper:  helper ─▶ pool ─▶ parent_process ─▶ init_process
//! leaves:  channel  netns ─▶ net ◀─ slots  fds  mounts  procs  seccomp  rootfs  ephemeral  spec ─▶ cgroup
//! ```
//!
//! A module of an upper row uses only leaves and modules to its right; no leaf uses a module
//! of an upper row.
//!
//! Invariant: the only crate with `unsafe` and the only one that mounts, clones or writes
//! cgroup files. It knows nothing about Lambda, HTTP or the store: it runs a program with
//! given limits and reports how it ended.

pub mod cgroup;
mod channel;
mod ephemeral;
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
mod slots;
mod spawner;
pub mod spec;

pub use cgroup::{Layout, Limits, PeakMeter, Usage};
pub use channel::HelperError;
pub use spawner::{Exit, SpawnError, SpawnedSandbox, Spawner};
pub use spec::{Bind, HelperConfig, SandboxSpec, SpawnFailure, Zygote};

/// Kills a sandbox: SIGKILL to its init takes its whole PID namespace down. The helper then
/// reports the exit and removes the cgroup.
pub fn kill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// An error with what was being done: the text of a [`SpawnFailure::Platform`], which a
/// sandbox's init writes to its status pipe and the helper sends on in
/// [`spec::Event::Failed`].
pub(crate) fn err(context: &str, e: impl std::fmt::Display) -> String {
    format!("{context}: {e}")
}
