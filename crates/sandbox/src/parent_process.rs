//! The sandbox's parent side: creating one sandbox, in two steps so the first can happen
//! before anyone asks:
//!
//! 1. [`prepare`]: `clone` into new namespaces, map the uid, put a listener (and, with
//!    networking, a veth pair) into the new network namespace ([`crate::netns`]). Inside,
//!    the child ([`crate::init_process`]) mounts what every sandbox shows (the template
//!    root, system directories, devices, `/proc`), pivots into that root (the host's stays
//!    reachable at `/tmp` until the claim), and waits. Nothing of this depends on the
//!    function: the result is a blank sandbox. A blank made for a
//!    [`Zygote`](crate::spec::Zygote) also binds the
//!    zygote's files and forks the function's process, which drops to the function's uid,
//!    installs seccomp and execs the zygote, which initialises and then waits too.
//! 2. [`claim`]: give a blank its function. The helper puts the blank in the function's
//!    cgroup and sends the spec down a pipe; the child binds the code and layers from the
//!    host's root, detaches that root, mounts `/tmp`, and starts the function's process,
//!    which confines itself and execs the function's program (or hands the spec to the
//!    zygote, which takes it on).
//!
//! The helper keeps a few blanks ready (see [`crate::pool`]), so a cold start pays only for
//! step 2; with none ready it runs both back to back.
//!
//! Runs only in the single-threaded helper process and in its preparer (a single-threaded
//! fork of it, see [`crate::pool`]): after `clone` the child runs ordinary Rust code
//! (allocation, formatting, JSON), which is only sound when no other thread could have held
//! a lock at the moment of the clone. Nothing here may start a thread, and nothing here runs
//! in the child: everything the child does is in [`crate::init_process`].

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use seccompiler::BpfProgram;

use crate::cgroup::Limits;
use crate::err;
use crate::fds::send_message_with_fd;
use crate::init_process::ChildPlan;
use crate::netns::listen_in_netns;
use crate::procs::{children_of, sched_other};
use crate::rootfs;
use crate::slots::Slot;
use crate::spec::{HelperConfig, SandboxSpec, SpawnFailure};

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
    /// Its slot (uid, network), held until the sandbox is reaped.
    pub slot: Option<Slot>,
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
    /// Its slot, in the helper (the helper holds every slot; the preparer has only numbers).
    pub slot: Option<Slot>,
}

