//! From a URL to a file handle: portmapper GETPORT, MOUNT EXPORT and MNT, then LOOKUP of the
//! rest of the path. Blocking, cold path, done once per run.

use super::transport::{CallError, RpcClient, SourcePort};
use super::url::{NfsUrl, UrlError};
use crate::rpc::mount::{
    mountproc3, ExportList, MntArgs, MntReply, MountError, Mountstat3, MOUNT_PROGRAM, MOUNT_V3,
};
use crate::rpc::nfs3::{
    proc3, Fattr3, FileHandle, FileType3, FsinfoArgs, FsinfoOk, FsinfoReply, GetattrArgs,
    GetattrReply, LookupArgs, LookupReply, NfsReplyError, NFS_PROGRAM, NFS_V3,
};
use crate::rpc::portmap::{
    GetportReply, Mapping, IPPROTO_TCP, PMAPPROC_GETPORT, PMAP_PORT, PMAP_PROGRAM, PMAP_V2,
};
use crate::rpc::{Auth, AuthSys};
use crate::xdr::{XdrDecode, XdrEncode};
use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;

/// How the client presents itself.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// AUTH_SYS uid/gid; default the caller's, overridden by the URL's `uid=`/`gid=`.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub source_port: SourcePort,
    pub timeout: Duration,
    /// The export to mount (`--export`), for servers that hide their export list: the URL's
    /// path must lie within it, and the rest is resolved with LOOKUP.
    pub export: Option<Vec<u8>>,
    /// NFS version when the URL names none (`--nfs-version`): 3 or 4.
    pub nfs_version: Option<u32>,
    /// `--idmap FILE`: NFSv4 owner names to numeric ids.
    pub idmap: Option<std::path::PathBuf>,
}

impl ClientOptions {
    /// The NFS version to speak for `url`: the URL's `version=`, else `--nfs-version`, else 3.
    pub fn version_for(&self, url: &NfsUrl) -> u32 {
        url.version.or(self.nfs_version).unwrap_or(3)
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            uid: None,
            gid: None,
            source_port: SourcePort::Auto,
            timeout: Duration::from_secs(10),
            export: None,
            nfs_version: None,
            idmap: None,
        }
    }
}

#[derive(Debug, Error)]
pub enum MountFlowError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(
        "cannot reach the portmapper of {host} on port 111 ({source}); give the ports in the URL \
         (?mountport=N&nfsport=N)"
    )]
    Portmap { host: String, source: CallError },
    #[error("{host} has no {what} registered with its portmapper")]
    NotRegistered { host: String, what: &'static str },
    #[error("MOUNT service at {addr}: {source}")]
    Mount { addr: SocketAddr, source: CallError },
    #[error("NFS service at {addr}: {source}")]
    Nfs { addr: SocketAddr, source: CallError },
    #[error("{path} is not within the export {export} named with --export")]
    OutsideExport { path: String, export: String },
    #[error("{host} exports no path that contains {path}; exports offered: {}", list_or_none(.exports))]
    UnknownExport {
        host: String,
        path: String,
        exports: Vec<String>,
    },
    #[error("mounting {export} failed: {status}{}", privileged_hint(*.status, *.privileged))]
    MountRefused {
        export: String,
        status: Mountstat3,
        privileged: bool,
    },
    #[error("malformed reply from {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("{path}: {source}")]
    Path { path: String, source: NfsReplyError },
    #[error("{path} is not a directory")]
    NotADirectory { path: String },
    #[error(
        "this command speaks NFSv3 only (NFSv4.1 works with ls, scan and bench); drop version=4"
    )]
    V4Unsupported,
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

fn privileged_hint(status: Mountstat3, privileged: bool) -> &'static str {
    match (status, privileged) {
        (Mountstat3::Acces | Mountstat3::Perm, false) => {
            " (the export may require a privileged source port below 1024: run as root or with \
             CAP_NET_BIND_SERVICE, or mark the export `insecure`; or this host is not allowed)"
        }
        (Mountstat3::Acces | Mountstat3::Perm, true) => {
            " (this host or user is not allowed by the export's access rules)"
        }
        _ => "",
    }
}

/// A mounted export: where the NFS service is, and the handle of the URL's path.
pub struct Mounted {
    pub url: NfsUrl,
    /// Every address of the host, with the NFS port.
    pub nfs_addrs: Vec<SocketAddr>,
    pub mount_addr: SocketAddr,
    pub export: Vec<u8>,
    /// The URL's path below the export ("" for the export itself).
    pub sub_path: Vec<u8>,
    pub root_fh: FileHandle,
    pub root_attrs: Fattr3,
    pub fsinfo: Option<FsinfoOk>,
    pub auth: Auth,
    pub cred_xdr: Vec<u8>,
    pub options: ClientOptions,
    /// A blocking connection to the NFS service, for cold-path calls.
    pub nfs: RpcClient,
}

