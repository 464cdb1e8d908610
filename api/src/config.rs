//! Typed configuration, read once from the environment before the port opens.
//!
//! Every variable of API.md §7 is parsed and checked here; a bad value is a
//! [`ConfigError`] naming the variable, and the process exits non-zero
//! before it serves anything. Secrets are wrapped in [`Secret`] so `Debug`
//! never prints them. There is no global config: the value is passed down.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A variable that could not be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

fn err(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// How access tokens are signed.
#[derive(Clone, Debug)]
pub enum JwtKeySource {
    /// HS256 with the UTF-8 bytes of `JWT_SECRET`.
    Secret(Secret),
    /// EdDSA with the Ed25519 PKCS#8 PEM in `JWT_PRIVATE_KEY_FILE`.
    Ed25519Pem { path: PathBuf, pem: Secret },
    /// Development only: a random HS256 key per process.
    DevRandom,
}

#[derive(Clone, Debug)]
pub struct JwtConfig {
    pub key: JwtKeySource,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// How long after a rotation the immediate predecessor still answers
    /// with the same successor pair (two tabs refreshing at once); zero is
    /// strict.
    pub reuse_interval: Duration,
}

/// Where mail goes (API.md §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailerConfig {
    Log,
    File(PathBuf),
    Smtp(Secret),
}

/// Mail and email tokens (API.md §4, §6).
#[derive(Clone, Debug)]
pub struct MailSettings {
    /// The `From:` of every message.
    pub from: String,
    pub verification_ttl: Duration,
    pub reset_ttl: Duration,
    /// Delivery attempts before a message is given up as dead.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each.
    pub retry_base: Duration,
    /// How long sent and dead messages stay in the outbox.
    pub retention: Duration,
    /// At most one reset mail per account this often (60 s; not read from
    /// the environment, tests shorten it).
    pub reset_cooldown: Duration,
}

/// Argon2id cost. Production uses at least the OWASP minimum; tests build a
/// `Config` by hand with cheap parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Argon2Params {
    /// OWASP's minimum for argon2id: m=19456 KiB, t=2, p=1.
    pub const OWASP: Self = Self {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };
}

/// Limits applied to every GraphQL request.
#[derive(Clone, Copy, Debug)]
pub struct GraphqlLimits {
    /// Depth of ordinary fields (a top-level field is depth 1).
    pub max_depth: usize,
    /// Depth of paths that pass through `__schema` or `__type`: graphql-js's
    /// standard introspection query (what GraphiQL and codegen send) needs 15.
    pub max_introspection_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
    pub max_directives: usize,
    pub max_batch: usize,
    pub max_body_bytes: usize,
    pub introspection: bool,
    pub graphiql: bool,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub app_env: AppEnv,
    pub database_url: Secret,
    pub database_read_url: Option<Secret>,
    pub database_max_connections: u32,
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key, so several deployments (or tests) share one Redis.
    pub redis_key_prefix: String,
    pub bind_addr: SocketAddr,
    pub public_url: String,
    pub jwt: JwtConfig,
    pub auto_migrate: bool,
    pub mailer: MailerConfig,
    pub mail: MailSettings,
    /// How long audit events are kept.
    pub audit_retention: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub rate_limit_auth_per_minute: u32,
    pub lockout_threshold: u32,
    pub cors_allowed_origins: Vec<String>,
    pub log_format: LogFormat,
    pub bootstrap_admin: Option<(String, Secret)>,
    pub graphql: GraphqlLimits,
    pub argon2: Argon2Params,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    pub request_timeout: Duration,
    /// Testing hook, never read from the environment: a pause right after
    /// each invalidating commit, so a test can cut the request off there.
    pub after_commit_delay: Option<Duration>,
    /// Testing hook, never read from the environment: writes that queue a
    /// token and its mail fail right before their commit.
    pub fail_before_commit: bool,
}

