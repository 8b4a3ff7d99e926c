//! The server's side of the helper: [`Spawner`] starts `stratus sandbox-helper`, sends it
//! spawn requests and hands back what it answers, and forwards every sandbox's end.
//!
//! Runs in the server, a multi-threaded tokio process: nothing here clones, mounts or
//! touches a sandbox's processes beyond killing a sandbox nobody waits for (through its
//! cgroup); all of that is the helper's ([`crate::helper`]). A thread of its own reads the
//! helper's events; an async thread never blocks on the helper's socket.
//!
//! The helper gets `SIGUSR1` as its parent-death signal, set between fork and exec with a
//! check that the server is still its parent then (a server dying before the prctl sends
//! no signal): the helper's socket closing is how it usually learns the server is gone, the
//! signal is for a socket some other process still holds.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

use crate::channel::{HelperError, MAX_MESSAGE, recv, send, try_send};
use crate::spec::{Event, HelperConfig, Request, SandboxSpec, SpawnFailure};

/// What the server gets for a spawned sandbox.
#[derive(Debug)]
pub struct SpawnedSandbox {
    pub pid: i32,
    /// Listening socket inside the sandbox's network namespace (non-blocking).
    pub listener: std::net::TcpListener,
    /// Read end of the function's stdout and stderr.
    pub output: OwnedFd,
}

type Pending = HashMap<String, tokio::sync::oneshot::Sender<Result<SpawnedSandbox, SpawnError>>>;

/// Why [`Spawner::spawn`] gave no sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The helper tried and says why (the function's program, or the platform).
    #[error(transparent)]
    Failed(#[from] SpawnFailure),
    /// The helper could not be asked, or stopped before it answered.
    #[error(transparent)]
    Helper(#[from] HelperError),
    /// The helper answered without the descriptors a sandbox comes with.
    #[error("the sandbox helper sent {0} descriptors instead of 2")]
    Descriptors(usize),
}

/// The server's handle on its helper. Cloneable; spawns are answered in order.
#[derive(Clone)]
pub struct Spawner {
    sock: Arc<OwnedFd>,
    /// The instance tag of this server run (see [`crate::instance`]).
    instance: Arc<str>,
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
        let server = nix::unistd::getpid().as_raw();
        let mut cmd = Command::new(exe);
        // Every sandbox's init is a copy of the helper, and its /proc/1/cmdline is readable
        // inside: a plain name rather than the binary's path on the host.
        std::os::unix::process::CommandExt::arg0(&mut cmd, "stratus");
        cmd.arg("sandbox-helper")
            .arg("--fd")
            .arg("3")
            .arg("--log")
            .arg(&cfg.log)
            // Every sandbox's init and the preparer are copies of the helper and keep its
            // standard descriptors: with the server's stdout they would hold open whatever
            // reads it (a pipe to a supervisor or a test) for as long as any sandbox lives.
            // stderr stays the server's, for a panic's message.
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        // SAFETY: between fork and exec the closure only calls dup2, prctl and getppid,
        // which are async-signal-safe; dup2 clears close-on-exec on the new descriptor 3.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || {
                if libc::dup2(theirs_raw, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Survives the exec; the helper blocks it and reads it from its signalfd.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGUSR1 as libc::c_ulong) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != server {
                    return Err(std::io::Error::other(
                        "the server ended before its helper started",
                    ));
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop(theirs);
        let sock = Arc::new(ours);
        send(sock.as_fd(), &Request::Init(Box::new(cfg.clone())), &[])?;
        let pending: Arc<Mutex<Pending>> = Arc::default();
        let reader_sock = sock.clone();
        let reader_pending = pending.clone();
        let cgroups = cfg.cgroups.clone();
        std::thread::Builder::new()
            .name("sandbox-events".into())
            .spawn(move || read_events(&reader_sock, &reader_pending, &exits, &cgroups))?;
        Ok(Spawner {
            sock,
            instance: cfg.instance.as_str().into(),
            pending,
            child: Arc::new(Mutex::new(child)),
        })
    }

    /// The instance tag of this server run, which its sandbox ids carry.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// A fresh sandbox id of this instance (see [`crate::instance::sandbox_id`]).
    pub fn sandbox_id(&self) -> String {
        crate::instance::sandbox_id(&self.instance)
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
    pub async fn spawn(&self, spec: SandboxSpec) -> Result<SpawnedSandbox, SpawnError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
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
            return Err(e.into());
        }
        rx.await.map_err(|_| HelperError::Gone)?
    }
}

fn read_events(
    sock: &OwnedFd,
    pending: &Mutex<Pending>,
    exits: &tokio::sync::mpsc::UnboundedSender<Exit>,
    cgroups: &crate::cgroup::Layout,
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
                        _ => Err(SpawnError::Descriptors(0)),
                    }
                } else {
                    Err(SpawnError::Descriptors(fds.len()))
                };
                let waiting = pending.lock().ok().and_then(|mut p| p.remove(&id));
                let undelivered = match waiting {
                    Some(tx) => tx.send(reply).err(),
                    None => Some(reply),
                };
                // Nobody waits for it any more (the invocation was cancelled, say, by its
                // client leaving): end it now rather than when its runtime gives up.
                if let Some(Ok(_)) = undelivered {
                    let _ = cgroups.kill(&id);
                    let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            Event::Failed { id, error } => {
                if let Some(tx) = pending.lock().ok().and_then(|mut p| p.remove(&id)) {
                    let _ = tx.send(Err(error.into()));
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
