//! `scan URL --queue redis://…/NAME`: one host of a multi-host scan; `queue status`: where a
//! shared scan stands.

use super::bench::parse_duration;
use super::scan::ScanArgs;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use nfs_walker::output::sqlite::SqliteWriter;
use nfs_walker::output::synced::{DurabilityListener, SyncedTextWriter};
use nfs_walker::output::{Batcher, Format};
use nfs_walker::path_error::PathError;
use nfs_walker::queue::redis::{Joined, RedisQueue, ScanIdentity};
use nfs_walker::queue::source::{local_consumer_name, QueueOptions, QueueSource, SourceState};
use nfs_walker::queue::tasks::RedisTasks;
use nfs_walker::queue::{QueueUrl, PASSWORD_ENV};
use nfs_walker::record::{EntryContent, EntryRef};
use nfs_walker::scan::EntrySink;
use nfs_walker::sched::TaskId;
use nfs_walker::walker::DirTask;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The scan options of a multi-host scan.
#[derive(Args, Clone, Debug, Default)]
pub struct QueueScanArgs {
    /// Share the scan with other hosts through a Redis stream:
    /// redis://[:PASSWORD@]HOST[:PORT][/DB]/NAME (password also from $NFS_WALKER_REDIS_PASSWORD).
    /// Every host runs the same command with its own -o
    #[arg(long, value_name = "URL")]
    pub queue: Option<String>,
    /// With --queue: take over tasks pending this long on a host that stopped (e.g. 60s, 5m)
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub claim_idle: Duration,
}

/// The options that change what a scan lists or writes: hosts of one scan must agree on them
/// (threads, connections and the output format may differ per host). The NFS version is
/// there as spoken, not as written: `--nfs-version 4` leaves the URL as a v3 host's, and the
/// tasks hold handles of the version that found them.
fn scan_identity(args: &ScanArgs) -> Result<ScanIdentity> {
    let url = nfs_walker::client::NfsUrl::parse(&args.url)?;
    let c = &args.content;
    Ok(ScanIdentity {
        url: args.url.clone(),
        options: serde_json::json!({
            "checksum": c.checksum.map(|a| a.to_string()),
            "checksum_max_size": c.checksum_max_size,
            "dirs_only": args.dirs_only,
            "excludes": args.excludes,
            "file_type": c.file_type,
            "max_depth": args.max_depth,
            "mode": format!("{:?}", args.mode).to_lowercase(),
            "nfs_version": args.client.options().version_for(&url),
            "one_fs": args.one_fs,
            "readlink": args.readlink,
        })
        .to_string(),
    })
}

/// The queue's task source once the scan has mounted; the writer's checkpoints reach it
/// through this slot (the writer starts before the mount).
#[derive(Clone, Default)]
struct TasksSlot(Arc<OnceLock<Arc<RedisTasks>>>);

impl DurabilityListener for TasksSlot {
    fn durable(&mut self, ids: &[u64]) {
        if let Some(t) = self.0.get() {
            let ids: Vec<TaskId> = ids.iter().map(|&i| TaskId(i)).collect();
            nfs_walker::sched::TaskSource::durable(t.as_ref(), &ids);
        }
    }
    fn wants_checkpoint(&self) -> bool {
        self.0.get().is_some_and(|t| t.source().wants_checkpoint())
    }
}

/// What `scan_into` needs to run on the queue instead of local deques.
pub struct QueueSetup {
    url: QueueUrl,
    consumer: String,
    opts: QueueOptions,
    slot: TasksSlot,
}

impl QueueSetup {
    /// Joins the queue (seeding `root` if this host is the first) and returns the source.
    pub fn start(&self, args: &ScanArgs, root: &DirTask) -> Result<Arc<RedisTasks>> {
        let source = QueueSource::start(
            &self.url,
            &self.consumer,
            &scan_identity(args)?,
            root,
            self.opts.clone(),
        )?;
        if !args.quiet {
            eprintln!(
                "nfs-walker: queue {}: {} as {}",
                self.url,
                match source.joined() {
                    Joined::Created => "created, root seeded",
                    Joined::Joined => "joined",
                },
                self.consumer
            );
        }
        let tasks = Arc::new(RedisTasks::new(source));
        let _ = self.slot.0.set(tasks.clone());
        Ok(tasks)
    }

