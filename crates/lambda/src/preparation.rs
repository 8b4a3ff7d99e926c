//! Preparation, `Pending → Active` and `InProgress → Successful`: a worker unpacks a
//! function's code after the commit that created or changed it, and marks `$LATEST` (and the
//! versions waiting on it) ready. Also where the execution layer finds prepared code.

use std::path::PathBuf;

use stratus_store::{Expect, Op};

use crate::code;
use crate::records::{
    FUNCTIONS, VERSIONS, blobs_of, decode, digest_of, encode, needs_preparation, new_revision,
};
use crate::{FunctionConfig, FunctionService, FunctionState, LambdaError, LastUpdateStatus};

impl FunctionService {
    /// Unpacks the function's code and marks `$LATEST` (and versions waiting on it) ready.
    pub(crate) fn prepare(&self, name: &str) -> Result<(), LambdaError> {
        loop {
            let Some((mut rec, doc_version)) = self.load(name)? else {
                return Ok(());
            };
            if !needs_preparation(&rec.latest) {
                return Ok(());
            }
            let digest = digest_of(&rec.latest)?;
            let zip = self.inner.store.blobs.get(&digest)?;
            let outcome = code::unpack(&zip, &digest.to_hex(), &self.inner.opts.code_dir)
                .and_then(|_| self.unpack_layers(&rec.latest));
            let ok = outcome.is_ok();
            if let Err(e) = &outcome {
                tracing::error!(function = %name, error = %e, "unpacking code failed");
            }
            mark_prepared(&mut rec.latest, ok);
            let mut ops = vec![Op::put_with_blobs(
                FUNCTIONS,
                name,
                encode(&rec)?,
                blobs_of(&rec.latest)?,
                Expect::Version(doc_version),
            )];
            for (key, doc) in
                self.inner
                    .store
                    .meta
                    .list(VERSIONS, &format!("{name}/"), None, usize::MAX)?
            {
                let mut v: FunctionConfig = decode(&doc.value)?;
                if v.state == FunctionState::Pending
                    && v.code_digest == rec.latest.code_digest
                    && v.layers == rec.latest.layers
                {
                    mark_prepared(&mut v, ok);
                    ops.push(Op::put_with_blobs(
                        VERSIONS,
                        &key,
                        encode(&v)?,
                        blobs_of(&v)?,
                        Expect::Version(doc.version),
                    ));
                }
            }
            match self.inner.store.meta.commit(&ops) {
                Ok(()) => return Ok(()),
                // The function changed under us: look again.
                Err(stratus_store::StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The unpacked code of a ready function version, for the execution layer.
    pub fn code_path(&self, config: &FunctionConfig) -> PathBuf {
        self.inner.opts.code_dir.join(&config.code_digest)
    }

    /// The unpacked code of `config` if it is there now, with its layers' directory if it
    /// has layers (a `stat` or two, no unpacking). The layers are found beside the code:
    /// [`FunctionConfig::layers_path`].
    pub fn unpacked_code(&self, config: &FunctionConfig) -> Option<PathBuf> {
        let path = self.code_path(config);
        let layers_ready = config.layers_path(&path).is_none_or(|l| l.is_dir());
        (layers_ready && path.is_dir()).then_some(path)
    }

    /// The unpacked code of `config`, unpacking it again if the derived copy is gone.
    pub fn ensure_code(&self, config: &FunctionConfig) -> Result<PathBuf, LambdaError> {
        if let Some(path) = self.unpacked_code(config) {
            return Ok(path);
        }
        let zip = self.code_zip(config)?;
        let path = code::unpack(&zip, &config.code_digest, &self.inner.opts.code_dir)?;
        self.unpack_layers(config)?;
        Ok(path)
    }

    /// The zip of a function version, for GetFunction's download location.
    pub fn code_zip(&self, config: &FunctionConfig) -> Result<Vec<u8>, LambdaError> {
        Ok(self.inner.store.blobs.get(&digest_of(config)?)?)
    }
}

fn mark_prepared(c: &mut FunctionConfig, ok: bool) {
    c.revision_id = new_revision();
    let creating = c.state == FunctionState::Pending;
    if ok {
        c.state = FunctionState::Active;
        c.state_reason = None;
        c.state_reason_code = None;
        c.last_update_status = Some(LastUpdateStatus::Successful);
        c.last_update_status_reason = None;
        c.last_update_status_reason_code = None;
    } else if creating {
        c.state = FunctionState::Failed;
        c.state_reason = Some("Lambda was unable to unpack the function's code.".into());
        c.state_reason_code = Some("InvalidZipFileException".into());
    } else {
        c.last_update_status = Some(LastUpdateStatus::Failed);
        c.last_update_status_reason =
            Some("Lambda was unable to unpack the function's code.".into());
        c.last_update_status_reason_code = Some("InvalidZipFileException".into());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use stratus_store::Store;

    use crate::FunctionState;
    use crate::test_support::{create_active, edit_latest, open, wait_for};

    /// unpacked code; the next start must finish the job.
    #[test]
    fn pending_functions_are_prepared_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let svc = open(dir.path());
            create_active(&svc, "p");
        }
        {
            let store = Store::open(&dir.path().join("state")).unwrap();
            edit_latest(&store, "p", |c| c.state = FunctionState::Pending);
            std::fs::remove_dir_all(dir.path().join("code")).unwrap();
        }
        let svc = open(dir.path());
        wait_for(&svc, "p", FunctionState::Active);
        let config = svc.get("p", None).unwrap().config;
        assert!(svc.code_path(&config).join("bootstrap").is_file());
    }
}
