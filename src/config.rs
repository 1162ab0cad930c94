//! Configuration (contract §6): built-in defaults, then a TOML file, then
//! `SWITCHBOARD_<KEY>` environment variables, then `--<key>` flags.
//!
//! Every key is one field of [`Config`], declared once: its doc comment is
//! the `--help` text, `env` names its variable, `default_value` is its default
//! (shown by `--help`, applied under the file), and clap (flags, environment)
//! and serde (file) parse it straight into the type the server reads.
//! Durations go through `duration::parse` and `duration::deserialize`, lists
//! through `list`; a `bool` takes `action = clap::ArgAction::Set`, so that it is
//! written `true` or `false` as in the environment and the file. Adding a key
//! is that field and its line in `config/switchboard.example.toml` (a test
//! fails until the line is there).
//!
//! `Config::validate` then checks what one value alone cannot show, and fills
//! in the fields that several keys make together, which clap and serde skip:
//! `auth_mode`, the [`AuthMode`] made of the `auth_mode`, `jwt_secret` and
//! `jwt_public_key_file` keys.
//!
//! A flag or environment value is parsed on its own, as `--key=value`, by the
//! same clap parser, and laid over the values read so far. That is how an
//! empty value can mean "unset" and how an error names its key and its source.

use std::error::Error as _;
use std::ffi::{OsStr, OsString};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, Args, Command, FromArgMatches};

use crate::auth::JwtVerifier;
use crate::ids::EntityType;

/// Why there is no configuration to serve.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--help` or `--version` was asked for: print this text and exit successfully.
    #[error("{0}")]
    Help(String),
    /// A configuration that cannot be served; names the key at fault.
    #[error("invalid configuration: {key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    /// The key at fault (`config` for the file itself, `command line` for a bad flag).
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Help(_) => None,
            ConfigError::Invalid { key, .. } => Some(key),
        }
    }
}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

/// Identity of the agent behind a socket (contract §1).
#[derive(Debug, Clone)]
pub enum AuthMode {
    /// The agent is whoever the payload says.
    None,
    /// The agent is the `sub` of a token verified at connect.
    Jwt(Box<JwtVerifier>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json".into()),
        }
    }
}

/// The whole configuration: every key of contract §6, each a `--flag`, a
/// `SWITCHBOARD_` variable and a file key, typed, and validated by the time
/// [`Config::from_args`] returns it.
///
/// A field without `default_value` is unset by default; its doc comment says
/// what unset means.
#[derive(Debug, Clone, Args, serde::Deserialize)]
#[serde(default = "Config::defaults", deny_unknown_fields)]
pub struct Config {
    /// Public Socket.IO listener (address:port)
    #[arg(long, env = "SWITCHBOARD_LISTEN", default_value = "0.0.0.0:3000")]
    pub listen: SocketAddr,

    /// Internal HTTP API listener; non-loopback needs internal_token
    #[arg(long, env = "SWITCHBOARD_INTERNAL_LISTEN", default_value = "127.0.0.1:3001")]
    pub internal_listen: SocketAddr,

    /// Bearer token required by the internal API (except /health, /ready, /metrics); unset: none
    #[arg(long, env = "SWITCHBOARD_INTERNAL_TOKEN")]
    pub internal_token: Option<String>,

