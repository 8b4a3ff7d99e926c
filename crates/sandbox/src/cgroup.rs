//! One cgroup per environment, on cgroup v2 or on the v1 hierarchies (`memory`, `pids`, `cpu`,
//! and `freezer` where it is mounted).
//!
//! Limits: memory with no swap, CPU as a CFS quota of the share the caller gives (how much
//! CPU a function gets is its service's policy, not the sandbox's), and a pids cap. The root
//! of Stratus's cgroups is a plain directory path, so tests can point it at a temporary
//! directory.
//!
//! Ends go through the cgroup, never through one pid: [`Layout::kill`] lifts the CPU quota
//! (a dying process needs CPU to exit, and a fork bomb's quota would starve its own
//! teardown for minutes), then kills every process in the cgroup: `cgroup.kill` on v2;
//! on v1 freeze, SIGKILL each listed process, thaw (frozen, nothing forks meanwhile).
//! [`Layout::wait_empty`] polls until the cgroup holds no process. Between invocations an
//! environment is frozen through a [`Freezer`] (`cgroup.freeze`, v1 `freezer.state`),
//! whose thaw is one write to a descriptor opened once.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const CFS_PERIOD_US: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no usable cgroup hierarchy: {0}")]
    Unavailable(String),
    #[error("cgroup {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Which cgroup layout the host has, and where Stratus's subtree lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// Unified hierarchy: `<root>/<id>/memory.max`, ...
    V2 { root: PathBuf },
    /// Legacy hierarchies: one subtree per controller.
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpu: PathBuf,
        /// The v1 freezer hierarchy's subtree, where it is mounted: without it an
        /// environment is neither frozen between invocations nor frozen while it is killed.
        #[serde(default)]
        freezer: Option<PathBuf>,
    },
}

/// The limits of one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_mb: u64,
    pub pids_max: u64,
    /// Thousandths of a CPU, chosen by the caller.
    pub cpu_millis: u64,
}

impl Limits {
    /// CPU quota per 100 ms period, in microseconds: `cpu_millis` thousandths of one CPU, at
    /// least 1 ms (the kernel's minimum).
    pub fn cfs_quota_us(&self) -> u64 {
        (self.cpu_millis * CFS_PERIOD_US / 1000).max(1000)
    }
}

/// An environment's peak memory, held open: a read per invocation costs one system call and
/// no path lookup. On v2 the open descriptor is also what a reset applies to: writing
/// `memory.peak` restarts the peak seen through that same descriptor.
#[derive(Debug)]
pub struct PeakMeter {
    file: fs::File,
}

impl PeakMeter {
    /// Starts a new measurement (per invocation). Best effort.
    pub fn reset(&self) {
        use std::os::unix::fs::FileExt;
        let _ = self.file.write_at(b"0", 0);
    }

    /// The highest memory use, in bytes, since the last reset.
    pub fn read(&self) -> u64 {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 32];
        let n = self.file.read_at(&mut buf, 0).unwrap_or(0);
        std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// Figures read back from an environment's cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub memory_current_bytes: u64,
    pub memory_peak_bytes: u64,
    pub oom_kills: u64,
}

impl Layout {
    /// Finds the host's layout under `base` (usually `/sys/fs/cgroup`), with Stratus's
    /// environments grouped under `parent`. Prefers v2 when its root offers the memory and
    /// pids controllers; otherwise uses the v1 hierarchies (this is the hybrid case).
    pub fn detect(base: &Path, parent: &str) -> Result<Layout, CgroupError> {
        let v2_root = if base.join("cgroup.controllers").is_file() {
            Some(base.to_owned())
        } else if base.join("unified/cgroup.controllers").is_file() {
            Some(base.join("unified"))
        } else {
            None
        };
        if let Some(root) = v2_root {
            let ctrls = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            let has = |c: &str| ctrls.split_whitespace().any(|x| x == c);
            if has("memory") && has("pids") {
                return Ok(Layout::V2 {
                    root: root.join(parent),
                });
            }
        }
        let v1 = |c: &str| base.join(c);
        if v1("memory").join("memory.limit_in_bytes").is_file() && v1("pids").is_dir() {
            let cpu = if v1("cpu").join("cpu.cfs_quota_us").is_file() {
                v1("cpu")
            } else {
                v1("cpu,cpuacct")
            };
            let freezer = v1("freezer").join("cgroup.procs").is_file();
            return Ok(Layout::V1 {
                memory: v1("memory").join(parent),
                pids: v1("pids").join(parent),
                cpu: cpu.join(parent),
                freezer: freezer.then(|| v1("freezer").join(parent)),
            });
        }
        Err(CgroupError::Unavailable(format!(
            "{} has neither a cgroup v2 root with memory and pids nor v1 memory/pids hierarchies",
            base.display()
        )))
    }

