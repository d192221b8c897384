//! Throughput of mock-nfsd: pipelined GETATTR calls and READDIRPLUS listings over a few
//! connections.
//!
//! Starts `mock-nfsd` (next to this example in the target directory) pinned to CPU 0 with
//! `--tree flat:1000000`, pins itself to CPU 1, and prints calls/s and entries/s:
//!
//! ```text
//! cargo build --release -p mock-nfsd --examples
//! target/release/examples/mock_bench [--secs 5] [--conns 4] [--window 64] [--chains 4]
//!     [--maxcount 1048576] [--port PORT (use a running server instead)]
//! ```

use nfs_proto::rpc::mount::{MntArgs, MntReply, MOUNT_PROGRAM, MOUNT_V3};
use nfs_proto::rpc::msg::{encode_call_header, Auth, AuthSys, CallHeader, Reply};
use nfs_proto::rpc::nfs3::{
    proc3, FileHandle, GetattrArgs, ReaddirPlusArgs, ReaddirPlusReply, NFS_PROGRAM, NFS_V3,
};
use nfs_proto::rpc::record::{begin_record, end_record, RecordAssembler};
use nfs_proto::xdr::{XdrEncode, XdrWriter};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// A load generator: runs until the flag is set, adding what it completed to the counter.
type LoadThread = Box<dyn FnOnce(&AtomicBool, &AtomicU64) + Send>;

struct Options {
    secs: u64,
    conns: usize,
    window: usize,
    chains: usize,
    maxcount: u32,
    port: Option<u16>,
}

fn parse_options() -> Options {
    let mut o = Options {
        secs: 5,
        conns: 4,
        window: 64,
        chains: 4,
        maxcount: 1 << 20,
        port: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        let num = || value.parse::<u64>().expect("a number");
        match args[i].as_str() {
            "--secs" => o.secs = num(),
            "--conns" => o.conns = num() as usize,
            "--window" => o.window = num() as usize,
            "--chains" => o.chains = num() as usize,
            "--maxcount" => o.maxcount = num() as u32,
            "--port" => o.port = Some(num() as u16),
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    o
}

fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn start_server() -> (Child, u16) {
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("mock-nfsd"))
        .expect("target dir");
    let mut child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(&bin)
        .args(["--tree", "flat:1000000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, port)
}

fn call_record(
    cred: &[u8],
    xid: u32,
    prog: u32,
    vers: u32,
    proc_: u32,
    args: &dyn XdrEncode,
) -> Vec<u8> {
    let mut buf = Vec::new();
    let start = begin_record(&mut buf);
    let mut w = XdrWriter::new(&mut buf);
    encode_call_header(&mut w, xid, &CallHeader { prog, vers, proc_ }, cred);
    args.encode(&mut w);
    end_record(&mut buf, start);
    buf
}

fn mount(port: u16, cred: &[u8]) -> FileHandle {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(&call_record(
        cred,
        1,
        MOUNT_PROGRAM,
        MOUNT_V3,
        1,
        &MntArgs {
            dirpath: b"/export",
        },
    ))
    .expect("send");
    let mut asm = RecordAssembler::new(1 << 20);
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "server closed");
        asm.push(&buf[..n]);
        if let Some(rec) = asm.next_record().expect("record") {
            let reply = Reply::decode(rec).expect("reply");
            return MntReply::decode(reply.outcome.expect("accepted"))
                .expect("mnt")
                .fh;
        }
    }
}

/// Keeps `window` GETATTR calls in flight on one connection until `stop`.
fn getattr_load(
    port: u16,
    cred: Vec<u8>,
    fh: FileHandle,
    window: usize,
    stop: &AtomicBool,
    done: &AtomicU64,
) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).ok();
    let template = call_record(
        &cred,
        0,
        NFS_PROGRAM,
        NFS_V3,
        proc3::GETATTR,
        &GetattrArgs { fh },
    );
    let mut xid = 1u32;
    let mut out = Vec::new();
    let mut send = |n: usize, out: &mut Vec<u8>, s: &mut TcpStream| {
        out.clear();
        for _ in 0..n {
            let at = out.len();
            out.extend_from_slice(&template);
            out[at + 4..at + 8].copy_from_slice(&xid.to_be_bytes());
            xid = xid.wrapping_add(1);
        }
        s.write_all(out).expect("send");
    };
    send(window, &mut out, &mut s);
    let mut asm = RecordAssembler::new(1 << 20);
    let mut buf = vec![0u8; 256 << 10];
    let mut local = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "server closed");
        asm.push(&buf[..n]);
        let mut got = 0;
        while let Some(rec) = asm.next_record().expect("record") {
            // A GETATTR reply: header (24 bytes) + status + fattr3.
            assert!(
                rec.len() >= 28 && rec[24..28] == [0, 0, 0, 0],
                "GETATTR failed"
            );
            got += 1;
        }
        local += got as u64;
        if got > 0 {
            send(got, &mut out, &mut s);
        }
        if local >= 4096 {
            done.fetch_add(local, Ordering::Relaxed);
            local = 0;
        }
    }
    done.fetch_add(local, Ordering::Relaxed);
}

