//! `nfs-walker completions SHELL` and `nfs-walker manpage`: shell completions and man pages
//! generated from the parser's own clap definitions, so they never drift from the options.

use anyhow::{Context, Result};
use clap_complete::Shell;
use std::io::Write;
use std::path::Path;

/// The completion script of `cmd` for `shell`.
pub fn completions(mut cmd: clap::Command, shell: Shell) -> Vec<u8> {
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out
}

/// The man page of `cmd` itself (its SUBCOMMANDS section names each subcommand's page).
pub fn manpage(cmd: clap::Command) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .context("rendering the man page")?;
    Ok(out)
}

/// Writes `nfs-walker.1` and one page per subcommand (`nfs-walker-scan.1`, ...) into `dir`.
/// Each page is written to a temporary file and renamed into place, so a page is whole or
/// absent. Returns the pages written.
pub fn write_manpages(cmd: clap::Command, dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    let mut pending = vec![cmd];
    while let Some(cmd) = pending.pop() {
        pending.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
        let man = clap_mangen::Man::new(cmd);
        let path = dir.join(man.get_filename());
        let mut page = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        man.render(&mut page)
            .and_then(|()| page.flush())
            .with_context(|| format!("writing {}", path.display()))?;
        page.persist(&path)
            .with_context(|| format!("renaming into {}", path.display()))?;
        written.push(path);
    }
    written.sort();
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every user-facing subcommand, from the parser itself: a new subcommand is covered here
    /// without touching this test.
    fn subcommands() -> Vec<String> {
        let names: Vec<String> = crate::Cli::command()
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        assert!(names.iter().any(|n| n == "scan"), "{names:?}");
        names
    }

    #[test]
    fn completions_mention_every_subcommand() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = String::from_utf8(completions(crate::Cli::command(), shell)).unwrap();
            for name in subcommands() {
                assert!(text.contains(&name), "{shell} completions lack `{name}`");
            }
            // Options of subcommands are completed too, not only their names (scan's --output).
            assert!(
                text.contains("output"),
                "{shell} completions lack scan's options"
            );
        }
    }

    #[test]
    fn manpage_mentions_every_subcommand() {
        let text = String::from_utf8(manpage(crate::Cli::command()).unwrap()).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "not roff: {text:.200}"
        );
        for name in subcommands() {
            assert!(
                text.contains(&format!("nfs\\-walker\\-{name}(1)")),
                "page lacks `{name}`"
            );
        }
    }

    #[test]
    fn manpage_dir_has_a_page_per_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_manpages(crate::Cli::command(), dir.path()).unwrap();
        let mut expected: Vec<String> = subcommands()
            .iter()
            .map(|n| format!("nfs-walker-{n}.1"))
            .collect();
        expected.push("nfs-walker.1".to_string());
        expected.sort();
        let mut found: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        found.sort();
        assert_eq!(found, expected);
        assert_eq!(written.len(), expected.len());
        let scan = std::fs::read_to_string(dir.path().join("nfs-walker-scan.1")).unwrap();
        assert!(
            scan.contains("\\-\\-output"),
            "scan's page lacks its options"
        );
    }
}
