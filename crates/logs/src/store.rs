//! The on-disk layout and the in-memory index over it.
//!
//! ```text
//! <data-dir>/logs/
//!   <group>/                           the group's name, file-name escaped (names.rs)
//!     group.json                       name, creation time, retention, tags (durable)
//!     <stream>.jsonl                   the stream's newest segment, appended to
//!     <stream>.jsonl.<seq>.<min>.<max> older segments: sequence number, oldest and
//!                                      newest event timestamp (for skipping by time)
//!     <stream>.name                    the full stream name, when <stream> was cut
//! ```
//!
//! Every segment holds JSON lines ([`crate::record`]). A stream's newest segment keeps the
//! name older Stratus used (`<stream>.jsonl`), so tools reading that file still see the
//! latest output. When it reaches [`LogsOptions::segment_bytes`] it is renamed with its
//! sequence number and time range, and a new one started: the sequence number numbers
//! segments for the life of the stream, so a read position (`seq`, byte offset) stays
//! valid across rotation. Dropping the oldest data (the size cap, retention) deletes whole
//! segments.
//!
//! Stream metadata is not stored: it is rebuilt at start from file names, file times and
//! one scan of each newest segment.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::model::Tags;
use crate::names;
use crate::record;
use crate::scan::LineReader;

/// What group.json holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GroupMeta {
    pub name: String,
    pub creation_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_in_days: Option<i32>,
    #[serde(default)]
    pub tags: Tags,
}

/// One segment file of a stream.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub seq: u64,
    pub path: PathBuf,
    /// Bytes of whole lines (what readers may read).
    pub size: u64,
    /// Oldest and newest event timestamps; `i64::MAX`/`i64::MIN` while empty.
    pub min_ts: i64,
    pub max_ts: i64,
}

impl Segment {
    fn empty(seq: u64, path: PathBuf) -> Segment {
        Segment {
            seq,
            path,
            size: 0,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.size == 0
    }
}

pub(crate) struct StreamState {
    /// Older segments, oldest first.
    pub rotated: VecDeque<Segment>,
    /// The segment appended to: `<stem>.jsonl`.
    pub active: Segment,
    /// `active` opened for appending.
    file: Arc<File>,
    pub creation_time: i64,
    pub last_ingestion: Option<i64>,
    /// Set when the stream is deleted; writers holding it then open it anew.
    pub deleted: bool,
}

impl StreamState {
    /// Every segment, oldest first.
    pub(crate) fn segments(&self) -> Vec<Segment> {
        let mut v: Vec<Segment> = self.rotated.iter().cloned().collect();
        v.push(self.active.clone());
        v
    }

    pub(crate) fn stored_bytes(&self) -> u64 {
        self.rotated.iter().map(|s| s.size).sum::<u64>() + self.active.size
    }

    pub(crate) fn first_event(&self) -> Option<i64> {
        self.rotated
            .iter()
            .chain(std::iter::once(&self.active))
            .filter(|s| !s.is_empty())
            .map(|s| s.min_ts)
            .min()
    }

    pub(crate) fn last_event(&self) -> Option<i64> {
        self.rotated
            .iter()
            .chain(std::iter::once(&self.active))
            .filter(|s| !s.is_empty())
            .map(|s| s.max_ts)
            .max()
    }

    /// The read position at the end of the stream.
    pub(crate) fn end(&self) -> (u64, u64) {
        (self.active.seq, self.active.size)
    }
}

pub(crate) struct Stream {
    pub name: String,
    stem: String,
    state: Mutex<StreamState>,
}

impl Stream {
    pub(crate) fn lock(&self) -> MutexGuard<'_, StreamState> {
        // A panic while holding the lock leaves the index as it was at the last complete
        // update (each update is a few field stores), so carrying on is sound.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct Group {
    pub dir: PathBuf,
    meta: Mutex<GroupMeta>,
    streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    /// Sum of the streams' segment sizes.
    pub stored: AtomicU64,
    pub deleted: AtomicBool,
    /// Held while dropping data for the cap or retention, so two droppers do not race.
    pub trim: Mutex<()>,
}

impl Group {
    pub(crate) fn meta(&self) -> MutexGuard<'_, GroupMeta> {
        self.meta.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn streams(&self) -> RwLockReadGuard<'_, BTreeMap<String, Arc<Stream>>> {
        self.streams.read().unwrap_or_else(|p| p.into_inner())
    }

