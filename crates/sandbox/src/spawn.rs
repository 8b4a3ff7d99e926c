//! Creating one sandbox, in two steps so the first can happen before anyone asks:
//!
//! 1. [`prepare`]: `clone` into new namespaces, map the uid, put a listener (and, with
//!    networking, a veth pair) into the new network namespace. Inside, the child mounts what
//!    every sandbox shows (the template root, system directories, devices, `/proc`), pivots
//!    into that root (the host's stays reachable at `/tmp` until the claim), and waits.
//!    Nothing of this depends on the function: the result is a blank sandbox. A blank made
//!    for a [`Zygote`] also binds the zygote's files and forks the function's process, which
//!    drops to the function's uid, installs seccomp and execs the zygote, which initialises
//!    and then waits too.
//! 2. [`claim`]: give a blank its function. The helper puts the blank in the function's
//!    cgroup and sends the spec down a pipe; the child binds the code and layers from the
//!    host's root, detaches that root, mounts `/tmp`, and starts the function's process,
//!    which confines itself and execs the function's program (or hands the spec to the
//!    zygote, which takes it on).
//!
//! The helper keeps a few blanks ready (see [`crate::helper`]), so a cold start pays only for
//! step 2; with none ready it runs both back to back.
//!
//! Runs only in the single-threaded helper process: after `clone` the child runs ordinary
//! Rust code (allocation, formatting, JSON), which is only sound when no other thread could
//! have held a lock at the moment of the clone.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::statvfs::{FsFlags, statvfs};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Gid, Pid, Uid};
use seccompiler::BpfProgram;

use crate::cgroup::Limits;
use crate::rootfs;
use crate::spec::{HelperConfig, SandboxSpec, Zygote};

/// Where a blank keeps the host's root until its claim: the mount point of the sandbox's
/// own `/tmp`, mounted over it once the host's root is gone.
const HOST_ROOT: &str = "/tmp";

/// A sandbox that started: its init's host pid, the listener inside its network namespace,
/// and the read end of its output.
pub struct Spawned {
    pub pid: Pid,
    pub listener: TcpListener,
    pub output: OwnedFd,
    /// Reaches end of file when the function's program is running (or says why not).
    pub status: File,
    /// How the function ended, written by the init before it exits.
    pub report: File,
}

/// A prepared sandbox waiting for its function (see the module doc).
pub struct Blank {
    pub pid: Pid,
    listener: TcpListener,
    output: OwnedFd,
    status: File,
    report: File,
    /// Where the spec goes; the child reads it once its common mounts are done.
    control: File,
    /// Its cgroup, limits, scheduling policy and zygote.
    pub placed: Placed,
}

impl Blank {
    /// The reason a blank ended before it was claimed, if it said one.
    pub fn failure(self) -> String {
        read_status(self.status)
    }

    /// Its descriptors, to send to another process: listener, output, status, report,
    /// control.
    pub fn fds(&self) -> [RawFd; 5] {
        [
            self.listener.as_raw_fd(),
            self.output.as_raw_fd(),
            self.status.as_raw_fd(),
            self.report.as_raw_fd(),
            self.control.as_raw_fd(),
        ]
    }

    /// For a zygote blank: whether its zygote is still there to take a spec (its process,
    /// the init's only child, neither gone nor a zombie). Where the kernel does not list
    /// children, it is assumed alive (the claim still copes with a dead one).
    pub fn zygote_alive(&self) -> bool {
        let pid = self.pid;
        let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        else {
            return true;
        };
        let Some(child) = children.split_whitespace().next() else {
            return false;
        };
        std::fs::read_to_string(format!("/proc/{child}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
            .unwrap_or(false)
    }

    /// What its processes have written so far, at most 4 KiB, without waiting (a dead
    /// zygote's last words).
    pub fn output_so_far(&self) -> String {
        let mut fds = [nix::poll::PollFd::new(
            self.output.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let readable = nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).unwrap_or(0) > 0;
        let mut buf = [0u8; 4096];
        let n = if readable {
            nix::unistd::read(&self.output, &mut buf).unwrap_or(0)
        } else {
            0
        };
        String::from_utf8_lossy(&buf[..n]).trim().to_string()
    }

    /// A blank from the descriptors another process sent (in [`Blank::fds`] order).
    pub fn from_fds(pid: Pid, fds: Vec<OwnedFd>, placed: Placed) -> Option<Blank> {
        let [listener, output, status, report, control]: [OwnedFd; 5] = fds.try_into().ok()?;
        Some(Blank {
            pid,
            listener: TcpListener::from(listener),
            output,
            status: File::from(status),
            report: File::from(report),
            control: File::from(control),
            placed,
        })
    }
}

/// What a blank is beyond its processes and descriptors; it travels with the descriptors
/// from the preparer to the helper.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Placed {
    /// The cgroup it already sits in, if any (named for it).
    pub cgroup: Option<String>,
    /// The limits that cgroup has already, if any (those of a recent claim: a claim with
    /// the same writes none of them).
    pub limits: Option<Limits>,
    /// Its processes take the normal scheduling policy themselves at the claim (see
    /// [`claim`]); otherwise the claim gives it to them.
    pub normal_policy: bool,
    /// The zygote it runs (an index in [`HelperConfig::zygotes`]), if any.
    pub zygote: Option<usize>,
}

const STACK_SIZE: usize = 1 << 20;

thread_local! {
    /// The stack every sandbox's init starts on, allocated once. The child runs on its own
    /// copy-on-write copy and the helper never touches it. A fresh zeroed megabyte per
    /// sandbox cost 256 copy-on-write faults each time (the heap's pages are shared with
    /// the sandboxes already cloned): 7 % of the CPU of a burst of 100 cold starts.
    static CLONE_STACK: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; STACK_SIZE]);
}
/// The largest spec [`claim`] sends (below a pipe's default 64 KiB buffer).
const MAX_SPEC_BYTES: usize = 60 * 1024;