impl Config {
    /// Reads the process environment (after `.env`, when present).
    ///
    /// # Errors
    /// The first variable that is set to a value that cannot be used.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Builds the config from any key lookup (tests pass a map).
    ///
    /// # Errors
    /// The first variable that is set to a value that cannot be used.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |key: &str| {
            lookup(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let app_env = match get("APP_ENV").as_deref() {
            None | Some("development") | Some("dev") => AppEnv::Development,
            Some("production") | Some("prod") => AppEnv::Production,
            Some(other) => {
                return Err(err(
                    "APP_ENV",
                    format!("expected development or production, got {other:?}"),
                ));
            }
        };
        let production = app_env == AppEnv::Production;

        let database_url = match get("DATABASE_URL") {
            Some(url) => url,
            // A container's SQLite file would vanish with it.
            None if production => {
                return Err(err(
                    "DATABASE_URL",
                    "required when APP_ENV=production (postgres://…)",
                ));
            }
            None => "sqlite://usergraph.db?mode=rwc".into(),
        };
        check_database_url("DATABASE_URL", &database_url)?;
        let database_read_url = get("DATABASE_READ_URL");
        if let Some(url) = &database_read_url {
            check_database_url("DATABASE_READ_URL", url)?;
        }
        let database_max_connections = parse_num(
            "DATABASE_MAX_CONNECTIONS",
            get("DATABASE_MAX_CONNECTIONS"),
            10,
            1,
            1000,
        )?;

        let redis_url = get("REDIS_URL");
        if let Some(url) = &redis_url {
            crate::infra::redis::RedisTarget::parse(url).map_err(|m| err("REDIS_URL", m))?;
        }
        let redis_key_prefix = get("REDIS_KEY_PREFIX").unwrap_or_else(|| "usergraph:".into());

        // Loopback unless asked: a development server with a random signing
        // key is not for other machines. The image and manifests set 0.0.0.0.
        let bind_addr = get("BIND_ADDR")
            .unwrap_or_else(|| "127.0.0.1:8080".into())
            .parse::<SocketAddr>()
            .map_err(|e| {
                err(
                    "BIND_ADDR",
                    format!("expected host:port, e.g. 127.0.0.1:8080 ({e})"),
                )
            })?;

        let public_url = get("PUBLIC_URL").unwrap_or_else(|| "http://localhost:8080".into());
        if !(public_url.starts_with("http://") || public_url.starts_with("https://"))
            || public_url.contains(char::is_whitespace)
            || public_url.len() > 2048
        {
            return Err(err(
                "PUBLIC_URL",
                "expected an absolute http:// or https:// URL",
            ));
        }
        let public_url = public_url.trim_end_matches('/').to_owned();

        // The secret is its bytes exactly: no trimming (a key whose last
        // byte is a space or newline is that key).
        let jwt_secret = lookup("JWT_SECRET").filter(|v| !v.is_empty());
        let key = match (get("JWT_PRIVATE_KEY_FILE"), jwt_secret) {
            (Some(path), _) => {
                let path = PathBuf::from(path);
                let pem = std::fs::read_to_string(&path).map_err(|e| {
                    err(
                        "JWT_PRIVATE_KEY_FILE",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                crate::auth::jwt::check_ed25519_pem(&pem)
                    .map_err(|m| err("JWT_PRIVATE_KEY_FILE", m))?;
                JwtKeySource::Ed25519Pem {
                    path,
                    pem: Secret::new(pem),
                }
            }
            (None, Some(secret)) => {
                if secret.trim().is_empty() {
                    return Err(err("JWT_SECRET", "must not be only whitespace"));
                }
                if secret.len() < 32 {
                    return Err(err("JWT_SECRET", "must be at least 32 bytes"));
                }
                JwtKeySource::Secret(Secret::new(secret))
            }
            (None, None) if production => {
                return Err(err(
                    "JWT_SECRET",
                    "required when APP_ENV=production (or set JWT_PRIVATE_KEY_FILE)",
                ));
            }
            (None, None) => JwtKeySource::DevRandom,
        };
        let access_ttl = parse_duration("ACCESS_TOKEN_TTL", get("ACCESS_TOKEN_TTL"), "15m")?;
        let refresh_ttl = parse_duration("REFRESH_TOKEN_TTL", get("REFRESH_TOKEN_TTL"), "30d")?;
        if access_ttl < Duration::from_secs(10) || access_ttl > Duration::from_secs(24 * 3600) {
            return Err(err("ACCESS_TOKEN_TTL", "must be between 10s and 24h"));
        }
        if refresh_ttl < access_ttl || refresh_ttl > Duration::from_secs(366 * 24 * 3600) {
            return Err(err(
                "REFRESH_TOKEN_TTL",
                "must be at least ACCESS_TOKEN_TTL and at most 366d",
            ));
        }
        let reuse_interval = parse_duration(
            "REFRESH_TOKEN_REUSE_INTERVAL",
            get("REFRESH_TOKEN_REUSE_INTERVAL"),
            "5s",
        )?;
        if reuse_interval > Duration::from_secs(60) {
            return Err(err(
                "REFRESH_TOKEN_REUSE_INTERVAL",
                "must be at most 60s (0s is strict)",
            ));
        }
        let jwt = JwtConfig {
            key,
            issuer: get("JWT_ISSUER").unwrap_or_else(|| "usergraph".into()),
            audience: get("JWT_AUDIENCE").unwrap_or_else(|| "usergraph".into()),
            access_ttl,
            refresh_ttl,
            reuse_interval,
        };

        let auto_migrate = parse_bool("AUTO_MIGRATE", get("AUTO_MIGRATE"), true)?;
        let mailer = parse_mailer(get("MAILER"))?;
        let mail = parse_mail_settings(&get)?;
        let audit_retention = parse_bounded_duration(
            "AUDIT_RETENTION",
            get("AUDIT_RETENTION"),
            "365d",
            86400,
            3650 * 86400,
        )?;
        let trusted_proxies = parse_list("TRUSTED_PROXIES", get("TRUSTED_PROXIES"), |s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is not a CIDR or IP address"))
        })?;
        let rate_limit_auth_per_minute = parse_num(
            "RATE_LIMIT_AUTH_PER_MINUTE",
            get("RATE_LIMIT_AUTH_PER_MINUTE"),
            20,
            0,
            1_000_000,
        )?;
        let lockout_threshold =
            parse_num("LOCKOUT_THRESHOLD", get("LOCKOUT_THRESHOLD"), 5, 0, 1000)?;
        let cors_allowed_origins =
            parse_list("CORS_ALLOWED_ORIGINS", get("CORS_ALLOWED_ORIGINS"), |s| {
                let ok = s == "*"
                    || ((s.starts_with("http://") || s.starts_with("https://"))
                        && !s.ends_with('/')
                        && axum::http::HeaderValue::from_str(s).is_ok());
                if ok {
                    Ok(s.to_owned())
                } else {
                    Err(format!(
                        "{s:?} is not an origin like https://app.example.com"
                    ))
                }
            })?;
        let log_format = match get("LOG_FORMAT").as_deref() {
            None if production => LogFormat::Json,
            None => LogFormat::Pretty,
            Some("pretty") | Some("text") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(err(
                    "LOG_FORMAT",
                    format!("expected pretty or json, got {other:?}"),
                ));
            }
        };
        let bootstrap_admin = match (
            get("BOOTSTRAP_ADMIN_EMAIL"),
            get("BOOTSTRAP_ADMIN_PASSWORD"),
        ) {
            (None, None) => None,
            (Some(email), Some(password)) => {
                let email = crate::domain::types::EmailAddress::parse(&email)
                    .map_err(|e| err("BOOTSTRAP_ADMIN_EMAIL", e.message()))?;
                Some((email.into_string(), Secret::new(password)))
            }
            (Some(_), None) => {
                return Err(err(
                    "BOOTSTRAP_ADMIN_PASSWORD",
                    "required with BOOTSTRAP_ADMIN_EMAIL",
                ));
            }
            (None, Some(_)) => {
                return Err(err(
                    "BOOTSTRAP_ADMIN_EMAIL",
                    "required with BOOTSTRAP_ADMIN_PASSWORD",
                ));
            }
        };
        let graphql = GraphqlLimits {
            max_depth: parse_num("GRAPHQL_MAX_DEPTH", get("GRAPHQL_MAX_DEPTH"), 10, 1, 100)?,
            max_introspection_depth: parse_num(
                "GRAPHQL_MAX_INTROSPECTION_DEPTH",
                get("GRAPHQL_MAX_INTROSPECTION_DEPTH"),
                15,
                1,
                100,
            )?,
            max_complexity: parse_num(
                "GRAPHQL_MAX_COMPLEXITY",
                get("GRAPHQL_MAX_COMPLEXITY"),
                1000,
                1,
                1_000_000,
            )?,
            max_aliases: parse_num(
                "GRAPHQL_MAX_ALIASES",
                get("GRAPHQL_MAX_ALIASES"),
                30,
                0,
                10_000,
            )?,
            max_directives: parse_num(
                "GRAPHQL_MAX_DIRECTIVES",
                get("GRAPHQL_MAX_DIRECTIVES"),
                50,
                0,
                10_000,
            )?,
            max_batch: parse_num("GRAPHQL_MAX_BATCH", get("GRAPHQL_MAX_BATCH"), 10, 1, 1000)?,
            max_body_bytes: parse_num(
                "GRAPHQL_MAX_BODY_BYTES",
                get("GRAPHQL_MAX_BODY_BYTES"),
                1 << 20,
                1024,
                64 << 20,
            )?,
            introspection: parse_bool(
                "GRAPHQL_INTROSPECTION",
                get("GRAPHQL_INTROSPECTION"),
                !production,
            )?,
            graphiql: parse_bool("GRAPHIQL", get("GRAPHIQL"), !production)?,
        };

        Ok(Self {
            app_env,
            database_url: Secret::new(database_url),
            database_read_url: database_read_url.map(Secret::new),
            database_max_connections,
            redis_url: redis_url.map(Secret::new),
            redis_key_prefix,
            bind_addr,
            public_url,
            jwt,
            auto_migrate,
            mailer,
            mail,
            audit_retention,
            trusted_proxies,
            rate_limit_auth_per_minute,
            lockout_threshold,
            cors_allowed_origins,
            log_format,
            bootstrap_admin,
            graphql,
            argon2: Argon2Params::OWASP,
            shutdown_grace: parse_bounded_duration(
                "SHUTDOWN_GRACE",
                get("SHUTDOWN_GRACE"),
                "30s",
                1,
                600,
            )?,
            request_timeout: parse_bounded_duration(
                "REQUEST_TIMEOUT",
                get("REQUEST_TIMEOUT"),
                "30s",
                1,
                600,
            )?,
            after_commit_delay: None,
            fail_before_commit: false,
        })
    }
}

fn parse_mail_settings(get: &dyn Fn(&str) -> Option<String>) -> Result<MailSettings, ConfigError> {
    let from = get("MAIL_FROM").unwrap_or_else(|| "usergraph <no-reply@localhost>".into());
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(err(
            "MAIL_FROM",
            "expected an address like no-reply@example.com or Name <no-reply@example.com>",
        ));
    }
    let bounded = |var: &'static str, default: &str, min: u64, max: u64| {
        parse_bounded_duration(var, get(var), default, min, max)
    };
    Ok(MailSettings {
        from,
        verification_ttl: bounded("EMAIL_VERIFICATION_TTL", "24h", 60, 30 * 86400)?,
        reset_ttl: bounded("PASSWORD_RESET_TTL", "30m", 60, 86400)?,
        max_attempts: parse_num("MAIL_MAX_ATTEMPTS", get("MAIL_MAX_ATTEMPTS"), 10, 1, 100)?,
        retry_base: {
            let base = parse_duration("MAIL_RETRY_BASE", get("MAIL_RETRY_BASE"), "5s")?;
            if base < Duration::from_millis(100) || base > Duration::from_secs(600) {
                return Err(err("MAIL_RETRY_BASE", "must be between 100ms and 10m"));
            }
            base
        },
        retention: bounded("MAIL_RETENTION", "7d", 3600, 366 * 86400)?,
        reset_cooldown: Duration::from_secs(60),
    })
}

