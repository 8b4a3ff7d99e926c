//! Code packages: checking an uploaded zip and unpacking it for execution.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::LambdaError;

/// Lambda's cap on a zip uploaded directly in the request.
pub const MAX_ZIPPED_BYTES: usize = 50 * 1024 * 1024;
/// Lambda's cap on the unzipped size of a function (code and layers).
pub const MAX_UNZIPPED_BYTES: u64 = 262_144_000;

const INVALID_ZIP: &str =
    "Could not unzip uploaded file. Please check your file, then try to upload again.";

/// A zip that was checked entry by entry: it opens, every entry decompresses with a
/// matching CRC, and the unzipped total stays under the quota.
#[derive(Debug, Clone)]
pub struct CodePackage {
    pub bytes: Vec<u8>,
    pub sha256: [u8; 32],
    pub unzipped_size: u64,
}

impl CodePackage {
    pub fn inspect(bytes: Vec<u8>) -> Result<CodePackage, LambdaError> {
        if bytes.len() > MAX_ZIPPED_BYTES {
            return Err(LambdaError::TooLarge(format!(
                "Zipped size must be smaller than {MAX_ZIPPED_BYTES} bytes"
            )));
        }
        let invalid = |_| LambdaError::InvalidParameter(INVALID_ZIP.into());
        let mut archive = zip::ZipArchive::new(Cursor::new(&bytes[..])).map_err(invalid)?;
        let mut unzipped: u64 = 0;
        let mut buf = vec![0u8; 64 * 1024];
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).map_err(invalid)?;
            if entry.enclosed_name().is_none() {
                return Err(LambdaError::InvalidParameter(INVALID_ZIP.into()));
            }
            // Count what actually comes out, not what the header claims: a header can lie.
            loop {
                let n = entry
                    .read(&mut buf)
                    .map_err(|_| LambdaError::InvalidParameter(INVALID_ZIP.into()))?;
                if n == 0 {
                    break;
                }
                unzipped += n as u64;
                if unzipped > MAX_UNZIPPED_BYTES {
                    return Err(LambdaError::InvalidParameter(format!(
                        "Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes"
                    )));
                }
            }
        }
        let sha256 = Sha256::digest(&bytes).into();
        Ok(CodePackage {
            bytes,
            sha256,
            unzipped_size: unzipped,
        })
    }

    /// Base64 of the SHA-256, the form AWS reports as `CodeSha256`.
    pub fn sha256_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.sha256)
    }
}

/// Unpacks `zip` into `root/<digest hex>` unless it is there already, and returns that path.
/// The directory appears atomically (unpacked beside it, then renamed), so a reader never
/// sees half a package and a crash leaves only a temporary directory to sweep.
pub fn unpack(zip: &[u8], digest_hex: &str, root: &Path) -> Result<PathBuf, LambdaError> {
    unpack_all(&[zip], digest_hex, root)
}

/// Unpacks `zips` one over the other, in order, into `root/<name>` unless it is there
/// already: a later zip's file replaces an earlier one's at the same path, as Lambda
/// extracts a function's layers into `/opt`. Atomic as [`unpack`] is.
pub fn unpack_all(zips: &[&[u8]], name: &str, root: &Path) -> Result<PathBuf, LambdaError> {
    let dest = root.join(name);
    if dest.is_dir() {
        return Ok(dest);
    }
    let io = |e: std::io::Error| LambdaError::Internal(format!("unpacking code: {e}"));
    std::fs::create_dir_all(root).map_err(io)?;
    let tmp = root.join(format!(".tmp-{name}-{}", uuid::Uuid::new_v4()));
    let result = zips
        .iter()
        .try_for_each(|zip| {
            zip::ZipArchive::new(Cursor::new(zip))
                .and_then(|mut a| a.extract(&tmp))
                .map_err(|e| LambdaError::InvalidParameter(format!("{INVALID_ZIP} ({e})")))
        })
        .and_then(|()| std::fs::create_dir_all(&tmp).map_err(io))
        .and_then(|()| make_readable(&tmp).map_err(io))
        .and_then(|()| match std::fs::rename(&tmp, &dest) {
            Ok(()) => Ok(()),
            // Another unpack of the same package won the race: theirs is identical.
            Err(_) if dest.is_dir() => Ok(()),
            Err(e) => Err(io(e)),
        });
    if tmp.exists() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result.map(|()| dest)
}

