//! The sandbox helper: a single-threaded process (the `stratus` binary re-executed as
//! `stratus sandbox-helper`) that creates sandboxes for the server and reaps them.
//!
//! Why a separate process: creating a sandbox means `clone` followed by ordinary code in the
//! child, which is unsound in a multi-threaded process (another thread may hold the
//! allocator's lock at the instant of the clone). The server is a multi-threaded tokio
//! process; the helper has one thread.
//!
//! Protocol: a `SOCK_SEQPACKET` socket pair, one JSON message per packet. The server sends
//! [`Request`]s; the helper answers each spawn with [`Event::Spawned`] (plus two descriptors
//! by `SCM_RIGHTS`) or [`Event::Failed`], and reports every sandbox's end with
//! [`Event::Exited`]. When the server goes away (its end closes, even on `kill -9`; or the
//! parent-death signal the server set, `SIGUSR1`, comes and our parent has changed), the
//! helper kills every sandbox through its cgroup, removes their cgroups and exits: nothing
//! outlives the server. The server's end is `spawner`; the framing is `channel`'s.
//!
//! Ends: when a sandbox's init reports its function's end (its report pipe becomes
//! readable: the function exited, crashed or was killed by the OOM killer), the helper
//! kills the rest of its cgroup at once, with the CPU quota lifted, rather than let the
//! init's exit wait for stragglers that the quota throttles. At start the helper registers
//! its instance and removes what dead instances left (see [`crate::instance`]).
//!
//! Runs in the helper process only, from [`main`] on. Nothing may start a thread in it:
//! every sandbox (and the preparer) is a `clone` or `fork` of it that goes on running Rust
//! code. Sandboxes are made by `parent_process` and the pool (`pool`).

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

pub use crate::channel::HelperError;
use crate::channel::{MAX_MESSAGE, recv, send};
use crate::ephemeral::Ephemeral;
use crate::pool::Pool;
use crate::spec::{Event, HelperConfig, Request, SpawnFailure};

