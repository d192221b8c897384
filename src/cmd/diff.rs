//! `nfs-walker diff OLD NEW`: what changed between two scans (databases or NDJSON).

use anyhow::{Context, Result};
use clap::Args;
use nfs_walker::diff::write::{ChangeWriter, DiffFormat, Summary};
use nfs_walker::diff::{diff, ChangeKind, DiffOptions, DiffReport};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args, Clone, Debug)]
pub struct DiffArgs {
    /// The earlier scan: a scan database (scan -o scan.db) or NDJSON scan output
    pub old: PathBuf,
    /// The later scan, of the same URL
    pub new: PathBuf,
    /// Write the changes to FILE (default: stdout); it appears when complete
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// ndjson (change records), csv or table (default: table on a terminal, else ndjson; a
    /// .csv output name selects csv)
    #[arg(long)]
    pub format: Option<DiffFormat>,
    /// Counts and bytes added, removed and changed per directory instead of the changes
    #[arg(long)]
    pub summary: bool,
    /// Directory depth of --summary (1: the root's subdirectories)
    #[arg(long, default_value_t = 1, requires = "summary")]
    pub depth: u32,
    /// Compare scans of different URLs or of different root directories
    #[arg(long)]
    pub force: bool,
    /// No totals on stderr (warnings are still printed)
    #[arg(short, long)]
    pub quiet: bool,
}

fn pick_format(args: &DiffArgs) -> DiffFormat {
    if let Some(f) = args.format {
        return f;
    }
    match &args.output {
        Some(p) if p.extension().is_some_and(|e| e == "csv") => DiffFormat::Csv,
        Some(_) => DiffFormat::Ndjson,
        None if std::io::IsTerminal::is_terminal(&std::io::stdout()) => DiffFormat::Table,
        None => DiffFormat::Ndjson,
    }
}

/// Runs a diff into `out` in `format` (or its summary to `--depth`), returning the report.
pub fn diff_into(
    old: &Path,
    new: &Path,
    force: bool,
    summary_depth: Option<u32>,
    format: DiffFormat,
    out: &mut dyn Write,
) -> Result<DiffReport> {
    let opts = DiffOptions { force };
    let report = match summary_depth {
        Some(depth) => {
            let mut summary = Summary::new(depth);
            let report = diff(old, new, &opts, &mut |c| {
                summary.add(c);
                Ok(())
            })?;
            summary.write(out, format)?;
            report
        }
        None => {
            let mut writer = ChangeWriter::new(std::io::BufWriter::new(&mut *out), format)?;
            let report = diff(old, new, &opts, &mut |c| writer.write(c))?;
            writer.finish()?;
            report
        }
    };
    out.flush()?;
    Ok(report)
}

/// The warnings, then (unless quiet) the totals, on stderr.
pub fn print_report(report: &DiffReport, quiet: bool) {
    for w in &report.warnings {
        eprintln!("nfs-walker: warning: {w}");
    }
    if quiet {
        return;
    }
    let counts: Vec<String> = ChangeKind::ALL
        .iter()
        .map(|&k| format!("{} {}", report.count(k), k.as_str()))
        .collect();
    let entries = |m: &Option<nfs_walker::diff::ScanMeta>| m.as_ref().map_or(0, |m| m.entries);
    eprintln!(
        "  {} entries before, {} after: {} ({} more moved with their directory)",
        entries(&report.old),
        entries(&report.new),
        counts.join(", "),
        report.moved_with_parent
    );
}

pub fn run(args: &DiffArgs) -> Result<i32> {
    let format = pick_format(args);
    let summary_depth = args.summary.then_some(args.depth);
    let report = match &args.output {
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            diff_into(
                &args.old,
                &args.new,
                args.force,
                summary_depth,
                format,
                &mut lock,
            )?
        }
        Some(path) => {
            // Written beside its final name and renamed when complete: a diff that fails half
            // way leaves no file that looks like a complete list of changes.
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
            let report = diff_into(
                &args.old,
                &args.new,
                args.force,
                summary_depth,
                format,
                tmp.as_file_mut(),
            )?;
            tmp.as_file()
                .sync_all()
                .with_context(|| format!("writing {}", path.display()))?;
            tmp.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
            report
        }
    };
    print_report(&report, args.quiet);
    Ok(0)
}
