//! `nfs-walker scan --resume FILE`: goes on with the scan that wrote FILE, from the frontier
//! journal beside it (see `nfs_walker::resume`). The URL and options are the scan's own, as its
//! command line recorded them in the journal; options that change what is scanned cannot be
//! given again, options that change how (threads, connections, rates, timeouts, -q, -v,
//! --checkpoint-secs) can.

use super::scan::{run_sqlite, run_text_file, Resuming, ScanArgs};
use anyhow::{bail, Context, Result};
use clap::{ArgMatches, Args, FromArgMatches};
use nfs_walker::output::sqlite::ScanInfo;
use nfs_walker::output::Format;
use nfs_walker::resume::prior::{self, PriorDb};
use nfs_walker::resume::text::{self, TextFormat};
use nfs_walker::resume::{frontier_tasks, journal, journal_path, FrontierPaths};
use serde_json::json;
use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Options of `scan` that say how to run, not what to scan: a resume may change them.
const RUNTIME_OPTIONS: [&str; 14] = [
    "threads",
    "connections",
    "inflight",
    "io",
    "no_pin",
    "timeout",
    "retries",
    "addrs",
    "max_rate",
    "quiet",
    "verbose",
    "checkpoint_secs",
    "connect_timeout",
    "unprivileged_port",
];

/// The journal's description of a scan: its command line (after `scan`) and output format.
pub fn describe(args: &ScanArgs, format: Format, resume: Option<&Resuming>) -> Result<Vec<u8>> {
    if let Some(r) = resume {
        // The scan stays what it was.
        return Ok(r.saved.scan.clone());
    }
    let argv: Vec<String> = scan_argv()
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let format = match format {
        Format::SqliteRows => "sqlite",
        Format::Csv => "csv",
        _ => "ndjson",
    };
    let started_ns = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    Ok(
        json!({ "argv": argv, "format": format, "url": args.url, "started_ns": started_ns })
            .to_string()
            .into_bytes(),
    )
}

/// This process's arguments after `scan` (`nfs-walker URL …` is `nfs-walker scan URL …`).
fn scan_argv() -> Vec<OsString> {
    let mut argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    if argv.first().is_some_and(|a| a == "scan") {
        argv.remove(0);
    }
    argv
}

fn parse(argv: &[OsString]) -> Result<(ScanArgs, ArgMatches)> {
    let cmd = ScanArgs::augment_args(clap::Command::new("scan").no_binary_name(true));
    let matches = cmd.try_get_matches_from(argv)?;
    let args = ScanArgs::from_arg_matches(&matches)?;
    Ok((args, matches))
}

