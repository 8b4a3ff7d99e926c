//! Slots: what makes each sandbox on a host distinct from every other, whichever server
//! made it. Slot `n` gives a sandbox its host uid (`HelperConfig::host_uid + n`) and, with
//! networking, its veth pair and /30 (see [`crate::net`]).
//!
//! Why a uid per sandbox: the kernel charges per-user limits to a uid, not to a sandbox.
//! inotify instances and watches, user namespaces, pending signals and message queues are
//! counted per (user namespace, uid) and, level by level, up the chain of user namespaces
//! to the uid that created each one, against the limit of that level (`ucounts`); with the
//! host's limit at the top (`fs.inotify.max_user_instances`, 128). Every sandbox's user
//! namespace being created by root, all of them (and root's own programs) shared one count
//! there, and one function could spend it for all. Mapping a distinct uid inside is not
//! enough: the top level counts the namespace's creator. So each sandbox's user namespace
//! is created with its slot's uid as effective uid (see `parent_process::prepare`), and its
//! function runs as that uid: the top-level counts are its own. Limits kept per host uid
//! outside `ucounts` (epoll watches, pipe buffers, keyrings) follow the mapped uid, the same.
//!
//! A slot is held by an exclusive `flock` on `/run/stratus/slots/<n>`, taken by the helper
//! and released when the sandbox is reaped (the descriptor closes): servers sharing a host
//! never hand out the same slot, and a helper that dies releases its slots with its
//! descriptors. With networking, a slot whose pair still exists (a namespace being torn
//! down) is passed over too.
//!
//! Runs in the helper only. Depends on [`crate::net`] (the pairs).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// How many slots there are: as many as sandbox networks (/30s in a /16).
pub const COUNT: u32 = crate::net::SLOTS;
/// Where the slots' lock files are, host-wide.
pub const DIR: &str = "/run/stratus/slots";

/// A slot held by this process until dropped.
#[derive(Debug)]
pub struct Slot {
    pub n: u32,
    _lock: File,
}

/// Hands out free slots, round robin.
pub(crate) struct Slots {
    dir: PathBuf,
    next: u32,
    network: bool,
}

impl Slots {
    /// `network`: slots whose veth pair exists are not free.
    pub(crate) fn new(network: bool) -> Slots {
        Slots {
            dir: PathBuf::from(DIR),
            next: 0,
            network,
        }
    }

    /// A free slot, locked; none when all are taken (or the lock directory cannot be made).
    pub(crate) fn take(&mut self) -> Result<Slot, String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("creating {}: {e}", self.dir.display()))?;
        for _ in 0..COUNT {
            let n = self.next;
            self.next = (self.next + 1) % COUNT;
            if let Some(slot) = self.try_slot(n)? {
                return Ok(slot);
            }
        }
        Err(format!("all {COUNT} sandbox slots of this host are in use"))
    }

    fn try_slot(&self, n: u32) -> Result<Option<Slot>, String> {
        let path = self.dir.join(n.to_string());
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| format!("opening {}: {e}", path.display()))?;
        // SAFETY: flock on a descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Ok(None);
        }
        if self.network && crate::net::pair_exists(n) {
            return Ok(None);
        }
        Ok(Some(Slot { n, _lock: file }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_held_slot_is_not_handed_out_again_until_dropped() {
        let dir = std::env::temp_dir().join(format!("stratus-slots-{}", std::process::id()));
        let mut a = Slots {
            dir: dir.clone(),
            next: 0,
            network: false,
        };
        // Another server's allocator on the same host (its own descriptors, same files).
        let mut b = Slots {
            dir: dir.clone(),
            next: 0,
            network: false,
        };
        let first = a.take().unwrap();
        let second = b.take().unwrap();
        assert_eq!((first.n, second.n), (0, 1));
        drop(first);
        b.next = 0;
        assert_eq!(b.take().unwrap().n, 0);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
