//! `nfs-walker scan URL`: walk the whole namespace below URL and write every entry as it arrives.

use anyhow::{bail, Context, Result};
use clap::Args;
use nfs_walker::client::{mount, ClientOptions, NfsUrl};
use nfs_walker::output::bigdirs::{BigDirsWriter, LargestDir};
use nfs_walker::output::sqlite::{ScanEnd, ScanInfo, ScanStatus};
use nfs_walker::output::synced::{DurabilityListener, SyncedTextWriter};
use nfs_walker::output::{self, Batcher, Format, OutputBatch, TextWriter};
use nfs_walker::record::EntryRecord;
use nfs_walker::resume::journal::{JournalWriter, Saved};
use nfs_walker::resume::journal_path;
use nfs_walker::resume::prior::PriorDb;
use nfs_walker::resume::source::JournaledTasks;
use nfs_walker::resume::text::{SkipStored, StoredPaths};
use nfs_walker::ring::Backend;
use nfs_walker::scan::{self, Progress, ScanReport, WalkSetup};
use nfs_walker::sched::{EngineOptions, RateLimiter, TaskId, TaskSource};
use nfs_walker::walker::{DirTask, ExcludeSet, Mode, Task, VisitedDirs, WalkConfig};
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

#[derive(Args, Clone, Debug)]
pub struct ScanArgs {
    /// nfs://host[:port]/path[?uid=N&gid=N&mountport=N&nfsport=N&version=3]
    #[arg(required_unless_present = "resume", default_value = "")]
    pub url: String,
    /// Go on with the scan that wrote FILE (a database, NDJSON or CSV file, with the
    /// FILE.frontier journal every scan to such a file keeps) after a crash, a kill or Ctrl-C:
    /// the URL and options are the scan's own; only how to run (threads, connections, rates,
    /// timeouts, -q, -v, --checkpoint-secs) may be given again
    #[arg(long, value_name = "FILE", conflicts_with = "url")]
    pub resume: Option<PathBuf>,
    /// Write entries to FILE (default: stdout); a .db/.sqlite name selects SQLite
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// ndjson, csv, names (paths only), sqlite or parquet (-o DIR: a directory of part files;
    /// -o FILE.parquet: one file)
    #[arg(long)]
    pub format: Option<String>,
    /// Rows per part file of a Parquet directory (a kill loses at most the open part)
    #[arg(long, default_value_t = nfs_walker::columnar::PART_ROWS_DEFAULT)]
    pub part_rows: u64,
    /// Also write per-path errors to FILE as NDJSON lines
    #[arg(long)]
    pub errors: Option<PathBuf>,
    /// plus (READDIRPLUS), getattr (READDIR + LOOKUP per name), names (READDIR only)
    #[arg(long, default_value = "plus")]
    pub mode: Mode,
    /// READDIRPLUS dircount (bytes of names and cookies per reply)
    #[arg(long, default_value_t = 64 << 10)]
    pub dircount: u32,
    /// READDIRPLUS maxcount / READDIR count (bytes per reply)
    #[arg(long, default_value_t = 1 << 20)]
    pub maxcount: u32,
    /// Do not write entries deeper than N (the root is 0) nor list directories at depth N
    #[arg(short = 'd', long)]
    pub max_depth: Option<u32>,
    /// Skip names or relative paths matching GLOB (repeatable), e.g. --exclude .snapshot
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Write directories only
    #[arg(long)]
    pub dirs_only: bool,
    /// Do not descend into other file systems (fsid differs from the root's)
    #[arg(long)]
    pub one_fs: bool,
    /// Read symlink targets (READLINK) into a `target` field
    #[arg(long)]
    pub readlink: bool,
    /// Report only the directories holding at least N entries (NDJSON: entries, path, fileid,
    /// fsid), listing every directory with READDIR names only (no attributes fetched)
    #[arg(long, value_name = "N")]
    pub big_dirs: Option<u64>,
    /// When the scan completes, compare it with this earlier scan of the same URL (a database
    /// or NDJSON) and write the changes to --changes
    #[arg(long, value_name = "OLD", requires = "changes")]
    pub baseline: Option<PathBuf>,
    /// Where --baseline writes the changes, as NDJSON change records (see `diff`)
    #[arg(long, value_name = "FILE", requires = "baseline")]
    pub changes: Option<PathBuf>,
    /// Commit the output at least this often (seconds): the database, a text file and its
    /// frontier journal (for --resume), a Parquet directory's part, a --queue part (whose tasks
    /// are acknowledged only then); a crash loses at most this much work
    #[arg(long, default_value_t = nfs_walker::output::sqlite::CHECKPOINT_SECS_DEFAULT)]
    pub checkpoint_secs: f64,
    #[command(flatten)]
    pub content: super::content::ContentArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub queue: super::queue::QueueScanArgs,
    /// No progress line
    #[arg(short, long)]
    pub quiet: bool,
    /// Every path error and every retried call or reconnect on stderr as it happens
    #[arg(short, long)]
    pub verbose: bool,
    #[command(flatten)]
    pub client: super::ClientArgs,
}

