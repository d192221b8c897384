//! `nfs-walker diff` against a real server: a tree on nfs-ganesha is scanned, changed in every
//! way the issue lists, the server restarted (it caches attributes), scanned again, and the
//! diff must report exactly those changes and nothing else, from databases and from NDJSON.
//! The server is an instance of our own (own state directory, ports and export) beside the
//! shared one, so changing files and restarting it disturbs no other test.

mod common;

use common::{in_ci, run_walker};
use nfs_walker::record::EntryType;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An nfs-ganesha of this test's own, started with tests/fixtures/ganesha.sh.
struct OwnGanesha {
    run_dir: PathBuf,
    export: PathBuf,
    nfs_port: u16,
    mnt_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl OwnGanesha {
    /// None (the test is skipped) where ganesha cannot run here: not root, or not installed.
    /// Under CI both are required.
    fn start(export: &Path, run_dir: &Path) -> Option<OwnGanesha> {
        let root = unsafe { libc::geteuid() } == 0;
        let installed = Command::new("sh")
            .args(["-c", "command -v ganesha.nfsd"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !(root && installed) {
            assert!(
                !in_ci(),
                "CI must run the diff test against nfs-ganesha (root and ganesha.nfsd needed)"
            );
            eprintln!("note: not root or no ganesha.nfsd: skipping");
            return None;
        }
        let g = OwnGanesha {
            run_dir: run_dir.to_path_buf(),
            export: export.to_path_buf(),
            nfs_port: free_port(),
            mnt_port: free_port(),
        };
        g.script("start");
        Some(g)
    }

    fn script(&self, what: &str) {
        let mut cmd = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ganesha.sh"
        ));
        cmd.arg(what)
            .env("LAB_RUN_DIR", &self.run_dir)
            .env("MNT_PORT", self.mnt_port.to_string());
        if what == "start" {
            cmd.arg(&self.export).arg(self.nfs_port.to_string());
        }
        let out = cmd.output().expect("run ganesha.sh");
        assert!(
            out.status.success(),
            "ganesha.sh {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if what == "start" {
            // The MOUNT service may answer a moment after the NFS one.
            for _ in 0..50 {
                if std::net::TcpStream::connect(("127.0.0.1", self.mnt_port)).is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }

    /// Stops and starts the server: ganesha caches attributes, and a fresh one reads them all
    /// from the file system.
    fn restart(&self) {
        self.script("stop");
        self.script("start");
    }

    fn url(&self) -> String {
        format!(
            "nfs://127.0.0.1/export?version=3&nfsport={}&mountport={}",
            self.nfs_port, self.mnt_port
        )
    }
}

impl Drop for OwnGanesha {
    fn drop(&mut self) {
        self.script("stop");
    }
}

fn write(path: &Path, body: &str) {
    fs::write(path, body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// The tree before: one of each thing about to change, and some that will not.
fn build_tree(root: &Path) {
    for d in ["keep", "sub/deep", "dest", "stays/inner"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for (f, body) in [
        ("keep/same.txt", "unchanged\n"),
        ("del.txt", "to be deleted\n"),
        ("app.txt", "short\n"),
        ("mod.txt", "chmod me\n"),
        ("own.txt", "chown me\n"),
        ("touch.txt", "touch me\n"),
        ("ren.txt", "rename me\n"),
        ("sub/a.txt", "moves with sub\n"),
        ("sub/deep/b.txt", "moves with sub too\n"),
        ("rep", "a file that becomes a directory\n"),
        ("hl.txt", "gets a second name\n"),
        ("stays/inner/c.txt", "unchanged, deeper\n"),
    ] {
        write(&root.join(f), body);
    }
    fs::set_permissions(root.join("mod.txt"), fs::Permissions::from_mode(0o644)).unwrap();
}

/// The changes, new objects first so that no inode number freed here is reused by them.
fn change_tree(root: &Path) {
    write(&root.join("new.txt"), "added\n");
    fs::create_dir(root.join("newdir")).unwrap();
    write(&root.join("newdir/x.txt"), "added below a new directory\n");
    fs::hard_link(root.join("hl.txt"), root.join("hl2.txt")).unwrap();
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(root.join("app.txt"))
            .unwrap();
        f.write_all(b"appended bytes\n").unwrap();
    }
    fs::set_permissions(root.join("mod.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(root.join("own.txt"), Some(1234), Some(5678)).unwrap();
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_500_000_000);
    fs::File::options()
        .write(true)
        .open(root.join("touch.txt"))
        .unwrap()
        .set_modified(t)
        .unwrap();
    fs::rename(root.join("ren.txt"), root.join("ren2.txt")).unwrap();
    fs::rename(root.join("sub"), root.join("dest/sub")).unwrap();
    fs::remove_file(root.join("rep")).unwrap();
    fs::create_dir(root.join("rep")).unwrap();
    fs::remove_file(root.join("del.txt")).unwrap();
}

/// (change, path, old_path) → fields, from NDJSON change records.
type Changes = BTreeMap<(String, String, Option<String>), Vec<String>>;

fn parse_changes(ndjson: &[u8]) -> Changes {
    let mut out = Changes::new();
    for line in std::str::from_utf8(ndjson).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let fields = v["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .collect();
        // The records carry the entry's attributes on the sides that have it.
        match s("change").unwrap().as_str() {
            "added" => assert!(v.get("old").is_none() && v["new"].is_object(), "{line}"),
            "deleted" => assert!(v.get("new").is_none() && v["old"].is_object(), "{line}"),
            _ => assert!(v["old"].is_object() && v["new"].is_object(), "{line}"),
        }
        let key = (s("change").unwrap(), s("path").unwrap(), s("old_path"));
        assert!(out.insert(key, fields).is_none(), "reported twice: {line}");
    }
    out
}

fn set(fields: &[&str]) -> Vec<String> {
    fields.iter().map(|s| s.to_string()).collect()
}

/// Exactly the changes made, and the directories they touched (whose times, link counts and
/// sizes follow from them).
fn check(changes: &Changes, what: &str) {
    let key =
        |c: &str, p: &str, o: Option<&str>| (c.to_string(), p.to_string(), o.map(str::to_string));
    let mut expected_files: BTreeMap<_, Vec<String>> = BTreeMap::new();
    expected_files.insert(key("added", "new.txt", None), vec![]);
    expected_files.insert(key("added", "newdir", None), vec![]);
    expected_files.insert(key("added", "newdir/x.txt", None), vec![]);
    expected_files.insert(key("added", "hl2.txt", None), vec![]);
    expected_files.insert(key("deleted", "del.txt", None), vec![]);
    expected_files.insert(key("type_changed", "rep", None), set(&[]));
    expected_files.insert(key("modified", "mod.txt", None), set(&["ctime", "mode"]));
    expected_files.insert(
        key("modified", "own.txt", None),
        set(&["ctime", "uid", "gid"]),
    );
    expected_files.insert(key("modified", "touch.txt", None), set(&["mtime", "ctime"]));
    expected_files.insert(key("modified", "hl.txt", None), set(&["ctime", "nlink"]));
    // Appending 15 bytes to 6 keeps one 4 KiB block: `used` need not change.
    expected_files.insert(
        key("modified", "app.txt", None),
        set(&["size", "mtime", "ctime"]),
    );
    expected_files.insert(key("renamed", "ren2.txt", Some("ren.txt")), set(&["ctime"]));
    // The moved directory once; what is below it not at all.
    expected_files.insert(key("renamed", "dest/sub", Some("sub")), set(&[]));
    let dirs_touched = [key("modified", ".", None), key("modified", "dest", None)];
    let dir_fields = ["size", "used", "mtime", "ctime", "nlink"];
    let mut got = changes.clone();
    for (k, fields) in &expected_files {
        let f = got
            .remove(k)
            .unwrap_or_else(|| panic!("{what}: missing {k:?}; got {changes:#?}"));
        let (kind, path, _) = k;
        match kind.as_str() {
            "added" | "deleted" => assert!(f.is_empty(), "{what}: {k:?} has fields {f:?}"),
            "type_changed" => assert!(f.contains(&"type".to_string()), "{what}: {path}: {f:?}"),
            "renamed" if path == "dest/sub" => {
                // A directory moved to another parent may get new times (its `..` changed).
                assert!(
                    f.iter().all(|x| dir_fields.contains(&x.as_str())),
                    "{what}: {f:?}"
                )
            }
            "renamed" => {
                assert!(f.iter().all(|x| x == "ctime"), "{what}: {path}: {f:?}")
            }
            "modified" if path == "app.txt" => {
                let mut want = fields.clone();
                if f.contains(&"used".to_string()) {
                    want.push("used".into());
                }
                let (mut a, mut b) = (f.clone(), want);
                a.sort();
                b.sort();
                assert_eq!(a, b, "{what}: {path}")
            }
            _ => {
                let (mut a, mut b) = (f.clone(), fields.clone());
                a.sort();
                b.sort();
                assert_eq!(a, b, "{what}: {path}")
            }
        }
    }
    for k in &dirs_touched {
        let f = got
            .remove(k)
            .unwrap_or_else(|| panic!("{what}: missing {k:?}; got {changes:#?}"));
        assert!(
            f.contains(&"mtime".to_string()) && f.iter().all(|x| dir_fields.contains(&x.as_str())),
            "{what}: {k:?}: {f:?}"
        );
    }
    assert!(got.is_empty(), "{what}: unexpected changes {got:#?}");
}

fn scan(url: &str, out: &Path) {
    let o = run_walker(&["scan", url, "-q", "-o", out.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "scan into {}: {}",
        out.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn diff(old: &Path, new: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "diff",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
        "--format",
        "ndjson",
    ];
    args.extend_from_slice(extra);
    run_walker(&args)
}

#[test]
fn diff_reports_exactly_the_changes_made_on_nfs_ganesha() {
    let work = tempfile::tempdir().unwrap();
    let export = work.path().join("export");
    fs::create_dir(&export).unwrap();
    build_tree(&export);
    let Some(server) = OwnGanesha::start(&export, &work.path().join("ganesha")) else {
        return;
    };
    let url = server.url();
    let (old_db, new_db) = (work.path().join("old.db"), work.path().join("new.db"));
    let (old_nd, new_nd) = (
        work.path().join("old.ndjson"),
        work.path().join("new.ndjson"),
    );
    scan(&url, &old_db);
    scan(&url, &old_nd);

    // Nothing changed: nothing reported.
    let same = diff(&old_db, &old_nd, &[]);
    assert!(
        same.status.success(),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    assert!(
        same.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );

    change_tree(&export);
    server.restart();
    // The baseline option writes the same changes as the diff command.
    let changes_file = work.path().join("changes.ndjson");
    let o = run_walker(&[
        "scan",
        &url,
        "-q",
        "-o",
        new_db.to_str().unwrap(),
        "--baseline",
        old_db.to_str().unwrap(),
        "--changes",
        changes_file.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    scan(&url, &new_nd);

    let from_db = diff(&old_db, &new_db, &[]);
    assert!(
        from_db.status.success(),
        "{}",
        String::from_utf8_lossy(&from_db.stderr)
    );
    let db_changes = parse_changes(&from_db.stdout);
    check(&db_changes, "databases");
    let from_nd = diff(&old_nd, &new_nd, &[]);
    assert!(
        from_nd.status.success(),
        "{}",
        String::from_utf8_lossy(&from_nd.stderr)
    );
    check(&parse_changes(&from_nd.stdout), "NDJSON");
    assert_eq!(from_db.stdout, from_nd.stdout, "databases and NDJSON agree");
    assert_eq!(
        fs::read(&changes_file).unwrap(),
        from_db.stdout,
        "scan --baseline --changes writes what diff writes"
    );
    // A database against NDJSON works as well.
    let mixed = diff(&old_db, &new_nd, &[]);
    assert_eq!(mixed.stdout, from_db.stdout);

    // The summary counts the same changes: the root's directory and `dest`.
    let s = diff(&old_db, &new_db, &["--summary", "--depth", "1"]);
    let rows: Vec<Value> = std::str::from_utf8(&s.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let total = rows.last().unwrap();
    assert_eq!(total["directory"], "(total)");
    assert_eq!(total["added"], 4);
    assert_eq!(total["deleted"], 1);
    assert_eq!(total["renamed"], 2);
    assert_eq!(total["type_changed"], 1);
    assert_eq!(total["modified"], 7);
    let dest = rows.iter().find(|r| r["directory"] == "dest").unwrap();
    assert_eq!(
        (dest["renamed"].as_u64(), dest["modified"].as_u64()),
        (Some(1), Some(0))
    );
}

#[test]
fn diff_refuses_what_it_cannot_compare() {
    let work = tempfile::tempdir().unwrap();
    let a = work.path().join("a.ndjson");
    let b = work.path().join("b.ndjson");
    let root = |fileid: u64| {
        format!(
            "{{\"path\":\".\",\"type\":\"dir\",\"size\":4096,\"used\":4096,\"mode\":493,\
             \"nlink\":2,\"uid\":0,\"gid\":0,\"fileid\":{fileid},\"fsid\":1,\"atime_ns\":0,\
             \"mtime_ns\":0,\"ctime_ns\":0,\"depth\":0}}\n"
        )
    };
    fs::write(&a, root(1)).unwrap();
    fs::write(&b, root(2)).unwrap();
    // Different roots: refused with the reason, accepted with --force.
    let o = diff(&a, &b, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("different roots") && err.contains("--force"),
        "{err}"
    );
    let o = diff(&a, &b, &["--force"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        parse_changes(&o.stdout).len(),
        2,
        "the old root deleted, the new one added"
    );
    // Not a scan: one clear line.
    let text = work.path().join("notes.txt");
    fs::write(&text, "hello\n").unwrap();
    let o = diff(&text, &b, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("notes.txt: not a scan"), "{err}");
    // A scan that stopped mid-line: a warning that "deleted" may mean "not scanned".
    let mut cut = root(1);
    cut.push_str("{\"path\":\"x\",\"type\":\"fi");
    fs::write(&b, cut).unwrap();
    let o = diff(&a, &b, &[]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("\"deleted\" may mean \"not scanned\""),
        "{err}"
    );
}

/// Writes a mock tree's exact listing as NDJSON.
fn write_listing(config: &mock_nfsd::Config, path: &Path) -> Vec<nfs_walker::record::EntryRecord> {
    let records: Vec<_> = mock_nfsd::listing(config, false).collect();
    let mut out = Vec::new();
    for r in &records {
        r.write_ndjson(&mut out);
    }
    fs::write(path, out).unwrap();
    records
}

fn last(path: &str) -> &str {
    path.rsplit('/').next().unwrap()
}

#[test]
fn diff_of_a_mutated_mock_tree_finds_every_change_once_from_scans_and_listings() {
    let work = tempfile::tempdir().unwrap();
    let plain = mock_nfsd::Config {
        tree: "mixed:30000:4".parse().unwrap(),
        ..Default::default()
    };
    let mutated = mock_nfsd::Config {
        mutate: Some("9:0.05".parse().unwrap()),
        ..plain.clone()
    };
    // The exact listings (the oracle) and scans of both servers into databases.
    let before = write_listing(&plain, &work.path().join("before.ndjson"));
    let after = write_listing(&mutated, &work.path().join("after.ndjson"));
    for (config, name) in [(&plain, "old.db"), (&mutated, "new.db")] {
        let server = mock_nfsd::Server::start(config.clone()).unwrap();
        scan(&server.url(), &work.path().join(name));
        server.shutdown();
    }
    let from_listings = diff(
        &work.path().join("before.ndjson"),
        &work.path().join("after.ndjson"),
        &[],
    );
    assert!(from_listings.status.success());
    let from_scans = diff(
        &work.path().join("old.db"),
        &work.path().join("new.db"),
        &[],
    );
    assert!(
        from_scans.status.success(),
        "{}",
        String::from_utf8_lossy(&from_scans.stderr)
    );
    assert_eq!(
        from_scans.stdout, from_listings.stdout,
        "scans and listings agree"
    );
    let changes = parse_changes(&from_scans.stdout);

    // Every added entry is a new file, and all of them are reported.
    let new_files = after
        .iter()
        .filter(|r| last(&String::from_utf8_lossy(&r.path)).starts_with("new-file_"))
        .count();
    let count = |kind: &str| changes.keys().filter(|(k, _, _)| k == kind).count();
    assert!(new_files > 100, "the mutation adds files: {new_files}");
    assert_eq!(count("added"), new_files);
    for (kind, path, old_path) in changes.keys() {
        match kind.as_str() {
            "added" => assert!(last(path).starts_with("new-file_"), "{path}"),
            "renamed" => {
                // The mutation renames by the last component: `mv-` put in front (or over the
                // first bytes of a 255-byte name).
                let old = old_path.as_deref().unwrap();
                assert!(last(path).starts_with("mv-"), "{old} -> {path}");
                assert_eq!(
                    path.matches('/').count(),
                    old.matches('/').count(),
                    "{old} -> {path}"
                );
            }
            "deleted" | "modified" => {}
            other => panic!("unexpected {other} {path}"),
        }
    }
    // Deleted: what was listed before and is gone (renamed entries are still there).
    let (before_n, after_n) = (before.len(), after.len());
    assert_eq!(
        count("deleted"),
        before_n - (after_n - new_files),
        "every entry that vanished is reported deleted once"
    );
    // Modified entries changed in the mutation's ways only.
    for ((kind, path, _), fields) in &changes {
        if kind == "modified" {
            assert!(
                fields.iter().all(|f| {
                    ["size", "used", "mtime", "ctime", "mode", "uid", "gid"].contains(&f.as_str())
                }),
                "{path}: {fields:?}"
            );
        }
    }
    // Each object renamed itself is reported once, and nothing below a renamed directory is
    // reported as renamed: renames are exactly the names that got the prefix.
    let renamed_names = after
        .iter()
        .filter(|r| last(&String::from_utf8_lossy(&r.path)).starts_with("mv-"))
        .count();
    assert!(renamed_names > 100, "{renamed_names}");
    assert_eq!(count("renamed"), renamed_names);
}

/// One NDJSON entry record.
fn rec(path: &str, kind: &str, fileid: u64, ctime_ns: i64, nlink: u32) -> String {
    format!(
        "{{\"path\":\"{path}\",\"type\":\"{kind}\",\"size\":1,\"used\":4096,\"mode\":420,\
         \"nlink\":{nlink},\"uid\":0,\"gid\":0,\"fileid\":{fileid},\"fsid\":1,\"atime_ns\":0,\
         \"mtime_ns\":5,\"ctime_ns\":{ctime_ns},\"depth\":{}}}\n",
        path.matches('/').count() + usize::from(path != ".")
    )
}

#[test]
fn fileid_reuse_and_hard_links_follow_the_documented_rules() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a.ndjson"), work.path().join("b.ndjson"));
    let root = rec(".", "dir", 1, 10, 4);
    let old = [
        root.clone(),
        rec("d", "dir", 2, 10, 2),
        rec("e", "dir", 3, 10, 2),
        // Hard-linked pair, both names moved from d to e.
        rec("d/h1", "file", 10, 10, 2),
        rec("d/h2", "file", 10, 10, 2),
        // A fileid reused by a new file whose ctime is earlier: another object.
        rec("old.txt", "file", 20, 1000, 1),
        // A fileid reused by a directory.
        rec("f", "file", 30, 10, 1),
        // Two names, one removed.
        rec("l1", "file", 40, 10, 2),
        rec("l2", "file", 40, 10, 2),
    ]
    .concat();
    let new = [
        root,
        rec("d", "dir", 2, 10, 2),
        rec("e", "dir", 3, 10, 2),
        rec("e/h1", "file", 10, 10, 2),
        rec("e/h2", "file", 10, 10, 2),
        rec("new.txt", "file", 20, 500, 1),
        rec("g", "dir", 30, 20, 2),
        rec("l1", "file", 40, 20, 1),
    ]
    .concat();
    fs::write(&a, old).unwrap();
    fs::write(&b, new).unwrap();
    let o = diff(&a, &b, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: Vec<(String, String, Option<String>)> = parse_changes(&o.stdout).into_keys().collect();
    let k =
        |c: &str, p: &str, o: Option<&str>| (c.to_string(), p.to_string(), o.map(str::to_string));
    let mut want = vec![
        // Hard links moved as a pair, by name.
        k("renamed", "e/h1", Some("d/h1")),
        k("renamed", "e/h2", Some("d/h2")),
        k("deleted", "old.txt", None),
        k("added", "new.txt", None),
        k("deleted", "f", None),
        k("added", "g", None),
        k("modified", "l1", None),
        k("deleted", "l2", None),
    ];
    want.sort();
    let mut got = got;
    got.sort();
    assert_eq!(got, want);
}

/// Splits CSV text into rows of fields (RFC 4180: quoted fields may hold commas, quotes and
/// line breaks).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

/// Over NFSv4 from a server that sends owner names, the mutation's chown (root and alice swap)
/// changes names while the ids stay `nobody`: `diff` reports exactly the entries whose owner
/// or group name changed, with `owner` / `group` among their fields and not `uid` / `gid`, and
/// the names before and after in NDJSON, CSV and the table.
#[test]
fn owner_name_changes_over_nfs4_are_reported_in_every_format() {
    let work = tempfile::tempdir().unwrap();
    let plain = mock_nfsd::Config {
        tree: "mixed:5000:4".parse().unwrap(),
        owner_names: true,
        ..Default::default()
    };
    let mutated = mock_nfsd::Config {
        mutate: Some("9:0.2".parse().unwrap()),
        ..plain.clone()
    };
    let (old, new) = (work.path().join("old.ndjson"), work.path().join("new.db"));
    for (config, out) in [(&plain, &old), (&mutated, &new)] {
        let server = mock_nfsd::Server::start(config.clone()).unwrap();
        let url = format!("nfs://127.0.0.1/export?version=4&nfsport={}", server.port());
        scan(&url, out);
        server.shutdown();
    }
    // The oracle: for each object on both sides (one fileid, one type), the names before and
    // after, under its new path (an object below a renamed directory is `modified` there).
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let before: HashMap<(u64, EntryType), nfs_walker::record::EntryRecord> =
        mock_nfsd::listing(&plain, false)
            .map(|r| ((r.attrs.fileid, r.attrs.kind), r))
            .collect();
    let name = |n: &Option<Vec<u8>>| n.as_deref().map(lossy).unwrap_or_default();
    // path -> (old owner, new owner, old group, new group) where a name changed.
    let mut want: BTreeMap<String, [String; 4]> = BTreeMap::new();
    let (mut owners, mut groups) = (0, 0);
    for r in mock_nfsd::listing(&mutated, false) {
        let path = lossy(&r.path);
        let Some(b) = before.get(&(r.attrs.fileid, r.attrs.kind)) else {
            continue;
        };
        if b.owner != r.owner || b.group != r.group {
            owners += usize::from(b.owner != r.owner);
            groups += usize::from(b.group != r.group);
            let names = [
                name(&b.owner),
                name(&r.owner),
                name(&b.group),
                name(&r.group),
            ];
            want.insert(path, names);
        }
    }
    assert!(owners > 50 && groups > 50, "{owners} {groups}");

    let o = diff(&old, &new, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut got: BTreeMap<String, [String; 4]> = BTreeMap::new();
    for line in std::str::from_utf8(&o.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let fields: Vec<&str> = v["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        let (o_changed, g_changed) = (fields.contains(&"owner"), fields.contains(&"group"));
        // A fileid reused by an object of another type is another object.
        if !(o_changed || g_changed) || v["change"] == "type_changed" {
            continue;
        }
        assert!(
            !fields.contains(&"uid") && !fields.contains(&"gid"),
            "the ids stay nobody: {line}"
        );
        let n = |side: &str, k: &str| v[side][k].as_str().unwrap_or_default().to_string();
        let names = [
            n("old", "owner"),
            n("new", "owner"),
            n("old", "group"),
            n("new", "group"),
        ];
        assert_eq!(o_changed, names[0] != names[1], "{line}");
        assert_eq!(g_changed, names[2] != names[3], "{line}");
        got.insert(v["path"].as_str().unwrap().to_string(), names);
    }
    assert_eq!(got, want, "NDJSON change records");

    // CSV: the names in their columns, the fields among the others.
    let in_format = |format: &str| {
        let o = run_walker(&[
            "diff",
            old.to_str().unwrap(),
            new.to_str().unwrap(),
            "--format",
            format,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let csv = in_format("csv");
    let rows = csv_rows(&csv);
    let col = |c: &str| rows[0].iter().position(|h| h == c).unwrap();
    let (path, fields) = (col("path"), col("fields"));
    let names = ["old_owner", "new_owner", "old_group", "new_group"].map(col);
    let from_csv: BTreeMap<String, [String; 4]> = rows[1..]
        .iter()
        .filter(|r| r[0] != "type_changed")
        .filter(|r| r[fields].split(';').any(|f| f == "owner" || f == "group"))
        .map(|r| (r[path].clone(), names.map(|i| r[i].clone())))
        .collect();
    assert_eq!(from_csv, want, "CSV rows");

    // The table: the fields in brackets.
    let table = in_format("table");
    let with = |f: &str| {
        table
            .lines()
            .filter(|l| !l.starts_with("type_changed"))
            .filter(|l| l.rsplit_once('[').is_some_and(|(_, b)| b.contains(f)))
            .count()
    };
    assert_eq!(
        (with("owner"), with("group")),
        (owners, groups),
        "table lines"
    );
}
