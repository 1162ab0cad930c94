//! `collision`: A agents (one socket each) on K tickets (agent i on ticket
//! i mod K), each looping view → typing → stop_typing → leave, every op with
//! an ack and the next op only after it (closed loop), for a bounded time.
//! The other agents of a ticket receive the broadcasts of each op and read
//! them. Measures ops/s, ack latency and server CPU per op.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use super::{ACK_TIMEOUT, Fleet, Report, hold, merge, secs};
use crate::Target;
use crate::eio::{Client, ack_ok};
use crate::latency::Latency;
use crate::probe::round;

#[derive(Debug, Clone, clap::Args)]
pub struct CollisionArgs {
    /// Agents, one socket each.
    #[arg(long, default_value_t = 1_000)]
    pub agents: usize,
    /// Tickets the agents share.
    #[arg(long, default_value_t = 200)]
    pub tickets: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Upper bound on the set-up, in seconds.
    #[arg(long, default_value_t = 120.0)]
    pub setup_timeout: f64,
}

#[derive(Default)]
struct Tally {
    ops: Cell<u64>,
    errors: Cell<u64>,
    first_error: RefCell<Option<String>>,
    latency: RefCell<Latency>,
    finished: Cell<usize>,
}

impl Tally {
    fn error(&self, what: String) {
        self.errors.set(self.errors.get() + 1);
        self.first_error.borrow_mut().get_or_insert(what);
    }
}

/// One agent's loop: starts when `go` turns true, stops at `until`.
async fn agent(
    mut client: Client,
    i: usize,
    tickets: usize,
    mut go: watch::Receiver<Option<Instant>>,
    tally: Rc<Tally>,
) {
    let until = match go.wait_for(Option::is_some).await {
        Ok(deadline) => (*deadline).unwrap_or_else(Instant::now),
        Err(_) => return,
    };
    let ticket = format!("col-{}", i % tickets);
    let view = format!(r#"{{"ticketId":"{ticket}","agentId":"a{i}","agentName":"Agent {i}"}}"#);
    let other = format!(r#"{{"ticketId":"{ticket}","agentId":"a{i}"}}"#);
    let ops = [
        ("ticket:view", &view),
        ("ticket:typing", &other),
        ("ticket:stop_typing", &other),
        ("ticket:leave", &other),
    ];
    'outer: while Instant::now() < until {
        for (event, payload) in ops {
            let sent = Instant::now();
            match client.call(event, payload, ACK_TIMEOUT).await {
                Ok(ack) if ack_ok(&ack) => {
                    tally.ops.set(tally.ops.get() + 1);
                    tally.latency.borrow_mut().record_us(sent.elapsed().as_micros() as u64);
                }
                Ok(ack) => tally.error(format!("{event} refused: {ack}")),
                Err(e) => {
                    tally.error(e);
                    break 'outer;
                }
            }
        }
    }
    tally.finished.set(tally.finished.get() + 1);
    // Stay connected (and keep answering pings) until the fleet stops, so
    // that the last agents' ops are not mixed with disconnects.
    hold(client).await;
}

pub async fn run(target: &Target, args: &CollisionArgs, report: &mut Report) -> crate::Result<()> {
    let (n, tickets) = (args.agents, args.tickets.max(1));
    let tally = Rc::new(Tally::default());
    let (go_tx, go_rx) = watch::channel(None);
    let addr = target.public;
    let fleet = {
        let tally = tally.clone();
        Fleet::spawn(
            n,
            args.concurrency,
            move |_| async move {
                Client::connect(addr, super::CONNECT_TIMEOUT)
                    .await
                    .map_err(|e| e.to_string())
            },
            move |i, client| agent(client, i, tickets, go_rx.clone(), tally.clone()),
        )
    };
    let (ready, failed) = fleet.wait_ready("collision agents", secs(args.setup_timeout)).await;
    if ready < n {
        let why = fleet.first_error().unwrap_or_else(|| "set-up timed out".into());
        report.problem(format!(
            "collision: {ready} of {n} connected, {failed} failed (first error: {why})"
        ));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let window = crate::probe::Window::start(target.pid);
    let _ = go_tx.send(Some(Instant::now() + secs(args.duration)));
    // Every agent finishes its current op; an op waits at most ACK_TIMEOUT.
    let bound = Instant::now() + secs(args.duration) + ACK_TIMEOUT * 4 + Duration::from_secs(1);
    while tally.finished.get() < ready && Instant::now() < bound {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let measured = window.finish();
    let unfinished = ready - tally.finished.get().min(ready);
    fleet.stop().await;

    let ops = tally.ops.get();
    if tally.errors.get() > 0 {
        let first = tally.first_error.borrow().clone().unwrap_or_default();
        report.problem(format!("collision: {} ops failed (first: {first})", tally.errors.get()));
    }
    if ops == 0 {
        report.problem("collision: no op completed");
    }
    let mut line = json!({
        "agents": n,
        "tickets": tickets,
        "connected": ready,
        "duration_s": args.duration,
        "ops": ops,
        "ops_per_s": round(ops as f64 / measured.seconds.max(1e-9), 0),
        "errors": tally.errors.get(),
        "unfinished_agents": unfinished,
        "latency": tally.latency.borrow().to_json(),
    });
    if let Some(e) = tally.first_error.borrow().as_ref() {
        line["first_error"] = json!(e);
    }
    merge(&mut line, measured.to_json(ops, "op"));
    report.line("collision", line);
    Ok(())
}
