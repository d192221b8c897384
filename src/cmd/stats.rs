//! `nfs-walker stats FILE`: a summary and top-N reports of a scan, read from a scan database
//! (`scan -o scan.db`) or from NDJSON scan output. The reports themselves are the library's
//! [`nfs_walker::stats`]; this is the command line around them.

use anyhow::{bail, Context, Result};
use clap::Args;
use nfs_walker::scanfile::{detect, InputKind};
use nfs_walker::stats::render::{render_text, report_json};
use nfs_walker::stats::{report_from_input, Wanted, NS_PER_S, TOP_N_MAX};
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Clone, Debug)]
pub struct StatsArgs {
    /// A scan database (scan -o scan.db), NDJSON or Parquet scan output (a file or a directory
    /// of parts); `-` reads NDJSON from stdin
    pub file: PathBuf,
    /// More parts of a multi-host scan: the report is of them all, merged (see `merge`)
    pub more: Vec<PathBuf>,
    /// Files, bytes and used bytes per extension
    #[arg(long)]
    pub by_extension: bool,
    /// The largest files
    #[arg(long)]
    pub largest_files: bool,
    /// The largest directories by recursive bytes and by recursive entry count (database only)
    #[arg(long)]
    pub largest_dirs: bool,
    /// The files with the oldest modification times
    #[arg(long)]
    pub oldest_files: bool,
    /// Entries, bytes and used bytes per owner: the NFSv4 owner name where the scan has one,
    /// else the uid
    #[arg(long)]
    pub by_uid: bool,
    /// Entries, bytes and used bytes per group: the NFSv4 group name where the scan has one,
    /// else the gid
    #[arg(long)]
    pub by_gid: bool,
    /// The non-directories with the most hard links (one row per inode)
    #[arg(long)]
    pub most_links: bool,
    /// Files per power-of-two size bucket
    #[arg(long)]
    pub size_histogram: bool,
    /// Files per modification age: future, <1d, <1w, <1m, <1y, <5y, older
    #[arg(long)]
    pub age_histogram: bool,
    /// Groups of regular files with the same size and checksum, and the bytes one copy each
    /// would save (a scan made with --checksum)
    #[arg(long)]
    pub duplicates: bool,
    /// With --duplicates: ignore files smaller than this many bytes
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = 1,
        requires = "duplicates"
    )]
    pub min_size: u64,
    /// Files and bytes per MIME type (a scan made with --file-type)
    #[arg(long)]
    pub file_types: bool,
    /// Groups of paths that are one inode (same fsid and fileid)
    #[arg(long)]
    pub hardlinks: bool,
    /// Every report (--largest-dirs only for a database)
    #[arg(long)]
    pub all: bool,
    /// Rows per top-N report
    #[arg(short = 'n', long = "top", default_value_t = 10)]
    pub top: usize,
    /// Machine-readable JSON instead of tables
    #[arg(long)]
    pub json: bool,
    /// Reference time of --age-histogram, in Unix seconds (default: the scan's start for a
    /// database, the current time for NDJSON)
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub now: Option<i64>,
}

pub fn run(args: &StatsArgs) -> Result<i32> {
    if !args.more.is_empty() {
        return super::merge::stats_of_parts(args);
    }
    if args.top == 0 || args.top > TOP_N_MAX {
        bail!("-n must be 1..={TOP_N_MAX}");
    }
    if args.duplicates || args.file_types || args.hardlinks {
        return content_reports(args);
    }
    let all = args.all;
    let mut wanted = Wanted {
        by_extension: all || args.by_extension,
        largest_files: all || args.largest_files,
        largest_dirs: args.largest_dirs,
        oldest_files: all || args.oldest_files,
        by_uid: all || args.by_uid,
        by_gid: all || args.by_gid,
        most_links: all || args.most_links,
        size_histogram: all || args.size_histogram,
        age_histogram: all || args.age_histogram,
        dir_tree: false,
        errors: false,
        top: args.top,
    };
    let now_ns = args.now.map(|s| s.saturating_mul(NS_PER_S));
    let kind = detect(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    if kind == InputKind::Database {
        wanted.largest_dirs |= all;
    } else if wanted.largest_dirs {
        bail!(
            "--largest-dirs needs a scan database (nfs-walker scan URL -o scan.db): \
             recursive directory totals are summed when the database is written, and \
             NDJSON and Parquet are read as a stream"
        );
    }
    let report = report_from_input(&args.file, kind, &wanted, now_ns)
        .with_context(|| format!("reading {}", args.file.display()))?;
    if report.format == "ndjson" && report.summary.entries == 0 && report.malformed_lines > 0 {
        bail!(
            "{} is neither a scan database nor NDJSON scan output",
            report.source
        );
    }
    if report.malformed_lines > 0 {
        eprintln!(
            "nfs-walker: {}: skipped {} lines that are not entry records",
            report.source, report.malformed_lines
        );
    }
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&report_json(&report))?;
        s.push('\n');
        s
    } else {
        render_text(&report)
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.context("writing the report")?,
    }
    Ok(0)
}

/// `--duplicates`, `--file-types`, `--hardlinks`: grouped by SQLite from a database, in one
/// pass over NDJSON or Parquet.
fn content_reports(args: &StatsArgs) -> Result<i32> {
    use nfs_walker::content::reports::ContentReportsWanted;
    use nfs_walker::stats::content_reports_from_input;
    let kind = detect(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let wanted = ContentReportsWanted {
        duplicates: args.duplicates,
        min_size: args.min_size,
        file_types: args.file_types,
        hardlinks: args.hardlinks,
        top: args.top,
    };
    let (reports, skipped) = content_reports_from_input(&args.file, kind, wanted)
        .with_context(|| format!("reading {}", args.file.display()))?;
    if skipped > 0 {
        eprintln!(
            "nfs-walker: {}: skipped {skipped} lines that are not entry records",
            args.file.display()
        );
    }
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&reports.to_json())?;
        s.push('\n');
        s
    } else {
        reports.render_text()
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.context("writing the report")?,
    }
    Ok(0)
}
