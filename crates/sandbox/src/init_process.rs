//! The sandbox's init: the child that [`crate::parent_process::prepare`] clones into the new
//! namespaces, and the function's process it starts.
//!
//! Runs in the init (PID 1 of the sandbox), from the `clone` until it exits: it waits for
//! the parent's go, builds the root every sandbox shows (the template, system directories,
//! devices, `/dev/shm`, `/proc`), pivots into it with the host's root kept at [`HOST_ROOT`],
//! waits for its spec, binds the code and layers from the host's root, detaches that root,
//! mounts `/tmp` in its place (the file system the helper passed with the spec, see
//! [`crate::ephemeral`], or a tmpfs), starts the function's process and reaps until it ends. A
//! zygote blank's init also forks, before the spec, the process that becomes the zygote.
//!
//! What it must not do:
//! - The init is a copy of the single-threaded helper (no `CLONE_VM`), so it may run
//!   ordinary Rust code (allocation, formatting, JSON): no lock can be held by a thread
//!   that does not exist. It must not start threads either: the zygote's `fork` and the
//!   function's `clone` below rely on it having only one.
//! - It never returns into the parent's frames: the clone callback's return value is its
//!   exit status. It never execs, so close-on-exec does not apply to it: it closes what it
//!   inherited itself, and its own descriptors are raw, closed by hand.
//! - Nothing of the function runs before the host's root is detached (only Stratus's own
//!   zygote does).
//! - The function's process of a plain sandbox shares the init's memory until its `execve`
//!   (`CLONE_VM|CLONE_VFORK`): the init is suspended meanwhile, the process runs on a stack
//!   of its own and never returns into the init's frames; what it execs ([`Program`]) is
//!   built before the clone.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Gid, Pid, Uid};
use seccompiler::BpfProgram;

use crate::err;
use crate::fds::{close_all_but, read_exact, read_message_with_fd, send_message};
use crate::mounts::{bind_read_only, remount_read_only};
use crate::procs::sched_other;
use crate::rootfs;
use crate::spec::{SandboxSpec, SpawnFailure, Zygote};

/// Where a blank keeps the host's root until its claim: the mount point of the sandbox's
/// own `/tmp`, mounted over it once the host's root is gone.
const HOST_ROOT: &str = "/tmp";

