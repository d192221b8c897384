//! Fault injection (`--faults`), deterministic from `--seed`.
//!
//! Faults apply to NFS calls only, never to PORTMAP or MOUNT, so a client can always mount.
//! `every=N` faults count the NFS calls of each connection (the N-th, 2N-th, ... call is hit);
//! `p=P` faults draw from a per-connection generator seeded by (seed, connection number), so a
//! run with one connection is reproducible call for call.

use crate::rng::{hash3, Rng};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Longest stall accepted: 10 minutes.
pub const STALL_MS_MAX: u64 = 600_000;
/// Most faults in one spec.
pub const FAULTS_MAX: usize = 32;

/// One kind of fault and its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Close the connection on every N-th call, without answering it.
    Reset { every: u64 },
    /// Hold the reply of every N-th call for `ms` milliseconds (other calls go on).
    Stall { every: u64, ms: u64 },
    /// Answer NFS3ERR_JUKEBOX ("try again later") with probability `p`.
    Jukebox { p: f64 },
    /// Never answer, with probability `p`.
    Drop { p: f64 },
    /// Answer NFS3ERR_BAD_COOKIE to a continued listing (cookie != 0) with probability `p`.
    BadCookie { p: f64 },
    /// Before every N-th reply, send a copy of it under an XID the client never used.
    Xid { every: u64 },
    /// Send the start of every N-th reply's record, then close the connection.
    Truncate { every: u64 },
    /// On every N-th call, send a record header claiming the largest record, then close.
    HugeRecord { every: u64 },
    /// Send every N-th reply as many small record fragments.
    Fragment { every: u64 },
    /// Add entries with hostile names to a READDIR/READDIRPLUS reply with probability `p`.
    Names { p: f64 },
    /// Answer NFS4ERR_DELAY (NFS3ERR_JUKEBOX over v3) with probability `p`.
    Delay { p: f64 },
    /// On every N-th NFSv4.1 call, destroy the call's session and answer NFS4ERR_BADSESSION
    /// (the client must create a new session and resend).
    BadSession { every: u64 },
    /// A regular file is being rewritten all the time, with probability `p` per file (drawn
    /// from its fileid and the seed, so the same files on every connection): each READ of it
    /// reports a new mtime and ctime and returns the new contents. A correct reader reports
    /// it as changed and gives no checksum.
    Rewrite { p: f64 },
    /// A listing that never ends: after `after` entries of a directory (one that has at least
    /// that many), the listing starts over from its first entry under fresh cookies, never
    /// saying eof. The failure that made a 1M-entry directory read as 1.7M+ entries.
    Replay { after: u64 },
}

/// The parsed `--faults` list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultSpec {
    pub faults: Vec<Fault>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("fault `{item}`: {why}")]
pub struct FaultSpecError {
    pub item: String,
    pub why: String,
}

/// Text for `--help`.
pub const FAULTS_HELP: &str = "\
Comma-separated list of KIND:PARAM=VALUE[:PARAM=VALUE]; NFS calls only (PORTMAP and MOUNT are
never faulted). every=N counts the NFS calls of each connection; p=P is a probability drawn
from a generator seeded by --seed and the connection number.
  reset:every=N         close the connection on every N-th call (that call is not answered)
  stall:every=N:ms=T    hold the reply of every N-th call for T ms (other calls go on)
  jukebox:p=P           answer NFS3ERR_JUKEBOX
  drop:p=P              never answer the call
  badcookie:p=P         answer NFS3ERR_BAD_COOKIE to a continued listing (cookie != 0)
  xid:every=N           send a copy of the reply under an unknown XID first
  truncate:every=N      send a record cut short, then close the connection
  hugerecord:every=N    send a record header claiming 2 GiB (0xffffffff), then close
  fragment:every=N      send the reply as many small record fragments
  names:p=P             add entries with hostile names to a READDIR/READDIRPLUS reply
                        ('/', NUL, '.', '..', invalid UTF-8, 4096 bytes); real entries are kept
  delay:p=P             answer NFS4ERR_DELAY (NFSv4; NFS3ERR_JUKEBOX over v3)
  badsession:every=N    NFSv4.1: destroy the session of every N-th call, answer NFS4ERR_BADSESSION
  rewrite:p=P           a file (chosen with probability P by fileid and --seed) changes on
                        every READ: new mtime, ctime and contents
  replay:after=N        in a directory of at least N entries, after N entries the listing starts
                        over from its first entry under fresh cookies and never says eof";

impl FromStr for FaultSpec {
    type Err = FaultSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut faults = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if faults.len() == FAULTS_MAX {
                return Err(FaultSpecError {
                    item: item.to_string(),
                    why: format!("at most {FAULTS_MAX} faults"),
                });
            }
            faults.push(parse_fault(item)?);
        }
        Ok(FaultSpec { faults })
    }
}

