//! Blank sandboxes made ahead of demand, by a second process: the preparer.
//!
//! A blank (see [`crate::parent_process`]) costs about 2 ms of CPU: `clone` into six namespaces, the
//! veth pair, the listener. Made by the helper itself, it would hold up every request that
//! arrives meanwhile, and compete for the CPU with the cold start that just took a blank.
//! So at start the helper forks the preparer, a single-threaded copy of itself under
//! `SCHED_IDLE`: it makes blanks only with CPU time nobody else wants. It clones
//! them with `CLONE_PARENT`, which makes them the helper's children (the helper reaps them
//! like any sandbox), and passes their descriptors back over a socket pair. The helper never
//! waits for the preparer: a request takes a ready blank, or the helper makes its sandbox
//! itself.
//!
//! Blanks come in kinds: plain ones, and for each [`crate::spec::Zygote`] blanks that run it.
//! The pool keeps `pool` plain blanks, and `zygote_pool` blanks of each zygote once a request
//! it serves has come (a host that never runs, say, Python keeps no Python interpreters).
//!
//! # Blanks, claims and zygotes in detail
//!
//! (Moved here from ARCHITECTURE.md, which keeps only the map.)
//!
//! A sandbox is made in two steps, by the helper (`parent_process.rs`) and by the sandbox's
//! init (`init_process.rs`). `prepare` needs nothing from the function:
//! `clone` into the six namespaces, the uid/gid maps, the veth pair and the listener in the new
//! network namespace; the child then mounts the template root, the system directories, devices,
//! `/dev/shm` and `/proc`, pivots into that root (read-only) with the host's root kept at
//! `/tmp`, and waits on a pipe.
//! `claim` gives such a blank its function: the helper creates the cgroup with the function's
//! limits, moves the blank's init into it and writes the spec down the pipe; the init sets the
//! hostname, binds the code and layers from the host's root (bind sources are made canonical
//! first, since absolute symlinks would resolve against the new root), detaches the host's
//! root for good, mounts `/tmp` at the function's size in its place, and starts the
//! function's process: a `clone(CLONE_VM|CLONE_VFORK)` that drops to 993:990, resets the
//! signals the helper ignores, installs seccomp and execs. Sharing the init's memory until
//! its `execve` matters: a process forked ahead (as before) had its own copy of the init's
//! address space, whose teardown made that `execve` take about 190 µs instead of 90. Nothing the function runs ever sees the host's root: only
//! Stratus's own code (a zygote, below) runs before the detach. The claim moves the init and
//! any child it has into the cgroup.
//!
//! **Zygotes.** Because the blank is already in its final root, a program started before the
//! claim sees the paths it will have. A `Zygote` (`spec.rs`: argv, env, binds, and the
//! variables its program reads only at start-up) is a program a blank starts in its function's
//! process before any claim; `launch::zygotes` makes one per host Python interpreter: the
//! interpreter running Stratus's runtime in Lambda's default environment, which loads itself
//! and waits on descriptor 3. At the claim it reads the spec there, takes on the function's
//! environment (keeping what the interpreter itself added, PEP 538's `LC_CTYPE`) and working
//! directory, and loads the handler: a Python cold start skips the interpreter's start-up. The
//! helper gives a zygote blank only to a spec the zygote `serves` (same argv, its binds, the
//! same values for `PYTHON*`, locale, `LD_*`, `TZ`, `HOME`, allocator variables); others take
//! a plain blank. The pool keeps `zygote_pool` (default 2) blanks per zygote, but only once a
//! spec it serves has come. A zygote blank whose zygote has ended is discarded when taken (its
//! output logged); after three in a row the pool stops making that zygote. One that ends or
//! stops reading at the claim itself is killed and replaced inside the init by a plain start
//! (the spec write fails with `EPIPE`). What a zygote looks at before the claim
//! must exist then: the template has an empty `/var/task/lib` (hidden by the code's bind),
//! because the dynamic linker gives up for good on a directory of `LD_LIBRARY_PATH` it once
//! found missing. Known differences: `/proc/self/environ` of a zygote-started function shows
//! the environment the interpreter was started with; on cgroup v2 the memory a zygote touched
//! before its claim stays charged where it was made (v1 renames the blank's cgroup, charges
//! included).
//!
//! `sandbox_pool` blanks (default 4) are kept ready by the *preparer* (`pool.rs`): a process the
//! helper forks at start, single-threaded like it, under `SCHED_IDLE` so it only uses CPU nobody else
//! wants. It clones blanks with `CLONE_PARENT`, so they are the helper's children (reaped like
//! any sandbox), and sends their descriptors back over a socket pair. The helper never waits
//! for it: a request takes a ready blank or the helper makes one itself; it asks for more,
//! one blank at a time, whenever no sandbox is between its claim and its program's start
//! (making a blank takes the kernel locks that building a root needs, the mount-namespace
//! semaphore and the cgroup and RTNL mutexes, and a preparer preempted while holding one
//! would hold up the claim; the runtime's own start-up, a millisecond or more of CPU and no
//! such lock, is when the preparer works, so a series of cold starts finds a blank each time:
//! waiting instead for 2 ms without requests let such a series drain the pool, and one cold
//! start in four made its sandbox on the spot). A plain blank's processes leave `SCHED_IDLE`
//! themselves once their spec has come (the preparer raises `RLIMIT_NICE` to 20, which allows
//! exactly that and lets a function ask for nice 0 at most); a zygote blank's claim changes
//! its processes' policy (a test asserts the function runs under SCHED_OTHER). Where cgroups
//! can be renamed (v1), the preparer also puts each blank in a `pool-<tag>-<pid>` cgroup, with the
//! limits of the last claim (usually the next one's too), and the claim writes only the limits
//! that differ, sends the spec, then renames the cgroup to the environment's id: moving a
//! process between cgroups waits for an RCU grace period, a rename does not (claim 0.45-0.8 ms
//! -> 0.2-0.25 ms), and the limit writes that match need not happen (0.2 -> 0.1 ms). Blanks hold
//! no code and count against no limit; one killed unclaimed is replaced; one that fails on its
//! own, a claim of a blank that fails (then the request makes its sandbox the plain way), or a
//! preparer that dies stops the pool for good (requests still make their sandboxes, and say
//! why they fail). When the helper leaves it kills every child it still has, tracked or not. Every sandbox init closes the descriptors it inherited and dies with the
//! helper (`PR_SET_PDEATHSIG`), and so does the preparer. A v1 blank's cgroup is `pool-<tag>-<pid>`,
//! tagged with the instance (see [`crate::instance`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use seccompiler::BpfProgram;
use serde::{Deserialize, Serialize};

