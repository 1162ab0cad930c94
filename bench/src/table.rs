//! The comparison table: two servers' result lines side by side, with the
//! ratio second ÷ first (Node original ÷ Switchboard in `scripts/bench-compare`).

use std::collections::HashMap;

use serde_json::Value;

/// One row: which result line, which figure in it, how to show it.
struct Row {
    scenario: &'static str,
    pointer: &'static str,
    label: &'static str,
    digits: usize,
}

const fn row(scenario: &'static str, pointer: &'static str, label: &'static str, digits: usize) -> Row {
    Row {
        scenario,
        pointer,
        label,
        digits,
    }
}

const ROWS: &[Row] = &[
    row("idle", "/rss_per_conn_kib", "RSS per connection (KiB)", 1),
    row("idle", "/connections_per_s", "connections set up per second", 0),
    row(
        "idle",
        "/server_total_us_per_connection",
        "server CPU per connection set-up (µs)",
        0,
    ),
    row(
        "fanout-fixed",
        "/server_user_us_per_delivery",
        "server user CPU per delivery (µs)",
        3,
    ),
    row(
        "fanout-fixed",
        "/server_system_us_per_delivery",
        "server system CPU per delivery (µs)",
        3,
    ),
    row("fanout-fixed", "/latency/p50_ms", "publish→delivery p50 (ms)", 2),
    row("fanout-fixed", "/latency/p99_ms", "publish→delivery p99 (ms)", 2),
    row("fanout-fixed", "/delivery_ratio", "delivery ratio", 4),
    row("fanout-fixed", "/gen_cpu_pct", "generator CPU (% of its core)", 0),
    row(
        "fanout-batch",
        "/server_user_us_per_delivery",
        "server user CPU per delivery (µs)",
        3,
    ),
    row(
        "fanout-batch",
        "/server_system_us_per_delivery",
        "server system CPU per delivery (µs)",
        3,
    ),
    row("fanout-batch", "/latency/p50_ms", "publish→delivery p50 (ms)", 2),
    row("fanout-batch", "/latency/p99_ms", "publish→delivery p99 (ms)", 2),
    row("fanout-batch", "/delivery_ratio", "delivery ratio", 4),
    row(
        "fanout-ramp",
        "/max_sustained_deliveries_per_s",
        "max sustained deliveries/s (ratio ≥ 99.9 %)",
        0,
    ),
    row("fanout-ramp", "/at_max/achieved_rate", "publishes/s at that point", 0),
    row(
        "fanout-ramp",
        "/at_max/server_cpu_pct",
        "server CPU there (% of its core)",
        0,
    ),
    row(
        "fanout-ramp",
        "/at_max/gen_cpu_pct",
        "generator CPU there (% of its core)",
        0,
    ),
    row(
        "fanout-ramp",
        "/at_max/latency/p99_ms",
        "publish→delivery p99 there (ms)",
        2,
    ),
    row("collision", "/ops_per_s", "acked ops per second", 0),
    row("collision", "/server_user_us_per_op", "server user CPU per op (µs)", 2),
    row(
        "collision",
        "/server_system_us_per_op",
        "server system CPU per op (µs)",
        2,
    ),
    row("collision", "/latency/p50_ms", "ack latency p50 (ms)", 2),
    row("collision", "/latency/p99_ms", "ack latency p99 (ms)", 2),
    row("collision", "/errors", "failed ops", 0),
    row("collision", "/gen_cpu_pct", "generator CPU (% of its core)", 0),
    row("churn", "/leaked_total", "left in /v1/stats after the rounds", 0),
    row("churn", "/max_seconds_to_baseline", "slowest return to baseline (s)", 2),
    row("churn", "/rss_growth_kib", "RSS growth over the rounds (KiB)", 0),
    row("storm", "/all_back_s", "all back, from the restart (s)", 2),
    row("storm", "/back_after_restart/p50_ms", "back after restart, p50 (ms)", 0),
    row(
        "storm",
        "/old_server_exit_s",
        "old server's exit after the signal (s)",
        2,
    ),
    row("storm", "/failed_attempts", "failed (refused) reconnection attempts", 0),
    row(
        "storm",
        "/clients_refused_at_least_once",
        "clients refused at least once",
        0,
    ),
    row("storm", "/not_back", "clients not back by the deadline", 0),
];

