//! `churn`: rounds of abrupt disconnects. Each round connects N clients that
//! view a ticket and subscribe to a timeline, then drops every TCP connection
//! at once without a close packet (even clients with RST, odd ones with FIN),
//! and polls `GET /v1/stats` until connections, viewers and subscriptions
//! are back where they were before the first round: the leak check.

use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use super::{Fleet, Report, connect_and_view, secs, subscribe};
use crate::Target;
use crate::http::{HttpClient, Stats};
use crate::probe::{round, settled_rss_kib};

#[derive(Debug, Clone, clap::Args)]
pub struct ChurnArgs {
    /// Rounds.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Clients connected and dropped per round.
    #[arg(long, default_value_t = 1_000)]
    pub clients: usize,
    /// Tickets the clients view.
    #[arg(long, default_value_t = 200)]
    pub tickets: usize,
    /// Timelines the clients subscribe to.
    #[arg(long, default_value_t = 50)]
    pub timelines: usize,
    /// Seconds to wait for `/v1/stats` to return to its baseline each round.
    #[arg(long, default_value_t = 10.0)]
    pub settle_timeout: f64,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
}

pub async fn run(target: &Target, args: &ChurnArgs, report: &mut Report) -> crate::Result<()> {
    let mut http = HttpClient::new(target.internal);
    let baseline = settled_stats(&mut http).await?;
    let rss_start = match target.pid {
        Some(pid) => settled_rss_kib(pid, 3).await,
        None => None,
    };
    let (n, tickets, timelines) = (args.clients, args.tickets.max(1), args.timelines.max(1));
    let mut rounds = Vec::new();
    let mut last = baseline;
    let mut slowest = Duration::ZERO;
    for round_no in 0..args.rounds {
        let (drop_tx, drop_rx) = watch::channel(false);
        let drop_rx = Rc::new(drop_rx);
        let addr = target.public;
        let fleet = Fleet::spawn(
            n,
            args.concurrency,
            move |i| async move {
                let mut client = connect_and_view(addr, &format!("churn-{}", i % tickets), i).await?;
                subscribe(&mut client, &format!("churn-{}", i % timelines)).await?;
                Ok(client)
            },
            move |i, client| {
                let mut go = (*drop_rx).clone();
                async move {
                    let _ = go.wait_for(|v| *v).await;
                    client.abort(i % 2 == 0);
                }
            },
        );
        let (ready, failed) = fleet
            .wait_ready(&format!("churn round {}", round_no + 1), secs(60.0))
            .await;
        if ready < n {
            let why = fleet.first_error().unwrap_or_else(|| "set-up timed out".into());
            report.problem(format!(
                "churn: round {}: {ready} of {n} set up, {failed} failed ({why})",
                round_no + 1
            ));
        }
        let peak = http.stats().await?;
        let dropped_at = Instant::now();
        let _ = drop_tx.send(true);
        let bound = Instant::now() + Duration::from_secs(5);
        while fleet.ended() < ready && Instant::now() < bound {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        fleet.stop().await;
        let deadline = dropped_at + secs(args.settle_timeout);
        let back = loop {
            last = http.stats().await?;
            if last == baseline {
                break Some(dropped_at.elapsed());
            }
            if Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if let Some(d) = back {
            slowest = slowest.max(d);
        }
        eprintln!(
            "  churn round {}: peak {peak}, back to baseline in {}",
            round_no + 1,
            back.map_or("(never)".to_string(), |d| format!("{d:?}"))
        );
        let mut this_round = json!({
            "set_up": ready,
            "peak": peak.to_json(),
            "seconds_to_baseline": back.map(|d| round(d.as_secs_f64(), 3)),
        });
        // RSS after each round: growth that levels off is the allocator
        // keeping memory; growth every round is a leak.
        if let Some(rss) = target.pid.and_then(crate::probe::rss_kib) {
            this_round["rss_kib"] = json!(rss);
        }
        rounds.push(this_round);
    }
    let rss_end = match target.pid {
        Some(pid) => settled_rss_kib(pid, 3).await,
        None => None,
    };
    let leaked = |now: u64, before: u64| now as i64 - before as i64;
    let leaks = json!({
        "connections": leaked(last.connections, baseline.connections),
        "viewers": leaked(last.viewers, baseline.viewers),
        "subscriptions": leaked(last.subscriptions, baseline.subscriptions),
    });
    let leaked_total = leaked(last.connections, baseline.connections).abs()
        + leaked(last.viewers, baseline.viewers).abs()
        + leaked(last.subscriptions, baseline.subscriptions).abs();
    if last != baseline {
        report.problem(format!("churn: /v1/stats did not return to {baseline}: {last}"));
    }
    let mut line = json!({
        "rounds": args.rounds,
        "clients_per_round": n,
        "baseline": baseline.to_json(),
        "final": last.to_json(),
        "leaked": leaks,
        "leaked_total": leaked_total,
        "max_seconds_to_baseline": round(slowest.as_secs_f64(), 3),
        "per_round": rounds,
    });
    if let (Some(a), Some(b)) = (rss_start, rss_end) {
        line["rss_start_kib"] = json!(a);
        line["rss_end_kib"] = json!(b);
        line["rss_growth_kib"] = json!(b as i64 - a as i64);
    }
    report.line("churn", line);
    Ok(())
}

/// `/v1/stats` once two readings 300 ms apart agree (within 10 s): clients
/// of an earlier run may still be on their way out.
async fn settled_stats(http: &mut HttpClient) -> crate::Result<Stats> {
    let mut last = http.stats().await?;
    for _ in 0..33 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = http.stats().await?;
        if now == last {
            break;
        }
        last = now;
    }
    Ok(last)
}
