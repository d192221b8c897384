//! The shared queue against a real redis-server: several hosts (threads, each with its own
//! queue connection and its own "output") walk a synthetic tree through one queue; hosts die
//! and rejoin, Redis restarts; the union of what the hosts made durable must be exactly the
//! tree. The walk is simulated here so that these tests pin down the queue itself; the scan
//! tests run real processes against mock-nfsd.

mod common;

use common::redis::RedisServer;
use nfs_walker::queue::redis::{ClaimedTask, RedisQueue, ScanIdentity};
use nfs_walker::queue::source::{HostShare, QueueOptions, QueueSource, SourceState};
use nfs_walker::queue::tasks::RedisTasks;
use nfs_walker::queue::QueueUrl;
use nfs_walker::rpc::nfs3::FileHandle;
use nfs_walker::sched::{TaskQueue, TaskSource};
use nfs_walker::walker::{DirTask, Task};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// A deterministic tree: the number of subdirectories and files of a directory follows from
/// a hash of its path.
fn hash(p: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in p {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

const DEPTH_MAX: u32 = 5;

fn listing(path: &[u8], depth: u32) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    listing_to(path, depth, DEPTH_MAX)
}

/// The tree down to `depth_max` (each directory's listing does not depend on it).
fn listing_to(path: &[u8], depth: u32, depth_max: u32) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let h = hash(path);
    let subdirs = if depth == 0 {
        8
    } else if depth < depth_max {
        (h % 5) as usize
    } else {
        0
    };
    let files = ((h >> 8) % 12) as usize;
    let join = |name: String| -> Vec<u8> {
        if path == b"." {
            name.into_bytes()
        } else {
            let mut p = path.to_vec();
            p.push(b'/');
            p.extend_from_slice(name.as_bytes());
            p
        }
    };
    (
        (0..subdirs).map(|i| join(format!("d{i}"))).collect(),
        (0..files).map(|i| join(format!("f{i}"))).collect(),
    )
}

fn expected_tree() -> BTreeSet<Vec<u8>> {
    expected_tree_to(DEPTH_MAX)
}

fn expected_tree_to(depth_max: u32) -> BTreeSet<Vec<u8>> {
    let mut all = BTreeSet::new();
    let mut stack = vec![(b".".to_vec(), 0u32)];
    all.insert(b".".to_vec());
    while let Some((p, d)) = stack.pop() {
        let (dirs, files) = listing_to(&p, d, depth_max);
        all.extend(files);
        for c in dirs {
            all.insert(c.clone());
            stack.push((c, d + 1));
        }
    }
    all
}

fn root() -> DirTask {
    DirTask {
        fh: FileHandle::from_bytes(&[1; 8]).unwrap(),
        path: b".".to_vec(),
        depth: 0,
        fsid: 1,
    }
}

fn identity(url: &str) -> ScanIdentity {
    ScanIdentity {
        url: url.to_string(),
        options: r#"{"mode":"plus"}"#.to_string(),
    }
}

/// What one host made durable, and how it ended.
struct HostRun {
    durable: Vec<Vec<u8>>,
    share: HostShare,
    completed: bool,
}

/// "Lists" task `t`: its entries (and the root itself) go to `pending` (written, not yet
/// durable), its subdirectories back to the queue as the task finishes.
fn list_task(source: &QueueSource, t: &ClaimedTask, pending: &mut Vec<Vec<u8>>) {
    let (dirs, files) = listing(&t.task.path, t.task.depth);
    if t.task.depth == 0 {
        pending.push(t.task.path.clone());
    }
    pending.extend(dirs.iter().cloned());
    pending.extend(files.iter().cloned());
    let children = dirs
        .into_iter()
        .map(|p| DirTask {
            fh: FileHandle::from_bytes(&hash(&p).to_le_bytes()).unwrap(),
            path: p,
            depth: t.task.depth + 1,
            fsid: 1,
        })
        .collect::<Vec<_>>();
    let n = (children.len() + files.len()) as u64;
    source.finished(t.id, children, n);
}

