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
    /// Size of the private `/tmp`, in MiB: writes past it fail with `ENOSPC`.
    pub tmp_mb: u64,
    pub limits: Limits,
    pub hostname: String,
}

/// A program a blank sandbox starts before it is claimed, so that a function which would
/// start the same program finds it already initialised (a "zygote": for an interpreted
/// runtime, the interpreter with the runtime loaded).
///
/// The blank binds `binds`, forks the function's process (confined, unprivileged, as a
/// plain sandbox's at its claim) and has it exec `argv` with `env`, descriptor [`Zygote::SPEC_FD`] open. At the claim, the
/// program reads the spec there (a 4-byte little-endian length, then the [`SandboxSpec`] as
/// JSON) and must take on its environment and working directory as if it had been started
/// with them. The helper gives a zygote blank only to a spec it [serves](Zygote::serves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zygote {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    /// Binds made before the claim; a spec served by this zygote lists them too.
    pub binds: Vec<Bind>,
    /// Variables the program reads only when it starts (a trailing `*` matches a prefix):
    /// a spec is served only if it gives each the value `env` gives (or both leave it unset).
    pub fixed_env: Vec<String>,
}

impl Zygote {
    /// The descriptor on which the zygote receives its spec.
    pub const SPEC_FD: i32 = 3;

    /// Whether a program started by `spec` would be this one, started the same way.
    pub fn serves(&self, spec: &SandboxSpec) -> bool {
        self.argv == spec.argv
            && self.binds.iter().all(|b| spec.binds.contains(b))
            && self.fixed_env_matches(&spec.env)
    }

    fn fixed_env_matches(&self, env: &[String]) -> bool {
        let fixed = |entry: &&String| {
            let name = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
            self.fixed_env
                .iter()
                .any(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => name == pattern,
                })
        };
        let mut ours: Vec<&String> = self.env.iter().filter(fixed).collect();
        let mut theirs: Vec<&String> = env.iter().filter(fixed).collect();
        ours.sort_unstable();
        theirs.sort_unstable();
        ours == theirs
    }
}

/// How the helper builds every sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperConfig {
    /// The template root filesystem (see [`crate::rootfs`]).
    pub rootfs: PathBuf,
    pub cgroups: Layout,
    /// Host uid/gid that the function's uid/gid inside map to: unprivileged, owning nothing.
    /// The uid is the first of a range: each sandbox gets `host_uid + slot` (see `slots`).
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
    /// Zygotes the helper may keep blanks of (see [`Zygote`]).
    pub zygotes: Vec<Zygote>,
    /// How many blanks of each zygote the helper keeps ready, once a spec it serves has
    /// been seen (none before: a host that runs no such function pays nothing).
    pub zygote_pool: usize,
    /// `tracing` filter for the helper's own log (on the server's stderr).
    pub log: String,
    /// Where each sandbox's `/tmp` image is made (see `crate::ephemeral`): a file system of
    /// the spec's `tmp_mb` on disk. `None`, or a host without loop devices, ext4 or
    /// e2fsprogs: a tmpfs of that size, charged to the sandbox's memory.
    #[serde(default)]
    pub ephemeral_dir: Option<PathBuf>,
    /// This server run's instance tag ([`crate::instance::new_tag`]): its sandbox ids and
    /// blanks' cgroups carry it, so that what it leaves is known to be its own.
    pub instance: String,
    /// Where instances register while they live (see [`crate::instance`]); the default is
    /// [`crate::instance::REGISTRY`].
    pub registry: PathBuf,
}

/// Why a sandbox could not be created. Crosses two process seams as a value: from the
/// sandbox's init to the helper down the status pipe (JSON), and on to the server in
/// [`Event::Failed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum SpawnFailure {
    /// The function's own program could not be started: its working directory or its
    /// executable is missing or cannot run. The function's fault, not the platform's.
    #[error("{step}: {detail}")]
    Program {
        /// What was being done (`chdir to workdir`, `execve /var/task/bootstrap`).
        step: String,
        /// The system's reason (`ENOENT: No such file or directory`).
        detail: String,
    },
    /// The sandbox itself could not be made (namespaces, mounts, cgroups, the helper).
    #[error("{0}")]
    Platform(String),
}

impl From<String> for SpawnFailure {
    fn from(error: String) -> SpawnFailure {
        SpawnFailure::Platform(error)
    }
}

/// The helper's messages to the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Event {
    /// The sandbox runs. Comes with two descriptors: the listening socket inside the
    /// sandbox's network namespace, and the read end of the function's stdout+stderr.
    Spawned { id: String, pid: i32 },
    /// The sandbox could not be created; nothing of it remains.
    Failed { id: String, error: SpawnFailure },
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
    Init(Box<HelperConfig>),
    Spawn(Box<SandboxSpec>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(argv: &[&str], env: &[&str], binds: Vec<Bind>) -> SandboxSpec {
        SandboxSpec {
            id: "t".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|s| s.to_string()).collect(),
            workdir: "/var/task".into(),
            binds,
            tmp_mb: 1,
            limits: Limits {
                memory_mb: 128,
                pids_max: 1,
                cpu_millis: 1000,
            },
            hostname: "h".into(),
        }
    }

    #[test]
    fn a_zygote_serves_specs_that_start_it_the_same_way() {
        let runtime = Bind {
            source: "/srv/runtime".into(),
            target: "/var/runtime".into(),
        };
        let code = Bind {
            source: "/srv/code".into(),
            target: "/var/task".into(),
        };
        let z = Zygote {
            argv: vec![
                "/usr/bin/python3".into(),
                "/var/runtime/bootstrap.py".into(),
            ],
            env: vec!["LANG=C.UTF-8".into(), "PATH=/usr/bin".into(), "_Z=3".into()],
            binds: vec![runtime.clone()],
            fixed_env: vec!["LANG".into(), "PYTHON*".into()],
        };
        let argv = ["/usr/bin/python3", "/var/runtime/bootstrap.py"];
        let both = vec![code.clone(), runtime.clone()];
        // Other variables (unfixed) may differ, be added or be missing.
        assert!(z.serves(&spec(&argv, &["A=1", "LANG=C.UTF-8"], both.clone())));
        // A fixed variable changed, added (by prefix) or removed: not served.
        assert!(!z.serves(&spec(&argv, &["LANG=C"], both.clone())));
        assert!(!z.serves(&spec(
            &argv,
            &["LANG=C.UTF-8", "PYTHONPATH=/x"],
            both.clone()
        )));
        assert!(!z.serves(&spec(&argv, &["A=1"], both.clone())));
        // Another program, or without the zygote's binds: not served.
        assert!(!z.serves(&spec(&["/usr/bin/python3"], &["LANG=C.UTF-8"], both)));
        assert!(!z.serves(&spec(&argv, &["LANG=C.UTF-8"], vec![code])));
    }
}