    /// After the engine stopped: the queue's verdict and this host's share.
    pub fn finish(&self, tasks: &RedisTasks, quiet: bool) -> Result<bool> {
        let state = tasks.source().state();
        let share = tasks.source().share();
        if let SourceState::Failed(m) = &state {
            bail!("queue {}: {m}", self.url);
        }
        if !quiet {
            eprintln!(
                "nfs-walker: queue {}: this host acknowledged {} tasks ({} taken over from stopped hosts, {} lost to others){}",
                self.url,
                share.tasks_done,
                share.tasks_claimed_over,
                share.tasks_lost,
                if state == SourceState::Done {
                    "; nothing is queued or pending anywhere: the scan is complete"
                } else {
                    "; stopped before the scan was complete (run the same command to rejoin)"
                }
            );
        }
        Ok(state == SourceState::Done)
    }
}

/// The batcher of a queue scan: it counts the entries written, for `queue status`. (A thread
/// that goes idle sends what it holds, [`EntrySink::idle`], so no finished task waits in a
/// half-full batch for its acknowledgement, which the scan's end waits for.)
pub struct QueueSink {
    out: Batcher,
    written: Arc<AtomicU64>,
    unreported: u64,
}

impl QueueSink {
    pub fn new(out: Batcher, written: Arc<AtomicU64>) -> Self {
        QueueSink {
            out,
            written,
            unreported: 0,
        }
    }
}

impl EntrySink for QueueSink {
    #[inline]
    fn entry(&mut self, e: &EntryRef<'_>) {
        self.unreported += 1;
        self.out.entry(e);
    }
    fn entry_with_content(&mut self, e: &EntryRef<'_>, content: &EntryContent<'_>) {
        self.unreported += 1;
        self.out.entry_with_content(e, content);
    }
    fn error(&mut self, e: PathError) {
        self.out.error(e);
    }
    fn task_finished(&mut self, id: TaskId) {
        self.written.fetch_add(self.unreported, Ordering::Relaxed);
        self.unreported = 0;
        self.out.task_finished(id.0);
    }
    fn idle(&mut self) {
        self.out.flush();
    }
    fn flush(&mut self) {
        self.out.flush();
    }
}