impl Blank {
    /// The reason a blank ended before it was claimed, if it said one.
    pub fn failure(self) -> Option<SpawnFailure> {
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
    pub fn from_fds(
        pid: Pid,
        fds: Vec<OwnedFd>,
        placed: Placed,
        slot: Option<Slot>,
    ) -> Option<Blank> {
        let [listener, output, status, report, control]: [OwnedFd; 5] = fds.try_into().ok()?;
        Some(Blank {
            pid,
            listener: TcpListener::from(listener),
            output,
            status: File::from(status),
            report: File::from(report),
            control: File::from(control),
            placed,
            slot,
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
    /// The size (MiB) of the `/tmp` file system its init holds, if it has one (see
    /// `crate::ephemeral`): a claim of that size uses it, another sends its own.
    #[serde(default)]
    pub tmp_mb: Option<u64>,
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
    // The spec goes down a socket the helper writes without waiting for the child to read:
    // it must fit in the socket's buffer (over 64 KiB by default). Lambda's own limits keep
    // it far smaller.
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

/// Where and how a blank sandbox is made (see [`prepare`]).
pub struct BlankPlan {
    /// Its slot: its host uid, and with `network` its veth pair (see [`crate::slots`]; the
    /// caller holds the slot).
    pub slot: u32,
    pub network: bool,
    /// The sandbox becomes a child of the caller's parent (`CLONE_PARENT`), so that a
    /// process working for the helper can make sandboxes that the helper reaps.
    pub sibling: bool,
    /// The blank starts this one of `cfg.zygotes`.
    pub zygote: Option<usize>,
    /// A detached mount for the sandbox's `/tmp` and its size (MiB), which the child
    /// inherits.
    pub tmp: Option<(OwnedFd, u64)>,
}

/// Step 1: a blank sandbox, its child busy with (or done with) the common mounts.
pub fn prepare(
    cfg: &HelperConfig,
    seccomp: &[BpfProgram],
    host_netns: &File,
    plan: BlankPlan,
) -> Result<Blank, String> {
    let BlankPlan {
        slot,
        network,
        sibling,
        zygote,
        tmp,
    } = plan;
    let host_uid = cfg.host_uid + slot;
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
            // A socket, not a pipe: the spec may come with a descriptor (`/tmp`'s mount).
            nix::sys::socket::socketpair(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::Stream,
                None,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            )?,
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
        tmp: tmp.as_ref().map(|(fd, mb)| (fd.as_raw_fd(), *mb)),
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
    // The user namespace's creator is the slot's uid, so that the kernel's per-user counts
    // at the host's level are the sandbox's own (see `crate::slots`).
    let owner = NamespaceOwner::become_(host_uid)?;
    // SAFETY: the helper is single-threaded (see the module doc), so the child, a copy of
    // this process without CLONE_VM, may run arbitrary code; the stack outlives the call in
    // the parent (a thread-local never freed) and is the child's own copy in the child; the
    // callback never returns into Rust frames of the parent (it exits the process).
    let pid = CLONE_STACK.with_borrow_mut(|stack| unsafe {
        nix::sched::clone(Box::new(|| child.run()), stack, flags, Some(libc::SIGCHLD))
    });
    owner.restore()?;
    let pid = pid.map_err(|e| err("clone", e))?;
    let tmp_mb = tmp.map(|(_, mb)| mb); // the child has its own copy of the mount now
    drop(control_r);
    drop(status_w);
    drop(out_w);
    drop(report_w);
    let mut control = File::from(control_w);

    let setup = (|| -> Result<TcpListener, String> {
        std::fs::write(
            format!("/proc/{pid}/uid_map"),
            format!("{} {} 1\n", cfg.uid, host_uid),
        )
        .map_err(|e| err("uid_map", e))?;
        std::fs::write(
            format!("/proc/{pid}/gid_map"),
            format!("{} {} 1\n", cfg.gid, cfg.host_gid),
        )
        .map_err(|e| err("gid_map", e))?;
        let listener = listen_in_netns(pid, cfg.port, host_netns, network.then_some(slot))?;
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
                tmp_mb,
            },
            slot: None,
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
/// `tmp`: a detached mount the init puts at `/tmp` (else it mounts a tmpfs).
pub fn claim(
    cfg: &HelperConfig,
    blank: Blank,
    spec: &SandboxSpec,
    msg: &[u8],
    tmp: Option<RawFd>,
) -> Result<Spawned, SpawnFailure> {
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
                tmp_mb: _,
            },
        slot,
    } = blank;
    let fail_with = |e: SpawnFailure| {
        discard(pid);
        let _ = cfg.cgroups.remove(&spec.id);
        if let Some(name) = &cgroup {
            let _ = cfg.cgroups.remove(name);
        }
        Err(e)
    };
    let fail = |e: String| fail_with(SpawnFailure::Platform(e));
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
    if let Err(e) = send_message_with_fd(&mut control, msg, tmp) {
        // The child ended early; its status pipe may say why.
        return match read_status(status) {
            Some(why) => fail_with(why),
            None => fail(err("sending spec", e)),
        };
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
        slot,
    })
}

/// The helper's effective uid made a slot's for the `clone` of a sandbox, so that the new
/// user namespace is that uid's ([`crate::slots`]). Only the effective uid changes: the
/// capabilities stay (`SECBIT_NO_SETUID_FIXUP`), and the file-system uid stays root's, so the
/// sandbox's init opens the host's files as before. Undone by [`NamespaceOwner::restore`].
struct NamespaceOwner {
    securebits: libc::c_int,
}

impl NamespaceOwner {
    fn become_(uid: u32) -> Result<NamespaceOwner, String> {
        const SECBIT_NO_SETUID_FIXUP: libc::c_int = 1 << 2;
        // SAFETY: prctl with integer arguments only.
        let securebits = unsafe { libc::prctl(libc::PR_GET_SECUREBITS) };
        if securebits < 0 {
            return Err(err("PR_GET_SECUREBITS", std::io::Error::last_os_error()));
        }
        // SAFETY: as above.
        if unsafe { libc::prctl(libc::PR_SET_SECUREBITS, securebits | SECBIT_NO_SETUID_FIXUP) } < 0
        {
            return Err(err("PR_SET_SECUREBITS", std::io::Error::last_os_error()));
        }
        let owner = NamespaceOwner { securebits };
        // Raw system calls: they change this thread's credentials only (the process has no
        // other), with none of libc's bookkeeping. -1 leaves an id as it is.
        // SAFETY: setresuid/setfsuid with plain integer arguments.
        let rc = unsafe { libc::syscall(libc::SYS_setresuid, -1i32, uid, -1i32) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            let _ = owner.restore();
            return Err(err("setresuid", e));
        }
        // SAFETY: as above.
        unsafe {
            libc::syscall(libc::SYS_setfsuid, 0u32);
        }
        Ok(owner)
    }

    fn restore(self) -> Result<(), String> {
        // Back to root: allowed, root being the saved uid. The file-system uid follows.
        // SAFETY: setresuid/prctl with plain integer arguments.
        let rc = unsafe { libc::syscall(libc::SYS_setresuid, -1i32, 0u32, -1i32) };
        let uid_error = (rc < 0).then(std::io::Error::last_os_error);
        // SAFETY: as above.
        unsafe {
            libc::prctl(libc::PR_SET_SECUREBITS, self.securebits);
        }
        match uid_error {
            Some(e) => Err(err("restoring the helper's uid", e)),
            None => Ok(()),
        }
    }
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

/// Reads a sandbox's status pipe to its end: nothing when the function's `execve` succeeded
/// (the pipe is close-on-exec), else the reason it did not (see `InitProcess::report`).
pub fn read_status(status: File) -> Option<SpawnFailure> {
    let mut text = String::new();
    let _ = { status }.read_to_string(&mut text);
    if text.is_empty() {
        return None;
    }
    Some(serde_json::from_str(&text).unwrap_or(SpawnFailure::Platform(text)))
}

/// Kills a sandbox's init (and with it its namespaces) and reaps it.
pub fn discard(pid: Pid) {
    let _ = kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
}

/// Removes what is left of a sandbox that failed to start.
pub fn abandon(cfg: &HelperConfig, id: &str, pid: Pid) {
    let _ = cfg.cgroups.kill(id);
    discard(pid);
    let _ = cfg.cgroups.remove(id);
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

/// The signals this process ignores, which a function's process must not (see
/// `init_process::ChildPlan::confine`). Looked up once: the helper and the preparer, which make every
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
