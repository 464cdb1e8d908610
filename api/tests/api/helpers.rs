//! `spawn_app()`: the real router on 127.0.0.1:0 with its own fresh database
//! (a SQLite temp file, or a new PostgreSQL database when TEST_DATABASE_URL
//! is set, dropped afterwards) and its own Redis key prefix when
//! TEST_REDIS_URL is set. Migrations are the real ones; argon2 is cheap.

use std::time::Duration;

use serde_json::{Value, json};
use usergraph::app::{Application, BuildOptions};
use usergraph::config::{Argon2Params, Config, JwtKeySource, Secret};
use usergraph::state::AppState;

pub const PASSWORD: &str = "correct horse battery staple";
pub const CHEAP_ARGON2: Argon2Params = Argon2Params {
    memory_kib: 256,
    iterations: 1,
    parallelism: 1,
};

/// A database that exists for one test.
pub enum TestDb {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs outside any runtime we may block: use a thread of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    use sea_orm::ConnectionTrait as _;
                    let conn = sea_orm::Database::connect(admin_url.as_str()).await.ok()?;
                    conn.execute_unprepared(&format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    ))
                    .await
                    .ok()
                })
            })
            .join();
        }
    }
}

/// Creates a fresh database and returns its URL.
pub async fn fresh_database() -> (String, TestDb) {
    match std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
    {
        None => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
            (url, TestDb::Sqlite(dir))
        }
        Some(admin_url) => {
            use sea_orm::ConnectionTrait as _;
            let name = format!("ug_test_{}", uuid::Uuid::new_v4().simple());
            let conn = sea_orm::Database::connect(admin_url.as_str())
                .await
                .expect("connect TEST_DATABASE_URL");
            conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create test database");
            let (base, _) = admin_url
                .rsplit_once('/')
                .expect("TEST_DATABASE_URL must end in /dbname");
            (
                format!("{base}/{name}"),
                TestDb::Postgres { admin_url, name },
            )
        }
    }
}

pub fn redis_url() -> Option<String> {
    std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// A configuration for tests: nothing from the environment but the test
/// database and Redis.
pub fn test_config(database_url: &str, redis_prefix: &str) -> Config {
    let mut config = Config::from_lookup(|_| None).expect("default config");
    config.database_url = Secret::new(database_url);
    config.redis_url = redis_url().map(Secret::new);
    config.redis_key_prefix = redis_prefix.to_owned();
    config.bind_addr = "127.0.0.1:0".parse().unwrap();
    config.argon2 = CHEAP_ARGON2;
    config.jwt.key =
        JwtKeySource::Secret(Secret::new("test-secret-that-is-at-least-32-bytes-long"));
    config.shutdown_grace = Duration::from_secs(5);
    // Many tests sign in repeatedly from 127.0.0.1; the limit has its own tests.
    config.rate_limit_auth_per_minute = 10_000;
    config
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub database_url: String,
    pub redis_prefix: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _db: Option<TestDb>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

impl TestApp {
    /// Stops this instance but keeps its database, for a restart: pass the
    /// result to [`start`] with this instance's `database_url`.
    pub fn stop_keeping_database(mut self) -> Option<TestDb> {
        self._db.take()
    }
}

/// Spawns an app on a fresh database after `tweak` adjusts its config.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let (url, db) = fresh_database().await;
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let mut config = test_config(&url, &prefix);
    tweak(&mut config);
    start(config, Some(db), BuildOptions::default()).await
}

/// A second instance over the same database and Redis prefix (another replica).
pub async fn spawn_replica(of: &TestApp) -> TestApp {
    spawn_replica_with(of, |_| {}).await
}

pub async fn spawn_replica_with(of: &TestApp, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = test_config(&of.database_url, &of.redis_prefix);
    tweak(&mut config);
    start(config, None, BuildOptions::default()).await
}

pub async fn start(config: Config, db: Option<TestDb>, options: BuildOptions) -> TestApp {
    let database_url = config.database_url.expose().to_owned();
    let redis_prefix = config.redis_key_prefix.clone();
    let app = Application::build(config, options)
        .await
        .expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    // A shared cache is trusted once the worker has checked it (at once,
    // when Redis answers); tests of a dead Redis go on without it.
    for _ in 0..250 {
        if state.cache.is_trusted() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    TestApp {
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        state,
        database_url,
        redis_prefix,
        shutdown: Some(tx),
        _db: db,
    }
}

/// Tokens of a signed-in test user.
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Posts a GraphQL operation; returns the JSON body (status must be 200).
    pub async fn gql(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        let mut req = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.expect("request");
        assert_eq!(res.status(), 200, "GraphQL answers 200");
        res.json().await.expect("json body")
    }

    /// GETs `path` with `query` parameters; returns the JSON body, whatever
    /// the status.
    pub async fn get_json(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let res = self
            .client
            .get(self.url(path))
            .query(query)
            .send()
            .await
            .expect("request");
        res.json().await.expect("json body")
    }

    pub async fn register(&self, email: &str, password: &str) -> Value {
        self.gql(
            "mutation($i: RegisterInput!) { register(input: $i) { accessToken refreshToken tokenType expiresIn user { id email } } }",
            json!({ "i": { "email": email, "password": password } }),
            None,
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Value {
        self.gql(
            "mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken user { id email } } }",
            json!({ "i": { "email": email, "password": password } }),
            None,
        )
        .await
    }

    pub async fn refresh(&self, token: &str) -> Value {
        self.gql(
            "mutation($t: String!) { refreshToken(token: $t) { accessToken refreshToken } }",
            json!({ "t": token }),
            None,
        )
        .await
    }

    pub async fn me(&self, token: &str) -> Value {
        self.gql("{ me { id email } }", json!({}), Some(token))
            .await
    }

    /// Registers `email` and returns its tokens.
    pub async fn signed_up(&self, email: &str) -> Tokens {
        let body = self.register(email, PASSWORD).await;
        let data = &body["data"]["register"];
        assert!(data.is_object(), "register failed: {body}");
        Tokens {
            access: data["accessToken"].as_str().unwrap().to_owned(),
            refresh: data["refreshToken"].as_str().unwrap().to_owned(),
            user_id: data["user"]["id"].as_str().unwrap().to_owned(),
        }
    }
}

/// The `extensions.code` of the first error.
pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

pub fn field(body: &Value) -> &str {
    body["errors"][0]["extensions"]["field"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field in {body}"))
}
