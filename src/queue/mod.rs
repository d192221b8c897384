//! Multi-host scans: directory tasks shared through a Redis stream with a consumer group.
//!
//! Every participating host runs the same `scan URL --queue redis://…/NAME` command. The
//! first one creates the stream and the consumer group and seeds the root (atomically, in one
//! Lua script); the others join. A task is a subtree: the host that claims it lists it and
//! everything below it on its own deques ([`tasks::RedisTasks`]), and offers directories of it
//! back to the stream only while other hosts could use them, so Redis is asked per piece of
//! work that moves, not per directory. Claims and offers are batched by a queue thread
//! ([`source::QueueSource`]); a task is acknowledged (and deleted) only once every directory of
//! it this host kept is durable in its output. Tasks idle on a consumer for longer than
//! `--claim-idle` are taken over with XAUTOCLAIM; a live host keeps its own tasks from looking
//! idle by touching them (an owner-checked XCLAIM) a few times per claim interval.
//!
//! # Exact termination
//!
//! Every task is one stream entry from the moment it is added (the root by the first host,
//! the others as offers) until its acknowledgement, which deletes it (XACK and XDEL in one
//! script). Offers are added by one script ([`redis::FINISH_SCRIPT`]) that runs only while the
//! task they come from is pending to the caller, and a task's own record (once per task: a
//! marker in the `listed` hash) comes after all its offers, and its acknowledgement after
//! that. So at every instant each directory that is found and not yet durably listed is a
//! stream entry, or in the subtree of one that is pending. The stream's length (XLEN, one
//! atomic read) is therefore zero exactly when the scan is done: entries pending on another
//! host, dead or alive, count, and so do entries no one has read yet. No counter kept beside
//! the stream can drift from it, because there is none. [`decide`] is the rule each host
//! applies.

pub mod redis;
pub mod source;
pub mod tasks;

pub use crate::walker::DirTask;
use crate::xdr::{XdrDecode, XdrEncode, XdrReader, XdrWriter};
use std::fmt;
use thiserror::Error;

/// The environment variable a password may come from, so it does not show in `ps`.
pub const PASSWORD_ENV: &str = "NFS_WALKER_REDIS_PASSWORD";
/// The default Redis port.
pub const REDIS_PORT_DEFAULT: u16 = 6379;
/// Queue names: long enough for `scan-filer1-export-2026-11-29`, short enough for a key.
pub const NAME_BYTES_MAX: usize = 64;

#[derive(Debug, Error)]
pub enum QueueError {
    #[error("bad queue URL `{url}`: {why} (expected redis://[:PASSWORD@]HOST[:PORT][/DB]/NAME)")]
    BadUrl { url: String, why: &'static str },
    #[error("Redis at {addr} refused the password (give it in the URL or in ${PASSWORD_ENV})")]
    Auth { addr: String },
    #[error("cannot reach Redis at {addr}: {source}")]
    Unreachable {
        addr: String,
        source: ::redis::RedisError,
    },
    #[error("Redis at {addr}: {source}")]
    Redis {
        addr: String,
        source: ::redis::RedisError,
    },
    #[error("queue `{name}` belongs to another scan: {what} is `{theirs}` there, `{ours}` here")]
    Mismatch {
        name: String,
        what: &'static str,
        theirs: String,
        ours: String,
    },
    #[error("queue `{name}`: the stream or its consumer group is gone (Redis restarted without persistence, or the keys were deleted)")]
    Vanished { name: String },
    #[error("queue `{name}` does not exist")]
    NoSuchQueue { name: String },
    #[error("malformed task in the queue: {0}")]
    BadTask(&'static str),
    #[error("unexpected reply from Redis to {0}")]
    BadReply(&'static str),
}

/// Where the queue lives: `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]/NAME`.
#[derive(Clone, PartialEq, Eq)]
pub struct QueueUrl {
    pub host: String,
    pub port: u16,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<String>,
    pub name: String,
}

impl fmt::Debug for QueueUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a password.
        write!(f, "QueueUrl({self})")
    }
}

impl fmt::Display for QueueUrl {
    /// The URL without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "redis://{host}:{}/{}/{}", self.port, self.db, self.name)
    }
}

impl QueueUrl {
    /// Parses the URL; a password missing from it is taken from `env_password` (the value of
    /// [`PASSWORD_ENV`], passed in so parsing stays a pure function).
    pub fn parse(url: &str, env_password: Option<String>) -> Result<QueueUrl, QueueError> {
        let bad = |why| QueueError::BadUrl {
            url: redact(url),
            why,
        };
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| bad("not redis://"))?;
        let (authority, path) = rest.split_once('/').ok_or_else(|| bad("no queue name"))?;
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (username, mut password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (
                    (!user.is_empty()).then(|| user.to_string()),
                    Some(pass.to_string()),
                ),
                None => return Err(bad("user without password (use :PASSWORD@)")),
            },
        };
        if password.is_none() {
            password = env_password.filter(|p| !p.is_empty());
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed [IPv6]"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(bad("junk after [IPv6]")),
            };
            (h.to_string(), port)
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => REDIS_PORT_DEFAULT,
            Some(p) => p.parse().map_err(|_| bad("bad port"))?,
        };
        let (db, name) = match path.split_once('/') {
            Some((db, name)) => (db.parse().map_err(|_| bad("bad database number"))?, name),
            None => (0, path),
        };
        if name.is_empty()
            || name.len() > NAME_BYTES_MAX
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(bad("the name must be 1-64 of A-Z a-z 0-9 . _ -"));
        }
        Ok(QueueUrl {
            host,
            port,
            db,
            username,
            password,
            name: name.to_string(),
        })
    }

    /// `HOST:PORT`, for messages.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `url` with anything between `//` and `@` hidden, for error messages.
