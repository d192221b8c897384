//! `nfs-walker ls` over NFSv4.1: one directory, READDIR pages (with the record's attributes and
//! handles) until eof, as a table or NDJSON, on the blocking v4 client.

use anyhow::{anyhow, Context, Result};
use nfs_walker::client::nfs4::{results, Nfs4Client, Object4};
use nfs_walker::client::NfsUrl;
use nfs_walker::record::{EntryRecord, EntryType};
use nfs_walker::rpc::nfs4::{op4, FileType4, Nfsstat4, ResOk};
use std::collections::HashSet;
use std::io::Write;

use super::ls::{table_row, LsArgs};

/// Reply bytes asked per listing page.
const PAGE_BYTES: u32 = 1 << 20;

pub fn run(args: &LsArgs, url: &NfsUrl) -> Result<i32> {
    let mut c = Nfs4Client::connect(url, &args.client)
        .with_context(|| format!("connecting to {}", args.url))?;
    let dir: Object4 = c.lookup_path(&url.path)?;
    if dir.ftype != FileType4::Dir {
        return Err(anyhow!("{}: not a directory", args.url));
    }
    let (mut cookie, mut verf) = (0u64, [0u8; 8]);
    let mut used_cookies = HashSet::new();
    let mut seen = HashSet::new();
    let mut records: Vec<EntryRecord> = Vec::new();
    let mut symlinks = Vec::new();
    let mut failed = 0usize;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut line = Vec::new();
    loop {
        let bytes = c.readdir(&dir.fh, cookie, verf, PAGE_BYTES)?;
        let mut r = results(&bytes).map_err(|e| anyhow!("READDIR of {}: {e}", args.url))?;
        r.expect(op4::PUTFH)
            .map_err(|e| anyhow!("READDIR of {}: {e}", args.url))?;
        let ResOk::Readdir(list) = r
            .expect(op4::READDIR)
            .map_err(|e| anyhow!("READDIR of {}: {e}", args.url))?
        else {
            return Err(anyhow!("READDIR of {}: no listing in the reply", args.url));
        };
        for e in list.entries() {
            let name = String::from_utf8_lossy(e.name);
            if e.name.is_empty() || e.name.contains(&b'/') || e.name.contains(&0) {
                eprintln!(
                    "nfs-walker: {}: invalid name from the server",
                    name.escape_debug()
                );
                failed += 1;
                continue;
            }
            if !seen.insert((e.name.to_vec(), e.attrs.fileid)) {
                continue;
            }
            if e.attrs.is_referral() {
                eprintln!(
                    "nfs-walker: {}: referral to {}: not followed",
                    name.escape_debug(),
                    e.attrs.fs_locations.describe()
                );
                failed += 1;
                continue;
            }
            if let Some(status) = e.attrs.rdattr_error.filter(|&s| s != Nfsstat4::Ok) {
                eprintln!("nfs-walker: {}: {status}", name.escape_debug());
                failed += 1;
                continue;
            }
            let obj = c.object(e.attrs.filehandle.to_vec(), &e.attrs);
            let rec = EntryRecord {
                path: e.name.to_vec(),
                attrs: obj.attrs,
                depth: 1,
                target: None,
                owner: obj.owner,
                group: obj.group,
            };
            if args.json {
                line.clear();
                rec.write_ndjson(&mut line);
                out.write_all(&line)?;
            } else {
                if rec.attrs.kind == EntryType::Symlink && !obj.fh.is_empty() {
                    symlinks.push((records.len(), obj.fh));
                }
                records.push(rec);
            }
        }
        if list.eof {
            break;
        }
        let Some(next) = list.last_cookie() else {
            return Err(anyhow!(
                "server returned neither entries nor eof; listing stopped"
            ));
        };
        if !used_cookies.insert(next) {
            return Err(anyhow!(
                "server returned cookie {next:#x} twice; listing stopped to avoid a loop"
            ));
        }
        cookie = next;
        verf = list.cookieverf;
    }
    if !args.json {
        for (i, fh) in symlinks {
            if let Ok(target) = c.readlink(&fh) {
                records[i].target = Some(target);
            }
        }
        records.sort_by(|a, b| a.path.cmp(&b.path));
        for r in &records {
            writeln!(out, "{}", table_row(r))?;
        }
    }
    out.flush()?;
    c.close();
    Ok(if failed > 0 { 2 } else { 0 })
}
