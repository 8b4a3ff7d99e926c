//! The runtimes this host can offer, found by looking at the host rather than by a fixed list.
//!
//! `provided.al2023` and `provided.al2` need nothing from the host (the zip brings a
//! `bootstrap`). `python3.N` is offered for each CPython interpreter binary found, and
//! `nodejs<major>.x` for the Node.js binary. Version-manager shims (shell scripts on PATH,
//! ~130 ms per start) are skipped: only real ELF executables count, resolved through symlinks.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeKind {
    /// A custom runtime: the function's own `bootstrap`.
    Provided,
    Python,
    Node,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// The Lambda runtime identifier, e.g. `python3.11`.
    pub id: String,
    pub kind: RuntimeKind,
    /// The real interpreter binary, for managed runtimes.
    pub interpreter: Option<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct RuntimeCatalog {
    runtimes: Vec<RuntimeInfo>,
}

/// Directories searched before `$PATH`, so the distribution's interpreters win over
/// whatever a user's PATH puts first.
const SYSTEM_DIRS: &[&str] = &["/usr/bin", "/usr/local/bin", "/bin"];

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = SYSTEM_DIRS.iter().map(PathBuf::from).collect();
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    dirs
}

/// `python3.11` → `Some(11)`.
fn python_minor(file_name: &str) -> Option<u32> {
    file_name.strip_prefix("python3.")?.parse().ok()
}

/// `v20.20.2` → `Some(20)`.
fn node_major(version_output: &str) -> Option<u32> {
    version_output
        .trim()
        .strip_prefix('v')?
        .split('.')
        .next()?
        .parse()
        .ok()
}

impl RuntimeCatalog {
    /// Looks at the host. Costs one `node --version` (about 0.1 s); call it once at start-up.
    pub fn discover() -> RuntimeCatalog {
        let mut runtimes = vec![
            RuntimeInfo {
                id: "provided.al2023".into(),
                kind: RuntimeKind::Provided,
                interpreter: None,
            },
            RuntimeInfo {
                id: "provided.al2".into(),
                kind: RuntimeKind::Provided,
                interpreter: None,
            },
        ];
        let mut pythons: Vec<(u32, PathBuf)> = Vec::new();
        let mut node: Option<PathBuf> = None;
        for dir in search_dirs() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
            names.sort();
            for name in names {
                let Some(name) = name.to_str() else { continue };
                let candidate = dir.join(name);
                if let Some(minor) = python_minor(name) {
                    if pythons.iter().any(|(m, _)| *m == minor) {
                        continue;
                    }
                    if let Ok(real) = candidate.canonicalize()
                        && is_elf(&real)
                    {
                        pythons.push((minor, real));
                    }
                } else if name == "node"
                    && node.is_none()
                    && let Ok(real) = candidate.canonicalize()
                    && is_elf(&real)
                {
                    node = Some(real);
                }
            }
        }
        pythons.sort();
        for (minor, path) in pythons {
            runtimes.push(RuntimeInfo {
                id: format!("python3.{minor}"),
                kind: RuntimeKind::Python,
                interpreter: Some(path),
            });
        }
        if let Some(node) = node {
            let major = std::process::Command::new(&node)
                .arg("--version")
                .output()
                .ok()
                .and_then(|o| node_major(&String::from_utf8_lossy(&o.stdout)));
            if let Some(major) = major {
                runtimes.push(RuntimeInfo {
                    id: format!("nodejs{major}.x"),
                    kind: RuntimeKind::Node,
                    interpreter: Some(node),
                });
            }
        }
        RuntimeCatalog { runtimes }
    }

    /// A catalog with exactly these runtimes (tests).
    pub fn from_runtimes(runtimes: Vec<RuntimeInfo>) -> RuntimeCatalog {
        RuntimeCatalog { runtimes }
    }

    pub fn get(&self, id: &str) -> Option<&RuntimeInfo> {
        self.runtimes.iter().find(|r| r.id == id)
    }

    /// The interpreters of the runtimes of `kind`, each once.
    pub fn interpreters(&self, kind: RuntimeKind) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for r in self.runtimes.iter().filter(|r| r.kind == kind) {
            if let Some(p) = &r.interpreter
                && !out.contains(p)
            {
                out.push(p.clone());
            }
        }
        out
    }

    pub fn ids(&self) -> Vec<&str> {
        self.runtimes.iter().map(|r| r.id.as_str()).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_interpreter_names_and_versions() {
        assert_eq!(python_minor("python3.11"), Some(11));
        assert_eq!(python_minor("python3.11-config"), None);
        assert_eq!(python_minor("python3"), None);
        assert_eq!(node_major("v20.20.2\n"), Some(20));
        assert_eq!(node_major("garbage"), None);
    }

    #[test]
    fn discovery_offers_provided_runtimes_and_only_real_binaries() {
        let c = RuntimeCatalog::discover();
        assert!(c.get("provided.al2023").is_some());
        assert!(c.get("provided.al2").is_some());
        for r in c
            .runtimes
            .iter()
            .filter(|r| r.kind != RuntimeKind::Provided)
        {
            let p = r.interpreter.as_ref().unwrap();
            assert!(is_elf(p), "{} resolves to a non-ELF {p:?}", r.id);
        }
    }

    #[test]
    fn shell_script_shims_are_not_interpreters() {
        let dir = tempfile::tempdir().unwrap();
        let shim = dir.path().join("python3.99");
        std::fs::write(&shim, "#!/bin/sh\nexec python3 \"$@\"\n").unwrap();
        assert!(!is_elf(&shim));
    }
}