#[derive(Args, Clone, Debug)]
pub struct EngineArgs {
    /// Scanning threads, one per core by default
    #[arg(short = 'w', long, visible_alias = "workers")]
    pub threads: Option<usize>,
    /// TCP connections per thread
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// Calls in flight per connection
    #[arg(long, default_value_t = 256)]
    pub inflight: usize,
    /// I/O backend: uring or epoll (default: uring where the kernel allows it)
    #[arg(long = "io")]
    pub io: Option<Backend>,
    /// Do not pin threads to cores
    #[arg(long)]
    pub no_pin: bool,
    /// Per-call timeout in seconds
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Retries of a call after a timeout or a malformed reply
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// Spread connections over these server addresses (repeatable; IP or IP:PORT, e.g. the
    /// nodes of a scale-out filer); default: every address the URL's host resolves to
    #[arg(long = "addr", value_name = "ADDR")]
    pub addrs: Vec<String>,
    /// Calls per second at most, over all threads (spaced evenly): for busy production servers
    #[arg(long, value_name = "OPS")]
    pub max_rate: Option<f64>,
}

impl EngineArgs {
    pub fn engine_config(&self, client: &ClientOptions) -> Result<EngineOptions> {
        if self.connections == 0 || self.connections > 64 {
            bail!("--connections must be 1..=64");
        }
        if self.inflight == 0 || self.inflight > 4096 {
            bail!("--inflight must be 1..=4096");
        }
        let mut cfg = EngineOptions {
            backend: self.io,
            pin_threads: !self.no_pin,
            source_port: client.source_port,
            connect_timeout: client.timeout,
            ..EngineOptions::default()
        };
        if let Some(t) = self.threads {
            if t == 0 || t > 16 {
                bail!("--threads must be 1..=16");
            }
            cfg.threads = t;
        }
        // --connections is per thread.
        cfg.connections = cfg.threads * self.connections;
        Ok(cfg)
    }

    /// `--max-rate` as the limiter every thread shares.
    pub fn rate_limit(&self) -> Result<Option<Arc<RateLimiter>>> {
        match self.max_rate {
            None => Ok(None),
            Some(r) if (1.0..=nfs_walker::sched::rate::RATE_PER_S_MAX).contains(&r) => {
                Ok(Some(Arc::new(RateLimiter::new(r))))
            }
            Some(_) => bail!("--max-rate must be at least 1 call per second"),
        }
    }

    /// The addresses to connect to: `--addr` values (with the NFS port where none is given),
    /// or `resolved`.
    pub fn server_addrs(&self, resolved: &[SocketAddr]) -> Result<Vec<SocketAddr>> {
        if self.addrs.is_empty() {
            return Ok(resolved.to_vec());
        }
        let port = resolved.first().map_or(2049, |a| a.port());
        self.addrs
            .iter()
            .map(|a| {
                a.parse::<SocketAddr>()
                    .or_else(|_| a.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, port)))
                    .or_else(|_| {
                        (a.as_str(), port)
                            .to_socket_addrs()
                            .ok()
                            .and_then(|mut it| it.next())
                            .ok_or(())
                    })
                    .map_err(|_| anyhow::anyhow!("--addr {a}: not an address"))
            })
            .collect()
    }

    pub fn rpc_timeout(&self) -> Result<Duration> {
        if !(self.timeout > 0.0 && self.timeout <= 3600.0) {
            bail!("--timeout must be within (0, 3600] seconds");
        }
        Ok(Duration::from_secs_f64(self.timeout))
    }
}

/// Picks the output format from --format or the output file's extension.
pub fn output_format(args: &ScanArgs) -> Result<Format> {
    if let Some(f) = &args.format {
        return f.parse().map_err(anyhow::Error::msg);
    }
    let ext = args
        .output
        .as_ref()
        .and_then(|p| p.extension())
        .and_then(|e| e.to_str())
        .unwrap_or("");
    Ok(match ext {
        "db" | "sqlite" | "sqlite3" => Format::SqliteRows,
        "csv" => Format::Csv,
        _ => Format::Ndjson,
    })
}

/// A progress line on stderr while the scan runs (only on a terminal).
pub struct ProgressLine {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl ProgressLine {
    /// `max_rate`: the `--max-rate` cap, shown beside the current call rate; `largest`: the
    /// largest directory so far (`--big-dirs`).
    pub fn start(
        progress: Arc<Progress>,
        max_rate: Option<f64>,
        enabled: bool,
        largest: Option<Arc<LargestDir>>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        if !enabled || !std::io::stderr().is_terminal() {
            return ProgressLine { stop, handle: None };
        }
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            let start = std::time::Instant::now();
            let mut last = (start, 0u64);
            let mut rate_shown = String::new();
            while !s.load(Ordering::Relaxed) {
                let n = progress.entries.load(Ordering::Relaxed);
                let secs = start.elapsed().as_secs_f64().max(1e-3);
                if let Some(cap) = max_rate {
                    // The call rate over the last second or so, against the cap.
                    let now = std::time::Instant::now();
                    let dt = now.duration_since(last.0).as_secs_f64();
                    if dt >= 1.0 || rate_shown.is_empty() {
                        let calls = progress.calls.load(Ordering::Relaxed);
                        let rate = (calls - last.1) as f64 / dt.max(1e-3);
                        rate_shown = format!(", {rate:.0} calls/s of {cap:.0} max");
                        last = (now, calls);
                    }
                }
                let mut msg = format!(
                    "{n} entries ({:.0}/s), {} tasks queued or active, {} calls in flight, {} errors{rate_shown}",
                    n as f64 / secs,
                    progress.outstanding.load(Ordering::Relaxed),
                    progress.inflight.load(Ordering::Relaxed),
                    progress.errors.load(Ordering::Relaxed),
                );
                if let Some(l) = &largest {
                    let path = l.path.lock().map(|p| p.clone()).unwrap_or_default();
                    msg.push_str(&format!(
                        "; largest directory so far: {} entries, {}",
                        l.entries.load(Ordering::Relaxed),
                        path.escape_debug()
                    ));
                }
                bar.set_message(msg);
                bar.tick();
                std::thread::sleep(Duration::from_millis(200));
            }
            bar.finish_and_clear();
        });
        ProgressLine {
            stop,
            handle: Some(handle),
        }
    }

    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// SIGINT/SIGTERM set the flag: the scan stops issuing calls and writes what it has.
