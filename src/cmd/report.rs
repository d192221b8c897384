//! `nfs-walker report IN -o report.html`: one self-contained HTML page of charts and tables of
//! a scan, from a scan database (SQL aggregates), NDJSON or Parquet (streams in bounded memory).

use anyhow::{Context, Result};
use clap::Args;
use nfs_walker::scanfile::{detect, InputKind};
use nfs_walker::stats::html::render_html;
use nfs_walker::stats::{report_from_input, Wanted, NS_PER_S};
use std::io::Write;
use std::path::PathBuf;

/// Rows of each top-N chart.
const REPORT_TOP_N: usize = 20;

#[derive(Args, Clone, Debug)]
pub struct ReportArgs {
    /// A scan database, NDJSON or Parquet scan output (a file or a directory of parts)
    pub input: PathBuf,
    /// The HTML file to write (written under a temporary name, then renamed)
    #[arg(short = 'o', long = "output", default_value = "report.html")]
    pub output: PathBuf,
    /// Reference time of the age charts, in Unix seconds (default: the scan's start where the
    /// input records it, else now)
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub now: Option<i64>,
    /// No closing line
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(args: &ReportArgs) -> Result<i32> {
    let kind = detect(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let wanted = Wanted {
        by_extension: true,
        largest_files: true,
        largest_dirs: kind == InputKind::Database,
        oldest_files: false,
        by_uid: true,
        by_gid: true,
        most_links: false,
        size_histogram: true,
        age_histogram: true,
        dir_tree: true,
        errors: kind == InputKind::Database,
        top: REPORT_TOP_N,
    };
    let started = std::time::Instant::now();
    let report = report_from_input(
        &args.input,
        kind,
        &wanted,
        args.now.map(|s| s.saturating_mul(NS_PER_S)),
    )
    .with_context(|| format!("reading {}", args.input.display()))?;
    let page = render_html(&report);
    let name = args
        .output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = args.output.with_file_name(format!(".{name}.tmp"));
    (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(page.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &args.output)
    })()
    .with_context(|| format!("writing {}", args.output.display()))?;
    if !args.quiet {
        eprintln!(
            "wrote {} ({}, {} entries) in {:.2} s",
            args.output.display(),
            nfs_walker::report::human_bytes(page.len() as u64),
            report.summary.entries,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(0)
}
