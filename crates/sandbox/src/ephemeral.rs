//! A sandbox's `/tmp` on disk, at its spec's size (`tmp_mb`), as Lambda's ephemeral storage:
//! not in the function's memory (a tmpfs is charged to its memory cgroup, so a 128 MB
//! function could not write 200 MB), and `ENOSPC` past the size on any host file system.
//!
//! Each environment gets a sparse image file holding an ext4 file system, on a loop device
//! configured with autoclear, mounted by the helper as a *detached* mount (`fsopen` /
//! `fsmount`: ext4 cannot be mounted from inside the sandbox's user namespace) whose
//! descriptor goes to the sandbox's init with its spec; the init moves it onto `/tmp`
//! (`move_mount`). The image is unlinked once the loop device holds it, so nothing is left
//! behind: when the sandbox's mount namespace goes, the file system is unmounted, the loop
//! device detaches itself and the file's blocks are freed.
//!
//! Blanks (see `crate::pool`) get theirs when they are made, off the invoke path, at the
//! size of the last claim (Lambda's default, 512 MiB, at first): the init inherits the
//! mount's descriptor at its `clone`, and a claim of another size sends a mount of its own.
//! Attaching a loop device and mounting take 2-10 ms of kernel time, most of a cold start.
//!
//! No `mke2fs` on the invoke path: one formatted template per size is made once
//! (`mke2fs`, then `debugfs` for an empty root of mode 1777, as Lambda's `/tmp`), and each
//! environment's image is a sparse copy of it (a few hundred KiB of metadata, whatever the
//! size; inode tables are left uninitialised and mounted `noinit_itable`, so nothing zeroes
//! them in the background).
//!
//! Runs in the helper (host root, single-threaded); starting `mke2fs` there is an ordinary
//! fork and exec of a single-threaded process.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::err;

/// Blocks (4 KiB) ext4 keeps for its own metadata at writeback (see `mount_detached`).
const RESERVED_CLUSTERS: u64 = 256;

/// Lambda's default EphemeralStorage, in MiB.
const DEFAULT_MB: u64 = 512;

