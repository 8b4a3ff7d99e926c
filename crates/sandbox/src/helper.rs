//! The sandbox helper: a single-threaded process (the `stratus` binary re-executed as
//! `stratus sandbox-helper`) that creates sandboxes for the server and reaps them.
//!
//! Why a separate process: creating a sandbox means `clone` followed by ordinary code in the
//! child, which is unsound in a multi-threaded process (another thread may hold the
//! allocator's lock at the instant of the clone). The server is a multi-threaded tokio
//! process; the helper has one thread.
//!
//! Protocol: a `SOCK_SEQPACKET` socket pair, one JSON message per packet. The helper lends
//! every ready plain blank to the server ([`Event::Lent`], with its descriptors by
//! `SCM_RIGHTS`); the server claims those itself (sending the spec down the blank's own pipe,
//! no helper on that path) and says so afterwards ([`Request::Claimed`]). Other sandboxes it
//! asks for with [`Request::Spawn`], which the helper answers with [`Event::Spawned`] (plus
//! two descriptors) or [`Event::Failed`]. The helper reports every sandbox's end with
//! [`Event::Exited`] (or, for a lent blank whose claim it has not heard of yet,
//! [`Event::Gone`]). When the server goes away (its end closes, even on `kill -9`), the
//! helper kills every sandbox, removes their cgroups and exits: nothing outlives the server.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::SignalFd;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::pool::Pool;
use crate::spawn::Blank;
use crate::spec::{Event, HelperConfig, Request, SandboxSpec};