fn check_database_url(var: &'static str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory")) {
        // Each pooled connection would get a database of its own.
        return Err(err(
            var,
            "an in-memory SQLite database cannot be shared by the connection pools; use a file",
        ));
    }
    if url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://")
    {
        Ok(())
    } else {
        Err(err(var, "expected a sqlite://… or postgres://… URL"))
    }
}

fn parse_duration(
    var: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_owned());
    humantime::parse_duration(&text).map_err(|e| {
        err(
            var,
            format!("{text:?} is not a duration like 15m, 30d or 90s ({e})"),
        )
    })
}

/// A duration between `min` and `max` seconds.
fn parse_bounded_duration(
    var: &'static str,
    value: Option<String>,
    default: &str,
    min: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    let value = parse_duration(var, value, default)?;
    if value < Duration::from_secs(min) || value > Duration::from_secs(max) {
        return Err(err(
            var,
            format!(
                "must be between {} and {}",
                humantime::format_duration(Duration::from_secs(min)),
                humantime::format_duration(Duration::from_secs(max))
            ),
        ));
    }
    Ok(value)
}

fn parse_bool(
    var: &'static str,
    value: Option<String>,
    default: bool,
) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(other) => Err(err(var, format!("expected true or false, got {other:?}"))),
    }
}

