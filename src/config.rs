//! Configuration (contract §6): built-in defaults, then a TOML file, then
//! `SWITCHBOARD_<KEY>` environment variables, then `--<key>` flags.
//!
//! Every key is declared once in [`KEYS`]; `--help`, the environment names
//! and the file's accepted keys all come from that table.

use std::collections::HashSet;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, Command};

use crate::auth::JwtVerifier;

/// A configuration that cannot be served; names the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        message: message.into(),
    }
}

/// Identity of the agent behind a socket (contract §1).
#[derive(Debug, Clone, PartialEq)]
pub enum AuthMode {
    /// The agent is whoever the payload says.
    None,
    /// The agent is the `sub` of a token verified at connect.
    Jwt(Box<JwtVerifier>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The whole configuration, typed and validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub internal_listen: SocketAddr,
    pub internal_token: Option<String>,
    pub redis_url: Option<String>,
    pub auth_mode: AuthMode,
    pub typing_timeout: Duration,
    pub sweep_interval: Duration,
    pub stale_after: Duration,
    pub node_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub max_body: usize,
    /// `None`: any entity type.
    pub entity_types: Option<HashSet<String>>,
    /// `None`: any origin.
    pub cors_origins: Option<Vec<String>>,
    pub max_payload: u64,
    pub max_tickets_per_socket: usize,
    pub max_timelines_per_socket: usize,
    pub events_per_second: u32,
    pub log_format: LogFormat,
}

/// (key, default as written, meaning) — the table of contract §6.
pub const KEYS: &[(&str, &str, &str)] = &[
    ("listen", "0.0.0.0:3000", "public Socket.IO listener (address:port)"),
    (
        "internal_listen",
        "127.0.0.1:3001",
        "internal HTTP API listener; non-loopback needs internal_token",
    ),
    (
        "internal_token",
        "none",
        "bearer token required by the internal API (except /health, /ready, /metrics)",
    ),
    ("redis_url", "none", "Redis for multi-instance rooms and presence"),
    (
        "auth_mode",
        "none",
        "identity of agents: none (from the payload) or jwt",
    ),
    ("jwt_secret", "none", "HS256 shared secret (auth_mode = jwt)"),
    (
        "jwt_public_key_file",
        "none",
        "PEM public key for RS256/ES256 (auth_mode = jwt)",
    ),
    ("typing_timeout", "10s", "typing falls back to viewing after this"),
    ("sweep_interval", "5m", "how often stale viewers are swept"),
    ("stale_after", "30m", "a viewer idle this long is stale"),
    ("node_timeout", "15s", "a silent instance is declared lost after this"),
    ("shutdown_timeout", "10s", "graceful shutdown bound"),
    ("max_body", "65536", "internal API body limit, bytes"),
    (
        "entity_types",
        "any",
        "allow-list of timeline entity types (comma-separated)",
    ),
    (
        "cors_origins",
        "any",
        "allowed browser origins for the public listener (comma-separated)",
    ),
    ("max_payload", "1000000", "largest Socket.IO message, bytes"),
    ("max_tickets_per_socket", "100", "tickets one socket may view"),
    (
        "max_timelines_per_socket",
        "500",
        "timelines one socket may subscribe to",
    ),
    (
        "events_per_second",
        "50",
        "per-socket event rate (burst twice that); 0 = off",
    ),
    ("log_format", "text", "text or json; the level comes from RUST_LOG"),
];

fn flag(key: &str) -> String {
    key.replace('_', "-")
}

fn env_name(key: &str) -> String {
    format!("SWITCHBOARD_{}", key.to_uppercase())
}

/// The command line, with one flag per key.
pub fn command() -> Command {
    let mut cmd = Command::new("switchboard")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Socket.IO-compatible realtime server: ticket collision detection and live timelines")
        .after_help(
            "Precedence: flag over environment over file over default. Durations like 500ms, 10s, 5m; \
             lists comma-separated in flags and environment, TOML arrays in the file.",
        )
        .arg(
            Arg::new("config")
                .long("config")
                .env("SWITCHBOARD_CONFIG")
                .value_name("PATH")
                .help("TOML configuration file")
                .action(ArgAction::Set),
        );
    for (key, default, help) in KEYS {
        cmd = cmd.arg(
            Arg::new(*key)
                .long(flag(key))
                .env(env_name(key))
                // Secrets may sit in the environment: never echo values in --help.
                .hide_env_values(true)
                .value_name(key.to_uppercase())
                .help(format!("{help} [config key: {key}] [default: {default}]"))
                .action(ArgAction::Set),
        );
    }
    cmd
}

/// One setting as found, before it is typed.
enum Raw {
    /// From a flag or the environment.
    Text(String),
    /// From the TOML file.
    Toml(toml::Value),
}

struct Sources {
    matches: clap::ArgMatches,
    file: toml::Table,
}

impl Sources {
    fn get(&self, key: &str) -> Option<Raw> {
        if let Some(text) = self.matches.get_one::<String>(key).filter(|s| !s.is_empty()) {
            return Some(Raw::Text(text.clone()));
        }
        self.file.get(key).cloned().map(Raw::Toml)
    }

    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Raw::Text(s)) | Some(Raw::Toml(toml::Value::String(s))) => Ok(Some(s)),
            Some(Raw::Toml(_)) => Err(err(key, "expected a string")),
        }
    }

    fn duration(&self, key: &str, default: Duration) -> Result<Duration, ConfigError> {
        let Some(text) = self
            .string(key)
            .map_err(|_| err(key, "expected a duration like \"10s\""))?
        else {
            return Ok(default);
        };
        let d = humantime::parse_duration(text.trim()).map_err(|e| {
            err(
                key,
                format!("expected a duration like 500ms, 10s or 5m, got {text:?} ({e})"),
            )
        })?;
        if d.is_zero() {
            return Err(err(key, "must be longer than zero"));
        }
        Ok(d)
    }

    fn number(&self, key: &str, default: u64) -> Result<u64, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(Raw::Text(s)) => s
                .trim()
                .parse()
                .map_err(|_| err(key, format!("expected a non-negative integer, got {s:?}"))),
            Some(Raw::Toml(toml::Value::Integer(i))) => {
                u64::try_from(i).map_err(|_| err(key, "expected a non-negative integer"))
            }
            Some(Raw::Toml(_)) => Err(err(key, "expected a non-negative integer")),
        }
    }

    fn list(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        let items = match self.get(key) {
            None => return Ok(None),
            Some(Raw::Text(s)) => s
                .split(',')
                .map(|i| i.trim().to_string())
                .filter(|i| !i.is_empty())
                .collect(),
            Some(Raw::Toml(toml::Value::Array(items))) => items
                .into_iter()
                .map(|i| match i {
                    toml::Value::String(s) => Ok(s),
                    _ => Err(err(key, "expected an array of strings")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(Raw::Toml(_)) => return Err(err(key, "expected an array of strings")),
        };
        Ok(Some(items))
    }

    fn addr(&self, key: &str, default: &str) -> Result<SocketAddr, ConfigError> {
        let text = self.string(key)?.unwrap_or_else(|| default.to_string());
        text.trim()
            .parse()
            .map_err(|_| err(key, format!("expected an address like 127.0.0.1:3001, got {text:?}")))
    }
}

impl Config {
    /// Reads flags and environment from `args`, then the file they name.
    pub fn from_args<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = command().try_get_matches_from(args).map_err(|e| match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => e.exit(),
            _ => err("command line", e.to_string()),
        })?;
        let file = match matches.get_one::<String>("config").filter(|p| !p.is_empty()) {
            Some(path) => read_file(&PathBuf::from(path))?,
            None => toml::Table::new(),
        };
        Self::from_sources(&Sources { matches, file })
    }

    /// The built-in defaults, as if run with no configuration at all.
    pub fn defaults() -> Self {
        Self::from_args(["switchboard"]).expect("the built-in defaults are valid")
    }

    fn from_sources(src: &Sources) -> Result<Self, ConfigError> {
        let positive = |key: &str, v: u64| {
            if v == 0 {
                Err(err(key, "must be at least 1"))
            } else {
                Ok(v)
            }
        };
        let to_usize = |key: &str, v: u64| usize::try_from(v).map_err(|_| err(key, "too large"));
        let config = Config {
            listen: src.addr("listen", "0.0.0.0:3000")?,
            internal_listen: src.addr("internal_listen", "127.0.0.1:3001")?,
            internal_token: src.string("internal_token")?.filter(|t| !t.is_empty()),
            redis_url: src.string("redis_url")?.filter(|t| !t.is_empty()),
            auth_mode: auth_mode(src)?,
            typing_timeout: src.duration("typing_timeout", Duration::from_secs(10))?,
            sweep_interval: src.duration("sweep_interval", Duration::from_secs(300))?,
            stale_after: src.duration("stale_after", Duration::from_secs(1800))?,
            node_timeout: src.duration("node_timeout", Duration::from_secs(15))?,
            shutdown_timeout: src.duration("shutdown_timeout", Duration::from_secs(10))?,
            max_body: to_usize("max_body", src.number("max_body", 65_536)?)?,
            entity_types: entity_types(src)?,
            cors_origins: cors_origins(src)?,
            max_payload: positive("max_payload", src.number("max_payload", 1_000_000)?)?,
            max_tickets_per_socket: to_usize("max_tickets_per_socket", src.number("max_tickets_per_socket", 100)?)?,
            max_timelines_per_socket: to_usize(
                "max_timelines_per_socket",
                src.number("max_timelines_per_socket", 500)?,
            )?,
            events_per_second: u32::try_from(src.number("events_per_second", 50)?)
                .map_err(|_| err("events_per_second", "too large"))?,
            log_format: match src.string("log_format")?.as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(err("log_format", format!("expected text or json, got {other:?}")));
                }
            },
        };
        if !config.internal_listen.ip().is_loopback() && config.internal_token.is_none() {
            return Err(err(
                "internal_token",
                format!(
                    "required when internal_listen ({}) is not a loopback address",
                    config.internal_listen
                ),
            ));
        }
        if let Some(url) = &config.redis_url {
            redis::Client::open(url.as_str()).map_err(|e| err("redis_url", format!("{e}")))?;
        }
        Ok(config)
    }
}