fn redact(url: &str) -> String {
    match (url.find("//"), url.rfind('@')) {
        (Some(s), Some(a)) if a > s => format!("{}//***@{}", &url[..s], &url[a + 1..]),
        _ => url.to_string(),
    }
}

/// The keys of one queue. The `{NAME}` hash tag keeps them in one slot, as scripts touching
/// several keys require on a cluster.
#[derive(Debug, Clone)]
pub struct QueueKeys {
    pub name: String,
    /// The stream of tasks not yet acknowledged.
    pub stream: String,
    /// The scan's URL, options and creation time.
    pub meta: String,
    /// Tasks whose children are in the stream already (task id → consumer).
    pub listed: String,
    /// Counters: tasks found and done, entries, per consumer.
    pub stats: String,
}

/// The consumer group every participant reads through.
pub const GROUP: &str = "scan";

impl QueueKeys {
    pub fn new(name: &str) -> QueueKeys {
        let k = |what: &str| format!("nfs-walker:{{{name}}}:{what}");
        QueueKeys {
            name: name.to_string(),
            stream: k("tasks"),
            meta: k("meta"),
            listed: k("listed"),
            stats: k("stats"),
        }
    }
}

/// A stream entry id (`MS-SEQ`), kept as two numbers rather than a string per task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    pub ms: u64,
    pub seq: u64,
}

impl TaskId {
    pub fn parse(s: &[u8]) -> Result<TaskId, QueueError> {
        let s = std::str::from_utf8(s).map_err(|_| QueueError::BadTask("entry id"))?;
        let (ms, seq) = s.split_once('-').ok_or(QueueError::BadTask("entry id"))?;
        Ok(TaskId {
            ms: ms.parse().map_err(|_| QueueError::BadTask("entry id"))?,
            seq: seq.parse().map_err(|_| QueueError::BadTask("entry id"))?,
        })
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A directory to list travels between hosts as a stream entry's value: a tag, then
/// [`DirTask`]'s XDR form (the one a saved frontier uses; binary, because Redis values are
/// binary-safe and paths need not be UTF-8). A different layout gets a new tag, so a host of
/// another version reading the queue fails with "malformed task" instead of misreading it.
const TASK_TAG: u8 = 0xD2;

pub fn encode_task(t: &DirTask) -> Vec<u8> {
    let mut out = vec![TASK_TAG];
    t.encode(&mut XdrWriter::new(&mut out));
    out
}

pub fn decode_task(b: &[u8]) -> Result<DirTask, QueueError> {
    match b.split_first() {
        Some((&TASK_TAG, xdr)) => {
            let mut r = XdrReader::new(xdr);
            let t = DirTask::decode(&mut r).map_err(|_| QueueError::BadTask("task form"))?;
            r.finish()
                .map_err(|_| QueueError::BadTask("bytes after the task"))?;
            if t.path.is_empty() {
                return Err(QueueError::BadTask("empty path"));
            }
            Ok(t)
        }
        Some(_) => Err(QueueError::BadTask(
            "unknown layout (another nfs-walker version?)",
        )),
        None => Err(QueueError::BadTask("empty")),
    }
}

/// What a host holds of the scan at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalWork {
    /// Claimed and waiting in the local buffer.
    pub buffered: usize,
    /// Being listed by a scanning thread.
    pub running: usize,
    /// Listed, with the result not yet recorded in Redis (children to add).
    pub finishing: usize,
    /// Recorded in Redis, waiting for the output to be durable before the acknowledgement.
    pub awaiting_durable: usize,
}

impl LocalWork {
    pub fn held(&self) -> usize {
        self.buffered + self.running + self.finishing + self.awaiting_durable
    }
}

/// What a host does next, given its own work and the stream's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Something is buffered, being listed or to be recorded: go on.
    Work,
    /// Nothing to list here, but finished tasks wait for durability: make the output durable
    /// now (a checkpoint), or the scan could wait on this host forever.
    Checkpoint,
    /// Nothing here; tasks remain in the stream (unread, or pending on other hosts, which may
    /// add children or die and be taken over): claim, or wait and try again.
    Claim,
    /// Nothing here and the stream is empty: every task found was durably listed.
    Done,
}

/// The termination rule (see the module documentation for why `stream_len == 0` is exact).
pub fn decide(local: LocalWork, stream_len: u64) -> Next {
    if local.buffered + local.running + local.finishing > 0 {
        Next::Work
    } else if local.awaiting_durable > 0 {
        Next::Checkpoint
    } else if stream_len > 0 {
        Next::Claim
    } else {
        Next::Done
    }
}

