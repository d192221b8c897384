//! nfs-walker: scan NFSv3 namespaces as fast as the server allows, without a kernel mount.

mod cmd;

use clap::{Args, Parser, Subcommand};
use nfs_walker::client::{ClientOptions, SourcePort};
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "nfs-walker",
    version,
    about = "Scan NFSv3 namespaces as fast as the server allows, without a kernel mount",
    long_about = "Scan NFSv3 namespaces as fast as the server allows, without a kernel mount.\n\n\
        `nfs-walker URL [OPTIONS]` is short for `nfs-walker scan URL [OPTIONS]`.\n\
        URLs: nfs://host[:port]/path[?uid=N&gid=N&mountport=N&nfsport=N&version=3]"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ClientArgs {
    /// AUTH_SYS uid (default: the caller's; the URL's uid= wins)
    #[arg(long)]
    uid: Option<u32>,
    /// AUTH_SYS gid (default: the caller's; the URL's gid= wins)
    #[arg(long)]
    gid: Option<u32>,
    /// Never bind a privileged (<1024) source port, even where allowed
    #[arg(long)]
    unprivileged_port: bool,
    /// Timeout of connection set-up and mount calls, in seconds
    #[arg(long, default_value_t = 10)]
    connect_timeout: u64,
}

impl ClientArgs {
    fn options(&self) -> ClientOptions {
        ClientOptions {
            uid: self.uid,
            gid: self.gid,
            source_port: if self.unprivileged_port {
                SourcePort::Unprivileged
            } else {
                SourcePort::Auto
            },
            timeout: Duration::from_secs(self.connect_timeout.max(1)),
        }
    }
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
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NFS_WALKER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // `nfs-walker URL ...` is `nfs-walker scan URL ...`, as users of the libnfs-based tool type it.
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| a.starts_with("nfs://"))
    {
        argv.insert(1, "scan".into());
    }
    let cli = Cli::parse_from(argv);
    let result = match cli.command {
        Command::Ls { url, json, client } => cmd::ls::run(&cmd::ls::LsArgs {
            url,
            json,
            client: client.options(),
        }),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("nfs-walker: error: {e:#}");
            std::process::exit(1);
        }
    }
}