    fn streams_mut(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Arc<Stream>>> {
        self.streams.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn stream(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams().get(name).cloned()
    }

    pub(crate) fn trim_lock(&self) -> MutexGuard<'_, ()> {
        self.trim.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes group.json durably (temporary file, fsync, rename, fsync of the directory).
    pub(crate) fn save_meta(&self, meta: &GroupMeta) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
        let tmp = self.dir.join("group.json.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
        fs::rename(&tmp, self.dir.join("group.json"))?;
        sync_dir(&self.dir)
    }

    /// Creates the group's directory and, for CreateLogGroup (`durable`), group.json, both
    /// fsynced. A group a writer makes on a function's first line is only its directory: it
    /// holds just its name and creation time, which the directory gives back
    /// ([`Group::load`] writes the file then), and a function's cold start must not wait
    /// for files it does not need. group.json is written whenever the metadata changes.
    pub(crate) fn create(dir: PathBuf, mut meta: GroupMeta, durable: bool) -> io::Result<Group> {
        fs::create_dir_all(&dir)?;
        if !durable {
            // What a restart will read back for it.
            meta.creation_time = file_time(&fs::metadata(&dir)?).unwrap_or(meta.creation_time);
        }
        let group = Group::new(dir.clone(), meta.clone());
        if durable {
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
            group.save_meta(&meta)?;
        }
        Ok(group)
    }

    fn new(dir: PathBuf, meta: GroupMeta) -> Group {
        Group {
            dir,
            meta: Mutex::new(meta),
            streams: RwLock::new(BTreeMap::new()),
            stored: AtomicU64::new(0),
            deleted: AtomicBool::new(false),
            trim: Mutex::new(()),
        }
    }

    /// Creates a stream: an empty newest segment (and the name file when the name is
    /// cut). `durable` fsyncs them (API creations); writers' streams skip it.
    /// `Ok(None)` when it exists already.
    pub(crate) fn create_stream(
        &self,
        name: &str,
        now: i64,
        durable: bool,
    ) -> io::Result<Option<Arc<Stream>>> {
        let mut streams = self.streams_mut();
        if streams.contains_key(name) {
            return Ok(None);
        }
        let (stem, cut) = names::file_stem(name);
        if cut {
            let mut f = File::create(self.dir.join(format!("{stem}.name")))?;
            f.write_all(name.as_bytes())?;
            if durable {
                f.sync_all()?;
            }
        }
        let path = active_path(&self.dir, &stem);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if durable {
            file.sync_all()?;
            sync_dir(&self.dir)?;
        }
        let stream = Arc::new(Stream {
            name: name.to_owned(),
            stem,
            state: Mutex::new(StreamState {
                rotated: VecDeque::new(),
                active: Segment::empty(0, path),
                file: Arc::new(file),
                creation_time: now,
                last_ingestion: None,
                deleted: false,
            }),
        });
        streams.insert(name.to_owned(), stream.clone());
        Ok(Some(stream))
    }

    /// Removes a stream and its files. False if there is no such stream.
    pub(crate) fn delete_stream(&self, name: &str) -> io::Result<bool> {
        let Some(stream) = self.streams_mut().remove(name) else {
            return Ok(false);
        };
        let mut st = stream.lock();
        st.deleted = true;
        let freed = st.stored_bytes();
        for seg in st.segments() {
            remove_if_present(&seg.path)?;
        }
        remove_if_present(&self.dir.join(format!("{}.name", stream.stem)))?;
        self.stored.fetch_sub(
            freed.min(self.stored.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        Ok(true)
    }

    /// Appends whole lines to a stream in one write, updates the index, and rotates the
    /// newest segment when it reached `segment_bytes`. Returns the file written (to fsync
    /// outside the lock) and the end position after the write.
    pub(crate) fn append(
        &self,
        stream: &Stream,
        bytes: &[u8],
        min_ts: i64,
        max_ts: i64,
        ingestion: i64,
        segment_bytes: u64,
    ) -> io::Result<(Arc<File>, (u64, u64))> {
        let mut st = stream.lock();
        if st.deleted {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "log stream deleted",
            ));
        }
        let file = st.file.clone();
        if let Err(e) = (&*file).write_all(bytes) {
            // Cut a partial line off so the next append starts on a line boundary.
            let _ = file.set_len(st.active.size);
            return Err(e);
        }
        let len = bytes.len() as u64;
        st.active.size += len;
        st.active.min_ts = st.active.min_ts.min(min_ts);
        st.active.max_ts = st.active.max_ts.max(max_ts);
        st.last_ingestion = Some(ingestion);
        self.stored.fetch_add(len, Ordering::Relaxed);
        if st.active.size >= segment_bytes
            && let Err(e) = self.rotate(stream, &mut st)
        {
            tracing::warn!(error = %e, stream = %stream.name, "rotating a log segment");
        }
        Ok((file, st.end()))
    }

    /// Renames the newest segment with its sequence number and time range and starts a new
    /// one with the next sequence number.
    fn rotate(&self, stream: &Stream, st: &mut StreamState) -> io::Result<()> {
        if st.active.is_empty() {
            return Ok(());
        }
        let old = &st.active;
        let rotated = self.dir.join(format!(
            "{}.jsonl.{}.{}.{}",
            stream.stem, old.seq, old.min_ts, old.max_ts
        ));
        fs::rename(&old.path, &rotated)?;
        let path = active_path(&self.dir, &stream.stem);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let next = Segment::empty(old.seq + 1, path);
        let mut done = std::mem::replace(&mut st.active, next);
        done.path = rotated;
        st.rotated.push_back(done);
        st.file = Arc::new(file);
        Ok(())
    }

    /// Deletes the segment `seq` of `stream` if it is still there: an older segment is
    /// removed, the newest is emptied by starting its successor. Returns the bytes freed.
    pub(crate) fn drop_segment(&self, stream: &Stream, seq: u64) -> io::Result<u64> {
        let mut st = stream.lock();
        if st.deleted {
            return Ok(0);
        }
        let freed = if let Some(i) = st.rotated.iter().position(|s| s.seq == seq) {
            let Some(seg) = st.rotated.remove(i) else {
                return Ok(0);
            };
            remove_if_present(&seg.path)?;
            seg.size
        } else if st.active.seq == seq && !st.active.is_empty() {
            let size = st.active.size;
            // The successor takes the next sequence number, so readers' positions in the
            // dropped segment never point into it.
            let path = st.active.path.clone();
            remove_if_present(&path)?;
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            st.active = Segment::empty(seq + 1, path);
            st.file = Arc::new(file);
            size
        } else {
            0
        };
        self.stored.fetch_sub(
            freed.min(self.stored.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        Ok(freed)
    }

    /// Loads a group directory written earlier. `None` when it is no group of ours.
    pub(crate) fn load(dir: PathBuf, now: i64) -> io::Result<Option<Group>> {
        let meta_path = dir.join("group.json");
        let read = match fs::read(&meta_path) {
            Ok(bytes) => match serde_json::from_slice::<GroupMeta>(&bytes) {
                Ok(m) => Ok(m),
                Err(e) => {
                    // A writer's group whose file a crash cut short: the directory still
                    // names it.
                    tracing::warn!(dir = %dir.display(), error = %e, "unreadable group.json; the group is taken from its directory's name");
                    Err(io::Error::from(io::ErrorKind::NotFound))
                }
            },
            Err(e) => Err(e),
        };
        let meta: GroupMeta = match read {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A group created by older Stratus, which wrote no metadata, or one whose
                // metadata was never synced.
                let Some(name) = dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(names::from_file_stem)
                    .filter(|n| names::check_group_name(n, "logGroupName").is_ok())
                else {
                    return Ok(None);
                };
                let meta = GroupMeta {
                    name,
                    creation_time: file_time(&fs::metadata(&dir)?).unwrap_or(now),
                    retention_in_days: None,
                    tags: Tags::new(),
                };
                let group = Group::new(dir.clone(), meta.clone());
                group.save_meta(&meta)?;
                meta
            }
            Err(e) => return Err(e),
        };
        let group = Group::new(dir.clone(), meta);

        // Collect each stem's files.
        #[derive(Default)]
        struct Files {
            active: bool,
            rotated: Vec<(u64, i64, i64, PathBuf)>,
        }
        let mut by_stem: BTreeMap<String, Files> = BTreeMap::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let Ok(file_name) = entry.file_name().into_string() else {
                continue;
            };
            if let Some(stem) = file_name.strip_suffix(".jsonl") {
                by_stem.entry(stem.to_owned()).or_default().active = true;
            } else if let Some((stem, seq, min, max)) = parse_rotated(&file_name) {
                by_stem.entry(stem.to_owned()).or_default().rotated.push((
                    seq,
                    min,
                    max,
                    entry.path(),
                ));
            }
        }
        let mut stored = 0;
        let mut streams = BTreeMap::new();
        for (stem, mut files) in by_stem {
            let name = if stem.contains('~') {
                match fs::read_to_string(dir.join(format!("{stem}.name"))) {
                    Ok(n) => n,
                    Err(_) => continue,
                }
            } else {
                match names::from_file_stem(&stem) {
                    Some(n) => n,
                    None => continue,
                }
            };
            files.rotated.sort_by_key(|r| r.0);
            let mut creation_time = i64::MAX;
            let mut rotated = VecDeque::new();
            for (seq, min_ts, max_ts, path) in files.rotated {
                let md = fs::metadata(&path)?;
                creation_time = creation_time.min(file_time(&md).unwrap_or(now));
                rotated.push_back(Segment {
                    seq,
                    path,
                    size: md.len(),
                    min_ts,
                    max_ts,
                });
            }
            let next_seq = rotated.back().map_or(0, |s: &Segment| s.seq + 1);
            let path = active_path(&dir, &stem);
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            let md = file.metadata()?;
            creation_time = creation_time.min(file_time(&md).unwrap_or(now));
            let (active, mut last_ingestion) = scan_active(&file, &path, next_seq, md.len())?;
            if last_ingestion.is_none()
                && let Some(last) = rotated.back()
            {
                last_ingestion = last_line_ingestion(&last.path, last.size)?;
            }
            let state = StreamState {
                rotated,
                active,
                file: Arc::new(file),
                creation_time: creation_time.min(now),
                last_ingestion,
                deleted: false,
            };
            stored += state.stored_bytes();
            streams.insert(
                name.clone(),
                Arc::new(Stream {
                    name,
                    stem,
                    state: Mutex::new(state),
                }),
            );
        }
        *group.streams_mut() = streams;
        group.stored.store(stored, Ordering::Relaxed);
        Ok(Some(group))
    }
}

/// Reads a newest segment once: its time range and last ingestion, and cuts a torn last
/// line (a crash in mid-write) so appends start on a line boundary.
fn scan_active(file: &File, path: &Path, seq: u64, len: u64) -> io::Result<(Segment, Option<i64>)> {
    let mut seg = Segment::empty(seq, path.to_owned());
    let mut last_ingestion = None;
    let mut whole = 0;
    if let Some(mut r) = LineReader::open(path, 0, len)? {
        while let Some((off, line)) = r.next_line()? {
            whole = off + line.len() as u64 + 1;
            let parsed = record::parse(line)
                .map(|r| (r.timestamp, r.ingestion))
                .or_else(|| record::decode_slow(line).map(|(t, i, _)| (t, i)));
            if let Some((ts, ing)) = parsed {
                seg.min_ts = seg.min_ts.min(ts);
                seg.max_ts = seg.max_ts.max(ts);
                last_ingestion = Some(last_ingestion.map_or(ing, |l: i64| l.max(ing)));
            }
        }
    }
    if whole < len {
        tracing::warn!(path = %path.display(), "cutting a torn last line");
        file.set_len(whole)?;
    }
    seg.size = whole;
    Ok((seg, last_ingestion))
}

/// The ingestion time of a segment's last readable line.
fn last_line_ingestion(path: &Path, size: u64) -> io::Result<Option<i64>> {
    let mut found = None;
    crate::scan::lines_backward(path, size, |_, line| {
        found = record::parse(line)
            .map(|r| r.ingestion)
            .or_else(|| record::decode_slow(line).map(|d| d.1));
        found.is_none()
    })?;
    Ok(found)
}

/// `<stem>.jsonl.<seq>.<min>.<max>` → its parts.
fn parse_rotated(file_name: &str) -> Option<(&str, u64, i64, i64)> {
    let mut parts = file_name.rsplitn(4, '.');
    let max = parts.next()?.parse().ok()?;
    let min = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let stem = parts.next()?.strip_suffix(".jsonl")?;
    Some((stem, seq, min, max))
}

fn active_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}.jsonl"))
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The creation time of a file where the file system keeps one, else its modification time.
fn file_time(md: &fs::Metadata) -> Option<i64> {
    let t = md.created().or_else(|_| md.modified()).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rotated_names() {
        for (name, want) in [
            ("a.jsonl.3.10.20", Some(("a", 3, 10, 20))),
            ("a.b.jsonl.0.-5.7", Some(("a.b", 0, -5, 7))),
            (
                "x.jsonl.1.2.3.jsonl.4.5.6",
                Some(("x.jsonl.1.2.3", 4, 5, 6)),
            ),
            ("a.jsonl", None),
            ("a.name", None),
            ("group.json", None),
            ("a.txt.1.2.3", None),
        ] {
            assert_eq!(parse_rotated(name), want, "{name}");
        }
    }

    fn lines(n: usize, ts: i64) -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..n {
            record::encode(&mut v, ts + i as i64, ts, "hello");
        }
        v
    }