/// SIGXFSZ is ignored: a file-size limit makes a write fail with an error the scan reports
/// (and survives with a valid output), instead of killing the process.
pub fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handler")?;
    }
    Ok(stop)
}

/// The outcome of a scan, for the caller's exit code and summary.
pub struct ScanOutcome {
    pub report: ScanReport,
    pub errors: u64,
}

/// Whether the output is Parquet: `--format parquet`, or `-o NAME.parquet`.
fn is_parquet(args: &ScanArgs) -> bool {
    match &args.format {
        Some(f) => f == "parquet",
        None => args
            .output
            .as_ref()
            .is_some_and(|p| p.extension().is_some_and(|e| e == "parquet")),
    }
}

pub fn run(args: &ScanArgs) -> Result<i32> {
    let (Some(baseline), Some(changes)) = (&args.baseline, &args.changes) else {
        return run_scan(args);
    };
    let Some(output) = &args.output else {
        bail!("--baseline compares with the scan's output: give it with -o FILE");
    };
    let code = run_scan(args)?;
    if code == 1 {
        eprintln!(
            "nfs-walker: the scan did not complete; no changes written to {}",
            changes.display()
        );
        return Ok(code);
    }
    super::diff::run(&super::diff::DiffArgs {
        old: baseline.clone(),
        new: output.clone(),
        output: Some(changes.clone()),
        format: Some(nfs_walker::diff::write::DiffFormat::Ndjson),
        summary: false,
        depth: 1,
        force: false,
        quiet: args.quiet,
    })
    .context("--baseline")?;
    Ok(code)
}

fn run_scan(args: &ScanArgs) -> Result<i32> {
    if let Some(file) = &args.resume {
        return super::resume::run(args, file);
    }
    if let Some(q) = &args.queue.queue {
        return super::queue::run_scan(args, q);
    }
    if is_parquet(args) {
        return run_parquet(args);
    }
    let format = output_format(args)?;
    if let Some(min_entries) = args.big_dirs {
        if format != Format::Ndjson {
            bail!("--big-dirs writes NDJSON lines (entries, path, fileid, fsid); drop --format or the .db/.csv name");
        }
        return run_big_dirs(args, min_entries);
    }
    if format == Format::SqliteRows {
        return run_sqlite(args, None);
    }
    match (&args.output, format) {
        (Some(path), Format::Ndjson | Format::Csv) if is_file_or_absent(path) => {
            run_text_file(args, format, path, None)
        }
        _ => run_text(args, format),
    }
}

/// Whether `path` names a regular file or nothing yet: a scan into a device or a pipe
/// (`-o /dev/null`) keeps no journal, as there is nothing to resume.
fn is_file_or_absent(path: &std::path::Path) -> bool {
    match std::fs::metadata(path) {
        Ok(m) => m.is_file(),
        Err(_) => true,
    }
}

/// Entries as text on stdout, or in a names file: nothing to resume from.
fn run_text(args: &ScanArgs, format: Format) -> Result<i32> {
    let out: Box<dyn Write + Send> = match &args.output {
        None => Box::new(std::io::stdout()),
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
    };
    let stop = stop_on_signals()?;
    let (writer, tx) =
        TextWriter::start_with_content(format, out, stop.clone(), args.content.fields())?;
    let outcome = scan_into(args, format, tx, stop, None, None, None)?;
    writer.finish().context("writing entries")?;
    Ok(exit_code(&outcome))
}

/// `-o FILE.ndjson` / `-o FILE.csv`: the file is synced at every checkpoint and its frontier
/// journal kept beside it, so `--resume FILE` can go on; with `resume`, lines are appended to
/// what the file holds.
pub fn run_text_file(
    args: &ScanArgs,
    format: Format,
    path: &std::path::Path,
    resume: Option<Resuming>,
) -> Result<i32> {
    let checkpoint = checkpoint_interval(args)?;
    let appending = resume.as_ref().is_some_and(|r| r.saved.rooted);
    // The journal first: an output never exists without it.
    let journaling = Journaling::new(args, path, format, resume)?;
    let file = if appending {
        std::fs::OpenOptions::new().append(true).open(path)
    } else {
        std::fs::File::create(path)
    }
    .with_context(|| format!("opening {}", path.display()))?;
    let header = match (format, appending) {
        (Format::Csv, false) => nfs_walker::record::csv_header_content(args.content.fields()),
        _ => String::new(),
    };
    let stop = stop_on_signals()?;
    let (writer, tx) = SyncedTextWriter::start(
        header.as_bytes(),
        file,
        checkpoint,
        journaling.listener(None),
        stop.clone(),
    )?;
    let outcome = scan_into(args, format, tx, stop, None, None, Some(&journaling));
    let written = writer.finish().context("writing entries");
    let outcome = outcome?;
    written?;
    journaling.finish(&outcome, args.quiet)?;
    Ok(exit_code(&outcome))
}

