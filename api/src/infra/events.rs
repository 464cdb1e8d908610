//! The event bus behind `Subscription.auditEvents`.
//!
//! Every replica keeps an in-process broadcast channel that its subscribers
//! read. Without `REDIS_URL` that is all there is. With it, each event
//! committed here is also published on the Redis channel
//! `<REDIS_KEY_PREFIX>events:audit`, and each replica forwards what the
//! others published into its own channel, so a subscriber on any replica
//! sees the events of every replica. A replica's own events reach its own
//! subscribers without the round trip (and while Redis is away).
//!
//! Publishing never waits for Redis: events go to a bounded queue that one
//! task drains, retrying while Redis is down; when the queue is full the
//! newest events are dropped for other replicas and counted
//! (`usergraph_events_dropped_total`). The subscribing connection is pinged
//! and replaced when it stops answering; once subscribed again, the replica
//! reads the events committed since shortly before the connection was last
//! known good from the database and forwards those it has not seen, so a
//! Redis stall or restart loses nothing (each event is forwarded once: the
//! ids of the last few thousand are remembered).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use entity::audit_event::Model;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, watch};
use uuid::Uuid;

/// Events a slow subscriber may fall behind by before it is told so.
const LOCAL_CAPACITY: usize = 4096;
/// Events waiting for Redis before the newest are dropped.
const OUTBOUND_CAPACITY: usize = 10_000;
/// Events published in one round trip.
const PUBLISH_BATCH: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the subscribing connection is pinged.
const PING_EVERY: Duration = Duration::from_secs(5);
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// Event ids remembered to drop a second delivery (a batch published again
/// after a timeout whose first try did reach Redis, or an event both
/// published and read back after a reconnection).
const REMEMBERED: usize = 8192;
/// How far before the connection was last known good the catch-up reads:
/// covers an event inserted early in a transaction that committed late (a
/// request's transaction cannot outlive `REQUEST_TIMEOUT`, 30 s by default)
/// and clocks of replicas a few seconds apart.
const CATCH_UP_MARGIN: Duration = Duration::from_secs(60);
/// Rows read per catch-up query.
const CATCH_UP_PAGE: u64 = 500;
/// Rows read at most by one catch-up (what is older stays readable through
/// `Query.auditEvents`).
const CATCH_UP_LIMIT: u64 = 100_000;

/// What goes over Redis: the event and the replica it came from.
#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: Uuid,
    event: Model,
}

pub struct EventBus {
    local: broadcast::Sender<Arc<Model>>,
    outbound: Option<mpsc::Sender<Arc<Model>>>,
    /// What this replica's subscribers already received.
    seen: Arc<Mutex<Seen>>,
    /// Dropped with the bus: its tasks stop.
    _stop: Option<watch::Sender<()>>,
}

impl EventBus {
    /// A bus for one process.
    pub fn in_process() -> Self {
        Self {
            local: broadcast::channel(LOCAL_CAPACITY).0,
            outbound: None,
            seen: Arc::default(),
            _stop: None,
        }
    }

