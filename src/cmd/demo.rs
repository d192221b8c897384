//! `nfs-walker demo`: a real scan with nothing else installed. Starts mock-nfsd (our in-memory
//! NFSv3 server) in this process, on its own threads, with a synthetic tree on loopback, scans
//! it with the full engine over TCP, and prints the summary beside the server's own RPC counts.
//! In-process so that the one binary is the whole tool: copied alone onto a host, `demo` works.

use anyhow::{Context, Result};
use clap::Parser;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// The synthetic tree the built-in mock-nfsd serves (flat:N, deep:D, wide:D:F, mixed:N[:SEED])
    #[arg(long, default_value = "mixed:1000000")]
    pub tree: mock_nfsd::Tree,
    /// Where entries go (default: discarded; the summary is the point)
    #[arg(short = 'o', long = "output", default_value = "/dev/null")]
    pub output: PathBuf,
    /// Extra options for the scan, e.g. --scan-args "--mode getattr --threads 1"
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    pub scan_args: String,
}

#[derive(Parser)]
struct DemoScan {
    #[command(flatten)]
    scan: super::scan::ScanArgs,
}

pub fn run(args: &DemoArgs) -> Result<i32> {
    let config = mock_nfsd::Config {
        tree: args.tree,
        ..Default::default()
    };
    eprintln!(
        "starting the built-in mock-nfsd, tree {} (an in-memory NFSv3 server on loopback)",
        args.tree
    );
    let server = mock_nfsd::Server::start(config).with_context(|| {
        format!(
            "starting mock-nfsd on {}",
            mock_nfsd::Config::default().listen
        )
    })?;
    let url = server.url();
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
    // The server's view of the scan: what it was asked, per procedure.
    let stats = server.stats();
    server.shutdown();
    let counts: Vec<String> = stats
        .counts
        .iter()
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    eprintln!("  mock-nfsd counted: {}", counts.join(", "));
    Ok(code)
}