/// `--checkpoint-secs`, checked.
fn checkpoint_interval(args: &ScanArgs) -> Result<Duration> {
    if !(0.1..=86_400.0).contains(&args.checkpoint_secs) {
        bail!("--checkpoint-secs must be within [0.1, 86400]");
    }
    Ok(Duration::from_secs_f64(args.checkpoint_secs))
}

/// What a resumed scan starts from (see `cmd::resume`).
pub struct Resuming {
    /// The journal as the stopped run left it (with no root: the scan starts anew).
    pub saved: Saved,
    /// Its frontier decoded as tasks (`saved.tasks` keeps their serialised forms).
    pub tasks: Vec<(TaskId, Task)>,
    /// Text outputs: the paths the file holds below the frontier.
    pub stored: Option<Arc<StoredPaths>>,
    /// The root's own entry is stored already.
    pub root_stored: bool,
}

/// The frontier journal of a scan to a file: where it goes, what the scan is, and (when
/// resuming) where it starts from. The source it feeds is made once the root is known.
pub struct Journaling {
    /// The output, and its journal.
    out: PathBuf,
    path: PathBuf,
    scan: Vec<u8>,
    resume: Mutex<Option<Resuming>>,
    stored: Option<Arc<StoredPaths>>,
    root_stored: bool,
    slot: Arc<OnceLock<Arc<JournaledTasks>>>,
}

