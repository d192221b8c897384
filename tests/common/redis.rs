//! A private redis-server for a test: Debian's `redis-server` on 127.0.0.1, a free port, its
//! files in a temporary directory removed at the end (nothing is left behind), stopped when
//! dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    password: Option<String>,
    appendonly: bool,
}

/// Whether `redis-server` is installed; under CI it must be (tests/run.sh installs it).
pub fn available() -> bool {
    let ok = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !super::in_ci(),
            "CI must run the queue tests: tests/run.sh installs redis-server"
        );
        eprintln!("note: redis-server not installed; skipping (tests/run.sh installs it)");
    }
    ok
}

impl RedisServer {
    /// Starts a server; `appendonly` turns persistence on (AOF, fsync every second), so a
    /// restart keeps the queue. None when redis-server is not installed (outside CI).
    pub fn start(password: Option<&str>, appendonly: bool) -> Option<RedisServer> {
        if !available() {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir for redis");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut s = RedisServer {
            child: None,
            port,
            dir,
            password: password.map(str::to_string),
            appendonly,
        };
        s.spawn();
        Some(s)
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--dir", path_str(self.dir.path())])
            .args(["--save", ""])
            .args(["--appendonly", if self.appendonly { "yes" } else { "no" }])
            .args(["--appendfsync", "everysec"])
            .args(["--daemonize", "no", "--protected-mode", "no"])
            .args(["--logfile", path_str(&self.dir.path().join("redis.log"))]);
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start: {}",
                std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True when the server answers PING (or asks for a password) and is not loading.
    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH")
    }

    /// `redis://[:PASSWORD@]127.0.0.1:PORT/0/NAME`
    pub fn url(&self, name: &str) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/0/{name}", self.port),
            None => format!("redis://127.0.0.1:{}/0/{name}", self.port),
        }
    }

    /// The same URL without the password.
    pub fn url_without_password(&self, name: &str) -> String {
        format!("redis://127.0.0.1:{}/0/{name}", self.port)
    }

    /// Stops the server as an operator would (SIGTERM: it writes its AOF and exits).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the same files.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Runs redis-cli against the server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(p) = &self.password {
            cmd.env("REDISCLI_AUTH", p);
        }
        let out = cmd.args(args).output().expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