const MAX_MESSAGE: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("sandbox helper I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("sandbox helper: {0}")]
    Sys(#[from] nix::Error),
    #[error("sandbox helper protocol: {0}")]
    Protocol(String),
    #[error("the sandbox helper has stopped")]
    Gone,
}

pub(crate) fn send(
    sock: BorrowedFd<'_>,
    msg: &impl serde::Serialize,
    fds: &[RawFd],
) -> Result<(), HelperError> {
    send_with(sock, msg, fds, MsgFlags::empty()).map(|_| ())
}

/// Like [`send`], but returns `Ok(false)` instead of waiting when the socket has no room
/// (the helper is behind): an async thread must not block on it.
pub(crate) fn try_send(
    sock: BorrowedFd<'_>,
    msg: &impl serde::Serialize,
    fds: &[RawFd],
) -> Result<bool, HelperError> {
    send_with(sock, msg, fds, MsgFlags::MSG_DONTWAIT)
}

fn send_with(
    sock: BorrowedFd<'_>,
    msg: &impl serde::Serialize,
    fds: &[RawFd],
    flags: MsgFlags,
) -> Result<bool, HelperError> {
    let bytes = serde_json::to_vec(msg).map_err(|e| HelperError::Protocol(e.to_string()))?;
    let iov = [IoSlice::new(&bytes)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &cmsg };
    loop {
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL | flags,
            None,
        ) {
            Ok(_) => return Ok(true),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) if flags.contains(MsgFlags::MSG_DONTWAIT) => {
                return Ok(false);
            }
            Err(nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET) => {
                return Err(HelperError::Gone);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one message; `Ok(None)` at end of stream.
pub(crate) fn recv<T: serde::de::DeserializeOwned>(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> Result<Option<(T, Vec<OwnedFd>)>, HelperError> {
    let (n, fds) = loop {
        let mut iov = [IoSliceMut::new(buf)];
        let mut space = nix::cmsg_space!([RawFd; 8]);
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // SAFETY: SCM_RIGHTS hands us new descriptors that nobody else owns.
                        fds.extend(
                            raw.into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                }
                break (msg.bytes, fds);
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::ECONNRESET) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    };
    if n == 0 {
        return Ok(None);
    }
    let msg =
        serde_json::from_slice(&buf[..n]).map_err(|e| HelperError::Protocol(e.to_string()))?;
    Ok(Some((msg, fds)))
}

// ---- The helper process ------------------------------------------------------------------

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
            .try_for_each(|b| crate::spawn::prepare_bind(&rootfs, b))
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

    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()?;
    // Non-blocking: the loop below drains it until it would block.
    let sigfd = SignalFd::with_flags(
        &mask,
        nix::sys::signalfd::SfdFlags::SFD_NONBLOCK | nix::sys::signalfd::SfdFlags::SFD_CLOEXEC,
    )?;

    // Running sandboxes by init pid: their id and the init's report pipe.
    let mut live: HashMap<Pid, (String, File)> = HashMap::new();
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
                lend(&mut pool, sock.as_fd())?;
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
                    Ok(Some((Request::Spawn { mut spec, blank }, fds))) => {
                        let t = std::time::Instant::now();
                        let mut from_pool = None;
                        pool.remember_limits(spec.limits);
                        // A lent blank the server sent back for this request (unless it
                        // ended meanwhile: then its `Gone` is on its way to the server).
                        let mut carried = blank.and_then(|(pid, placed)| {
                            let pid = Pid::from_raw(pid);
                            pool.unlend(pid)?;
                            crate::spawn::Blank::from_fds(pid, fds, placed)
                        });
                        let result = crate::spawn::check(&cfg, &mut spec).and_then(|msg| {
                            let zygote = cfg.zygotes.iter().position(|z| z.serves(&spec));
                            let blank = pool.take(zygote).or_else(|| carried.take());
                            if let Some(unused) = carried.take() {
                                pool.put_back(unused);
                            }
                            if let Some(blank) = blank {
                                from_pool = Some(if blank.placed.zygote.is_some() {
                                    "zygote"
                                } else {
                                    "plain"
                                });
                                match crate::spawn::claim(&cfg, blank, &spec, &msg) {
                                    Ok(spawned) => return Ok(spawned),
                                    // Blanks cannot be claimed here (say, no right to
                                    // restore the normal scheduling policy): stop making
                                    // them, and make this sandbox the plain way.
                                    Err(e) => pool.give_up(&e),
                                }
                            }
                            let slot = pool.slot();
                            let blank = crate::spawn::prepare(
                                &cfg,
                                &seccomp,
                                &host_netns,
                                slot,
                                false,
                                None,
                            )?;
                            crate::spawn::claim(&cfg, blank, &spec, &msg)
                        });
                        if let Some(unused) = carried.take() {
                            pool.put_back(unused);
                        }
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
                        lend(&mut pool, sock.as_fd())?;
                    }
                    Ok(Some((Request::Claimed { pid, id, limits }, _))) => {
                        pool.remember_limits(limits);
                        match pool.unlend(Pid::from_raw(pid)) {
                            Some(lent) => {
                                live.insert(Pid::from_raw(pid), (id, lent.report));
                            }
                            // It ended first (and the server heard so): only its cgroup,
                            // renamed by the claim, is left.
                            None => {
                                let _ = cfg.cgroups.remove(&id);
                            }
                        }
                    }
                    Ok(Some((Request::GiveUp(error), _))) => pool.give_up(&error),
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
        live.insert(pid, (s.id, s.spawned.report));
    }
    for pid in live.keys() {
        let _ = kill(*pid, Signal::SIGKILL);
    }
    for (pid, (id, _)) in live.drain() {
        let _ = waitpid(pid, None);
        let _ = cfg.cgroups.remove(&id);
    }
    // Any child left is one we lost track of (a blank the preparer was making when it was
    // killed is our child too): kill them all, wait for every child, then remove whatever
    // cgroup is left empty.
    for pid in crate::spawn::children_of(nix::unistd::getpid()) {
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

/// Lends the pool's ready plain blanks to the server, which claims them itself.
fn lend(pool: &mut Pool, sock: BorrowedFd<'_>) -> Result<(), HelperError> {
    while let Some(blank) = pool.lendable() {
        let sent = send(
            sock,
            &Event::Lent {
                pid: blank.pid.as_raw(),
                placed: blank.placed.clone(),
            },
            &blank.fds(),
        );
        // Whether or not the server heard of it, the helper reaps it as a lent blank.
        pool.lent(blank);
        sent?;
    }
    Ok(())
}

/// A sandbox between `clone` and its function's `execve`.
struct Starting {
    id: String,
    spawned: crate::spawn::Spawned,
    /// Its init already ended (reaped before the status pipe was read).
    exited: Option<(Option<i32>, Option<i32>)>,
    /// When the request for it arrived.
    claimed: std::time::Instant,
}

fn finish_spawn(
    cfg: &HelperConfig,
    s: Starting,
    live: &mut HashMap<Pid, (String, File)>,
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
    let status = crate::spawn::read_status(spawned.status);
    if !status.is_empty() {
        crate::spawn::abandon(cfg, &id, pid);
        return send(sock, &Event::Failed { id, error: status }, &[]);
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
                crate::spawn::read_report(&spawned.report).unwrap_or((exit_code, signal));
            let reported = report_exit(cfg, id, exit_code, signal, sock);
            sent.and(reported)
        }
        None => {
            live.insert(pid, (id, spawned.report));
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
    live: &mut HashMap<Pid, (String, File)>,
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
        if let Some(lent) = pool.lent_ended(pid) {
            let (exit_code, signal) =
                crate::spawn::read_report(&lent.report).unwrap_or((exit_code, signal));
            send(
                sock,
                &Event::Gone {
                    pid: pid.as_raw(),
                    exit_code,
                    signal,
                },
                &[],
            )?;
            continue;
        }
        if pool.on_exit(pid) {
            continue;
        }
        if let Some((id, report)) = live.remove(&pid) {
            // The init's report says how the function ended; its own status is the fallback.
            let (exit_code, signal) =
                crate::spawn::read_report(&report).unwrap_or((exit_code, signal));
            report_exit(cfg, id, exit_code, signal, sock)?;
        } else {
            // A blank whose `Ready` is still on its way from the preparer.
            pool.note_unknown_exit(pid);
        }
    }
}

// ---- The server's side -------------------------------------------------------------------

/// What the server gets for a spawned sandbox.
#[derive(Debug)]
pub struct SpawnedSandbox {
    pub pid: i32,
    /// Listening socket inside the sandbox's network namespace (non-blocking).
    pub listener: std::net::TcpListener,
    /// Read end of the function's stdout and stderr.
    pub output: OwnedFd,
}

type Pending = HashMap<String, tokio::sync::oneshot::Sender<Result<SpawnedSandbox, String>>>;

/// Direct claims that fail in a row before the server stops claiming lent blanks.
const DIRECT_FAILURES: u32 = 3;

/// The blanks the helper lent to the server, and those it is claiming.
#[derive(Default)]
struct Lent {
    /// Ready, oldest first.
    blanks: VecDeque<Blank>,
    /// Taken for a claim, by init pid, until the helper knows (its `Exited` then reports
    /// the sandbox's end).
    claiming: HashMap<i32, Claiming>,
    /// Direct claims that failed in a row.
    failures: u32,
}

struct Claiming {
    id: String,
    /// The spec went: the sandbox is the server's environment.
    started: bool,
    /// It ended before the helper heard of the claim: how (see [`Event::Gone`]).
    gone: Option<(Option<i32>, Option<i32>)>,
}

/// The server's handle on its helper. Cloneable; spawns are answered in order.
#[derive(Clone)]
pub struct Spawner {
    sock: Arc<OwnedFd>,
    pending: Arc<Mutex<Pending>>,
    lent: Arc<Mutex<Lent>>,
    cfg: Arc<HelperConfig>,
    exits: tokio::sync::mpsc::UnboundedSender<Exit>,
    /// Keeps the child handle so it is reaped when it ends.
    child: Arc<Mutex<Child>>,
}

/// A sandbox's end, as reported to the server.
#[derive(Debug, Clone)]
pub struct Exit {
    pub id: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub usage: crate::cgroup::Usage,
}

impl Spawner {
    /// Starts `exe sandbox-helper` and sends it `cfg`. Exits are delivered on `exits`.
    pub fn start(
        exe: &Path,
        cfg: &HelperConfig,
        exits: tokio::sync::mpsc::UnboundedSender<Exit>,
    ) -> Result<Spawner, HelperError> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        let theirs_raw = theirs.as_raw_fd();
        let mut cmd = Command::new(exe);
        // Every sandbox's init is a copy of the helper, and its /proc/1/cmdline is readable
        // inside: a plain name rather than the binary's path on the host.
        std::os::unix::process::CommandExt::arg0(&mut cmd, "stratus");
        cmd.arg("sandbox-helper")
            .arg("--fd")
            .arg("3")
            .arg("--log")
            .arg(&cfg.log);
        // SAFETY: between fork and exec the closure only calls dup2, which is
        // async-signal-safe; dup2 clears close-on-exec on the new descriptor 3.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || {
                if libc::dup2(theirs_raw, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop(theirs);
        let sock = Arc::new(ours);
        send(sock.as_fd(), &Request::Init(cfg.clone()), &[])?;
        let spawner = Spawner {
            sock,
            pending: Arc::default(),
            lent: Arc::default(),
            cfg: Arc::new(cfg.clone()),
            exits,
            child: Arc::new(Mutex::new(child)),
        };
        let reader = spawner.clone();
        std::thread::Builder::new()
            .name("sandbox-events".into())
            .spawn(move || reader.read_events())?;
        Ok(spawner)
    }

    /// The helper's process id.
    pub fn helper_pid(&self) -> u32 {
        self.child.lock().map(|c| c.id()).unwrap_or(0)
    }

    /// Blank sandboxes ready for a claim in the server's hands.
    pub fn ready_blanks(&self) -> usize {
        self.lock_lent().blanks.len()
    }

    /// Closes the connection: the helper kills every sandbox, removes their cgroups and
    /// exits (as when the server process ends).
    pub fn shutdown(&self) {
        let _ = nix::sys::socket::shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
    }

    fn lock_lent(&self) -> std::sync::MutexGuard<'_, Lent> {
        self.lent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a sandbox. Fails with the helper's reason if it could not.
    ///
    /// A spec no zygote serves takes a blank the helper lent (see [`Event::Lent`]) and is
    /// claimed here: its spec goes straight down the blank's pipe, with no round trip
    /// through the helper (which would wake another process before the sandbox's init, on
    /// the cold start's path). Other specs, or with no blank at hand, go to the helper; a
    /// lent blank goes back with a spec a zygote serves, for the helper to use if it has no
    /// zygote ready.
    pub async fn spawn(&self, spec: SandboxSpec) -> Result<SpawnedSandbox, String> {
        let zygote = self.cfg.zygote_pool > 0 && self.cfg.zygotes.iter().any(|z| z.serves(&spec));
        let blank = {
            let mut lent = self.lock_lent();
            if lent.failures >= DIRECT_FAILURES {
                None
            } else {
                let blank = lent.blanks.pop_front();
                if let Some(b) = blank.as_ref().filter(|_| !zygote) {
                    lent.claiming.insert(
                        b.pid.as_raw(),
                        Claiming {
                            id: spec.id.clone(),
                            started: false,
                            gone: None,
                        },
                    );
                }
                blank
            }
        };
        match blank {
            Some(blank) if !zygote => match self.claim_here(blank, spec.clone()).await {
                Ok(spawned) => Ok(spawned),
                Err(Direct::Spec(e)) => Err(e),
                Err(Direct::Blank(e)) => {
                    self.direct_failed(&e);
                    self.via_helper(spec, None).await
                }
            },
            carried => self.via_helper(spec, carried).await,
        }
    }

    /// Claims lent `blank` for `spec` here (see [`Spawner::spawn`]); answers once the
    /// function's program runs.
    async fn claim_here(
        &self,
        blank: Blank,
        mut spec: SandboxSpec,
    ) -> Result<SpawnedSandbox, Direct> {
        let t = std::time::Instant::now();
        let pid = blank.pid;
        let forget = || {
            self.lock_lent().claiming.remove(&pid.as_raw());
        };
        let msg = match crate::spawn::check(&self.cfg, &mut spec) {
            Ok(m) => m,
            Err(e) => {
                forget();
                // The blank is still good: back to the pool, first in line.
                self.lock_lent().blanks.push_front(blank);
                return Err(Direct::Spec(e));
            }
        };
        let spawned = match crate::spawn::claim(&self.cfg, blank, &spec, &msg) {
            Ok(s) => s,
            Err(e) => {
                forget();
                return Err(Direct::Blank(e));
            }
        };
        self.lock_lent().failures = 0;
        // Whatever happens from now on, the helper hears of the claim (also if this future
        // is dropped: the sandbox then is ended, and its cgroup, now named for it, removed).
        let notice = ClaimNotice {
            spawner: self,
            pid,
            id: spec.id.clone(),
            limits: spec.limits,
            wanted: true,
        };
        let crate::spawn::Spawned {
            pid: _,
            listener,
            output,
            status,
            report: _,
        } = spawned;
        let failure = exec_outcome(status).await;
        tracing::debug!(id = %spec.id, us = t.elapsed().as_micros() as u64, "lent blank claimed, its program started");
        if !failure.is_empty() {
            drop(notice);
            return Err(Direct::Spec(failure));
        }
        let gone = {
            let mut lent = self.lock_lent();
            match lent.claiming.get_mut(&pid.as_raw()) {
                Some(c) => {
                    c.started = true;
                    c.gone.take()
                }
                None => None,
            }
        };
        let mut notice = notice;
        notice.wanted = false;
        drop(notice);
        if let Some((exit_code, signal)) = gone {
            self.lock_lent().claiming.remove(&pid.as_raw());
            let _ = self.exits.send(Exit {
                id: spec.id.clone(),
                exit_code,
                signal,
                usage: crate::cgroup::Usage::default(),
            });
        }
        Ok(SpawnedSandbox {
            pid: pid.as_raw(),
            listener,
            output,
        })
    }

    /// A direct claim failed with the blank at fault: after [`DIRECT_FAILURES`] in a row,
    /// stop (and have the helper stop making blanks).
    fn direct_failed(&self, error: &str) {
        let stop = {
            let mut lent = self.lock_lent();
            lent.failures += 1;
            lent.failures == DIRECT_FAILURES
        };
        tracing::debug!(%error, "claiming a lent blank failed");
        if stop {
            tracing::warn!(%error, "no longer claiming blank sandboxes in the server");
            let blanks: Vec<Blank> = self.lock_lent().blanks.drain(..).collect();
            for b in blanks {
                let _ = kill(b.pid, Signal::SIGKILL);
            }
            let _ = self.request(Request::GiveUp(error.to_string()), Vec::new());
        }
    }

    /// Sends `request` (with `blank`'s descriptors) without blocking the async thread.
    fn request(&self, request: Request, fds: Vec<RawFd>) -> Result<bool, HelperError> {
        try_send(self.sock.as_fd(), &request, &fds)
    }

    /// Has the helper make the sandbox (see [`Spawner::spawn`]).
    async fn via_helper(
        &self,
        spec: SandboxSpec,
        carried: Option<Blank>,
    ) -> Result<SpawnedSandbox, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| "poisoned".to_string())?
            .insert(spec.id.clone(), tx);
        let request = Request::Spawn {
            spec: Box::new(spec.clone()),
            blank: carried.as_ref().map(|b| (b.pid.as_raw(), b.placed.clone())),
        };
        let fds: Vec<RawFd> = carried
            .as_ref()
            .map(|b| b.fds().to_vec())
            .unwrap_or_default();
        let sent = match self.request(request, fds.clone()) {
            Ok(true) => Ok(()),
            // The helper is behind (a burst of cold starts): wait for room off the async
            // threads, which may be the server's only one.
            Ok(false) => {
                let sock = self.sock.clone();
                let request = Request::Spawn {
                    spec: Box::new(spec.clone()),
                    blank: carried.as_ref().map(|b| (b.pid.as_raw(), b.placed.clone())),
                };
                tokio::task::spawn_blocking(move || {
                    // The blank's descriptors stay open until they are sent.
                    let sent = send(sock.as_fd(), &request, &fds);
                    drop(carried);
                    sent
                })
                .await
                .unwrap_or(Err(HelperError::Gone))
            }
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            if let Ok(mut p) = self.pending.lock() {
                p.remove(&spec.id);
            }
            return Err(e.to_string());
        }
        rx.await.map_err(|_| HelperError::Gone.to_string())?
    }

    fn read_events(&self) {
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            let (event, mut fds) = match recv::<Event>(self.sock.as_fd(), &mut buf) {
                Ok(Some(m)) => m,
                Ok(None) | Err(_) => break,
            };
            match event {
                Event::Spawned { id, pid } => {
                    let reply = if fds.len() == 2 {
                        let output = fds.pop();
                        let listener = fds.pop();
                        match (listener, output) {
                            (Some(l), Some(output)) => Ok(SpawnedSandbox {
                                pid,
                                // SAFETY: the helper sent a listening TCP socket here.
                                listener: unsafe {
                                    std::net::TcpListener::from_raw_fd(l.into_raw_fd())
                                },
                                output,
                            }),
                            _ => Err("descriptors missing".to_string()),
                        }
                    } else {
                        Err(format!("expected 2 descriptors, got {}", fds.len()))
                    };
                    let waiting = self.pending.lock().ok().and_then(|mut p| p.remove(&id));
                    let undelivered = match waiting {
                        Some(tx) => tx.send(reply).err(),
                        None => Some(reply),
                    };
                    // Nobody waits for it any more (the invocation was cancelled, say, by its
                    // client leaving): end it now rather than when its runtime gives up.
                    if let Some(Ok(_)) = undelivered {
                        let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
                    }
                }
                Event::Failed { id, error } => {
                    if let Some(tx) = self.pending.lock().ok().and_then(|mut p| p.remove(&id)) {
                        let _ = tx.send(Err(error));
                    }
                }
                Event::Exited {
                    id,
                    exit_code,
                    signal,
                    usage,
                } => {
                    self.lock_lent().claiming.retain(|_, c| c.id != id);
                    let _ = self.exits.send(Exit {
                        id,
                        exit_code,
                        signal,
                        usage,
                    });
                }
                Event::Lent { pid, placed } => {
                    let pid = Pid::from_raw(pid);
                    match Blank::from_fds(pid, fds, placed) {
                        Some(blank) => {
                            let mut lent = self.lock_lent();
                            if lent.failures >= DIRECT_FAILURES {
                                let _ = kill(pid, Signal::SIGKILL);
                            } else {
                                lent.blanks.push_back(blank);
                            }
                        }
                        None => {
                            let _ = kill(pid, Signal::SIGKILL);
                        }
                    }
                }
                Event::Gone {
                    pid,
                    exit_code,
                    signal,
                } => {
                    let mut lent = self.lock_lent();
                    lent.blanks.retain(|b| b.pid.as_raw() != pid);
                    let ended = match lent.claiming.get_mut(&pid) {
                        Some(c) if c.started => Some(c.id.clone()),
                        Some(c) => {
                            c.gone = Some((exit_code, signal));
                            None
                        }
                        None => None,
                    };
                    if let Some(id) = ended {
                        lent.claiming.remove(&pid);
                        drop(lent);
                        let _ = self.exits.send(Exit {
                            id,
                            exit_code,
                            signal,
                            usage: crate::cgroup::Usage::default(),
                        });
                    }
                }
            }
        }
        // The helper is gone: fail whatever is still waiting.
        if let Ok(mut p) = self.pending.lock() {
            p.clear();
        }
    }
}