/// `part.ndjson` → `part.1.ndjson` (the first free number): where an earlier run's part goes,
/// since the tasks it acknowledged are listed nowhere else.
fn keep_aside(path: &Path) -> Result<Option<PathBuf>> {
    if !path.exists() {
        return Ok(None);
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    for n in 1..10_000 {
        let aside = path.with_file_name(format!("{stem}.{n}{ext}"));
        if !aside.exists() {
            std::fs::rename(path, &aside)
                .with_context(|| format!("keeping {} aside", path.display()))?;
            return Ok(Some(aside));
        }
    }
    bail!("{}: too many earlier parts beside it", path.display())
}

/// `scan URL --queue …`: this host's share of a multi-host scan into its own part.
pub fn run_scan(args: &ScanArgs, queue_url: &str) -> Result<i32> {
    let q = &args.queue;
    let url = QueueUrl::parse(queue_url, std::env::var(PASSWORD_ENV).ok())?;
    let format = super::scan::output_format(args)?;
    let Some(path) = &args.output else {
        bail!(
            "--queue needs an output file of this host's own (-o part-HOST.ndjson or part-HOST.db)"
        );
    };
    // --checkpoint-secs (the scan's own): the part is made durable (flush + fdatasync) at
    // least this often, and tasks are acknowledged to the queue only then.
    if !(0.1..=3600.0).contains(&args.checkpoint_secs) {
        bail!("--checkpoint-secs must be within [0.1, 3600] with --queue");
    }
    if args.max_depth == Some(0) {
        bail!("--max-depth 0 lists nothing to share: run it without --queue");
    }
    let consumer = local_consumer_name(path);
    if let Some(aside) = keep_aside(path)? {
        eprintln!(
            "nfs-walker: {} exists (an earlier run of this host): kept as {} for merge",
            path.display(),
            aside.display()
        );
    }
    let setup = QueueSetup {
        url,
        consumer,
        opts: QueueOptions {
            claim_idle: q.claim_idle.max(Duration::from_millis(100)),
            verbose: true,
            ..QueueOptions::default()
        },
        slot: TasksSlot::default(),
    };
    let stop = super::scan::stop_on_signals()?;
    let checkpoint = Duration::from_secs_f64(args.checkpoint_secs);
    if format == Format::SqliteRows {
        // A database part: tasks are acknowledged once a commit holds their rows.
        let info = super::scan::scan_info(args)?;
        let (writer, tx) = SqliteWriter::create(
            path,
            &info,
            checkpoint,
            stop.clone(),
            Some(Box::new(setup.slot.clone())),
        )
        .with_context(|| format!("creating {}", path.display()))?;
        let result = super::scan::scan_into(args, format, tx, stop, None, Some(&setup), None);
        let end = super::scan::scan_end(&result);
        let db = writer
            .finish(&end)
            .with_context(|| format!("writing {}", path.display()));
        let outcome = result?;
        db?;
        return Ok(super::scan::exit_code(&outcome));
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let header = match format {
        Format::Csv => nfs_walker::record::csv_header_content(args.content.fields()),
        _ => String::new(),
    };
    let (writer, tx) = SyncedTextWriter::start(
        header.as_bytes(),
        file,
        checkpoint,
        setup.slot.clone(),
        stop.clone(),
    )?;
    let outcome = super::scan::scan_into(args, format, tx, stop, None, Some(&setup), None);
    let written = writer.finish().context("writing entries");
    let outcome = outcome?;
    written?;
    Ok(super::scan::exit_code(&outcome))
}

#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// Where a multi-host scan stands: tasks queued and pending per host, idle hosts, done
    Status(StatusArgs),
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// redis://[:PASSWORD@]HOST[:PORT][/DB]/NAME
    pub url: String,
    /// One JSON object instead of text
    #[arg(long)]
    pub json: bool,
    /// Seconds between the two readings the rates come from
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
}

pub fn run(cmd: &QueueCommand) -> Result<i32> {
    match cmd {
        QueueCommand::Status(a) => status(a),
    }
}

fn status(a: &StatusArgs) -> Result<i32> {
    let url = QueueUrl::parse(&a.url, std::env::var(PASSWORD_ENV).ok())?;
    let mut q = RedisQueue::connect(&url, "status")?;
    let first = q.stats()?;
    std::thread::sleep(a.interval);
    let s = q.stats()?;
    let secs = a.interval.as_secs_f64().max(1e-3);
    let tasks_per_s = s.tasks_done.saturating_sub(first.tasks_done) as f64 / secs;
    let written_sum = |st: &nfs_walker::queue::redis::QueueStats| -> u64 {
        st.consumers.iter().map(|c| c.written).sum()
    };
    let written = written_sum(&s);
    let written_before = written_sum(&first);
    let entries_per_s = written.saturating_sub(written_before) as f64 / secs;
    let queued = s.outstanding.saturating_sub(s.pending);
    let state = if s.outstanding == 0 {
        "complete"
    } else {
        "running"
    };
    if a.json {
        let consumers: Vec<_> = s
            .consumers
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name,
                    "pending": c.pending,
                    "idle_ms": c.idle_ms,
                    "tasks_done": c.tasks_done,
                    "entries_written": c.written,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "queue": url.to_string(),
                "scan_url": s.url,
                "state": state,
                "queued": queued,
                "pending": s.pending,
                "tasks_found": s.tasks_found,
                "tasks_done": s.tasks_done,
                "entries_written": written,
                "tasks_per_s": tasks_per_s,
                "entries_per_s": entries_per_s,
                "consumers": consumers,
            })
        );
        return Ok(0);
    }
    println!("queue {url} ({state}): scan of {}", s.url);
    println!(
        "  tasks (subtrees): {} found, {} done ({:.1}%), {} queued, {} pending on hosts",
        s.tasks_found,
        s.tasks_done,
        100.0 * s.tasks_done as f64 / s.tasks_found.max(1) as f64,
        queued,
        s.pending
    );
    println!(
        "  entries: {written} written by the hosts; {entries_per_s:.0} entries/s, {tasks_per_s:.0} tasks/s over the last {secs:.1} s"
    );
    for c in &s.consumers {
        let idle = Duration::from_millis(c.idle_ms);
        println!(
            "  host {}: {} pending, {} done, {} entries written, idle {:.1} s{}",
            c.name,
            c.pending,
            c.tasks_done,
            c.written,
            idle.as_secs_f64(),
            if c.pending > 0 && idle >= Duration::from_secs(60) {
                " (stopped? its tasks are taken over after --claim-idle)"
            } else {
                ""
            }
        );
    }
    Ok(0)
}