use crate::cgroup::Limits;
use crate::channel::{recv, send};
use crate::parent_process::{Blank, Placed};
use crate::slots::{Slot, Slots};
use crate::spec::HelperConfig;

/// Zygote blanks of one kind found dead in a row before the pool stops making that kind.
const ZYGOTE_DEATHS: u32 = 3;

/// The helper's request to the preparer.
#[derive(Debug, Serialize, Deserialize)]
enum Ask {
    /// Make one blank, in slot `slot` (chosen and held by the helper, see
    /// [`crate::slots`]), running zygote `zygote` (an index in the config's zygotes).
    Prepare {
        slot: u32,
        zygote: Option<usize>,
        /// The limits of the last claim, for the blank's cgroup: the next claim likely has
        /// the same, and then writes none.
        limits: Option<Limits>,
        /// The `/tmp` size of the last claim, for the blank's own `/tmp` (see
        /// `crate::ephemeral`); none when `/tmp` is a tmpfs.
        tmp_mb: Option<u64>,
    },
}

/// The preparer's answer; `Ready` comes with the blank's five descriptors.
#[derive(Debug, Serialize, Deserialize)]
enum Answer {
    Ready { pid: i32, slot: u32, placed: Placed },
    Failed { error: String, slot: u32 },
}

/// The helper's side: ready blanks, oldest first, and the preparer that makes more.
pub(crate) struct Pool {
    blanks: VecDeque<Blank>,
    /// Plain blanks to keep.
    target: usize,
    /// Blanks to keep of each zygote asked for.
    zygote_target: usize,
    /// Per zygote: whether a request it serves has come.
    wanted: Vec<bool>,
    /// Per zygote: how many of its blanks in a row were found dead when taken; at
    /// [`ZYGOTE_DEATHS`] the pool stops making it.
    deaths: Vec<u32>,
    /// Per zygote: its program, for the log.
    zygote_names: Vec<String>,
    /// Blanks asked for and not answered yet.
    asked: usize,
    /// The limits of the last claim (see [`Ask::Prepare`]).
    last_limits: Option<Limits>,
    /// The `/tmp` size of the last claim (see [`Ask::Prepare`]).
    last_tmp_mb: Option<u64>,
    /// Slots handed to the preparer whose blank has not come back yet.
    reserved: HashMap<u32, Slot>,
    preparer: Option<(Pid, OwnedFd)>,
    slots: Slots,
    cgroups: crate::cgroup::Layout,
    /// Children that ended before the helper knew them: blanks whose `Ready` had not been
    /// read yet. Such a `Ready` is dropped (its pid may already belong to someone else).
    gone_before_ready: HashSet<i32>,
}

