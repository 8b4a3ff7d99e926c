//! Whose sandboxes are whose, when several servers share a host: each server run is an
//! *instance* with a tag of 8 hex digits, and everything its helper makes carries it, so
//! that a server starting up can remove what a dead one left behind without touching what
//! a live one holds.
//!
//! - Names: an environment's cgroup is named by its sandbox id, `e<tag><24 hex>` (see
//!   [`sandbox_id`]); a blank's, `pool-<tag>-<pid>`. [`owner`] reads the tag back.
//! - Liveness: the helper registers its instance in a host-wide directory
//!   (`/run/stratus/instances` by default: a tmpfs, empty after a reboot, when nothing
//!   survives anyway), as `<tag>.lock`, a file it holds an exclusive `flock` on for its life
//!   and whose content says where its cgroups live. The lock is released by the kernel when
//!   the helper ends, however it ends: a lock that can be taken belongs to a dead instance.
//!   The file is made under a dot name, locked, filled and then renamed into place, so no
//!   one ever sees an unlocked registration of a live instance.
//! - Clean-up ([`clean_leftovers`], by the helper at start, before it makes anything): every
//!   registration whose lock can be taken is a dead instance's: its tagged cgroups are
//!   killed ([`Layout::kill`]) and removed, then its registration. Cgroups under this
//!   helper's own parent whose tag names no live registration (one from before
//!   registrations, or whose registration is lost) go the same way. Untagged names are left
//!   alone. A dead instance's network namespaces, veth pairs (`stx<N>`) and mounts
//!   (all inside its sandboxes' own mount namespaces) belong to its processes and go with
//!   them.
//!
//! Runs in the helper (registration, clean-up) and in the server ([`new_tag`],
//! [`sandbox_id`]). Depends on `cgroup` only.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::cgroup::Layout;

/// Where instances register unless told otherwise.
pub const REGISTRY: &str = "/run/stratus/instances";

/// How long clean-up waits for a leftover environment's processes to be gone.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// A fresh instance tag: 8 random hex digits.
pub fn new_tag() -> String {
    hex(&random_bytes::<4>())
}

/// A fresh sandbox id for instance `tag`: `e`, the tag, 24 random hex digits (33
/// characters, like Lambda's 32-digit environment ids behind the `e`).
pub fn sandbox_id(tag: &str) -> String {
    format!("e{tag}{}", hex(&random_bytes::<12>()))
}

/// The name of a blank sandbox's cgroup (v1, see `crate::pool`).
pub(crate) fn pool_cgroup(tag: &str, pid: i32) -> String {
    format!("pool-{tag}-{pid}")
}

/// The instance tag a cgroup name carries, if it has one.
pub fn owner(name: &str) -> Option<&str> {
    let is_tag = |t: &str| t.len() == 8 && t.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(rest) = name.strip_prefix("pool-") {
        let (tag, pid) = rest.split_once('-')?;
        return (is_tag(tag) && pid.bytes().all(|b| b.is_ascii_digit())).then_some(tag);
    }
    let rest = name.strip_prefix('e')?;
    let tag = rest.get(..8)?;
    (rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit()) && is_tag(tag)).then_some(tag)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        // No /dev/urandom: time and pid still make a collision between live servers unlikely.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ (u128::from(std::process::id()) << 64);
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = (t >> ((i % 16) * 8)) as u8;
        }
    }
    b
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What a registration says about its instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    tag: String,
    /// The helper's pid (for the log).
    pid: i32,
    cgroups: Layout,
}

/// This helper's registration: the lock is held while it lives.
pub struct Registration {
    lock: Flock<File>,
    path: PathBuf,
}

