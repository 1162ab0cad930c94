//! `fanout`: S subscribers over T timelines; items published over the
//! internal API at a fixed rate, each carrying its send time (`"t"`, µs on the
//! generator's clock), so that every delivery gives a publish→delivery
//! latency. Phases, on the same subscribers:
//!
//! - `fixed`: one `POST /v1/timeline/{type}/{id}/items` per item at `--rate`;
//! - `batch`: the same item rate through `POST /v1/timeline/batch`,
//!   `--batch-size` items per request, spread over the timelines;
//! - `ramp`: `fixed` in steps of `--ramp-step` seconds, the rate multiplied
//!   by `--ramp-factor` each step, until the delivery rate (at a delivery
//!   ratio of at least 99.9 %) stops increasing (two steps in a row without
//!   a gain of 3 %, so that one noisy step does not end it, or one step
//!   below the ratio); reports the highest.
//!
//! Publishes are open-loop: item k is due at start + k / rate, sent by
//! whichever of `--http-conns` keep-alive connections is free; a server that
//! answers too slowly makes the achieved rate fall behind the target.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Fleet, Report, merge, secs, subscribe};
use crate::eio::{Client, timestamp};
use crate::http::HttpClient;
use crate::latency::Latency;
use crate::probe::{Window, WindowReport, round};
use crate::{Target, now_us};

#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    /// Subscriber connections (subscriber i follows timeline i mod T).
    #[arg(long, default_value_t = 5_000)]
    pub subscribers: usize,
    /// Timelines (`client/fan-0` ...).
    #[arg(long, default_value_t = 50)]
    pub timelines: usize,
    /// Items published per second in the `fixed` and `batch` phases.
    #[arg(long, default_value_t = 400.0)]
    pub rate: f64,
    /// Seconds of publishing in the `fixed` and `batch` phases.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of publishing in the `batch` phase; default `--duration`.
    #[arg(long)]
    pub batch_duration: Option<f64>,
    /// Items per `POST /v1/timeline/batch` in the `batch` phase (at most 1000).
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Keep-alive HTTP connections publishing in parallel.
    #[arg(long, default_value_t = 16)]
    pub http_conns: usize,
    /// Phases to run, in order: fixed, batch, ramp.
    #[arg(long, value_delimiter = ',', default_value = "fixed,batch,ramp")]
    pub phases: Vec<String>,
    /// First rate of the ramp (items/s); default `--rate`.
    #[arg(long)]
    pub ramp_start: Option<f64>,
    /// Rate multiplier from one ramp step to the next.
    #[arg(long, default_value_t = 1.5)]
    pub ramp_factor: f64,
    /// Seconds of publishing per ramp step.
    #[arg(long, default_value_t = 4.0)]
    pub ramp_step: f64,
    /// At most this many ramp steps.
    #[arg(long, default_value_t = 12)]
    pub ramp_max_steps: usize,
    /// Connection attempts in flight at once while subscribing.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Upper bound on the set-up, in seconds.
    #[arg(long, default_value_t = 180.0)]
    pub setup_timeout: f64,
}

/// Deliveries seen by all subscribers since the last reset.
#[derive(Default)]
struct Deliveries {
    count: Cell<u64>,
    latency: RefCell<Latency>,
    lost_subscribers: Cell<u64>,
}

impl Deliveries {
    fn reset(&self) {
        self.count.set(0);
        *self.latency.borrow_mut() = Latency::default();
    }

    fn record(&self, frame: &str) {
        self.count.set(self.count.get() + 1);
        if let Some(t) = timestamp(frame) {
            self.latency.borrow_mut().record_us(now_us().saturating_sub(t));
        }
    }
}

const NEW_ITEM: &str = r#"42["timeline:new_item""#;

async fn receive(mut client: Client, deliveries: Rc<Deliveries>) {
    while let Some(frame) = client.next_text().await {
        if frame.starts_with(NEW_ITEM) {
            deliveries.record(&frame);
        }
    }
    deliveries.lost_subscribers.set(deliveries.lost_subscribers.get() + 1);
}

