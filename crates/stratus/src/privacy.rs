//! Private by default: the data directory holds the root credentials, every function's code,
//! configuration and logs, and usage records, so it is made 0700 and what Stratus keeps in it
//! 0600 (files) or 0700 (directories), set on creation whatever the umask.
//!
//! A data directory that already exists is the operator's: if it is open to others it is
//! left so, with a warning naming it and its mode. What Stratus created inside it and finds
//! wider (as an older version left it) is tightened, with a warning each. The store does the
//! same for its database and blobs ([`stratus_store::private`]).
//!
//! Sandboxes still read the code and runtimes kept here: their init binds them while it runs
//! as the host's root, the directory's owner, and the function only ever sees the bound
//! directories, whose own modes are unchanged.

use std::path::Path;

use anyhow::Context;
use stratus_store::private::{self, DIR_MODE, FILE_MODE};

/// Makes `data_dir` (created here if missing) and what Stratus created in it private.
pub fn prepare(data_dir: &Path) -> anyhow::Result<()> {
    let ctx = |what: &str, p: &Path| format!("making {what} {} private", p.display());
    match private::wider_than(data_dir, DIR_MODE)
        .with_context(|| ctx("the data directory", data_dir))?
    {
        Some(mode) => tracing::warn!(
            path = %data_dir.display(),
            mode = format!("{mode:04o}"),
            "the data directory is open to other users of this host (it holds the root \
             credentials, functions' code and logs): `chmod 700` it"
        ),
        None => {
            private::create_dir(data_dir).with_context(|| ctx("the data directory", data_dir))?
        }
    }
    let credentials = crate::credentials::credentials_path(data_dir);
    private::tighten_and_warn(&credentials, FILE_MODE)
        .with_context(|| ctx("the credentials", &credentials))?;
    let usage = data_dir.join(stratus_metering::DB_FILE);
    stratus_store::make_private(&usage).with_context(|| ctx("the usage database", &usage))?;
    let logs = data_dir.join("logs");
    private::create_dir(&logs).with_context(|| ctx("the logs", &logs))?;
    private::tighten_and_warn(&logs, DIR_MODE).with_context(|| ctx("the logs", &logs))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_data_dir_is_private_and_an_existing_one_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("new/data");
        prepare(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("logs")), 0o700);
        assert_eq!(mode(&data.join("usage.db")), 0o600);

        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        let creds = crate::credentials::credentials_path(&open);
        std::fs::write(&creds, "x").unwrap();
        std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
        prepare(&open).unwrap();
        assert_eq!(
            mode(&open),
            0o755,
            "the operator's directory: warned about, not changed"
        );
        assert_eq!(mode(&creds), 0o600);
    }
}