    /// Redis for multi-instance rooms and presence; unset: a single instance
    #[arg(long, env = "SWITCHBOARD_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Identity of agents: none (from the payload) or jwt
    // The key is `auth_mode`; the field of that name is what it resolves to.
    #[arg(
        id = "auth_mode",
        long = "auth-mode",
        value_name = "AUTH_MODE",
        env = "SWITCHBOARD_AUTH_MODE",
        default_value = "none"
    )]
    #[serde(rename = "auth_mode")]
    auth_kind: AuthKind,

    /// HS256 shared secret (auth_mode = jwt)
    #[arg(long, env = "SWITCHBOARD_JWT_SECRET")]
    jwt_secret: Option<String>,

    /// PEM public key for RS256/ES256 (auth_mode = jwt)
    #[arg(long, env = "SWITCHBOARD_JWT_PUBLIC_KEY_FILE")]
    jwt_public_key_file: Option<PathBuf>,

    /// How agents are identified: the `auth_mode` key with its jwt key, set by validation.
    #[arg(skip = AuthMode::None)]
    #[serde(skip)]
    pub auth_mode: AuthMode,

    /// Typing falls back to viewing after this
    #[arg(long, env = "SWITCHBOARD_TYPING_TIMEOUT", default_value = "10s", value_parser = duration::parse)]
    #[serde(deserialize_with = "duration::deserialize")]
    pub typing_timeout: Duration,

    /// How often stale viewers are swept
    #[arg(long, env = "SWITCHBOARD_SWEEP_INTERVAL", default_value = "5m", value_parser = duration::parse)]
    #[serde(deserialize_with = "duration::deserialize")]
    pub sweep_interval: Duration,

    /// A viewer idle this long is stale
    #[arg(long, env = "SWITCHBOARD_STALE_AFTER", default_value = "30m", value_parser = duration::parse)]
    #[serde(deserialize_with = "duration::deserialize")]
    pub stale_after: Duration,

    /// A silent instance is declared lost after this
    #[arg(long, env = "SWITCHBOARD_NODE_TIMEOUT", default_value = "15s", value_parser = duration::parse)]
    #[serde(deserialize_with = "duration::deserialize")]
    pub node_timeout: Duration,

    /// Graceful shutdown bound
    #[arg(long, env = "SWITCHBOARD_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = duration::parse)]
    #[serde(deserialize_with = "duration::deserialize")]
    pub shutdown_timeout: Duration,

    /// Internal API body limit, bytes
    #[arg(long, env = "SWITCHBOARD_MAX_BODY", default_value = "65536")]
    pub max_body: usize,

    /// Allow-list of timeline entity types (comma-separated); unset: any
    // `std::vec::Vec`, not `Vec`: clap would take `Vec` for a repeatable flag.
    #[arg(long, env = "SWITCHBOARD_ENTITY_TYPES", value_parser = list)]
    pub entity_types: Option<std::vec::Vec<String>>,

    /// Allowed browser origins for the public listener (comma-separated); unset: any
    #[arg(long, env = "SWITCHBOARD_CORS_ORIGINS", value_parser = list)]
    pub cors_origins: Option<std::vec::Vec<String>>,

    /// Largest Socket.IO message, bytes (at least 1)
    #[arg(long, env = "SWITCHBOARD_MAX_PAYLOAD", default_value = "1000000")]
    pub max_payload: u64,

    /// Tickets one socket may view
    #[arg(long, env = "SWITCHBOARD_MAX_TICKETS_PER_SOCKET", default_value = "100")]
    pub max_tickets_per_socket: usize,

    /// Timelines one socket may subscribe to
    #[arg(long, env = "SWITCHBOARD_MAX_TIMELINES_PER_SOCKET", default_value = "500")]
    pub max_timelines_per_socket: usize,

    /// A viewer without activity this long is idle (v2)
    #[arg(long, env = "SWITCHBOARD_IDLE_AFTER", default_value = "5m", value_parser = duration::parse)]
    #[serde(deserialize_with = "duration::deserialize")]
    pub idle_after: Duration,

    /// Tickets one socket may watch from a list view (v2)
    #[arg(long, env = "SWITCHBOARD_MAX_WATCHED_TICKETS", default_value = "500")]
    pub max_watched_tickets: usize,

    /// Events kept per timeline for recovery with `since`; 0 = none (v2)
    #[arg(long, env = "SWITCHBOARD_HISTORY_SIZE", default_value = "100")]
    pub history_size: usize,

    /// History kept this long after a timeline's last publish (v2)
    #[arg(long, env = "SWITCHBOARD_HISTORY_TTL", default_value = "5m", value_parser = duration::parse)]
    #[serde(deserialize_with = "duration::deserialize")]
    pub history_ttl: Duration,

    /// Unsent messages a socket may have before its transport is closed (v2)
    #[arg(long, env = "SWITCHBOARD_CLIENT_QUEUE_MAX", default_value = "1024")]
    pub client_queue_max: usize,

    /// A request whose headers (on the internal API: whose body too) have not all arrived within this is closed, on both listeners (v2)
    #[arg(long, env = "SWITCHBOARD_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = duration::parse)]
    #[serde(deserialize_with = "duration::deserialize")]
    pub header_read_timeout: Duration,

    /// Socket.IO connections this node accepts; beyond it a handshake gets HTTP 503; 0 = no limit (v2)
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS", default_value = "0")]
    pub max_connections: usize,

    /// Serve the agent console at /demo/ on the public listener (needs `npm ci --prefix demo`) (v2)
    #[arg(long, env = "SWITCHBOARD_DEMO", default_value = "false", action = clap::ArgAction::Set)]
    pub demo: bool,

    /// Per-socket event rate (burst twice that); 0 = off
    #[arg(long, env = "SWITCHBOARD_EVENTS_PER_SECOND", default_value = "50")]
    pub events_per_second: u32,

    /// Also accept socket.io-client 2.x (Engine.IO v3, Socket.IO protocol v4), as socket.io's allowEIO3 (v2)
    #[arg(long, env = "SWITCHBOARD_ALLOW_EIO3", default_value = "false", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_eio3: bool,

    /// Socket.IO packet encoding, default (JSON) or msgpack (socket.io-msgpack-parser); every client must use it (v2)
    #[arg(long, env = "SWITCHBOARD_PARSER", default_value = "default")]
    pub parser: PacketParser,

    /// Log format, text or json; the level comes from RUST_LOG
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