/// Entry point of `stratus sandbox-helper`: serves the server on descriptor `fd` until it
/// closes. Must be called before any other thread exists.
pub fn main(fd: RawFd) -> Result<(), HelperError> {
    // SAFETY: the server passed us this descriptor and nothing else in this process owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // dup2 cleared close-on-exec; set it again so no function ever inherits this socket.
    nix::fcntl::fcntl(
        &sock,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut cfg: HelperConfig = match recv(sock.as_fd(), &mut buf)? {
        Some((Request::Init(cfg), _)) => *cfg,
        Some(_) => return Err(HelperError::Protocol("expected Init first".into())),
        None => return Ok(()),
    };
    // A zygote's binds are made before any request: their sources canonical and mount points
    // in place now. One that cannot be bound is dropped (its functions start the plain way).
    let rootfs = cfg.rootfs.clone();
    cfg.zygotes.retain_mut(|z| {
        match z
            .binds
            .iter_mut()
            .try_for_each(|b| crate::parent_process::prepare_bind(&rootfs, b))
        {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(zygote = ?z.argv, %error, "zygote unavailable");
                false
            }
        }
    });
    // SIGUSR1 is our parent-death signal (set by the server before our exec): blocked from
    // here on, it comes through the signalfd below, like SIGCHLD. Before this point it
    // ends the helper outright, when it has nothing to clean yet.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.add(Signal::SIGUSR1);
    mask.thread_block()?;
    let server = nix::unistd::getppid();
    let seccomp = crate::seccomp::programs().map_err(|e| HelperError::Protocol(e.to_string()))?;
    let host_netns = File::open("/proc/self/ns/net")?;
    cfg.cgroups
        .prepare()
        .map_err(|e| HelperError::Protocol(e.to_string()))?;
    // Registered before anything is made: from now on our cgroups are a live instance's.
    let registration = crate::instance::register(&cfg.registry, &cfg.instance, &cfg.cgroups)
        .map_err(|e| {
            HelperError::Protocol(format!(
                "registering instance {} in {}: {e}",
                cfg.instance,
                cfg.registry.display()
            ))
        })?;
    // Leftovers of servers that died without cleaning up (this data directory's last run
    // or another's): only those of instances whose lock is free.
    let cleaned = crate::instance::clean_leftovers(&cfg.registry, &cfg.instance, &cfg.cgroups);
    if !cleaned.is_empty() {
        tracing::warn!(
            instances = ?cleaned.instances,
            cgroups = ?cleaned.cgroups,
            processes = cleaned.processes,
            failed = ?cleaned.failed,
            "removed leftovers of dead Stratus instances: their cgroups, and with their \
             processes their network namespaces, veth pairs and mounts"
        );
    }
    // A terminal's Ctrl-C or a signal to the server's process group must not kill the helper
    // before it has cleaned up: it leaves when the server's socket closes, and only then.
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: SIG_IGN installs no handler code; nothing else in this process relies on
        // these signals.
        unsafe {
            let _ = nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigIgn);
        }
    }
    let network = cfg.network
        && match crate::net::prepare_host() {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "sandboxes get loopback only: outside network unavailable");
                false
            }
        };
    if cfg.expedite_rcu
        && let Err(e) = std::fs::write("/sys/kernel/rcu_expedited", "1")
    {
        tracing::warn!(error = %e, "could not expedite RCU: cold starts pay a grace period");
    }

    // `/tmp` on disk at each spec's size; without it (no loop devices, ext4 or e2fsprogs),
    // a tmpfs as before.
    let mut ephemeral = cfg.ephemeral_dir.as_deref().and_then(|dir| {
        Ephemeral::open(dir)
            .inspect_err(|error| {
                tracing::warn!(%error, "/tmp falls back to memory (tmpfs): no images");
            })
            .ok()
    });
    // Non-blocking: the loop below drains it until it would block.
    let sigfd = SignalFd::with_flags(
        &mask,
        nix::sys::signalfd::SfdFlags::SFD_NONBLOCK | nix::sys::signalfd::SfdFlags::SFD_CLOEXEC,
    )?;

    // Running sandboxes by init pid.
    let mut live: HashMap<Pid, Live> = HashMap::new();
    // Sandboxes whose child is still building its root, by init pid.
    let mut starting: HashMap<Pid, Starting> = HashMap::new();
    let mut pool = Pool::start(
        &cfg,
        &seccomp,
        &host_netns,
        network,
        &[sock.as_raw_fd(), sigfd.as_raw_fd(), registration.raw_fd()],
    );
    // Whatever ends the loop (the server going away, or an error), the cleanup below runs.
    let served = (|| -> Result<(), HelperError> {
        loop {
            // Only while no sandbox is between its claim and its program's start: making a
            // blank takes the kernel locks that building a sandbox's root needs (the mount
            // namespace semaphore, cgroup and RTNL mutexes), and a preparer preempted while
            // holding one would hold up the claim. The program's own start-up (a
            // millisecond or more of CPU, and no such lock) is when the preparer runs; so a
            // series of cold starts, each claimed as the last one's runtime starts, finds a
            // blank each time instead of draining the pool.
            if starting.is_empty() {
                pool.refill();
            }
            let mut fds = vec![
                nix::poll::PollFd::new(sock.as_fd(), nix::poll::PollFlags::POLLIN),
                nix::poll::PollFd::new(sigfd.as_fd(), nix::poll::PollFlags::POLLIN),
            ];
            let preparer = pool.fd().map(|fd| {
                fds.push(nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN));
                fds.len() - 1
            });
            // Report pipes of running sandboxes whose function has not ended yet.
            let ending_base = fds.len();
            let watched: Vec<Pid> = live
                .iter()
                .filter(|(_, l)| !l.killed)
                .map(|(p, _)| *p)
                .collect();
            for pid in &watched {
                if let Some(l) = live.get(pid) {
                    fds.push(nix::poll::PollFd::new(
                        l.report.as_fd(),
                        nix::poll::PollFlags::POLLIN,
                    ));
                }
            }
            let base = fds.len();
            let order: Vec<Pid> = starting.keys().copied().collect();
            for pid in &order {
                if let Some(s) = starting.get(pid) {
                    fds.push(nix::poll::PollFd::new(
                        s.spawned.status.as_fd(),
                        nix::poll::PollFlags::POLLIN,
                    ));
                }
            }
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready = |i: usize| fds[i].any().unwrap_or(false);
            let sock_ready = ready(0);
            let child_ready = ready(1);
            let preparer_ready = preparer.is_some_and(ready);
            let ended: Vec<Pid> = watched
                .iter()
                .enumerate()
                .filter(|(i, _)| ready(i + ending_base))
                .map(|(_, p)| *p)
                .collect();
            let finished: Vec<Pid> = order
                .iter()
                .enumerate()
                .filter(|(i, _)| ready(i + base))
                .map(|(_, p)| *p)
                .collect();
            drop(fds);
            if preparer_ready {
                pool.receive();
            }
            for pid in ended {
                // The function ended (or the init did): whatever else runs in the cgroup
                // goes now, unthrottled, so that the init's exit need not wait for it.
                if let Some(l) = live.get_mut(&pid) {
                    l.killed = true;
                    if let Err(e) = cfg.cgroups.kill(&l.id) {
                        tracing::warn!(id = %l.id, error = %e, "killing an ended sandbox's cgroup");
                    }
                }
            }
            for pid in finished {
                if let Some(s) = starting.remove(&pid) {
                    finish_spawn(&cfg, s, &mut live, sock.as_fd())?;
                }
            }
            if child_ready {
                let mut orphaned = false;
                while let Ok(Some(info)) = sigfd.read_signal() {
                    // Our parent-death signal, also sent when the server thread that started
                    // us ends: only a new parent means the server is gone.
                    orphaned |= info.ssi_signo == Signal::SIGUSR1 as u32
                        && nix::unistd::getppid() != server;
                }
                reap(&cfg, &mut live, &mut starting, &mut pool, sock.as_fd())?;
                if orphaned {
                    tracing::warn!("the server is gone: ending every sandbox");
                    return Ok(());
                }
            }
            if sock_ready {
                match recv::<Request>(sock.as_fd(), &mut buf) {
                    Ok(Some((Request::Spawn(mut spec), _))) => {
                        let t = std::time::Instant::now();
                        let mut from_pool = None;
                        pool.remember_limits(
                            spec.limits,
                            ephemeral.is_some().then_some(spec.tmp_mb),
                        );
                        let result = crate::parent_process::check(&cfg, &mut spec)
                            .map_err(SpawnFailure::Platform)
                            .and_then(|msg| {
                                // `/tmp` of the spec's size: the blank's own if it has
                                // one (made ahead), else made now.
                                let own_tmp = |ephemeral: &mut Option<Ephemeral>| {
                                    match ephemeral.as_mut().map(|e| e.mount(&spec.id, spec.tmp_mb)) {
                                        Some(Ok(mnt)) => Some(mnt),
                                        Some(Err(error)) => {
                                            tracing::warn!(%error, "/tmp falls back to memory (tmpfs) from now on");
                                            *ephemeral = None;
                                            None
                                        }
                                        None => None,
                                    }
                                };
                                let zygote = cfg.zygotes.iter().position(|z| z.serves(&spec));
                                if let Some(blank) = pool.take(zygote) {
                                    from_pool = Some(if blank.placed.zygote.is_some() {
                                        "zygote"
                                    } else {
                                        "plain"
                                    });
                                    let tmp = (blank.placed.tmp_mb != Some(spec.tmp_mb))
                                        .then(|| own_tmp(&mut ephemeral))
                                        .flatten();
                                    match crate::parent_process::claim(&cfg, blank, &spec, &msg, tmp.as_ref().map(|m| m.as_raw_fd())) {
                                        Ok(spawned) => return Ok(spawned),
                                        // Blanks cannot be claimed here (say, no right to
                                        // restore the normal scheduling policy): stop making
                                        // them, and make this sandbox the plain way.
                                        Err(e) => pool.give_up(&e.to_string()),
                                    }
                                }
                                let held = pool.slot().map_err(SpawnFailure::Platform)?;
                                let tmp = own_tmp(&mut ephemeral);
                                let mut blank = crate::parent_process::prepare(
                                    &cfg,
                                    &seccomp,
                                    &host_netns,
                                    crate::parent_process::BlankPlan {
                                        slot: held.n,
                                        network,
                                        sibling: false,
                                        zygote: None,
                                        tmp: None,
                                    },
                                )
                                .map_err(SpawnFailure::Platform)?;
                                blank.slot = Some(held);
                                crate::parent_process::claim(
                                    &cfg,
                                    blank,
                                    &spec,
                                    &msg,
                                    tmp.as_ref().map(|m| m.as_raw_fd()),
                                )
                            });
                        tracing::debug!(id = %spec.id, ?from_pool, us = t.elapsed().as_micros() as u64, "sandbox claimed");
                        match result {
                            Ok(spawned) => {
                                starting.insert(
                                    spawned.pid,
                                    Starting {
                                        id: spec.id.clone(),
                                        spawned,
                                        exited: None,
                                        claimed: t,
                                    },
                                );
                            }
                            Err(error) => send(
                                sock.as_fd(),
                                &Event::Failed {
                                    id: spec.id.clone(),
                                    error,
                                },
                                &[],
                            )?,
                        }
                    }
                    Ok(Some((Request::Init(_), _))) => {}
                    Ok(None) | Err(HelperError::Gone) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        }
    })();
    // The server is gone: nothing it started may outlive it. Every sandbox is killed
    // through its cgroup (quota lifted, frozen ones included) before any is waited for.
    pool.shutdown();
    for (pid, s) in starting.drain() {
        live.insert(pid, Live::new(s.id, s.spawned.report, s.spawned.slot));
    }
    for (pid, l) in &live {
        let _ = cfg.cgroups.kill(&l.id);
        let _ = kill(*pid, Signal::SIGKILL);
    }
    for (pid, l) in live.drain() {
        let _ = waitpid(pid, None);
        if !cfg
            .cgroups
            .kill_and_wait(&l.id, std::time::Duration::from_secs(1))
        {
            tracing::warn!(id = %l.id, "processes left in a sandbox's cgroup after its end");
        }
        let _ = cfg.cgroups.remove(&l.id);
    }
    // Any child left is one we lost track of (a blank the preparer was making when it was
    // killed is our child too): kill them all, wait for every child, then remove whatever
    // cgroup of ours is left (another live instance's, sharing our parent, stay).
    for pid in crate::procs::children_of(nix::unistd::getpid()) {
        let _ = kill(pid, Signal::SIGKILL);
    }
    while let Ok(_) | Err(nix::errno::Errno::EINTR) = waitpid(None::<Pid>, None) {}
    for id in cfg.cgroups.list() {
        if crate::instance::owner(&id).is_none_or(|t| t == cfg.instance) {
            let _ = cfg
                .cgroups
                .kill_and_wait(&id, std::time::Duration::from_secs(1));
            let _ = cfg.cgroups.remove(&id);
        }
    }
    cfg.cgroups.remove_parent();
    registration.remove();
    match served {
        Ok(()) | Err(HelperError::Gone) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A running sandbox, by its init's pid in the helper's map.
struct Live {
    id: String,
    /// The init's report pipe: readable once the function ended (or the init did).
    report: File,
    /// Its cgroup was killed already (the function ended): the pipe is no longer watched.
    killed: bool,
    /// Its slot, held until the init is reaped: its processes are gone then, and the uid
    /// is free.
    slot: Option<crate::slots::Slot>,
}

impl Live {
    fn new(id: String, report: File, slot: Option<crate::slots::Slot>) -> Live {
        Live {
            id,
            report,
            killed: false,
            slot,
        }
    }
}

/// A sandbox between `clone` and its function's `execve`.
struct Starting {
    id: String,
    spawned: crate::parent_process::Spawned,
    /// Its init already ended (reaped before the status pipe was read).
    exited: Option<(Option<i32>, Option<i32>)>,
    /// When the request for it arrived.
    claimed: std::time::Instant,
}

fn finish_spawn(
    cfg: &HelperConfig,
    s: Starting,
    live: &mut HashMap<Pid, Live>,
    sock: BorrowedFd<'_>,
) -> Result<(), HelperError> {
    let Starting {
        id,
        spawned,
        exited,
        claimed,
    } = s;
    tracing::debug!(%id, us = claimed.elapsed().as_micros() as u64, "sandbox started its program");
    let pid = spawned.pid;
    if let Some(error) = crate::parent_process::read_status(spawned.status) {
        crate::parent_process::abandon(cfg, &id, pid);
        return send(sock, &Event::Failed { id, error }, &[]);
    }
    let sent = send(
        sock,
        &Event::Spawned {
            id: id.clone(),
            pid: pid.as_raw(),
        },
        &[spawned.listener.as_raw_fd(), spawned.output.as_raw_fd()],
    );
    // Whether or not the server heard of it, the sandbox is accounted for (so that the
    // cleanup finds it if the server is gone).
    match exited {
        // It ran and ended before we looked: report both, in order.
        Some((exit_code, signal)) => {
            let (exit_code, signal) =
                crate::parent_process::read_report(&spawned.report).unwrap_or((exit_code, signal));
            let reported = report_exit(cfg, id, exit_code, signal, sock);
            sent.and(reported)
        }
        None => {
            live.insert(pid, Live::new(id, spawned.report, spawned.slot));
            sent
        }
    }
}

fn report_exit(
    cfg: &HelperConfig,
    id: String,
    exit_code: Option<i32>,
    signal: Option<i32>,
    sock: BorrowedFd<'_>,
) -> Result<(), HelperError> {
    // The init is reaped, so every process of the namespace is gone (the kernel waits for
    // them before the init's exit completes): the cgroup can go. (Killed first all the
    // same: a process moved in from outside the namespace would keep it.)
    let usage = cfg.cgroups.usage(&id);
    if !cfg.cgroups.is_empty(&id) {
        let _ = cfg
            .cgroups
            .kill_and_wait(&id, std::time::Duration::from_secs(1));
    }
    if let Err(e) = cfg.cgroups.remove(&id) {
        tracing::warn!(%id, error = %e, "removing cgroup");
    }
    send(
        sock,
        &Event::Exited {
            id,
            exit_code,
            signal,
            usage,
        },
        &[],
    )
}

fn reap(
    cfg: &HelperConfig,
    live: &mut HashMap<Pid, Live>,
    starting: &mut HashMap<Pid, Starting>,
    pool: &mut Pool,
    sock: BorrowedFd<'_>,
) -> Result<(), HelperError> {
    loop {
        let (pid, exit_code, signal) = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, Some(code), None),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, None, Some(sig as i32)),
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return Ok(()),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if let Some(s) = starting.get_mut(&pid) {
            s.exited = Some((exit_code, signal));
            continue;
        }
        if pool.on_exit(pid) {
            continue;
        }
        if let Some(Live {
            id,
            report,
            slot: _slot,
            ..
        }) = live.remove(&pid)
        {
            // The init's report says how the function ended; its own status is the fallback.
            let (exit_code, signal) =
                crate::parent_process::read_report(&report).unwrap_or((exit_code, signal));
            report_exit(cfg, id, exit_code, signal, sock)?;
        } else {
            // A blank whose `Ready` is still on its way from the preparer.
            pool.note_unknown_exit(pid);
        }
    }
}
