//! Hashing threads, so that hashing never stalls a scanning thread's ring loop: each file's
//! chunks go, in order, to one hashing thread (chosen by the file's key), which reports the
//! bytes it consumed (releasing the reader's budget) and, at the end, the digest.

use super::reader::{ContentReader, HashStage};
use crate::sched::conns::RecordBuf;
use checksum::{ChecksumAlgo, Hasher};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

enum HashOp {
    Begin(ChecksumAlgo),
    Data(Vec<u8>),
    /// Bytes where they were received; the buffer goes back to its pool once hashed.
    InRecord(RecordBuf, Range<usize>),
    End,
    Abort,
}

struct HashMsg {
    owner: Arc<Owner>,
    key: u64,
    op: HashOp,
}

/// One scanning thread's side of the pool: where its results go.
struct Owner {
    /// Bytes hashed (or dropped) since the owner last looked.
    released: AtomicU64,
    digests: Sender<(u64, String)>,
    /// Chunk buffers hashed, for the owner to fill again.
    spent: Sender<Vec<u8>>,
}

/// Spent chunk buffers kept for reuse per scanning thread: 64 of 1 MiB cover the default
/// budget, so a steady stream allocates nothing.
const SPENT_BUFFERS_MAX: usize = 64;

/// The hashing threads of a scan. The channels into them are unbounded, but what they carry is
/// bounded: every byte sent counts against a reader's budget until a thread has consumed it.
pub struct HashPool {
    workers: Vec<Sender<HashMsg>>,
    handles: Vec<JoinHandle<()>>,
}

impl HashPool {
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let mut workers = Vec::new();
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let (tx, rx) = unbounded::<HashMsg>();
            workers.push(tx);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("nfs-walker-hash-{i}"))
                    .spawn(move || hash_thread(rx))?,
            );
        }
        Ok(HashPool { workers, handles })
    }

    /// A handle for one scanning thread.
    pub fn client(&self) -> HashClient {
        let (tx, rx) = unbounded();
        let (spent_tx, spent_rx) = bounded(SPENT_BUFFERS_MAX);
        HashClient {
            workers: self.workers.clone(),
            owner: Arc::new(Owner {
                released: AtomicU64::new(0),
                digests: tx,
                spent: spent_tx,
            }),
            digests: rx,
            spent: spent_rx,
        }
    }

    /// Waits for the threads (every client must be dropped first).
    pub fn finish(self) {
        drop(self.workers);
        for h in self.handles {
            let _ = h.join();
        }
    }
}

fn hash_thread(rx: Receiver<HashMsg>) {
    let mut jobs: HashMap<(usize, u64), Hasher> = HashMap::new();
    for msg in rx {
        let id = (Arc::as_ptr(&msg.owner) as usize, msg.key);
        match msg.op {
            HashOp::Begin(algo) => {
                jobs.insert(id, algo.hasher());
            }
            HashOp::Data(chunk) => {
                if let Some(h) = jobs.get_mut(&id) {
                    h.update(&chunk);
                }
                msg.owner
                    .released
                    .fetch_add(chunk.len() as u64, Ordering::Release);
                // A full queue drops the buffer: the owner has enough.
                let _ = msg.owner.spent.try_send(chunk);
            }
            HashOp::InRecord(record, range) => {
                if let Some(h) = jobs.get_mut(&id) {
                    h.update(&record[range.clone()]);
                }
                msg.owner
                    .released
                    .fetch_add(range.len() as u64, Ordering::Release);
                // Dropping `record` gives its buffer back to the connection set's pool.
            }
            HashOp::End => {
                if let Some(h) = jobs.remove(&id) {
                    let _ = msg.owner.digests.send((msg.key, h.finish()));
                }
            }
            HashOp::Abort => {
                jobs.remove(&id);
            }
        }
    }
}

/// One scanning thread's [`HashStage`]: sends chunks to the pool; [`HashClient::drain`] brings
/// the pool's results back into the reader.
pub struct HashClient {
    workers: Vec<Sender<HashMsg>>,
    owner: Arc<Owner>,
    digests: Receiver<(u64, String)>,
    spent: Receiver<Vec<u8>>,
}

