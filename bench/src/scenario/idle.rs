//! `idle`: N websocket connections, each viewing its own ticket, then idle.
//! Measures the server's RSS per connection (RSS after − RSS before, / N) and
//! what setting them up cost.

use std::time::Duration;

use serde_json::json;

use super::{Fleet, Report, connect_and_view, hold, merge, secs};
use crate::Target;
use crate::probe::{Window, round, settled_rss_kib};

#[derive(Debug, Clone, clap::Args)]
pub struct IdleArgs {
    /// Connections to open.
    #[arg(long, default_value_t = 10_000)]
    pub clients: usize,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Seconds to wait after the last connection before reading the RSS.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
    /// Upper bound on the whole set-up, in seconds.
    #[arg(long, default_value_t = 180.0)]
    pub setup_timeout: f64,
}

pub async fn run(target: &Target, args: &IdleArgs, report: &mut Report) -> crate::Result<()> {
    let n = args.clients;
    let rss_before = match target.pid {
        Some(pid) => settled_rss_kib(pid, 5).await,
        None => None,
    };
    let window = Window::start(target.pid);
    let addr = target.public;
    let fleet = Fleet::spawn(
        n,
        args.concurrency,
        move |i| async move { connect_and_view(addr, &format!("idle-{i}"), i).await },
        |_, client| hold(client),
    );
    let (ready, failed) = fleet.wait_ready("idle", secs(args.setup_timeout)).await;
    let setup = window.finish();
    if ready < n {
        let why = fleet.first_error().unwrap_or_else(|| "set-up timed out".into());
        report.problem(format!(
            "idle: {ready} of {n} connected, {failed} failed (first error: {why})"
        ));
    }
    tokio::time::sleep(secs(args.settle)).await;
    let rss_after = match target.pid {
        Some(pid) => settled_rss_kib(pid, 5).await,
        None => None,
    };
    let dropped = fleet.ended();
    if dropped > 0 {
        report.problem(format!("idle: the server closed {dropped} idle connections"));
    }
    fleet.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut line = json!({
        "clients": n,
        "connected": ready,
        "failed": failed,
        "closed_by_server": dropped,
        "setup_s": round(setup.seconds, 3),
        "connections_per_s": round(ready as f64 / setup.seconds.max(1e-9), 0),
    });
    merge(&mut line, setup.to_json(ready as u64, "connection"));
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        line["rss_before_kib"] = json!(before);
        line["rss_after_kib"] = json!(after);
        line["rss_per_conn_kib"] = json!(round((after as f64 - before as f64) / ready.max(1) as f64, 2));
    }
    report.line("idle", line);
    Ok(())
}