    /// A bus shared through Redis at `urls` (one server, or the nodes of a
    /// cluster, whose pub/sub reaches every node), on `channel`; `db` (the
    /// primary) is where events missed during a reconnection are read back.
    /// Connects in the background: the service starts while Redis is away.
    ///
    /// # Errors
    /// When a URL cannot be used.
    pub fn redis(
        urls: &[String],
        channel: String,
        db: sea_orm::DatabaseConnection,
    ) -> anyhow::Result<Self> {
        let clients = urls
            .iter()
            .map(|u| redis::Client::open(u.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        anyhow::ensure!(!clients.is_empty(), "no Redis URL for the event bus");
        let local = broadcast::channel(LOCAL_CAPACITY).0;
        let (outbound, queued) = mpsc::channel(OUTBOUND_CAPACITY);
        let (stop, stopped) = watch::channel(());
        let origin = Uuid::new_v4();
        let seen = Arc::<Mutex<Seen>>::default();
        tokio::spawn(publish_loop(
            clients.clone(),
            channel.clone(),
            origin,
            queued,
        ));
        let listener = Listener {
            channel,
            origin,
            local: local.clone(),
            seen: Arc::clone(&seen),
            db,
        };
        tokio::spawn(crate::db::in_background(subscribe_loop(
            clients, listener, stopped,
        )));
        Ok(Self {
            local,
            outbound: Some(outbound),
            seen,
            _stop: Some(stop),
        })
    }

    /// Hands committed events to the subscribers of every replica. Never
    /// waits.
    pub fn publish(&self, events: Vec<Model>) {
        for event in events {
            let event = Arc::new(event);
            if let Some(outbound) = &self.outbound {
                lock(&self.seen).first_time(event.id);
                if outbound.try_send(Arc::clone(&event)).is_err() {
                    metrics::counter!("usergraph_events_dropped_total").increment(1);
                }
            }
            // No subscriber here is not an error.
            let _ = self.local.send(event);
        }
    }

    /// Every event from now on, from every replica.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Model>> {
        self.local.subscribe()
    }
}

/// Waits before the next attempt (between half and all of `delay`, so
/// replicas that lost Redis together do not come back in step), doubling
/// up to [`RETRY_MAX`].
async fn back_off(delay: &mut Duration) {
    let share = f64::from(Uuid::new_v4().as_bytes()[0]) / 255.0;
    tokio::time::sleep(delay.mul_f64(0.5 + share / 2.0)).await;
    *delay = (*delay * 2).min(RETRY_MAX);
}

async fn publish_loop(
    clients: Vec<redis::Client>,
    channel: String,
    origin: Uuid,
    mut queued: mpsc::Receiver<Arc<Model>>,
) {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(CALL_TIMEOUT));
    let mut conn = None;
    let mut node = 0;
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    let mut delay = RETRY_MIN;
    loop {
        if batch.is_empty() && queued.recv_many(&mut batch, PUBLISH_BATCH).await == 0 {
            return; // the bus is gone
        }
        if conn.is_none() {
            match clients[node]
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "event bus: cannot reach Redis to publish");
                    node = (node + 1) % clients.len();
                    if queued.is_closed() {
                        return; // the bus is gone: nobody is left to tell
                    }
                    back_off(&mut delay).await;
                    continue;
                }
            }
        }
        let mut pipe = redis::pipe();
        for event in &batch {
            let envelope = Envelope {
                origin,
                event: Model::clone(event),
            };
            match serde_json::to_string(&envelope) {
                Ok(text) => {
                    pipe.publish(&channel, text).ignore();
                }
                Err(e) => tracing::error!(error = %e, "event bus: cannot encode an event"),
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        match pipe.query_async::<()>(c).await {
            Ok(()) => {
                batch.clear();
                delay = RETRY_MIN;
            }
            Err(e) if super::redis::refused(&e) => {
                tracing::error!(error = %e, events = batch.len(), "event bus: Redis refused to publish; events dropped for the other replicas");
                metrics::counter!("usergraph_events_dropped_total").increment(batch.len() as u64);
                batch.clear();
            }
            Err(e) => {
                // Kept, and sent again once Redis answers.
                tracing::warn!(error = %e, "event bus: publishing failed; retrying");
                conn = None;
                node = (node + 1) % clients.len();
                if queued.is_closed() {
                    return;
                }
                back_off(&mut delay).await;
            }
        }
    }
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the subscribing task forwards, and where from.
struct Listener {
    channel: String,
    origin: Uuid,
    local: broadcast::Sender<Arc<Model>>,
    seen: Arc<Mutex<Seen>>,
    db: sea_orm::DatabaseConnection,
}

impl Listener {
    /// Hands an event from another replica to this one's subscribers,
    /// unless they had it; whether it did.
    fn forward(&self, event: Model) -> bool {
        let first = lock(&self.seen).first_time(event.id);
        if first {
            let _ = self.local.send(Arc::new(event));
        }
        first
    }

    /// Forwards what was committed since `since` and not yet seen, oldest
    /// first, a page at a time (events already delivered do not use up the
    /// bound).
    async fn catch_up(&self, since: chrono::DateTime<chrono::Utc>) {
        use entity::audit_event::{Column, Entity};
        use sea_orm::{
            ColumnTrait as _, Condition, EntityTrait as _, QueryFilter as _, QueryOrder as _,
            QuerySelect as _,
        };
        let mut after: Option<(chrono::DateTime<chrono::Utc>, Uuid)> = None;
        let (mut read, mut forwarded) = (0, 0);
        while read < CATCH_UP_LIMIT {
            let position = match after {
                None => Condition::all().add(Column::CreatedAt.gt(since)),
                Some((at, id)) => Condition::any().add(Column::CreatedAt.gt(at)).add(
                    Condition::all()
                        .add(Column::CreatedAt.eq(at))
                        .add(Column::Id.gt(id)),
                ),
            };
            let page = Entity::find()
                .filter(position)
                .order_by_asc(Column::CreatedAt)
                .order_by_asc(Column::Id)
                .limit(CATCH_UP_PAGE)
                .all(&self.db)
                .await;
            let events = match page {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, "event bus: cannot read missed events back");
                    return;
                }
            };
            let full = events.len() as u64 == CATCH_UP_PAGE;
            read += events.len() as u64;
            after = events.last().map(|e| (e.created_at, e.id));
            for event in events {
                forwarded += u64::from(self.forward(event));
            }
            if !full {
                break;
            }
        }
        if read >= CATCH_UP_LIMIT {
            tracing::warn!(
                read,
                "event bus: stopped reading missed events back; the rest are in auditEvents"
            );
        }
        if forwarded > 0 {
            tracing::info!(
                forwarded,
                "event bus: forwarded events missed while Redis was away"
            );
        }
    }
}

async fn subscribe_loop(
    clients: Vec<redis::Client>,
    listener: Listener,
    mut stop: watch::Receiver<()>,
) {
    let mut node = 0;
    let mut delay = RETRY_MIN;
    // Since when events may have been missed: at first, since the bus began
    // (a replica that starts while Redis is away still reads back).
    let mut good_until = chrono::Utc::now();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = listen(&clients[node], &listener, &mut delay, &mut good_until) => {}
        }
        node = (node + 1) % clients.len();
        tokio::select! {
            _ = stop.changed() => return,
            () = back_off(&mut delay) => {}
        }
    }
}