fn read_file(path: &PathBuf) -> Result<toml::Table, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| err("config", format!("cannot read {}: {e}", path.display())))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| err("config", format!("{} is not valid TOML: {e}", path.display())))?;
    if let Some(unknown) = table.keys().find(|k| !KEYS.iter().any(|(key, _, _)| key == k)) {
        return Err(err(unknown, format!("unknown key in {}", path.display())));
    }
    Ok(table)
}

fn auth_mode(src: &Sources) -> Result<AuthMode, ConfigError> {
    match src.string("auth_mode")?.as_deref() {
        None | Some("none") => Ok(AuthMode::None),
        Some("jwt") => match (src.string("jwt_secret")?, src.string("jwt_public_key_file")?) {
            (None, None) => Err(err(
                "jwt_secret",
                "auth_mode = jwt needs jwt_secret or jwt_public_key_file",
            )),
            (Some(_), Some(_)) => Err(err("jwt_secret", "set jwt_secret or jwt_public_key_file, not both")),
            (Some(secret), None) => Ok(AuthMode::Jwt(Box::new(JwtVerifier::hs256(secret.as_bytes())))),
            (None, Some(path)) => {
                let pem =
                    std::fs::read(&path).map_err(|e| err("jwt_public_key_file", format!("cannot read {path}: {e}")))?;
                JwtVerifier::from_public_pem(&pem)
                    .map(|v| AuthMode::Jwt(Box::new(v)))
                    .map_err(|e| err("jwt_public_key_file", format!("{path}: {e}")))
            }
        },
        Some(other) => Err(err("auth_mode", format!("expected none or jwt, got {other:?}"))),
    }
}

