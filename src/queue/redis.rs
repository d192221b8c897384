//! The queue's operations on Redis, over one synchronous connection (the `redis` crate's sync
//! API; no async runtime). Every operation that changes more than one key is a Lua script, so
//! it is atomic (and written to the AOF as one unit) and can be retried after a lost
//! connection without doing its work twice.

use super::{
    decode_task, encode_task, DirTask, FinishOutcome, QueueError, QueueKeys, QueueUrl, TaskId,
    GROUP,
};
use ::redis::{Client, Connection, ConnectionAddr, ConnectionInfo, RedisConnectionInfo, Value};
use std::time::Duration;

/// Creates the queue if it does not exist: the meta hash, the stream with its group, the root
/// task, in one step. Returns 1 when it created the queue, 0 when it existed.
/// KEYS: meta, stream, stats. ARGV: url, options, created_ms, root task, group, layout.
pub const CREATE_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'url', ARGV[1], 'options', ARGV[2], 'created_ms', ARGV[3], 'layout', ARGV[6])
redis.call('XGROUP', 'CREATE', KEYS[2], ARGV[5], '0', 'MKSTREAM')
redis.call('XADD', KEYS[2], '*', 't', ARGV[4])
redis.call('HSET', KEYS[3], 'tasks_found', 1, 'tasks_done', 0, 'entries', 0)
return 1
";

/// Records listed tasks: adds each one's children, only while the task is pending to the
/// caller and only once per task (the `listed` marker). Returns, per task, 1 (added), 0 (added
/// before) or -1 (not the caller's: taken over or acknowledged). One call records many tasks:
/// the script's fixed cost is paid once per batch, not per directory.
///
/// A record of kind 0 is an *offer*: directories of a task's subtree that the caller hands to
/// other hosts while it goes on listing the rest of the subtree itself (see
/// [`super::source`]). They are added while the task is pending to the caller, with no marker:
/// the task stays pending until its whole subtree is durable, and its final record (kind 1)
/// comes after every offer of it.
/// KEYS: stream, listed, stats. ARGV: group, consumer, then per record: id, entries, kind (1
/// listed, 0 offer), number of children, children...
pub const FINISH_SCRIPT: &str = r"
local out = {}
local found, entries = 0, 0
local i = 3
while i <= #ARGV do
  local id, n, kind, k = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], tonumber(ARGV[i + 3])
  local r = 1
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if #p == 0 or p[1][2] ~= ARGV[2] then
    r = -1
  elseif kind == '1' and redis.call('HSETNX', KEYS[2], id, ARGV[2]) == 0 then
    r = 0
  else
    for j = i + 4, i + 3 + k do redis.call('XADD', KEYS[1], '*', 't', ARGV[j]) end
    found = found + k
    entries = entries + n
  end
  out[#out + 1] = r
  i = i + 4 + k
end
if found > 0 then redis.call('HINCRBY', KEYS[3], 'tasks_found', found) end
if entries > 0 then
  redis.call('HINCRBY', KEYS[3], 'entries', entries)
  redis.call('HINCRBY', KEYS[3], 'entries:' .. ARGV[2], entries)
end
return out
";

/// Tasks recorded, and directories added, per script call at most (a call runs atomically:
/// Redis serves no one else meanwhile, so calls stay short).
const FINISH_TASKS_PER_CALL: usize = 128;
const FINISH_DIRS_PER_CALL: usize = 1024;

/// `done` cut into the records of one script call each (a record with more directories than
/// [`FINISH_DIRS_PER_CALL`] goes alone).
fn finish_calls(done: &[FinishRecord]) -> impl Iterator<Item = &[FinishRecord]> {
    let mut rest = done;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut n = 0;
        let mut dirs = 0;
        while n < rest.len() && n < FINISH_TASKS_PER_CALL {
            dirs += rest[n].children.len();
            if n > 0 && dirs > FINISH_DIRS_PER_CALL {
                break;
            }
            n += 1;
        }
        let (call, after) = rest.split_at(n);
        rest = after;
        Some(call)
    })
}

/// Acknowledges durable tasks: XACK, XDEL and the marker, together. Counts only the tasks this
/// call acknowledged, so a retried call counts nothing twice. Returns that count.
/// KEYS: stream, listed, stats. ARGV: group, consumer, ids...
pub const ACK_SCRIPT: &str = r"
local n = 0
for i = 3, #ARGV do
  n = n + redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
  redis.call('HDEL', KEYS[2], ARGV[i])
