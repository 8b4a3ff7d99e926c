//! Reading a segment file: forward in large buffers (with an optional literal that lines
//! must contain, searched across the whole buffer the way grep does), and backward in
//! chunks. Callers pass the length to read up to, a snapshot taken under the stream's lock,
//! so a write in progress is never seen half-done.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use memchr::memmem::Finder;

/// The forward read size: large, so a scan costs few system calls.
pub(crate) const READ_BUF: usize = 1 << 20;
/// The backward read size.
const BACK_CHUNK: usize = 64 << 10;

/// Lines of one file from an offset to a limit.
pub(crate) struct LineReader {
    file: File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    base: u64,
    start: usize,
    end: usize,
    limit: u64,
}

impl LineReader {
    /// Opens `path` to read `[from, limit)`; `None` if the file is gone (a segment dropped
    /// by the cap or retention since the caller's snapshot).
    pub(crate) fn open(path: &Path, from: u64, limit: u64) -> io::Result<Option<LineReader>> {
        match File::open(path) {
            Ok(file) => Ok(Some(LineReader {
                file,
                buf: vec![
                    0;
                    READ_BUF
                        .min(usize::try_from(limit.saturating_sub(from)).unwrap_or(READ_BUF))
                        .max(4096)
                ],
                base: from,
                start: 0,
                end: 0,
                limit,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads more bytes after `end`, keeping `buf[start..end]`. False at the limit.
    fn fill(&mut self) -> io::Result<bool> {
        let pos = self.base + self.end as u64;
        if pos >= self.limit {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // One line longer than the buffer: grow it.
            let len = self.buf.len() * 2;
            self.buf.resize(len, 0);
        }
        let want = (self.buf.len() - self.end)
            .min(usize::try_from(self.limit - pos).unwrap_or(usize::MAX));
        let n = self
            .file
            .read_at(&mut self.buf[self.end..self.end + want], pos)?;
        self.end += n;
        Ok(n > 0)
    }

    /// The next whole line (without its newline) and its offset. A last line without a
    /// newline (a write torn by a crash) is not returned.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        loop {
            if let Some(nl) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                let s = self.start;
                self.start += nl + 1;
                return Ok(Some((self.base + s as u64, &self.buf[s..s + nl])));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// The next whole line that contains `needle`, skipping the others without looking at
    /// them line by line.
    pub(crate) fn next_line_containing(
        &mut self,
        needle: &Finder<'_>,
    ) -> io::Result<Option<(u64, &[u8])>> {
        loop {
            let window = &self.buf[self.start..self.end];
            if let Some(hit) = needle.find(window) {
                let line_start = memchr::memrchr(b'\n', &window[..hit]).map_or(0, |p| p + 1);
                if let Some(nl) = memchr::memchr(b'\n', &window[hit..]) {
                    let s = self.start + line_start;
                    let e = self.start + hit + nl;
                    self.start = e + 1;
                    return Ok(Some((self.base + s as u64, &self.buf[s..e])));
                }
                // The line goes on past the buffer: keep it from its start and read on.
                self.start += line_start;
            } else {
                // No hit: drop every whole line, keep the unfinished one (a hit may span).
                if let Some(p) = memchr::memrchr(b'\n', window) {
                    self.start += p + 1;
                }
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }
}

/// Calls `f` with each whole line of `path` before `end` and its offset, last line first,
/// until `f` returns false. A missing file has no lines.
pub(crate) fn lines_backward(
    path: &Path,
    end: u64,
    mut f: impl FnMut(u64, &[u8]) -> bool,
) -> io::Result<()> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    // `buf` holds the file's bytes `[pos, pos + buf.len())`; its tail is whole lines.
    let mut pos = end;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // Hand out the whole lines at the end of `buf`.
        let mut hi = buf.len();
        while hi > 0 {
            // buf[hi-1] is a newline (or the end of a region that ends at a line boundary).
            let body_end = if buf[hi - 1] == b'\n' { hi - 1 } else { hi };
            match memchr::memrchr(b'\n', &buf[..body_end]) {
                Some(nl) => {
                    if !f(pos + nl as u64 + 1, &buf[nl + 1..body_end]) {
                        return Ok(());
                    }
                    hi = nl + 1;
                }
                None if pos == 0 => {
                    f(0, &buf[..body_end]);
                    return Ok(());
                }
                None => break,
            }
        }
        if pos == 0 {
            return Ok(());
        }
        buf.truncate(hi);
        let n = BACK_CHUNK.min(usize::try_from(pos).unwrap_or(BACK_CHUNK));
        pos -= n as u64;
        let mut chunk = vec![0; n + buf.len()];
        file.read_exact_at(&mut chunk[..n], pos)?;
        chunk[n..].copy_from_slice(&buf);
        buf = chunk;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(lines: &[&str]) -> (tempfile::NamedTempFile, Vec<u64>) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let mut offsets = Vec::new();
        let mut off = 0;
        for l in lines {
            offsets.push(off);
            writeln!(f, "{l}").unwrap();
            off += l.len() as u64 + 1;
        }
        (f, offsets)
    }

    #[test]
    fn forward_backward_and_needle_agree() {
        let long = "x".repeat(3 * READ_BUF);
        let mut lines: Vec<String> = (0..5000)
            .map(|i| format!("line {i} {}", "y".repeat(i % 300)))
            .collect();
        lines.insert(2500, format!("needle {long}"));
        lines.push("needle at the end".into());
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (f, offsets) = file_with(&refs);
        let size = f.as_file().metadata().unwrap().len();

        let mut r = LineReader::open(f.path(), 0, size).unwrap().unwrap();
        let mut fwd = Vec::new();
        while let Some((off, l)) = r.next_line().unwrap() {
            fwd.push((off, String::from_utf8(l.to_vec()).unwrap()));
        }
        let want: Vec<(u64, String)> = offsets.iter().copied().zip(lines.iter().cloned()).collect();
        assert_eq!(fwd, want);

        let mut back = Vec::new();
        lines_backward(f.path(), size, |off, l| {
            back.push((off, String::from_utf8(l.to_vec()).unwrap()));
            true
        })
        .unwrap();
        back.reverse();
        assert_eq!(back, want);

        let finder = Finder::new("needle");
        let mut r = LineReader::open(f.path(), 0, size).unwrap().unwrap();
        let mut hits = Vec::new();
        while let Some((off, l)) = r.next_line_containing(&finder).unwrap() {
            hits.push((off, l.len()));
        }
        assert_eq!(
            hits,
            [(offsets[2500], lines[2500].len()), (offsets[5001], 17)]
        );
    }

    #[test]
    fn bounds_and_torn_tails() {
        let (f, offsets) = file_with(&["a", "bb", "ccc"]);
        // From the second line to the end of the second.
        let mut r = LineReader::open(f.path(), offsets[1], offsets[2])
            .unwrap()
            .unwrap();
        assert_eq!(r.next_line().unwrap(), Some((offsets[1], &b"bb"[..])));
        assert_eq!(r.next_line().unwrap(), None);
        // A tail without newline is not a line.
        let mut g = f.reopen().unwrap();
        use std::io::Seek;
        g.seek(std::io::SeekFrom::End(0)).unwrap();
        g.write_all(b"torn").unwrap();
        let size = g.metadata().unwrap().len();
        let mut r = LineReader::open(f.path(), 0, size).unwrap().unwrap();
        let mut n = 0;
        while r.next_line().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
        // Backward from the middle, stopping early.
        let mut seen = Vec::new();
        lines_backward(f.path(), offsets[2], |off, l| {
            seen.push((off, l.to_vec()));
            seen.is_empty()
        })
        .unwrap();
        assert_eq!(seen, [(offsets[1], b"bb".to_vec())]);
        assert!(
            LineReader::open(Path::new("/nonexistent/x"), 0, 1)
                .unwrap()
                .is_none()
        );
    }
}
