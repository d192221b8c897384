//! The content options of `scan` (`--checksum`, `--checksum-max-size`, `--file-type`) and the
//! scan run that reads contents beside the walk.

use anyhow::{bail, Context, Result};
use checksum::ChecksumAlgo;
use clap::Args;
use nfs_walker::content::scan::{ContentOut, ContentSetup, ContentThread};
use nfs_walker::content::{ContentConfig, ContentStats, HashPool};
use nfs_walker::record::ContentFields;
use nfs_walker::rpc::nfs3::FsinfoOk;
use nfs_walker::scan::{self, EntrySink, Progress, ScanReport, WalkSetup};
use nfs_walker::sched::{CallPolicy, EngineOptions, TaskSource, ThreadSetup};
use nfs_walker::walker::config::JUKEBOX_WAITS_MAX;
use nfs_walker::walker::{Mode, Task, Walker};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Args, Clone, Debug, Default)]
pub struct ContentArgs {
    /// Read every regular file whole and write its checksum (`ALGO:HEX`): blake3, sha256, md5
    /// or xxh3
    #[arg(long, value_name = "ALGO")]
    pub checksum: Option<ChecksumAlgo>,
    /// Files larger than this many bytes get no checksum (they are counted)
    #[arg(long, value_name = "BYTES", requires = "checksum")]
    pub checksum_max_size: Option<u64>,
    /// Write each regular file's MIME type (`mime`), from its first 8 KiB
    #[arg(long)]
    pub file_type: bool,
}

impl ContentArgs {
    pub fn fields(&self) -> ContentFields {
        ContentFields {
            checksum: self.checksum.is_some(),
            mime: self.file_type,
        }
    }

    pub fn enabled(&self) -> bool {
        self.fields().any()
    }

    /// The reader's settings, with READ sizes from the server's FSINFO.
    pub fn config(&self, mode: Mode, fsinfo: Option<&FsinfoOk>) -> Result<ContentConfig> {
        if mode == Mode::Names {
            bail!("--checksum and --file-type need file types and handles: not with --mode names");
        }
        let (rtpref, rtmax) = fsinfo.map_or((0, 0), |f| (f.rtpref, f.rtmax));
        Ok(ContentConfig {
            checksum: self.checksum,
            checksum_max_size: self.checksum_max_size,
            file_type: self.file_type,
            chunk_bytes: ContentConfig::chunk_for_server(rtpref, rtmax),
            ..ContentConfig::default()
        })
    }
}

/// What the content reads of a scan did, for the summary.
pub fn summary(s: &ContentStats, cfg: &ContentConfig, secs: f64) -> String {
    let mut out = format!(
        "  content: {} files, {} bytes read ({:.1} MB/s)",
        s.files,
        s.bytes_read,
        s.bytes_read as f64 / secs.max(1e-9) / 1e6
    );
    if let Some(algo) = cfg.checksum {
        out += &format!(", {} checksummed ({algo})", s.checksummed);
    }
    if cfg.file_type {
        out += &format!(", {} typed", s.typed);
    }
    if s.skipped_too_large > 0 {
        out += &format!(
            ", {} larger than --checksum-max-size not checksummed",
            s.skipped_too_large
        );
    }
    out += &format!(
        ", {} changed while read, {} read errors, {} read again\n",
        s.changed, s.errors, s.reread
    );
    out
}

/// Runs the scan with content reads: as `scan::run`, each thread's walk paired with its reads.
#[allow(clippy::too_many_arguments)]
pub fn run_scan<S: TaskSource<Task = Task>, O: EntrySink>(
    engine: &EngineOptions,
    setup: &WalkSetup,
    addrs: &[SocketAddr],
    source: &S,
    make_batcher: impl Fn() -> O + Sync,
    cfg: &ContentConfig,
    cred_xdr: &[u8],
    v4: Option<&Arc<nfs_walker::walk4::Walk4Setup>>,
    progress: &Arc<Progress>,
    stop: &AtomicBool,
) -> Result<(ScanReport, ContentStats)> {
    let pool = HashPool::start(engine.threads).context("starting hashing threads")?;
    let content = ContentSetup {
        cfg: cfg.clone(),
        pool: &pool,
        cred_xdr: cred_xdr.to_vec(),
        policy: CallPolicy {
            timeout: setup.walk.rpc_timeout,
            retries: setup.walk.retries,
            busy_waits_max: JUKEBOX_WAITS_MAX,
            resend_lost: true,
        },
        inflight_per_conn: setup.walk.inflight_per_conn,
        v4: v4.map(|v| (v.clone(), engine.threads)),
    };
    let conns = (engine.connections / engine.threads.max(1)).max(1);
    // The walk's XIDs keep their top bit clear for the reads' (see `content::scan`).
    let make_walker = |t: &ThreadSetup| {
        Walker::new(
            setup.walk.clone(),
            setup.visited.clone(),
            t.conns,
            t.index & 7,
        )
        .with_rate_limit(setup.rate.clone())
    };
    let make_out = |index| ContentOut::new(make_batcher(), &content, index, conns);
    let result = match v4 {
        None => scan::run_wrapped(
            engine,
            addrs,
            source,
            make_walker,
            make_out,
            ContentThread::new,
            progress,
            stop,
        ),
        Some(v4) => scan::run_wrapped(
            engine,
            addrs,
            source,
            |t: &ThreadSetup| nfs_walker::walk4::Walker4::for_thread(setup, v4, t, engine.threads),
            make_out,
            ContentThread::new,
            progress,
            stop,
        ),
    };
    let mut stats = ContentStats::default();
    let report = result.map(|(report, outs)| {
        for out in outs {
            let (batcher, s) = out.into_parts();
            stats.merge(&s);
            drop(batcher);
        }
        report
    });
    drop(content);
    pool.finish();
    Ok((report.context("scan failed")?, stats))
}
