//! `nfs-walker convert IN OUT`: a scan output rewritten in another format.

use anyhow::{Context, Result};
use clap::Args;
use nfs_walker::convert::{convert, OutputKind};
use std::path::PathBuf;

#[derive(Args, Clone, Debug)]
pub struct ConvertArgs {
    /// A scan database, NDJSON, or Parquet (a file or a directory of parts); `-` is NDJSON on
    /// stdin
    pub input: PathBuf,
    /// The output: .db, .ndjson, .csv, .parquet (one file) or a directory (Parquet parts)
    pub output: PathBuf,
    /// The output format when the name does not tell: sqlite, ndjson, csv or parquet
    #[arg(long)]
    pub to: Option<String>,
    /// No closing line
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(args: &ConvertArgs) -> Result<i32> {
    let to = OutputKind::choose(&args.output, args.to.as_deref())?;
    let started = std::time::Instant::now();
    let summary = convert(&args.input, &args.output, to).with_context(|| {
        format!(
            "converting {} to {}",
            args.input.display(),
            args.output.display()
        )
    })?;
    if summary.skipped_lines > 0 {
        eprintln!(
            "nfs-walker: {}: skipped {} lines that are not entry records",
            args.input.display(),
            summary.skipped_lines
        );
    }
    if !args.quiet {
        eprintln!(
            "converted {} entries from {} ({}) to {} in {:.2} s",
            summary.entries,
            args.input.display(),
            summary.input.as_str(),
            args.output.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(0)
}
