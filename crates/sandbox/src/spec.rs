//! What the server asks for, and what it gets back.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cgroup::{Layout, Limits, Usage};

/// A host directory shown read-only inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub source: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: PathBuf,
}

/// One execution environment to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Unique, also the cgroup name: `[A-Za-z0-9_-]+`.
    pub id: String,
    /// The program to run, as a path inside the sandbox, and its arguments.
    pub argv: Vec<String>,
    /// The complete environment, `KEY=value`.
    pub env: Vec<String>,
    pub workdir: String,
    /// Read-only binds besides the system directories (code at `/var/task`, runtime, layers).
    pub binds: Vec<Bind>,
    /// Size of the private `/tmp`, in MiB.
    pub tmp_mb: u64,
    pub limits: Limits,
    pub hostname: String,
}

/// How the helper builds every sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperConfig {
    /// The template root filesystem (see [`crate::rootfs`]).
    pub rootfs: PathBuf,
    pub cgroups: Layout,
    /// Host uid/gid that the function's uid/gid inside map to: unprivileged, owning nothing.
    pub host_uid: u32,
    pub host_gid: u32,
    /// The function's uid/gid inside (Lambda's `sbx_user1051` is 993:990).
    pub uid: u32,
    pub gid: u32,
    /// Give sandboxes outside network access (veth + NAT); else loopback only.
    pub network: bool,
    /// Set `/sys/kernel/rcu_expedited` at start: moving a process into a cgroup waits for an
    /// RCU grace period, about 12 ms on an idle host, unless grace periods are expedited.
    pub expedite_rcu: bool,
    /// The loopback port, inside each sandbox's network namespace, on which the host will
    /// serve it (Runtime API and AWS endpoint).
    pub port: u16,
    /// How many blank sandboxes (namespaces, network and common mounts ready, no function
    /// yet) the helper keeps ahead of demand; 0 creates each sandbox on request.
    pub pool: usize,
    /// `tracing` filter for the helper's own log (on the server's stderr).
    pub log: String,
}

/// The helper's messages to the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Event {
    /// The sandbox runs. Comes with two descriptors: the listening socket inside the
    /// sandbox's network namespace, and the read end of the function's stdout+stderr.
    Spawned { id: String, pid: i32 },
    /// The sandbox could not be created; nothing of it remains.
    Failed { id: String, error: String },
    /// The sandbox's init exited (its function process ended, was killed, or ran out of
    /// memory); its cgroup has been read and removed.
    Exited {
        id: String,
        exit_code: Option<i32>,
        signal: Option<i32>,
        usage: Usage,
    },
}

/// The server's messages to the helper.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    Init(HelperConfig),
    Spawn(Box<SandboxSpec>),
}
