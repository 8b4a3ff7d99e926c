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
//! kills every sandbox, removes their cgroups and exits: nothing outlives the server.

use std::collections::HashMap;
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

/// Like [`send`] without descriptors, but returns `Ok(false)` instead of waiting when the
/// socket has no room (the helper is behind): an async thread must not block on it.
pub(crate) fn try_send(
    sock: BorrowedFd<'_>,
    msg: &impl serde::Serialize,
) -> Result<bool, HelperError> {
    send_with(sock, msg, &[], MsgFlags::MSG_DONTWAIT)
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
                        pool.remember_limits(spec.limits);
                        let result =
                            crate::parent_process::check(&cfg, &mut spec).and_then(|msg| {
                                let zygote = cfg.zygotes.iter().position(|z| z.serves(&spec));
                                if let Some(blank) = pool.take(zygote) {
                                    from_pool = Some(if blank.placed.zygote.is_some() {
                                        "zygote"
                                    } else {
                                        "plain"
                                    });
                                    match crate::parent_process::claim(&cfg, blank, &spec, &msg) {
                                        Ok(spawned) => return Ok(spawned),
                                        // Blanks cannot be claimed here (say, no right to
                                        // restore the normal scheduling policy): stop making
                                        // them, and make this sandbox the plain way.
                                        Err(e) => pool.give_up(&e),
                                    }
                                }
                                let slot = pool.slot();
                                let blank = crate::parent_process::prepare(
                                    &cfg,
                                    &seccomp,
                                    &host_netns,
                                    slot,
                                    false,
                                    None,
                                )?;
                                crate::parent_process::claim(&cfg, blank, &spec, &msg)
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
    let status = crate::parent_process::read_status(spawned.status);
    if !status.is_empty() {
        crate::parent_process::abandon(cfg, &id, pid);
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
                crate::parent_process::read_report(&spawned.report).unwrap_or((exit_code, signal));
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
        if pool.on_exit(pid) {
            continue;
        }
        if let Some((id, report)) = live.remove(&pid) {
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

/// The server's handle on its helper. Cloneable; spawns are answered in order.
#[derive(Clone)]
pub struct Spawner {
    sock: Arc<OwnedFd>,
    pending: Arc<Mutex<Pending>>,
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
        let pending: Arc<Mutex<Pending>> = Arc::default();
        let reader_sock = sock.clone();
        let reader_pending = pending.clone();
        std::thread::Builder::new()
            .name("sandbox-events".into())
            .spawn(move || read_events(&reader_sock, &reader_pending, &exits))?;
        Ok(Spawner {
            sock,
            pending,
            child: Arc::new(Mutex::new(child)),
        })
    }

    /// The helper's process id.
    pub fn helper_pid(&self) -> u32 {
        self.child.lock().map(|c| c.id()).unwrap_or(0)
    }

    /// Closes the connection: the helper kills every sandbox, removes their cgroups and
    /// exits (as when the server process ends).
    pub fn shutdown(&self) {
        let _ = nix::sys::socket::shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
    }

    /// Creates a sandbox. Fails with the helper's reason if it could not.
    pub async fn spawn(&self, spec: SandboxSpec) -> Result<SpawnedSandbox, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| "poisoned".to_string())?
            .insert(spec.id.clone(), tx);
        let request = Request::Spawn(Box::new(spec.clone()));
        let sent = match try_send(self.sock.as_fd(), &request) {
            Ok(true) => Ok(()),
            // The helper is behind (a burst of cold starts): wait for room off the async
            // threads, which may be the server's only one.
            Ok(false) => {
                let sock = self.sock.clone();
                tokio::task::spawn_blocking(move || send(sock.as_fd(), &request, &[]))
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
}

fn read_events(
    sock: &OwnedFd,
    pending: &Mutex<Pending>,
    exits: &tokio::sync::mpsc::UnboundedSender<Exit>,
) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let (event, mut fds) = match recv::<Event>(sock.as_fd(), &mut buf) {
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
                let waiting = pending.lock().ok().and_then(|mut p| p.remove(&id));
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
                if let Some(tx) = pending.lock().ok().and_then(|mut p| p.remove(&id)) {
                    let _ = tx.send(Err(error));
                }
            }
            Event::Exited {
                id,
                exit_code,
                signal,
                usage,
            } => {
                let _ = exits.send(Exit {
                    id,
                    exit_code,
                    signal,
                    usage,
                });
            }
        }
    }
    // The helper is gone: fail whatever is still waiting.
    if let Ok(mut p) = pending.lock() {
        p.clear();
    }
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
        while try_send(a.as_fd(), &msg).unwrap() {
            sent += 1;
            assert!(sent < 100_000, "the socket never filled");
        }
        assert!(sent > 0);
        // Room again once the other side reads one message.
        let mut buf = vec![0u8; 8192];
        let got: Option<(String, Vec<OwnedFd>)> = recv(b.as_fd(), &mut buf).unwrap();
        assert_eq!(got.unwrap().0, msg);
        assert!(try_send(a.as_fd(), &msg).unwrap());
    }
}