    #[test]
    fn a_writers_group_whose_metadata_a_crash_cut_short_is_named_by_its_directory() {
        let d = tempfile::tempdir().unwrap();
        let (stem, _) = names::file_stem("/aws/lambda/f");
        let dir = d.path().join(stem);
        let meta = GroupMeta {
            name: "/aws/lambda/f".into(),
            creation_time: 1,
            retention_in_days: None,
            tags: Tags::new(),
        };
        Group::create(dir.clone(), meta, false).unwrap();
        // What a crash can leave of a file that was never synced.
        fs::write(dir.join("group.json"), b"").unwrap();
        let g = Group::load(dir, 5)
            .unwrap()
            .expect("the group is still there");
        assert_eq!(g.meta().name, "/aws/lambda/f");
    }

    #[test]
    fn append_rotate_drop_and_reload() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("g");
        let meta = GroupMeta {
            name: "g".into(),
            creation_time: 1,
            retention_in_days: Some(7),
            tags: Tags::new(),
        };
        let g = Group::create(dir.clone(), meta, true).unwrap();
        let s = g.create_stream("s/1", 5, true).unwrap().unwrap();
        assert!(g.create_stream("s/1", 5, true).unwrap().is_none());
        let batch_len = lines(10, 1000).len();
        let seg = batch_len as u64 * 2;
        for i in 0..5 {
            let batch = lines(10, 1000 + i * 100);
            g.append(&s, &batch, 1000 + i * 100, 1009 + i * 100, 1000, seg)
                .unwrap();
        }
        let batch = vec![0u8; batch_len];
        {
            let st = s.lock();
            // Rotated after every second batch.
            assert_eq!(st.rotated.len(), 2);
            assert_eq!(st.active.seq, 2);
            assert_eq!(st.stored_bytes(), 5 * batch.len() as u64);
            assert_eq!(
                (st.first_event(), st.last_event()),
                (Some(1000), Some(1409))
            );
        }
        assert_eq!(g.stored.load(Ordering::Relaxed), 5 * batch.len() as u64);
        assert_eq!(g.drop_segment(&s, 0).unwrap(), 2 * batch.len() as u64);
        assert_eq!(g.drop_segment(&s, 0).unwrap(), 0, "already gone");
        drop(g);