fn parse_fault(item: &str) -> Result<Fault, FaultSpecError> {
    let err = |why: String| FaultSpecError {
        item: item.to_string(),
        why,
    };
    let mut parts = item.split(':');
    let kind = parts.next().unwrap_or_default();
    let mut every = None;
    let mut ms = None;
    let mut p = None;
    let mut after = None;
    for part in parts {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| err(format!("`{part}` is not PARAM=VALUE")))?;
        match k {
            "every" => {
                let n: u64 = v
                    .parse()
                    .map_err(|_| err(format!("every=`{v}` is not a positive integer")))?;
                if n == 0 {
                    return Err(err("every must be at least 1".into()));
                }
                every = Some(n);
            }
            "ms" => {
                let n: u64 = v
                    .parse()
                    .map_err(|_| err(format!("ms=`{v}` is not an integer")))?;
                if n > STALL_MS_MAX {
                    return Err(err(format!("ms exceeds the limit of {STALL_MS_MAX}")));
                }
                ms = Some(n);
            }
            "p" => {
                let x: f64 = v
                    .parse()
                    .map_err(|_| err(format!("p=`{v}` is not a number")))?;
                if !(0.0..=1.0).contains(&x) {
                    return Err(err("p must be between 0 and 1".into()));
                }
                p = Some(x);
            }
            "after" => {
                let n: u64 = v
                    .parse()
                    .map_err(|_| err(format!("after=`{v}` is not a positive integer")))?;
                if n == 0 {
                    return Err(err("after must be at least 1".into()));
                }
                after = Some(n);
            }
            other => return Err(err(format!("unknown parameter `{other}`"))),
        }
    }
    let need_every = || every.ok_or_else(|| err(format!("{kind} needs every=N")));
    let need_p = || p.ok_or_else(|| err(format!("{kind} needs p=P")));
    let fault = match kind {
        "reset" => Fault::Reset {
            every: need_every()?,
        },
        "stall" => Fault::Stall {
            every: need_every()?,
            ms: ms.ok_or_else(|| err("stall needs ms=T".into()))?,
        },
        "jukebox" => Fault::Jukebox { p: need_p()? },
        "drop" => Fault::Drop { p: need_p()? },
        "badcookie" => Fault::BadCookie { p: need_p()? },
        "xid" => Fault::Xid {
            every: need_every()?,
        },
        "truncate" => Fault::Truncate {
            every: need_every()?,
        },
        "hugerecord" => Fault::HugeRecord {
            every: need_every()?,
        },
        "fragment" => Fault::Fragment {
            every: need_every()?,
        },
        "names" => Fault::Names { p: need_p()? },
        "delay" => Fault::Delay { p: need_p()? },
        "badsession" => Fault::BadSession {
            every: need_every()?,
        },
        "rewrite" => Fault::Rewrite { p: need_p()? },
        "replay" => Fault::Replay {
            after: after.ok_or_else(|| err("replay needs after=N".into()))?,
        },
        other => return Err(err(format!("unknown fault kind `{other}`"))),
    };
    let uses_every = matches!(
        fault,
        Fault::Reset { .. }
            | Fault::Stall { .. }
            | Fault::Xid { .. }
            | Fault::Truncate { .. }
            | Fault::HugeRecord { .. }
            | Fault::Fragment { .. }
            | Fault::BadSession { .. }
    );
    if (p.is_some() && uses_every) || (every.is_some() && !uses_every) {
        return Err(err(format!("parameter does not apply to {kind}")));
    }
    let replay = matches!(fault, Fault::Replay { .. });
    if (after.is_some() && !replay) || (replay && (p.is_some() || every.is_some())) {
        return Err(err(format!("parameter does not apply to {kind}")));
    }
    if ms.is_some() && !matches!(fault, Fault::Stall { .. }) {
        return Err(err(format!("ms does not apply to {kind}")));
    }
    Ok(fault)
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, fault) in self.faults.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match *fault {
                Fault::Reset { every } => write!(f, "reset:every={every}")?,
                Fault::Stall { every, ms } => write!(f, "stall:every={every}:ms={ms}")?,
                Fault::Jukebox { p } => write!(f, "jukebox:p={p}")?,
                Fault::Drop { p } => write!(f, "drop:p={p}")?,
                Fault::BadCookie { p } => write!(f, "badcookie:p={p}")?,
                Fault::Xid { every } => write!(f, "xid:every={every}")?,
                Fault::Truncate { every } => write!(f, "truncate:every={every}")?,
                Fault::HugeRecord { every } => write!(f, "hugerecord:every={every}")?,
                Fault::Fragment { every } => write!(f, "fragment:every={every}")?,
                Fault::Names { p } => write!(f, "names:p={p}")?,
                Fault::Delay { p } => write!(f, "delay:p={p}")?,
                Fault::BadSession { every } => write!(f, "badsession:every={every}")?,
                Fault::Rewrite { p } => write!(f, "rewrite:p={p}")?,
                Fault::Replay { after } => write!(f, "replay:after={after}")?,
            }
        }
        Ok(())
    }
}

impl FaultSpec {
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// Whether the regular file `fileid` is being rewritten (`rewrite:p=P`).
    pub fn rewrites(&self, seed: u64, fileid: u64) -> bool {
        self.faults.iter().any(|f| match *f {
            Fault::Rewrite { p } => Rng::new(hash3(seed, fileid, 0x0072_6577_7269_7465)).chance(p),
            _ => false,
        })
    }