    /// Creates Stratus's parent cgroups (and, on v2, delegates the controllers to them).
    pub fn prepare(&self) -> Result<(), CgroupError> {
        match self {
            Layout::V2 { root } => {
                if let Some(parent) = root.parent() {
                    delegate_v2(parent)?;
                }
                fs::create_dir_all(root).map_err(io(root))?;
                enable_v2_controllers(root);
            }
            Layout::V1 { freezer, .. } => {
                for dir in self.parents() {
                    fs::create_dir_all(dir).map_err(io(dir))?;
                }
                if let Some(anchor) = freezer.as_deref().and_then(freezer_anchor) {
                    // Best effort: without it freezing works, only slower.
                    if let Err(e) = fs::create_dir_all(&anchor)
                        .and_then(|()| fs::write(anchor.join("freezer.state"), "FROZEN"))
                    {
                        tracing::debug!(error = %e, path = %anchor.display(), "no freezer anchor");
                    }
                }
            }
        }
        Ok(())
    }

    /// Stratus's parent cgroups: one on v2, one per hierarchy on v1.
    fn parents(&self) -> Vec<&PathBuf> {
        match self {
            Layout::V2 { root } => vec![root],
            Layout::V1 {
                memory,
                pids,
                cpu,
                freezer,
            } => [memory, pids, cpu].into_iter().chain(freezer).collect(),
        }
    }

    /// The cgroup directories of environment `id`.
    pub fn paths(&self, id: &str) -> Vec<PathBuf> {
        self.parents().into_iter().map(|p| p.join(id)).collect()
    }

    /// Creates environment `id`'s cgroup with its limits. Idempotent.
    pub fn create(&self, id: &str, limits: &Limits) -> Result<(), CgroupError> {
        self.create_empty(id)?;
        self.set_limits(id, limits)
    }