/// How Socket.IO packets are encoded (the `parser` key, contract §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PacketParser {
    /// socket.io's default parser: JSON text, binary as attachments.
    Default,
    /// `socket.io-msgpack-parser`: each packet one MessagePack message.
    Msgpack,
}

impl FromStr for PacketParser {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "default" => Ok(PacketParser::Default),
            "msgpack" => Ok(PacketParser::Msgpack),
            _ => Err("expected default or msgpack".into()),
        }
    }
}

/// A duration written like `500ms`, `10s` or `5m`; zero is refused.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Parses a flag or environment value.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let d = humantime::parse_duration(text.trim())
            .map_err(|e| format!("expected a duration like 500ms, 10s or 5m ({e})"))?;
        if d.is_zero() {
            return Err("must be longer than zero".into());
        }
        Ok(d)
    }

    /// Reads a file value, a string parsed as a flag would be.
    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
        parse(&String::deserialize(de)?).map_err(serde::de::Error::custom)
    }
}

/// A list in a flag or the environment: comma-separated, blanks dropped.
/// (In the file it is a TOML array, read by serde as it stands.)
fn list(text: &str) -> Result<Vec<String>, std::convert::Infallible> {
    let items = text.split(',').map(str::trim).filter(|i| !i.is_empty());
    Ok(items.map(String::from).collect())
}

/// The `auth_mode` key; [`AuthMode`] is what it resolves to with the jwt keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum AuthKind {
    None,
    Jwt,
}

impl FromStr for AuthKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "none" => Ok(AuthKind::None),
            "jwt" => Ok(AuthKind::Jwt),
            _ => Err("expected none or jwt".into()),
        }
    }
}

