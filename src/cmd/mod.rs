//! The command-line subcommands.

pub mod bench;
pub mod content;
pub mod demo;
pub mod ls;
pub mod scan;
pub mod stats;

use clap::Args;
use nfs_walker::client::{ClientOptions, SourcePort};
use std::time::Duration;

#[derive(Args, Clone, Debug)]
pub struct ClientArgs {
    /// AUTH_SYS uid (default: the caller's; the URL's uid= wins)
    #[arg(long)]
    pub uid: Option<u32>,
    /// AUTH_SYS gid (default: the caller's; the URL's gid= wins)
    #[arg(long)]
    pub gid: Option<u32>,
    /// Never bind a privileged (<1024) source port, even where allowed
    #[arg(long)]
    pub unprivileged_port: bool,
    /// Timeout of connection set-up and mount calls, in seconds
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
}

impl ClientArgs {
    pub fn options(&self) -> ClientOptions {
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

/// `YYYY-MM-DD HH:MM` in UTC for seconds since the epoch (days-from-civil inverse, so no
/// time-zone database is needed).
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::format_utc(0), "1970-01-01 00:00");
        assert_eq!(super::format_utc(2_147_483_648), "2038-01-19 03:14");
        assert_eq!(super::format_utc(4_102_444_800), "2100-01-01 00:00");
        assert_eq!(super::format_utc(951_782_400), "2000-02-29 00:00");
    }
}
