//! `nfs-walker --version`: what this binary is (version, commit, target) and which I/O backends
//! this kernel lets it use, probed now, because the same static binary meets kernels and
//! sandboxes with and without io_uring.

use nfs_walker::ring::{Backend, Ring, RingConfig};

/// `0.1.0 (commit 86017f2a1b2c)`, for `-V`; the commit is "unknown" in a build without `.git`.
pub const SHORT: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("NFS_WALKER_GIT_COMMIT"),
    ")"
);

/// The `--version` text: [`SHORT`], the build target and the backends a ring opens on here.
pub fn long() -> String {
    let mut usable = Vec::new();
    let mut refused = Vec::new();
    for backend in [Backend::Uring, Backend::Epoll] {
        match Ring::new(backend, &RingConfig::default()) {
            Ok(_) => usable.push(backend.to_string()),
            Err(e) => refused.push(format!("{backend}: {e}")),
        }
    }
    let mut text = format!(
        "{SHORT}\ntarget: {}{}\nI/O backends on this kernel: {}",
        env!("NFS_WALKER_TARGET"),
        if cfg!(target_feature = "crt-static") {
            ", statically linked"
        } else {
            ""
        },
        if usable.is_empty() {
            "none".to_string()
        } else {
            usable.join(", ")
        }
    );
    if !refused.is_empty() {
        text.push_str(&format!(" (not available: {})", refused.join("; ")));
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_version_commit_and_every_backend() {
        let text = super::long();
        assert!(text.starts_with(env!("CARGO_PKG_VERSION")), "{text}");
        assert!(text.contains(env!("NFS_WALKER_GIT_COMMIT")), "{text}");
        // Each backend is either listed as usable or explained as not available.
        for backend in ["uring", "epoll"] {
            assert!(text.contains(backend), "{backend} missing from {text}");
        }
        // epoll exists on every Linux this runs on.
        let line = text
            .lines()
            .find(|l| l.starts_with("I/O backends"))
            .unwrap();
        assert!(
            line.contains("kernel: uring, epoll") || line.contains("kernel: epoll"),
            "{line}"
        );
    }
}