/// Why a direct claim failed: the spec (the caller's answer), or the blank (try the helper).
enum Direct {
    Spec(String),
    Blank(String),
}

/// Tells the helper that the server claimed lent blank `pid` (see [`Request::Claimed`]) when
/// dropped; `wanted` false: the sandbox is the server's, else it is ended first.
struct ClaimNotice<'a> {
    spawner: &'a Spawner,
    pid: Pid,
    id: String,
    limits: crate::cgroup::Limits,
    wanted: bool,
}

impl Drop for ClaimNotice<'_> {
    fn drop(&mut self) {
        if self.wanted {
            let _ = kill(self.pid, Signal::SIGKILL);
            // Its end is reported as the sandbox's, like any other (whoever hears of it
            // first: the helper, once it has this notice, or the server, by `Gone`).
            let mut lent = self.spawner.lock_lent();
            let gone = lent.claiming.get_mut(&self.pid.as_raw()).and_then(|c| {
                c.started = true;
                c.gone.take()
            });
            if let Some((exit_code, signal)) = gone {
                lent.claiming.remove(&self.pid.as_raw());
                drop(lent);
                let _ = self.spawner.exits.send(Exit {
                    id: self.id.clone(),
                    exit_code,
                    signal,
                    usage: crate::cgroup::Usage::default(),
                });
            }
        }
        let request = || Request::Claimed {
            pid: self.pid.as_raw(),
            id: self.id.clone(),
            limits: self.limits,
        };
        if let Ok(false) = self.spawner.request(request(), Vec::new()) {
            // The helper is behind: wait for room on a thread of its own.
            let sock = self.spawner.sock.clone();
            let request = request();
            let _ = std::thread::Builder::new()
                .name("sandbox-claimed".into())
                .spawn(move || send(sock.as_fd(), &request, &[]));
        }
    }
}