impl Pool {
    /// Forks the preparer (when `cfg.pool > 0`). Must run while the helper is still
    /// single-threaded and before it holds any sandbox. `close` are the helper's descriptors
    /// the preparer must not keep (the server's socket, the signalfd).
    pub(crate) fn start(
        cfg: &HelperConfig,
        seccomp: &[BpfProgram],
        host_netns: &File,
        network: bool,
        close: &[RawFd],
    ) -> Pool {
        let mut pool = Pool {
            blanks: VecDeque::new(),
            target: cfg.pool,
            zygote_target: cfg.zygote_pool,
            wanted: vec![false; cfg.zygotes.len()],
            deaths: vec![0; cfg.zygotes.len()],
            zygote_names: cfg
                .zygotes
                .iter()
                .map(|z| z.argv.first().cloned().unwrap_or_default())
                .collect(),
            asked: 0,
            last_limits: None,
            // Lambda's default until a claim says otherwise.
            last_tmp_mb: cfg.ephemeral_dir.is_some().then_some(512),
            reserved: HashMap::new(),
            preparer: None,
            slots: Slots::new(network),
            cgroups: cfg.cgroups.clone(),
            gone_before_ready: HashSet::new(),
        };
        if cfg.pool == 0 && (cfg.zygote_pool == 0 || cfg.zygotes.is_empty()) {
            return pool;
        }
        let pair = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        );
        let (ours, theirs) = match pair {
            Ok(p) => p,
            Err(e) => {
                pool.give_up(&format!("socketpair: {e}"));
                return pool;
            }
        };
        let helper = nix::unistd::getpid();
        // SAFETY: the helper is single-threaded (its module doc), so the child may run
        // ordinary code; it leaves through `_exit` and never returns into the helper's loop.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                // The preparer dies with the helper. Had the helper died before the prctl,
                // no signal would come: our parent would already be another process.
                // SAFETY: prctl with integer arguments only.
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                }
                if nix::unistd::getppid() != helper {
                    // SAFETY: leaving the forked child without running the helper's destructors.
                    unsafe { libc::_exit(0) }
                }
                drop(ours);
                for fd in close {
                    // SAFETY: closing the helper's descriptors in our own copy of its table.
                    unsafe {
                        libc::close(*fd);
                    }
                }
                prepare_forever(cfg, seccomp, host_netns, network, theirs);
                // SAFETY: leaving the forked child without running the helper's destructors.
                unsafe { libc::_exit(0) }
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => {
                drop(theirs);
                pool.preparer = Some((child, ours));
            }
            Err(e) => pool.give_up(&format!("fork: {e}")),
        }
        pool
    }

    /// The socket to poll for the preparer's answers.
    pub(crate) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.preparer.as_ref().map(|(_, s)| s.as_fd())
    }

    /// A ready blank for a request that zygote `zygote` serves (if any): one running it,
    /// else a plain one. From now on the pool keeps blanks of that zygote. A zygote blank
    /// whose zygote has died is discarded (and counted) rather than given out.
    pub(crate) fn take(&mut self, zygote: Option<usize>) -> Option<Blank> {
        if let Some(k) = zygote.filter(|&k| self.usable(k)) {
            self.wanted[k] = true;
            while let Some(i) = self.blanks.iter().position(|b| b.placed.zygote == zygote) {
                let blank = self.blanks.remove(i)?;
                if blank.zygote_alive() {
                    self.deaths[k] = 0;
                    return Some(blank);
                }
                self.zygote_died(k, blank);
            }
        }
        let i = self.blanks.iter().position(|b| b.placed.zygote.is_none())?;
        self.blanks.remove(i)
    }

    /// A request came with `limits` and a `/tmp` on disk of `tmp_mb` (none: a tmpfs):
    /// blanks made from now on get them (see [`Ask::Prepare`]).
    pub(crate) fn remember_limits(&mut self, limits: Limits, tmp_mb: Option<u64>) {
        self.last_limits = Some(limits);
        self.last_tmp_mb = tmp_mb;
    }

    /// Whether zygote `k` exists and has not been given up on.
    fn usable(&self, k: usize) -> bool {
        self.deaths.get(k).is_some_and(|&d| d < ZYGOTE_DEATHS)
    }

    /// A blank of zygote `k` whose zygote ended before its claim: say why, discard it, and
    /// after [`ZYGOTE_DEATHS`] in a row stop making that zygote (its requests start their
    /// programs the plain way, as they would without zygotes).
    fn zygote_died(&mut self, k: usize, blank: Blank) {
        self.deaths[k] += 1;
        let output = blank.output_so_far();
        tracing::warn!(zygote = %self.zygote_names[k], %output, "a zygote ended before its claim");
        self.discard(blank);
        if self.deaths[k] >= ZYGOTE_DEATHS {
            tracing::warn!(zygote = %self.zygote_names[k], "no longer starting this zygote ahead: its last {ZYGOTE_DEATHS} ended before their claim");
            while let Some(i) = self.blanks.iter().position(|b| b.placed.zygote == Some(k)) {
                if let Some(b) = self.blanks.remove(i) {
                    self.discard(b);
                }
            }
        }
    }

    fn discard(&mut self, blank: Blank) {
        crate::parent_process::discard(blank.pid);
        if let Some(name) = &blank.placed.cgroup {
            let _ = self.cgroups.remove(name);
        }
    }

    /// The kind of blank to make next, if the pool lacks any: zygotes first (they take
    /// longest to get ready), then plain blanks.
    fn next_kind(&self) -> Option<Option<usize>> {
        let count = |kind: Option<usize>| {
            self.blanks
                .iter()
                .filter(|b| b.placed.zygote == kind)
                .count()
        };
        let zygote = (0..self.wanted.len())
            .find(|&k| self.wanted[k] && self.usable(k) && count(Some(k)) < self.zygote_target);
        match zygote {
            Some(k) => Some(Some(k)),
            None => (count(None) < self.target).then_some(None),
        }
    }

    /// A free slot (see [`crate::slots`]), held until the returned value is dropped.
    pub(crate) fn slot(&mut self) -> Result<Slot, String> {
        self.slots.take()
    }

    /// Whether the pool lacks blanks and the preparer is idle.
    pub(crate) fn wants_more(&self) -> bool {
        self.preparer.is_some() && self.asked == 0 && self.next_kind().is_some()
    }

    /// Asks the preparer for one more blank (one at a time, so that it is never busy for
    /// long once requests resume).
    pub(crate) fn refill(&mut self) {
        if !self.wants_more() {
            return;
        }
        if let Some(zygote) = self.next_kind() {
            let held = match self.slot() {
                Ok(held) => held,
                Err(e) => {
                    self.give_up(&e);
                    return;
                }
            };
            let slot = held.n;
            self.reserved.insert(slot, held);
            let sent = match &self.preparer {
                Some((_, sock)) => send(
                    sock.as_fd(),
                    &Ask::Prepare {
                        slot,
                        zygote,
                        limits: self.last_limits,
                        tmp_mb: self.last_tmp_mb,
                    },
                    &[],
                ),
                None => return,
            };
            if let Err(e) = sent {
                self.give_up(&format!("asking the preparer: {e}"));
                return;
            }
            self.asked += 1;
        }
    }

    /// Takes in one answer of the preparer (its socket is readable).
    pub(crate) fn receive(&mut self) {
        let Some((_, sock)) = &self.preparer else {
            return;
        };
        let mut buf = vec![0u8; 4096];
        let answer = recv::<Answer>(sock.as_fd(), &mut buf);
        self.asked = self.asked.saturating_sub(1);
        match answer {
            Ok(Some((Answer::Ready { pid, slot, placed }, fds))) => {
                let held = self.reserved.remove(&slot);
                let cgroup = placed.cgroup.clone();
                if self.gone_before_ready.remove(&pid) {
                    // Already reaped: only its cgroup is left (its descriptors close here).
                    if let Some(name) = cgroup {
                        let _ = self.cgroups.remove(&name);
                    }
                    return;
                }
                match Blank::from_fds(Pid::from_raw(pid), fds, placed, held) {
                    Some(blank) => self.blanks.push_back(blank),
                    None => {
                        crate::parent_process::discard(Pid::from_raw(pid));
                        if let Some(name) = cgroup {
                            let _ = self.cgroups.remove(&name);
                        }
                        self.give_up("a blank came without its descriptors");
                    }
                }
            }
            Ok(Some((Answer::Failed { error, slot }, _))) => {
                self.reserved.remove(&slot);
                self.give_up(&error);
            }
            Ok(None) => self.give_up("the preparer has stopped"),
            Err(e) => self.give_up(&e.to_string()),
        }
    }

    /// A child the helper does not know ended: remembered until its `Ready` arrives.
    pub(crate) fn note_unknown_exit(&mut self, pid: Pid) {
        if self.gone_before_ready.len() > 1024 {
            self.gone_before_ready.clear();
        }
        self.gone_before_ready.insert(pid.as_raw());
    }

    /// A child of the helper ended: if it was a blank or the preparer, deal with it and say
    /// `true`.
    pub(crate) fn on_exit(&mut self, pid: Pid) -> bool {
        if let Some(i) = self.blanks.iter().position(|b| b.pid == pid) {
            // Killed from outside, it is just gone (and replaced); failing on its own, it
            // says why, and blanks would keep failing.
            if let Some(blank) = self.blanks.remove(i) {
                if let Some(name) = &blank.placed.cgroup {
                    let _ = self.cgroups.remove(name);
                }
                if let Some(why) = blank.failure() {
                    self.give_up(&why.to_string());
                }
            }
            return true;
        }
        if self.preparer.as_ref().is_some_and(|(p, _)| *p == pid) {
            self.preparer = None;
            self.give_up("the preparer has stopped");
            return true;
        }
        false
    }

    /// Something about this host stops blanks: stop making them ahead (requests still make
    /// their sandboxes, and say why they fail) rather than retry in a loop.
    pub(crate) fn give_up(&mut self, error: &str) {
        if self.target > 0 || self.zygote_target > 0 {
            tracing::warn!(%error, "no longer preparing sandboxes ahead");
        }
        self.target = 0;
        self.zygote_target = 0;
        if let Some((pid, _)) = self.preparer.take() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }

    /// Ends the preparer and every blank.
    pub(crate) fn shutdown(&mut self) {
        if let Some((pid, sock)) = self.preparer.take() {
            drop(sock);
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        while let Some(blank) = self.blanks.pop_front() {
            self.discard(blank);
        }
    }
}

