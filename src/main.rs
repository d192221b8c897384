//! nfs-walker: scan NFSv3 namespaces as fast as the server allows, without a kernel mount.

mod cmd;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use cmd::ClientArgs;

/// musl's malloc serialises threads on one lock; see Cargo.toml and README "Static build".
#[cfg(all(target_env = "musl", feature = "mimalloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "nfs-walker",
    version = cmd::version::SHORT,
    about = "Scan NFSv3 namespaces as fast as the server allows, without a kernel mount",
    long_about = "Scan NFSv3 namespaces as fast as the server allows, without a kernel mount.\n\n\
        `nfs-walker URL [OPTIONS]` is short for `nfs-walker scan URL [OPTIONS]`.\n\
        URLs: nfs://host[:port]/path[?uid=N&gid=N&mountport=N&nfsport=N&version=3], or\n\
        host:/export/path as mount(8) writes them.\n\n\
        Spellings of the libnfs-based nfs-walker: -w/--workers N (= --threads), -d N\n\
        (= --max-depth), -v/--verbose, --export PATH."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List one directory (READDIRPLUS), like `ls -l`
    Ls {
        url: String,
        /// One NDJSON entry record per line instead of a table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Walk the whole namespace below URL and write every entry as it arrives
    Scan(Box<cmd::scan::ScanArgs>),
    /// Run the built-in mock-nfsd with a synthetic tree on loopback and scan it: the tool at
    /// work, with nothing else installed
    Demo(cmd::demo::DemoArgs),
    /// Measure per-operation throughput and latency percentiles of a server
    Bench(Box<cmd::bench::BenchArgs>),
    /// Summary and top-N reports of a scan database (-o scan.db) or NDJSON scan output
    Stats(Box<cmd::stats::StatsArgs>),
    /// What changed between two scans: added, deleted, modified, renamed entries
    Diff(Box<cmd::diff::DiffArgs>),
    /// Print the shell completion script, e.g. `nfs-walker completions bash >
    /// /etc/bash_completion.d/nfs-walker`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per subcommand into --dir
    Manpage {
        /// Write nfs-walker.1 and nfs-walker-SUBCOMMAND.1 here instead of printing nfs-walker.1
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

/// `scan -v`: path errors, retries and reconnects as they happen.
const VERBOSE_LOG: &str = "warn,nfs_walker::verbose=info,nfs_walker::sched::conns=debug";

fn main() {
    // `nfs-walker URL ...` is `nfs-walker scan URL ...`, as users of the libnfs-based tool type it.
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(nfs_walker::client::NfsUrl::is_url_like)
    {
        argv.insert(1, "scan".into());
    }
    let mut command = Cli::command();
    if argv.iter().any(|a| a == "--version") {
        // Probes the kernel's I/O backends, so only when asked. clap keeps `&'static str`
        // (without its "string" feature); the text lives until the process prints it and exits.
        let text: &'static str = Box::leak(cmd::version::long().into_boxed_str());
        command = command.long_version(text);
    }
    let cli = Cli::from_arg_matches(&command.get_matches_from(argv)).unwrap_or_else(|e| e.exit());
    let verbose = matches!(&cli.command, Command::Scan(a) if a.verbose);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NFS_WALKER_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(if verbose { VERBOSE_LOG } else { "warn" })
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Ls { url, json, client } => cmd::ls::run(&cmd::ls::LsArgs {
            url,
            json,
            client: client.options(),
        }),
        Command::Scan(args) => cmd::scan::run(&args),
        Command::Demo(args) => cmd::demo::run(&args),
        Command::Bench(args) => cmd::bench::run(&args),
        Command::Stats(args) => cmd::stats::run(&args),
        Command::Diff(args) => cmd::diff::run(&args),
        Command::Completions { shell } => {
            print_bytes(&cmd::docs::completions(Cli::command(), shell))
        }
        Command::Manpage { dir: None } => {
            cmd::docs::manpage(Cli::command()).and_then(|page| print_bytes(&page))
        }
        Command::Manpage { dir: Some(dir) } => {
            cmd::docs::write_manpages(Cli::command(), &dir).map(|pages| {
                for page in pages {
                    println!("{}", page.display());
                }
                0
            })
        }
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("nfs-walker: error: {}", error_chain(&e));
            std::process::exit(1);
        }
    }
}

fn print_bytes(bytes: &[u8]) -> anyhow::Result<i32> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).and_then(|()| out.flush())?;
    Ok(0)
}

/// The error and its causes, each said once: a cause whose text its wrapper already ends
/// with (an error that shows its source in its own message) is not repeated.
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("database: {0}")]
        Io(#[from] std::io::Error),
    }

    #[test]
    fn a_cause_is_said_once() {
        let io = std::io::Error::other("disk full");
        let e = anyhow::Error::from(Outer::from(io)).context("writing scan.db");
        assert_eq!(error_chain(&e), "writing scan.db: database: disk full");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_chain(&e), "outer: inner");
    }
}