end
redis.call('HINCRBY', KEYS[3], 'tasks_done', n)
redis.call('HINCRBY', KEYS[3], 'done:' .. ARGV[2], n)
return n
";

/// Resets the idle time of the caller's own pending tasks (a task taken over by another host
/// is left alone, where a plain XCLAIM would take it back). Returns the ids no longer the
/// caller's.
/// KEYS: stream. ARGV: group, consumer, ids...
pub const TOUCH_SCRIPT: &str = r"
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
";

/// The version of the queue's keys and scripts: hosts of another layout are refused (2: a
/// task is a subtree, offered with kind-0 records of the finish script).
pub const QUEUE_LAYOUT: &str = "2";

/// How long one Redis call may take before the connection counts as lost.
pub const REDIS_IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The scan a queue belongs to: a participant whose identity differs is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanIdentity {
    pub url: String,
    /// The options that change what a scan lists or writes, canonical (sorted JSON).
    pub options: String,
}

/// Whether this participant created the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    Created,
    Joined,
}

/// Counters and pending state of a queue, for `queue status` and the end-of-scan share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Entries in the stream: tasks found and not yet acknowledged.
    pub outstanding: u64,
    /// Of those, tasks delivered to a consumer and not yet acknowledged.
    pub pending: u64,
    pub tasks_found: u64,
    pub tasks_done: u64,
    pub entries: u64,
    pub consumers: Vec<ConsumerStats>,
    pub url: String,
    pub created_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    pub name: String,
    pub pending: u64,
    /// Milliseconds since the consumer last read or touched a task.
    pub idle_ms: u64,
    pub tasks_done: u64,
    /// Entries of the tasks this consumer recorded first.
    pub entries: u64,
    /// Entries this consumer wrote to its output (duplicates of taken-over tasks included).
    pub written: u64,
}

/// A task claimed from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedTask {
    pub id: TaskId,
    pub task: DirTask,
}

/// What a host tells the queue about a task it holds: its listing is done (`listed`: the
/// children are added once, and the task may then be acknowledged), or it offers some
/// directories of the task's subtree to other hosts while it goes on (`listed` false).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishRecord {
    pub id: TaskId,
    pub children: Vec<DirTask>,
    pub entries: u64,
    pub listed: bool,
}

/// One connection to the queue.
pub struct RedisQueue {
    url: QueueUrl,
    keys: QueueKeys,
    consumer: String,
    conn: Connection,
    sha_create: String,
    sha_finish: String,
    sha_ack: String,
    sha_touch: String,
}

fn connection_info(url: &QueueUrl) -> ConnectionInfo {
    ConnectionInfo {
        addr: ConnectionAddr::Tcp(url.host.clone(), url.port),
        redis: RedisConnectionInfo {
            db: url.db,
            username: url.username.clone(),
            password: url.password.clone(),
            ..RedisConnectionInfo::default()
        },
    }
}

fn is_auth_error(e: &::redis::RedisError) -> bool {
    e.kind() == ::redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
}

/// Whether an error means the connection (or the server) went away, so retrying on a new
/// connection may succeed.
pub fn is_connection_error(e: &QueueError) -> bool {
    match e {
        QueueError::Unreachable { .. } => true,
        QueueError::Redis { source, .. } => {
            source.is_io_error()
                || source.is_connection_dropped()
                || source.is_connection_refusal()
                || source.is_timeout()
                // Replaying its AOF after a restart, Redis answers LOADING for a while.
                || source.code() == Some("LOADING")
        }
        _ => false,
    }
}