fn err(context: &str, e: impl std::fmt::Display) -> String {
    format!("{context}: {e}")
}

/// Checks `spec`, makes its bind sources canonical (the child resolves them under the
/// host's root moved aside, where an absolute symlink would lead elsewhere) and its mount
/// points exist in the template, before any sandbox is taken for it. Returns the spec
/// encoded as [`claim`] sends it.
pub fn check(cfg: &HelperConfig, spec: &mut SandboxSpec) -> Result<Vec<u8>, String> {
    if spec.id.is_empty()
        || !spec
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!("invalid sandbox id {:?}", spec.id));
    }
    if spec.argv.is_empty() {
        return Err("empty argv".into());
    }
    for s in spec.argv.iter().chain(&spec.env) {
        if s.contains('\0') {
            return Err(format!("NUL byte in {s:?}"));
        }
    }
    for b in &mut spec.binds {
        prepare_bind(&cfg.rootfs, b)?;
    }
    // The spec goes down a pipe the helper writes without waiting for the child to read:
    // it must fit in the pipe's buffer (64 KiB). Lambda's own limits keep it far smaller.
    let encoded = serde_json::to_vec(spec).map_err(|e| err("encoding spec", e))?;
    if encoded.len() > MAX_SPEC_BYTES {
        return Err(format!(
            "sandbox spec of {} bytes is over {MAX_SPEC_BYTES}",
            encoded.len()
        ));
    }
    Ok(encoded)
}

/// Makes `b`'s source canonical and its mount point exist in the template (before the child
/// looks for it).
pub(crate) fn prepare_bind(rootfs: &Path, b: &mut crate::spec::Bind) -> Result<(), String> {
    b.source = std::fs::canonicalize(&b.source)
        .map_err(|e| err(&format!("bind source {}", b.source.display()), e))?;
    rootfs::ensure_mount_point_for(rootfs, &b.source, &b.target)
        .map_err(|e| err("preparing mount point", e))?
        .ok_or_else(|| format!("bind source {} does not exist", b.source.display()))?;
    Ok(())
}