/// One host: takes tasks, "lists" them (with `latency`), checkpoints every 20 ms or when the
/// source asks; with `die_after`, stops dead after that many listings (what it had not made
/// durable is lost, as with SIGKILL).
fn host(
    url: &QueueUrl,
    consumer: &str,
    latency: Duration,
    die_after: Option<usize>,
    claim_idle: Duration,
) -> HostRun {
    let opts = QueueOptions {
        claim_idle,
        batch: 16,
        verbose: true,
        ..QueueOptions::default()
    };
    let source = QueueSource::start(
        url,
        consumer,
        &identity("nfs://server/export"),
        &root(),
        opts,
    )
    .expect("join the queue");
    let mut durable = Vec::new();
    let mut pending = Vec::new();
    let mut finished_ids = Vec::new();
    let mut listed = 0;
    let mut last_checkpoint = Instant::now();
    let completed = loop {
        match source.state() {
            SourceState::Done => break true,
            SourceState::Failed(m) => panic!("queue failed: {m}"),
            SourceState::Working => {}
        }
        if let Some(t) = source.take_wait(Duration::from_millis(5)) {
            std::thread::sleep(latency);
            list_task(&source, &t, &mut pending);
            finished_ids.push(t.id);
            listed += 1;
            if die_after == Some(listed) {
                // Dead: nothing more is made durable or acknowledged.
                let share = source.share();
                drop(source);
                return HostRun {
                    durable,
                    share,
                    completed: false,
                };
            }
        }
        if source.wants_checkpoint() || last_checkpoint.elapsed() >= Duration::from_millis(20) {
            durable.append(&mut pending);
            source.durable(&std::mem::take(&mut finished_ids));
            last_checkpoint = Instant::now();
        }
    };
    durable.append(&mut pending);
    HostRun {
        durable,
        share: source.stop(),
        completed,
    }
}

/// Every path of the tree, each once after removing the copies a takeover duplicates.
fn assert_exact(runs: &[HostRun], expected: &BTreeSet<Vec<u8>>) {
    let mut counts: HashMap<&[u8], usize> = HashMap::new();
    for r in runs {
        for p in &r.durable {
            *counts.entry(p).or_default() += 1;
        }
    }
    let got: BTreeSet<Vec<u8>> = counts.keys().map(|p| p.to_vec()).collect();
    let missing: Vec<_> = expected.difference(&got).take(5).collect();
    let extra: Vec<_> = got.difference(expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
}

#[test]
fn hosts_die_rejoin_and_join_late_and_the_union_is_exact() {
    let Some(redis) = RedisServer::start(None, false) else {
        return;
    };
    let url = QueueUrl::parse(&redis.url("mixed"), None).unwrap();
    let expected = expected_tree();
    let claim_idle = Duration::from_millis(600);
    let latency = Duration::from_millis(1);
    // A, B, C start together; B dies after 40 listings and comes back a second later with
    // the same consumer name; C dies after 60 and never comes back (A, B and D take over its
    // tasks after claim_idle); D joins late.
    let threads: Vec<_> = [
        ("host-a", None, Duration::ZERO),
        ("host-b", Some(40), Duration::ZERO),
        ("host-c", Some(60), Duration::ZERO),
        ("host-d", None, Duration::from_millis(300)),
        ("host-b", None, Duration::from_millis(1000)),
    ]
    .into_iter()
    .map(|(name, die, delay)| {
        let url = url.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            host(&url, name, latency, die, claim_idle)
        })
    })
    .collect();
    let runs: Vec<HostRun> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_exact(&runs, &expected);
    // Every survivor saw the end; the dead did not.
    let completed: Vec<bool> = runs.iter().map(|r| r.completed).collect();
    assert_eq!(completed, [true, false, false, true, true]);
    // C's tasks were taken over by the others.
    let taken_over: u64 = runs.iter().map(|r| r.share.tasks_claimed_over).sum();
    assert!(taken_over > 0, "no task was taken over");
    // The stream is empty and every task found was acknowledged exactly once.
    let mut q = RedisQueue::connect(&url, "observer").unwrap();
    let stats = q.stats().unwrap();
    assert_eq!(stats.outstanding, 0);
    assert_eq!(stats.pending, 0);
    let dirs = expected
        .iter()
        .filter(|p| p.as_slice() == b"." || p.rsplit(|&b| b == b'/').next().unwrap()[0] == b'd')
        .count() as u64;
    assert_eq!(stats.tasks_found, dirs);
    assert_eq!(stats.tasks_done, dirs);
    let shares: u64 = runs.iter().map(|r| r.share.tasks_done).sum();
    assert_eq!(shares, dirs);
    // Entries are counted once per task, by the host that recorded it first.
    assert_eq!(stats.entries, expected.len() as u64 - 1);
    // A host joining the finished scan ends at once.
    let late = host(&url, "host-e", latency, None, claim_idle);
    assert!(late.completed && late.durable.is_empty());
}