impl RedisQueue {
    /// Connects (and authenticates) and loads the scripts. `consumer` is this host's stable
    /// name within the group.
    pub fn connect(url: &QueueUrl, consumer: &str) -> Result<RedisQueue, QueueError> {
        let addr = url.addr();
        let unreachable = |source: ::redis::RedisError| {
            if is_auth_error(&source) {
                QueueError::Auth { addr: addr.clone() }
            } else {
                QueueError::Unreachable {
                    addr: addr.clone(),
                    source,
                }
            }
        };
        let client = Client::open(connection_info(url)).map_err(&unreachable)?;
        let mut conn = client
            .get_connection_with_timeout(REDIS_IO_TIMEOUT)
            .map_err(&unreachable)?;
        conn.set_read_timeout(Some(REDIS_IO_TIMEOUT))
            .map_err(&unreachable)?;
        conn.set_write_timeout(Some(REDIS_IO_TIMEOUT))
            .map_err(&unreachable)?;
        // A server without a password accepts any connection; the first command tells.
        let load = |conn: &mut Connection, script: &str| -> Result<String, QueueError> {
            ::redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(script)
                .query(conn)
                .map_err(&unreachable)
        };
        let sha_create = load(&mut conn, CREATE_SCRIPT)?;
        let sha_finish = load(&mut conn, FINISH_SCRIPT)?;
        let sha_ack = load(&mut conn, ACK_SCRIPT)?;
        let sha_touch = load(&mut conn, TOUCH_SCRIPT)?;
        Ok(RedisQueue {
            url: url.clone(),
            keys: QueueKeys::new(&url.name),
            consumer: consumer.to_string(),
            conn,
            sha_create,
            sha_finish,
            sha_ack,
            sha_touch,
        })
    }

    pub fn url(&self) -> &QueueUrl {
        &self.url
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    fn err(&self, source: ::redis::RedisError) -> QueueError {
        if is_auth_error(&source) {
            return QueueError::Auth {
                addr: self.url.addr(),
            };
        }
        // A group or stream that is gone: every XREADGROUP/XPENDING says NOGROUP.
        if source.code() == Some("NOGROUP") {
            return QueueError::Vanished {
                name: self.keys.name.clone(),
            };
        }
        QueueError::Redis {
            addr: self.url.addr(),
            source,
        }
    }

    /// Creates the queue with `root` as its first task, or joins it; refuses a queue of another
    /// scan.
    pub fn join(&mut self, scan: &ScanIdentity, root: &DirTask) -> Result<Joined, QueueError> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let created: i64 = ::redis::cmd("EVALSHA")
            .arg(&self.sha_create)
            .arg(3)
            .arg(&self.keys.meta)
            .arg(&self.keys.stream)
            .arg(&self.keys.stats)
            .arg(&scan.url)
            .arg(&scan.options)
            .arg(now_ms)
            .arg(encode_task(root))
            .arg(GROUP)
            .arg(QUEUE_LAYOUT)
            .query(&mut self.conn)
            .map_err(|e| self.err(e))?;
        if created == 1 {
            return Ok(Joined::Created);
        }
        let (url, options, layout): (Option<String>, Option<String>, Option<String>) =
            ::redis::cmd("HMGET")
                .arg(&self.keys.meta)
                .arg("url")
                .arg("options")
                .arg("layout")
                .query(&mut self.conn)
                .map_err(|e| self.err(e))?;
        let mismatch = |what, theirs: Option<String>, ours: &str| QueueError::Mismatch {
            name: self.keys.name.clone(),
            what,
            theirs: theirs.unwrap_or_default(),
            ours: ours.to_string(),
        };
        if url.as_deref() != Some(scan.url.as_str()) {
            return Err(mismatch("the URL", url, &scan.url));
        }
        if options.as_deref() != Some(scan.options.as_str()) {
            return Err(mismatch("the options", options, &scan.options));
        }
        if layout.as_deref() != Some(QUEUE_LAYOUT) {
            return Err(mismatch(
                "the queue layout (another nfs-walker version)",
                layout,
                QUEUE_LAYOUT,
            ));
        }
        // The stream must still be there (a restart without persistence loses it).
        let exists: i64 = ::redis::cmd("EXISTS")
            .arg(&self.keys.stream)
            .query(&mut self.conn)
            .map_err(|e| self.err(e))?;
        if exists == 0 {
            return Err(QueueError::Vanished {
                name: self.keys.name.clone(),
            });
        }
        Ok(Joined::Joined)
    }

