//! Private by default: what Stratus keeps on disk (credentials, the database, code packages,
//! logs) is its owner's alone. Directories are made 0700 and files 0600 when created, set
//! explicitly so no umask widens (or empties) them; what an older version or a careless copy
//! left wider is tightened, and the caller warns about it, naming the path and the mode.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// A private directory's mode.
pub const DIR_MODE: u32 = 0o700;
/// A private file's mode.
pub const FILE_MODE: u32 = 0o600;

/// The permission bits of `path` when they grant anything beyond `allowed`; `None` when
/// they do not, or when `path` does not exist.
pub fn wider_than(path: &Path, allowed: u32) -> io::Result<Option<u32>> {
    match fs::symlink_metadata(path) {
        Ok(m) => {
            let mode = m.permissions().mode() & 0o7777;
            Ok((mode & !allowed != 0).then_some(mode))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sets `path` to `allowed` if it grants more (a symlink is left alone); returns the mode it
/// had then, for a warning.
pub fn tighten(path: &Path, allowed: u32) -> io::Result<Option<u32>> {
    let Some(mode) = wider_than(path, allowed)? else {
        return Ok(None);
    };
    if fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Ok(None);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(allowed))?;
    Ok(Some(mode))
}

/// Tightens `path` to `allowed` and logs a warning if it was wider.
pub fn tighten_and_warn(path: &Path, allowed: u32) -> io::Result<()> {
    if let Some(mode) = tighten(path, allowed)? {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:04o}"),
            now = format!("{allowed:04o}"),
            "found readable by others than Stratus's owner: tightened"
        );
    }
    Ok(())
}

/// Creates `dir` if it does not exist, exactly 0700 (missing parents as `mkdir -p` would:
/// they are not Stratus's). An existing one is left as it is.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens `path` for writing, creating it exactly 0600 if absent (an existing file keeps
/// its mode and content).
pub fn create_file(path: &Path) -> io::Result<fs::File> {
    match fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(f) => {
            f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
            Ok(f)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::OpenOptions::new().read(true).write(true).open(path)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn created_private_whatever_the_umask_and_wider_ones_tightened() {
        let dir = tempfile::tempdir().unwrap();
        // Process-wide, briefly: what other tests create meanwhile is set explicitly too.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let nested = dir.path().join("a/b");
        create_dir(&dir.path().join("a")).unwrap();
        create_dir(&nested).unwrap();
        let file = nested.join("f");
        create_file(&file).unwrap();
        nix::sys::stat::umask(old);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&file), 0o600);

        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(wider_than(&file, FILE_MODE).unwrap(), Some(0o644));
        assert_eq!(tighten(&file, FILE_MODE).unwrap(), Some(0o644));
        assert_eq!(mode(&file), 0o600);
        assert_eq!(tighten(&file, FILE_MODE).unwrap(), None);
        assert_eq!(
            tighten(&dir.path().join("absent"), FILE_MODE).unwrap(),
            None
        );
        // An existing directory is left as it is by create_dir.
        fs::set_permissions(&nested, fs::Permissions::from_mode(0o755)).unwrap();
        create_dir(&nested).unwrap();
        assert_eq!(mode(&nested), 0o755);
    }
}
