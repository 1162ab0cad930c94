//! The `switchboard` binary: reads the configuration, starts logging, serves.
//! `switchboard healthcheck [flags]` instead probes a running server's
//! internal `/health` with the same configuration (exit 0 when it answers 200).

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use switchboard::app::{self, Listeners};
use switchboard::config::{Config, ConfigError, LogFormat};
use switchboard::healthcheck;

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let healthcheck = args.get(1).is_some_and(|a| a == "healthcheck");
    if healthcheck {
        args.remove(1);
    }
    let config = match Config::from_args(args) {
        Ok(config) => config,
        Err(ConfigError::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("switchboard: {e}");
            return ExitCode::from(2);
        }
    };
    if healthcheck {
        return match healthcheck::probe(config.internal_listen, Duration::from_secs(3)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("switchboard healthcheck: {e}");
                ExitCode::FAILURE
            }
        };
    }
    init_tracing(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchboard: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let listeners = match Listeners::bind(&config).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("switchboard: cannot bind {e}");
                return ExitCode::FAILURE;
            }
        };
        match app::run(config, listeners, app::shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("switchboard: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
