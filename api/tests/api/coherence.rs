//! The cache never lies and the process never falls over: revocations under
//! cancelled requests and Redis faults, concurrent writers, a lagging read
//! replica, a flushed cache, replicas starting together, the purge.
//!
//! Tests marked `#[ignore]` need a `redis-server` binary (they start their
//! own, to pause or kill it), a shared `TEST_REDIS_URL`, or PostgreSQL
//! (`TEST_DATABASE_URL`): `.ci/run` runs them in its PostgreSQL + Redis pass
//! with `--include-ignored`; a plain `cargo test` lists them as ignored.

use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use usergraph::config::Secret;
use usergraph::domain::RequestMeta;
use usergraph::domain::sessions::{self, RevokeReason};
use uuid::Uuid;

use crate::helpers::{
    PASSWORD, TestApp, code, fresh_database, redis_url, spawn_app, spawn_app_with,
    spawn_replica_with, start, test_config,
};
use crate::redis_server::RedisServer;

/// The `sid` claim of an access token.
fn session_of(access: &str) -> uuid::Uuid {
    let payload = access.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    let claims: Value = serde_json::from_slice(&bytes).expect("json claims");
    claims["sid"].as_str().unwrap().parse().unwrap()
}

/// Waits up to 5 s for `check` to hold.
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn refused(body: &Value) -> bool {
    body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
}

/// Two replicas on `redis`, with a short request timeout so that the
/// settling period after a Redis restart (twice the timeout) is short too.
async fn two_replicas_on(redis: &RedisServer) -> (TestApp, TestApp) {
    let (a, b) = (
        spawn_app_with(|c| on(redis, c)).await,
        spawn_replica_with_config(redis),
    );
    let b = b(&a).await;
    (a, b)
}

fn on(redis: &RedisServer, config: &mut usergraph::config::Config) {
    config.redis_url = Some(Secret::new(redis.url()));
    config.request_timeout = Duration::from_secs(2);
}

fn spawn_replica_with_config(redis: &RedisServer) -> impl AsyncFnOnce(&TestApp) -> TestApp + '_ {
    async move |of: &TestApp| spawn_replica_with(of, |c| on(redis, c)).await
}

async fn outbox_len(app: &TestApp) -> u64 {
    use sea_orm::{EntityTrait as _, PaginatorTrait as _};
    entity::cache_outbox::Entity::find()
        .count(&app.state.db.write)
        .await
        .unwrap()
}