/// The command line: `--config` and one flag per key, as `--help` shows it.
fn command() -> Command {
    let config = Arg::new("config")
        .long("config")
        .env("SWITCHBOARD_CONFIG")
        .value_name("PATH")
        .help("TOML configuration file");
    Config::augment_args(Command::new("switchboard").arg(config))
        .mut_args(|arg| {
            // Secrets may sit in the environment: never echo values in --help.
            let arg = arg.hide_env_values(true);
            if arg.get_id() == "config" {
                return arg;
            }
            let help = format!("{} [config key: {}]", arg.get_help().unwrap_or_default(), arg.get_id());
            arg.help(help)
        })
        .version(env!("CARGO_PKG_VERSION"))
        // Set after the keys: `augment_args` would take Config's doc comment.
        .about("Socket.IO-compatible realtime server: ticket collision detection and live timelines")
        .long_about(None)
        .after_help(
            "Precedence: flag over environment over file over default. Durations like 500ms, 10s, 5m; \
             lists comma-separated in flags and environment, TOML arrays in the file.",
        )
}
/// A non-empty value from a flag or the environment, not yet typed.
struct Given {
    key: String,
    /// `--typing-timeout` or `SWITCHBOARD_TYPING_TIMEOUT`, for messages.
    source: String,
    flag: String,
    value: OsString,
}

impl Given {
    fn from_flags(cmd: &Command, args: Vec<OsString>) -> Result<Vec<Given>, ConfigError> {
        // Untyped first, so that an empty value can stand for "unset".
        let untyped = cmd
            .clone()
            .mut_args(|arg| arg.value_parser(clap::value_parser!(OsString)));
        let matches = untyped.try_get_matches_from(args).map_err(|e| match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                ConfigError::Help(e.to_string())
            }
            _ => err("command line", e.to_string().trim()),
        })?;
        let given = cmd.get_arguments().filter_map(|arg| {
            let key = arg.get_id().as_str();
            if matches.value_source(key) != Some(ValueSource::CommandLine) {
                return None;
            }
            let flag = arg.get_long()?;
            Given::new(
                key,
                format!("--{flag}"),
                flag,
                matches.get_one::<OsString>(key)?.clone(),
            )
        });
        Ok(given.collect())
    }

    fn from_env(cmd: &Command, env: impl Fn(&OsStr) -> Option<OsString>) -> Vec<Given> {
        let given = cmd.get_arguments().filter_map(|arg| {
            let name = arg.get_env()?;
            let value = env(name)?;
            Given::new(
                arg.get_id().as_str(),
                name.to_string_lossy().into(),
                arg.get_long()?,
                value,
            )
        });
        given.collect()
    }

    fn new(key: &str, source: String, flag: &str, value: OsString) -> Option<Given> {
        (!value.is_empty()).then(|| Given {
            key: key.to_string(),
            source,
            flag: flag.to_string(),
            value,
        })
    }

    /// Parses the value with its key's parser and sets it in `config`.
    fn apply(&self, keys: &Command, config: &mut Config) -> Result<(), ConfigError> {
        let mut token = OsString::from(format!("--{}=", self.flag));
        token.push(&self.value);
        let invalid = |e: clap::Error| {
            let reason = e.source().map_or_else(|| e.kind().to_string(), |s| s.to_string());
            err(&self.key, format!("{:?} from {}: {reason}", self.value, self.source))
        };
        let matches = keys
            .clone()
            .try_get_matches_from([OsString::from("switchboard"), token])
            .map_err(invalid)?;
        config.update_from_arg_matches(&matches).map_err(invalid)
    }
}

