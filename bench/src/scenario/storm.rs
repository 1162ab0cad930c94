//! `storm`: N clients connected and viewing; the server is stopped and
//! started again (by this tool, from `--server-cmd`); every client reconnects
//! with socket.io-client's backoff (1 s, ×2 up to 5 s, ±50 % jitter) and views
//! again. Measures the time from the restart until all are back, and how many
//! attempts were refused on the way.
//!
//! The only scenario that starts a server: it must kill and restart it. The
//! command runs under `sh -c 'exec …'`, so its pid is the server's (put
//! `taskset -c 0` and the environment in the command itself). It must listen
//! on the fixed `--public` / `--internal` addresses.

use std::cell::{Cell, RefCell};
use std::fs::OpenOptions;
use std::process::Stdio;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;

use super::{Fleet, Report, secs};
use crate::backoff::Backoff;
use crate::eio::ConnectError;
use crate::latency::Latency;
use crate::probe::{self, round};
use crate::{Rng, Target};
use std::net::SocketAddr;

#[derive(Debug, Clone, clap::Args)]
pub struct StormArgs {
    /// Clients.
    #[arg(long, default_value_t = 19_000)]
    pub clients: usize,
    /// Tickets they view (client i views ticket i mod this); default one each.
    #[arg(long)]
    pub tickets: Option<usize>,
    /// The server's command line, run with `sh -c 'exec …'`.
    #[arg(long)]
    pub server_cmd: String,
    /// Where the server's stdout and stderr go (appended); default nowhere.
    #[arg(long)]
    pub server_log: Option<String>,
    /// How the server is stopped: `term` (SIGTERM, a deploy) or `kill` (SIGKILL, a crash).
    #[arg(long, default_value = "term")]
    pub signal: String,
    /// Seconds after the restart by which every client must be back.
    #[arg(long, default_value_t = 60.0)]
    pub deadline: f64,
    /// Connection attempts in flight at once for the first connections (the
    /// reconnections are bounded by the backoff only, as in real clients).
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Upper bound on the first connections, in seconds.
    #[arg(long, default_value_t = 180.0)]
    pub setup_timeout: f64,
}

/// What the clients share with the scenario.
#[derive(Default)]
struct Storm {
    /// Clients connected and viewing before the restart.
    initial: Cell<usize>,
    /// Set when the server is signalled: failures from then on are counted.
    killed: Cell<bool>,
    restarted_at: Cell<Option<Instant>>,
    back: Cell<usize>,
    back_after_restart: RefCell<Latency>,
    lost: Cell<usize>,
    refused: Cell<u64>,
    http_status: Cell<u64>,
    timeouts: Cell<u64>,
    other_failures: Cell<u64>,
    first_failure: RefCell<Option<String>>,
    clients_refused: Cell<usize>,
    max_attempts: Cell<u32>,
}

impl Storm {
    fn failed(&self, e: &ConnectError) {
        let counter = match e {
            ConnectError::Refused => &self.refused,
            ConnectError::Status(_) => &self.http_status,
            ConnectError::Timeout => &self.timeouts,
            ConnectError::Failed(_) => &self.other_failures,
        };
        counter.set(counter.get() + 1);
        if !matches!(e, ConnectError::Refused) {
            self.first_failure.borrow_mut().get_or_insert_with(|| e.to_string());
        }
    }

    fn failed_attempts(&self) -> u64 {
        self.refused.get() + self.http_status.get() + self.timeouts.get() + self.other_failures.get()
    }
}

/// One client, for its whole life: the first connection (under a permit),
/// then reconnections with backoff whenever the server drops it.
async fn client(i: usize, addr: SocketAddr, ticket: String, storm: Rc<Storm>, permits: Rc<Semaphore>) {
    let mut backoff = Backoff::default();
    let mut rng = Rng::new(i as u64 ^ crate::now_us());
    let mut first = Some(permits.acquire().await);
    let (mut came_back, mut failed_once, mut attempts) = (false, false, 0u32);
    loop {
        let attempt = connect(addr, &ticket, i).await;
        drop(first.take());
        match attempt {
            Ok(client) => {
                backoff.reset();
                if !storm.killed.get() {
                    storm.initial.set(storm.initial.get() + 1);
                } else if storm.restarted_at.get().is_some() && !came_back {
                    came_back = true;
                    storm.back.set(storm.back.get() + 1);
                    let since = storm.restarted_at.get().map_or(0, |t| t.elapsed().as_micros() as u64);
                    storm.back_after_restart.borrow_mut().record_us(since);
                    storm.max_attempts.set(storm.max_attempts.get().max(attempts + 1));
                }
                super::hold(client).await;
                storm.lost.set(storm.lost.get() + 1);
            }
            Err(e) => {
                if storm.killed.get() {
                    storm.failed(&e);
                    attempts += 1;
                    if !failed_once {
                        failed_once = true;
                        storm.clients_refused.set(storm.clients_refused.get() + 1);
                    }
                }
            }
        }
        tokio::time::sleep(backoff.next_delay(&mut rng)).await;
    }
}

async fn connect(addr: SocketAddr, ticket: &str, i: usize) -> Result<crate::eio::Client, ConnectError> {
    let mut client = crate::eio::Client::connect(addr, super::CONNECT_TIMEOUT).await?;
    super::view(&mut client, ticket, i)
        .await
        .map_err(ConnectError::Failed)?;
    Ok(client)
}

