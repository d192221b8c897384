//! `nfs-walker demo`: a real scan with nothing else installed. Starts mock-nfsd (our in-memory
//! NFSv3 server, built with the workspace) with a synthetic tree on loopback, scans it with
//! the full engine, and prints the summary beside the server's own RPC counts.

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// The synthetic tree mock-nfsd serves (flat:N, deep:D, wide:D:F, mixed:N[:SEED])
    #[arg(long, default_value = "mixed:1000000")]
    pub tree: String,
    /// Where entries go (default: discarded; the summary is the point)
    #[arg(short = 'o', long = "output", default_value = "/dev/null")]
    pub output: PathBuf,
    /// Extra options for the scan, e.g. --scan-args "--mode getattr --threads 1"
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    pub scan_args: String,
    /// The mock-nfsd binary (default: next to this program, then $PATH)
    #[arg(long)]
    pub mock_nfsd: Option<PathBuf>,
}

#[derive(Parser)]
struct DemoScan {
    #[command(flatten)]
    scan: super::scan::ScanArgs,
}

fn find_mock(explicit: &Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.clone());
    }
    if let Ok(me) = std::env::current_exe() {
        let beside = me.with_file_name("mock-nfsd");
        if beside.exists() {
            return Ok(beside);
        }
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let p = dir.join("mock-nfsd");
        if p.exists() {
            return Ok(p);
        }
    }
    bail!(
        "mock-nfsd not found next to nfs-walker or in PATH; build it with \
         `cargo build --release --workspace`"
    )
}

/// Ends mock-nfsd on drop, so an error never leaves it running.
struct MockServer(Child);

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(args: &DemoArgs) -> Result<i32> {
    let mock = find_mock(&args.mock_nfsd)?;
    eprintln!(
        "starting {} --tree {} (an in-memory NFSv3 server on loopback)",
        mock.display(),
        args.tree
    );
    let child = Command::new(&mock)
        .args(["--tree", &args.tree, "--listen", "127.0.0.1:0", "--stats"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", mock.display()))?;
    let mut server = MockServer(child);
    let stdout = server.0.stdout.take().context("mock-nfsd stdout")?;
    let mut lines = BufReader::new(stdout);
    let mut first = String::new();
    lines.read_line(&mut first)?;
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .with_context(|| format!("mock-nfsd said {first:?} instead of `listening on HOST:PORT`"))?
        .to_string();
    let port = addr.rsplit(':').next().unwrap_or_default().to_string();
    let url = format!("nfs://127.0.0.1/export?nfsport={port}&mountport={port}");
    eprintln!("scanning {url}");
    let mut argv = vec![
        "nfs-walker".to_string(),
        url,
        "-o".into(),
        args.output.display().to_string(),
    ];
    argv.extend(args.scan_args.split_whitespace().map(String::from));
    let demo = DemoScan::try_parse_from(&argv).context("--scan-args")?;
    let code = super::scan::run(&demo.scan)?;
    // SIGTERM makes mock-nfsd print its per-procedure counts: the server's view of the scan.
    unsafe {
        libc::kill(server.0.id() as i32, libc::SIGTERM);
    }
    let mut rest = String::new();
    let _ = lines.read_to_string(&mut rest);
    let counts: Vec<&str> = rest
        .lines()
        .skip_while(|l| !l.starts_with("# rpc counts"))
        .skip(1)
        .collect();
    if !counts.is_empty() {
        eprintln!("  mock-nfsd counted: {}", counts.join(", "));
    }
    Ok(code)
}
