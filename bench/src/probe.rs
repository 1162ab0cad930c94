//! Process figures from `/proc`: CPU time (user and system apart) and RSS.
//! The server's are sampled at the start and the end of a load window only;
//! the generator's own CPU over the same window shows when the generator,
//! not the server, is the limit.

use std::time::Instant;

use serde_json::{Value, json};

/// CPU time a process has used, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub user_ms: f64,
    pub system_ms: f64,
}

/// `utime` and `stime` of `/proc/<pid>/stat` (`None` for this process).
pub fn cpu(pid: Option<u32>) -> Option<Cpu> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let ms = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .map(|t| t * 1000.0 / ticks)
    };
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    Some(Cpu {
        user_ms: ms(11)?,
        system_ms: ms(12)?,
    })
}

/// Resident set size of `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The lowest of `samples` RSS readings 200 ms apart: a garbage collector or
/// an allocator returning memory makes single readings jumpy.
pub async fn settled_rss_kib(pid: u32, samples: usize) -> Option<u64> {
    let mut lowest: Option<u64> = None;
    for i in 0..samples {
        if i > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let rss = rss_kib(pid)?;
        lowest = Some(lowest.map_or(rss, |l| l.min(rss)));
    }
    lowest
}

/// A load window: CPU of the server and of the generator between `start`
/// and `finish`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    started: Instant,
    server_pid: Option<u32>,
    server: Option<Cpu>,
    own: Option<Cpu>,
}

/// What a window measured.
#[derive(Debug, Clone, Copy)]
pub struct WindowReport {
    pub seconds: f64,
    /// Server CPU over the window; `None` without a server pid.
    pub server: Option<Cpu>,
    /// The generator's CPU over the window.
    pub own: Cpu,
}

impl Window {
    pub fn start(server_pid: Option<u32>) -> Self {
        Self {
            started: Instant::now(),
            server_pid,
            server: server_pid.and_then(|p| cpu(Some(p))),
            own: cpu(None),
        }
    }

    pub fn finish(&self) -> WindowReport {
        let diff = |before: Option<Cpu>, after: Option<Cpu>| {
            let (b, a) = (before?, after?);
            Some(Cpu {
                user_ms: a.user_ms - b.user_ms,
                system_ms: a.system_ms - b.system_ms,
            })
        };
        WindowReport {
            seconds: self.started.elapsed().as_secs_f64(),
            server: diff(self.server, self.server_pid.and_then(|p| cpu(Some(p)))),
            own: diff(self.own, cpu(None)).unwrap_or_default(),
        }
    }
}

impl WindowReport {
    /// The generator's CPU as a percentage of one core.
    pub fn own_pct(&self) -> f64 {
        100.0 * (self.own.user_ms + self.own.system_ms) / (self.seconds * 1000.0).max(1e-9)
    }

    /// The server's CPU as a percentage of one core.
    pub fn server_pct(&self) -> Option<f64> {
        self.server
            .map(|c| 100.0 * (c.user_ms + c.system_ms) / (self.seconds * 1000.0).max(1e-9))
    }

    /// Window figures, with the server's CPU per unit of work (`per`, e.g.
    /// deliveries) in microseconds, user and system apart.
    pub fn to_json(&self, per: u64, unit: &str) -> Value {
        let mut v = json!({
            "window_s": round(self.seconds, 3),
            "gen_cpu_pct": round(self.own_pct(), 1),
        });
        if let Some(c) = self.server {
            v["server_user_ms"] = json!(round(c.user_ms, 1));
            v["server_system_ms"] = json!(round(c.system_ms, 1));
            v["server_cpu_pct"] = json!(round(self.server_pct().unwrap_or(0.0), 1));
            if per > 0 {
                let n = per as f64;
                v[format!("server_user_us_per_{unit}")] = json!(round(c.user_ms * 1000.0 / n, 3));
                v[format!("server_system_us_per_{unit}")] = json!(round(c.system_ms * 1000.0 / n, 3));
                v[format!("server_total_us_per_{unit}")] = json!(round((c.user_ms + c.system_ms) * 1000.0 / n, 3));
            }
        }
        v
    }
}

/// Rounds for the report (JSON numbers with a sensible number of digits).
pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}
