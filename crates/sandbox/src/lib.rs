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
//!          instance ─▶ cgroup
//! ```
//!
//! A module of an upper row uses only leaves and modules to its right; no leaf uses a module
//! of an upper row.
//!
//! Ends are final: an environment ends through its cgroup ([`cgroup::Layout::kill`]: CPU
//! quota lifted, then `cgroup.kill` on v2, freeze-kill-thaw on v1), never by signalling one
//! pid, so whatever its processes do (fork, spin, sit frozen) they are gone within a
//! second. Between invocations the caller freezes it ([`cgroup::Freezer`]).
//!
//! Nothing outlives the server: the helper ends every sandbox when the server's socket
//! closes (or its parent-death signal says the server is gone), the preparer and every
//! sandbox's init die with the helper (`PR_SET_PDEATHSIG`), and what a dead server's helper
//! could not clean is removed by the next helper to start on the host ([`instance`]).
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
pub mod instance;
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

pub use cgroup::{Freezer, Layout, Limits, PeakMeter, Usage};
pub use channel::HelperError;
pub use spawner::{Exit, SpawnError, SpawnedSandbox, Spawner};
pub use spec::{Bind, HelperConfig, SandboxSpec, SpawnFailure, Zygote};

/// Kills a sandbox's init by its pid alone: SIGKILL takes its whole PID namespace down, as
/// fast as the namespace's processes get the CPU to exit. An environment's end goes through
/// its cgroup instead ([`Layout::kill`], [`Layout::kill_and_wait`]), which lifts its CPU
/// quota first and also reaches a frozen environment; this is for tests and the last resort.
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