impl Journaling {
    fn new(
        args: &ScanArgs,
        out: &std::path::Path,
        format: Format,
        resume: Option<Resuming>,
    ) -> Result<Journaling> {
        let scan = super::resume::describe(args, format, resume.as_ref())?;
        let path = journal_path(out);
        if resume.is_none() {
            // Before the output is made, so an output never stands without its journal.
            JournalWriter::start_unrooted(&path, &scan, 0)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(Journaling {
            out: out.to_path_buf(),
            path: journal_path(out),
            scan,
            stored: resume.as_ref().and_then(|r| r.stored.clone()),
            root_stored: resume.as_ref().is_some_and(|r| r.root_stored),
            resume: Mutex::new(resume),
            slot: Arc::default(),
        })
    }

    /// The directories a resume lists again (none for a new scan).
    fn frontier(&self) -> Result<nfs_walker::resume::FrontierPaths> {
        let resume = self.resume.lock().unwrap_or_else(|e| e.into_inner());
        Ok(match resume.as_ref() {
            None => nfs_walker::resume::FrontierPaths::default(),
            Some(r) => nfs_walker::resume::FrontierPaths::new(&r.tasks),
        })
    }

    /// What the output's checkpoints report durable tasks to; `prior`: a database being
    /// resumed from, removed once the new one has committed (before the journal moves on).
    fn listener(&self, prior: Option<PriorDb>) -> JournalListener {
        JournalListener {
            slot: self.slot.clone(),
            prior,
        }
    }

    /// The task source: from the root (a new scan) or the saved frontier (a resume), with
    /// the journal started afresh as one snapshot.
    fn source(&self, root: Task, stop: Arc<AtomicBool>) -> Result<Arc<JournaledTasks>> {
        let resume = self.resume.lock().unwrap_or_else(|e| e.into_inner()).take();
        let epoch = match &resume {
            None => 0,
            Some(r) => r
                .saved
                .epoch
                .checked_add(1)
                .filter(|e| *e <= nfs_walker::resume::RESUMES_MAX)
                .ok_or(nfs_walker::resume::ResumeError::TooManyResumes)?,
        };
        // The journal starts afresh with the frontier the run starts from.
        let (roots, saved) = match resume {
            Some(r) if r.saved.rooted => (r.tasks, r.saved.tasks),
            _ => {
                let form = match &root {
                    Task::Dir(d) => vec![(0, nfs_walker::xdr::XdrEncode::to_xdr(d).into())],
                    Task::Lookups(_) => Vec::new(),
                };
                (vec![(TaskId(0), root)], form)
            }
        };
        let writer = JournalWriter::create(&self.path, &self.scan, epoch, saved)
            .with_context(|| format!("writing {}", self.path.display()))?;
        let tasks = Arc::new(JournaledTasks::new(roots, epoch, Some(writer), stop));
        let _ = self.slot.set(tasks.clone());
        Ok(tasks)
    }

    /// After the output is finished: a completed scan says so in its journal; a journal
    /// that could not be written is the scan's error.
    fn finish(&self, outcome: &ScanOutcome, quiet: bool) -> Result<()> {
        let Some(tasks) = self.slot.get() else {
            return Ok(());
        };
        if let Some(e) = tasks.take_error() {
            return Err(anyhow::Error::from(e).context("the frontier journal"));
        }
        if outcome.report.completed {
            tasks
                .complete()
                .with_context(|| format!("writing {}", self.path.display()))?;
        } else if !quiet {
            eprintln!(
                "nfs-walker: {} directories left to list; `nfs-walker scan --resume {}` goes on",
                tasks.frontier_len(),
                self.out.display(),
            );
        }
        Ok(())
    }
}

/// Hands the tasks an output's checkpoint made durable to the journal.
pub struct JournalListener {
    slot: Arc<OnceLock<Arc<JournaledTasks>>>,
    prior: Option<PriorDb>,
}

impl DurabilityListener for JournalListener {
    fn durable(&mut self, ids: &[u64]) {
        if let Some(prior) = &self.prior {
            // Everything copied from it is committed now; until it is gone, the journal must
            // not move on (a resume would go on from the prior file).
            if let Err(e) = prior.remove() {
                tracing::warn!(error = %e, "the database resumed from could not be removed");
                return;
            }
            self.prior = None;
        }
        if let Some(t) = self.slot.get() {
            let ids: Vec<TaskId> = ids.iter().map(|&i| TaskId(i)).collect();
            t.durable(&ids);
        }
    }
    fn wants_checkpoint(&self) -> bool {
        self.slot.get().is_some_and(|t| t.wants_checkpoint())
    }
}

/// `--big-dirs N`: every directory listed with READDIR names only; those of N entries or more
/// written as they are found.
fn run_big_dirs(args: &ScanArgs, min_entries: u64) -> Result<i32> {
    let out: Box<dyn Write + Send> = match &args.output {
        None => Box::new(std::io::stdout()),
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
    };
    let stop = stop_on_signals()?;
    let largest = Arc::new(LargestDir::default());
    let (writer, tx) = BigDirsWriter::start(min_entries, out, largest.clone(), stop.clone())?;
    let outcome = scan_into(
        args,
        Format::DirCounts,
        tx,
        stop,
        Some(largest.clone()),
        None,
        None,
    )?;
    let totals = writer.finish().context("writing directories")?;
    if !args.quiet {
        eprintln!(
            "  {} directories listed, {} with {min_entries} entries or more; the largest: {} entries, {}",
            totals.dirs,
            totals.big,
            largest.entries.load(Ordering::Relaxed),
            largest.path.lock().map(|p| p.clone()).unwrap_or_default().escape_debug()
        );
    }
    Ok(exit_code(&outcome))
}

/// The scan's options as the `scan.options` JSON of a database.
fn options_json(args: &ScanArgs) -> String {
    let e = &args.engine;
    serde_json::json!({
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "dircount": args.dircount,
        "maxcount": args.maxcount,
        "max_depth": args.max_depth,
        "excludes": args.excludes,
        "dirs_only": args.dirs_only,
        "one_fs": args.one_fs,
        "readlink": args.readlink,
        "threads": e.threads,
        "connections": e.connections,
        "inflight": e.inflight,
        "io": e.io.map(|b| b.to_string()),
        "pin": !e.no_pin,
        "timeout_s": e.timeout,
        "retries": e.retries,
    })
    .to_string()
}

/// `-o scan.db`: entries go to the SQLite writer; whatever ends the scan (completion, a
/// signal, an error), the database is finished and records how. With `resume`, the rows of
/// the database resumed from (`prior`) are copied in first.
pub fn run_sqlite(
    args: &ScanArgs,
    resume: Option<(Resuming, ScanInfo, Option<PriorDb>)>,
) -> Result<i32> {
    use nfs_walker::output::sqlite::SqliteWriter;
    let Some(path) = &args.output else {
        bail!("SQLite output needs a file: -o FILE");
    };
    let checkpoint = checkpoint_interval(args)?;
    let (resume, info, prior) = match resume {
        None => (None, scan_info(args)?, None),
        Some((r, info, prior)) => (Some(r), info, prior),
    };
    let stop = stop_on_signals()?;
    let mut journaling = Journaling::new(args, path, Format::SqliteRows, resume)?;
    let copy_from = prior.as_ref().map(|p| p.path.clone());
    let (writer, tx) = SqliteWriter::create(
        path,
        &info,
        checkpoint,
        stop.clone(),
        Some(Box::new(journaling.listener(prior))),
    )
    .with_context(|| format!("creating {}", path.display()))?;
    if let Some(from) = copy_from {
        let frontier = journaling.frontier()?;
        let copied = PriorDb { path: from }
            .copy_into(&frontier, &tx)
            .context("copying the rows kept")?;
        journaling.root_stored = copied.root_kept;
        if !args.quiet {
            eprintln!(
                "nfs-walker: kept {} entries and {} errors; {} entries below the {} directories left to list go, to be listed again",
                copied.entries_kept,
                copied.errors_kept,
                copied.entries_dropped,
                frontier.len()
            );
        }
    }
    let result = scan_into(
        args,
        Format::SqliteRows,
        tx,
        stop,
        None,
        None,
        Some(&journaling),
    );
    let end = scan_end(&result);
    let db = writer
        .finish(&end)
        .with_context(|| format!("writing {}", path.display()));
    let outcome = result?;
    let db = db?;
    let prior = nfs_walker::resume::prior::prior_path(path);
    if prior.exists() {
        // Nothing became durable during the run, so no checkpoint removed it; the final
        // commit holds the copy now.
        PriorDb { path: prior }.remove()?;
    }
    journaling.finish(&outcome, args.quiet)?;
    tracing::debug!(
        late_rows = db.late_rows,
        checkpoints = db.checkpoints,
        checkpoint_s = db.checkpoint_time.as_secs_f64(),
        missing_parents = db.missing_parents,
        duplicate_dirs = db.duplicate_dirs,
        load_s = db.load_time.as_secs_f64(),
        "database written"
    );
    if !args.quiet {
        eprintln!(
            "  wrote {} entries, {} errors to {} ({}; {} checkpoints {:.2} s; indexes and totals {:.2} s: indexes {:.2} s, sync {:.2} s)",
            db.entries,
            db.errors,
            path.display(),
            end.status.as_str(),
            db.checkpoints,
            db.checkpoint_time.as_secs_f64(),
            db.finish_time.as_secs_f64(),
            db.index_time.as_secs_f64(),
            db.sync_time.as_secs_f64(),
        );
    }
    Ok(exit_code(&outcome))
}

/// What a database or Parquet output records about the scan when it starts.
pub fn scan_info(args: &ScanArgs) -> Result<ScanInfo> {
    Ok(ScanInfo {
        url: args.url.clone(),
        server: NfsUrl::parse(&args.url)?.host,
        options_json: options_json(args),
        started: std::time::SystemTime::now(),
        resumes: 0,
    })
}

/// How the scan ended, as a database or Parquet output records it.
pub fn scan_end(result: &Result<ScanOutcome>) -> ScanEnd {
    match result {
        Ok(o) => ScanEnd {
            status: if o.report.completed {
                ScanStatus::Completed
            } else {
                ScanStatus::Interrupted
            },
            finished: std::time::SystemTime::now(),
            message: None,
            threads: o.report.threads,
            connections: o.report.connections,
            backend: o.report.backend.to_string(),
        },
        Err(e) => ScanEnd {
            status: ScanStatus::Failed,
            finished: std::time::SystemTime::now(),
            message: Some(format!("{e:#}")),
            threads: 0,
            connections: 0,
            backend: String::new(),
        },
    }
}

/// `-o scan.parquet` or `-o DIR --format parquet`: the rows of the database's batches go to
/// the Parquet writer; whatever ends the scan, the last file is closed and records how.
fn run_parquet(args: &ScanArgs) -> Result<i32> {
    use nfs_walker::columnar::writer::ParquetWriter;
    use nfs_walker::columnar::ParquetTarget;
    let Some(path) = &args.output else {
        bail!("Parquet output needs a file or directory: -o scan.parquet or -o DIR");
    };
    // Parts close at least every checkpoint interval: a kill loses at most the open part.
    let target = ParquetTarget::for_path(path, args.part_rows, checkpoint_interval(args)?);
    let info = scan_info(args)?;
    let stop = stop_on_signals()?;
    let (writer, tx) = ParquetWriter::create(&target, &info, stop.clone())
        .with_context(|| format!("creating {}", path.display()))?;
    // Rows batches, as for the database (errors in them are ignored by the Parquet writer;
    // they go to stderr and --errors as for every other format).
    let result = scan_into(args, Format::SqliteRows, tx, stop, None, None, None);
    let end = scan_end(&result);
    let written = writer
        .finish(&end)
        .with_context(|| format!("writing {}", path.display()));
    let outcome = result?;
    let written = written?;
    if !args.quiet {
        eprintln!(
            "  wrote {} entries to {} ({} file{}, {}; {})",
            written.rows,
            path.display(),
            written.files,
            if written.files == 1 { "" } else { "s" },
            nfs_walker::report::human_bytes(written.bytes),
            end.status.as_str(),
        );
    }
    Ok(exit_code(&outcome))
}

pub fn exit_code(o: &ScanOutcome) -> i32 {
    if !o.report.completed {
        1
    } else if o.errors > 0 {
        2
    } else {
        0
    }
}

/// Mounts, runs the engine into `tx` until it ends or `stop` is set, prints the summary.
/// With `queue`, the tasks come from (and go to) the shared queue instead of local deques;
/// with `journaling`, the frontier is journaled (and a resume starts from the saved one).
pub fn scan_into(
    args: &ScanArgs,
    format: Format,
    tx: crossbeam_channel::Sender<OutputBatch>,
    stop: Arc<AtomicBool>,
    largest: Option<Arc<LargestDir>>,
    queue: Option<&super::queue::QueueSetup>,
    journaling: Option<&Journaling>,
) -> Result<ScanOutcome> {
    let client = args.client.options();
    let url = NfsUrl::parse(&args.url)?;
    let engine = args.engine.engine_config(&client)?;
    let errors_file: Option<Box<dyn Write + Send>> = match &args.errors {
        None => None,
        Some(p) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        ))),
    };
    let root = ScanRoot::connect(&url, &client, args.content.enabled())
        .with_context(|| format!("mounting {}", args.url))?;
    let walk = Arc::new(WalkConfig {
        // --big-dirs counts names: READDIR alone, as `names` lists.
        mode: if args.big_dirs.is_some() {
            Mode::Names
        } else {
            args.mode
        },
        dircount: args.dircount.clamp(512, 16 << 20),
        maxcount: args.maxcount.clamp(1024, 16 << 20),
        max_depth: args.max_depth,
        excludes: ExcludeSet::new(&args.excludes).context("--exclude")?,
        dirs_only: args.dirs_only,
        one_fs: args.one_fs.then_some(root.attrs.fsid),
        readlink: args.readlink,
        rpc_timeout: args.engine.rpc_timeout()?,
        retries: args.engine.retries,
        inflight_per_conn: args.engine.inflight,
        listings_max: 64,
        cred_xdr: root.cred_xdr.clone(),
        ..WalkConfig::default()
    });
    // The root itself is the first record.
    let root_record = EntryRecord {
        path: b".".to_vec(),
        attrs: root.attrs,
        depth: 0,
        target: None,
        owner: root.owner.clone(),
        group: root.group.clone(),
    };
    // Through a batcher of its own, so it is encoded exactly as the scanning threads encode.
    // (A resumed scan whose output holds it already does not write it again.)
    if !journaling.is_some_and(|j| j.root_stored) {
        let mut root_out =
            Batcher::new(format, tx.clone(), None).with_content(args.content.fields());
        root_out.entry(&root_record.as_ref());
        root_out.flush();
    }
    let visited = Arc::new(VisitedDirs::default());
    visited.insert_dir(root.attrs.fsid, root.attrs.fileid, root.fh.as_bytes());
    let roots = if args.max_depth == Some(0) {
        Vec::new()
    } else {
        vec![Task::Dir(DirTask {
            fh: root.fh,
            path: b".".to_vec(),
            depth: 0,
            fsid: root.attrs.fsid,
        })]
    };
    let setup = WalkSetup {
        walk,
        visited,
        rate: args.engine.rate_limit()?,
    };
    let (err_handle, err_tx) = output::start_error_writer(
        errors_file,
        if args.verbose {
            0
        } else {
            output::STDERR_ERRORS_MAX
        },
    )?;
    let progress = Arc::new(Progress::default());
    let addrs = args.engine.server_addrs(&root.addrs)?;
    let mut queue_done = None;
    let fields = args.content.fields();
    let content = if args.content.enabled() {
        let fsinfo = root.mounted.as_ref().and_then(|m| m.fsinfo.as_ref());
        Some(args.content.config(args.mode, fsinfo)?)
    } else {
        None
    };
    let run = RunWalk {
        engine: &engine,
        setup: &setup,
        addrs: &addrs,
        root: &root,
        content: content.as_ref(),
        progress: &progress,
        stop: &stop,
    };
    run.check_v4_slots()?;
    let bar;
    // Each thread encodes its entries in a batcher of its own; the senders go when the scan
    // ends, which closes the writers' channels.
    let result = if let Some(q) = queue {
        let Some(Task::Dir(root_task)) = roots.first() else {
            bail!("a queue scan needs a root directory");
        };
        let tasks = q.start(args, root_task)?;
        bar = ProgressLine::start(progress.clone(), args.engine.max_rate, !args.quiet, largest);
        let written = tasks.source().written_counter();
        // Over content reads too, a task's acknowledgement waits for its files' records:
        // the reads hold back its end until they are written (see `content::scan`).
        let make_out = move || {
            super::queue::QueueSink::new(
                Batcher::new(format, tx.clone(), Some(err_tx.clone()))
                    .with_content(fields)
                    .track_tasks(),
                written.clone(),
            )
        };
        let r = run.on(tasks.as_ref(), make_out);
        queue_done = Some(tasks);
        r
    } else {
        let source = local_source(roots, journaling, &stop)?;
        let tracks = source.wants_durability();
        bar = ProgressLine::start(progress.clone(), args.engine.max_rate, !args.quiet, largest);
        let stored = journaling.and_then(|j| j.stored.clone());
        let make_out = move || {
            let b = Batcher::new(format, tx.clone(), Some(err_tx.clone())).with_content(fields);
            skipping(if tracks { b.track_tasks() } else { b }, &stored)
        };
        run.on(source.as_ref(), make_out)
    };
    bar.finish();
    let errors = err_handle
        .join()
        .map_err(|_| anyhow::anyhow!("error writer panicked"))?
        .context("writing errors")?;
    let (mut report, content_summary) = result.context("scan failed")?;
    root.close();
    eprint!("{}", nfs_walker::report::scan_summary(&report, 1));
    eprint!("{content_summary}");
    if let (Some(q), Some(tasks)) = (queue, queue_done) {
        report.completed &= q.finish(&tasks, args.quiet)?;
    }
    Ok(ScanOutcome { report, errors })
}

