//! Records the git commit and the target the binary is built for (`nfs-walker --version`). A build from a
//! source tarball or a crates.io package has no `.git`: the commit is then "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    // Only the repository whose top is this package counts: a tarball unpacked inside some other
    // git checkout must not report that checkout's commit.
    let own_repo = git(&["-C", &manifest_dir, "rev-parse", "--show-toplevel"]).is_some_and(|top| {
        std::fs::canonicalize(top).ok() == std::fs::canonicalize(&manifest_dir).ok()
    });
    let commit = own_repo
        .then(|| git(&["-C", &manifest_dir, "rev-parse", "--short=12", "HEAD"]))
        .flatten();
    println!(
        "cargo:rustc-env=NFS_WALKER_GIT_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
    // The target triple, for `--version` (the static build says x86_64-unknown-linux-musl).
    println!(
        "cargo:rustc-env=NFS_WALKER_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
    // Rerun when HEAD moves (a commit, a checkout), not on every source change. Only files that
    // exist: cargo reruns a script on every build while a watched path is missing.
    println!("cargo:rerun-if-changed=build.rs");
    if own_repo {
        let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
        watched.extend(git(&["-C", &manifest_dir, "symbolic-ref", "-q", "HEAD"]));
        for name in watched {
            if let Some(p) = git(&["-C", &manifest_dir, "rev-parse", "--git-path", &name]) {
                let p = abs(&manifest_dir, &p);
                if std::path::Path::new(&p).exists() {
                    println!("cargo:rerun-if-changed={p}");
                }
            }
        }
    }
}

/// `git rev-parse --git-path` answers relative to the directory it ran in.
fn abs(dir: &str, path: &str) -> String {
    let p = std::path::Path::new(path);
    if p.is_absolute() {
        path.to_string()
    } else {
        std::path::Path::new(dir).join(p).display().to_string()
    }
}