/// Step 1: a blank sandbox, its child busy with (or done with) the common mounts.
/// `sibling`: the sandbox becomes a child of the caller's parent (`CLONE_PARENT`), so that a
/// process working for the helper can make sandboxes that the helper reaps. `zygote`: the
/// blank starts this one of `cfg.zygotes`.
pub fn prepare(
    cfg: &HelperConfig,
    seccomp: &[BpfProgram],
    host_netns: &File,
    slot: Option<u32>,
    sibling: bool,
    zygote: Option<usize>,
) -> Result<Blank, String> {
    let mut binds: Vec<PathBuf> = Vec::new();
    for path in rootfs::SYSTEM_PATHS {
        let p = Path::new(path);
        if p.exists() {
            binds.push(p.to_owned());
        }
    }
    let pipes = (|| -> nix::Result<_> {
        let cloexec = nix::fcntl::OFlag::O_CLOEXEC;
        Ok((
            nix::unistd::pipe2(cloexec)?,
            nix::unistd::pipe2(cloexec)?,
            nix::unistd::pipe2(cloexec)?,
            nix::unistd::pipe2(cloexec)?,
        ))
    })();
    let ((control_r, control_w), (status_r, status_w), (out_r, out_w), (report_r, report_w)) =
        pipes.map_err(|e| err("pipe", e))?;

    let child = ChildPlan {
        rootfs: cfg.rootfs.clone(),
        system_binds: binds,
        uid: cfg.uid,
        gid: cfg.gid,
        control: control_r.as_raw_fd(),
        status: status_w.as_raw_fd(),
        output: out_w.as_raw_fd(),
        report: report_w.as_raw_fd(),
        seccomp,
        zygote: zygote.and_then(|i| cfg.zygotes.get(i)),
        ignored: ignored_signals(),
    };
    let mut flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWNET;
    if sibling {
        flags |= CloneFlags::CLONE_PARENT;
    }
    // SAFETY: the helper is single-threaded (see the module doc), so the child, a copy of
    // this process without CLONE_VM, may run arbitrary code; the stack outlives the call in
    // the parent (a thread-local never freed) and is the child's own copy in the child; the
    // callback never returns into Rust frames of the parent (it exits the process).
    let pid = CLONE_STACK
        .with_borrow_mut(|stack| unsafe {
            nix::sched::clone(Box::new(|| child.run()), stack, flags, Some(libc::SIGCHLD))
        })
        .map_err(|e| err("clone", e))?;
    drop(control_r);
    drop(status_w);
    drop(out_w);
    drop(report_w);
    let mut control = File::from(control_w);

    let setup = (|| -> Result<TcpListener, String> {
        std::fs::write(
            format!("/proc/{pid}/uid_map"),
            format!("{} {} 1\n", cfg.uid, cfg.host_uid),
        )
        .map_err(|e| err("uid_map", e))?;
        std::fs::write(
            format!("/proc/{pid}/gid_map"),
            format!("{} {} 1\n", cfg.gid, cfg.host_gid),
        )
        .map_err(|e| err("gid_map", e))?;
        let listener = listen_in_netns(pid, cfg.port, host_netns, slot)?;
        // Go: the child may build what every sandbox shares.
        control
            .write_all(&[1])
            .map_err(|e| err("releasing child", e))?;
        Ok(listener)
    })();
    match setup {
        Ok(listener) => Ok(Blank {
            pid,
            listener,
            output: out_r,
            status: File::from(status_r),
            report: File::from(report_r),
            control,
            placed: Placed {
                cgroup: None,
                limits: None,
                normal_policy: false,
                zygote,
            },
        }),
        Err(e) => {
            if sibling {
                // Not our child: the helper reaps it.
                let _ = kill(pid, Signal::SIGKILL);
            } else {
                discard(pid);
            }
            Err(e)
        }
    }
}

/// Step 2: gives `blank` the function `spec`, `msg` being what [`check`] returned for it.
/// On error the blank and the cgroup are gone.
pub fn claim(
    cfg: &HelperConfig,
    blank: Blank,
    spec: &SandboxSpec,
    msg: &[u8],
) -> Result<Spawned, String> {
    let Blank {
        pid,
        listener,
        output,
        status,
        report,
        mut control,
        placed:
            Placed {
                cgroup,
                limits,
                normal_policy,
                zygote: _,
            },
    } = blank;
    let fail = |e: String| {
        discard(pid);
        let _ = cfg.cgroups.remove(&spec.id);
        if let Some(name) = &cgroup {
            let _ = cfg.cgroups.remove(name);
        }
        Err(e)
    };
    if !normal_policy && let Err(e) = set_normal_policy(pid) {
        return fail(e);
    }
    // A blank that already sits in a cgroup of its own (v1) keeps it: its limits are set
    // (only those that differ from what it has), the spec goes, and then the cgroup takes
    // the sandbox's name (moving a process between cgroups waits for the kernel's RCU,
    // renaming does not; and a name is not needed to confine).
    let kept = cgroup.as_deref().filter(|name| {
        cfg.cgroups
            .change_limits(name, limits.as_ref(), &spec.limits)
            .is_ok()
    });
    if kept.is_none() {
        if let Err(e) = cfg.cgroups.create(&spec.id, &spec.limits) {
            return fail(err("creating cgroup", e));
        }
        if let Err(e) = attach_sandbox(&cfg.cgroups, &spec.id, pid) {
            return fail(err("attaching cgroup", e));
        }
        if let Some(name) = &cgroup {
            let _ = cfg.cgroups.remove(name);
        }
    }
    if let Err(e) = send_message(&mut control, msg) {
        // The child ended early; its status pipe may say why.
        let why = read_status(status);
        return fail(if why.is_empty() {
            err("sending spec", e)
        } else {
            why
        });
    }
    if let Some(name) = kept
        && let Err(e) = cfg.cgroups.rename(name, &spec.id)
    {
        return fail(err("renaming cgroup", e));
    }
    drop(control);
    // The child builds its root and starts the function on its own; the helper watches
    // `status` (see `Spawned::status`) and meanwhile creates other sandboxes.
    Ok(Spawned {
        pid,
        listener,
        output,
        status,
        report,
    })
}