/// Redis's reply to an owner-checked finish: whether the caller may acknowledge the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishOutcome {
    /// The children were added now.
    Added,
    /// The children were added before (by an earlier holder, or a retried call).
    AlreadyListed,
    /// The task is no longer this host's (taken over, or acknowledged by another holder):
    /// forget it; its entries written here are duplicates `merge` removes.
    NotMine,
}

impl FinishOutcome {
    pub fn may_ack(self) -> bool {
        !matches!(self, FinishOutcome::NotMine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let u = QueueUrl::parse("redis://:s3cret@filer-q:6380/2/scan-1", None).unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.db, u.name.as_str()),
            ("filer-q", 6380, 2, "scan-1")
        );
        assert_eq!(u.password.as_deref(), Some("s3cret"));
        assert_eq!(u.username, None);
        assert!(!format!("{u} {u:?}").contains("s3cret"));
        let u = QueueUrl::parse("redis://q/x", Some("envpw".into())).unwrap();
        assert_eq!(
            (u.port, u.db, u.password.as_deref()),
            (6379, 0, Some("envpw"))
        );
        let u = QueueUrl::parse("redis://bob:pw@[::1]:7000/x", Some("envpw".into())).unwrap();
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.username.as_deref(),
                u.password.as_deref()
            ),
            ("::1", 7000, Some("bob"), Some("pw"))
        );
        assert_eq!(u.addr(), "[::1]:7000");
        for bad in [
            "http://q/x",
            "redis://q",
            "redis://q/",
            "redis://q:port/x",
            "redis://q/zero/x",
            "redis://q/a b",
            "redis://:pw@/x",
        ] {
            let e = QueueUrl::parse(bad, None).unwrap_err().to_string();
            assert!(e.contains("bad queue URL"), "{bad}: {e}");
            assert!(!e.contains(":pw@"), "{e}");
        }
    }

    #[test]
    fn tasks_round_trip() {
        let t = DirTask {
            fh: crate::rpc::nfs3::FileHandle::from_bytes(&[7; 64]).unwrap(),
            path: b"a/\xff\xfe/b".to_vec(),
            depth: 3,
            fsid: u64::MAX - 1,
        };
        let enc = encode_task(&t);
        assert_eq!(decode_task(&enc).unwrap(), t);
        for cut in 0..enc.len() {
            assert!(decode_task(&enc[..cut]).is_err(), "cut at {cut}");
        }
        let mut other = enc.clone();
        other[0] = 0xD1;
        assert!(decode_task(&other).is_err(), "the layout before");
        let mut trailing = enc;
        trailing.push(0);
        assert!(decode_task(&trailing).is_err());
        // NFSv4 handles are up to 128 bytes.
        let v4 = DirTask {
            fh: crate::rpc::nfs3::FileHandle::from_bytes(&[4; 128]).unwrap(),
            ..t
        };
        let mut enc = encode_task(&v4);
        assert_eq!(decode_task(&enc).unwrap(), v4);
        enc[4] = 129; // the handle's length, past NFS4_FHSIZE
        assert!(decode_task(&enc).is_err());
    }

    /// A task written before the form's handle grew to NFSv4's 128 bytes (`fh<64>`) reads the
    /// same: only the longest handle changed, not the layout.
    #[test]
    fn tasks_of_the_layout_before_v4_handles_decode() {
        let mut enc = vec![TASK_TAG];
        XdrWriter::new(&mut enc)
            .opaque(&[1, 2, 3, 4, 5, 6, 7, 8])
            .opaque(b"d/e")
            .u32(2)
            .u64(77);
        let t = decode_task(&enc).unwrap();
        assert_eq!(t.fh.as_bytes(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!((t.path.as_slice(), t.depth, t.fsid), (&b"d/e"[..], 2, 77));
    }

    #[test]
    fn task_ids_round_trip() {
        let id = TaskId::parse(b"1732890000123-17").unwrap();
        assert_eq!(id.to_string(), "1732890000123-17");
        assert!(TaskId::parse(b"12").is_err());
        assert!(TaskId::parse(b"a-1").is_err());
    }

    #[test]
    fn termination_rule() {
        let idle = LocalWork::default();
        assert_eq!(decide(idle, 0), Next::Done);
        // Another host's pending task counts: it may still add children.
        assert_eq!(decide(idle, 1), Next::Claim);
        for busy in [
            LocalWork {
                buffered: 1,
                ..idle
            },
            LocalWork { running: 1, ..idle },
            LocalWork {
                finishing: 1,
                ..idle
            },
        ] {
            // Whatever the stream says (its length may lag this host's own adds).
            assert_eq!(decide(busy, 0), Next::Work);
            assert_eq!(decide(busy, 5), Next::Work);
        }
        let waiting = LocalWork {
            awaiting_durable: 3,
            ..idle
        };
        // Its own un-acked tasks keep the stream non-empty: it must make them durable.
        assert_eq!(decide(waiting, 3), Next::Checkpoint);
        assert_eq!(decide(waiting, 0), Next::Checkpoint);
    }
}