#[tokio::test]
#[ignore = "needs redis-server; run with --include-ignored"]
async fn a_logout_cut_off_after_its_commit_is_refused_by_the_other_replica() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let a = spawn_app_with(|c| {
        c.redis_url = Some(Secret::new(url.clone()));
        c.after_commit_delay = Some(Duration::from_secs(3));
        c.request_timeout = Duration::from_millis(1500);
    })
    .await;
    let b = spawn_replica_with(&a, |c| c.redis_url = Some(Secret::new(url.clone()))).await;

    // Cut off by the server's own request timeout.
    let t = a.signed_up("cut@example.com").await;
    assert!(
        b.me(&t.access).await["data"]["me"].is_object(),
        "B has cached the session"
    );
    let res = a
        .client
        .post(a.url("/graphql"))
        .bearer_auth(&t.access)
        .json(&json!({ "query": "mutation { logout }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        408,
        "the request was cut off after its commit"
    );
    assert!(refused(&b.me(&t.access).await), "B refuses at once");
    assert!(refused(&a.me(&t.access).await), "and so does A");

    // Cut off by the client going away.
    let t = b.login("cut@example.com", PASSWORD).await["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(b.me(&t).await["data"]["me"].is_object());
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let gone = impatient
        .post(a.url("/graphql"))
        .bearer_auth(&t)
        .json(&json!({ "query": "mutation { logout }" }))
        .send()
        .await;
    assert!(gone.is_err(), "the client hung up before the answer");
    assert!(refused(&b.me(&t).await), "B refuses at once");
    assert_eq!(
        outbox_len(&a).await,
        0,
        "the cache took the invalidations directly"
    );
}

#[tokio::test]
#[ignore = "needs redis-server; run with --include-ignored"]
async fn a_logout_while_redis_is_frozen_is_refused_during_and_after() {
    let redis = RedisServer::start().await;
    let (a, b) = two_replicas_on(&redis).await;
    let t = a.signed_up("frozen@example.com").await;
    let sid = session_of(&t.access);
    assert!(a.me(&t.access).await["data"]["me"].is_object());
    assert!(b.me(&t.access).await["data"]["me"].is_object());
    let key = a.state.cache.key_of(&format!("session:{sid}"));
    let cached = redis.get(&key).await;
    assert!(
        cached.is_some_and(|v| v.contains("\"live\":true")),
        "cached as live"
    );

    redis.pause();
    let out = a
        .gql("mutation { logout }", json!({}), Some(&t.access))
        .await;
    assert_eq!(
        out["data"]["logout"], true,
        "logout works without Redis: {out}"
    );
    assert_eq!(
        outbox_len(&a).await,
        1,
        "the invalidation was committed with the logout"
    );
    assert!(
        refused(&a.me(&t.access).await),
        "A refuses while Redis is frozen"
    );
    assert!(
        refused(&b.me(&t.access).await),
        "B refuses while Redis is frozen"
    );
    // Other users are served meanwhile.
    let other = a.signed_up("other@example.com").await;
    assert!(b.me(&other.access).await["data"]["me"].is_object());

    // Redis answers again, still holding the old "live" entry.
    redis.resume();
    assert!(refused(&a.me(&t.access).await), "A refuses right after");
    assert!(refused(&b.me(&t.access).await), "B refuses right after");

    // Within a worker interval or two (500 ms each; a loaded machine is
    // given more) the queued tombstone reaches Redis, the outbox empties and
    // both replicas trust the cache again.
    eventually("the outbox is delivered", || async {
        outbox_len(&a).await == 0
    })
    .await;
    eventually("both replicas trust the cache again", || async {
        a.state.cache.is_trusted() && b.state.cache.is_trusted()
    })
    .await;
    let stored = redis.get(&key).await.unwrap_or_default();
    assert!(
        !stored.contains("\"live\":true"),
        "the old live entry is gone: {stored}"
    );
    assert!(refused(&a.me(&t.access).await));
    // A replica that never saw the outage is right too, reading the cache.
    let c = spawn_replica_with(&a, |c| on(&redis, c)).await;
    assert!(c.state.cache.is_trusted());
    assert!(refused(&c.me(&t.access).await));
    assert!(refused(&b.me(&t.access).await));
}

#[tokio::test]
#[ignore = "needs redis-server; run with --include-ignored"]
async fn revoking_every_session_while_redis_is_down_survives_its_return_with_old_data() {
    let mut redis = RedisServer::start().await;
    let (a, b) = two_replicas_on(&redis).await;
    let first = a.signed_up("all@example.com").await;
    let mut tokens = vec![first.access.clone()];
    for _ in 0..2 {
        let body = b.login("all@example.com", PASSWORD).await;
        tokens.push(
            body["data"]["login"]["accessToken"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for token in &tokens {
        assert!(a.me(token).await["data"]["me"].is_object());
        assert!(b.me(token).await["data"]["me"].is_object());
    }
    let first_key = a
        .state
        .cache
        .key_of(&format!("session:{}", session_of(&tokens[0])));
    redis.stop_keeping_data().await;

    let user_id = first.user_id.parse().unwrap();
    let ended = sessions::revoke_all(
        &a.state,
        &RequestMeta::default(),
        Some(user_id),
        user_id,
        None,
        RevokeReason::LogoutAll,
    )
    .await
    .unwrap();
    assert_eq!(ended, 3);
    for token in &tokens {
        assert!(refused(&a.me(token).await), "A refuses while Redis is down");
        assert!(refused(&b.me(token).await), "B refuses while Redis is down");
    }

    redis.restart().await;
    let saved = redis.get(&first_key).await;
    assert!(
        saved.is_some_and(|v| v.contains("\"live\":true")),
        "Redis came back with the old live entries"
    );
    for token in &tokens {
        assert!(refused(&a.me(token).await), "A refuses after the return");
        assert!(refused(&b.me(token).await), "B refuses after the return");
    }
    eventually("every queued invalidation is delivered", || async {
        outbox_len(&a).await == 0
    })
    .await;
    // A replica started now waits out the settling period too, then reads
    // the cache (the new generation) and still refuses.
    let c = spawn_replica_with(&a, |c| on(&redis, c)).await;
    for token in &tokens {
        assert!(refused(&c.me(token).await), "a fresh replica refuses too");
    }
    eventually(
        "the fresh replica trusts the cache after settling",
        || async { c.state.cache.is_trusted() },
    )
    .await;
    for token in &tokens {
        assert!(refused(&c.me(token).await), "and still refuses");
    }
}

#[tokio::test]
#[ignore = "needs redis-server; run with --include-ignored"]
async fn a_redis_restarted_from_an_older_snapshot_cannot_revive_a_session() {
    let mut redis = RedisServer::start().await;
    let (a, b) = two_replicas_on(&redis).await;
    let t = a.signed_up("snapshot@example.com").await;
    assert!(a.me(&t.access).await["data"]["me"].is_object());
    assert!(b.me(&t.access).await["data"]["me"].is_object());
    let generation = a.state.cache.generation();
    // The snapshot holds the session as live...
    redis.command("SAVE").await.unwrap();
    // ...then the logout's tombstone reaches Redis (no outbox row)...
    let out = a
        .gql("mutation { logout }", json!({}), Some(&t.access))
        .await;
    assert_eq!(out["data"]["logout"], true);
    assert_eq!(outbox_len(&a).await, 0, "Redis took the tombstone");
    assert!(refused(&b.me(&t.access).await));
    // ...and Redis dies without saving and comes back from the snapshot.
    redis.kill_without_saving();
    redis.restart().await;
    // Within a worker interval (500 ms; a loaded machine is given more)
    // every replica has moved to a new key generation, where nothing from
    // before is read.
    eventually("both replicas move to a new generation", || async {
        a.state.cache.generation() > generation && b.state.cache.generation() > generation
    })
    .await;
    for app in [&a, &b] {
        assert!(refused(&app.me(&t.access).await));
    }
    let c = spawn_replica_with(&a, |c| on(&redis, c)).await;
    assert!(
        refused(&c.me(&t.access).await),
        "a fresh replica refuses too"
    );
    eventually("every replica trusts the cache after settling", || async {
        a.state.cache.is_trusted() && b.state.cache.is_trusted() && c.state.cache.is_trusted()
    })
    .await;
    for app in [&a, &b, &c] {
        assert!(refused(&app.me(&t.access).await), "and still refuses");
    }
    // The others keep working, on the new generation.
    let other = b.signed_up("after@example.com").await;
    assert!(a.me(&other.access).await["data"]["me"].is_object());
}

/// `me` as a comparable record, on one replica.
async fn me_record(app: &TestApp, token: &str) -> Value {
    let body = app
        .gql(
            "{ me { id email status lockedUntil lastLoginAt updatedAt roles { name } } }",
            json!({}),
            Some(token),
        )
        .await;
    body["data"]["me"].clone()
}

#[tokio::test]
#[ignore = "needs TEST_REDIS_URL (shared by two replicas); run with --include-ignored"]
async fn concurrent_logins_and_failures_leave_every_replica_equal_to_the_database() {
    let url = redis_url().expect("TEST_REDIS_URL");
    assert!(!url.is_empty());
    let a = spawn_app_with(|c| c.lockout_threshold = 1000).await;
    let b = spawn_replica_with(&a, |c| c.lockout_threshold = 1000).await;
    assert!(a.state.cache.is_trusted() && b.state.cache.is_trusted());
    let t = a.signed_up("busy@example.com").await;
    let apps = [&a, &b];
    let results: Vec<Value> = futures_util::stream::iter(0..200)
        .map(|i| {
            let app = apps[i % 2];
            let password = if i % 3 == 0 {
                "a wrong passphrase"
            } else {
                PASSWORD
            };
            async move {
                loop {
                    let body = app.login("busy@example.com", password).await;
                    // The hashing queue sheds bursts; a client comes back.
                    if body["errors"][0]["extensions"]["code"] != "RATE_LIMITED" {
                        return body;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let ok = results
        .iter()
        .filter(|r| r["data"]["login"].is_object())
        .count();
    let mut codes: Vec<String> = results
        .iter()
        .filter_map(|r| {
            r["errors"][0]["extensions"]["code"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    codes.sort();
    codes.dedup();
    assert!(ok > 100, "{ok} logins succeeded; other answers: {codes:?}");

    use sea_orm::EntityTrait as _;
    let row = entity::user::Entity::find_by_id(t.user_id.parse::<uuid::Uuid>().unwrap())
        .one(&a.state.db.write)
        .await
        .unwrap()
        .unwrap();
    let on_a = me_record(&a, &t.access).await;
    let on_b = me_record(&b, &t.access).await;
    assert_eq!(on_a, on_b);
    let stamp = |v: &Value| {
        v.as_str()
            .map(|s| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc())
    };
    assert_eq!(stamp(&on_a["lastLoginAt"]), row.last_login_at, "{on_a}");
    // What each replica serves from its cache is the committed row.
    let truth = usergraph::domain::users::UserView::from(row.clone());
    for app in [&a, &b] {
        let cached = usergraph::domain::users::load(&app.state, row.id, None)
            .await
            .unwrap();
        assert_eq!(cached.as_ref(), Some(&truth));
    }
}

#[tokio::test]
async fn a_lagging_or_unreachable_read_replica_never_serves_identity() {
    use migration::MigratorTrait as _;
    // A "replica" that never receives anything: migrated, and empty.
    let (lagging_url, _lagging) = fresh_database().await;
    let conn = sea_orm::Database::connect(lagging_url.as_str())
        .await
        .unwrap();
    migration::Migrator::up(&conn, None).await.unwrap();
    let mut replicas = vec![lagging_url.clone()];
    if !lagging_url.starts_with("sqlite") {
        // A replica that is away (SQLite has no such thing: it is a file).
        replicas.push("postgres://postgres@127.0.0.1:1/replica".to_owned());
    }
    for read_url in replicas {
        let app =
            spawn_app_with(|c| c.database_read_url = Some(Secret::new(read_url.clone()))).await;
        let t = app.signed_up("fresh@example.com").await;
        let me = app
            .gql(
                "{ me { email roles { name } permissions } }",
                json!({}),
                Some(&t.access),
            )
            .await;
        assert_eq!(
            me["data"]["me"]["email"], "fresh@example.com",
            "{read_url}: {me}"
        );
        assert_eq!(
            me["data"]["me"]["roles"],
            json!([{ "name": "user" }]),
            "{read_url}"
        );
        let refreshed = app.refresh(&t.refresh).await;
        assert!(
            refreshed["data"]["refreshToken"]["accessToken"].is_string(),
            "{read_url}: {refreshed}"
        );
        let again = refreshed["data"]["refreshToken"]["accessToken"]
            .as_str()
            .unwrap();
        assert_eq!(
            app.me(again).await["data"]["me"]["email"],
            "fresh@example.com"
        );
        // Admin lists read the replica: the lagging one answers with what
        // it has (nothing yet), the unreachable one is replaced by the
        // primary; neither is an error, and the permission check itself
        // never reads the replica.
        let root = crate::directory::admin(&app).await;
        let lists = app
            .gql(
                "{ users(first: 5) { totalCount nodes { email } } auditEvents(first: 5) { totalCount } }",
                json!({}),
                Some(&root),
            )
            .await;
        assert!(lists.get("errors").is_none(), "{read_url}: {lists}");
        let (users, events) = (
            &lists["data"]["users"]["totalCount"],
            &lists["data"]["auditEvents"]["totalCount"],
        );
        if read_url == lagging_url {
            assert_eq!((users, events), (&json!(0), &json!(0)), "{read_url}");
        } else {
            assert_eq!(users, &json!(2), "{read_url}: {lists}");
            assert!(events.as_i64().unwrap() >= 3, "{read_url}: {lists}");
        }
    }
}

/// Fires `n` concurrent `me` queries and returns how many SQL statements the
/// app ran meanwhile.
async fn statements_for_burst(app: &TestApp, token: &str, n: usize) -> u64 {
    let before = app.state.db.statements();
    let answers = futures_util::future::join_all(
        (0..n).map(|_| app.gql("{ me { id email roles { name } } }", json!({}), Some(token))),
    )
    .await;
    for body in answers {
        assert!(body["data"]["me"]["roles"].is_array(), "{body}");
    }
    app.state.db.statements() - before
}

#[tokio::test]
async fn a_cold_cache_under_a_burst_costs_a_bounded_number_of_statements() {
    let a = spawn_app().await;
    let t = a.signed_up("burst@example.com").await;
    // A fresh replica: its in-process cache (or the shared Redis prefix, on
    // the Redis pass) starts cold for this user's reads.
    let b = crate::helpers::spawn_replica(&a).await;
    let used = statements_for_burst(&b, &t.access, 100).await;
    // session, user, user roles, role catalogue (2): shared by the burst.
    assert!(used <= 15, "100 cold `me` cost {used} statements");
}

#[tokio::test]
#[ignore = "needs redis-server; run with --include-ignored"]
async fn a_flushed_redis_under_a_burst_costs_a_bounded_number_of_statements() {
    let redis = RedisServer::start().await;
    let (a, _b) = two_replicas_on(&redis).await;
    let t = a.signed_up("flush@example.com").await;
    assert!(
        statements_for_burst(&a, &t.access, 5).await > 0,
        "cold: fills"
    );
    assert_eq!(
        statements_for_burst(&a, &t.access, 50).await,
        0,
        "warm: no SQL at all"
    );
    redis.command("FLUSHALL").await.unwrap();
    let used = statements_for_burst(&a, &t.access, 100).await;
    assert!(used <= 15, "100 `me` after FLUSHALL cost {used} statements");
}

#[tokio::test]
#[ignore = "needs TEST_REDIS_URL (shared by two replicas); run with --include-ignored"]
async fn a_role_change_is_seen_by_every_replica_on_the_next_request() {
    use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _};
    let url = redis_url().expect("TEST_REDIS_URL");
    assert!(!url.is_empty());
    let a = spawn_app().await;
    let b = crate::helpers::spawn_replica(&a).await;
    let t = a.signed_up("perm@example.com").await;
    async fn permissions_of(app: &TestApp, token: &str) -> Value {
        app.gql("{ me { permissions } }", json!({}), Some(token))
            .await["data"]["me"]["permissions"]
            .clone()
    }
    let permissions = |app| permissions_of(app, &t.access);
    assert_eq!(permissions(&b).await, json!([]));
    for round in 0..5 {
        let granted = if round % 2 == 0 {
            json!(["audit:read"])
        } else {
            json!([])
        };
        let txn = usergraph::domain::tx::Tx::begin(&a.state).await.unwrap();
        entity::role::Entity::update_many()
            .col_expr(
                entity::role::Column::Permissions,
                sea_orm::sea_query::Expr::value(granted.clone()),
            )
            .filter(entity::role::Column::Name.eq("user"))
            .exec(&txn)
            .await
            .unwrap();
        let stale = usergraph::domain::roles::touch_catalogue(&txn)
            .await
            .unwrap();
        usergraph::domain::invalidations::commit(&a.state, txn, &[stale])
            .await
            .unwrap();
        assert_eq!(permissions(&b).await, granted, "round {round} on B");
        assert_eq!(permissions(&a).await, granted, "round {round} on A");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (TEST_DATABASE_URL); run with --include-ignored"]
async fn replicas_starting_together_migrate_once() {
    use migration::MigratorTrait as _;
    use sea_orm::ConnectionTrait as _;
    assert!(
        std::env::var("TEST_DATABASE_URL").is_ok(),
        "needs TEST_DATABASE_URL"
    );
    for _ in 0..5 {
        let (url, db) = fresh_database().await;
        let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
        // Three replicas, each on its own task, released at the same moment.
        let gate = std::sync::Arc::new(tokio::sync::Barrier::new(3));
        let replicas: Vec<_> = (0..3)
            .map(|_| {
                let config = test_config(&url, &prefix);
                let gate = gate.clone();
                tokio::spawn(async move {
                    gate.wait().await;
                    start(config, None, Default::default()).await
                })
            })
            .collect();
        let mut apps = Vec::new();
        for replica in replicas {
            apps.push(replica.await.expect("every replica starts"));
        }
        let a = &apps[0];
        for app in &apps {
            let ready = app.client.get(app.url("/ready")).send().await.unwrap();
            assert_eq!(ready.status(), 200);
        }
        let applied = a
            .state
            .db
            .write
            .query_one_raw(sea_orm::Statement::from_string(
                a.state.db.write.get_database_backend(),
                "SELECT COUNT(*) AS n FROM seaql_migrations",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap();
        assert_eq!(applied as usize, migration::Migrator::migrations().len());
        drop(apps);
        drop(db);
    }

    // The mechanism itself: while one replica holds the migration lock on
    // a database with migrations pending, another waits for it before
    // touching the schema.
    let (url, _db) = fresh_database().await;
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let config = test_config(&url, &prefix);
    let holder = usergraph::db::Db::connect(&config, false).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    holder
        .locked(usergraph::db::Lock::Migrate, true, || async {
            let second = tokio::spawn(start(test_config(&url, &prefix), None, Default::default()));
            tokio::time::sleep(Duration::from_millis(700)).await;
            assert!(
                !second.is_finished(),
                "the second replica waits for the lock"
            );
            let _ = tx.send(second);
        })
        .await
        .unwrap();
    let second = rx
        .await
        .unwrap()
        .await
        .expect("starts once the lock is free");
    let ready = second
        .client
        .get(second.url("/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // With nothing pending, a replica neither takes nor waits for the lock
    // (nor opens its connection): it starts while another holds it.
    holder
        .locked(usergraph::db::Lock::Migrate, true, || async {
            let third = tokio::time::timeout(
                Duration::from_secs(20),
                start(test_config(&url, &prefix), None, Default::default()),
            )
            .await
            .expect("starts while the lock is held");
            let ready = third.client.get(third.url("/ready")).send().await.unwrap();
            assert_eq!(ready.status(), 200);
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_dead_redis_degrades_readiness_but_no_request() {
    let app = spawn_app_with(|c| c.redis_url = Some(Secret::new("redis://127.0.0.1:1"))).await;
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(
        ready.status(),
        200,
        "a Redis outage must not pull the replica"
    );
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["cache"], "error");
    assert_eq!(body["checks"]["database"], "ok");
    let t = app.signed_up("pia@example.com").await;
    assert_eq!(
        app.me(&t.access).await["data"]["me"]["email"],
        "pia@example.com"
    );
    let login = app.login("pia@example.com", PASSWORD).await;
    assert!(login["data"]["login"]["accessToken"].is_string(), "{login}");
    let out = app
        .gql("mutation { logout }", json!({}), Some(&t.access))
        .await;
    assert_eq!(out["data"]["logout"], true);
    assert_eq!(code(&app.me(&t.access).await), "UNAUTHENTICATED");
}

/// An app on a Redis of its own (to count its commands), once it trusts
/// the cache.
async fn app_on_own_redis() -> (RedisServer, TestApp) {
    let redis = RedisServer::start().await;
    let a = spawn_app_with(|c| on(&redis, c)).await;
    eventually("the cache is trusted", || async {
        a.state.cache.is_trusted()
    })
    .await;
    (redis, a)
}

/// `CONFIG RESETSTAT`: [`calls_of`] counts from here.
async fn reset_stats(redis: &RedisServer) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// How many times `command` ran on `redis` since its last `CONFIG RESETSTAT`.
async fn calls_of(redis: &RedisServer, command: &str) -> u64 {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let wanted = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&wanted))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
#[ignore = "needs redis-server; run with --include-ignored"]
async fn a_warm_signed_in_read_costs_one_cache_round_trip() {
    let (redis, a) = app_on_own_redis().await;
    let t = a.signed_up("ahead@example.com").await;
    let me = "{ me { id email displayName roles { name } } }";
    for _ in 0..2 {
        assert!(a.gql(me, json!({}), Some(&t.access)).await["data"]["me"]["roles"].is_array());
    }
    let statements = a.state.db.statements();
    reset_stats(&redis).await;
    for _ in 0..5 {
        let body = a.gql(me, json!({}), Some(&t.access)).await;
        assert_eq!(body["data"]["me"]["roles"][0]["name"], "user", "{body}");
    }
    // The session, the user, their roles and the catalogue: one MGET each
    // request, nothing else, and no SQL.
    assert_eq!(calls_of(&redis, "mget").await, 5);
    assert_eq!(a.state.db.statements(), statements);
}

#[tokio::test]
#[ignore = "needs redis-server; run with --include-ignored"]
async fn a_warm_user_by_id_and_a_warm_page_cost_two_cache_round_trips() {
    let (redis, a) = app_on_own_redis().await;
    let root = crate::directory::admin(&a).await;
    let target = a.signed_up("looked-up@example.com").await;
    let user = "query($id: ID!) { user(id: $id) { id email roles { name permissions } } }";
    let page = "{ users(first: 5) { nodes { id email roles { name } } } }";
    let vars = json!({ "id": target.user_id });
    for _ in 0..2 {
        assert!(a.gql(user, vars.clone(), Some(&root)).await["data"]["user"]["roles"].is_array());
        assert!(a.gql(page, json!({}), Some(&root)).await["data"]["users"]["nodes"].is_array());
    }
    reset_stats(&redis).await;
    let statements = a.state.db.statements();
    for _ in 0..5 {
        let body = a.gql(user, vars.clone(), Some(&root)).await;
        assert_eq!(body["data"]["user"]["roles"][0]["name"], "user", "{body}");
    }
    // What the token names, then the user and their roles together; the
    // catalogue read for the permission check serves their roles too.
    assert_eq!(calls_of(&redis, "mget").await, 10);
    assert_eq!(a.state.db.statements(), statements, "no SQL");
    // The page: the admin and the target.
    for _ in 0..5 {
        let body = a.gql(page, json!({}), Some(&root)).await;
        assert_eq!(
            body["data"]["users"]["nodes"].as_array().map(Vec::len),
            Some(2),
            "{body}"
        );
    }
    // Then the page's roles in one more: the catalogue is not asked again.
    assert_eq!(calls_of(&redis, "mget").await, 20);
}

#[tokio::test]
#[ignore = "needs redis-server; run with --include-ignored"]
async fn a_role_newer_than_the_catalogue_read_ahead_is_not_left_out() {
    let (redis, a) = app_on_own_redis().await;
    let root = crate::directory::admin(&a).await;
    let target = a.signed_up("late-role@example.com").await;
    let target_id: Uuid = target.user_id.parse().unwrap();
    // The catalogue, cached as it is before the new role.
    let roles = "{ roles { name } }";
    assert!(a.gql(roles, json!({}), Some(&root)).await["data"]["roles"].is_array());
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*roles:all")
        .query_async(&mut conn)
        .await
        .unwrap();
    let [key] = keys.as_slice() else {
        panic!("one catalogue key: {keys:?}")
    };
    let before: String = redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    for mutation in [
        r#"mutation { createRole(input: {name: "late-role", permissions: ["audit:read"]}) { name } }"#,
        r#"mutation($id: ID!) { assignRole(userId: $id, role: "late-role") { id } }"#,
    ] {
        let body = a
            .gql(mutation, json!({ "id": target.user_id }), Some(&root))
            .await;
        assert!(body["errors"].is_null(), "{body}");
    }
    // A request whose hints were read before the new role: its catalogue
    // hint does not know it, while the target's links (tombstoned) are
    // loaded from the database with it.
    let () = redis::cmd("SET")
        .arg(key)
        .arg(&before)
        .query_async(&mut conn)
        .await
        .unwrap();
    let hints = sessions::prefetch_viewer(&a.state, Uuid::now_v7(), Uuid::now_v7()).await;
    let () = redis::cmd("DEL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let found = usergraph::domain::roles::for_users(&a.state, &[target_id], Some(&hints))
        .await
        .unwrap();
    let names: Vec<&str> = found[&target_id].iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["late-role", "user"]);
}

#[tokio::test]
async fn a_mutation_reads_its_own_writes_not_what_was_read_ahead() {
    let a = spawn_app().await;
    let root = crate::directory::admin(&a).await;
    let id = a
        .gql("{ me { id roles { name } } }", json!({}), Some(&root))
        .await["data"]["me"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let made = a
        .gql(
            r#"mutation { createRole(input: {name: "ahead-reader", permissions: ["audit:read"]}) { name } }"#,
            json!({}),
            Some(&root),
        )
        .await;
    assert_eq!(made["data"]["createRole"]["name"], "ahead-reader", "{made}");
    // The caller's roles were warm when this request began; its answer
    // shows the role it has just been given.
    let body = a
        .gql(
            r#"mutation($id: ID!) { assignRole(userId: $id, role: "ahead-reader") { roles { name } permissions } }"#,
            json!({ "id": id }),
            Some(&root),
        )
        .await;
    let names: Vec<&str> = body["data"]["assignRole"]["roles"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "ahead-reader", "user"], "{body}");
    // In a batch, each operation sees the writes of those before it.
    let batch = a
        .client
        .post(a.url("/graphql"))
        .bearer_auth(&root)
        .json(&json!([
            { "query": "{ me { roles { name } } }" },
            { "query": r#"mutation($id: ID!) { removeRole(userId: $id, role: "ahead-reader") { id } }"#, "variables": { "id": id } },
            { "query": "{ me { roles { name } } }" },
        ]))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        batch[0]["data"]["me"]["roles"].as_array().unwrap().len(),
        3,
        "{batch}"
    );
    assert_eq!(
        batch[2]["data"]["me"]["roles"],
        json!([{ "name": "admin" }, { "name": "user" }]),
        "{batch}"
    );
}
