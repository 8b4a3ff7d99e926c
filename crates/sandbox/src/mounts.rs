//! Bind mounts made read-only the way a user namespace allows.
//!
//! Runs in a sandbox's init, inside its new mount namespace (see [`crate::init_process`]):
//! never call it from the helper, whose mounts are the host's. Depends on no other module.

use std::path::Path;

use nix::mount::{MsFlags, mount};
use nix::sys::statvfs::{FsFlags, statvfs};

use crate::err;

/// Binds `source` on `target` read-only. In a user namespace the remount must repeat the
/// flags the kernel locked on the source mount (nosuid, nodev, noexec...), or it fails.
pub(crate) fn bind_read_only(source: &Path, target: &Path) -> Result<(), String> {
    let none: Option<&str> = None;
    mount(
        Some(source),
        target,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .map_err(|e| err(&format!("binding {}", source.display()), e))?;
    remount_read_only(target)
}

pub(crate) fn remount_read_only(target: &Path) -> Result<(), String> {
    let none: Option<&str> = None;
    let locked = statvfs(target)
        .map(|s| {
            let f = s.flags();
            let mut m = MsFlags::empty();
            for (fs, ms) in [
                (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
                (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
                (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
                (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
                (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
                (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
            ] {
                if f.contains(fs) {
                    m |= ms;
                }
            }
            m
        })
        .unwrap_or(MsFlags::empty());
    mount(
        none,
        target,
        none,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | locked,
        none,
    )
    .map_err(|e| err(&format!("making {} read-only", target.display()), e))
}