impl Mounted {
    /// Tells the server we are done (MOUNT UMNT). Best effort: NFSv3 mount state is advisory.
    pub fn unmount(&self) {
        if let Ok(mut c) = RpcClient::connect(
            self.mount_addr,
            self.cred_xdr.clone(),
            self.options.source_port,
            self.options.timeout,
        ) {
            let _ = c.call_with(
                MOUNT_PROGRAM,
                MOUNT_V3,
                mountproc3::UMNT,
                &MntArgs {
                    dirpath: &self.export,
                },
            );
        }
    }
}

fn getport(
    url: &NfsUrl,
    opts: &ClientOptions,
    cred: &[u8],
    prog: u32,
    vers: u32,
    what: &'static str,
) -> Result<u16, MountFlowError> {
    let addr = url.resolve(PMAP_PORT)?[0];
    let pm = |source| MountFlowError::Portmap {
        host: url.host.clone(),
        source,
    };
    // The portmapper does not care about source ports; an ordinary one spares reserved ports.
    let mut c = RpcClient::connect(addr, cred.to_vec(), SourcePort::Unprivileged, opts.timeout)
        .map_err(pm)?;
    let body = c
        .call_with(
            PMAP_PROGRAM,
            PMAP_V2,
            PMAPPROC_GETPORT,
            &Mapping {
                prog,
                vers,
                prot: IPPROTO_TCP,
                port: 0,
            },
        )
        .map_err(pm)?;
    let reply = GetportReply::from_xdr(body).map_err(|e| MountFlowError::Malformed {
        what: "portmapper",
        reason: e.to_string(),
    })?;
    reply.port().ok_or(MountFlowError::NotRegistered {
        host: url.host.clone(),
        what,
    })
}

/// Splits `path` at the longest export that is a prefix of it on a component boundary.
pub fn split_export<'p>(path: &'p [u8], exports: &[Vec<u8>]) -> Option<(&'p [u8], &'p [u8])> {
    fn trim(mut p: &[u8]) -> &[u8] {
        while p.len() > 1 && p.ends_with(b"/") {
            p = &p[..p.len() - 1];
        }
        p
    }
    let path = trim(path);
    let mut best: Option<usize> = None;
    for e in exports {
        let e = trim(e);
        let matches =
            path.starts_with(e) && (path.len() == e.len() || e == b"/" || path[e.len()] == b'/');
        if matches && best.is_none_or(|b| e.len() > b) {
            best = Some(e.len());
        }
    }
    let n = best?;
    let rest = &path[n..];
    let rest = rest.strip_prefix(b"/").unwrap_or(rest);
    Some((&path[..n], rest))
}

/// Asks the server for its exports (MOUNT EXPORT) and splits the URL's path into the longest
/// export that contains it and the rest.
fn export_of(
    url: &NfsUrl,
    mc: &mut RpcClient,
    mnt_err: impl Fn(CallError) -> MountFlowError,
) -> Result<(Vec<u8>, Vec<u8>), MountFlowError> {
    let body = mc
        .call(MOUNT_PROGRAM, MOUNT_V3, mountproc3::EXPORT, &|_| {})
        .map_err(mnt_err)?;
    let exports = ExportList::from_xdr(body).map_err(|e| MountFlowError::Malformed {
        what: "MOUNT EXPORT",
        reason: e.to_string(),
    })?;
    let export_dirs: Vec<Vec<u8>> = exports.entries.iter().map(|e| e.dir.clone()).collect();
    Ok(match split_export(&url.path, &export_dirs) {
        Some((e, s)) => (e.to_vec(), s.to_vec()),
        // A server may hide its export list; then the whole path is the export to try.
        None if export_dirs.is_empty() => (url.path.clone(), Vec::new()),
        None => {
            return Err(MountFlowError::UnknownExport {
                host: url.host.clone(),
                path: String::from_utf8_lossy(&url.path).into_owned(),
                exports: export_dirs
                    .iter()
                    .map(|e| String::from_utf8_lossy(e).into_owned())
                    .collect(),
            })
        }
    })
}