/// Gives a sandbox made under `SCHED_IDLE` (see `crate::pool`) the normal policy: the
/// init, then the function's process if the init has forked it already (listed after the
/// init's change, a child either is in the list or inherits it).
fn set_normal_policy(init: Pid) -> Result<(), String> {
    for p in std::iter::once(init).chain(children_of(init)) {
        sched_other(p).map_err(|e| err("sched_setscheduler", e))?;
    }
    Ok(())
}

/// The init and the function's process each take the normal scheduling policy once their
/// spec has come: a blank is made under `SCHED_IDLE`, and the preparer lets its blanks leave
/// it themselves (`RLIMIT_NICE`, see `crate::pool`), which spares the claim looking up and
/// changing two processes. Already under it (a blank made on the spot, or one whose claim
/// changed it), this changes nothing.
fn normal_policy_for_self() -> Result<(), String> {
    sched_other(Pid::from_raw(0)).map_err(|e| err("leaving SCHED_IDLE", e))
}

/// Puts process `pid` (0: ourselves) under `SCHED_OTHER`.
fn sched_other(pid: Pid) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler with a valid, initialised parameter.
    if unsafe { libc::sched_setscheduler(pid.as_raw(), libc::SCHED_OTHER, &param) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Reads a sandbox's status pipe to its end: empty when the function's `execve` succeeded
/// (the pipe is close-on-exec), else the reason it did not.
pub fn read_status(status: File) -> String {
    let mut text = String::new();
    let _ = { status }.read_to_string(&mut text);
    text
}

/// Kills a sandbox's init (and with it its namespaces) and reaps it.
pub fn discard(pid: Pid) {
    let _ = kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
}

/// Removes what is left of a sandbox that failed to start.
pub fn abandon(cfg: &HelperConfig, id: &str, pid: Pid) {
    discard(pid);
    let _ = cfg.cgroups.remove(id);
}

fn cstrings(v: &[String]) -> Result<Vec<CString>, String> {
    v.iter()
        .map(|s| CString::new(s.as_bytes()).map_err(|_| format!("NUL byte in {s:?}")))
        .collect()
}

/// Brings up `lo` in the sandbox's network namespace and binds `127.0.0.1:port` there.
/// The socket belongs to that namespace for good, wherever its descriptor travels.
fn listen_in_netns(
    pid: Pid,
    port: u16,
    host_netns: &File,
    slot: Option<u32>,
) -> Result<TcpListener, String> {
    if let Some(n) = slot {
        crate::net::create_pair(n, pid.as_raw())?;
        crate::net::configure(&crate::net::host_ifname(n), crate::net::addresses(n).0)?;
    }
    let ns = File::open(format!("/proc/{pid}/ns/net")).map_err(|e| err("opening netns", e))?;
    nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| err("setns", e))?;
    let result = loopback_up()
        .and_then(|()| match slot {
            Some(n) => {
                let (host, ours) = crate::net::addresses(n);
                crate::net::configure("eth0", ours)?;
                crate::net::default_route(host, "eth0")
            }
            None => Ok(()),
        })
        .and_then(|()| {
            TcpListener::bind(("127.0.0.1", port)).map_err(|e| err("binding runtime API", e))
        });
    // Back home whatever happened; failing to return would poison every later spawn.
    nix::sched::setns(host_netns.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| err("returning to host netns", e))?;
    let listener = result?;
    listener
        .set_nonblocking(true)
        .map_err(|e| err("nonblocking", e))?;
    Ok(listener)
}

fn loopback_up() -> Result<(), String> {
    link_up("lo")
}

