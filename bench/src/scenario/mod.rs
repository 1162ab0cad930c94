//! The scenarios, and what they share: a fleet of client tasks set up under a
//! concurrency bound, and the result lines.
//!
//! Every scenario prints one JSON object per result on stdout (`scenario`,
//! `server` and its figures); progress goes to stderr.

pub mod churn;
pub mod collision;
pub mod fanout;
pub mod idle;
pub mod recovery;
pub mod storm;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::eio::{Client, ack_ok};

/// How long one connection attempt may take (socket.io-client's `timeout`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an ack may take before the op counts as failed.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Result lines and, for `--strict`, what went wrong.
pub struct Report {
    label: String,
    problems: Vec<String>,
}

impl Report {
    pub fn new(label: &str) -> Self {
        Self {
            label: label.to_string(),
            problems: Vec::new(),
        }
    }

    /// Prints one result line.
    pub fn line(&self, scenario: &str, mut figures: Value) {
        figures["scenario"] = scenario.into();
        figures["server"] = self.label.as_str().into();
        println!("{figures}");
    }

    /// Notes something that makes the run incomplete (fatal with `--strict`).
    pub fn problem(&mut self, what: impl Into<String>) {
        let what = what.into();
        eprintln!("loadgen: {}: {what}", self.label);
        self.problems.push(what);
    }

    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

/// `n` client tasks: each runs `setup` (connect, view, subscribe...) while
/// holding one of `concurrency` permits, then its `role` until the fleet is
/// stopped or the role ends.
pub struct Fleet {
    handles: Vec<JoinHandle<()>>,
    ready: Rc<Cell<usize>>,
    failed: Rc<Cell<usize>>,
    ended: Rc<Cell<usize>>,
    first_error: Rc<RefCell<Option<String>>>,
    progress: Rc<Notify>,
}

impl Fleet {
    pub fn spawn<S, Setup, SetupFut, Role, RoleFut>(n: usize, concurrency: usize, setup: Setup, role: Role) -> Self
    where
        S: 'static,
        Setup: Fn(usize) -> SetupFut + 'static,
        SetupFut: Future<Output = Result<S, String>> + 'static,
        Role: Fn(usize, S) -> RoleFut + 'static,
        RoleFut: Future<Output = ()> + 'static,
    {
        let (ready, failed, ended) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let first_error: Rc<RefCell<Option<String>>> = Rc::default();
        let progress = Rc::new(Notify::new());
        let permits = Rc::new(Semaphore::new(concurrency.max(1)));
        let (setup, role) = (Rc::new(setup), Rc::new(role));
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let (permits, setup, role) = (permits.clone(), setup.clone(), role.clone());
            let (ready, failed, ended) = (ready.clone(), failed.clone(), ended.clone());
            let (first_error, progress) = (first_error.clone(), progress.clone());
            handles.push(tokio::task::spawn_local(async move {
                let permit = permits.acquire().await;
                let outcome = setup(i).await;
                drop(permit);
                match outcome {
                    Ok(state) => {
                        ready.set(ready.get() + 1);
                        progress.notify_one();
                        role(i, state).await;
                        ended.set(ended.get() + 1);
                    }
                    Err(e) => {
                        failed.set(failed.get() + 1);
                        first_error.borrow_mut().get_or_insert(e);
                        progress.notify_one();
                    }
                }
            }));
        }
        Self {
            handles,
            ready,
            failed,
            ended,
            first_error,
            progress,
        }
    }

    /// Waits until every client is set up or has failed, within `timeout`;
    /// returns (ready, failed). Prints progress every second.
    pub async fn wait_ready(&self, what: &str, timeout: Duration) -> (usize, usize) {
        let n = self.handles.len();
        let started = Instant::now();
        let mut last_print = Instant::now();
        while self.ready.get() + self.failed.get() < n && started.elapsed() < timeout {
            let _ = tokio::time::timeout(Duration::from_millis(200), self.progress.notified()).await;
            if last_print.elapsed() >= Duration::from_secs(1) {
                last_print = Instant::now();
                eprintln!("  {what}: {}/{n} ready, {} failed", self.ready.get(), self.failed.get());
            }
        }
        (self.ready.get(), self.failed.get())
    }

    /// Clients whose role ended by itself (e.g. the server closed them).
    pub fn ended(&self) -> usize {
        self.ended.get()
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error.borrow().clone()
    }

    /// Stops every task (dropping its connection) and waits until they are gone.
    pub async fn stop(self) {
        for h in &self.handles {
            h.abort();
        }
        for h in self.handles {
            let _ = h.await;
        }
    }
}

/// Reads (and answers pings) until the server closes the connection.
pub async fn hold(mut client: Client) {
    while client.next_text().await.is_some() {}
}

/// Connects and views `ticket` as agent `agent`; the ack must be ok.
pub async fn connect_and_view(addr: std::net::SocketAddr, ticket: &str, agent: usize) -> Result<Client, String> {
    let mut client = Client::connect(addr, CONNECT_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    view(&mut client, ticket, agent).await?;
    Ok(client)
}

/// `ticket:view` with an ack that must be ok.
pub async fn view(client: &mut Client, ticket: &str, agent: usize) -> Result<(), String> {
    let payload = format!(r#"{{"ticketId":"{ticket}","agentId":"a{agent}","agentName":"Agent {agent}"}}"#);
    expect_ok(client, "ticket:view", &payload).await
}

/// `timeline:subscribe` to `client/{entity}` with an ack that must be ok.
pub async fn subscribe(client: &mut Client, entity: &str) -> Result<(), String> {
    let payload = format!(r#"{{"entityType":"client","entityId":"{entity}"}}"#);
    expect_ok(client, "timeline:subscribe", &payload).await
}

async fn expect_ok(client: &mut Client, event: &str, payload: &str) -> Result<(), String> {
    let ack = client.call(event, payload, ACK_TIMEOUT).await?;
    if ack_ok(&ack) {
        Ok(())
    } else {
        Err(format!("{event} refused: {ack}"))
    }
}

/// Adds the fields of object `from` to object `into`.
pub fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// A duration in seconds from the command line.
pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}