/// What the child knows at `clone`; the function's part arrives later on `control`.
pub(crate) struct ChildPlan<'a> {
    pub(crate) rootfs: PathBuf,
    /// Host system directories shown at the same path inside.
    pub(crate) system_binds: Vec<PathBuf>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// A go byte once the parent has set up the namespaces; then the length-prefixed spec.
    pub(crate) control: RawFd,
    pub(crate) status: RawFd,
    pub(crate) output: RawFd,
    /// Where the init writes how the function ended (`E<code>` or `S<signal>`).
    pub(crate) report: RawFd,
    pub(crate) seccomp: &'a [BpfProgram],
    /// The zygote this blank starts before its claim.
    pub(crate) zygote: Option<&'a Zygote>,
    /// The signals the function's process must stop ignoring (see `confine`).
    pub(crate) ignored: &'static [libc::c_int],
    /// A `/tmp` file system made with the blank, and its size (MiB): used unless the claim
    /// sends another (see `crate::ephemeral`).
    pub(crate) tmp: Option<(RawFd, u64)>,
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
    pub(crate) fn run(&self) -> isize {
        // The init dies with the helper (its parent, even when the preparer made it), so no
        // sandbox outlives a helper killed outright. Should the helper have died before
        // this prctl, no signal comes, and `getppid` cannot tell (it is 0 in a new PID
        // namespace): the control pipe does. Its write end is the helper's (or, for a blank
        // in the making, the preparer's, which dies with the helper too), so the reads
        // below end at end-of-file and the init leaves before anything of a function runs.
        // SAFETY: prctl with integer arguments only.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        }
        // The init never execs, so close-on-exec does not apply to it: drop every inherited
        // descriptor but ours (the helper's sockets, other sandboxes' pipes).
        let mut keep = vec![self.control, self.status, self.output, self.report];
        keep.extend(self.tmp.map(|(fd, _)| fd));
        close_all_but(&keep);
        // Nor the server's standard input and output (its stderr stays, for our log lines):
        // an init that outlives its helper (frozen on cgroup v1, until the next start
        // removes it) must not keep whoever reads the server's output waiting for its end.
        // SAFETY: open/dup2/close on our own descriptor table; a failed open changes nothing.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            if null >= 0 {
                libc::dup2(null, 0);
                libc::dup2(null, 1);
                libc::close(null);
            }
        }
        let mut b = [0u8; 1];
        if read_exact(self.control, &mut b).is_err() {
            // The parent gave up on us.
            return 1;
        }
        if let Err(e) = self.build_common_root() {
            self.report(e.into());
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
                    self.report(e.into());
                    return 126;
                }
            },
            None => None,
        };
        let mut stack = vec![0u8; FUNCTION_STACK];
        // With the spec may come the mount of the sandbox's `/tmp` (see `crate::ephemeral`).
        let (msg, tmp_mount) = match read_message_with_fd(self.control) {
            Ok(Some(m)) => m,
            // Discarded before it was claimed (a zygote's process dies with us).
            Ok(None) => return 1,
            Err(e) => {
                self.report(e.into());
                return 126;
            }
        };
        // SAFETY: closing our own descriptor, which nothing else uses.
        unsafe {
            libc::close(self.control);
        }
        if let Err(e) = normal_policy_for_self() {
            self.report(e.into());
            return 126;
        }
        let spec: SandboxSpec = match serde_json::from_slice(&msg) {
            Ok(s) => s,
            Err(e) => {
                self.report(err("spec", e).into());
                return 126;
            }
        };
        if let Err(e) = self.finish_root(&spec, tmp_mount) {
            self.report(e.into());
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
                    self.report(e.into());
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

    /// Writes why the sandbox failed to the status pipe, as JSON (read by
    /// `parent_process::read_status`).
    fn report(&self, failure: SpawnFailure) {
        // (Serialising two strings cannot fail; the fallback keeps the pipe non-empty.)
        let msg = serde_json::to_vec(&failure)
            .unwrap_or_else(|_| br#"{"Platform":"unreported failure"}"#.to_vec());
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
                Err(e) => SpawnFailure::Platform(e),
                Ok(()) => match nix::unistd::chdir(program.workdir.as_c_str()) {
                    Err(e) => SpawnFailure::Program {
                        step: "chdir to workdir".into(),
                        detail: e.to_string(),
                    },
                    Ok(()) => {
                        match nix::unistd::execve(&program.argv[0], &program.argv, &program.envp) {
                            Ok(never) => match never {},
                            Err(e) => SpawnFailure::Program {
                                step: format!("execve {name}"),
                                detail: e.to_string(),
                            },
                        }
                    }
                },
            };
            self.report(e);
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
    /// `/tmp` is `tmp_mount` when the helper made one (a file system of the spec's size on
    /// disk), else a tmpfs of that size.
    fn finish_root(&self, spec: &SandboxSpec, tmp_mount: Option<RawFd>) -> Result<(), String> {
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
        // The claim's own mount, else the blank's if it is of the spec's size.
        let inherited = self
            .tmp
            .filter(|&(_, mb)| mb == spec.tmp_mb && tmp_mount.is_none());
        if let Some((fd, _)) = self.tmp.filter(|_| inherited.is_none()) {
            // SAFETY: closing the inherited descriptor, which nothing else uses.
            unsafe {
                libc::close(fd);
            }
        }
        if let Some(mnt) = tmp_mount.or(inherited.map(|(fd, _)| fd)) {
            let moved = crate::ephemeral::move_onto(mnt, c"/tmp");
            // SAFETY: closing the mount's descriptor, which nothing else uses.
            unsafe {
                libc::close(mnt);
            }
            return moved;
        }
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

fn cstrings(v: &[String]) -> Result<Vec<CString>, String> {
    v.iter()
        .map(|s| CString::new(s.as_bytes()).map_err(|_| format!("NUL byte in {s:?}")))
        .collect()
}

/// The init and the function's process each take the normal scheduling policy once their
/// spec has come: a blank is made under `SCHED_IDLE`, and the preparer lets its blanks leave
/// it themselves (`RLIMIT_NICE`, see `crate::pool`), which spares the claim looking up and
/// changing two processes. Already under it (a blank made on the spot, or one whose claim
/// changed it), this changes nothing.
fn normal_policy_for_self() -> Result<(), String> {
    sched_other(Pid::from_raw(0)).map_err(|e| err("leaving SCHED_IDLE", e))
}