/// A host whose output checkpoints only when the queue asks (an interval longer than the
/// scan) is asked whenever `awaiting_tasks_max` listed tasks wait for durability, not only at
/// the end: the tasks it holds unacknowledged stay bounded, and the result is exact.
#[test]
fn a_host_is_asked_to_checkpoint_every_few_hundred_unacknowledged_tasks() {
    let Some(redis) = RedisServer::start(None, false) else {
        return;
    };
    let url = QueueUrl::parse(&redis.url("awaiting"), None).unwrap();
    let expected = expected_tree();
    let opts = QueueOptions {
        batch: 16,
        awaiting_tasks_max: 32,
        ..QueueOptions::default()
    };
    let source = QueueSource::start(
        &url,
        "solo",
        &identity("nfs://server/export"),
        &root(),
        opts,
    )
    .expect("join the queue");
    let (mut durable, mut pending, mut finished_ids) = (Vec::new(), Vec::new(), Vec::new());
    let mut checkpoints_while_working = 0;
    let mut most_unacknowledged = 0;
    loop {
        match source.state() {
            SourceState::Done => break,
            SourceState::Failed(m) => panic!("queue failed: {m}"),
            SourceState::Working => {}
        }
        let took = source.take_wait(Duration::from_millis(5));
        if let Some(t) = &took {
            list_task(&source, t, &mut pending);
            finished_ids.push(t.id);
        }
        most_unacknowledged = most_unacknowledged.max(finished_ids.len());
        if source.wants_checkpoint() {
            checkpoints_while_working += took.is_some() as usize;
            durable.append(&mut pending);
            source.durable(&std::mem::take(&mut finished_ids));
        }
    }
    durable.append(&mut pending);
    let share = source.stop();
    let dirs = share.tasks_done as usize;
    assert!(dirs > 300, "{dirs} tasks");
    assert!(
        checkpoints_while_working >= dirs / 200,
        "{checkpoints_while_working} checkpoints asked while tasks were still coming, for {dirs} tasks"
    );
    // Bounded by the limit plus what a round of the queue thread records at once.
    assert!(
        most_unacknowledged < dirs / 2,
        "{most_unacknowledged} of {dirs}"
    );
    assert_exact(
        &[HostRun {
            durable,
            share,
            completed: true,
        }],
        &expected,
    );
}