/// Bumped whenever the template's format changes, so an old template is never reused.
const TEMPLATE_VERSION: u32 = 1;

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// `struct loop_info64` (linux/loop.h).
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` (linux/loop.h, Linux 5.8).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// The helper's images: templates by size, and where environments' images are made.
pub(crate) struct Ephemeral {
    dir: PathBuf,
    templates: HashMap<u64, PathBuf>,
}

impl Ephemeral {
    /// Uses `dir` as the helper left it (for the preparer, a fork of the helper).
    pub(crate) fn existing(dir: &Path) -> Ephemeral {
        Ephemeral {
            dir: dir.to_owned(),
            templates: HashMap::new(),
        }
    }

    /// Uses `dir` (created if needed), removing images a helper that died left there.
    pub(crate) fn open(dir: &Path) -> Result<Ephemeral, String> {
        let envs = dir.join("env");
        std::fs::create_dir_all(&envs).map_err(|e| err("creating the images' directory", e))?;
        if let Ok(rd) = std::fs::read_dir(&envs) {
            for entry in rd.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let mut ephemeral = Ephemeral {
            dir: dir.to_owned(),
            templates: HashMap::new(),
        };
        // Lambda's default size, made now rather than on the first cold start.
        ephemeral.template(DEFAULT_MB)?;
        Ok(ephemeral)
    }

    /// A detached mount of a fresh file system of `mb` MiB for environment `id`, to be moved
    /// onto its `/tmp` by [`move_onto`].
    pub(crate) fn mount(&mut self, id: &str, mb: u64) -> Result<OwnedFd, String> {
        let template = self.template(mb)?;
        let image = self.dir.join("env").join(format!("{id}.img"));
        let result = (|| {
            let file = copy_sparse(&template, &image, mb << 20)?;
            let (device, _loop_fd) = attach_loop(&file)?;
            // The loop device holds the file now: its blocks go when the device detaches.
            let _ = std::fs::remove_file(&image);
            mount_detached(&device)
            // `_loop_fd` closes here: the mount keeps the device open, and autoclear
            // detaches it when the mount goes.
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&image);
        }
        result
    }

    /// The template for `mb` MiB, made the first time it is asked for.
    fn template(&mut self, mb: u64) -> Result<PathBuf, String> {
        if let Some(t) = self.templates.get(&mb) {
            return Ok(t.clone());
        }
        let path = self
            .dir
            .join(format!("template-v{TEMPLATE_VERSION}-{mb}m.img"));
        if !path.is_file() {
            // The helper and its preparer may both make it: each in a file of its own.
            let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
            let made = make_template(&tmp, mb).and_then(|()| {
                std::fs::rename(&tmp, &path).map_err(|e| err("naming the template", e))
            });
            if let Err(e) = made {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        }
        self.templates.insert(mb, path.clone());
        Ok(path)
    }
}

/// Formats `path` as an empty ext4 file system of `mb` MiB whose root is mode 1777.
fn make_template(path: &Path, mb: u64) -> Result<(), String> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| err("creating the template", e))?;
    f.set_len(mb << 20)
        .map_err(|e| err("sizing the template", e))?;
    drop(f);
    run(Command::new(tool("mke2fs"))
        .args(["-q", "-F", "-t", "ext4", "-m", "0", "-L", "tmp"])
        // No journal (nothing on /tmp outlives its environment), no room kept for growth,
        // inode tables left for nobody to zero (see the module docs).
        .args(["-O", "^has_journal,^resize_inode"])
        .args(["-E", "lazy_itable_init=1,nodiscard,root_owner=0:0"])
        .arg(path))?;
    // Lambda's /tmp: empty, writable by the function's user, sticky.
    let mut debugfs = Command::new(tool("debugfs"));
    debugfs
        .args(["-w", "-f", "-"])
        .arg(path)
        .stdin(Stdio::piped());
    let mut child = debugfs
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err("starting debugfs (e2fsprogs)", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(b"rmdir lost+found\nset_inode_field / mode 041777\n")
            .map_err(|e| err("writing to debugfs", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err("running debugfs", e))?;
    if !out.status.success() {
        return Err(format!(
            "debugfs failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| err("syncing the template", e))
}

/// An e2fsprogs program: from `PATH`, else where Debian puts it (a `PATH` without the sbin
/// directories is common).
fn tool(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()));
    if on_path {
        return PathBuf::from(name);
    }
    ["/usr/sbin", "/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| err(&format!("starting {:?} (e2fsprogs)", cmd.get_program()), e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Copies `from`'s data (not its holes) into a new file `to` of `len` bytes.
fn copy_sparse(from: &Path, to: &Path, len: u64) -> Result<File, String> {
    let src = File::open(from).map_err(|e| err("opening the template", e))?;
    let dst = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(to)
        .map_err(|e| err("creating an image", e))?;
    dst.set_len(len).map_err(|e| err("sizing an image", e))?;
    let mut pos: i64 = 0;
    loop {
        // SAFETY: lseek on a descriptor we own.
        let start = unsafe { libc::lseek(src.as_raw_fd(), pos, libc::SEEK_DATA) };
        if start < 0 {
            break; // ENXIO: no data after `pos`
        }
        // SAFETY: as above.
        let end = unsafe { libc::lseek(src.as_raw_fd(), start, libc::SEEK_HOLE) };
        if end <= start {
            break;
        }
        let (mut off_in, mut off_out) = (start, start);
        while off_in < end {
            // SAFETY: copy_file_range between two descriptors we own, with offsets we own.
            let n = unsafe {
                libc::copy_file_range(
                    src.as_raw_fd(),
                    &mut off_in,
                    dst.as_raw_fd(),
                    &mut off_out,
                    (end - off_in) as usize,
                    0,
                )
            };
            if n <= 0 {
                return Err(err("copying the template", std::io::Error::last_os_error()));
            }
        }
        pos = end;
    }
    Ok(dst)
}

/// Attaches `file` to a free loop device, detached automatically at its last close; returns
/// the device's path and an open descriptor of it.
fn attach_loop(file: &File) -> Result<(CString, OwnedFd), String> {
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/loop-control")
        .map_err(|e| err("opening /dev/loop-control", e))?;
    // Another process may take the device between GET_FREE and CONFIGURE: try again.
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
        let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(err(
                "finding a free loop device",
                std::io::Error::last_os_error(),
            ));
        }
        let path = format!("/dev/loop{n}");
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| err(&format!("opening {path}"), e))?;
        let mut config = LoopConfig {
            fd: file.as_raw_fd() as u32,
            block_size: 0,
            // SAFETY: all-zero is a valid loop_info64 (plain integers and byte arrays).
            info: unsafe { std::mem::zeroed() },
            reserved: [0; 8],
        };
        config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
        // SAFETY: LOOP_CONFIGURE reads a loop_config we own, valid for the call.
        let rc = unsafe {
            libc::ioctl(
                dev.as_raw_fd(),
                LOOP_CONFIGURE as _,
                &config as *const LoopConfig,
            )
        };
        if rc == 0 {
            let path = CString::new(path).map_err(|e| err("device path", e))?;
            return Ok((path, OwnedFd::from(dev)));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) {
            return Err(err(&format!("configuring {}", path), e));
        }
    }
    Err("no loop device stayed free".into())
}

/// An ext4 mount of `device`, not attached anywhere yet.
fn mount_detached(device: &CString) -> Result<OwnedFd, String> {
    // SAFETY: fsopen with a NUL-terminated name; returns a new descriptor or -1.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, c"ext4".as_ptr(), FSOPEN_CLOEXEC) };
    if fs < 0 {
        return Err(err("fsopen ext4", std::io::Error::last_os_error()));
    }
    // SAFETY: fsopen returned a descriptor that nothing else owns.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
    let config = |cmd: libc::c_uint, key: Option<&std::ffi::CStr>, value: Option<&CString>| {
        // SAFETY: fsconfig with NUL-terminated strings (or null) that outlive the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                cmd,
                key.map_or(std::ptr::null(), |k| k.as_ptr()),
                value.map_or(std::ptr::null(), |v| v.as_ptr()),
                0,
            )
        };
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    config(FSCONFIG_SET_STRING, Some(c"source"), Some(device))
        .map_err(|e| err("fsconfig source", e))?;
    config(FSCONFIG_SET_FLAG, Some(c"noinit_itable"), None)
        .map_err(|e| err("fsconfig noinit_itable", e))?;
    // `statfs` reports the whole size asked for (as a tmpfs did), not that less the file
    // system's own metadata.
    config(FSCONFIG_SET_FLAG, Some(c"minixdf"), None).map_err(|e| err("fsconfig minixdf", e))?;
    config(FSCONFIG_CMD_CREATE, None, None).map_err(|e| err("mounting the image", e))?;
    // ext4 keeps 2% of the blocks (at most 16 MiB) for metadata it may need at writeback;
    // on a small /tmp that is most of what the function would miss of its size. A few large
    // files need little: keep 1 MiB. (Best effort: a kernel without the knob keeps its own.)
    let name = device
        .to_bytes()
        .rsplit(|&b| b == b'/')
        .next()
        .unwrap_or_default();
    let knob = format!(
        "/sys/fs/ext4/{}/reserved_clusters",
        String::from_utf8_lossy(name)
    );
    let _ = std::fs::write(knob, RESERVED_CLUSTERS.to_string());
    // SAFETY: fsmount on the configured context; returns a new descriptor or -1.
    let mnt = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        )
    };
    if mnt < 0 {
        return Err(err("fsmount", std::io::Error::last_os_error()));
    }
    // SAFETY: fsmount returned a descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(mnt as RawFd) })
}

/// Moves the detached mount `mnt` onto `target` (in the sandbox's init).
pub(crate) fn move_onto(mnt: RawFd, target: &std::ffi::CStr) -> Result<(), String> {
    // SAFETY: move_mount from a descriptor we hold onto a NUL-terminated path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt,
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(err("mounting /tmp", std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_template_is_formatted_once_and_copied_sparsely() {
        if !tool("mke2fs").is_absolute() && Command::new("mke2fs").arg("-V").output().is_err() {
            eprintln!("skipped: no e2fsprogs");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut e = Ephemeral::open(dir.path()).unwrap();
        let template = e.template(DEFAULT_MB).unwrap();
        assert_eq!(std::fs::metadata(&template).unwrap().len(), 512 << 20);
        let image = dir.path().join("env/x.img");
        let copy = copy_sparse(&template, &image, 512 << 20).unwrap();
        drop(copy);
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&image).unwrap();
        assert_eq!(meta.len(), 512 << 20);
        // Metadata only: a few hundred KiB on disk, not 512 MiB.
        assert!(
            meta.blocks() * 512 < 4 << 20,
            "{} bytes",
            meta.blocks() * 512
        );
        let head = |p: &Path| {
            use std::io::Read;
            let mut buf = vec![0u8; 4 << 20];
            File::open(p).unwrap().read_exact(&mut buf).unwrap();
            buf
        };
        assert_eq!(head(&image), head(&template));
        // Leftover images go when the next helper opens the directory.
        Ephemeral::open(dir.path()).unwrap();
        assert!(!image.exists());
    }
}