impl Registration {
    /// The lock's descriptor, which processes forked from the helper must close (or they
    /// would keep the instance alive).
    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.lock.as_raw_fd()
    }

    /// Removes the registration (the helper's clean end, once its sandboxes are gone).
    pub(crate) fn remove(self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Registers instance `tag` (whose cgroups are `cgroups`) in `dir`.
pub fn register(dir: &Path, tag: &str, cgroups: &Layout) -> std::io::Result<Registration> {
    fs::create_dir_all(dir)?;
    let path = dir.join(format!("{tag}.lock"));
    let tmp = dir.join(format!(".{tag}.lock"));
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    let mut lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| e)?;
    let record = Record {
        tag: tag.into(),
        pid: std::process::id() as i32,
        cgroups: cgroups.clone(),
    };
    lock.write_all(&serde_json::to_vec(&record).map_err(std::io::Error::other)?)?;
    fs::rename(&tmp, &path)?;
    Ok(Registration { lock, path })
}

/// What [`clean_leftovers`] removed, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// Dead instances whose registrations were found, with their helpers' pids.
    pub instances: Vec<(String, i32)>,
    /// Leftover cgroups removed (a name per environment or blank).
    pub cgroups: Vec<String>,
    /// Processes that were still running in them and were killed.
    pub processes: usize,
    /// Leftover cgroups that could not be emptied or removed.
    pub failed: Vec<String>,
}

impl Cleaned {
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty() && self.cgroups.is_empty() && self.failed.is_empty()
    }
}

/// Whether instance `tag` is alive: registered in `dir` and its lock held.
fn alive(dir: &Path, tag: &str) -> bool {
    let Ok(file) = File::open(dir.join(format!("{tag}.lock"))) else {
        return false;
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_released_on_drop) => false,
        Err((_, e)) => e == nix::errno::Errno::EWOULDBLOCK,
    }
}

/// Removes what dead instances left (see the module doc); `me` is this helper's tag and
/// `mine` its cgroups.
pub fn clean_leftovers(dir: &Path, me: &str, mine: &Layout) -> Cleaned {
    let mut cleaned = Cleaned::default();
    let entries = fs::read_dir(dir).map(|rd| rd.flatten().collect::<Vec<_>>());
    // The parents live instances use (ours among them): a dead instance's parent is
    // removed only if none does. An emptied parent removed under a live server would cost
    // it its delegated controllers on v2, and every environment after.
    let mut in_use = vec![mine.clone()];
    for entry in entries.iter().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(tag) = name.strip_suffix(".lock")
            && !name.starts_with('.')
            && tag != me
            && alive(dir, tag)
            && let Ok(record) = serde_json::from_str::<Record>(
                &fs::read_to_string(entry.path()).unwrap_or_default(),
            )
        {
            in_use.push(record.cgroups);
        }
    }
    for entry in entries.unwrap_or_default() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(tag) = name.strip_suffix(".lock") else {
            continue;
        };
        if tag == me || name.starts_with('.') {
            continue;
        }
        let Ok(file) = fs::OpenOptions::new().read(true).open(entry.path()) else {
            continue;
        };
        // Held: a live instance's. Taken: ours until it is cleaned and gone.
        let Ok(mut lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        let mut text = String::new();
        let _ = lock.read_to_string(&mut text);
        match serde_json::from_str::<Record>(&text) {
            Ok(record) => {
                cleaned.instances.push((record.tag.clone(), record.pid));
                remove_cgroups(&record.cgroups, |t| t == record.tag, &mut cleaned);
                if !in_use.contains(&record.cgroups) {
                    record.cgroups.remove_parent();
                }
            }
            // Unreadable: nothing to go by but the name.
            Err(_) => cleaned.instances.push((tag.to_owned(), 0)),
        }
        let _ = fs::remove_file(entry.path());
        drop(lock);
    }
    // Under our own parent: tagged names of instances that are not alive.
    remove_cgroups(mine, |t| t != me && !alive(dir, t), &mut cleaned);
    // Registrations that never got renamed into place (a helper killed in between).
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.')
            && name.ends_with(".lock")
            && let Ok(file) = File::open(entry.path())
            && Flock::lock(file, FlockArg::LockExclusiveNonblock).is_ok()
        {
            let _ = fs::remove_file(entry.path());
        }
    }
    cleaned
}