/// Brings interface `name` up (in the calling thread's network namespace).
pub(crate) fn link_up(name: &str) -> Result<(), String> {
    // SAFETY: plain socket(2); the result is checked and owned immediately.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(err("socket", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= ifr.ifr_name.len() {
        return Err(format!("interface name {name} too long"));
    }
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads a valid, initialised ifreq we pass by pointer.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) };
    if rc < 0 {
        return Err(err(
            &format!("bringing up {name}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// What the child knows at `clone`; the function's part arrives later on `control`.
struct ChildPlan<'a> {
    rootfs: PathBuf,
    /// Host system directories shown at the same path inside.
    system_binds: Vec<PathBuf>,
    uid: u32,
    gid: u32,
    /// A go byte once the parent has set up the namespaces; then the length-prefixed spec.
    control: RawFd,
    status: RawFd,
    output: RawFd,
    /// Where the init writes how the function ended (`E<code>` or `S<signal>`).
    report: RawFd,
    seccomp: &'a [BpfProgram],
    /// The zygote this blank starts before its claim.
    zygote: Option<&'a Zygote>,
    /// The signals the function's process must stop ignoring (see `confine`).
    ignored: &'static [libc::c_int],
}

/// The function's program, ready to exec: built by the init before it starts the process.
struct Program {
    argv: Vec<CString>,
    envp: Vec<CString>,
    workdir: CString,
}

impl Program {
    fn of(spec: &SandboxSpec) -> Result<Program, String> {
        Ok(Program {
            argv: cstrings(&spec.argv)?,
            envp: cstrings(&spec.env)?,
            workdir: CString::new(spec.workdir.as_str()).map_err(|e| err("workdir", e))?,
        })
    }
}

/// The stack of a plain sandbox's function process between its `clone` and its `execve`
/// (it only confines itself: a few system calls).
const FUNCTION_STACK: usize = 256 * 1024;

impl ChildPlan<'_> {
    /// The sandbox's init: wait for the go, build the common root (and start a zygote's
    /// process, which confines itself and initialises), wait for the spec, finish the root,
    /// start the function's program (or hand the spec to the zygote), reap.
    fn run(&self) -> isize {
        // The init dies with the helper (its parent, even when the preparer made it), so no
        // sandbox outlives a helper killed outright.
        // SAFETY: prctl with integer arguments only.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        }
        // The init never execs, so close-on-exec does not apply to it: drop every inherited
        // descriptor but ours (the helper's sockets, other sandboxes' pipes).
        close_all_but(&[self.control, self.status, self.output, self.report]);
        let mut b = [0u8; 1];
        if read_exact(self.control, &mut b).is_err() {
            // The parent gave up on us.
            return 1;
        }
        if let Err(e) = self.build_common_root() {
            self.report(&e);
            return 126;
        }
        // A zygote's process is made now and initialises before the claim. A plain
        // sandbox's is made at the claim, sharing the init's memory until its `execve`
        // (`start_program`): a process of its own made now would have to tear down its copy
        // of the init's address space in that `execve`, which took longer (about 150 µs)
        // than the few system calls it saves.
        let zygote = match self.zygote {
            Some(z) => match self.start_zygote(z) {
                Ok(started) => Some(started),
                Err(e) => {
                    self.report(&e);
                    return 126;
                }
            },
            None => None,
        };
        let mut stack = vec![0u8; FUNCTION_STACK];
        let msg = match read_message(self.control) {
            Ok(Some(m)) => m,
            // Discarded before it was claimed (a zygote's process dies with us).
            Ok(None) => return 1,
            Err(e) => {
                self.report(&e);
                return 126;
            }
        };
        // SAFETY: closing our own descriptor, which nothing else uses.
        unsafe {
            libc::close(self.control);
        }
        if let Err(e) = normal_policy_for_self() {
            self.report(&e);
            return 126;
        }
        let spec: SandboxSpec = match serde_json::from_slice(&msg) {
            Ok(s) => s,
            Err(e) => {
                self.report(&err("spec", e));
                return 126;
            }
        };
        if let Err(e) = self.finish_root(&spec) {
            self.report(&e);
            return 126;
        }
        // Go: the zygote takes the spec on, or the function's program starts.
        let handed = zygote.and_then(|(pid, mut plan_w)| {
            if send_message(&mut plan_w, &msg).is_ok() {
                return Some(pid);
            }
            // The zygote ended before its claim (it could not start), or no longer reads
            // its spec: the function starts the plain way instead.
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            None
        });
        let function = match handed {
            Some(pid) => pid,
            None => match self.start_program(&spec, &mut stack) {
                Ok(pid) => pid,
                Err(e) => {
                    self.report(&e);
                    return 126;
                }
            },
        };
        // The function's process left it at its `execve`: the memory goes back now rather
        // than staying charged to the environment for its life.
        drop(stack);
        // SAFETY: closing descriptors we own and no longer need; the function keeps its own
        // copies.
        unsafe {
            libc::close(self.status);
            libc::close(self.output);
        }
        let (text, code) = reap_until(function);
        // SAFETY: writing a buffer we own to an inherited descriptor.
        unsafe {
            libc::write(self.report, text.as_ptr().cast(), text.len());
        }
        code
    }

    fn report(&self, msg: &str) {
        // SAFETY: writing a buffer we own to an inherited descriptor.
        unsafe {
            libc::write(self.status, msg.as_ptr().cast(), msg.len());
        }
    }

    /// Forks the process that becomes zygote `z` (see [`Self::confine`]); returns it and
    /// the pipe its spec goes down.
    fn start_zygote(&self, z: &Zygote) -> Result<(Pid, File), String> {
        let (plan_r, plan_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| err("pipe", e))?;
        // SAFETY: we are the only thread of this process (a fresh clone of a
        // single-threaded helper).
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                drop(plan_w);
                // SAFETY: the control pipe is the init's business, not the zygote's.
                unsafe {
                    libc::close(self.control);
                }
                // A zygote that cannot start says nothing: the claim starts the function
                // afresh (see `run`), and the status pipe must not report a failure then.
                if self.confine().is_ok() {
                    exec_zygote(z, plan_r.as_raw_fd());
                }
                // SAFETY: leaving the forked child without running destructors or atexit.
                unsafe { libc::_exit(127) }
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => Ok((child, File::from(plan_w))),
            Err(e) => Err(err("fork", e)),
        }
    }

    /// Starts the function's program `spec` in a process that shares our memory until its
    /// `execve` (as `vfork` does: we wait meanwhile), so that the `execve` has no address
    /// space of its own to tear down. The process confines itself first; a failure is
    /// reported on the status pipe and ends it with 127.
    fn start_program(&self, spec: &SandboxSpec, stack: &mut [u8]) -> Result<Pid, String> {
        let program = Program::of(spec)?;
        let name = spec.argv.first().map_or("", String::as_str);
        let become_program = || -> isize {
            let e = match self.confine() {
                Err(e) => e,
                Ok(()) => match nix::unistd::chdir(program.workdir.as_c_str()) {
                    Err(e) => err("chdir to workdir", e),
                    Ok(()) => {
                        match nix::unistd::execve(&program.argv[0], &program.argv, &program.envp) {
                            Ok(never) => match never {},
                            Err(e) => err(&format!("execve {name}"), e),
                        }
                    }
                },
            };
            self.report(&e);
            127
        };
        // SAFETY: CLONE_VM|CLONE_VFORK: the child runs on `stack`, which nothing else uses,
        // while we are suspended until its `execve` or its end, so it never races us on the
        // memory we share; it has its own descriptor table, signal handlers and
        // credentials (no CLONE_FILES, CLONE_SIGHAND or CLONE_THREAD), and it never returns
        // into our frames (the callback's return ends it).
        unsafe {
            nix::sched::clone(
                Box::new(become_program),
                stack,
                CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK,
                Some(libc::SIGCHLD),
            )
        }
        .map_err(|e| err("clone", e))
    }

    /// What every sandbox shows: the template, system directories, devices, `/dev/shm`,
    /// `/proc` (and the zygote's binds); then the pivot into it, which becomes read-only.
    /// The host's root stays at [`HOST_ROOT`], for the claim's binds, until
    /// [`Self::finish_root`] detaches it.
    fn build_common_root(&self) -> Result<(), String> {
        let root = &self.rootfs;
        let none: Option<&str> = None;
        mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
            .map_err(|e| err("making / private", e))?;
        mount(Some(root), root, none, MsFlags::MS_BIND, none)
            .map_err(|e| err("binding the root", e))?;
        for source in &self.system_binds {
            let t = root.join(source.strip_prefix("/").unwrap_or(source));
            bind_read_only(source, &t)?;
        }
        for dev in rootfs::DEVICES {
            let host = Path::new("/dev").join(dev);
            mount(
                Some(&host),
                &root.join("dev").join(dev),
                none,
                MsFlags::MS_BIND,
                none,
            )
            .map_err(|e| err("binding a device", e))?;
        }
        mount(
            Some("tmpfs"),
            &root.join("dev/shm"),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("size=64m,mode=1777"),
        )
        .map_err(|e| err("mounting /dev/shm", e))?;
        mount(
            Some("proc"),
            &root.join("proc"),
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            none,
        )
        .map_err(|e| err("mounting /proc", e))?;
        for b in self.zygote.iter().flat_map(|z| &z.binds) {
            let t = root.join(b.target.strip_prefix("/").unwrap_or(&b.target));
            bind_read_only(&b.source, &t)?;
        }
        nix::unistd::chdir(root).map_err(|e| err("chdir root", e))?;
        let host_root = HOST_ROOT.trim_start_matches('/');
        nix::unistd::pivot_root(".", host_root).map_err(|e| err("pivot_root", e))?;
        nix::unistd::chdir("/").map_err(|e| err("chdir /", e))?;
        remount_read_only(Path::new("/"))
    }

    /// The function's own part: hostname, code and layers (from the host's root), then
    /// the host's root detached for good and `/tmp` mounted in its place.
    fn finish_root(&self, spec: &SandboxSpec) -> Result<(), String> {
        nix::unistd::sethostname(&spec.hostname).map_err(|e| err("sethostname", e))?;
        let host_root = Path::new(HOST_ROOT);
        for b in &spec.binds {
            if self.zygote.is_some_and(|z| z.binds.contains(b)) {
                continue; // bound with the blank
            }
            let source = host_root.join(b.source.strip_prefix("/").unwrap_or(&b.source));
            bind_read_only(&source, &b.target)?;
        }
        umount2(host_root, MntFlags::MNT_DETACH)
            .map_err(|e| err("detaching the host's root", e))?;
        let tmp_opts = format!("size={}m,mode=1777", spec.tmp_mb);
        mount(
            Some("tmpfs"),
            host_root,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(tmp_opts.as_str()),
        )
        .map_err(|e| err("mounting /tmp", e))?;
        Ok(())
    }

    /// What the function's process does before its program: output to the sandbox's
    /// pipe, no descriptor of ours, default signal handling, the function's uid without
    /// privileges, seccomp.
    fn confine(&self) -> Result<(), String> {
        // SAFETY: dup2/open/close on descriptors we own, in a single-threaded child.
        unsafe {
            if libc::dup2(self.output, 1) < 0 || libc::dup2(self.output, 2) < 0 {
                return Err(err("dup2", std::io::Error::last_os_error()));
            }
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
            if null >= 0 {
                libc::dup2(null, 0);
                libc::close(null);
            }
        }
        // Whatever else this process holds (the helper's socket, other pipes) must not
        // reach the function: mark every descriptor above stderr close-on-exec.
        // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes descriptor flags.
        unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
        }
        // The helper blocks SIGCHLD (for its signalfd) and ignores SIGINT/SIGTERM/SIGHUP and
        // SIGPIPE; masks and ignored signals survive execve, and a function must start with
        // the defaults.
        if let Err(e) = nix::sys::signal::sigprocmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&nix::sys::signal::SigSet::empty()),
            None,
        ) {
            return Err(err("sigprocmask", e));
        }
        // Ignored signals stay ignored across `execve` (handled ones do not): back to the
        // default. The raw syscall reaches the signals glibc reserves for itself too.
        let default_action = [0u64; 4];
        for &sig in self.ignored {
            // SAFETY: an all-zero kernel sigaction is SIG_DFL with no flags and an empty
            // mask; the kernel reads it and writes nothing (no old-action pointer).
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    default_action.as_ptr(),
                    std::ptr::null_mut::<u8>(),
                    8usize,
                );
            }
        }
        let nofile = nix::sys::resource::Resource::RLIMIT_NOFILE;
        if let Err(e) = nix::sys::resource::setrlimit(nofile, 1024, 1024) {
            return Err(err("setrlimit", e));
        }
        if let Err(e) = nix::unistd::setgroups(&[]) {
            return Err(err("setgroups", e));
        }
        let (uid, gid) = (Uid::from_raw(self.uid), Gid::from_raw(self.gid));
        if let Err(e) = nix::unistd::setresgid(gid, gid, gid) {
            return Err(err("setresgid", e));
        }
        if let Err(e) = nix::unistd::setresuid(uid, uid, uid) {
            return Err(err("setresuid", e));
        }
        if let Err(e) = nix::sys::prctl::set_no_new_privs() {
            return Err(err("no_new_privs", e));
        }
        if let Err(e) = crate::seccomp::install(self.seccomp) {
            return Err(err("seccomp", e));
        }
        Ok(())
    }
}

