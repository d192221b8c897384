//! `nfs-walker merge PART... -o OUT`: the parts of a multi-host scan as one output.

use anyhow::{bail, Context, Result};
use clap::Args;
use nfs_walker::output::merge::{is_database, merge, MergeOutput};
use nfs_walker::output::sqlite::{ScanEnd, ScanInfo, ScanStatus, SqliteWriter};
use nfs_walker::output::Format;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::SystemTime;

#[derive(Args, Clone, Debug)]
pub struct MergeArgs {
    /// The hosts' parts: NDJSON files or scan databases, in any mix
    #[arg(required = true)]
    pub parts: Vec<PathBuf>,
    /// The merged output: a .db/.sqlite name makes a scan database, anything else NDJSON
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// The scan URL to record in the database (default: the first database part's)
    #[arg(long)]
    pub url: Option<String>,
    /// No summary line
    #[arg(short, long)]
    pub quiet: bool,
}

/// The URL, server, options and start of the first database part, if any.
fn scan_info_of_parts(parts: &[PathBuf]) -> Result<Option<ScanInfo>> {
    for p in parts {
        if !is_database(p)? {
            continue;
        }
        let conn =
            rusqlite::Connection::open_with_flags(p, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let row = conn.query_row(
            "SELECT url, server, options, started_ns FROM scan WHERE id = 1",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            },
        );
        if let Ok((url, server, options_json, started_ns)) = row {
            return Ok(Some(ScanInfo {
                url,
                server,
                options_json,
                started: SystemTime::UNIX_EPOCH
                    + std::time::Duration::from_nanos(started_ns.max(0) as u64),
                resumes: 0,
            }));
        }
    }
    Ok(None)
}

fn is_db_name(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("db" | "sqlite" | "sqlite3")
    )
}

pub fn run(args: &MergeArgs) -> Result<i32> {
    if args.parts.iter().any(|p| p == &args.output) {
        bail!("{} is one of the parts", args.output.display());
    }
    let summary = if is_db_name(&args.output) {
        let mut info = scan_info_of_parts(&args.parts)?.unwrap_or(ScanInfo {
            url: String::new(),
            server: String::new(),
            options_json: "{}".into(),
            started: SystemTime::now(),
            resumes: 0,
        });
        if let Some(u) = &args.url {
            info.url = u.clone();
            info.server = nfs_walker::client::NfsUrl::parse(u)
                .map(|u| u.host)
                .unwrap_or_default();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (writer, tx) = SqliteWriter::create(
            &args.output,
            &info,
            std::time::Duration::from_secs_f64(nfs_walker::output::sqlite::CHECKPOINT_SECS_DEFAULT),
            stop,
            None,
        )
        .with_context(|| format!("creating {}", args.output.display()))?;
        let merged = merge(&args.parts, MergeOutput::Batches(Format::SqliteRows, tx));
        let end = ScanEnd {
            status: if merged.is_ok() {
                ScanStatus::Completed
            } else {
                ScanStatus::Failed
            },
            finished: SystemTime::now(),
            message: merged.as_ref().err().map(|e| e.to_string()),
            threads: 0,
            connections: 0,
            backend: "merge".into(),
        };
        let db = writer
            .finish(&end)
            .with_context(|| format!("writing {}", args.output.display()));
        let summary = merged?;
        db?;
        summary
    } else {
        // Written beside the output and renamed over it once complete and synced, so the output
        // is never a half-merged file.
        let dir = match args.output.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::NamedTempFile::new_in(&dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp);
        let summary = merge(&args.parts, MergeOutput::Ndjson(&mut w))?;
        let tmp = w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", args.output.display()))?;
        tmp.as_file()
            .sync_data()
            .with_context(|| format!("writing {}", args.output.display()))?;
        tmp.persist(&args.output)
            .with_context(|| format!("writing {}", args.output.display()))?;
        summary
    };
    if !args.quiet {
        eprintln!(
            "merged {} parts: {} entries read, {} written to {}, {} duplicate copies dropped, {} torn last lines dropped, {} per-path errors",
            args.parts.len(),
            summary.read,
            summary.written,
            args.output.display(),
            summary.duplicates,
            summary.torn_lines,
            summary.errors
        );
    }
    Ok(0)
}

/// `stats PART PART...`: the report of the parts merged (into a temporary database).
pub fn stats_of_parts(args: &super::stats::StatsArgs) -> Result<i32> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let merged = dir.path().join("merged.db");
    let mut parts = vec![args.file.clone()];
    parts.extend(args.more.iter().cloned());
    run(&MergeArgs {
        parts,
        output: merged.clone(),
        url: None,
        quiet: true,
    })?;
    let mut one = args.clone();
    one.file = merged;
    one.more.clear();
    super::stats::run(&one)
}
