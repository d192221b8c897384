//! `scan --big-dirs N`: the directories holding at least N entries, found by listing every
//! directory with READDIR names only.
//!
//! The scanning threads write one line per directory whose listing ended,
//! `{"entries":N,"path":...,"fileid":F,"fsid":S}` (the entry count first, so the writer reads
//! it without parsing the line); the writer thread keeps the lines of N or more entries and
//! remembers the largest directory so far for the progress line.

use super::{OutputBatch, CHANNEL_BATCHES_MAX};
use crate::record::json_escape_into;
use base64::Engine as _;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

const COUNT_PREFIX: &[u8] = b"{\"entries\":";

/// Appends the line of one listed directory.
pub fn write_dir_count(out: &mut Vec<u8>, path: &[u8], dir: Option<(u64, u64)>, entries: u64) {
    out.extend_from_slice(COUNT_PREFIX);
    out.extend_from_slice(itoa::Buffer::new().format(entries).as_bytes());
    out.extend_from_slice(b",\"path\":\"");
    json_escape_into(out, path);
    out.push(b'"');
    if std::str::from_utf8(path).is_err() {
        out.extend_from_slice(b",\"path_b64\":\"");
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(path)
                .as_bytes(),
        );
        out.push(b'"');
    }
    if let Some((fsid, fileid)) = dir {
        out.extend_from_slice(b",\"fileid\":");
        out.extend_from_slice(itoa::Buffer::new().format(fileid).as_bytes());
        out.extend_from_slice(b",\"fsid\":");
        out.extend_from_slice(itoa::Buffer::new().format(fsid).as_bytes());
    }
    out.extend_from_slice(b"}\n");
}

/// The entry count at the start of a line written by [`write_dir_count`].
fn count_of(line: &[u8]) -> Option<u64> {
    let digits = line.strip_prefix(COUNT_PREFIX)?;
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// The largest directory listed so far.
#[derive(Debug, Default)]
pub struct LargestDir {
    pub entries: AtomicU64,
    /// Its path, as the line shows it.
    pub path: Mutex<String>,
}

impl LargestDir {
    fn offer(&self, count: u64, line: &[u8]) {
        if count <= self.entries.load(Ordering::Relaxed) && count > 0 {
            return;
        }
        self.entries.store(count, Ordering::Relaxed);
        let path = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("path")?.as_str().map(str::to_string))
            .unwrap_or_default();
        if let Ok(mut p) = self.path.lock() {
            *p = path;
        }
    }
}

/// What the writer found.
#[derive(Debug, Clone, Copy, Default)]
pub struct BigDirsTotals {
    /// Directories listed.
    pub dirs: u64,
    /// Directories of at least the threshold, written.
    pub big: u64,
}

/// The writer thread of `--big-dirs`.
pub struct BigDirsWriter {
    handle: JoinHandle<io::Result<BigDirsTotals>>,
}

impl BigDirsWriter {
    /// Starts the writer: lines of directories with at least `min_entries` entries go to
    /// `out`; should a write fail, it sets `stop`.
    pub fn start(
        min_entries: u64,
        mut out: Box<dyn Write + Send>,
        largest: Arc<LargestDir>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<(BigDirsWriter, Sender<OutputBatch>)> {
        let (tx, rx): (Sender<OutputBatch>, Receiver<OutputBatch>) = bounded(CHANNEL_BATCHES_MAX);
        let handle = std::thread::Builder::new()
            .name("nfs-walker-bigdirs".into())
            .spawn(move || -> io::Result<BigDirsTotals> {
                let mut totals = BigDirsTotals::default();
                let result = (|| {
                    for batch in rx {
                        let OutputBatch::Bytes(b) = batch else {
                            continue;
                        };
                        for line in b.split_inclusive(|&c| c == b'\n') {
                            let Some(count) = count_of(line) else {
                                continue;
                            };
                            totals.dirs += 1;
                            if count > largest.entries.load(Ordering::Relaxed) || totals.dirs == 1 {
                                largest.offer(count, line);
                            }
                            if count >= min_entries {
                                totals.big += 1;
                                out.write_all(line)?;
                            }
                        }
                    }
                    out.flush()
                })();
                if result.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                result.map(|()| totals)
            })?;
        Ok((BigDirsWriter { handle }, tx))
    }

    /// Waits for the writer to drain (all senders must be dropped first).
    pub fn finish(self) -> io::Result<BigDirsTotals> {
        self.handle
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("writer thread panicked")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_count_first_and_exact_paths() {
        let mut out = Vec::new();
        write_dir_count(&mut out, b"a/b\xff", Some((7, 42)), 123_456);
        assert_eq!(count_of(&out), Some(123_456));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["fileid"], 42);
        assert_eq!(v["fsid"], 7);
        assert_eq!(v["path_b64"], "YS9i/w==");
        out.clear();
        write_dir_count(&mut out, b".", None, 0);
        assert_eq!(count_of(&out), Some(0));
        assert!(!String::from_utf8(out).unwrap().contains("fileid"));
    }

    #[test]
    fn the_writer_keeps_big_directories_and_the_largest() {
        let largest = Arc::new(LargestDir::default());
        let buf = Arc::new(Mutex::new(Vec::new()));
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (w, tx) =
            BigDirsWriter::start(10, Box::new(Shared(buf.clone())), largest.clone(), stop).unwrap();
        let mut batch = Vec::new();
        for (p, n) in [("small", 3u64), ("big", 10), ("bigger", 500), ("mid", 9)] {
            write_dir_count(&mut batch, p.as_bytes(), Some((1, n)), n);
        }
        tx.send(OutputBatch::Bytes(batch)).unwrap();
        drop(tx);
        let totals = w.finish().unwrap();
        assert_eq!((totals.dirs, totals.big), (4, 2));
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        let paths: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["path"].to_string())
            .collect();
        assert_eq!(paths, ["\"big\"", "\"bigger\""]);
        assert_eq!(largest.entries.load(Ordering::Relaxed), 500);
        assert_eq!(*largest.path.lock().unwrap(), "bigger");
    }
}
