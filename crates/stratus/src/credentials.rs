//! The root access key pair: chosen by configuration, or generated on first start and kept
//! in `<data-dir>/credentials` (AWS shared-credentials INI, profile `default`, mode 0600), so
//! the AWS CLI and boto3 can use it with `AWS_SHARED_CREDENTIALS_FILE`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use stratus_sigv4::SecretLookup;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// A key the ring can look up besides its fixed ones: an IAM user's key or a session's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub secret_access_key: String,
    /// The principal the key acts as.
    pub principal_arn: String,
    /// A session's token; `None` for a long-term key.
    pub session_token: Option<String>,
    /// When a session's key stops working (epoch milliseconds).
    pub expires_ms: Option<i64>,
    /// `false` for a user's key set `Inactive`.
    pub active: bool,
}

/// Where the ring finds keys it was not given: IAM's users' keys and STS sessions.
pub trait KeySource: Send + Sync {
    fn key(&self, access_key_id: &str) -> Option<KeyEntry>;
}

/// The keys this server knows: the root pair, the functions' sessions, and whatever
/// [`KeySource`] (IAM) knows; their secrets, and the principal each belongs to.
#[derive(Clone, Default)]
pub struct KeyRing {
    account_id: String,
    keys: HashMap<String, (String, String)>,
    /// Sessions made in memory (functions' execution roles): die with the server, as the
    /// environments that hold them do.
    sessions: std::sync::Arc<std::sync::RwLock<HashMap<String, KeyEntry>>>,
    source: Option<std::sync::Arc<dyn KeySource>>,
    /// Signing keys derived from the secrets, by key, day, region and service.
    derived: std::sync::Arc<std::sync::Mutex<HashMap<String, [u8; 32]>>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("account_id", &self.account_id)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// Derived signing keys kept at most; past it the cache starts over (a day's keys for every
/// key, region and service a server sees fit many times over).
const DERIVED_KEYS: usize = 1024;

impl KeyRing {
    /// A ring holding the account's root key.
    pub fn with(creds: &Credentials, account_id: &str) -> KeyRing {
        let mut ring = KeyRing {
            account_id: account_id.to_owned(),
            ..KeyRing::default()
        };
        ring.add(creds, &format!("arn:aws:iam::{account_id}:root"));
        ring
    }

    /// Adds a key pair belonging to `principal_arn`.
    pub fn add(&mut self, creds: &Credentials, principal_arn: &str) {
        self.keys.insert(
            creds.access_key_id.clone(),
            (creds.secret_access_key.clone(), principal_arn.to_owned()),
        );
    }

    /// Looks up keys it does not hold in `source` too.
    pub fn with_source(mut self, source: std::sync::Arc<dyn KeySource>) -> KeyRing {
        self.source = Some(source);
        self
    }

    /// Holds a session made in memory until it expires (see [`KeyRing::sessions`]).
    pub fn add_session(&self, access_key_id: &str, entry: KeyEntry) {
        let mut sessions = self.sessions.write().unwrap_or_else(|e| e.into_inner());
        // Expired sessions go whenever a new one comes, so the map stays as large as the
        // live sessions.
        let now = stratus_aws::clock::now_ms();
        sessions.retain(|_, e| e.expires_ms.is_none_or(|t| t > now));
        sessions.insert(access_key_id.to_owned(), entry);
    }

    /// A key's entry: the fixed ones, then in-memory sessions, then the source.
    fn entry(&self, access_key_id: &str) -> Option<KeyEntry> {
        if let Some((secret, arn)) = self.keys.get(access_key_id) {
            return Some(KeyEntry {
                secret_access_key: secret.clone(),
                principal_arn: arn.clone(),
                session_token: None,
                expires_ms: None,
                active: true,
            });
        }
        if let Some(e) = self
            .sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(access_key_id)
        {
            return Some(e.clone());
        }
        self.source.as_ref()?.key(access_key_id)
    }
}

impl SecretLookup for KeyRing {
    fn secret_access_key(&self, access_key_id: &str) -> Option<String> {
        self.entry(access_key_id)
            .filter(|e| e.active)
            .map(|e| e.secret_access_key)
    }

    fn signing_key(
        &self,
        access_key_id: &str,
        date: &str,
        region: &str,
        service: &str,
    ) -> Option<[u8; 32]> {
        let id = format!("{access_key_id}/{date}/{region}/{service}");
        // Only fixed keys' derived keys are cached: another key may be deleted, made
        // inactive or expire, and is looked up each time.
        let fixed = self.keys.get(access_key_id).map(|(s, _)| s);
        if fixed.is_some() {
            let derived = self.derived.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(key) = derived.get(&id) {
                return Some(*key);
            }
        }
        let secret = match fixed {
            Some(s) => s.clone(),
            None => self.secret_access_key(access_key_id)?,
        };
        let key = stratus_sigv4::signing_key(&secret, date, region, service);
        if fixed.is_some() {
            let mut derived = self.derived.lock().unwrap_or_else(|e| e.into_inner());
            if derived.len() >= DERIVED_KEYS {
                derived.clear();
            }
            derived.insert(id, key);
        }
        Some(key)
    }
}

impl stratus_gateway::Keys for KeyRing {
    fn caller(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> Result<stratus_protocol::Caller, stratus_gateway::KeyRefusal> {
        use stratus_gateway::KeyRefusal;
        let entry = self.entry(access_key_id).ok_or(KeyRefusal::Invalid)?;
        if !entry.active {
            return Err(KeyRefusal::Invalid);
        }
        if let Some(token) = &entry.session_token {
            if session_token != Some(token.as_str()) {
                return Err(KeyRefusal::Invalid);
            }
            if entry
                .expires_ms
                .is_some_and(|t| t <= stratus_aws::clock::now_ms())
            {
                return Err(KeyRefusal::Expired);
            }
        }
        Ok(stratus_protocol::Caller {
            access_key_id: access_key_id.to_owned(),
            account_id: self.account_id.clone(),
            arn: entry.principal_arn,
        })
    }
}

pub fn credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join("credentials")
}

fn random_string(alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| alphabet[rand::random_range(0..alphabet.len())] as char)
        .collect()
}

