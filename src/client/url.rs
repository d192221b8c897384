//! NFS URLs in the form libnfs accepts:
//! `nfs://host[:port]/path[?uid=N&gid=N&mountport=N&nfsport=N&version=3]`.
//!
//! Hosts may be IPv4 addresses, IPv6 addresses in brackets, or names. A `:port` after the host
//! is the NFS port (as `nfsport=`). The path may be percent-encoded; it is kept as bytes since
//! NFS names need not be UTF-8.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UrlError {
    #[error("not an NFS URL (expected nfs://host/path or host:/path): {0}")]
    Scheme(String),
    #[error("NFS URL has no host: {0}")]
    NoHost(String),
    #[error("bad port `{port}` in NFS URL")]
    BadPort { port: String },
    #[error("bad value `{value}` for URL parameter `{key}`")]
    BadValue { key: String, value: String },
    #[error("unsupported NFS version {0} (nfs-walker speaks NFSv3; use version=3)")]
    Version(String),
    #[error("unknown URL parameter `{0}` (known: uid, gid, mountport, nfsport, version)")]
    UnknownParam(String),
    #[error("bad percent-encoding in NFS URL path")]
    Percent,
    #[error("cannot resolve host `{host}`: {reason}")]
    Resolve { host: String, reason: String },
}

/// A parsed NFS URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsUrl {
    /// Host name or address as written (IPv6 without brackets).
    pub host: String,
    /// Absolute path on the server, as bytes: export path plus optional sub-path.
    pub path: Vec<u8>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mount_port: Option<u16>,
    pub nfs_port: Option<u16>,
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, UrlError> {
    value.parse().map_err(|_| UrlError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
    })
}

fn percent_decode(s: &str) -> Result<Vec<u8>, UrlError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(UrlError::Percent)?;
            let hex = std::str::from_utf8(hex).map_err(|_| UrlError::Percent)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UrlError::Percent)?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// `host:/export/path` as mount(8) writes it, as an `nfs://` URL (None for anything else). The
/// path is taken as it is: `%` and `?` in it are names' characters, not escapes or a query.
pub fn from_mount_spec(spec: &str) -> Option<String> {
    if spec.contains("://") || spec.starts_with('-') {
        return None;
    }
    let split = if spec.starts_with('[') {
        spec.find("]:/").map(|i| i + 1)
    } else {
        spec.find(":/")
    }?;
    let (host, path) = (&spec[..split], &spec[split + 1..]);
    if host.is_empty() || host.contains('/') {
        return None;
    }
    let path = path.replace('%', "%25").replace('?', "%3F");
    Some(format!("nfs://{host}{path}"))
}

impl NfsUrl {
    /// Whether `s` is written as a URL this parses (`nfs://...` or `host:/path`).
    pub fn is_url_like(s: &str) -> bool {
        s.starts_with("nfs://") || from_mount_spec(s).is_some()
    }

    /// Parses `nfs://host[:port]/path[?query]` or `host:/path`.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        if !url.starts_with("nfs://") {
            if let Some(u) = from_mount_spec(url) {
                return Self::parse(&u);
            }
        }
        let rest = url
            .strip_prefix("nfs://")
            .ok_or_else(|| UrlError::Scheme(url.to_string()))?;
        let (authority, path_query) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => match rest.find('?') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            },
        };
        // user@ is accepted by libnfs and ignored here as well (AUTH_SYS takes uid= instead).
        let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6
                .find(']')
                .ok_or_else(|| UrlError::NoHost(url.to_string()))?;
            let after = &v6[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(UrlError::NoHost(url.to_string())),
            };
            (&v6[..end], port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::NoHost(url.to_string()));
        }
        let mut parsed = NfsUrl {
            host: host.to_string(),
            path: Vec::new(),
            uid: None,
            gid: None,
            mount_port: None,
            nfs_port: match port {
                Some(p) => Some(p.parse().map_err(|_| UrlError::BadPort {
                    port: p.to_string(),
                })?),
                None => None,
            },
        };
        let (path, query) = match path_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_query, None),
        };
        parsed.path = percent_decode(path)?;
        if parsed.path.is_empty() {
            parsed.path.push(b'/');
        }
        for kv in query.into_iter().flat_map(|q| q.split('&')) {
            if kv.is_empty() {
                continue;
            }
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            match k {
                "uid" => parsed.uid = Some(parse_num(k, v)?),
                "gid" => parsed.gid = Some(parse_num(k, v)?),
                "mountport" => parsed.mount_port = Some(parse_num(k, v)?),
                "nfsport" => parsed.nfs_port = Some(parse_num(k, v)?),
                "version" => {
                    if v != "3" {
                        return Err(UrlError::Version(v.to_string()));
                    }
                }
                _ => return Err(UrlError::UnknownParam(k.to_string())),
            }
        }
        Ok(parsed)
    }

    /// Resolves the host to socket addresses (all of them, for spreading connections),
    /// each with `port` set.
    pub fn resolve(&self, port: u16) -> Result<Vec<SocketAddr>, UrlError> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| UrlError::Resolve {
                host: self.host.clone(),
                reason: e.to_string(),
            })?
            .collect();
        if addrs.is_empty() {
            return Err(UrlError::Resolve {
                host: self.host.clone(),
                reason: "no addresses".into(),
            });
        }
        Ok(addrs)
    }

    /// The same URL with another path (the server and options unchanged).
    pub fn with_path(&self, path: &[u8]) -> NfsUrl {
        NfsUrl {
            path: path.to_vec(),
            ..self.clone()
        }
    }
}