#[test]
fn a_redis_restart_mid_scan_loses_nothing() {
    let Some(mut redis) = RedisServer::start(None, true) else {
        return;
    };
    let url = QueueUrl::parse(&redis.url("restart"), None).unwrap();
    let expected = expected_tree();
    let hosts: Vec<_> = ["r1", "r2"]
        .into_iter()
        .map(|name| {
            let url = url.clone();
            std::thread::spawn(move || {
                host(
                    &url,
                    name,
                    Duration::from_millis(3),
                    None,
                    Duration::from_secs(60),
                )
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    let before: u64 = redis
        .cli(&["XLEN", "nfs-walker:{restart}:tasks"])
        .parse()
        .unwrap();
    assert!(before > 0, "the scan ended before the restart");
    redis.stop();
    std::thread::sleep(Duration::from_millis(1500));
    redis.restart();
    let runs: Vec<HostRun> = hosts.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(runs.iter().all(|r| r.completed));
    assert_exact(&runs, &expected);
    assert_eq!(redis.cli(&["XLEN", "nfs-walker:{restart}:tasks"]), "0");
}

#[test]
fn wrong_password_and_another_scans_queue_are_refused_in_one_line() {
    let Some(redis) = RedisServer::start(Some("right-pw"), false) else {
        return;
    };
    let wrong = QueueUrl::parse(
        &format!("redis://:wrong-pw@127.0.0.1:{}/0/q", redis.port),
        None,
    )
    .unwrap();
    let e = QueueSource::start(
        &wrong,
        "h",
        &identity("nfs://a/x"),
        &root(),
        QueueOptions::default(),
    )
    .err()
    .expect("a wrong password is refused")
    .to_string();
    assert!(
        e.contains("refused the password") && !e.contains('\n'),
        "{e}"
    );
    assert!(!e.contains("wrong-pw"), "{e}");
    // No password at all.
    let none = QueueUrl::parse(&redis.url_without_password("q"), None).unwrap();
    let e = RedisQueue::connect(&none, "h").err().unwrap().to_string();
    assert!(e.contains("refused the password"), "{e}");
    // The password from the environment's value.
    let env = QueueUrl::parse(&redis.url_without_password("q"), Some("right-pw".into())).unwrap();
    let first = QueueSource::start(
        &env,
        "h",
        &identity("nfs://a/x"),
        &root(),
        QueueOptions::default(),
    )
    .expect("the right password");
    for other in [
        identity("nfs://b/x"),
        ScanIdentity {
            url: "nfs://a/x".into(),
            options: r#"{"mode":"names"}"#.into(),
        },
    ] {
        let e = QueueSource::start(&env, "h2", &other, &root(), QueueOptions::default())
            .err()
            .expect("another scan's queue is refused")
            .to_string();
        assert!(
            e.contains("belongs to another scan") && !e.contains('\n'),
            "{e}"
        );
    }
    drop(first);
}

/// The depth of the tree the subtree tests walk: about 3,000 directories.
const SUBTREE_DEPTH_MAX: u32 = 8;

/// One host as the scan runs it: the engine's side of [`RedisTasks`] (take, children, finish,
/// durable), one task at a time, with `latency` per listing and a checkpoint every 20 ms.
/// With `die_after`, it stops dead after that many listings.
fn subtree_host(
    url: &QueueUrl,
    consumer: &str,
    latency: Duration,
    die_after: Option<usize>,
    opts: QueueOptions,
) -> (HostRun, usize) {
    let source = QueueSource::start(
        url,
        consumer,
        &identity("nfs://server/export"),
        &root(),
        opts,
    )
    .expect("join the queue");
    let tasks = RedisTasks::new(source);
    let mut q = tasks.queues(1).pop().unwrap();
    let mut durable = Vec::new();
    let mut pending = Vec::new();
    let mut finished_ids = Vec::new();
    let mut listed = 0;
    let mut last_checkpoint = Instant::now();
    let completed = loop {
        match tasks.source().state() {
            SourceState::Done => break true,
            SourceState::Failed(m) => panic!("queue failed: {m}"),
            SourceState::Working => {}
        }
        if let Some((id, task)) = q.take() {
            let Task::Dir(d) = task else {
                panic!("no lookup batches here")
            };
            let (dirs, files) = listing_to(&d.path, d.depth, SUBTREE_DEPTH_MAX);
            std::thread::sleep(latency);
            if d.depth == 0 {
                pending.push(d.path.clone());
            }
            pending.extend(files);
            for p in dirs {
                pending.push(p.clone());
                let fh = FileHandle::from_bytes(&hash(&p).to_le_bytes()).unwrap();
                q.push_child(
                    id,
                    Task::Dir(DirTask {
                        fh,
                        path: p,
                        depth: d.depth + 1,
                        fsid: 1,
                    }),
                );
            }
            q.finish(id);
            finished_ids.push(id);
            listed += 1;
            if die_after == Some(listed) {
                drop(q);
                let share = tasks.source().share();
                drop(tasks);
                let run = HostRun {
                    durable,
                    share,
                    completed: false,
                };
                return (run, listed);
            }
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
        let wants = tasks.source().wants_checkpoint();
        if wants || last_checkpoint.elapsed() >= Duration::from_millis(20) {
            durable.append(&mut pending);
            tasks.durable(&std::mem::take(&mut finished_ids));
            last_checkpoint = Instant::now();
        }
    };
    drop(q);
    durable.append(&mut pending);
    let run = HostRun {
        durable,
        share: tasks.into_source().stop(),
        completed,
    };
    (run, listed)
}

fn subtree_opts(subtree_hold: Duration) -> QueueOptions {
    QueueOptions {
        claim_idle: Duration::from_millis(600),
        subtree_hold,
        verbose: true,
        ..QueueOptions::default()
    }
}

#[test]
fn a_lone_host_lists_its_subtree_itself_and_asks_redis_for_few_tasks() {
    let Some(redis) = RedisServer::start(None, false) else {
        return;
    };
    let url = QueueUrl::parse(&redis.url("lone"), None).unwrap();
    let expected = expected_tree_to(SUBTREE_DEPTH_MAX);
    let dirs = expected
        .iter()
        .filter(|p| p.as_slice() == b"." || p.rsplit(|&b| b == b'/').next().unwrap()[0] == b'd')
        .count() as u64;
    let (run, listed) = subtree_host(
        &url,
        "host-a",
        Duration::ZERO,
        None,
        subtree_opts(Duration::from_secs(3600)),
    );
    assert!(run.completed);
    assert_exact(&[run], &expected);
    assert_eq!(listed as u64, dirs, "every directory listed once");
    let stats = RedisQueue::connect(&url, "observer")
        .unwrap()
        .stats()
        .unwrap();
    assert_eq!(stats.outstanding, 0);
    assert_eq!(stats.tasks_found, stats.tasks_done);
    // The root, and what the host offered while no one took it (a stock of one batch at a
    // time, which it later took back itself): not one task per directory.
    assert!(
        stats.tasks_found * 4 < dirs,
        "{} tasks in Redis for {dirs} directories",
        stats.tasks_found
    );
}

#[test]
fn idle_hosts_get_offered_work_and_a_dead_hosts_subtrees_are_taken_over_exactly() {
    let Some(redis) = RedisServer::start(None, false) else {
        return;
    };
    let url = QueueUrl::parse(&redis.url("offers"), None).unwrap();
    let expected = expected_tree_to(SUBTREE_DEPTH_MAX);
    let latency = Duration::from_micros(300);
    // A seeds the root and holds the whole tree at first; B and C get work only through
    // offers. C dies holding subtrees (taken over after claim_idle); D joins late.
    let threads: Vec<_> = [
        ("host-a", None, Duration::ZERO),
        ("host-b", None, Duration::from_millis(20)),
        ("host-c", Some(300), Duration::from_millis(20)),
        ("host-d", None, Duration::from_millis(300)),
    ]
    .into_iter()
    .map(|(name, die, delay)| {
        let url = url.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            subtree_host(
                &url,
                name,
                latency,
                die,
                subtree_opts(Duration::from_secs(3600)),
            )
        })
    })
    .collect();
    let runs: Vec<(HostRun, usize)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (name, (_, listed)) in ["a", "b", "c", "d"].iter().zip(&runs) {
        assert!(*listed > 0, "host {name} listed nothing");
    }
    let completed: Vec<bool> = runs.iter().map(|(r, _)| r.completed).collect();
    assert_eq!(completed, [true, true, false, true]);
    let runs: Vec<HostRun> = runs.into_iter().map(|(r, _)| r).collect();
    assert_exact(&runs, &expected);
    let taken_over: u64 = runs.iter().map(|r| r.share.tasks_claimed_over).sum();
    assert!(taken_over > 0, "no task was taken over");
    let stats = RedisQueue::connect(&url, "observer")
        .unwrap()
        .stats()
        .unwrap();
    assert_eq!((stats.outstanding, stats.pending), (0, 0));
}

#[test]
fn a_subtree_held_too_long_goes_back_so_a_dead_host_loses_little() {
    let Some(redis) = RedisServer::start(None, false) else {
        return;
    };
    let url = QueueUrl::parse(&redis.url("hold"), None).unwrap();
    let expected = expected_tree_to(SUBTREE_DEPTH_MAX);
    let latency = Duration::from_micros(500);
    // A alone, giving back what it holds every 50 ms, dies after 1,500 listings (about half
    // the tree, a second or more); B then does the rest.
    // A batch of one keeps the stock of offered tasks at one: A holds nearly all of the tree
    // in the root's task, as a host does while others are busy.
    let opts = QueueOptions {
        batch: 1,
        ..subtree_opts(Duration::from_millis(50))
    };
    let (a, _) = subtree_host(&url, "host-a", latency, Some(1500), opts.clone());
    let (b, _) = subtree_host(&url, "host-b", latency, None, opts);
    assert!(b.completed);
    let relisted = {
        let mine: BTreeSet<&Vec<u8>> = a.durable.iter().collect();
        b.durable.iter().filter(|p| mine.contains(p)).count()
    };
    let a_durable = a.durable.len();
    assert_exact(&[a, b], &expected);
    // Without giving back, A holds the root's task to its death and B lists all of it again
    // (measured: every path). With it, B lists again only what A did in its last moments.
    assert!(
        relisted * 4 < a_durable,
        "B listed {relisted} of the {a_durable} paths A had made durable again"
    );
}