impl Config {
    /// Reads flags from `args` (the program name first), the process
    /// environment, and the file they name.
    pub fn from_args<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        Self::from_args_and_env(args, |name| std::env::var_os(name))
    }

    /// As [`Config::from_args`], with `env` looking up the environment
    /// (tests pass `|_| None` so that a developer's variables do not leak in).
    pub fn from_args_and_env<I, T>(args: I, env: impl Fn(&OsStr) -> Option<OsString>) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let cmd = command();
        let flags = Given::from_flags(&cmd, args.into_iter().map(Into::into).collect())?;
        let env = Given::from_env(&cmd, env);
        let file = flags.iter().chain(&env).find(|g| g.key == "config");
        let mut config = match file {
            Some(given) => read_file(Path::new(&given.value))?,
            None => Config::defaults(),
        };
        // Parsing a single value must not bring in the environment or defaults.
        let keys = cmd.mut_args(|arg| arg.env(None).default_value(None));
        for given in env.iter().chain(&flags).filter(|g| g.key != "config") {
            given.apply(&keys, &mut config)?;
        }
        config.validate()
    }

    /// Whether timelines of this entity type may be subscribed to and published.
    pub fn allows(&self, entity_type: &EntityType) -> bool {
        self.entity_types
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|t| t == entity_type.as_str()))
    }

    /// Each key's `default_value`, parsed as a flag would be; the others unset.
    fn defaults() -> Self {
        let matches = command()
            .mut_args(|arg| arg.env(None))
            .try_get_matches_from(["switchboard"])
            .expect("no argument is required");
        Config::from_arg_matches(&matches).expect("every default_value parses")
    }

    /// Checks what a key's own parser cannot and fills in the fields made of
    /// several keys.
    fn validate(mut self) -> Result<Self, ConfigError> {
        if self.max_payload == 0 {
            return Err(err("max_payload", "must be at least 1"));
        }
        if self.client_queue_max == 0 {
            return Err(err("client_queue_max", "must be at least 1"));
        }
        // Empty means unset in the file too, as it does in a flag or the environment.
        self.internal_token = self.internal_token.filter(|t| !t.is_empty());
        self.redis_url = self.redis_url.filter(|u| !u.is_empty());
        self.auth_mode = auth_mode(
            self.auth_kind,
            self.jwt_secret.as_deref(),
            self.jwt_public_key_file.as_deref(),
        )?;
        if let Some(types) = &self.entity_types {
            check_entity_types(types)?;
        }
        if let Some(origins) = &self.cors_origins {
            check_cors_origins(origins)?;
        }
        if !self.internal_listen.ip().is_loopback() && self.internal_token.is_none() {
            return Err(err(
                "internal_token",
                format!(
                    "required when internal_listen ({}) is not a loopback address",
                    self.internal_listen
                ),
            ));
        }
        if let Some(url) = &self.redis_url {
            redis::Client::open(url.as_str()).map_err(|e| err("redis_url", format!("{e}")))?;
        }
        Ok(self)
    }
}

/// The file's keys over the defaults; an error names the key and the line.
fn read_file(path: &Path) -> Result<Config, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| err("config", format!("cannot read {}: {e}", path.display())))?;
    let toml = toml::Deserializer::parse(&text)
        .map_err(|e| err("config", format!("{} is not valid TOML: {e}", path.display())))?;
    serde_path_to_error::deserialize(toml).map_err(|e| {
        let key = match e.path().to_string() {
            top if top == "." => "config".to_string(),
            key => key,
        };
        let e = e.into_inner();
        let line = e.span().map_or(String::new(), |span| {
            format!(":{}", text[..span.start].matches('\n').count() + 1)
        });
        err(&key, format!("{}{line}: {}", path.display(), e.message()))
    })
}