        let g = Group::load(dir.clone(), 99).unwrap().unwrap();
        assert_eq!(g.meta().retention_in_days, Some(7));
        let s = g.stream("s/1").unwrap();
        let st = s.lock();
        assert_eq!(st.rotated.len(), 1);
        assert_eq!((st.rotated[0].seq, st.active.seq), (1, 2));
        assert_eq!(
            (st.first_event(), st.last_event()),
            (Some(1200), Some(1409))
        );
        assert_eq!(st.last_ingestion, Some(1400));
        assert_eq!(g.stored.load(Ordering::Relaxed), 3 * batch.len() as u64);
    }

    #[test]
    fn loads_what_older_stratus_wrote_and_cuts_torn_lines() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("%2Faws%2Flambda%2Ff");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("2024%2F01%2F01%2F[$LATEST]abc.jsonl"),
            "{\"timestamp\":5,\"message\":\"START\"}\n{\"timestamp\":6,\"mess",
        )
        .unwrap();
        let g = Group::load(dir.clone(), 10).unwrap().unwrap();
        assert_eq!(g.meta().name, "/aws/lambda/f");
        let s = g.stream("2024/01/01/[$LATEST]abc").unwrap();
        assert_eq!(s.lock().last_event(), Some(5));
        assert!(dir.join("group.json").exists());
        let text = fs::read_to_string(dir.join("2024%2F01%2F01%2F[$LATEST]abc.jsonl")).unwrap();
        assert_eq!(text, "{\"timestamp\":5,\"message\":\"START\"}\n");
        // Not a group: a directory whose name is no group name.
        let other = d.path().join("has space");
        fs::create_dir_all(&other).unwrap();
        assert!(Group::load(other, 10).unwrap().is_none());
    }

    #[test]
    fn long_stream_names_keep_their_name_beside() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("g");
        let meta = GroupMeta {
            name: "g".into(),
            creation_time: 1,
            retention_in_days: None,
            tags: Tags::new(),
        };
        let g = Group::create(dir.clone(), meta, true).unwrap();
        let long = "/é".repeat(250);
        g.create_stream(&long, 1, true).unwrap().unwrap();
        drop(g);
        let g = Group::load(dir, 2).unwrap().unwrap();
        assert!(g.stream(&long).is_some());
        assert!(g.delete_stream(&long).unwrap());
        assert!(!g.delete_stream(&long).unwrap());
    }
}