/// The task source of a single-host scan: journaled for an output that can be resumed.
fn local_source(
    roots: Vec<Task>,
    journaling: Option<&Journaling>,
    stop: &Arc<AtomicBool>,
) -> Result<Arc<JournaledTasks>> {
    match (journaling, roots.into_iter().next()) {
        (Some(j), Some(root)) => j.source(root, stop.clone()),
        (_, root) => Ok(Arc::new(JournaledTasks::new(
            root.map(|r| (TaskId(0), r)).into_iter().collect(),
            0,
            None,
            stop.clone(),
        ))),
    }
}

/// What one run of the engine needs besides its task source and sinks.
struct RunWalk<'a> {
    engine: &'a EngineOptions,
    setup: &'a WalkSetup,
    addrs: &'a [SocketAddr],
    root: &'a ScanRoot,
    /// `--checksum` / `--file-type`: the reads go beside the walk.
    content: Option<&'a nfs_walker::content::ContentConfig>,
    progress: &'a Arc<Progress>,
    stop: &'a AtomicBool,
}

impl RunWalk<'_> {
    /// Over NFSv4.1 the content reads take a share of each thread's slots of the shared
    /// session: refused before the scan starts when the server granted too few.
    fn check_v4_slots(&self) -> Result<()> {
        let (Some(v4), Some(_)) = (&self.root.v4, self.content) else {
            return Ok(());
        };
        let threads = self.engine.threads;
        if !v4.shared.as_ref().is_some_and(|s| s.fits(2 * threads)) {
            bail!(
                "the server granted too few NFSv4.1 session slots for content reads on \
                 {threads} threads; use fewer --threads"
            );
        }
        Ok(())
    }

    /// Runs the v3 or v4 walk (with the content reads, if any) over `source`, each thread
    /// writing through a sink of `make_out`; the report and the content reads' summary line.
    fn on<S, O>(&self, source: &S, make_out: impl Fn() -> O + Sync) -> Result<(ScanReport, String)>
    where
        S: TaskSource<Task = Task>,
        O: nfs_walker::scan::EntrySink,
    {
        let (engine, setup, addrs) = (self.engine, self.setup, self.addrs);
        let (progress, stop) = (self.progress, self.stop);
        if let Some(cfg) = self.content {
            let (report, stats) = super::content::run_scan(
                engine,
                setup,
                addrs,
                source,
                make_out,
                cfg,
                &self.root.cred_xdr,
                self.root.v4.as_ref(),
                progress,
                stop,
            )?;
            let summary = super::content::summary(&stats, cfg, report.elapsed.as_secs_f64());
            return Ok((report, summary));
        }
        let make_out = |_| make_out();
        match &self.root.v4 {
            None => scan::run(engine, setup, addrs, source, make_out, progress, stop),
            Some(v4) => {
                let make_walker = |t: &nfs_walker::sched::ThreadSetup| {
                    nfs_walker::walk4::Walker4::for_thread(setup, v4, t, engine.threads)
                };
                scan::run_with(engine, addrs, source, make_walker, make_out, progress, stop)
            }
        }
        .map(|(report, sinks)| {
            drop(sinks);
            (report, String::new())
        })
        .map_err(anyhow::Error::from)
    }
}