fn auth_mode(kind: AuthKind, secret: Option<&str>, key_file: Option<&Path>) -> Result<AuthMode, ConfigError> {
    match (kind, secret, key_file) {
        (AuthKind::None, _, _) => Ok(AuthMode::None),
        (AuthKind::Jwt, None, None) => Err(err(
            "jwt_secret",
            "auth_mode = jwt needs jwt_secret or jwt_public_key_file",
        )),
        (AuthKind::Jwt, Some(_), Some(_)) => Err(err("jwt_secret", "set jwt_secret or jwt_public_key_file, not both")),
        (AuthKind::Jwt, Some(secret), None) => Ok(AuthMode::Jwt(Box::new(JwtVerifier::hs256(secret.as_bytes())))),
        (AuthKind::Jwt, None, Some(path)) => {
            let shown = path.display();
            let pem =
                std::fs::read(path).map_err(|e| err("jwt_public_key_file", format!("cannot read {shown}: {e}")))?;
            JwtVerifier::from_public_pem(&pem)
                .map(|v| AuthMode::Jwt(Box::new(v)))
                .map_err(|e| err("jwt_public_key_file", format!("{shown}: {e}")))
        }
    }
}

fn check_entity_types(types: &[String]) -> Result<(), ConfigError> {
    let valid = |t: &str| EntityType::parse(Some(&serde_json::Value::from(t))).is_ok();
    match types.iter().find(|t| !valid(t)) {
        Some(bad) => Err(err(
            "entity_types",
            format!("{bad:?} does not match ^[a-z][a-z0-9_-]{{0,31}}$"),
        )),
        None => Ok(()),
    }
}