    /// Up to `count` tasks: with `after` = `">"`, tasks never delivered; with an entry id, the
    /// tasks pending to this consumer after that id (a host restarted with the same name takes
    /// its own tasks back first, paging from "0").
    pub fn read(&mut self, count: usize, after: &str) -> Result<Vec<ClaimedTask>, QueueError> {
        let reply: Value = ::redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(&self.keys.stream)
            .arg(after)
            .query(&mut self.conn)
            .map_err(|e| self.err(e))?;
        // [[stream, [[id, [field, value]]...]]] or nil.
        let streams = match reply {
            Value::Nil => return Ok(Vec::new()),
            Value::Array(s) => s,
            Value::Map(m) => m
                .into_iter()
                .map(|(k, v)| Value::Array(vec![k, v]))
                .collect(),
            _ => return Err(QueueError::BadReply("XREADGROUP")),
        };
        let mut out = Vec::new();
        for s in streams {
            let Value::Array(mut pair) = s else {
                return Err(QueueError::BadReply("XREADGROUP"));
            };
            if pair.len() != 2 {
                return Err(QueueError::BadReply("XREADGROUP"));
            }
            if let Value::Array(entries) = pair.pop().expect("two") {
                parse_entries(entries, &mut out)?;
            }
        }
        Ok(out)
    }

    /// Takes over up to `count` tasks idle for at least `min_idle` on any consumer (a host that
    /// stopped), scanning the pending list from `cursor`. Returns the tasks and the cursor to
    /// continue from ("0-0" when the scan of the pending list is complete).
    pub fn autoclaim(
        &mut self,
        min_idle: Duration,
        cursor: &str,
        count: usize,
    ) -> Result<(Vec<ClaimedTask>, String), QueueError> {
        let reply: Value = ::redis::cmd("XAUTOCLAIM")
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(min_idle.as_millis() as u64)
            .arg(cursor)
            .arg("COUNT")
            .arg(count)
            .query(&mut self.conn)
            .map_err(|e| self.err(e))?;
        let Value::Array(mut parts) = reply else {
            return Err(QueueError::BadReply("XAUTOCLAIM"));
        };
        if parts.len() < 2 {
            return Err(QueueError::BadReply("XAUTOCLAIM"));
        }
        let next = match &parts[0] {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            _ => return Err(QueueError::BadReply("XAUTOCLAIM")),
        };
        let mut out = Vec::new();
        if let Value::Array(entries) = parts.swap_remove(1) {
            parse_entries(entries, &mut out)?;
        }
        Ok((out, next))
    }