/// Gives everyone read access (and directory traversal) to an unpacked tree: the function
/// runs as an unprivileged user, and directories a zip only implies (no entry of their
/// own) are created owner-only by the extractor.
fn make_readable(root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let meta = std::fs::symlink_metadata(&dir)?;
        std::fs::set_permissions(
            &dir,
            std::fs::Permissions::from_mode((meta.permissions().mode() | 0o755) & 0o7777),
        )?;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                let mode = entry.metadata()?.permissions().mode();
                std::fs::set_permissions(
                    entry.path(),
                    std::fs::Permissions::from_mode((mode | 0o444) & 0o7777),
                )?;
            }
        }
    }
    Ok(())
}

/// Removes temporary directories left by an interrupted [`unpack`].
pub fn sweep_unpack_leftovers(root: &Path) {
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    for entry in rd.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn inspect_accepts_a_good_zip_and_reports_its_hash() {
        let z = zip_of(&[("index.py", b"def handler(e, c): return 1\n")]);
        let pkg = CodePackage::inspect(z.clone()).unwrap();
        assert_eq!(pkg.unzipped_size, 28);
        let expected: [u8; 32] = Sha256::digest(&z).into();
        assert_eq!(pkg.sha256, expected);
        assert_eq!(pkg.sha256_base64().len(), 44);
    }

    #[test]
    fn inspect_rejects_junk_and_truncated_zips() {
        assert!(matches!(
            CodePackage::inspect(b"not a zip".to_vec()),
            Err(LambdaError::InvalidParameter(_))
        ));
        let z = zip_of(&[("a.txt", &[7u8; 10_000])]);
        let cut = z[..z.len() / 2].to_vec();
        assert!(CodePackage::inspect(cut).is_err());
    }

    #[test]
    fn inspect_rejects_oversize_packages() {
        assert!(matches!(
            CodePackage::inspect(vec![0u8; MAX_ZIPPED_BYTES + 1]),
            Err(LambdaError::TooLarge(_))
        ));
        // 260 MB of zeros compresses to a small zip but unzips past the quota.
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file("zeros", zip::write::SimpleFileOptions::default())
            .unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..260 {
            w.write_all(&chunk).unwrap();
        }
        let z = w.finish().unwrap().into_inner();
        assert!(z.len() < MAX_ZIPPED_BYTES);
        assert!(matches!(
            CodePackage::inspect(z),
            Err(LambdaError::InvalidParameter(m)) if m.contains("Unzipped size")
        ));
    }

    #[test]
    fn implied_directories_are_readable_by_everyone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // No directory entries: `pkg/` and `pkg/sub/` exist only through the file path.
        let z = zip_of(&[("pkg/sub/mod.py", b"X = 1\n")]);
        let p = unpack(&z, "def", dir.path()).unwrap();
        for d in [p.join("pkg"), p.join("pkg/sub")] {
            let mode = std::fs::metadata(&d).unwrap().permissions().mode();
            assert_eq!(mode & 0o755, 0o755, "{d:?} is {mode:o}");
        }
        let f = std::fs::metadata(p.join("pkg/sub/mod.py"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(f & 0o444, 0o444);
    }

    #[test]
    fn later_zips_overwrite_earlier_ones_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = zip_of(&[("python/m.py", b"V = 1\n"), ("only-first", b"1")]);
        let second = zip_of(&[("python/m.py", b"V = 2\n"), ("only-second", b"2")]);
        let p = unpack_all(&[&first, &second], "opt-x", dir.path()).unwrap();
        assert_eq!(std::fs::read(p.join("python/m.py")).unwrap(), b"V = 2\n");
        assert_eq!(std::fs::read(p.join("only-first")).unwrap(), b"1");
        assert_eq!(std::fs::read(p.join("only-second")).unwrap(), b"2");
        let q = unpack_all(&[&second, &first], "opt-y", dir.path()).unwrap();
        assert_eq!(std::fs::read(q.join("python/m.py")).unwrap(), b"V = 1\n");
    }

    #[test]
    fn unpack_is_atomic_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let z = zip_of(&[("bootstrap", b"#!/bin/sh\n"), ("lib/x.txt", b"x")]);
        let p = unpack(&z, "abc", dir.path()).unwrap();
        assert_eq!(std::fs::read(p.join("lib/x.txt")).unwrap(), b"x");
        let again = unpack(&z, "abc", dir.path()).unwrap();
        assert_eq!(p, again);
        std::fs::create_dir(dir.path().join(".tmp-zzz")).unwrap();
        sweep_unpack_leftovers(dir.path());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("abc")]);
    }
}