/// The preparer's life: one blank per request, until the helper's end closes.
fn prepare_forever(
    cfg: &HelperConfig,
    seccomp: &[BpfProgram],
    host_netns: &File,
    network: bool,
    sock: OwnedFd,
) {
    // A process under SCHED_IDLE may take SCHED_OTHER back by itself only if RLIMIT_NICE
    // allows its nice value (0, so 20): blanks inherit this limit, and their processes then
    // leave SCHED_IDLE themselves when claimed. It lets a function ask for nice 0 at most,
    // which it has anyway.
    let nice = libc::rlimit {
        rlim_cur: 20,
        rlim_max: 20,
    };
    // SAFETY: setrlimit on ourselves with a valid, initialised limit.
    let self_normal = unsafe { libc::setrlimit(libc::RLIMIT_NICE, &nice) } == 0;
    // SCHED_IDLE rather than nice 19: under EEVDF a nice-19 task that got the CPU keeps
    // it for its whole slice (milliseconds, while a cold start's runtime waits), whereas a
    // SCHED_IDLE task gives way the moment any normal task wakes.
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler on ourselves with a valid, initialised parameter.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
    }
    let mut ephemeral = cfg
        .ephemeral_dir
        .as_deref()
        .map(crate::ephemeral::Ephemeral::existing);
    let mut made_tmp = 0u64;
    let mut buf = vec![0u8; 4096];
    while let Ok(Some((
        Ask::Prepare {
            slot,
            zygote,
            limits,
            tmp_mb,
        },
        _,
    ))) = recv::<Ask>(sock.as_fd(), &mut buf)
    {
        // The blank's `/tmp`, made now rather than at its claim. Without it the claim makes
        // one (and says why if it cannot).
        let tmp = tmp_mb.zip(ephemeral.as_mut()).and_then(|(mb, e)| {
            made_tmp += 1;
            let id = format!("blank-{}-{made_tmp}", std::process::id());
            match e.mount(&id, mb) {
                Ok(mnt) => Some((mnt, mb)),
                Err(error) => {
                    tracing::debug!(%error, "no /tmp made ahead");
                    None
                }
            }
        });
        let made = crate::parent_process::prepare(
            cfg,
            seccomp,
            host_netns,
            crate::parent_process::BlankPlan {
                slot,
                network,
                sibling: true,
                zygote,
                tmp,
            },
        )
        .and_then(|blank| place(cfg, blank, limits, self_normal));
        let sent = match made {
            Ok(blank) => send(
                sock.as_fd(),
                &Answer::Ready {
                    pid: blank.pid.as_raw(),
                    slot,
                    placed: blank.placed.clone(),
                },
                &blank.fds(),
            ),
            Err(error) => send(sock.as_fd(), &Answer::Failed { error, slot }, &[]),
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Readies a blank for a quick claim: where cgroups can be renamed (v1), puts its init in
/// a cgroup of its own now, with `limits` (the last claim's) if known, so that its claim
/// renames it instead of moving the process (which waits for RCU) and writes only the
/// limits that differ. `self_normal`: a plain blank's processes can leave `SCHED_IDLE`
/// themselves at the claim (a zygote's interpreter cannot: its claim changes its policy).
fn place(
    cfg: &HelperConfig,
    mut blank: Blank,
    limits: Option<Limits>,
    self_normal: bool,
) -> Result<Blank, String> {
    blank.placed.normal_policy = self_normal && blank.placed.zygote.is_none();
    if !cfg.cgroups.renames() {
        return Ok(blank);
    }
    let name = crate::instance::pool_cgroup(&cfg.instance, blank.pid.as_raw());
    let placed = cfg
        .cgroups
        .create_empty(&name)
        .and_then(|()| match &limits {
            Some(l) => cfg.cgroups.set_limits(&name, l),
            None => Ok(()),
        })
        .and_then(|()| crate::parent_process::attach_sandbox(&cfg.cgroups, &name, blank.pid));
    if let Err(e) = placed {
        // Not our child: the helper reaps it, and its cgroup once it is gone.
        let _ = kill(blank.pid, Signal::SIGKILL);
        let _ = cfg.cgroups.remove(&name);
        return Err(format!("placing a blank in its cgroup: {e}"));
    }
    blank.placed.cgroup = Some(name);
    blank.placed.limits = limits;
    Ok(blank)
}