/// Execs zygote `z` with `plan` at [`Zygote::SPEC_FD`]; returns only on failure.
fn exec_zygote(z: &Zygote, plan: RawFd) -> String {
    let (argv, envp) = match (cstrings(&z.argv), cstrings(&z.env)) {
        (Ok(a), Ok(e)) if !a.is_empty() => (a, e),
        _ => return "invalid zygote".into(),
    };
    let fd = Zygote::SPEC_FD;
    // SAFETY: dup2/fcntl on descriptors of our own table; the copy (or, already in place,
    // the original without close-on-exec) is what the zygote inherits.
    let rc = unsafe {
        if plan == fd {
            libc::fcntl(fd, libc::F_SETFD, 0)
        } else {
            libc::dup2(plan, fd)
        }
    };
    if rc < 0 {
        return err("dup2", std::io::Error::last_os_error());
    }
    if let Err(e) = nix::unistd::chdir("/") {
        return err("chdir /", e);
    }
    match nix::unistd::execve(&argv[0], &argv, &envp) {
        Ok(never) => match never {},
        Err(e) => err(&format!("execve {}", z.argv[0]), e),
    }
}

fn send_message(to: &mut File, msg: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX).to_le_bytes();
    to.write_all(&len).and_then(|()| to.write_all(msg))
}