/// Reads result lines (JSON objects, one per line; other lines ignored).
pub fn load(path: &str) -> crate::Result<(String, HashMap<String, Value>)> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut label = None;
    let mut lines = HashMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(scenario) = v.get("scenario").and_then(Value::as_str) else {
            continue;
        };
        label = label.or_else(|| v.get("server").and_then(Value::as_str).map(String::from));
        lines.insert(scenario.to_string(), v);
    }
    Ok((label.unwrap_or_else(|| path.to_string()), lines))
}

/// What each scenario ran, from its result line.
fn describe(scenario: &str, v: &Value) -> String {
    let n = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_f64)
            .map(|x| group(x, 0))
            .unwrap_or_else(|| "?".into())
    };
    match scenario {
        "idle" => format!("idle ({} websockets, each viewing a ticket)", n("/clients")),
        "fanout-fixed" => format!(
            "fanout ({} subscribers / {} timelines, {} publishes/s, one per request)",
            n("/subscribers"),
            n("/timelines"),
            n("/target_rate")
        ),
        "fanout-batch" => format!(
            "fanout batched ({} items/s, {} per request)",
            n("/target_rate"),
            n("/batch_size")
        ),
        "fanout-ramp" => "fanout ramp to saturation (one publish per request)".into(),
        "collision" => format!(
            "collision ({} agents, {} tickets, {} s closed loop)",
            n("/agents"),
            n("/tickets"),
            n("/duration_s")
        ),
        "churn" => format!(
            "churn ({} × {} abrupt disconnects)",
            n("/rounds"),
            n("/clients_per_round")
        ),
        "storm" => format!(
            "storm ({} clients, restart by {})",
            n("/clients"),
            v["signal"].as_str().unwrap_or("?")
        ),
        other => other.to_string(),
    }
}

/// Formats with `digits` decimals and thousands separators.
fn group(x: f64, digits: usize) -> String {
    let s = format!("{:.*}", digits, x.abs());
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let mut out = String::new();
    for (k, c) in int.chars().enumerate() {
        if k > 0 && (int.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    if x < 0.0 && x.abs() >= 0.5 * 10f64.powi(-(digits as i32)) {
        format!("-{out}")
    } else {
        out
    }
}

/// The markdown table: one row per figure, the ratio `b ÷ a`.
pub fn render(a: &(String, HashMap<String, Value>), b: &(String, HashMap<String, Value>)) -> String {
    let mut out = format!(
        "| scenario | figure | {} | {} | {} ÷ {} |\n|---|---|---:|---:|---:|\n",
        a.0, b.0, b.0, a.0
    );
    let mut last_scenario = "";
    for r in ROWS {
        let (va, vb) = (a.1.get(r.scenario), b.1.get(r.scenario));
        if va.is_none() && vb.is_none() {
            continue;
        }
        let get = |v: Option<&Value>| v.and_then(|v| v.pointer(r.pointer)).and_then(Value::as_f64);
        let (xa, xb) = (get(va), get(vb));
        let show = |x: Option<f64>| x.map_or("—".to_string(), |x| group(x, r.digits));
        let ratio = match (xa, xb) {
            (Some(xa), Some(xb)) if xa != 0.0 => format!("{:.2}", xb / xa),
            _ => "—".to_string(),
        };
        let scenario = if r.scenario == last_scenario {
            String::new()
        } else {
            describe(r.scenario, va.or(vb).unwrap_or(&Value::Null))
        };
        last_scenario = r.scenario;
        out.push_str(&format!(
            "| {scenario} | {} | {} | {} | {ratio} |\n",
            r.label,
            show(xa),
            show(xb)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(group(1234567.0, 0), "1,234,567");
        assert_eq!(group(999.0, 0), "999");
        assert_eq!(group(12.3456, 2), "12.35");
        assert_eq!(group(-4096.0, 0), "-4,096");
    }

    #[test]
    fn ratio_is_second_over_first() {
        let line = |server: &str, rss: f64| {
            let v = serde_json::json!({ "scenario": "idle", "server": server, "clients": 10, "rss_per_conn_kib": rss });
            (server.to_string(), HashMap::from([("idle".to_string(), v)]))
        };
        let table = render(&line("switchboard", 32.0), &line("node", 16.0));
        assert!(
            table.contains("| RSS per connection (KiB) | 32.0 | 16.0 | 0.50 |"),
            "{table}"
        );
    }
}
