//! Logs (tracing) and metrics (Prometheus) set-up, once per process.

use std::ffi::OsString;
use std::io::IsTerminal as _;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG` filters; the default keeps SQL
/// drivers quiet. Safe to call more than once (later calls do nothing).
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,tower_http=info")
    });
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_ansi(false)
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(colour(
                        std::env::var_os("NO_COLOR"),
                        std::io::stdout().is_terminal(),
                    )),
            )
            .try_init(),
    };
    drop(result);
}

/// Colour codes only for a person at a terminal: never into a file or a
/// pipe, and never when `NO_COLOR` is set to anything but the empty string
/// (the no-color.org convention).
fn colour(no_color: Option<OsString>, terminal: bool) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The process-wide Prometheus recorder (installed on first use, so several
/// app instances in one test process share it).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let latency = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), &latency)
                .map(PrometheusBuilder::build_recorder);
            match recorder {
                Ok(recorder) => {
                    let handle = recorder.handle();
                    if metrics::set_global_recorder(recorder).is_err() {
                        tracing::warn!("a metrics recorder was already installed");
                    }
                    spawn_upkeep(handle.clone());
                    describe();
                    // Mail counters exist from the start, so alerts on their
                    // increase see the first one too.
                    for name in [
                        "usergraph_mail_sent_total",
                        "usergraph_mail_delivery_failures_total",
                        "usergraph_mail_dead_total",
                    ] {
                        metrics::counter!(name).absolute(0);
                    }
                    for kind in ["email_verification", "password_reset"] {
                        metrics::counter!("usergraph_mail_queued_total", "kind" => kind)
                            .absolute(0);
                    }
                    metrics_process::Collector::default().describe();
                    metrics::gauge!("usergraph_build_info", "version" => env!("CARGO_PKG_VERSION"))
                        .set(1.0);
                    handle
                }
                Err(e) => {
                    tracing::error!(error = %e, "metrics recorder could not be built");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
const UPKEEP_THREAD: &str = "metrics-upkeep";

/// The recorder keeps every histogram sample until something drains it: a
/// scrape, or this. Without it a replica nobody scrapes grows by every
/// request it serves (~1 MiB/s measured under load). A thread of its own,
/// not a task: the recorder is process-wide and outlives any one runtime
/// (tests start many).
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name(UPKEEP_THREAD.into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "metrics upkeep thread could not start");
    }
}

/// Refreshes the process gauges (`process_resident_memory_bytes`, CPU
/// seconds, open fds, …); called at each scrape.
pub fn collect_process_metrics() {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR
        .get_or_init(metrics_process::Collector::default)
        .collect();
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "usergraph_http_requests_total",
        "HTTP requests by method, matched route and status."
    );
    describe_histogram!(
        "usergraph_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency."
    );
    describe_counter!(
        "usergraph_graphql_operations_total",
        "GraphQL operations by name, type and outcome."
    );
    describe_histogram!(
        "usergraph_graphql_operation_duration_seconds",
        Unit::Seconds,
        "GraphQL operation latency."
    );
    describe_counter!(
        "usergraph_cache_hits_total",
        "Cache reads that found a value."
    );
    describe_counter!(
        "usergraph_cache_misses_total",
        "Cache reads that found nothing."
    );
    describe_counter!(
        "usergraph_cache_errors_total",
        "Cache operations that failed and were bypassed."
    );
    describe_gauge!(
        "usergraph_cache_trusted",
        "1 while this replica reads the cache; 0 after a cache failure, until every queued invalidation is delivered."
    );
    describe_counter!(
        "usergraph_cache_bypassed_total",
        "Cache reads skipped because the cache is not trusted."
    );
    describe_counter!(
        "usergraph_cache_coalesced_total",
        "Cache misses that waited for another request's database load."
    );
    describe_counter!(
        "usergraph_cache_invalidations_queued_total",
        "Invalidations committed to the database outbox because the cache could not take them."
    );
    describe_counter!(
        "usergraph_cache_invalidations_delivered_total",
        "Queued invalidations delivered to the cache by the outbox worker."
    );
    describe_counter!(
        "usergraph_auth_shed_total",
        "Requests refused at once because the password hashing queue was full."
    );
    describe_counter!("usergraph_db_queries_total", "SQL statements run.");
    describe_counter!(
        "usergraph_db_query_errors_total",
        "SQL statements that failed."
    );
    describe_gauge!(
        "usergraph_db_pool_connections",
        "Database pool connections by state."
    );
    describe_gauge!(
        "usergraph_db_pool_max_connections",
        "Database pool size limit."
    );
    describe_gauge!(
        "usergraph_dependency_up",
        "1 when a dependency answered the last readiness check."
    );
    describe_counter!("usergraph_auth_logins_total", "Login attempts by outcome.");
    describe_counter!(
        "usergraph_auth_lockouts_total",
        "Accounts locked after repeated failed logins."
    );
    describe_counter!(
        "usergraph_rate_limited_total",
        "Requests refused by the rate limiter."
    );
    describe_gauge!(
        "usergraph_mail_outbox_pending",
        "Queued, undelivered email messages."
    );
    describe_gauge!(
        "usergraph_mail_outbox_oldest_pending_seconds",
        "Age of the oldest queued, undelivered email message (0 when none)."
    );
    describe_counter!(
        "usergraph_mail_queued_total",
        "Email messages queued, by kind."
    );
    describe_counter!(
        "usergraph_mail_sent_total",
        "Email messages delivered to the mailer."
    );
    describe_counter!(
        "usergraph_mail_delivery_failures_total",
        "Failed email delivery attempts (each retry counts)."
    );
    describe_counter!(
        "usergraph_mail_dead_total",
        "Email messages given up after the last attempt or a permanent failure."
    );
    describe_counter!(
        "usergraph_db_replica_fallbacks_total",
        "Lists read from the primary because the read replica could not be reached."
    );
    describe_counter!(
        "usergraph_events_dropped_total",
        "Audit events not sent to other replicas: the Redis publishing queue was full."
    );
    describe_gauge!("usergraph_build_info", "Build information.");
}

#[cfg(test)]
mod tests {
    use super::colour;

    /// Histogram samples pile up until drained: the process must drain them
    /// itself, scraped or not.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_recorder_is_kept_drained_by_its_own_thread() {
        let _ = super::metrics_handle();
        let list = || -> Vec<String> {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect()
        };
        // A new thread names itself once it runs.
        let mut names = list();
        for _ in 0..200 {
            if names.iter().any(|name| name == super::UPKEEP_THREAD) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            names = list();
        }
        assert!(
            names.iter().any(|name| name == super::UPKEEP_THREAD),
            "no {} thread among {names:?}",
            super::UPKEEP_THREAD
        );
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(None, true));
        assert!(colour(Some("".into()), true));
        assert!(!colour(Some("1".into()), true));
        assert!(!colour(Some("0".into()), true));
        assert!(!colour(None, false));
    }
}