impl HashClient {
    fn send(&self, key: u64, op: HashOp) {
        // The same key always goes to the same thread, so a file's chunks stay in order.
        let i = (crate::content::mix_key(key) % self.workers.len() as u64) as usize;
        let _ = self.workers[i].send(HashMsg {
            owner: self.owner.clone(),
            key,
            op,
        });
    }

    /// Feeds the pool's results (bytes consumed, digests) to `reader`; returns whether there
    /// were any.
    pub fn drain<T>(&self, reader: &mut ContentReader<T>) -> bool {
        let released = self.owner.released.swap(0, Ordering::Acquire);
        if released > 0 {
            reader.on_hashed(released);
        }
        let mut any = released > 0;
        while let Ok((key, digest)) = self.digests.try_recv() {
            reader.on_digest(key, digest);
            any = true;
        }
        any
    }
}

impl HashStage for HashClient {
    fn buffer(&mut self) -> Vec<u8> {
        self.spent.try_recv().unwrap_or_default()
    }
    fn begin(&mut self, key: u64, algo: ChecksumAlgo) {
        self.send(key, HashOp::Begin(algo));
    }
    fn data(&mut self, key: u64, chunk: Vec<u8>) {
        self.send(key, HashOp::Data(chunk));
    }
    fn data_in_record(&mut self, key: u64, record: RecordBuf, range: Range<usize>) {
        self.send(key, HashOp::InRecord(record, range));
    }
    fn end(&mut self, key: u64) {
        self.send(key, HashOp::End);
    }
    fn abort(&mut self, key: u64) {
        self.send(key, HashOp::Abort);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::reader::ContentConfig;
    use std::time::{Duration, Instant};

    #[test]
    fn files_hashed_on_pool_threads_in_order() {
        let pool = HashPool::start(3).unwrap();
        let mut client = pool.client();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        for key in 0..20u64 {
            client.begin(key, ChecksumAlgo::Sha256);
            for piece in data.chunks(7_000 + key as usize) {
                client.data(key, piece.to_vec());
            }
            if key % 5 == 4 {
                client.abort(key);
            } else {
                client.end(key);
            }
        }
        // The reader only counts: releases must add up to every byte sent, aborted ones too.
        let mut reader: ContentReader<()> = ContentReader::new(ContentConfig::default());
        let want = ChecksumAlgo::Sha256.checksum(&data);
        let mut digests = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut released = 0u64;
        while digests.len() < 16 && Instant::now() < deadline {
            released += client.owner.released.swap(0, Ordering::Acquire);
            while let Ok(d) = client.digests.try_recv() {
                digests.push(d);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // Late releases of the aborted jobs.
        while released < 20 * data.len() as u64 && Instant::now() < deadline {
            released += client.owner.released.swap(0, Ordering::Acquire);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(released, 20 * data.len() as u64);
        digests.sort();
        let keys: Vec<u64> = digests.iter().map(|d| d.0).collect();
        assert_eq!(keys, (0..20).filter(|k| k % 5 != 4).collect::<Vec<_>>());
        assert!(digests.iter().all(|(_, d)| *d == want));
        assert!(!client.drain(&mut reader));
        drop(client);
        pool.finish();
    }

    #[test]
    fn chunks_are_hashed_in_the_reply_buffers_they_were_received_in() {
        let pool = HashPool::start(2).unwrap();
        let mut client = pool.client();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        client.begin(1, ChecksumAlgo::Blake3);
        for piece in data.chunks(30_000) {
            // Each piece after 8 bytes of something else, as a READ's data lies in its reply.
            let mut record = vec![9u8; 8];
            record.extend_from_slice(piece);
            let range = 8..record.len();
            client.data_in_record(1, RecordBuf::from_vec(record), range);
        }
        client.end(1);
        let deadline = Instant::now() + Duration::from_secs(20);
        let (mut released, mut digests) = (0, Vec::new());
        while (digests.is_empty() || released < data.len() as u64) && Instant::now() < deadline {
            released += client.owner.released.swap(0, Ordering::Acquire);
            while let Ok(d) = client.digests.try_recv() {
                digests.push(d);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(released, data.len() as u64, "only the data counts");
        assert_eq!(digests, vec![(1, ChecksumAlgo::Blake3.checksum(&data))]);
        drop(client);
        pool.finish();
    }
}