/// Mounts the URL's export and resolves its path to a directory handle.
pub fn mount(url: &NfsUrl, opts: &ClientOptions) -> Result<Mounted, MountFlowError> {
    if opts.version_for(url) == 4 {
        return Err(MountFlowError::V4Unsupported);
    }
    let uid = url.uid.or(opts.uid);
    let gid = url.gid.or(opts.gid);
    let mut sys = AuthSys::current_process();
    if let Some(u) = uid {
        sys.uid = u;
    }
    if let Some(g) = gid {
        sys.gid = g;
        sys.gids = vec![g];
    }
    let auth = Auth::Sys(sys);
    let cred_xdr = auth.to_xdr();

    let mount_port = match url.mount_port {
        Some(p) => p,
        None => getport(
            url,
            opts,
            &cred_xdr,
            MOUNT_PROGRAM,
            MOUNT_V3,
            "MOUNT v3 over TCP",
        )?,
    };
    let nfs_port = match url.nfs_port {
        Some(p) => p,
        None => getport(url, opts, &cred_xdr, NFS_PROGRAM, NFS_V3, "NFS v3 over TCP")?,
    };
    let mount_addr = url.resolve(mount_port)?[0];
    let nfs_addrs = url.resolve(nfs_port)?;

    let mnt_err = |source| MountFlowError::Mount {
        addr: mount_addr,
        source,
    };
    let mut mc = RpcClient::connect(mount_addr, cred_xdr.clone(), opts.source_port, opts.timeout)
        .map_err(mnt_err)?;
    let named = opts.export.as_ref().map(|e| {
        let mut e = e.clone();
        while e.len() > 1 && e.ends_with(b"/") {
            e.pop();
        }
        e
    });
    let (export, sub_path) = match named {
        Some(e) => match split_export(&url.path, std::slice::from_ref(&e)) {
            Some((e, s)) => (e.to_vec(), s.to_vec()),
            None => {
                return Err(MountFlowError::OutsideExport {
                    path: String::from_utf8_lossy(&url.path).into_owned(),
                    export: String::from_utf8_lossy(&e).into_owned(),
                })
            }
        },
        None => export_of(url, &mut mc, mnt_err)?,
    };
    let body = mc
        .call_with(
            MOUNT_PROGRAM,
            MOUNT_V3,
            mountproc3::MNT,
            &MntArgs { dirpath: &export },
        )
        .map_err(mnt_err)?;
    let mut fh = match MntReply::decode(body) {
        Ok(r) => r.fh,
        Err(MountError::Status(status)) => {
            return Err(MountFlowError::MountRefused {
                export: String::from_utf8_lossy(&export).into_owned(),
                status,
                privileged: mc.privileged(),
            })
        }
        Err(MountError::Xdr(e)) => {
            return Err(MountFlowError::Malformed {
                what: "MOUNT MNT",
                reason: e.to_string(),
            })
        }
    };

    let nfs_addr = nfs_addrs[0];
    let nfs_err = |source| MountFlowError::Nfs {
        addr: nfs_addr,
        source,
    };
    let mut nfs = RpcClient::connect(nfs_addr, cred_xdr.clone(), opts.source_port, opts.timeout)
        .map_err(nfs_err)?;
    let mut walked = export.clone();
    let mut attrs: Option<Fattr3> = None;
    for comp in sub_path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        walked.push(b'/');
        walked.extend_from_slice(comp);
        let body = nfs
            .call_with(
                NFS_PROGRAM,
                NFS_V3,
                proc3::LOOKUP,
                &LookupArgs {
                    dir: fh,
                    name: comp,
                },
            )
            .map_err(nfs_err)?;
        let ok = LookupReply::decode(body).map_err(|source| MountFlowError::Path {
            path: String::from_utf8_lossy(&walked).into_owned(),
            source,
        })?;
        fh = ok.fh;
        attrs = ok.obj_attrs;
    }
    let root_attrs = match attrs {
        Some(a) => a,
        None => {
            let body = nfs
                .call_with(NFS_PROGRAM, NFS_V3, proc3::GETATTR, &GetattrArgs { fh })
                .map_err(nfs_err)?;
            GetattrReply::decode(body).map_err(|source| MountFlowError::Path {
                path: String::from_utf8_lossy(&walked).into_owned(),
                source,
            })?
        }
    };
    if root_attrs.ftype != FileType3::Dir {
        return Err(MountFlowError::NotADirectory {
            path: String::from_utf8_lossy(&walked).into_owned(),
        });
    }
    let fsinfo = nfs
        .call_with(NFS_PROGRAM, NFS_V3, proc3::FSINFO, &FsinfoArgs { fh })
        .ok()
        .and_then(|b| FsinfoReply::decode(b).ok());
    Ok(Mounted {
        url: url.clone(),
        nfs_addrs,
        mount_addr,
        export,
        sub_path,
        root_fh: fh,
        root_attrs,
        fsinfo,
        auth,
        cred_xdr,
        options: opts.clone(),
        nfs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_export_on_component_boundary() {
        let ex = vec![
            b"/".to_vec(),
            b"/export".to_vec(),
            b"/export/a".to_vec(),
            b"/ex".to_vec(),
        ];
        assert_eq!(
            split_export(b"/export/a/b/c", &ex),
            Some((&b"/export/a"[..], &b"b/c"[..]))
        );
        assert_eq!(
            split_export(b"/export/ab", &ex),
            Some((&b"/export"[..], &b"ab"[..]))
        );
        assert_eq!(
            split_export(b"/export/", &ex),
            Some((&b"/export"[..], &b""[..]))
        );
        assert_eq!(
            split_export(b"/other", &ex),
            Some((&b"/"[..], &b"other"[..]))
        );
        let ex = vec![b"/export".to_vec()];
        assert_eq!(split_export(b"/exportx", &ex), None);
        assert_eq!(split_export(b"/data", &ex), None);
    }
}
