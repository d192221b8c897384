//! `nfs-walker ls URL`: one directory, READDIRPLUS until eof, as a table or NDJSON.

use anyhow::{anyhow, Context, Result};
use nfs_walker::client::{mount, ClientOptions, MountFlowError};
use nfs_walker::record::{EntryRecord, EntryType};
use nfs_walker::rpc::nfs3::{
    proc3, FileType3, NfsReplyError, ReaddirPlusArgs, ReaddirPlusReply, ReadlinkArgs,
    ReadlinkReply, NFS_PROGRAM, NFS_V3,
};
use std::collections::HashSet;
use std::io::Write;

pub struct LsArgs {
    pub url: String,
    pub json: bool,
    pub client: ClientOptions,
}

/// Lists the directory; entries in server order for NDJSON, by name for the table.
pub fn run(args: &LsArgs) -> Result<i32> {
    let url = nfs_walker::client::NfsUrl::parse(&args.url)?;
    if args.client.version_for(&url) == 4 {
        return super::ls4::run(args, &url);
    }
    let mut m = mount(&url, &args.client).with_context(|| format!("mounting {}", args.url))?;
    let fh = m.root_fh;
    let nfs_addr = m.nfs.addr();
    let (mut cookie, mut verf) = (0u64, [0u8; 8]);
    let mut used_cookies = HashSet::new();
    let mut seen = HashSet::new();
    let mut records: Vec<EntryRecord> = Vec::new();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut line = Vec::new();
    let mut symlinks = Vec::new();
    loop {
        let body = m
            .nfs
            .call_with(
                NFS_PROGRAM,
                NFS_V3,
                proc3::READDIRPLUS,
                &ReaddirPlusArgs {
                    dir: fh,
                    cookie,
                    cookieverf: verf,
                    dircount: 64 << 10,
                    maxcount: 1 << 20,
                },
            )
            .map_err(|source| MountFlowError::Nfs {
                addr: nfs_addr,
                source,
            })?;
        let reply = ReaddirPlusReply::decode(body)
            .map_err(|e: NfsReplyError| anyhow!("READDIRPLUS of {}: {e}", args.url))?;
        for e in reply.entries() {
            if e.name == b"." || e.name == b".." || !seen.insert((e.name.to_vec(), e.fileid)) {
                continue;
            }
            let Some(a) = e.attrs else {
                eprintln!(
                    "nfs-walker: {}: server sent no attributes",
                    String::from_utf8_lossy(e.name)
                );
                continue;
            };
            let rec = EntryRecord {
                path: e.name.to_vec(),
                attrs: a.to_entry_attrs(),
                depth: 1,
                target: None,
                owner: None,
                group: None,
            };
            if args.json {
                line.clear();
                rec.write_ndjson(&mut line);
                out.write_all(&line)?;
            } else {
                if a.ftype == FileType3::Lnk {
                    if let Some(fh) = e.fh {
                        symlinks.push((records.len(), fh));
                    }
                }
                records.push(rec);
            }
        }
        if reply.eof {
            break;
        }
        let Some(next) = reply.last_cookie() else {
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
        verf = reply.cookieverf;
    }
    if !args.json {
        for (i, fh) in symlinks {
            if let Ok(body) =
                m.nfs
                    .call_with(NFS_PROGRAM, NFS_V3, proc3::READLINK, &ReadlinkArgs { fh })
            {
                if let Ok(ok) = ReadlinkReply::decode(body) {
                    records[i].target = Some(ok.target.to_vec());
                }
            }
        }
        records.sort_by(|a, b| a.path.cmp(&b.path));
        for r in &records {
            writeln!(out, "{}", table_row(r))?;
        }
    }
    out.flush()?;
    m.unmount();
    Ok(0)
}

fn mode_string(kind: EntryType, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(kind.ls_char());
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (i, (bit, c)) in bits.iter().enumerate() {
        let set = mode & bit != 0;
        let special = match i {
            2 => mode & 0o4000 != 0,
            5 => mode & 0o2000 != 0,
            8 => mode & 0o1000 != 0,
            _ => false,
        };
        s.push(match (special, set, i) {
            (true, true, 8) => 't',
            (true, false, 8) => 'T',
            (true, true, _) => 's',
            (true, false, _) => 'S',
            (false, true, _) => *c,
            (false, false, _) => '-',
        });
    }
    s
}

/// One `ls -l`-like line: mode, links, owner, group, size, mtime (UTC), name [-> target].
pub fn table_row(r: &EntryRecord) -> String {
    let a = &r.attrs;
    let secs = a.mtime_ns.div_euclid(1_000_000_000);
    // An NFSv4 owner name says more than the id it was mapped to (often `nobody`), as `ls -l`
    // shows names.
    let who = |name: &Option<Vec<u8>>, id: u32| match name {
        Some(n) => String::from_utf8_lossy(n).escape_debug().to_string(),
        None => id.to_string(),
    };
    let mut s = format!(
        "{} {:>3} {:>6} {:>6} {:>14} {} {}",
        mode_string(a.kind, a.mode),
        a.nlink,
        who(&r.owner, a.uid),
        who(&r.group, a.gid),
        a.size,
        super::format_utc(secs),
        String::from_utf8_lossy(&r.path).escape_debug()
    );
    if let Some(t) = &r.target {
        s.push_str(" -> ");
        s.push_str(&String::from_utf8_lossy(t).escape_debug().to_string());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings_like_ls() {
        assert_eq!(mode_string(EntryType::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(EntryType::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(EntryType::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(EntryType::File, 0o2644), "-rw-r-Sr--");
        assert_eq!(mode_string(EntryType::Symlink, 0o1000), "l--------T");
    }
}