/// A new pair in AWS's shapes: `AKIA` + 16 base32 characters, and a 40-character secret.
pub fn generate() -> Credentials {
    Credentials {
        access_key_id: format!(
            "AKIA{}",
            random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
        ),
        secret_access_key: random_string(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            40,
        ),
    }
}

/// Temporary credentials for functions: an `ASIA` key, its secret and a session token.
/// They live as long as this server process.
pub fn session() -> (Credentials, String) {
    let c = generate();
    let token = random_string(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        96,
    );
    (
        Credentials {
            access_key_id: format!("ASIA{}", &c.access_key_id[4..]),
            secret_access_key: c.secret_access_key,
        },
        token,
    )
}

/// Reads `[default]` from a shared-credentials file.
pub fn read(path: &Path) -> std::io::Result<Option<Credentials>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(profile(&text, "default").and_then(|p| keys(&p)))
}

/// The `key = value` pairs of section `[name]` in a shared-credentials file's text (INI, as
/// the AWS CLI writes it), or `None` when the text has no such section. Keys are lower-cased;
/// `#` and `;` start comment lines.
pub fn profile(text: &str, name: &str) -> Option<HashMap<String, String>> {
    let mut found = None;
    let mut in_section = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = header.trim() == name;
            if in_section {
                found.get_or_insert_with(HashMap::new);
            }
        } else if in_section
            && let Some((k, v)) = line.split_once('=')
            && let Some(map) = found.as_mut()
        {
            map.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    found
}

/// The key pair in a profile's values, when it has both halves.
pub fn keys(profile: &HashMap<String, String>) -> Option<Credentials> {
    let id = profile.get("aws_access_key_id").filter(|v| !v.is_empty())?;
    let secret = profile
        .get("aws_secret_access_key")
        .filter(|v| !v.is_empty())?;
    Some(Credentials {
        access_key_id: id.clone(),
        secret_access_key: secret.clone(),
    })
}

/// Writes the pair as profile `default`, atomically, readable by the owner only.
pub fn write(path: &Path, creds: &Credentials) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    // Exactly 0600 whatever the umask (and whatever an earlier, interrupted write left).
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    write!(
        f,
        "# Written by Stratus: the root key pair of this server.\n\
         [default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        creds.access_key_id, creds.secret_access_key
    )?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The pair this server uses: the configured one if any, else the kept one, else a new one.
/// Either way the credentials file ends up holding it.
pub fn load_or_create(
    data_dir: &Path,
    configured: Option<Credentials>,
) -> std::io::Result<Credentials> {
    let path = credentials_path(data_dir);
    let kept = read(&path)?;
    let creds = match (configured, kept) {
        (Some(c), _) => c,
        (None, Some(k)) => return Ok(k),
        (None, None) => generate(),
    };
    if read(&path)?.as_ref() != Some(&creds) {
        write(&path, &creds)?;
    }
    Ok(creds)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_pair_is_kept_across_starts_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), None).unwrap();
        assert!(first.access_key_id.starts_with("AKIA") && first.access_key_id.len() == 20);
        assert_eq!(first.secret_access_key.len(), 40);
        let second = load_or_create(dir.path(), None).unwrap();
        assert_eq!(first, second);
        let mode = std::fs::metadata(credentials_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn configured_pair_wins_and_is_written() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path(), None).unwrap();
        let fixed = Credentials {
            access_key_id: "AKIAFIXED".into(),
            secret_access_key: "s3cret".into(),
        };
        assert_eq!(
            load_or_create(dir.path(), Some(fixed.clone())).unwrap(),
            fixed
        );
        assert_eq!(read(&credentials_path(dir.path())).unwrap(), Some(fixed));
    }

    #[test]
    fn profiles_are_read_by_name_with_comments_and_spacing() {
        let text = "# comment\n[default]\naws_access_key_id=AKIADEF\naws_secret_access_key = s1\n\
                    \n[ dev ]\n; other comment\nAWS_ACCESS_KEY_ID = AKIADEV\n\
                    aws_secret_access_key= s2\naws_session_token = tok\n[empty]\n";
        let def = profile(text, "default").unwrap();
        assert_eq!(keys(&def).unwrap().access_key_id, "AKIADEF");
        let dev = profile(text, "dev").unwrap();
        assert_eq!(
            keys(&dev).unwrap(),
            Credentials {
                access_key_id: "AKIADEV".into(),
                secret_access_key: "s2".into()
            }
        );
        assert_eq!(dev["aws_session_token"], "tok");
        assert_eq!(keys(&profile(text, "empty").unwrap()), None);
        assert_eq!(profile(text, "missing"), None);
    }

    #[test]
    fn keyring_knows_only_its_keys() {
        let c = generate();
        let ring = KeyRing::with(&c, "123456789012");
        assert_eq!(
            ring.secret_access_key(&c.access_key_id),
            Some(c.secret_access_key.clone())
        );
        assert_eq!(ring.secret_access_key("AKIAOTHER"), None);
    }
}
