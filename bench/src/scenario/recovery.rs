//! `recovery`: what a frontend coming back after a disconnect waits for
//! (contract §4.1). Each round: a socket subscribes to a timeline of its own
//! and leaves, `missed` items are published one request each, then a new
//! socket subscribes with `since` the first socket's position; the time from
//! sending that subscribe to its ack, with every missed item replayed before
//! the ack, is the figure (an HDR histogram over the rounds).

use std::time::Instant;

use serde_json::{Value, json};

use super::{ACK_TIMEOUT, CONNECT_TIMEOUT, Report, secs};
use crate::Target;
use crate::eio::Client;
use crate::http::HttpClient;
use crate::latency::Latency;

#[derive(Debug, Clone, clap::Args)]
pub struct RecoveryArgs {
    /// Rounds (one timeline each).
    #[arg(long, default_value_t = 50)]
    pub rounds: usize,
    /// Items published while the socket is away, one request each.
    #[arg(long, default_value_t = 100)]
    pub missed: usize,
    /// Bytes of text in each item.
    #[arg(long, default_value_t = 200)]
    pub item_bytes: usize,
    /// Seconds the whole run may take.
    #[arg(long, default_value_t = 120.0)]
    pub deadline: f64,
}

/// The JSON payload of an ack frame `43<id>[{...}]`.
fn ack_payload(frame: &str) -> Option<Value> {
    let rest = frame.strip_prefix("43")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let mut args: Vec<Value> = serde_json::from_str(&rest[digits..]).ok()?;
    (!args.is_empty()).then(|| args.swap_remove(0))
}

pub async fn run(target: &Target, args: &RecoveryArgs, report: &mut Report) -> crate::Result<()> {
    let mut http = HttpClient::new(target.internal);
    let mut latency = Latency::default();
    let deadline = Instant::now() + secs(args.deadline);
    let text = "x".repeat(args.item_bytes);
    let run_id = std::process::id();
    let mut rounds = 0;
    for round in 0..args.rounds {
        if Instant::now() >= deadline {
            report.problem(format!("recovery: deadline reached after {round} rounds"));
            break;
        }
        let entity = format!("recovery-{run_id}-{round}");
        let subscribe = json!({ "entityType": "client", "entityId": entity });
        let mut first = Client::connect(target.public, CONNECT_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        let ack = first
            .call("timeline:subscribe", &subscribe.to_string(), ACK_TIMEOUT)
            .await?;
        let since = ack_payload(&ack)
            .filter(|a| a["ok"] == true)
            .map(|a| json!({ "offset": a["offset"], "epoch": a["epoch"] }))
            .ok_or_else(|| format!("recovery: subscribe refused: {ack}"))?;
        first.abort(false);
        let path = format!("/v1/timeline/client/{entity}/items");
        for i in 0..args.missed {
            let body = json!({ "id": i, "text": text }).to_string();
            let res = http.request("POST", &path, body.as_bytes()).await?;
            if res.status != 202 {
                return Err(format!("recovery: publish answered {}", res.status).into());
            }
        }
        let mut back = Client::connect(target.public, CONNECT_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        let mut with_since = subscribe.clone();
        with_since["since"] = since;
        let started = Instant::now();
        let id = back
            .emit_with_ack("timeline:subscribe", &with_since.to_string())
            .await
            .map_err(|e| e.to_string())?;
        let mut replayed = 0;
        let answer = tokio::time::timeout(ACK_TIMEOUT, async {
            loop {
                let frame = back.next_text().await?;
                if frame.starts_with("42[\"timeline:new_item\"") {
                    replayed += 1;
                } else if frame.starts_with(&format!("43{id}[")) {
                    return Some(frame);
                }
            }
        })
        .await;
        let elapsed = started.elapsed();
        back.abort(false);
        let ack = match answer {
            Ok(Some(frame)) => ack_payload(&frame).unwrap_or(Value::Null),
            _ => {
                report.problem(format!("recovery: round {round}: no ack within {ACK_TIMEOUT:?}"));
                continue;
            }
        };
        if ack["recovered"] != true || ack["missed"] != args.missed || replayed != args.missed {
            report.problem(format!(
                "recovery: round {round}: {replayed} replayed before the ack {ack}, expected {}",
                args.missed
            ));
            continue;
        }
        latency.record_us(elapsed.as_micros() as u64);
        rounds += 1;
    }
    eprintln!("  recovery: {rounds} rounds, subscribe → ack {}", latency.to_json());
    report.line(
        "recovery",
        json!({
            "rounds": rounds,
            "missed_per_round": args.missed,
            "item_bytes": args.item_bytes,
            "subscribe_to_ack": latency.to_json(),
        }),
    );
    Ok(())
}