fn check_cors_origins(origins: &[String]) -> Result<(), ConfigError> {
    for origin in origins {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<OsString, OsString> = env.iter().map(|(k, v)| (k.into(), v.into())).collect();
        Config::from_args_and_env(std::iter::once("switchboard").chain(args.iter().copied()), |name| {
            env.get(name).cloned()
        })
    }

    fn load(args: &[&str]) -> Result<Config, ConfigError> {
        load_with_env(args, &[])
    }

    /// The key an invalid configuration names.
    fn refused(args: &[&str]) -> String {
        load(args)
            .unwrap_err()
            .key()
            .expect("an invalid configuration")
            .to_string()
    }

    /// A scratch file, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, text: &str) -> Self {
            let path = std::env::temp_dir().join(format!("switchboard-config-{}-{name}", std::process::id()));
            std::fs::write(&path, text).unwrap();
            TempFile(path)
        }

        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn defaults_are_the_contracts() {
        let c = load(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:3000");
        assert_eq!(c.internal_listen.to_string(), "127.0.0.1:3001");
        assert_eq!(c.internal_token, None);
        assert_eq!(c.redis_url, None);
        assert_eq!(c.typing_timeout, Duration::from_secs(10));
        assert_eq!(c.sweep_interval, Duration::from_secs(300));
        assert_eq!(c.stale_after, Duration::from_secs(1800));
        assert_eq!(c.node_timeout, Duration::from_secs(15));
        assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(c.max_body, 65_536);
        assert_eq!(c.max_payload, 1_000_000);
        assert_eq!(c.max_tickets_per_socket, 100);
        assert_eq!(c.max_timelines_per_socket, 500);
        assert_eq!(c.idle_after, Duration::from_secs(300));
        assert_eq!(c.max_watched_tickets, 500);
        assert_eq!(c.events_per_second, 50);
        assert_eq!(c.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.max_connections, 0);
        assert!(!c.demo);
        assert_eq!(c.entity_types, None);
        assert_eq!(c.cors_origins, None);
        assert_eq!(c.log_format, LogFormat::Text);
        assert!(matches!(c.auth_mode, AuthMode::None));
        assert!(!c.allow_eio3);
        assert_eq!(c.parser, PacketParser::Default);
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
        let c = load(&["--allow-eio3", "true", "--parser", "msgpack"]).unwrap();
        assert!(c.allow_eio3);
        assert_eq!(c.parser, PacketParser::Msgpack);
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_eq!(refused(&["--typing-timeout", "banana"]), "typing_timeout");
        assert_eq!(refused(&["--typing-timeout", "0s"]), "typing_timeout");
        assert_eq!(refused(&["--header-read-timeout", "0s"]), "header_read_timeout");
        assert_eq!(refused(&["--max-connections", "lots"]), "max_connections");
        assert_eq!(refused(&["--max-body", "-1"]), "command line");
        assert_eq!(refused(&["--max-body", "lots"]), "max_body");
        assert_eq!(refused(&["--events-per-second=-3"]), "events_per_second");
        assert_eq!(refused(&["--max-payload", "0"]), "max_payload");
        assert_eq!(refused(&["--client-queue-max", "0"]), "client_queue_max");
        assert_eq!(refused(&["--listen", "not-an-address"]), "listen");
        assert_eq!(refused(&["--log-format", "xml"]), "log_format");
        assert_eq!(refused(&["--demo", "yes"]), "demo");
        assert_eq!(refused(&["--entity-types", "Contact"]), "entity_types");
        assert_eq!(refused(&["--cors-origins", "example.com"]), "cors_origins");
        assert_eq!(refused(&["--auth-mode", "magic"]), "auth_mode");
        assert_eq!(refused(&["--parser", "json"]), "parser");
        assert_eq!(refused(&["--allow-eio3", "maybe"]), "allow_eio3");
        assert_eq!(refused(&["--redis-url", "nonsense"]), "redis_url");
        assert_eq!(refused(&["--no-such-key", "1"]), "command line");
        let e = load_with_env(&[], &[("SWITCHBOARD_TYPING_TIMEOUT", "banana")]).unwrap_err();
        assert_eq!(e.key(), Some("typing_timeout"));
        assert!(e.to_string().contains("SWITCHBOARD_TYPING_TIMEOUT"), "{e}");
    }

    #[test]
    fn help_and_version_are_returned_not_printed() {
        let Err(ConfigError::Help(help)) = load(&["--help"]) else {
            panic!("--help is not ConfigError::Help");
        };
        assert!(help.contains("--typing-timeout"), "{help}");
        assert!(help.contains("[config key: typing_timeout]"), "{help}");
        assert!(help.contains("[default: 10s]"), "{help}");
        assert!(help.contains("[env: SWITCHBOARD_JWT_SECRET]"), "{help}");
        assert!(
            !help.contains("SWITCHBOARD_CONFIG="),
            "--help shows an environment value:\n{help}"
        );
        let Err(ConfigError::Help(version)) = load(&["--version"]) else {
            panic!("--version is not ConfigError::Help");
        };
        assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    }

    #[test]
    fn the_example_file_documents_every_key_and_loads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/switchboard.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let keys = Config::augment_args(Command::new("keys"));
        for arg in keys.get_arguments() {
            let key = arg.get_id();
            assert!(text.contains(&format!("{key} =")), "{key} is not in the example");
            for default in arg.get_default_values() {
                let default = default.to_str().unwrap();
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
    fn every_key_has_its_environment_variable() {
        for arg in Config::augment_args(Command::new("keys")).get_arguments() {
            let expected = format!("SWITCHBOARD_{}", arg.get_id().as_str().to_uppercase());
            assert_eq!(arg.get_env(), Some(OsStr::new(&expected)));
        }
    }

    #[test]
    fn jwt_needs_exactly_one_usable_key() {
        assert_eq!(refused(&["--auth-mode", "jwt"]), "jwt_secret");
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
        assert_eq!(refused(&both), "jwt_secret");
        let missing = ["--auth-mode", "jwt", "--jwt-public-key-file", "/nonexistent/key.pem"];
        assert_eq!(refused(&missing), "jwt_public_key_file");
        let not_a_key = [
            "--auth-mode",
            "jwt",
            "--jwt-public-key-file",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ];
        assert_eq!(refused(&not_a_key), "jwt_public_key_file");
    }

    #[test]
    fn public_internal_listener_needs_a_token() {
        assert_eq!(refused(&["--internal-listen", "0.0.0.0:3001"]), "internal_token");
        assert!(load(&["--internal-listen", "0.0.0.0:3001", "--internal-token", "s3cret"]).is_ok());
        assert!(load(&["--internal-listen", "[::1]:3001"]).is_ok());
    }

    #[test]
    fn layers_are_flag_over_env_over_file_over_default() {
        let file = TempFile::new(
            "layers.toml",
            "typing_timeout = \"2s\"\nmax_body = 10\nmax_payload = 11\nentity_types = [\"contact\"]\n",
        );
        let c = load(&["--config", file.path()]).unwrap();
        assert_eq!(c.typing_timeout, Duration::from_secs(2));
        assert_eq!(c.max_body, 10);
        assert_eq!(c.max_payload, 11);
        assert_eq!(c.stale_after, Duration::from_secs(1800), "a default under the file");
        assert_eq!(c.entity_types.unwrap().into_iter().collect::<Vec<_>>(), ["contact"]);
        let env = [
            ("SWITCHBOARD_CONFIG", file.path()),
            ("SWITCHBOARD_MAX_BODY", "20"),
            ("SWITCHBOARD_MAX_PAYLOAD", "21"),
            ("SWITCHBOARD_ENTITY_TYPES", "deal,task"),
        ];
        let c = load_with_env(&["--max-payload", "31"], &env).unwrap();
        assert_eq!(
            c.typing_timeout,
            Duration::from_secs(2),
            "the file named by the environment"
        );
        assert_eq!(c.max_body, 20, "env over file");
        assert_eq!(c.max_payload, 31, "flag over env");
        assert_eq!(c.entity_types.unwrap().len(), 2, "comma-separated from env");
    }

    #[test]
    fn empty_values_are_unset() {
        let file = TempFile::new("empty.toml", "max_body = 10\n");
        let env = [("SWITCHBOARD_MAX_BODY", ""), ("SWITCHBOARD_LISTEN", "")];
        let c = load_with_env(
            &["--config", file.path(), "--typing-timeout", "", "--log-format="],
            &env,
        )
        .unwrap();
        assert_eq!(c.max_body, 10);
        assert_eq!(c.listen.to_string(), "0.0.0.0:3000");
        assert_eq!(c.typing_timeout, Duration::from_secs(10));
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn the_file_is_checked_key_by_key() {
        let refused_file = |text: &str| {
            let file = TempFile::new("checked.toml", text);
            load(&["--config", file.path()]).unwrap_err()
        };
        assert_eq!(refused_file("typo_key = 1\n").key(), Some("typo_key"));
        assert_eq!(refused_file("config = \"x.toml\"\n").key(), Some("config"));
        assert_eq!(refused_file("max_body = \"ten\"\n").key(), Some("max_body"));
        assert_eq!(refused_file("max_body = -1\n").key(), Some("max_body"));
        assert_eq!(refused_file("typing_timeout = 10\n").key(), Some("typing_timeout"));
        assert_eq!(refused_file("entity_types = \"deal\"\n").key(), Some("entity_types"));
        assert_eq!(refused_file("log_format = \"xml\"\n").key(), Some("log_format"));
        assert_eq!(refused_file("not toml").key(), Some("config"));
        let e = refused_file("\n\ntyping_timeout = \"banana\"\n");
        assert_eq!(e.key(), Some("typing_timeout"));
        assert!(e.to_string().contains(".toml:3: expected a duration"), "{e}");
        let missing = load(&["--config", "/nonexistent/switchboard.toml"]).unwrap_err();
        assert_eq!(missing.key(), Some("config"));
    }

    #[test]
    fn allows_any_entity_type_unless_listed() {
        let deal = EntityType::parse(Some(&serde_json::json!("deal"))).unwrap();
        let task = EntityType::parse(Some(&serde_json::json!("task"))).unwrap();
        assert!(load(&[]).unwrap().allows(&task));
        let listed = load(&["--entity-types", "deal"]).unwrap();
        assert!(listed.allows(&deal));
        assert!(!listed.allows(&task));
    }
}