/// Moves a sandbox into cgroup `name`: its init, and the function's process the init may
/// have forked already. Listed after the init moved, a child is either in the list or was
/// forked into the new cgroup.
pub(crate) fn attach_sandbox(
    cgroups: &crate::cgroup::Layout,
    name: &str,
    init: Pid,
) -> Result<(), crate::cgroup::CgroupError> {
    cgroups.attach(name, init.as_raw())?;
    for child in children_of(init) {
        cgroups.attach(name, child.as_raw())?;
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

/// Fills `buf` from `fd`; `Err` at end of file.
fn read_exact(fd: RawFd, buf: &mut [u8]) -> Result<(), ()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: reading into the unfilled tail of a buffer we own, from an inherited
        // descriptor.
        let n = unsafe { libc::read(fd, buf[done..].as_mut_ptr().cast(), buf.len() - done) };
        match n {
            n if n > 0 => done += n as usize,
            n if n < 0
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return Err(()),
        }
    }
    Ok(())
}

/// One length-prefixed message from `fd`; `Ok(None)` at end of file before it starts.
fn read_message(fd: RawFd) -> Result<Option<Vec<u8>>, String> {
    let mut len = [0u8; 4];
    if read_exact(fd, &mut len).is_err() {
        return Ok(None);
    }
    let mut msg = vec![0u8; u32::from_le_bytes(len) as usize];
    read_exact(fd, &mut msg).map_err(|()| "spec cut short".to_string())?;
    Ok(Some(msg))
}