impl fmt::Display for NfsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "nfs://[{}]", self.host)?;
        } else {
            write!(f, "nfs://{}", self.host)?;
        }
        for &b in &self.path {
            if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        let mut sep = '?';
        let mut param = |f: &mut fmt::Formatter<'_>, k: &str, v: Option<u64>| {
            if let Some(v) = v {
                let r = write!(f, "{sep}{k}={v}");
                sep = '&';
                r
            } else {
                Ok(())
            }
        };
        param(f, "uid", self.uid.map(u64::from))?;
        param(f, "gid", self.gid.map(u64::from))?;
        param(f, "mountport", self.mount_port.map(u64::from))?;
        param(f, "nfsport", self.nfs_port.map(u64::from))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libnfs_style_urls() {
        let u = NfsUrl::parse(
            "nfs://127.0.0.1/export/sub%20dir?version=3&nfsport=2049&mountport=20048&uid=0&gid=5",
        )
        .unwrap();
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.path, b"/export/sub dir");
        assert_eq!(u.nfs_port, Some(2049));
        assert_eq!(u.mount_port, Some(20048));
        assert_eq!((u.uid, u.gid), (Some(0), Some(5)));
        let round = NfsUrl::parse(&u.to_string()).unwrap();
        assert_eq!(round, u);
    }

    #[test]
    fn mount_style_specs() {
        let u = NfsUrl::parse("filer:/export/projects").unwrap();
        assert_eq!(u, NfsUrl::parse("nfs://filer/export/projects").unwrap());
        let u = NfsUrl::parse("[fe80::1]:/data/a%b?c").unwrap();
        assert_eq!(
            (u.host.as_str(), u.path.as_slice()),
            ("fe80::1", &b"/data/a%b?c"[..])
        );
        assert!(NfsUrl::is_url_like("10.0.0.1:/x") && NfsUrl::is_url_like("nfs://h/"));
        for not in ["scan", "-o", "a/b:/c", ":/x", "file.db", "http://h/x"] {
            assert!(!NfsUrl::is_url_like(not), "{not}");
        }
    }

    #[test]
    fn ipv6_hostnames_and_ports() {
        let u = NfsUrl::parse("nfs://[::1]:2050/x").unwrap();
        assert_eq!((u.host.as_str(), u.nfs_port), ("::1", Some(2050)));
        let u = NfsUrl::parse("nfs://[fe80::1]/").unwrap();
        assert_eq!((u.host.as_str(), u.nfs_port), ("fe80::1", None));
        let u = NfsUrl::parse("nfs://filer.example.com").unwrap();
        assert_eq!(
            (u.host.as_str(), u.path.as_slice()),
            ("filer.example.com", &b"/"[..])
        );
        assert!(NfsUrl::parse("nfs://[::1]:2050/x")
            .unwrap()
            .to_string()
            .starts_with("nfs://[::1]"));
    }

    #[test]
    fn rejects_what_it_cannot_honour() {
        assert!(matches!(
            NfsUrl::parse("http://x/"),
            Err(UrlError::Scheme(_))
        ));
        assert!(matches!(
            NfsUrl::parse("nfs:///x"),
            Err(UrlError::NoHost(_))
        ));
        assert!(matches!(
            NfsUrl::parse("nfs://h/x?version=4"),
            Err(UrlError::Version(_))
        ));
        assert!(matches!(
            NfsUrl::parse("nfs://h/x?bogus=1"),
            Err(UrlError::UnknownParam(_))
        ));
        assert!(matches!(
            NfsUrl::parse("nfs://h:99999/x"),
            Err(UrlError::BadPort { .. })
        ));
        assert!(matches!(
            NfsUrl::parse("nfs://h/x?uid=-1"),
            Err(UrlError::BadValue { .. })
        ));
        assert!(matches!(
            NfsUrl::parse("nfs://h/%zz"),
            Err(UrlError::Percent)
        ));
    }
}
