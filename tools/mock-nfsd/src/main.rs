//! mock-nfsd: serve a synthetic tree over NFSv3 (PORTMAP, MOUNT and NFS on one TCP port).

use checksum::ChecksumAlgo;
use clap::Parser;
use mock_nfsd::content::file_checksum;
use mock_nfsd::faults::FAULTS_HELP;
use mock_nfsd::{listing, Config, CookieMode, FaultSpec, LatencyDist, Server, Tree};
use nfs_proto::record::{ContentFields, EntryContent, EntryType};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

const TREE_HELP: &str = "\
Synthetic tree, computed rather than stored:
  flat:N           one directory of N files
  deep:D           a chain of D directories
  wide:D:F         D directories of F files each
  mixed:N[:SEED]   a deterministic realistic tree of about N entries: varied depth and
                   fan-out, sparse and huge files, setuid/sticky modes, uids 0 and 4294967294,
                   mtimes 0 and after 2038, relative/absolute/dangling symlinks, hard links,
                   empty directories, names with spaces, unicode, invalid UTF-8, control
                   characters and 255 bytes, fifos, sockets, char and block devices";

const LATENCY_HELP: &str = "\
Delay every NFS reply without blocking other calls (units ns, us, ms, s):
  fixed:200us | uniform:50us-2ms | lognormal:median=300us,p99=5ms";

#[derive(Debug, Parser)]
#[command(
    name = "mock-nfsd",
    version,
    about = "A fast in-memory NFSv3 server over synthetic trees, with latency and fault injection",
    after_help = "Prints `listening on HOST:PORT` first; clients then use \
                  nfs://HOST/export?nfsport=PORT&mountport=PORT."
)]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    #[arg(long, default_value = "mixed:10000", long_help = TREE_HELP)]
    tree: Tree,
    /// Exported path.
    #[arg(long, default_value = "/export")]
    export: String,
    /// Directory cookies: opaque 64-bit hashes (like many servers) or plain positions.
    #[arg(long, default_value = "hash", value_parser = ["hash", "index"])]
    cookies: String,
    /// Do not return `.` and `..` in listings (by default they come first, like Linux knfsd).
    #[arg(long)]
    no_dot_entries: bool,
    /// Per-reply delay distribution.
    #[arg(long, long_help = LATENCY_HELP)]
    latency: Option<LatencyDist>,
    /// Faults to inject (see --help).
    #[arg(long, long_help = FAULTS_HELP)]
    faults: Option<FaultSpec>,
    /// Seed of fault and latency draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Serve the tree as it is after SEED's changes to FRACTION of its objects (modified,
    /// deleted, renamed, chmod and chown; and new files): the same tree a night later, for `diff`.
    #[arg(long, value_name = "SEED:FRACTION")]
    mutate: Option<mock_nfsd::Mutation>,
    /// Send NFSv4 owners as names for the common ids (`alice@example.com` for 1000, ...)
    /// instead of numbers; --print-listing then shows them as an unmapped client does.
    #[arg(long)]
    owner_names: bool,
    /// Send NFSv4 handles of 128 bytes (NFS4_FHSIZE), padded, as some servers do: longer than
    /// NFSv3's 64.
    #[arg(long)]
    v4_long_handles: bool,
    /// Print per-procedure call counts when stopped by SIGINT or SIGTERM.
    #[arg(long)]
    stats: bool,
    /// Print the tree's exact expected listing as NDJSON entry records and exit.
    #[arg(long)]
    print_listing: bool,
    /// With --print-listing: include symlink targets.
    #[arg(long, requires = "print_listing")]
    readlink: bool,
    /// With --print-listing: add each regular file's checksum (blake3, sha256, md5, xxh3) as a
    /// correct `nfs-walker scan --checksum ALGO` finds it (null for files under `rewrite`).
    #[arg(long, requires = "print_listing")]
    checksum: Option<ChecksumAlgo>,
    /// With --checksum: files larger than this get no checksum (as with nfs-walker's option).
    #[arg(long, requires = "checksum")]
    checksum_max_size: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = Config {
        listen: args.listen,
        tree: args.tree,
        export: args.export,
        cookies: if args.cookies == "index" {
            CookieMode::Index
        } else {
            CookieMode::Hash
        },
        dot_entries: !args.no_dot_entries,
        latency: args.latency,
        faults: args.faults.unwrap_or_default(),
        seed: args.seed,
        mutate: args.mutate,
        owner_names: args.owner_names,
        v4_long_handles: args.v4_long_handles,
    };
    if args.print_listing {
        let checksum = args.checksum.map(|algo| (algo, args.checksum_max_size));
        return match print_listing(&config, args.readlink, checksum) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mock-nfsd: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // Register before serving so that an early signal is not lost.
    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mock-nfsd: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match Server::start(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mock-nfsd: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "listening on {}", server.local_addr());
        let _ = out.flush();
    }
    let _ = signals.forever().next();
    let stats = server.stats();
    server.shutdown();
    if args.stats {
        let _ = stats.write_report(&mut io::stdout().lock());
    }
    ExitCode::SUCCESS
}

fn print_listing(
    config: &Config,
    readlink: bool,
    checksum: Option<(ChecksumAlgo, Option<u64>)>,
) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(1 << 20, io::stdout().lock());
    let mut line = Vec::with_capacity(1024);
    let fields = ContentFields {
        checksum: true,
        mime: false,
    };
    for record in listing(config, readlink) {
        line.clear();
        match checksum {
            None => record.write_ndjson(&mut line),
            Some((algo, max_size)) => {
                let a = &record.attrs;
                let sum = (a.kind == EntryType::File
                    && !matches!(max_size, Some(m) if a.size > m)
                    && !config.faults.rewrites(config.seed, a.fileid))
                .then(|| file_checksum(algo, a.fileid, a.size));
                let content = EntryContent {
                    checksum: sum.as_deref(),
                    mime: None,
                };
                record
                    .as_ref()
                    .write_ndjson_content(&mut line, fields, &content);
            }
        }
        out.write_all(&line)?;
    }
    out.flush()
}