    /// `replay:after=N`'s N, the smallest where several are given.
    pub fn replay_after(&self) -> Option<u64> {
        self.faults
            .iter()
            .filter_map(|f| match f {
                Fault::Replay { after } => Some(*after),
                _ => None,
            })
            .min()
    }
}

/// What happens to one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallFaults {
    pub reset: bool,
    pub stall_ms: Option<u64>,
    pub jukebox: bool,
    pub drop: bool,
    pub badcookie: bool,
    pub xid: bool,
    pub truncate: bool,
    pub hugerecord: bool,
    pub fragment: bool,
    pub names: bool,
    pub badsession: bool,
}

/// The fault state of one connection.
#[derive(Debug, Clone)]
pub struct ConnFaults {
    calls: u64,
    rng: Rng,
}

impl ConnFaults {
    pub fn new(seed: u64, connection: u64) -> Self {
        ConnFaults {
            calls: 0,
            rng: Rng::new(hash3(seed, connection, 0x0066_6175_6c74)),
        }
    }

    /// Decides the faults of the next NFS call of this connection.
    pub fn next_call(&mut self, spec: &FaultSpec) -> CallFaults {
        self.calls += 1;
        let n = self.calls;
        let mut out = CallFaults::default();
        for fault in &spec.faults {
            match *fault {
                Fault::Reset { every } => out.reset |= n % every == 0,
                Fault::Stall { every, ms } => {
                    if n % every == 0 {
                        out.stall_ms = Some(out.stall_ms.unwrap_or(0).max(ms));
                    }
                }
                Fault::Jukebox { p } => out.jukebox |= self.rng.chance(p),
                Fault::Drop { p } => out.drop |= self.rng.chance(p),
                Fault::BadCookie { p } => out.badcookie |= self.rng.chance(p),
                Fault::Xid { every } => out.xid |= n % every == 0,
                Fault::Truncate { every } => out.truncate |= n % every == 0,
                Fault::HugeRecord { every } => out.hugerecord |= n % every == 0,
                Fault::Fragment { every } => out.fragment |= n % every == 0,
                Fault::Names { p } => out.names |= self.rng.chance(p),
                // One meaning, "server busy", in both protocols.
                Fault::Delay { p } => out.jukebox |= self.rng.chance(p),
                Fault::BadSession { every } => out.badsession |= n % every == 0,
                // Per file, not per call: see FaultSpec::rewrites.
                Fault::Rewrite { .. } => {}
                // A property of listings, not of calls (see `FaultSpec::replay_after`).
                Fault::Replay { .. } => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        let spec: FaultSpec = "reset:every=100, stall:every=7:ms=250,jukebox:p=0.01,drop:p=0.5,\
                               badcookie:p=1,xid:every=3,truncate:every=9,hugerecord:every=11,\
                               fragment:every=2,names:p=0.25,replay:after=1000,delay:p=0.1,\
                               badsession:every=5,rewrite:p=0.5"
            .parse()
            .unwrap();
        assert_eq!(spec.faults.len(), 14);
        assert_eq!(spec.replay_after(), Some(1000));
        let rewritten = (0..1000).filter(|&id| spec.rewrites(7, id)).count();
        assert!((400..600).contains(&rewritten), "{rewritten}");
        assert!(!FaultSpec::default().rewrites(7, 1));
        assert_eq!(spec.faults[1], Fault::Stall { every: 7, ms: 250 });
        let again: FaultSpec = spec.to_string().parse().unwrap();
        assert_eq!(again, spec);
        assert!("".parse::<FaultSpec>().unwrap().is_empty());
    }

    #[test]
    fn rejects_bad_specs() {
        for bad in [
            "reset",
            "reset:every=0",
            "reset:p=0.5",
            "stall:every=3",
            "stall:every=3:ms=99999999",
            "jukebox:p=2",
            "jukebox:every=2",
            "drop:p=x",
            "explode:p=1",
            "names:p=0.1:ms=3",
            "xid:every",
            "badsession:p=0.1",
            "delay:every=3",
            "replay",
            "replay:after=0",
            "replay:after=5:p=0.5",
            "reset:every=3:after=2",
        ] {
            assert!(bad.parse::<FaultSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_counts_calls_and_p_is_seeded() {
        let spec: FaultSpec = "reset:every=3,drop:p=0.5".parse().unwrap();
        let mut a = ConnFaults::new(42, 0);
        let mut b = ConnFaults::new(42, 0);
        let resets: Vec<bool> = (0..6).map(|_| a.next_call(&spec).reset).collect();
        assert_eq!(resets, [false, false, true, false, false, true]);
        let drops_a: Vec<bool> = (0..100).map(|_| a.next_call(&spec).drop).collect();
        for _ in 0..6 {
            b.next_call(&spec);
        }
        let drops_b: Vec<bool> = (0..100).map(|_| b.next_call(&spec).drop).collect();
        assert_eq!(drops_a, drops_b);
        let hits = drops_a.iter().filter(|&&d| d).count();
        assert!((30..70).contains(&hits));
    }
}