/// One phase's publishing plan.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Items per second.
    rate: f64,
    duration: Duration,
    /// Items per request; 1 means the single-item route.
    batch: usize,
}

/// What one phase measured.
struct Phase {
    plan: Plan,
    published: u64,
    expected: u64,
    delivered: u64,
    /// Delivered while publishing was still going on.
    delivered_while_publishing: u64,
    publish_seconds: f64,
    http_errors: u64,
    first_http_error: Option<String>,
    latency: Latency,
    window: WindowReport,
}

impl Phase {
    fn ratio(&self) -> f64 {
        if self.expected == 0 {
            1.0
        } else {
            self.delivered as f64 / self.expected as f64
        }
    }

    /// Deliveries per second while publishing: what the server sustained.
    fn deliveries_per_s(&self) -> f64 {
        self.delivered_while_publishing as f64 / self.publish_seconds.max(1e-9)
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "target_rate": round(self.plan.rate, 1),
            "batch_size": self.plan.batch,
            "published": self.published,
            "achieved_rate": round(self.published as f64 / self.publish_seconds.max(1e-9), 1),
            "expected_deliveries": self.expected,
            "delivered": self.delivered,
            "delivery_ratio": round(self.ratio(), 5),
            "deliveries_per_s": round(self.deliveries_per_s(), 0),
            "http_errors": self.http_errors,
            "latency": self.latency.to_json(),
        });
        if let Some(e) = &self.first_http_error {
            v["first_http_error"] = json!(e);
        }
        merge(&mut v, self.window.to_json(self.delivered, "delivery"));
        v
    }
}

