//! The binary as the container runs it: the Dockerfile's environment (only
//! `RUST_LOG=info`; addresses on loopback here, as every test server), and
//! the `HEALTHCHECK` command, `switchboard healthcheck`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// Removes ANSI colour sequences from a log line.
fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The server process; killed if a failing test leaves it running.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary with the Dockerfile's environment only; returns it and
/// the (public, internal) addresses from its "serving" line.
fn start_as_in_the_container() -> (Server, String, String) {
    let mut server = Server(
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--internal-listen", "127.0.0.1:0"])
            .env_clear()
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("the binary starts"),
    );
    let stderr = server.0.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let field = |line: &str, name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no serving line within 10 s");
        let line = plain(&lines.next().expect("stderr open").expect("readable"));
        if line.contains("switchboard serving") {
            let (public, internal) = (field(&line, "public").unwrap(), field(&line, "internal").unwrap());
            // Keep draining stderr so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return (server, public, internal);
        }
    }
}

fn healthcheck(internal: &str) -> bool {
    Command::new(BIN)
        .args(["healthcheck", "--internal-listen", internal])
        .env_clear()
        .env("RUST_LOG", "info")
        .status()
        .expect("healthcheck runs")
        .success()
}

#[test]
fn the_container_healthcheck_passes_while_serving_and_fails_after() {
    let (mut server, public, internal) = start_as_in_the_container();
    assert!(healthcheck(&internal), "healthy while serving");
    assert_eq!(get_status(&public, "/health"), 200, "the public /health answers too");
    let _ = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status();
    let status = server.0.wait().unwrap();
    assert!(status.success(), "SIGTERM stops it cleanly: {status}");
    assert!(!healthcheck(&internal), "unhealthy once stopped");
}

/// The status of a plain `GET`, without an async runtime.
fn get_status(addr: &str, path: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}