fn entity_types(src: &Sources) -> Result<Option<HashSet<String>>, ConfigError> {
    let Some(list) = src.list("entity_types")? else {
        return Ok(None);
    };
    let valid = |t: &str| crate::ids::EntityType::parse(Some(&serde_json::Value::from(t))).is_ok();
    if let Some(bad) = list.iter().find(|t| !valid(t)) {
        return Err(err(
            "entity_types",
            format!("{bad:?} does not match ^[a-z][a-z0-9_-]{{0,31}}$"),
        ));
    }
    Ok(Some(list.into_iter().collect()))
}

fn cors_origins(src: &Sources) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(list) = src.list("cors_origins")? else {
        return Ok(None);
    };
    for origin in &list {
        let rest = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if !rest.is_some_and(|host| !host.is_empty() && !host.contains('/')) {
            return Err(err(
                "cors_origins",
                format!("{origin:?} is not an origin like https://crm.example.com"),
            ));
        }
    }
    Ok(Some(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(args: &[&str]) -> Result<Config, ConfigError> {
        Config::from_args(std::iter::once("switchboard").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_are_the_contracts() {
        let c = load(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:3000");
        assert_eq!(c.internal_listen.to_string(), "127.0.0.1:3001");
        assert_eq!(c.typing_timeout, Duration::from_secs(10));
        assert_eq!(c.sweep_interval, Duration::from_secs(300));
        assert_eq!(c.stale_after, Duration::from_secs(1800));
        assert_eq!(c.node_timeout, Duration::from_secs(15));
        assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(c.max_body, 65_536);
        assert_eq!(c.max_payload, 1_000_000);
        assert_eq!(c.max_tickets_per_socket, 100);
        assert_eq!(c.max_timelines_per_socket, 500);
        assert_eq!(c.events_per_second, 50);
        assert_eq!(c.entity_types, None);
        assert_eq!(c.cors_origins, None);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.auth_mode, AuthMode::None);
    }

    #[test]
    fn flags_parse_durations_and_lists() {
        let c = load(&[
            "--typing-timeout",
            "500ms",
            "--entity-types",
            "contact, deal",
            "--events-per-second",
            "0",
        ])
        .unwrap();
        assert_eq!(c.typing_timeout, Duration::from_millis(500));
        assert_eq!(c.entity_types.unwrap().len(), 2);
        assert_eq!(c.events_per_second, 0);
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_eq!(load(&["--typing-timeout", "banana"]).unwrap_err().key, "typing_timeout");
        assert_eq!(load(&["--max-body", "-1"]).unwrap_err().key, "command line");
        assert_eq!(load(&["--max-body", "lots"]).unwrap_err().key, "max_body");
        assert_eq!(load(&["--log-format", "xml"]).unwrap_err().key, "log_format");
        assert_eq!(load(&["--entity-types", "Contact"]).unwrap_err().key, "entity_types");
        assert_eq!(
            load(&["--cors-origins", "example.com"]).unwrap_err().key,
            "cors_origins"
        );
        assert_eq!(load(&["--auth-mode", "magic"]).unwrap_err().key, "auth_mode");
    }

    #[test]
    fn the_example_file_documents_every_key_and_loads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/switchboard.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        for (key, default, _) in KEYS {
            assert!(text.contains(&format!("{key} =")), "{key} is not in the example");
            if !matches!(*default, "none" | "any") {
                assert!(
                    text.contains(default),
                    "{key}'s default {default} is not in the example"
                );
            }
        }
        let c = load(&["--config", path]).unwrap();
        assert_eq!(c.typing_timeout, Duration::from_secs(10));
    }

    #[test]
    fn jwt_needs_exactly_one_usable_key() {
        assert_eq!(load(&["--auth-mode", "jwt"]).unwrap_err().key, "jwt_secret");
        assert!(matches!(
            load(&["--auth-mode", "jwt", "--jwt-secret", "s"]).unwrap().auth_mode,
            AuthMode::Jwt(_)
        ));
        let both = [
            "--auth-mode",
            "jwt",
            "--jwt-secret",
            "s",
            "--jwt-public-key-file",
            "/nonexistent",
        ];
        assert_eq!(load(&both).unwrap_err().key, "jwt_secret");
        let missing = ["--auth-mode", "jwt", "--jwt-public-key-file", "/nonexistent/key.pem"];
        assert_eq!(load(&missing).unwrap_err().key, "jwt_public_key_file");
        let not_a_key = [
            "--auth-mode",
            "jwt",
            "--jwt-public-key-file",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ];
        assert_eq!(load(&not_a_key).unwrap_err().key, "jwt_public_key_file");
    }

    #[test]
    fn public_internal_listener_needs_a_token() {
        assert_eq!(
            load(&["--internal-listen", "0.0.0.0:3001"]).unwrap_err().key,
            "internal_token"
        );
        assert!(load(&["--internal-listen", "0.0.0.0:3001", "--internal-token", "s3cret"]).is_ok());
        assert!(load(&["--internal-listen", "[::1]:3001"]).is_ok());
    }

    #[test]
    fn file_values_are_under_flags() {
        let dir = std::env::temp_dir().join(format!("switchboard-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "typing_timeout = \"2s\"\nmax_body = 10\nentity_types = [\"contact\"]\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let c = load(&["--config", p]).unwrap();
        assert_eq!(c.typing_timeout, Duration::from_secs(2));
        assert_eq!(c.max_body, 10);
        assert_eq!(c.entity_types.unwrap().into_iter().collect::<Vec<_>>(), ["contact"]);
        let c = load(&["--config", p, "--max-body", "20"]).unwrap();
        assert_eq!(c.max_body, 20);
        std::fs::write(&path, "typo_key = 1\n").unwrap();
        assert_eq!(load(&["--config", p]).unwrap_err().key, "typo_key");
        std::fs::write(&path, "max_body = \"ten\"\n").unwrap();
        assert_eq!(load(&["--config", p]).unwrap_err().key, "max_body");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