pub fn run(now: &ScanArgs, file: &Path) -> Result<i32> {
    let jpath = journal_path(file);
    if !jpath.exists() {
        bail!(
            "{}: no frontier journal beside it ({}): only a scan written with -o to a database, NDJSON or CSV file can be resumed (not stdout, Parquet, names, --big-dirs or --queue)",
            file.display(),
            jpath.display()
        );
    }
    let saved = journal::read(&jpath).with_context(|| format!("resuming {}", file.display()))?;
    let desc: serde_json::Value = serde_json::from_slice(&saved.scan)
        .with_context(|| format!("{}: the scan's description", jpath.display()))?;
    let stored_argv: Vec<OsString> = desc["argv"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .map(OsString::from)
                .collect()
        })
        .unwrap_or_default();
    let (mut args, stored_matches) = parse(&stored_argv)
        .with_context(|| format!("{}: the scan's command line", jpath.display()))?;
    let (_, now_matches) = parse(&scan_argv())?;
    refuse_conflicts(&now_matches, &stored_matches)?;
    apply_runtime(&mut args, now, &now_matches);
    args.output = Some(file.to_path_buf());
    args.resume = None;
    // The scan's own comparison and changes file, if any, are for a completed scan: kept.
    if saved.completed {
        eprintln!(
            "nfs-walker: {}: the scan completed; nothing to resume",
            file.display()
        );
        return Ok(0);
    }
    let quiet = args.quiet;
    if !saved.rooted {
        // Stopped before it reached its root: nothing was kept; it starts anew.
        if !quiet {
            eprintln!(
                "nfs-walker: {}: the scan stopped before it began; starting it anew",
                file.display()
            );
        }
        let format = match desc["format"].as_str() {
            Some("sqlite") => Format::SqliteRows,
            Some("csv") => Format::Csv,
            _ => Format::Ndjson,
        };
        let info_resumes = u32::from(saved.epoch) + 1;
        let resuming = Resuming {
            saved,
            tasks: Vec::new(),
            stored: None,
            root_stored: false,
        };
        return match format {
            Format::SqliteRows => {
                let mut info = super::scan::scan_info(&args)?;
                info.resumes = info_resumes;
                run_sqlite(&args, Some((resuming, info, None)))
            }
            _ => run_text_file(&args, format, file, Some(resuming)),
        };
    }
    // Decoded once: the copy or the skipped paths, and the walk, start from it.
    let tasks = frontier_tasks(&saved, &jpath)?;
    let frontier = FrontierPaths::new(&tasks);
    match desc["format"].as_str() {
        Some("sqlite") => {
            let scan = prior::read_scan(&prior::source_of(file))?;
            if scan.status == "completed" {
                eprintln!(
                    "nfs-walker: {}: the scan completed; nothing to resume",
                    file.display()
                );
                return Ok(0);
            }
            let prior = PriorDb::set_aside(file)
                .with_context(|| format!("setting {} aside", file.display()))?;
            let info = ScanInfo {
                url: scan.url,
                server: scan.server,
                options_json: scan.options_json,
                started: SystemTime::UNIX_EPOCH
                    + Duration::from_nanos(scan.started_ns.max(0) as u64),
                resumes: u32::from(saved.epoch) + 1,
            };
            if !quiet {
                eprintln!(
                    "nfs-walker: resuming {} ({} directories to list; resume {})",
                    file.display(),
                    saved.tasks.len(),
                    info.resumes
                );
            }
            let resuming = Resuming {
                saved,
                tasks,
                stored: None,
                root_stored: false,
            };
            run_sqlite(&args, Some((resuming, info, Some(prior))))
        }
        Some(f @ ("ndjson" | "csv")) => {
            let (format, text_format) = if f == "csv" {
                (Format::Csv, TextFormat::Csv)
            } else {
                (Format::Ndjson, TextFormat::Ndjson)
            };
            let stored = text::prepare(file, text_format, &frontier)
                .with_context(|| format!("resuming {}", file.display()))?;
            if !quiet {
                eprintln!(
                    "nfs-walker: resuming {} ({} directories to list; resume {}): {} entries kept{}, {} of them below the directories listed again, not written twice",
                    file.display(),
                    saved.tasks.len(),
                    saved.epoch + 1,
                    stored.records,
                    if stored.torn_bytes > 0 {
                        format!(", a torn last line of {} bytes cut", stored.torn_bytes)
                    } else {
                        String::new()
                    },
                    stored.skip.len(),
                );
            }
            let resuming = Resuming {
                saved,
                tasks,
                root_stored: stored.root_stored,
                stored: Some(Arc::new(stored.skip)),
            };
            run_text_file(&args, format, file, Some(resuming))
        }
        other => bail!(
            "{}: a scan to {} cannot be resumed",
            jpath.display(),
            other.unwrap_or("an unknown format")
        ),
    }
}

/// Refuses options given now that would change what the scan covers.
fn refuse_conflicts(now: &ArgMatches, stored: &ArgMatches) -> Result<()> {
    let cmd = ScanArgs::augment_args(clap::Command::new("scan"));
    // The arguments themselves (not the groups clap makes of flattened structs).
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "resume"
            || RUNTIME_OPTIONS.contains(&id)
            || now.value_source(id) != Some(clap::parser::ValueSource::CommandLine)
        {
            continue;
        }
        let raw = |m: &ArgMatches| -> Vec<OsString> {
            m.get_raw(id)
                .map(|v| v.map(OsString::from).collect())
                .unwrap_or_default()
        };
        let (given, was) = (raw(now), raw(stored));
        if given != was {
            let show = |v: &[OsString]| -> String {
                if v.is_empty() {
                    "not given".into()
                } else {
                    v.iter()
                        .map(|s| s.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                }
            };
            bail!(
                "--{}: {} here, {} in the scan being resumed; --resume goes on with the scan's own URL and options (only how to run may change: threads, connections, rates, timeouts, -q, -v, --checkpoint-secs)",
                id.replace('_', "-"),
                show(&given),
                show(&was)
            );
        }
    }
    Ok(())
}

/// Takes the options of how to run that were given now.
fn apply_runtime(args: &mut ScanArgs, now: &ScanArgs, m: &ArgMatches) {
    let given = |id: &str| m.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    let e = &mut args.engine;
    if given("threads") {
        e.threads = now.engine.threads;
    }
    if given("connections") {
        e.connections = now.engine.connections;
    }
    if given("inflight") {
        e.inflight = now.engine.inflight;
    }
    if given("io") {
        e.io = now.engine.io;
    }
    if given("no_pin") {
        e.no_pin = now.engine.no_pin;
    }
    if given("timeout") {
        e.timeout = now.engine.timeout;
    }
    if given("retries") {
        e.retries = now.engine.retries;
    }
    if given("addrs") {
        e.addrs = now.engine.addrs.clone();
    }
    if given("max_rate") {
        e.max_rate = now.engine.max_rate;
    }
    if given("quiet") {
        args.quiet = now.quiet;
    }
    if given("verbose") {
        args.verbose = now.verbose;
    }
    if given("checkpoint_secs") {
        args.checkpoint_secs = now.checkpoint_secs;
    }
    if given("connect_timeout") {
        args.client.connect_timeout = now.client.connect_timeout;
    }
    if given("unprivileged_port") {
        args.client.unprivileged_port = now.client.unprivileged_port;
    }
}