/// Subscribes and forwards until the connection fails or stops answering.
async fn listen(
    client: &redis::Client,
    listener: &Listener,
    delay: &mut Duration,
    good_until: &mut chrono::DateTime<chrono::Utc>,
) {
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&listener.channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    })
    .await;
    let pubsub = match connected {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "event bus: cannot subscribe on Redis");
            return;
        }
        Err(_) => {
            tracing::warn!("event bus: subscribing on Redis timed out");
            return;
        }
    };
    tracing::debug!(channel = listener.channel, "event bus: subscribed");
    *delay = RETRY_MIN;
    // Subscribed first, then read back: whatever commits after the read
    // arrives on the subscription.
    // (Only for subscribers: with none, there is nobody to catch up.)
    if listener.local.receiver_count() > 0 {
        let margin = chrono::Duration::from_std(CATCH_UP_MARGIN).unwrap_or_default();
        listener.catch_up(*good_until - margin).await;
    }
    *good_until = chrono::Utc::now();
    let (mut sink, mut messages) = pubsub.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    tracing::warn!("event bus: the Redis subscription ended; resubscribing");
                    return;
                };
                match serde_json::from_slice::<Envelope>(message.get_payload_bytes()) {
                    Ok(envelope) if envelope.origin == listener.origin => {}
                    Ok(envelope) => {
                        listener.forward(envelope.event);
                    }
                    Err(e) => tracing::warn!(error = %e, "event bus: an unreadable message"),
                }
            }
            _ = ping.tick() => {
                let sent = chrono::Utc::now();
                if let Err(e) = still_answering(&mut sink).await {
                    tracing::warn!(error = %e, "event bus: Redis stopped answering; resubscribing");
                    return;
                }
                // Everything published before the ping was sent has arrived.
                *good_until = sent;
            }
        }
    }
}

/// One PING on a subscribed connection, within [`CALL_TIMEOUT`]. A
/// subscribed connection answers PING with `["pong", ""]` (RESP2), not
/// `PONG`: any answer but an error reply counts.
async fn still_answering(sink: &mut redis::aio::PubSubSink) -> anyhow::Result<()> {
    tokio::time::timeout(CALL_TIMEOUT, sink.ping::<redis::Value>())
        .await
        .map_err(|_| anyhow::anyhow!("no answer to PING within {CALL_TIMEOUT:?}"))??
        // An error reply arrives as a value.
        .extract_error()?;
    Ok(())
}

/// The ids of the last [`REMEMBERED`] events received.
#[derive(Default)]
struct Seen {
    ids: std::collections::HashSet<Uuid>,
    order: std::collections::VecDeque<Uuid>,
}

impl Seen {
    fn first_time(&mut self, id: Uuid) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str) -> Model {
        Model {
            id: Uuid::now_v7(),
            action: action.into(),
            actor_id: None,
            target_user_id: None,
            ip_address: None,
            user_agent: None,
            metadata: serde_json::json!({}),
            created_at: chrono::Utc::now(),
        }
    }

    /// A subscribed connection's PING answer is not `PONG`; taking it for
    /// a failure made every replica resubscribe every [`PING_EVERY`].
    #[tokio::test]
    async fn a_subscribed_connection_answers_the_liveness_ping() {
        let Ok(url) = std::env::var("TEST_REDIS_URL") else {
            eprintln!("skipped: TEST_REDIS_URL is not set");
            return;
        };
        let client = redis::Client::open(url).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.subscribe("usergraph-test:ping").await.unwrap();
        let (mut sink, _messages) = pubsub.split();
        still_answering(&mut sink).await.unwrap();
        still_answering(&mut sink).await.unwrap();
    }

    #[tokio::test]
    async fn subscribers_of_one_process_see_what_it_publishes() {
        let bus = EventBus::in_process();
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        bus.publish(vec![event("first"), event("second")]);
        for rx in [&mut a, &mut b] {
            assert_eq!(rx.recv().await.unwrap().action, "first");
            assert_eq!(rx.recv().await.unwrap().action, "second");
        }
    }

    #[test]
    fn a_second_delivery_is_dropped_and_old_ids_are_forgotten() {
        let mut seen = Seen::default();
        let first = Uuid::now_v7();
        assert!(seen.first_time(first));
        assert!(!seen.first_time(first));
        for _ in 0..REMEMBERED {
            assert!(seen.first_time(Uuid::now_v7()));
        }
        assert_eq!(seen.ids.len(), REMEMBERED);
        assert!(seen.first_time(first), "forgotten after REMEMBERED others");
    }

    #[test]
    fn an_envelope_round_trips() {
        let envelope = Envelope {
            origin: Uuid::new_v4(),
            event: event("LOGIN_SUCCEEDED"),
        };
        let text = serde_json::to_string(&envelope).unwrap();
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.event, envelope.event);
        assert_eq!(back.origin, envelope.origin);
    }
}