/// A thread's sink: entries a resumed output holds already are dropped.
fn skipping(b: Batcher, stored: &Option<Arc<StoredPaths>>) -> SkipStored<Batcher> {
    SkipStored {
        inner: b,
        stored: stored.clone().unwrap_or_default(),
    }
}

/// Where a scan starts: the root's handle and attributes, reached over NFSv3 (portmapper,
/// MOUNT) or NFSv4.1 (the pseudo file system), and what the walk threads need to reach it.
struct ScanRoot {
    fh: nfs_walker::rpc::nfs3::FileHandle,
    attrs: nfs_walker::record::EntryAttrs,
    cred_xdr: Vec<u8>,
    addrs: Vec<std::net::SocketAddr>,
    /// NFSv4.1: what the walk threads share to set up their sessions.
    v4: Option<Arc<nfs_walker::walk4::Walk4Setup>>,
    mounted: Option<nfs_walker::client::Mounted>,
    v4_client: Option<nfs_walker::client::nfs4::Nfs4Client>,
    /// The root's NFSv4 owner names (see `EntryRecord::owner`).
    owner: Option<Vec<u8>>,
    group: Option<Vec<u8>>,
}

impl ScanRoot {
    /// `reads`: content reads go beside the walk (over v4 they take slots of their own).
    fn connect(
        url: &NfsUrl,
        client: &nfs_walker::client::ClientOptions,
        reads: bool,
    ) -> Result<Self> {
        if client.version_for(url) != 4 {
            let m = mount(url, client)?;
            return Ok(ScanRoot {
                fh: m.root_fh,
                attrs: m.root_attrs.to_entry_attrs(),
                cred_xdr: m.cred_xdr.clone(),
                addrs: m.nfs_addrs.clone(),
                v4: None,
                mounted: Some(m),
                v4_client: None,
                owner: None,
                group: None,
            });
        }
        let mut c = nfs_walker::client::nfs4::Nfs4Client::connect(url, client)?;
        let obj = c.lookup_path(&url.path)?;
        if obj.ftype != nfs_walker::rpc::nfs4::FileType4::Dir {
            anyhow::bail!("{}: not a directory", String::from_utf8_lossy(&url.path));
        }
        let fh = nfs_walker::rpc::nfs3::FileHandle::from_bytes(&obj.fh).ok_or_else(|| {
            anyhow::anyhow!(
                "the server's handle of the root is {} bytes; nfs-walker keeps handles of at most {}",
                obj.fh.len(),
                nfs_walker::rpc::nfs3::FH_BYTES_MAX
            )
        })?;
        let setup = nfs_walker::walk4::Walk4Setup {
            owner: c.owner.clone(),
            verifier: c.verifier,
            idmap: Arc::new(c.idmap.clone()),
            // The walk threads share the cold path's client ID and session.
            shared: Some(nfs_walker::walk4::Shared4::new(
                c.session.clientid,
                c.create_seq,
                c.session.sessionid,
                c.session.slots,
                c.session.max_response_bytes,
            )),
            reads,
        };
        Ok(ScanRoot {
            fh,
            attrs: obj.attrs,
            owner: obj.owner,
            group: obj.group,
            cred_xdr: c.cred_xdr.clone(),
            addrs: c.addrs.clone(),
            v4: Some(Arc::new(setup)),
            mounted: None,
            v4_client: Some(c),
        })
    }

    /// Unmounts (v3) or destroys the session and client ID (v4).
    fn close(self) {
        if let Some(m) = self.mounted {
            m.unmount();
        }
        if let Some(mut c) = self.v4_client {
            // The walk may have re-created the shared session: the one in use now goes.
            if let Some((clientid, id)) =
                self.v4.as_ref().and_then(|s| s.shared.as_ref()?.current())
            {
                c.session.clientid = clientid;
                c.session.sessionid = id;
            }
            c.close();
        }
    }
}