pub async fn run(target: &Target, args: &FanoutArgs, report: &mut Report) -> crate::Result<()> {
    let (s, t) = (args.subscribers, args.timelines.max(1));
    let deliveries = Rc::new(Deliveries::default());
    let addr = target.public;
    let fleet = {
        let deliveries = deliveries.clone();
        Fleet::spawn(
            s,
            args.concurrency,
            move |i| async move {
                let mut client = Client::connect(addr, super::CONNECT_TIMEOUT)
                    .await
                    .map_err(|e| e.to_string())?;
                subscribe(&mut client, &format!("fan-{}", i % t)).await?;
                Ok(client)
            },
            move |_, client| receive(client, deliveries.clone()),
        )
    };
    let (ready, failed) = fleet.wait_ready("fanout subscribers", secs(args.setup_timeout)).await;
    if ready < s {
        let why = fleet.first_error().unwrap_or_else(|| "set-up timed out".into());
        report.problem(format!(
            "fanout: {ready} of {s} subscribed, {failed} failed (first error: {why})"
        ));
    }
    // Subscribers per timeline, as actually subscribed, would need the
    // failures' indices; with a complete set-up it is exact.
    let per_timeline: Rc<Vec<u64>> = Rc::new((0..t).map(|k| ((s + t - 1 - k) / t) as u64).collect());
    tokio::time::sleep(Duration::from_millis(500)).await;

    let params = json!({ "subscribers": s, "timelines": t, "subscribed": ready });
    for phase in &args.phases {
        match phase.as_str() {
            "fixed" | "batch" => {
                let batch = if phase == "batch" {
                    args.batch_size.clamp(1, 1000)
                } else {
                    1
                };
                let duration = match phase.as_str() {
                    "batch" => args.batch_duration.unwrap_or(args.duration),
                    _ => args.duration,
                };
                let plan = Plan {
                    rate: args.rate,
                    duration: secs(duration),
                    batch,
                };
                eprintln!("  fanout {phase}: {} items/s for {:?}", plan.rate, plan.duration);
                let result = run_phase(target, plan, args.http_conns, &per_timeline, &deliveries).await;
                let mut line = result.to_json();
                merge(&mut line, params.clone());
                if result.http_errors > 0 {
                    report.problem(format!(
                        "fanout {phase}: {} publish requests failed",
                        result.http_errors
                    ));
                }
                if result.ratio() < 1.0 {
                    report.problem(format!("fanout {phase}: delivery ratio {:.5}", result.ratio()));
                }
                report.line(&format!("fanout-{phase}"), line);
            }
            "ramp" => {
                let mut line = ramp(target, args, &per_timeline, &deliveries).await;
                merge(&mut line, params.clone());
                report.line("fanout-ramp", line);
            }
            other => return Err(format!("unknown fanout phase {other:?} (fixed, batch, ramp)").into()),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let lost = deliveries.lost_subscribers.get();
    if lost > 0 {
        report.problem(format!("fanout: the server closed {lost} subscribers"));
    }
    fleet.stop().await;
    Ok(())
}

async fn ramp(target: &Target, args: &FanoutArgs, per_timeline: &Rc<Vec<u64>>, deliveries: &Rc<Deliveries>) -> Value {
    let mut rate = args.ramp_start.unwrap_or(args.rate);
    let mut steps = Vec::new();
    let mut best: Option<(f64, usize)> = None;
    let mut flat_steps = 0;
    for step in 0..args.ramp_max_steps {
        let plan = Plan {
            rate,
            duration: secs(args.ramp_step),
            batch: 1,
        };
        let result = run_phase(target, plan, args.http_conns, per_timeline, deliveries).await;
        let dps = result.deliveries_per_s();
        let sustained = result.ratio() >= 0.999;
        eprintln!(
            "  fanout ramp: {rate:.0} items/s → {:.0} achieved, {dps:.0} deliveries/s, ratio {:.4}, server {:.0} %, generator {:.0} %",
            result.published as f64 / result.publish_seconds.max(1e-9),
            result.ratio(),
            result.window.server_pct().unwrap_or(f64::NAN),
            result.window.own_pct(),
        );
        steps.push(result.to_json());
        let improved = best.is_none_or(|(b, _)| dps > b * 1.03);
        if sustained && improved {
            best = Some((dps, step));
            flat_steps = 0;
        } else {
            flat_steps += 1;
        }
        if !sustained || flat_steps >= 2 {
            break;
        }
        rate *= args.ramp_factor;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut line = json!({
        "max_sustained_deliveries_per_s": best.map(|(d, _)| round(d, 0)),
        "ramp_factor": args.ramp_factor,
        "step_s": args.ramp_step,
    });
    if let Some((_, i)) = best {
        line["at_max"] = steps[i].clone();
    }
    line["steps"] = Value::Array(steps);
    line
}

/// Publishes `plan`, then waits for the deliveries to drain (no progress for
/// a second, or 10 s at most). The window covers both.
async fn run_phase(
    target: &Target,
    plan: Plan,
    http_conns: usize,
    per_timeline: &Rc<Vec<u64>>,
    deliveries: &Rc<Deliveries>,
) -> Phase {
    deliveries.reset();
    let window = Window::start(target.pid);
    let requests = ((plan.rate * plan.duration.as_secs_f64()) / plan.batch as f64)
        .ceil()
        .max(1.0) as u64;
    let interval = Duration::from_secs_f64(plan.batch as f64 / plan.rate.max(1e-9));
    let started = Instant::now();
    // Late requests are still sent, but never past this bound.
    let hard_stop = started + plan.duration.mul_f64(1.5) + Duration::from_secs(2);
    let next = Rc::new(Cell::new(0u64));
    let tally = Rc::new(Tally::default());
    let mut workers = Vec::new();
    for _ in 0..http_conns.max(1) {
        let (next, tally, per_timeline) = (next.clone(), tally.clone(), per_timeline.clone());
        let mut http = HttpClient::new(target.internal);
        workers.push(tokio::task::spawn_local(async move {
            loop {
                let k = next.get();
                if k >= requests || Instant::now() >= hard_stop {
                    break;
                }
                next.set(k + 1);
                tokio::time::sleep_until((started + interval.mul_f64(k as f64)).into()).await;
                let (path, body, expected, items) = request_for(k, plan.batch, &per_timeline);
                match http.request("POST", &path, body.as_bytes()).await {
                    Ok(resp) if resp.status == 202 => tally.published(items, expected),
                    Ok(resp) => tally.error(format!(
                        "{path} answered {}: {}",
                        resp.status,
                        String::from_utf8_lossy(&resp.body)
                    )),
                    Err(e) => tally.error(format!("{path}: {e}")),
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    // The schedule spans requests × interval even when the last request
    // (or the only one, with big batches) leaves early.
    let publish_seconds = started.elapsed().max(interval.mul_f64(requests as f64)).as_secs_f64();
    let delivered_while_publishing = deliveries.count.get();
    let expected = tally.expected.get();

    let drain_started = Instant::now();
    let (mut last, mut last_progress) = (deliveries.count.get(), Instant::now());
    while deliveries.count.get() < expected
        && last_progress.elapsed() < Duration::from_secs(1)
        && drain_started.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if deliveries.count.get() != last {
            last = deliveries.count.get();
            last_progress = Instant::now();
        }
    }
    Phase {
        plan,
        published: tally.items.get(),
        expected,
        delivered: deliveries.count.get(),
        delivered_while_publishing,
        publish_seconds,
        http_errors: tally.errors.get(),
        first_http_error: tally.first_error.borrow().clone(),
        latency: deliveries.latency.borrow().clone(),
        window: window.finish(),
    }
}

#[derive(Default)]
struct Tally {
    items: Cell<u64>,
    expected: Cell<u64>,
    errors: Cell<u64>,
    first_error: RefCell<Option<String>>,
}

impl Tally {
    fn published(&self, items: u64, expected: u64) {
        self.items.set(self.items.get() + items);
        self.expected.set(self.expected.get() + expected);
    }

    fn error(&self, what: String) {
        self.errors.set(self.errors.get() + 1);
        self.first_error.borrow_mut().get_or_insert(what);
    }
}

/// Request `k` of a phase: its path, body, the deliveries it should cause and
/// its item count. Items are numbered k·batch + j and go round-robin over the
/// timelines; each carries its send time.
fn request_for(k: u64, batch: usize, per_timeline: &[u64]) -> (String, String, u64, u64) {
    let t = per_timeline.len() as u64;
    let sent = now_us();
    if batch == 1 {
        let timeline = k % t;
        let body = format!(r#"{{"id":{k},"t":{sent},"text":"Call booked with the customer"}}"#);
        return (
            format!("/v1/timeline/client/fan-{timeline}/items"),
            body,
            per_timeline[timeline as usize],
            1,
        );
    }
    let mut body = String::with_capacity(120 * batch + 16);
    body.push_str(r#"{"events":["#);
    let mut expected = 0;
    for j in 0..batch as u64 {
        let id = k * batch as u64 + j;
        let timeline = id % t;
        expected += per_timeline[timeline as usize];
        if j > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"type":"new_item","entityType":"client","entityId":"fan-{timeline}","item":{{"id":{id},"t":{sent},"text":"Call booked with the customer"}}}}"#
        ));
    }
    body.push_str("]}");
    ("/v1/timeline/batch".to_string(), body, expected, batch as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_spread_items_over_timelines() {
        let per_timeline = [3, 2];
        let (path, body, expected, items) = request_for(1, 3, &per_timeline);
        assert_eq!(path, "/v1/timeline/batch");
        assert_eq!(items, 3);
        // Items 3, 4, 5 go to timelines 1, 0, 1.
        assert_eq!(expected, 2 + 3 + 2);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["events"][1]["entityId"], "fan-0");
        assert_eq!(v["events"][1]["item"]["id"], 4);
    }

    #[test]
    fn single_publishes_use_the_items_route() {
        let (path, body, expected, items) = request_for(5, 1, &[3, 2]);
        assert_eq!(path, "/v1/timeline/client/fan-1/items");
        assert_eq!((expected, items), (2, 1));
        assert!(timestamp(&body).is_some());
    }
}