    /// Records listed tasks (their children and entry counts), pipelined: one round trip for
    /// the whole batch.
    pub fn finish(&mut self, done: &[FinishRecord]) -> Result<Vec<FinishOutcome>, QueueError> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for chunk in finish_calls(done) {
            let c = pipe
                .cmd("EVALSHA")
                .arg(&self.sha_finish)
                .arg(3)
                .arg(&self.keys.stream)
                .arg(&self.keys.listed)
                .arg(&self.keys.stats)
                .arg(GROUP)
                .arg(&self.consumer);
            for r in chunk {
                c.arg(r.id.to_string())
                    .arg(r.entries)
                    .arg(if r.listed { "1" } else { "0" })
                    .arg(r.children.len());
                for child in &r.children {
                    c.arg(encode_task(child));
                }
            }
        }
        let replies: Vec<Vec<i64>> = pipe.query(&mut self.conn).map_err(|e| self.err(e))?;
        let outcomes: Vec<FinishOutcome> = replies
            .into_iter()
            .flatten()
            .map(|r| match r {
                1 => FinishOutcome::Added,
                0 => FinishOutcome::AlreadyListed,
                _ => FinishOutcome::NotMine,
            })
            .collect();
        if outcomes.len() != done.len() {
            return Err(QueueError::BadReply("the finish script"));
        }
        Ok(outcomes)
    }

    /// Acknowledges (and deletes) tasks whose entries are durable in this host's output.
    /// Returns how many were acknowledged now.
    pub fn ack(&mut self, ids: &[TaskId]) -> Result<u64, QueueError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut c = ::redis::cmd("EVALSHA");
        c.arg(&self.sha_ack)
            .arg(3)
            .arg(&self.keys.stream)
            .arg(&self.keys.listed)
            .arg(&self.keys.stats)
            .arg(GROUP)
            .arg(&self.consumer);
        for id in ids {
            c.arg(id.to_string());
        }
        c.query(&mut self.conn).map_err(|e| self.err(e))
    }

    /// Keeps this host's own tasks from looking idle; returns those that are no longer its own.
    pub fn touch(&mut self, ids: &[TaskId]) -> Result<Vec<TaskId>, QueueError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = ::redis::cmd("EVALSHA");
        c.arg(&self.sha_touch)
            .arg(1)
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg(&self.consumer);
        for id in ids {
            c.arg(id.to_string());
        }
        let lost: Vec<Vec<u8>> = c.query(&mut self.conn).map_err(|e| self.err(e))?;
        lost.iter().map(|b| TaskId::parse(b)).collect()
    }

    /// Publishes how many entries this host wrote (for `queue status`).
    pub fn report_written(&mut self, entries: u64) -> Result<(), QueueError> {
        ::redis::cmd("HSET")
            .arg(&self.keys.stats)
            .arg(format!("written:{}", self.consumer))
            .arg(entries)
            .query::<()>(&mut self.conn)
            .map_err(|e| self.err(e))
    }

    /// Tasks waiting for a host: in the stream and delivered to no one (the stream's length
    /// less its pending entries, in one round trip). Hosts offer work when this runs low.
    pub fn waiting(&mut self) -> Result<u64, QueueError> {
        let (len, pending): (u64, Value) = ::redis::pipe()
            .cmd("XLEN")
            .arg(&self.keys.stream)
            .cmd("XPENDING")
            .arg(&self.keys.stream)
            .arg(GROUP)
            .query(&mut self.conn)
            .map_err(|e| self.err(e))?;
        // The summary form: [count, smallest id, greatest id, [[consumer, count]...]].
        let pending = match pending {
            Value::Array(v) => match v.first() {
                Some(Value::Int(n)) => *n as u64,
                _ => return Err(QueueError::BadReply("XPENDING")),
            },
            _ => return Err(QueueError::BadReply("XPENDING")),
        };
        Ok(len.saturating_sub(pending))
    }

    /// Tasks found and not yet acknowledged, anywhere (the termination test).
    pub fn outstanding(&mut self) -> Result<u64, QueueError> {
        ::redis::cmd("XLEN")
            .arg(&self.keys.stream)
            .query(&mut self.conn)
            .map_err(|e| self.err(e))
    }

    /// The queue's counters and its consumers.
    pub fn stats(&mut self) -> Result<QueueStats, QueueError> {
        let meta: Vec<(String, String)> = ::redis::cmd("HGETALL")
            .arg(&self.keys.meta)
            .query(&mut self.conn)
            .map_err(|e| self.err(e))?;
        if meta.is_empty() {
            return Err(QueueError::NoSuchQueue {
                name: self.keys.name.clone(),
            });
        }
        let counters: Vec<(String, u64)> = ::redis::cmd("HGETALL")
            .arg(&self.keys.stats)
            .query(&mut self.conn)
            .map_err(|e| self.err(e))?;
        let counter = |k: &str| {
            counters
                .iter()
                .find(|(name, _)| name == k)
                .map_or(0, |(_, v)| *v)
        };
        let meta_of = |k: &str| {
            meta.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let outstanding = self.outstanding()?;
        let consumers_reply: Value = ::redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&self.keys.stream)
            .arg(GROUP)
            .query(&mut self.conn)
            .map_err(|e| self.err(e))?;
        let mut consumers = Vec::new();
        let mut pending = 0;
        if let Value::Array(list) = consumers_reply {
            for c in list {
                let fields = fields_of(c);
                let name = fields
                    .iter()
                    .find(|(k, _)| k == "name")
                    .and_then(|(_, v)| value_string(v))
                    .unwrap_or_default();
                let num = |key: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k == key)
                        .and_then(|(_, v)| value_u64(v))
                        .unwrap_or(0)
                };
                let c = ConsumerStats {
                    pending: num("pending"),
                    // Redis 7.2 splits idle into idle/inactive; 7.0 has idle only.
                    idle_ms: num("idle"),
                    tasks_done: counter(&format!("done:{name}")),
                    entries: counter(&format!("entries:{name}")),
                    written: counter(&format!("written:{name}")),
                    name,
                };
                pending += c.pending;
                consumers.push(c);
            }
        }
        Ok(QueueStats {
            outstanding,
            pending,
            tasks_found: counter("tasks_found"),
            tasks_done: counter("tasks_done"),
            entries: counter("entries"),
            consumers,
            url: meta_of("url"),
            created_ms: meta_of("created_ms").parse().unwrap_or(0),
        })
    }

    /// Bytes Redis attributes to the stream key (MEMORY USAGE, all entries sampled).
    pub fn stream_memory_bytes(&mut self) -> Result<u64, QueueError> {
        let v: Option<u64> = ::redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&self.keys.stream)
            .arg("SAMPLES")
            .arg(0)
            .query(&mut self.conn)
            .map_err(|e| self.err(e))?;
        Ok(v.unwrap_or(0))
    }
}