/// Kills and removes every cgroup of `layout` whose tag `dead` says is a dead instance's.
fn remove_cgroups(layout: &Layout, dead: impl Fn(&str) -> bool, cleaned: &mut Cleaned) {
    for name in layout.list() {
        if !owner(&name).is_some_and(&dead) {
            continue;
        }
        cleaned.processes += layout.procs(&name).len();
        let emptied = layout.kill_and_wait(&name, KILL_WAIT);
        if emptied && layout.remove(&name).is_ok() {
            cleaned.cgroups.push(name);
        } else {
            cleaned.failed.push(name);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_instance() {
        let tag = new_tag();
        assert_eq!(tag.len(), 8);
        let id = sandbox_id(&tag);
        assert_eq!(id.len(), 33);
        assert_eq!(owner(&id), Some(tag.as_str()));
        assert_eq!(owner(&pool_cgroup(&tag, 4242)), Some(tag.as_str()));
        assert_ne!(sandbox_id(&tag), id);
        for untagged in [
            "orphan",
            "pool-123",
            "e1234",
            "stratus-host",
            "pool-zz-1",
            "eXYZ",
        ] {
            assert_eq!(owner(untagged), None, "{untagged}");
        }
    }

    fn layout(root: &Path) -> Layout {
        Layout::V2 {
            root: root.to_owned(),
        }
    }

    #[test]
    fn only_dead_instances_leftovers_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let registry = d.path().join("instances");
        let ours = layout(&d.path().join("ours"));
        let theirs = layout(&d.path().join("theirs"));
        let (me, live, dead, lost) = ("aaaaaaaa", "bbbbbbbb", "cccccccc", "dddddddd");
        // A live instance sharing our parent, a dead one with a parent of its own, one
        // whose registration is lost, and a name that is nobody's.
        let live_reg = register(&registry, live, &ours).unwrap();
        let dead_reg = register(&registry, dead, &theirs).unwrap();
        let dead_path = registry.join(format!("{dead}.lock"));
        let dead_id = sandbox_id(dead);
        let live_id = sandbox_id(live);
        let lost_id = sandbox_id(lost);
        let my_id = sandbox_id(me);
        for (l, id) in [
            (&theirs, dead_id.as_str()),
            (&theirs, &pool_cgroup(dead, 7)),
            (&ours, &live_id),
            (&ours, &lost_id),
            (&ours, "orphan"),
            (&ours, &my_id),
        ] {
            l.create_empty(id).unwrap();
        }
        // The dead helper's lock is released with its process: here, by dropping it.
        drop(dead_reg);
        assert!(alive(&registry, live));
        assert!(!alive(&registry, dead));
        let cleaned = clean_leftovers(&registry, me, &ours);
        assert_eq!(cleaned.instances.len(), 1);
        assert_eq!(cleaned.instances[0].0, dead);
        let mut removed = cleaned.cgroups.clone();
        removed.sort();
        let mut expected = vec![dead_id, pool_cgroup(dead, 7), lost_id];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(cleaned.failed.is_empty());
        assert!(!dead_path.exists());
        // The dead instance's parent is gone with its cgroups; the live one's are kept.
        assert!(!d.path().join("theirs").exists());
        let mut want = vec![live_id, "orphan".to_string(), my_id];
        want.sort();
        assert_eq!(ours.list(), want);
        assert!(registry.join(format!("{live}.lock")).exists());
        live_reg.remove();
        assert!(!alive(&registry, live));
    }

    #[test]
    fn a_dead_instance_sharing_our_parent_leaves_it_in_place() {
        let d = tempfile::tempdir().unwrap();
        let registry = d.path().join("instances");
        let ours = layout(&d.path().join("ours"));
        let (me, dead) = ("aaaaaaaa", "cccccccc");
        let dead_reg = register(&registry, dead, &ours).unwrap();
        let dead_id = sandbox_id(dead);
        ours.create_empty(&dead_id).unwrap();
        drop(dead_reg);
        let cleaned = clean_leftovers(&registry, me, &ours);
        assert_eq!(cleaned.cgroups, vec![dead_id]);
        // Emptied, but ours: removing it would cost us its delegated controllers (v2).
        assert!(d.path().join("ours").is_dir());
    }
}
