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
//! [`Event::Exited`]. When the server goes away (its end closes, even on `kill -9`), the helper
//! kills every sandbox, removes their cgroups and exits: nothing outlives the server. The
//! server's end is `spawner`; the framing is `channel`'s.
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
        Some((Request::Init(cfg), _)) => cfg,
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
    let seccomp = crate::seccomp::programs().map_err(|e| HelperError::Protocol(e.to_string()))?;
    let host_netns = File::open("/proc/self/ns/net")?;
    cfg.cgroups
        .prepare()
        .map_err(|e| HelperError::Protocol(e.to_string()))?;
    // Leftovers of a helper that died before cleaning up (empty cgroups only: a live
    // environment's cgroup holds processes and cannot be removed).
    for id in cfg.cgroups.list() {
        let _ = cfg.cgroups.remove(&id);
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

    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()?;
    // Non-blocking: the loop below drains it until it would block.
    let sigfd = SignalFd::with_flags(
        &mask,
        nix::sys::signalfd::SfdFlags::SFD_NONBLOCK | nix::sys::signalfd::SfdFlags::SFD_CLOEXEC,
    )?;

    // Running sandboxes by init pid: their id and the init's report pipe.
    let mut live: Live = HashMap::new();
    // Sandboxes whose child is still building its root, by init pid.
    let mut starting: HashMap<Pid, Starting> = HashMap::new();
    let mut pool = Pool::start(
        &cfg,
        &seccomp,
        &host_netns,
        network,
        &[sock.as_raw_fd(), sigfd.as_raw_fd()],
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
            for pid in finished {
                if let Some(s) = starting.remove(&pid) {
                    finish_spawn(&cfg, s, &mut live, sock.as_fd())?;
                }
            }
            if child_ready {
                while let Ok(Some(_)) = sigfd.read_signal() {}
                reap(&cfg, &mut live, &mut starting, &mut pool, sock.as_fd())?;
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
    // The server is gone: nothing it started may outlive it.
    pool.shutdown();
    for (pid, s) in starting.drain() {
        live.insert(pid, (s.id, s.spawned.report, s.spawned.slot));
    }
    for pid in live.keys() {
        let _ = kill(*pid, Signal::SIGKILL);
    }
    for (pid, (id, _, _)) in live.drain() {
        let _ = waitpid(pid, None);
        let _ = cfg.cgroups.remove(&id);
    }
    // Any child left is one we lost track of (a blank the preparer was making when it was
    // killed is our child too): kill them all, wait for every child, then remove whatever
    // cgroup is left empty.
    for pid in crate::procs::children_of(nix::unistd::getpid()) {
        let _ = kill(pid, Signal::SIGKILL);
    }
    while let Ok(_) | Err(nix::errno::Errno::EINTR) = waitpid(None::<Pid>, None) {}
    for id in cfg.cgroups.list() {
        let _ = cfg.cgroups.remove(&id);
    }
    cfg.cgroups.remove_parent();
    match served {
        Ok(()) | Err(HelperError::Gone) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Running sandboxes by init pid: their id, the init's report pipe, and their slot (held
/// until the init is reaped: its processes are gone then, and the uid is free).
type Live = HashMap<Pid, (String, File, Option<crate::slots::Slot>)>;

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
    live: &mut Live,
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
            live.insert(pid, (id, spawned.report, spawned.slot));
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
    // them before the init's exit completes): the cgroup can go.
    let usage = cfg.cgroups.usage(&id);
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
    live: &mut Live,
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
        if let Some((id, report, _slot)) = live.remove(&pid) {
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
