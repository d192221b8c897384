//! A text output (NDJSON, CSV, names) with checkpoints: every `checkpoint` interval, or sooner
//! when asked, the file is flushed and `fdatasync`ed, and the tasks whose markers
//! ([`OutputBatch::TasksDone`]) arrived before that point are reported durable. Every entry of
//! such a task was ahead of its marker in the channel, so it is on disk. A shared queue
//! acknowledges tasks only then.

use super::{OutputBatch, CHANNEL_BATCHES_MAX};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the writer looks at `wants_checkpoint` while no batch arrives.
const POLL: Duration = Duration::from_millis(20);

/// Told of durable tasks; asked whether a checkpoint is wanted now.
pub trait DurabilityListener: Send + 'static {
    fn durable(&mut self, ids: &[u64]);
    fn wants_checkpoint(&self) -> bool;
}

pub struct SyncedTextWriter {
    handle: JoinHandle<io::Result<u64>>,
}

impl SyncedTextWriter {
    /// Starts the writer on `file`, writing `header` first (a CSV header; nothing when
    /// appending); should a write fail, it sets `stop`.
    pub fn start(
        header: &[u8],
        file: File,
        checkpoint: Duration,
        mut listener: impl DurabilityListener,
        stop: Arc<AtomicBool>,
    ) -> io::Result<(SyncedTextWriter, Sender<OutputBatch>)> {
        let (tx, rx): (Sender<OutputBatch>, Receiver<OutputBatch>) = bounded(CHANNEL_BATCHES_MAX);
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(header)?;
        let handle = std::thread::Builder::new()
            .name("nfs-walker-writer".into())
            .spawn(move || -> io::Result<u64> {
                let mut written = 0u64;
                let mut done: Vec<u64> = Vec::new();
                let mut last = Instant::now();
                let result = (|| {
                    let sync = |out: &mut BufWriter<File>,
                                done: &mut Vec<u64>,
                                l: &mut dyn FnMut(&[u64])|
                     -> io::Result<()> {
                        out.flush()?;
                        out.get_ref().sync_data()?;
                        if !done.is_empty() {
                            l(done);
                            done.clear();
                        }
                        Ok(())
                    };
                    loop {
                        match rx.recv_timeout(POLL) {
                            Ok(OutputBatch::Bytes(b)) => {
                                out.write_all(&b)?;
                                written += b.len() as u64;
                            }
                            Ok(OutputBatch::TasksDone(ids)) => done.extend(ids),
                            Ok(_) => {}
                            Err(RecvTimeoutError::Timeout) => {}
                            Err(RecvTimeoutError::Disconnected) => break,
                        }
                        let due = last.elapsed() >= checkpoint
                            || (!done.is_empty() && listener.wants_checkpoint());
                        if due {
                            sync(&mut out, &mut done, &mut |ids| listener.durable(ids))?;
                            last = Instant::now();
                        }
                    }
                    sync(&mut out, &mut done, &mut |ids| listener.durable(ids))
                })();
                if result.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                result.map(|()| written)
            })?;
        Ok((SyncedTextWriter { handle }, tx))
    }

    /// Waits for the writer to drain and sync (all senders must be dropped first).
    pub fn finish(self) -> io::Result<u64> {
        self.handle
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("writer thread panicked")))
    }
}