pub async fn run(target: &Target, args: &StormArgs, report: &mut Report) -> crate::Result<()> {
    let signal = match args.signal.as_str() {
        "term" => libc::SIGTERM,
        "kill" => libc::SIGKILL,
        other => return Err(format!("--signal {other}: expected term or kill").into()),
    };
    let mut server = Server::start(args)?;
    let outcome = storm(target, args, report, &mut server, signal).await;
    server.stop().await;
    outcome
}

async fn storm(
    target: &Target,
    args: &StormArgs,
    report: &mut Report,
    server: &mut Server,
    signal: i32,
) -> crate::Result<()> {
    crate::http::wait_healthy(target.internal, Duration::from_secs(30)).await?;
    let n = args.clients;
    let tickets = args.tickets.unwrap_or(n).max(1);
    let shared = Rc::new(Storm::default());
    let permits = Rc::new(Semaphore::new(args.concurrency.max(1)));
    let addr = target.public;
    // The fleet's own set-up step is trivial: each client runs its whole
    // life (first connection under a permit, then reconnections) as its role.
    let fleet = {
        let shared = shared.clone();
        Fleet::spawn(
            n,
            n.max(1),
            |_| async { Ok(()) },
            move |i, ()| {
                client(
                    i,
                    addr,
                    format!("storm-{}", i % tickets),
                    shared.clone(),
                    permits.clone(),
                )
            },
        )
    };
    let started = Instant::now();
    let mut last_print = Instant::now();
    while shared.initial.get() < n && started.elapsed() < secs(args.setup_timeout) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            eprintln!("  storm: {}/{n} connected and viewing", shared.initial.get());
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let connected = shared.initial.get();
    if connected < n {
        report.problem(format!("storm: only {connected} of {n} connected before the restart"));
    }

    eprintln!("  storm: {connected} connected; stopping the server ({})", args.signal);
    let own = crate::probe::Window::start(None);
    let killed_at = Instant::now();
    shared.killed.set(true);
    let exited_after = server.signal_and_wait(signal).await;
    let restarted_at = Instant::now();
    *server = Server::start(args)?;
    shared.restarted_at.set(Some(restarted_at));
    let deadline = restarted_at + secs(args.deadline);
    let mut last_print = Instant::now();
    while shared.back.get() < connected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            eprintln!(
                "  storm: {}/{connected} back, {} attempts failed",
                shared.back.get(),
                shared.failed_attempts()
            );
        }
    }
    let all_back = shared.back.get() >= connected;
    let own = own.finish();
    let back_after = restarted_at.elapsed();
    let server_cpu = probe::cpu(Some(server.pid));
    let rss = probe::rss_kib(server.pid);
    fleet.stop().await;

    let not_back = (connected).saturating_sub(shared.back.get());
    if !all_back {
        report.problem(format!(
            "storm: {not_back} of {connected} clients not back within {}s",
            args.deadline
        ));
    }
    let mut line = json!({
        "clients": n,
        "connected_before": connected,
        "signal": args.signal,
        "old_server_exit_s": round(exited_after.as_secs_f64(), 3),
        "back": shared.back.get(),
        "not_back": not_back,
        "all_back": all_back,
        "all_back_s": all_back.then(|| round(back_after.as_secs_f64(), 3)),
        "all_back_since_kill_s": all_back.then(|| round(killed_at.elapsed().as_secs_f64(), 3)),
        "back_after_restart": shared.back_after_restart.borrow().to_json(),
        "failed_attempts": shared.failed_attempts(),
        "refused_attempts": shared.refused.get(),
        "http_error_attempts": shared.http_status.get(),
        "timed_out_attempts": shared.timeouts.get(),
        "other_failed_attempts": shared.other_failures.get(),
        "clients_refused_at_least_once": shared.clients_refused.get(),
        "max_attempts": shared.max_attempts.get(),
        "gen_cpu_pct": round(own.own_pct(), 1),
    });
    if let Some(e) = shared.first_failure.borrow().as_ref() {
        line["first_failure"] = json!(e);
    }
    if let Some(c) = server_cpu {
        line["server_user_ms"] = json!(round(c.user_ms, 1));
        line["server_system_ms"] = json!(round(c.system_ms, 1));
    }
    if let Some(rss) = rss {
        line["rss_kib"] = json!(rss);
    }
    report.line("storm", line);
    Ok(())
}

/// The server process this scenario owns.
struct Server {
    child: Child,
    pid: u32,
}

impl Server {
    fn start(args: &StormArgs) -> crate::Result<Self> {
        let output = || -> std::io::Result<Stdio> {
            Ok(match &args.server_log {
                Some(path) => Stdio::from(OpenOptions::new().create(true).append(true).open(path)?),
                None => Stdio::null(),
            })
        };
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {}", args.server_cmd))
            .stdin(Stdio::null())
            .stdout(output()?)
            .stderr(output()?)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("--server-cmd: {e}"))?;
        let pid = child.id().ok_or("the server exited at once")?;
        Ok(Self { child, pid })
    }

    /// Sends `signal` and waits for the exit (SIGKILL after 20 s); returns
    /// how long the exit took.
    async fn signal_and_wait(&mut self, signal: i32) -> Duration {
        let sent = Instant::now();
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped.
        unsafe { libc::kill(self.pid as libc::pid_t, signal) };
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            eprintln!("loadgen: the server did not exit within 20 s of the signal; killing it");
            let _ = self.child.kill().await;
        }
        sent.elapsed()
    }

    async fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal_and_wait(libc::SIGTERM).await;
        }
    }
}