fn parse_num<T>(
    var: &'static str,
    value: Option<String>,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(text) = value else {
        return Ok(default);
    };
    let n: T = text
        .parse()
        .map_err(|_| err(var, format!("{text:?} is not a whole number")))?;
    if n < min || n > max {
        return Err(err(
            var,
            format!("must be between {min} and {max}, got {n}"),
        ));
    }
    Ok(n)
}

/// A comma-separated list; empty entries are ignored.
fn parse_list<T>(
    var: &'static str,
    value: Option<String>,
    item: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    value.map_or_else(
        || Ok(Vec::new()),
        |list| {
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| item(s).map_err(|m| err(var, m)))
                .collect()
        },
    )
}

fn parse_mailer(value: Option<String>) -> Result<MailerConfig, ConfigError> {
    let Some(text) = value else {
        return Ok(MailerConfig::Log);
    };
    if text == "log" {
        Ok(MailerConfig::Log)
    } else if let Some(dir) = text.strip_prefix("file:") {
        if dir.is_empty() {
            return Err(err(
                "MAILER",
                "file: needs a directory, e.g. file:/var/mail/usergraph",
            ));
        }
        Ok(MailerConfig::File(PathBuf::from(dir)))
    } else if text.starts_with("smtp://") || text.starts_with("smtps://") {
        let rest = text.split_once("://").map(|(_, r)| r).unwrap_or_default();
        let host_port = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        if host_port.is_empty() || host_port.starts_with(':') {
            return Err(err(
                "MAILER",
                "smtp URL needs a host, e.g. smtp://mail.example.com:587",
            ));
        }
        Ok(MailerConfig::Smtp(Secret::new(text)))
    } else {
        Err(err(
            "MAILER",
            "expected log, file:DIR, smtp://host:port or smtps://host:port",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_start_with_nothing_set() {
        let c = config(&[]).unwrap();
        assert_eq!(c.bind_addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.graphql.max_depth, 10);
        assert_eq!(c.graphql.max_introspection_depth, 15);
        assert_eq!(c.jwt.access_ttl, Duration::from_secs(900));
        assert_eq!(c.jwt.refresh_ttl, Duration::from_secs(30 * 86400));
        assert!(matches!(c.jwt.key, JwtKeySource::DevRandom));
        assert_eq!(c.mailer, MailerConfig::Log);
        assert!(c.graphql.graphiql && c.graphql.introspection);
        assert_eq!(c.argon2, Argon2Params::OWASP);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("ACCESS_TOKEN_TTL", "banana"),
            ("BIND_ADDR", "nope"),
            ("JWT_SECRET", "short"),
            ("DATABASE_URL", "mysql://x"),
            ("REDIS_URL", "http://x"),
            ("AUTO_MIGRATE", "maybe"),
            ("MAILER", "pigeon"),
            ("TRUSTED_PROXIES", "10.0.0.0/33"),
            ("LOCKOUT_THRESHOLD", "-1"),
            ("APP_ENV", "staging"),
            ("CORS_ALLOWED_ORIGINS", "example.com"),
            ("PUBLIC_URL", "example.com"),
        ] {
            let e = config(&[(var, value)]).unwrap_err();
            assert_eq!(e.var, var, "{value}");
        }
    }

    #[test]
    fn production_needs_a_database_and_a_signing_key_and_hides_the_playground() {
        assert_eq!(
            config(&[("APP_ENV", "production")]).unwrap_err().var,
            "DATABASE_URL"
        );
        let pg = ("DATABASE_URL", "postgres://db.internal/usergraph");
        assert_eq!(
            config(&[("APP_ENV", "production"), pg]).unwrap_err().var,
            "JWT_SECRET"
        );
        assert_eq!(
            config(&[("APP_ENV", "production"), ("JWT_SECRET", &"k".repeat(32))])
                .unwrap_err()
                .var,
            "DATABASE_URL"
        );
        let c = config(&[
            ("APP_ENV", "production"),
            pg,
            ("JWT_SECRET", &"k".repeat(32)),
        ])
        .unwrap();
        assert!(!c.graphql.graphiql && !c.graphql.introspection);
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn the_jwt_secret_is_taken_byte_for_byte() {
        // 31 bytes and a space is 32 bytes: long enough, and the space counts.
        let padded = format!("{} ", "k".repeat(31));
        let c = config(&[("JWT_SECRET", &padded)]).unwrap();
        match c.jwt.key {
            JwtKeySource::Secret(s) => assert_eq!(s.expose(), padded),
            other => panic!("{other:?}"),
        }
        let e = config(&[("JWT_SECRET", &format!(" {} ", "k".repeat(29)))]).unwrap_err();
        assert_eq!(e.var, "JWT_SECRET", "31 bytes with the spaces: too short");
        let e = config(&[("JWT_SECRET", &" ".repeat(40))]).unwrap_err();
        assert_eq!(e.var, "JWT_SECRET", "only whitespace");
    }

    #[test]
    fn durations_have_bounds() {
        for (var, value) in [
            ("REQUEST_TIMEOUT", "0s"),
            ("REQUEST_TIMEOUT", "2h"),
            ("SHUTDOWN_GRACE", "0s"),
            ("SHUTDOWN_GRACE", "1d"),
            ("AUDIT_RETENTION", "1h"),
            ("AUDIT_RETENTION", "20000d"),
            ("ACCESS_TOKEN_TTL", "1s"),
            ("REFRESH_TOKEN_REUSE_INTERVAL", "5m"),
            ("EMAIL_VERIFICATION_TTL", "0s"),
            ("PASSWORD_RESET_TTL", "2d"),
            ("MAIL_RETRY_BASE", "0s"),
            ("MAIL_RETENTION", "1m"),
        ] {
            let e = config(&[(var, value)]).unwrap_err();
            assert_eq!(e.var, var, "{var}={value}");
            assert!(
                e.message.contains("between") || e.message.contains("at "),
                "{e:?}"
            );
        }
        let c = config(&[("REQUEST_TIMEOUT", "1s"), ("SHUTDOWN_GRACE", "10m")]).unwrap();
        assert_eq!(c.request_timeout, Duration::from_secs(1));
    }

    #[test]
    fn secrets_do_not_print() {
        let c = config(&[("JWT_SECRET", &"s".repeat(40))]).unwrap();
        assert!(!format!("{c:?}").contains(&"s".repeat(40)));
    }
}
