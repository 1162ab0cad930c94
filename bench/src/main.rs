//! `loadgen`: see the library's documentation, or `loadgen --help`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use switchboard_bench::scenario::{self, Report};
use switchboard_bench::{Target, http, loopback, table};

/// Load generator for Switchboard and the Node original: raw Engine.IO v4 /
/// Socket.IO v5 websocket clients and internal-API publishers on one thread
/// (pin it with `taskset`). Loopback addresses only. Each scenario prints one
/// JSON line per result on stdout, progress on stderr.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
struct Cli {
    /// The server's public Socket.IO listener.
    #[arg(long, global = true, default_value = "127.0.0.1:3000")]
    public: String,
    /// The server's internal HTTP API listener.
    #[arg(long, global = true, default_value = "127.0.0.1:3001")]
    internal: String,
    /// The server's process id: its CPU and RSS are read from /proc.
    #[arg(long, global = true)]
    pid: Option<u32>,
    /// The server's name in the result lines.
    #[arg(long, global = true, default_value = "server")]
    label: String,
    /// Exit with status 1 when a run is incomplete: a client that could not
    /// connect, a lost delivery, a failed op, a leak, a client not back.
    #[arg(long, global = true)]
    strict: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Idle websockets, each viewing its own ticket: RSS per connection.
    Idle(scenario::idle::IdleArgs),
    /// Timeline fan-out: fixed rate, batched, and a ramp to saturation.
    Fanout(scenario::fanout::FanoutArgs),
    /// Agents looping view → typing → stop_typing → leave with acks.
    Collision(scenario::collision::CollisionArgs),
    /// Rounds of abrupt disconnects; checks /v1/stats returns to its baseline.
    Churn(scenario::churn::ChurnArgs),
    /// Subscribes with `since` after missed items: time until the ack.
    Recovery(scenario::recovery::RecoveryArgs),
    /// Restarts the server under N viewing clients; time until all are back.
    Storm(scenario::storm::StormArgs),
    /// Prints free loopback TCP ports, one a line.
    FreePort {
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
    /// Waits until the internal API answers GET /health with 200.
    WaitReady {
        /// Seconds.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
    },
    /// Prints the comparison table of two result files (ratio: second ÷ first).
    Table { first: String, second: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    raise_descriptor_limit();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let local = tokio::task::LocalSet::new();
    match local.block_on(&runtime, run(&cli)) {
        Ok(problems) if problems.is_empty() || !cli.strict => ExitCode::SUCCESS,
        Ok(problems) => {
            eprintln!("loadgen: {} problem(s); failing (--strict)", problems.len());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: &Cli) -> switchboard_bench::Result<Vec<String>> {
    let target = || -> switchboard_bench::Result<Target> {
        Ok(Target {
            public: loopback(&cli.public)?,
            internal: loopback(&cli.internal)?,
            pid: cli.pid,
        })
    };
    let mut report = Report::new(&cli.label);
    match &cli.command {
        Command::Idle(args) => scenario::idle::run(&target()?, args, &mut report).await?,
        Command::Fanout(args) => scenario::fanout::run(&target()?, args, &mut report).await?,
        Command::Collision(args) => scenario::collision::run(&target()?, args, &mut report).await?,
        Command::Churn(args) => scenario::churn::run(&target()?, args, &mut report).await?,
        Command::Storm(args) => scenario::storm::run(&target()?, args, &mut report).await?,
        Command::Recovery(args) => scenario::recovery::run(&target()?, args, &mut report).await?,
        Command::FreePort { count } => {
            // Held together so that the ports differ; released on return.
            let mut held = Vec::new();
            for _ in 0..*count {
                let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
                println!("{}", listener.local_addr()?.port());
                held.push(listener);
            }
        }
        Command::WaitReady { timeout } => {
            http::wait_healthy(loopback(&cli.internal)?, Duration::from_secs_f64(*timeout)).await?;
        }
        Command::Table { first, second } => {
            print!("{}", table::render(&table::load(first)?, &table::load(second)?));
        }
    }
    Ok(report.problems().to_vec())
}

/// Thousands of sockets need more descriptors than the usual soft limit of
/// 1024: raise it to the hard limit (children, such as `storm`'s server,
/// inherit it).
fn raise_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