/// The signals this process ignores, which a function's process must not (see
/// `ChildPlan::confine`). Looked up once: the helper and the preparer, which make every
/// sandbox, ignore the same ones from their start on.
fn ignored_signals() -> &'static [libc::c_int] {
    static IGNORED: std::sync::OnceLock<Vec<libc::c_int>> = std::sync::OnceLock::new();
    IGNORED.get_or_init(|| {
        (1..=libc::SIGRTMAX())
            .filter(|&sig| {
                // The kernel's sigaction: the handler first, then flags, restorer and mask.
                let mut old = [0u64; 4];
                // SAFETY: no new action (null), the old one written into a buffer large enough
                // for the kernel's sigaction.
                let rc = unsafe {
                    libc::syscall(
                        libc::SYS_rt_sigaction,
                        sig,
                        std::ptr::null::<u8>(),
                        old.as_mut_ptr(),
                        8usize,
                    )
                };
                rc == 0 && old[0] == libc::SIG_IGN as u64
            })
            .collect()
    })
}

/// Closes every descriptor from 3 up except `keep`.
fn close_all_but(keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .collect();
    keep.sort_unstable();
    let mut low = 3u32;
    for fd in keep.iter().copied().chain([u32::MAX]) {
        if fd > low {
            // SAFETY: close_range on a range of our own descriptor table, none of which the
            // init uses.
            let rc = unsafe { libc::syscall(libc::SYS_close_range, low, fd - 1, 0u32) };
            if rc != 0 {
                // No close_range (kernels before 5.9): one descriptor at a time, up to the
                // limit the helper runs with.
                let max = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                    .map_or(4096, |(soft, _)| soft.min(1 << 20)) as u32;
                for n in low..fd.min(max) {
                    // SAFETY: closing descriptors of our own table that the init does not use.
                    unsafe {
                        libc::close(n as RawFd);
                    }
                }
            }
        }
        low = low.max(fd.saturating_add(1));
    }
}

/// Binds `source` on `target` read-only. In a user namespace the remount must repeat the
/// flags the kernel locked on the source mount (nosuid, nodev, noexec...), or it fails.
fn bind_read_only(source: &Path, target: &Path) -> Result<(), String> {
    let none: Option<&str> = None;
    mount(
        Some(source),
        target,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .map_err(|e| err(&format!("binding {}", source.display()), e))?;
    remount_read_only(target)
}

fn remount_read_only(target: &Path) -> Result<(), String> {
    let none: Option<&str> = None;
    let locked = statvfs(target)
        .map(|s| {
            let f = s.flags();
            let mut m = MsFlags::empty();
            for (fs, ms) in [
                (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
                (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
                (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
                (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
                (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
                (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
            ] {
                if f.contains(fs) {
                    m |= ms;
                }
            }
            m
        })
        .unwrap_or(MsFlags::empty());
    mount(
        none,
        target,
        none,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | locked,
        none,
    )
    .map_err(|e| err(&format!("making {} read-only", target.display()), e))
}

/// The init's life after starting the function: reap every child (orphans re-parent to us)
/// and leave with the function's status when it ends. Our exit tears down the whole
/// namespace: the kernel kills whatever else is left in it.
/// Returns the function's fate as the report line and as the init's exit code (the code
/// alone cannot tell `exit(137)` from SIGKILL; the report can).
fn reap_until(function: Pid) -> (String, isize) {
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == function => {
                return (format!("E{code}"), code as isize);
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == function => {
                return (format!("S{}", sig as i32), 128 + sig as isize);
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return (String::new(), 125),
        }
    }
}

/// Reads what a finished init reported: `(exit code, signal)` of the function, if it said.
pub fn read_report(report: &File) -> Option<(Option<i32>, Option<i32>)> {
    let mut buf = [0u8; 32];
    let n = nix::unistd::read(report, &mut buf).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    let (kind, value) = text.split_at_checked(1)?;
    let value: i32 = value.parse().ok()?;
    match kind {
        "E" => Some((Some(value), None)),
        "S" => Some((None, Some(value))),
        _ => None,
    }
}