fn parse_entries(entries: Vec<Value>, out: &mut Vec<ClaimedTask>) -> Result<(), QueueError> {
    for e in entries {
        let Value::Array(mut idf) = e else {
            return Err(QueueError::BadReply("stream entry"));
        };
        if idf.len() != 2 {
            return Err(QueueError::BadReply("stream entry"));
        }
        let fields = idf.pop().expect("two");
        let id = match idf.pop().expect("two") {
            Value::BulkString(b) => TaskId::parse(&b)?,
            Value::SimpleString(s) => TaskId::parse(s.as_bytes())?,
            _ => return Err(QueueError::BadReply("stream entry id")),
        };
        // A deleted entry still pending shows as nil fields: nothing to list.
        let Value::Array(fields) = fields else {
            continue;
        };
        let value = match fields.get(1) {
            Some(Value::BulkString(b)) => b,
            _ => return Err(QueueError::BadReply("stream entry fields")),
        };
        out.push(ClaimedTask {
            id,
            task: decode_task(value)?,
        });
    }
    Ok(())
}

fn value_string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn value_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => value_string(other)?.parse().ok(),
    }
}

/// A flat `[k, v, k, v…]` array (RESP2) or a map (RESP3) as pairs.
fn fields_of(v: Value) -> Vec<(String, Value)> {
    match v {
        Value::Array(flat) => {
            let mut out = Vec::new();
            let mut it = flat.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((value_string(&k).unwrap_or_default(), v));
            }
            out
        }
        Value::Map(m) => m
            .into_iter()
            .map(|(k, v)| (value_string(&k).unwrap_or_default(), v))
            .collect(),
        _ => Vec::new(),
    }
}

/// A consumer name that is the same each time the same command runs on the same host:
/// the host name and a hash of the output's absolute path, so two scans of one host writing
/// different parts are two consumers, and a restarted one is the same.
pub fn consumer_name(host: &str, output: &[u8]) -> String {
    // FNV-1a: stable across versions and platforms, unlike the std hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in output {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{host}:{:08x}", h as u32 ^ (h >> 32) as u32)
}

// The handle limit is part of the encoding; keep the two in step.

#[cfg(test)]
mod tests {
    use super::{consumer_name, finish_calls, DirTask, FinishRecord, TaskId};

    #[test]
    fn finish_calls_bound_records_and_directories() {
        let rec = |dirs: usize| FinishRecord {
            id: TaskId { ms: 1, seq: 0 },
            children: vec![
                DirTask {
                    fh: crate::rpc::nfs3::FileHandle::from_bytes(&[1]).unwrap(),
                    path: b"d".to_vec(),
                    depth: 1,
                    fsid: 1
                };
                dirs
            ],
            entries: 0,
            listed: dirs == 0,
        };
        let sizes = |done: &[FinishRecord]| -> Vec<usize> {
            finish_calls(done).map(<[FinishRecord]>::len).collect()
        };
        assert_eq!(sizes(&[]), Vec::<usize>::new());
        // 300 listings without children: 128 records a call.
        assert_eq!(sizes(&vec![rec(0); 300]), [128, 128, 44]);
        // Offers of 600 directories: one a call (two would add 1,200); one of 5,000 alone.
        assert_eq!(
            sizes(&[rec(600), rec(600), rec(5000), rec(0)]),
            [1, 1, 1, 1]
        );
        assert_eq!(sizes(&[rec(5000), rec(0), rec(0)]), [1, 2]);
        assert_eq!(sizes(&[rec(400), rec(600), rec(30)]), [2, 1]);
    }

    #[test]
    fn consumer_names_are_stable_per_output() {
        let a = consumer_name("h1", b"/data/part-h1.db");
        assert_eq!(a, consumer_name("h1", b"/data/part-h1.db"));
        assert_ne!(a, consumer_name("h1", b"/data/part-h1b.db"));
        assert_ne!(a, consumer_name("h2", b"/data/part-h1.db"));
        assert!(a.starts_with("h1:"));
    }
}