    /// Creates cgroup `id` without limits (a blank sandbox's, until it is claimed).
    pub fn create_empty(&self, id: &str) -> Result<(), CgroupError> {
        for dir in self.paths(id) {
            fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(())
    }

    /// Sets cgroup `id`'s limits: memory with no swap, pids, the CPU quota.
    pub fn set_limits(&self, id: &str, limits: &Limits) -> Result<(), CgroupError> {
        self.change_limits(id, None, limits)
    }

    /// Sets cgroup `id`'s limits to `to`, given that it has `from` already (a blank placed
    /// with the limits of the last claim): writes only what differs, each write being a
    /// path lookup and a system call or three.
    pub fn change_limits(
        &self,
        id: &str,
        from: Option<&Limits>,
        to: &Limits,
    ) -> Result<(), CgroupError> {
        let bytes = to.memory_mb * 1024 * 1024;
        let quota = to.cfs_quota_us();
        let memory = from.is_none_or(|f| f.memory_mb != to.memory_mb);
        let pids = from.is_none_or(|f| f.pids_max != to.pids_max);
        let cpu = from.is_none_or(|f| f.cfs_quota_us() != quota);
        match self {
            Layout::V2 { root } => {
                let dir = root.join(id);
                if memory {
                    write(&dir, "memory.max", &bytes.to_string())?;
                }
                if from.is_none() {
                    // Absent when the kernel has no swap support: then there is no swap to deny.
                    let _ = write(&dir, "memory.swap.max", "0");
                }
                if pids {
                    write(&dir, "pids.max", &to.pids_max.to_string())?;
                }
                if cpu {
                    let _ = write(&dir, "cpu.max", &format!("{quota} {CFS_PERIOD_US}"));
                }
            }
            Layout::V1 {
                memory: m,
                pids: p,
                cpu: c,
                ..
            } => {
                let m = m.join(id);
                if memory {
                    // memsw may never be below the memory limit: when the limit grows, memsw
                    // goes first (it is absent without swap accounting, hence unchecked).
                    let growing = from.is_some_and(|f| f.memory_mb < to.memory_mb);
                    let memsw = |m: &Path| {
                        let _ = write(m, "memory.memsw.limit_in_bytes", &bytes.to_string());
                    };
                    if growing {
                        memsw(&m);
                    }
                    write(&m, "memory.limit_in_bytes", &bytes.to_string())?;
                    if !growing {
                        memsw(&m);
                    }
                }
                if from.is_none() {
                    let _ = write(&m, "memory.swappiness", "0");
                }
                if pids {
                    write(&p.join(id), "pids.max", &to.pids_max.to_string())?;
                }
                let c = c.join(id);
                if from.is_none() {
                    write(&c, "cpu.cfs_period_us", &CFS_PERIOD_US.to_string())?;
                }
                if cpu {
                    write(&c, "cpu.cfs_quota_us", &quota.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// Whether a cgroup can be renamed: v1 hierarchies allow it, the v2 hierarchy does not.
    pub fn renames(&self) -> bool {
        matches!(self, Layout::V1 { .. })
    }

    /// Renames cgroup `from` to `to` in every hierarchy (v1 only; its processes stay).
    pub fn rename(&self, from: &str, to: &str) -> Result<(), CgroupError> {
        if !self.renames() {
            return Err(CgroupError::Unavailable(
                "cgroup v2 cannot rename a cgroup".into(),
            ));
        }
        for (a, b) in self.paths(from).into_iter().zip(self.paths(to)) {
            fs::rename(&a, &b).map_err(io(&a))?;
        }
        Ok(())
    }

    /// Changes environment `id`'s CPU quota to `limits`'s, leaving its other limits as they
    /// are (a caller may give a sandbox more CPU for a while, then less).
    pub fn set_cpu(&self, id: &str, limits: &Limits) -> Result<(), CgroupError> {
        let quota = limits.cfs_quota_us();
        match self {
            Layout::V2 { root } => write(
                &root.join(id),
                "cpu.max",
                &format!("{quota} {CFS_PERIOD_US}"),
            ),
            Layout::V1 { cpu, .. } => write(&cpu.join(id), "cpu.cfs_quota_us", &quota.to_string()),
        }
    }

    /// Moves process `pid` (and so everything it later starts) into environment `id`.
    pub fn attach(&self, id: &str, pid: i32) -> Result<(), CgroupError> {
        for dir in self.paths(id) {
            write(&dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    pub fn usage(&self, id: &str) -> Usage {
        let read_u64 = |dir: &Path, file: &str| -> u64 {
            fs::read_to_string(dir.join(file))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        };
        let keyed = |dir: &Path, file: &str, key: &str| -> u64 {
            fs::read_to_string(dir.join(file))
                .ok()
                .and_then(|s| {
                    s.lines().find_map(|l| {
                        let (k, v) = l.split_once(' ')?;
                        (k == key).then(|| v.trim().parse().ok()).flatten()
                    })
                })
                .unwrap_or(0)
        };
        match self {
            Layout::V2 { root } => {
                let d = root.join(id);
                Usage {
                    memory_current_bytes: read_u64(&d, "memory.current"),
                    memory_peak_bytes: read_u64(&d, "memory.peak"),
                    oom_kills: keyed(&d, "memory.events", "oom_kill"),
                }
            }
            Layout::V1 { memory, .. } => {
                let d = memory.join(id);
                Usage {
                    memory_current_bytes: read_u64(&d, "memory.usage_in_bytes"),
                    memory_peak_bytes: read_u64(&d, "memory.max_usage_in_bytes"),
                    oom_kills: keyed(&d, "memory.oom_control", "oom_kill"),
                }
            }
        }
    }

    /// Opens environment `id`'s peak-memory counter, to be read once per invocation.
    pub fn peak_meter(&self, id: &str) -> Result<PeakMeter, CgroupError> {
        let path = match self {
            Layout::V2 { root } => root.join(id).join("memory.peak"),
            Layout::V1 { memory, .. } => memory.join(id).join("memory.max_usage_in_bytes"),
        };
        // Read-only where the kernel cannot reset the peak (older v2): then it covers the
        // environment's life.
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .or_else(|_| fs::File::open(&path))
            .map_err(io(&path))?;
        Ok(PeakMeter { file })
    }

    /// Removes environment `id`'s cgroups. Its processes must be gone.
    pub fn remove(&self, id: &str) -> Result<(), CgroupError> {
        let mut first_err = None;
        for dir in self.paths(id) {
            match fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    first_err.get_or_insert(CgroupError::Io {
                        path: dir.clone(),
                        source: e,
                    });
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Ends every process of environment `id`, whatever it does: the CPU quota is lifted
    /// first (dying processes must not be throttled by the quota of the very cgroup being
    /// emptied), then v2 writes `cgroup.kill`; v1 (or a v2 kernel without `cgroup.kill`)
    /// freezes the cgroup so nothing forks meanwhile, SIGKILLs every process listed, and
    /// thaws it (a frozen v1 task dies only once thawed). Works on a frozen cgroup. Does not
    /// wait for the processes to be gone: [`Layout::wait_empty`] does. A cgroup that no
    /// longer exists has nothing to kill.
    pub fn kill(&self, id: &str) -> Result<(), CgroupError> {
        self.lift_cpu(id);
        match self {
            Layout::V2 { root } => {
                let dir = root.join(id);
                match write_existing(&dir.join("cgroup.kill"), "1") {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        if !dir.is_dir() {
                            return Ok(());
                        }
                        // A kernel before 5.14: the freezer's way.
                        freeze_kill_thaw(&dir.join("cgroup.freeze"), ("1", "0"), &dir)?;
                    }
                    Err(source) => {
                        return Err(CgroupError::Io {
                            path: dir.join("cgroup.kill"),
                            source,
                        });
                    }
                }
                // Killed tasks leave a frozen cgroup by themselves; thawed, the cgroup is
                // not left frozen should anything be moved into it later.
                let _ = write_existing(&dir.join("cgroup.freeze"), "0");
                Ok(())
            }
            Layout::V1 { pids, freezer, .. } => match freezer {
                Some(f) => {
                    let dir = f.join(id);
                    if !dir.is_dir() {
                        return Ok(());
                    }
                    freeze_kill_thaw(&dir.join("freezer.state"), ("FROZEN", "THAWED"), &dir)
                }
                None => {
                    kill_listed(&pids.join(id));
                    Ok(())
                }
            },
        }
    }

    /// Kills environment `id` ([`Layout::kill`]) and waits, at most `within`, until no
    /// process is left in its cgroup (killing again every 50 ms, should one have escaped
    /// a round). Says whether it is empty (or gone).
    pub fn kill_and_wait(&self, id: &str, within: std::time::Duration) -> bool {
        let start = std::time::Instant::now();
        let mut last_kill = start;
        let _ = self.kill(id);
        loop {
            if self.is_empty(id) {
                return true;
            }
            if start.elapsed() >= within {
                return false;
            }
            if last_kill.elapsed() >= std::time::Duration::from_millis(50) {
                let _ = self.kill(id);
                last_kill = std::time::Instant::now();
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Whether environment `id`'s cgroup holds no process (or no longer exists).
    pub fn is_empty(&self, id: &str) -> bool {
        self.paths(id).iter().all(|dir| listed(dir).is_empty())
    }

    /// The processes in environment `id`'s cgroup (host pids).
    pub fn procs(&self, id: &str) -> Vec<i32> {
        let mut out: Vec<i32> = self.paths(id).iter().flat_map(|d| listed(d)).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Removes environment `id`'s CPU quota (before its processes are killed). Best effort.
    fn lift_cpu(&self, id: &str) {
        let _ = match self {
            Layout::V2 { root } => write_existing(&root.join(id).join("cpu.max"), "max"),
            Layout::V1 { cpu, .. } => write_existing(&cpu.join(id).join("cpu.cfs_quota_us"), "-1"),
        };
    }

    /// Opens environment `id`'s freezer, to freeze it between invocations. Unavailable on
    /// v1 without the freezer hierarchy.
    pub fn freezer(&self, id: &str) -> Result<Freezer, CgroupError> {
        let (path, values) = match self {
            Layout::V2 { root } => (root.join(id).join("cgroup.freeze"), ("1", "0")),
            Layout::V1 {
                freezer: Some(f), ..
            } => (f.join(id).join("freezer.state"), ("FROZEN", "THAWED")),
            Layout::V1 { freezer: None, .. } => {
                return Err(CgroupError::Unavailable(
                    "no v1 freezer hierarchy is mounted".into(),
                ));
            }
        };
        let file = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        Ok(Freezer {
            file,
            frozen: values.0,
            thawed: values.1,
        })
    }

    /// Whether environment `id` is frozen now, as the kernel reports it (v2
    /// `cgroup.events`, v1 `freezer.state`); `None` without a freezer.
    pub fn frozen(&self, id: &str) -> Option<bool> {
        match self {
            Layout::V2 { root } => {
                let events = fs::read_to_string(root.join(id).join("cgroup.events")).ok()?;
                Some(events.lines().any(|l| l.trim() == "frozen 1"))
            }
            Layout::V1 {
                freezer: Some(f), ..
            } => {
                let state = fs::read_to_string(f.join(id).join("freezer.state")).ok()?;
                Some(state.trim() == "FROZEN")
            }
            Layout::V1 { freezer: None, .. } => None,
        }
    }

    /// Removes Stratus's parent cgroups if no environment is left in them.
    pub fn remove_parent(&self) {
        for d in self.parents() {
            let _ = fs::remove_dir(d);
        }
    }

    /// Environment cgroups that exist now (for leak checks and start-up cleanup).
    /// On v1, a name found in any of the hierarchies (a half-removed one included).
    pub fn list(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .parents()
            .into_iter()
            .flat_map(|dir| {
                fs::read_dir(dir)
                    .map(|rd| {
                        rd.flatten()
                            .filter(|e| e.path().is_dir())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// An empty v1 cgroup beside Stratus's freezer subtree (`<parent>.anchor`), kept frozen for
/// good. The v1 freezer switches a kernel static key on when the number of freezing
/// cgroups goes from 0 to 1 and off when it returns to 0, and each switch patches the
/// kernel's text on every CPU (an IPI to each): at one freeze and one thaw per invocation
/// that cost more than the rest of a warm invoke. With one cgroup always frozen the count
/// never returns to 0, and freezing costs a counter's increment. Never removed: an empty
/// frozen cgroup holds nothing, and another server may count on it.
fn freezer_anchor(freezer: &Path) -> Option<PathBuf> {
    let name = freezer.file_name()?.to_str()?;
    Some(freezer.with_file_name(format!("{name}.anchor")))
}

/// An environment's freezer, held open: freezing or thawing costs one write and no path
/// lookup (the thaw is on the warm invoke's path). A frozen environment gets no CPU at all;
/// it can still be killed ([`Layout::kill`] thaws what it kills).
#[derive(Debug)]
pub struct Freezer {
    file: fs::File,
    frozen: &'static str,
    thawed: &'static str,
}

impl Freezer {
    pub fn freeze(&self) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.write_at(self.frozen.as_bytes(), 0).map(|_| ())
    }

    pub fn thaw(&self) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.write_at(self.thawed.as_bytes(), 0).map(|_| ())
    }
}

/// How long a v1 kill waits for the cgroup to reach `FROZEN` before it signals anyway (a
/// task in uninterruptible sleep holds it in `FREEZING`; it dies once it wakes).
const FREEZE_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Freezes through `state` (writing `values.0`), SIGKILLs every process listed in `dir`,
/// thaws (`values.1`): frozen, no process forks a new one between the listing and the
/// signals, and every signal is pending when they wake.
fn freeze_kill_thaw(state: &Path, values: (&str, &str), dir: &Path) -> Result<(), CgroupError> {
    let frozen = write_existing(state, values.0);
    if frozen.is_ok() {
        // v1 reports FREEZING until every task is frozen; v2 says `frozen 1` in
        // `cgroup.events`.
        let start = std::time::Instant::now();
        while start.elapsed() < FREEZE_WAIT {
            let done = match state.file_name().and_then(|n| n.to_str()) {
                Some("freezer.state") => fs::read_to_string(state)
                    .map(|s| s.trim() == "FROZEN")
                    .unwrap_or(true),
                _ => fs::read_to_string(dir.join("cgroup.events"))
                    .map(|s| s.lines().any(|l| l.trim() == "frozen 1"))
                    .unwrap_or(true),
            };
            if done {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    kill_listed(dir);
    if frozen.is_ok() {
        write_existing(state, values.1).map_err(io(state))?;
    }
    Ok(())
}

/// SIGKILLs every process `dir`'s `cgroup.procs` lists.
fn kill_listed(dir: &Path) {
    for pid in listed(dir) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// The processes `dir`'s `cgroup.procs` lists (none if it does not exist).
fn listed(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|&p: &i32| p > 0)
        .collect()
}

/// Writes a cgroup file that must exist already (a missing one is `NotFound`, never
/// created: in a test's plain directory as in the kernel's).
fn write_existing(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?
        .write_all(value.as_bytes())
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    fs::write(&path, value).map_err(io(&path))
}

/// Where [`delegate_v2`] moves the processes it finds in the cgroup above Stratus's.
pub const V2_HOST_LEAF: &str = "stratus-host";

/// Makes v2 cgroup `dir` hand the memory, pids and cpu controllers down to its children.
/// The kernel refuses that for a cgroup that holds processes itself (the root excepted):
/// inside a container, whose cgroup namespace shows its own cgroup as the root, the
/// container's processes (this server's among them) sit right there. Those are moved into a
/// leaf of their own, [`V2_HOST_LEAF`], first, as docker-in-docker does; so are a systemd
/// service's when Stratus is pointed at the cgroup delegated to it.
fn delegate_v2(dir: &Path) -> Result<(), CgroupError> {
    let control = dir.join("cgroup.subtree_control");
    // Memory first and alone: cpu and pids are threaded controllers, which a cgroup with
    // processes may enable, and doing so would make it a thread root, where memory can no
    // longer be enabled at all (EOPNOTSUPP), nor processes moved to a new child.
    match fs::write(&control, "+memory") {
        Ok(()) => {
            enable_v2_controllers(dir);
            if delegates(dir) {
                return Ok(());
            }
        }
        // Processes in the way (EBUSY), or the thread root they make (EOPNOTSUPP): below.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EOPNOTSUPP)) => {}
        Err(e) => {
            return Err(CgroupError::Unavailable(format!(
                "{} does not delegate the memory controller to its children: {e}",
                dir.display()
            )));
        }
    }
    // Undo such a state, should something have left it.
    for c in ["-cpu", "-pids"] {
        let _ = fs::write(&control, c);
    }
    let leaf = dir.join(V2_HOST_LEAF);
    fs::create_dir_all(&leaf).map_err(io(&leaf))?;
    let mut moved = 0;
    // Processes may fork meanwhile; a few rounds find their children.
    for _ in 0..8 {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        if procs.trim().is_empty() {
            break;
        }
        for pid in procs.split_whitespace() {
            // One that ended meanwhile is refused (ESRCH): nothing to move.
            moved += usize::from(fs::write(leaf.join("cgroup.procs"), pid).is_ok());
        }
    }
    let refused = enable_v2_controllers(dir);
    if delegates(dir) {
        tracing::info!(
            cgroup = %dir.display(),
            leaf = V2_HOST_LEAF,
            moved,
            "moved the processes of the cgroup above Stratus's into a leaf, so that it can \
             delegate controllers"
        );
        return Ok(());
    }
    // Gone if empty; else the processes moved stay there, and the error says so.
    let _ = fs::remove_dir(&leaf);
    let has = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    Err(CgroupError::Unavailable(format!(
        "{} does not delegate the memory and pids controllers to its children \
         (cgroup.subtree_control: {:?}; {}; {moved} of its processes were moved to {})",
        dir.display(),
        has.trim(),
        refused.join(", "),
        leaf.display()
    )))
}

/// Whether v2 cgroup `dir`'s children get the memory and pids controllers.
fn delegates(dir: &Path) -> bool {
    let ctrls = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    ["memory", "pids"]
        .iter()
        .all(|c| ctrls.split_whitespace().any(|x| x == *c))
}

/// Asks for the memory, pids and cpu controllers in `dir`'s children; says which the
/// kernel refused, and why.
fn enable_v2_controllers(dir: &Path) -> Vec<String> {
    ["+memory", "+pids", "+cpu"]
        .into_iter()
        .filter_map(|c| {
            let e = fs::write(dir.join("cgroup.subtree_control"), c).err()?;
            Some(format!("{c}: {e}"))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_quota_is_the_given_share_of_each_period() {
        let l = |cpu_millis| Limits {
            memory_mb: 128,
            pids_max: 1024,
            cpu_millis,
        };
        assert_eq!(l(1000).cfs_quota_us(), 100_000);
        assert_eq!(l(2000).cfs_quota_us(), 200_000);
        assert_eq!(l(72).cfs_quota_us(), 7_200);
        // Never below the kernel's minimum of 1 ms.
        assert_eq!(l(0).cfs_quota_us(), 1000);
    }

    #[test]
    fn detects_hybrid_v1_and_plain_v2() {
        let d = tempfile::tempdir().unwrap();
        // Hybrid: a unified mount without controllers, v1 memory and pids.
        fs::create_dir_all(d.path().join("unified")).unwrap();
        fs::write(d.path().join("unified/cgroup.controllers"), "").unwrap();
        fs::create_dir_all(d.path().join("memory")).unwrap();
        fs::write(d.path().join("memory/memory.limit_in_bytes"), "").unwrap();
        fs::create_dir_all(d.path().join("pids")).unwrap();
        fs::create_dir_all(d.path().join("cpu")).unwrap();
        fs::write(d.path().join("cpu/cpu.cfs_quota_us"), "").unwrap();
        assert!(matches!(
            Layout::detect(d.path(), "stratus").unwrap(),
            Layout::V1 { .. }
        ));

        let v2 = tempfile::tempdir().unwrap();
        fs::write(
            v2.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids",
        )
        .unwrap();
        assert_eq!(
            Layout::detect(v2.path(), "stratus").unwrap(),
            Layout::V2 {
                root: v2.path().join("stratus")
            }
        );
    }

    #[test]
    fn v1_list_sees_a_cgroup_left_in_any_hierarchy() {
        let d = tempfile::tempdir().unwrap();
        let v1 = Layout::V1 {
            memory: d.path().join("memory"),
            pids: d.path().join("pids"),
            cpu: d.path().join("cpu"),
            freezer: None,
        };
        v1.create_empty("whole").unwrap();
        // Half removed: only its pids directory is left.
        fs::create_dir_all(d.path().join("pids/half")).unwrap();
        assert_eq!(v1.list(), ["half", "whole"]);
        v1.remove("half").unwrap();
        assert_eq!(v1.list(), ["whole"]);
    }

    #[test]
    fn peak_meter_reads_the_layouts_peak_file() {
        let d = tempfile::tempdir().unwrap();
        let v2 = Layout::V2 {
            root: d.path().to_owned(),
        };
        fs::create_dir_all(d.path().join("env1")).unwrap();
        fs::write(d.path().join("env1/memory.peak"), "7340032\n").unwrap();
        let m = v2.peak_meter("env1").unwrap();
        assert_eq!(m.read(), 7_340_032);
        // Read again through the same descriptor: the value as it is now.
        fs::write(d.path().join("env1/memory.peak"), "8388608\n").unwrap();
        assert_eq!(m.read(), 8_388_608);
        let v1 = Layout::V1 {
            memory: d.path().join("memory"),
            pids: d.path().join("pids"),
            cpu: d.path().join("cpu"),
            freezer: None,
        };
        fs::create_dir_all(d.path().join("memory/env2")).unwrap();
        fs::write(
            d.path().join("memory/env2/memory.max_usage_in_bytes"),
            "4096\n",
        )
        .unwrap();
        assert_eq!(v1.peak_meter("env2").unwrap().read(), 4096);
        assert!(v1.peak_meter("absent").is_err());
    }

    #[test]
    fn v2_files_are_written_as_the_kernel_expects() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::V2 {
            root: d.path().to_owned(),
        };
        let limits = Limits {
            memory_mb: 256,
            pids_max: 64,
            cpu_millis: 144,
        };
        layout.create("env1", &limits).unwrap();
        let read = |f: &str| fs::read_to_string(d.path().join("env1").join(f)).unwrap();
        assert_eq!(read("memory.max"), (256u64 << 20).to_string());
        assert_eq!(read("memory.swap.max"), "0");
        assert_eq!(read("pids.max"), "64");
        assert_eq!(read("cpu.max"), "14400 100000");
        fs::write(
            d.path().join("env1/memory.events"),
            "low 0\noom 1\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(layout.usage("env1").oom_kills, 2);
        assert_eq!(layout.list(), vec!["env1".to_string()]);
    }

    #[test]
    fn v1_files_are_written_per_controller() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::V1 {
            memory: d.path().join("memory"),
            pids: d.path().join("pids"),
            cpu: d.path().join("cpu"),
            freezer: None,
        };
        let limits = Limits {
            memory_mb: 128,
            pids_max: 10,
            cpu_millis: 500,
        };
        layout.create("e", &limits).unwrap();
        let read = |p: &str| fs::read_to_string(d.path().join(p)).unwrap();
        assert_eq!(
            read("memory/e/memory.limit_in_bytes"),
            (128u64 << 20).to_string()
        );
        assert_eq!(
            read("memory/e/memory.memsw.limit_in_bytes"),
            (128u64 << 20).to_string()
        );
        assert_eq!(read("pids/e/pids.max"), "10");
        assert_eq!(read("cpu/e/cpu.cfs_quota_us"), "50000");
        fs::write(
            d.path().join("memory/e/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        )
        .unwrap();
        assert_eq!(layout.usage("e").oom_kills, 1);
    }

    /// A process to kill: a child of the test, reaped by it.
    fn victim() -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap()
    }

    fn died(child: &mut std::process::Child) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(5) {
            if child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = child.kill();
        false
    }

    #[test]
    fn v2_kill_lifts_the_quota_then_writes_cgroup_kill() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::V2 {
            root: d.path().to_owned(),
        };
        let limits = Limits {
            memory_mb: 128,
            pids_max: 1024,
            cpu_millis: 72,
        };
        layout.create("env", &limits).unwrap();
        for f in ["cgroup.kill", "cgroup.freeze", "cgroup.procs"] {
            fs::write(d.path().join("env").join(f), "").unwrap();
        }
        layout.kill("env").unwrap();
        let read = |f: &str| fs::read_to_string(d.path().join("env").join(f)).unwrap();
        assert_eq!(read("cpu.max"), "max");
        assert_eq!(read("cgroup.kill"), "1");
        // A frozen cgroup is thawed as well: nothing is left frozen.
        assert_eq!(read("cgroup.freeze"), "0");
        // Nothing listed: empty; a cgroup that is gone has nothing to kill.
        assert!(layout.kill_and_wait("env", std::time::Duration::ZERO));
        layout.kill("absent").unwrap();
        assert!(layout.is_empty("absent"));
    }

    #[test]
    fn v2_without_cgroup_kill_freezes_signals_each_process_and_thaws() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::V2 {
            root: d.path().to_owned(),
        };
        fs::create_dir_all(d.path().join("env")).unwrap();
        let mut child = victim();
        let dir = d.path().join("env");
        fs::write(dir.join("cgroup.procs"), format!("{}\n", child.id())).unwrap();
        fs::write(dir.join("cgroup.freeze"), "0").unwrap();
        fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        layout.kill("env").unwrap();
        assert!(died(&mut child), "the listed process was killed");
        assert_eq!(fs::read_to_string(dir.join("cgroup.freeze")).unwrap(), "0");
        // Still listed (a fake tree does not update): not empty within the deadline.
        assert!(!layout.kill_and_wait("env", std::time::Duration::from_millis(20)));
        assert_eq!(layout.procs("env"), vec![child.id() as i32]);
    }

    #[test]
    fn v1_prepare_keeps_one_cgroup_frozen_beside_the_subtree() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::V1 {
            memory: d.path().join("memory/stratus"),
            pids: d.path().join("pids/stratus"),
            cpu: d.path().join("cpu/stratus"),
            freezer: Some(d.path().join("freezer/stratus")),
        };
        layout.prepare().unwrap();
        assert!(d.path().join("freezer/stratus").is_dir());
        // Beside the subtree, not in it: never listed as an environment, never in the way
        // of removing the subtree.
        assert_eq!(
            fs::read_to_string(d.path().join("freezer/stratus.anchor/freezer.state")).unwrap(),
            "FROZEN"
        );
        assert!(layout.list().is_empty());
    }

    #[test]
    fn v1_kill_freezes_signals_thaws_and_lifts_the_quota() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::V1 {
            memory: d.path().join("memory"),
            pids: d.path().join("pids"),
            cpu: d.path().join("cpu"),
            freezer: Some(d.path().join("freezer")),
        };
        let limits = Limits {
            memory_mb: 128,
            pids_max: 1024,
            cpu_millis: 72,
        };
        layout.create("e", &limits).unwrap();
        assert!(d.path().join("freezer/e").is_dir());
        let mut child = victim();
        let procs = format!("{}\n", child.id());
        for h in ["memory", "pids", "cpu", "freezer"] {
            fs::write(d.path().join(h).join("e/cgroup.procs"), &procs).unwrap();
        }
        // The fake freezer reports what was last written: FROZEN at once.
        fs::write(d.path().join("freezer/e/freezer.state"), "THAWED").unwrap();
        layout.kill("e").unwrap();
        assert!(died(&mut child));
        let read = |p: &str| fs::read_to_string(d.path().join(p)).unwrap();
        assert_eq!(read("freezer/e/freezer.state"), "THAWED");
        assert_eq!(read("cpu/e/cpu.cfs_quota_us"), "-1");
        for h in ["memory", "pids", "cpu", "freezer"] {
            fs::write(d.path().join(h).join("e/cgroup.procs"), "").unwrap();
        }
        assert!(layout.kill_and_wait("e", std::time::Duration::from_secs(1)));
        // The freezer hierarchy is one of the environment's, renamed and removed with it.
        layout.rename("e", "f").unwrap();
        assert!(d.path().join("freezer/f").is_dir());
        assert_eq!(layout.list(), ["f"]);
    }

    #[test]
    fn v1_without_a_freezer_still_kills_every_listed_process() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::V1 {
            memory: d.path().join("memory"),
            pids: d.path().join("pids"),
            cpu: d.path().join("cpu"),
            freezer: None,
        };
        layout.create_empty("e").unwrap();
        let mut child = victim();
        fs::write(d.path().join("pids/e/cgroup.procs"), child.id().to_string()).unwrap();
        layout.kill("e").unwrap();
        assert!(died(&mut child));
        assert!(layout.freezer("e").is_err());
        assert_eq!(layout.frozen("e"), None);
    }

    #[test]
    fn a_freezer_writes_its_layouts_state_file() {
        let d = tempfile::tempdir().unwrap();
        let v2 = Layout::V2 {
            root: d.path().to_owned(),
        };
        fs::create_dir_all(d.path().join("env")).unwrap();
        fs::write(d.path().join("env/cgroup.freeze"), "0").unwrap();
        let f = v2.freezer("env").unwrap();
        f.freeze().unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("env/cgroup.freeze")).unwrap(),
            "1"
        );
        f.thaw().unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("env/cgroup.freeze")).unwrap(),
            "0"
        );
        fs::write(
            d.path().join("env/cgroup.events"),
            "populated 1\nfrozen 1\n",
        )
        .unwrap();
        assert_eq!(v2.frozen("env"), Some(true));
        // Never created where the kernel has no such file.
        assert!(v2.freezer("absent").is_err());

        let v1 = Layout::V1 {
            memory: d.path().join("memory"),
            pids: d.path().join("pids"),
            cpu: d.path().join("cpu"),
            freezer: Some(d.path().join("freezer")),
        };
        v1.create_empty("e").unwrap();
        fs::write(d.path().join("freezer/e/freezer.state"), "THAWED").unwrap();
        let f = v1.freezer("e").unwrap();
        f.freeze().unwrap();
        assert_eq!(v1.frozen("e"), Some(true));
        f.thaw().unwrap();
        assert_eq!(v1.frozen("e"), Some(false));
    }
}