/// Runs `chains` independent READDIRPLUS listings of the root on one connection, restarting
/// each at eof, until `stop`.
fn readdirplus_load(
    port: u16,
    cred: Vec<u8>,
    fh: FileHandle,
    chains: usize,
    maxcount: u32,
    stop: &AtomicBool,
    done: &AtomicU64,
) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).ok();
    let call = |xid: u32, cookie: u64, cookieverf: [u8; 8]| {
        let args = ReaddirPlusArgs {
            dir: fh,
            cookie,
            cookieverf,
            dircount: maxcount,
            maxcount,
        };
        call_record(&cred, xid, NFS_PROGRAM, NFS_V3, proc3::READDIRPLUS, &args)
    };
    // xid = chain number + 1, so the reply tells which chain continues.
    for c in 0..chains {
        s.write_all(&call(c as u32 + 1, 0, [0; 8])).expect("send");
    }
    let mut asm = RecordAssembler::new(8 << 20);
    let mut buf = vec![0u8; 1 << 20];
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "server closed");
        asm.push(&buf[..n]);
        out.clear();
        while let Some(rec) = asm.next_record().expect("record") {
            let reply = Reply::decode(rec).expect("reply");
            let res = reply.outcome.expect("accepted");
            let list = ReaddirPlusReply::decode(res).expect("READDIRPLUS ok");
            done.fetch_add(list.entry_count as u64, Ordering::Relaxed);
            let (cookie, verf) = if list.eof {
                (0, [0; 8])
            } else {
                (list.last_cookie().expect("entries"), list.cookieverf)
            };
            out.extend_from_slice(&call(reply.xid, cookie, verf));
        }
        if !out.is_empty() {
            s.write_all(&out).expect("send");
        }
    }
}

fn measure(name: &str, unit: &str, secs: u64, threads: Vec<LoadThread>) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = threads
        .into_iter()
        .map(|f| {
            let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
            thread::spawn(move || {
                pin_to_cpu(1);
                f(&stop, &done)
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500)); // warm up
    let start_count = done.load(Ordering::Relaxed);
    let start = Instant::now();
    thread::sleep(Duration::from_secs(secs));
    let count = done.load(Ordering::Relaxed) - start_count;
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    println!(
        "{name}: {:.0} {unit}/s ({count} in {elapsed:.2} s)",
        count as f64 / elapsed
    );
}

fn main() {
    let o = parse_options();
    pin_to_cpu(1);
    let (mut child, port) = match o.port {
        Some(p) => (None, p),
        None => {
            let (c, p) = start_server();
            (Some(c), p)
        }
    };
    let cred = Auth::Sys(AuthSys::new(0, 0)).to_xdr();
    let fh = mount(port, &cred);
    println!(
        "server port {port}; {} connections; GETATTR window {}; {} READDIRPLUS chains per connection, maxcount {}",
        o.conns, o.window, o.chains, o.maxcount
    );
    let getattr: Vec<LoadThread> = (0..o.conns)
        .map(|_| {
            let cred = cred.clone();
            let window = o.window;
            Box::new(move |stop: &AtomicBool, done: &AtomicU64| {
                getattr_load(port, cred, fh, window, stop, done)
            }) as LoadThread
        })
        .collect();
    measure("GETATTR", "calls", o.secs, getattr);
    let listing: Vec<LoadThread> = (0..o.conns)
        .map(|_| {
            let cred = cred.clone();
            let (chains, maxcount) = (o.chains, o.maxcount);
            Box::new(move |stop: &AtomicBool, done: &AtomicU64| {
                readdirplus_load(port, cred, fh, chains, maxcount, stop, done)
            }) as LoadThread
        })
        .collect();
    measure("READDIRPLUS", "entries", o.secs, listing);
    if let Some(c) = child.as_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
}