/// Waits, without blocking the async thread, for a claimed sandbox's status pipe to end:
/// empty when its program runs, else why it does not.
async fn exec_outcome(status: File) -> String {
    let read_all = |status: File| crate::spawn::read_status(status);
    if nix::fcntl::fcntl(
        &status,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .is_err()
    {
        return tokio::task::spawn_blocking(move || read_all(status))
            .await
            .unwrap_or_default();
    }
    // SAFETY: the AsyncFd owns `status` for its whole life, so its descriptor stays open
    // and the same.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(status, tokio::io::Interest::READABLE)
    };
    let fd = match registered {
        Ok(fd) => fd,
        Err(e) => return format!("watching the sandbox's start: {e}"),
    };
    let mut text = Vec::new();
    loop {
        let mut guard = match fd.readable().await {
            Ok(g) => g,
            Err(e) => return format!("watching the sandbox's start: {e}"),
        };
        let mut buf = [0u8; 4096];
        match guard.try_io(|inner| {
            nix::unistd::read(inner.get_ref(), &mut buf).map_err(std::io::Error::from)
        }) {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => text.extend_from_slice(&buf[..n]),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return format!("reading the sandbox's start: {e}"),
            Err(_would_block) => {}
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn try_send_says_when_the_socket_is_full_instead_of_waiting() {
        let (a, b) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::SeqPacket,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let msg = "x".repeat(4096);
        let mut sent = 0;
        while try_send(a.as_fd(), &msg, &[]).unwrap() {
            sent += 1;
            assert!(sent < 100_000, "the socket never filled");
        }
        assert!(sent > 0);
        // Room again once the other side reads one message.
        let mut buf = vec![0u8; 8192];
        let got: Option<(String, Vec<OwnedFd>)> = recv(b.as_fd(), &mut buf).unwrap();
        assert_eq!(got.unwrap().0, msg);
        assert!(try_send(a.as_fd(), &msg, &[]).unwrap());
    }
}
