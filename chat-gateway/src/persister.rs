//! JetStream -> Postgres: a durable pull consumer writes chat messages to `chat_messages` in
//! batches. Idempotent end to end: JetStream drops duplicate publishes by `Nats-Msg-Id`, and a
//! batch redelivered after a crash hits `ON CONFLICT DO NOTHING`. A batch is acknowledged only
//! after its transaction commits, so nothing acknowledged to a sender is lost by a restart.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use futures::StreamExt as _;
use serde::Deserialize;

use crate::protocol::ChatMessage;
use crate::state::ChatState;

const CONSUMER: &str = "persister";

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Wire {
    Message(ChatMessage),
}

/// Run until `stop` flips, writing batches as they come; errors are logged and retried.
pub async fn run(state: ChatState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let result = tokio::select! {
            r = run_once(&state) => r,
            _ = stop.changed() => return,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "persister failed; retrying in 1 s");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn run_once(state: &ChatState) -> anyhow::Result<()> {
    let stream = state.js.get_stream(&state.js_stream).await?;
    let consumer: PullConsumer = stream
        .get_or_create_consumer(
            CONSUMER,
            pull::Config {
                durable_name: Some(CONSUMER.to_owned()),
                // Explicit, not All: replicas share this consumer, and "all up to here" would also
                // acknowledge messages another replica has fetched but not yet written.
                ack_policy: AckPolicy::Explicit,
                // A replica that dies holding a batch delays it by this much; redelivery is idempotent.
                ack_wait: Duration::from_secs(5),
                max_ack_pending: 20_000,
                ..Default::default()
            },
        )
        .await?;
    loop {
        persist_batch(state, &consumer, 500, Duration::from_millis(200)).await?;
    }
}

/// Fetch up to `max` messages (waiting at most `wait`), insert them, then acknowledge.
/// Returns how many were written.
pub async fn persist_batch(
    state: &ChatState,
    consumer: &PullConsumer,
    max: usize,
    wait: Duration,
) -> anyhow::Result<usize> {
    let mut batch = consumer.fetch().max_messages(max).expires(wait).messages().await?;
    let mut msgs: Vec<ChatMessage> = Vec::new();
    let mut fetched = Vec::new();
    while let Some(m) = batch.next().await {
        let m = m.map_err(|e| anyhow::anyhow!("{e}"))?;
        match serde_json::from_slice::<Wire>(&m.payload) {
            Ok(Wire::Message(msg)) => msgs.push(msg),
            Err(e) => tracing::warn!(error = %e, "skipping a chat payload that is not a message"),
        }
        fetched.push(m);
    }
    if fetched.is_empty() {
        return Ok(0);
    }
    let n = msgs.len();
    if n > 0 {
        insert(state, &msgs).await?;
        let newest = msgs.iter().map(|m| m.ts).max().unwrap_or_else(chrono::Utc::now);
        state.metrics.persister_lag_seconds.set((chrono::Utc::now() - newest).num_milliseconds() as f64 / 1000.0);
        state.metrics.persisted.inc_by(n as u64);
    }
    for m in fetched {
        m.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
    }
    tracing::debug!(messages = n, "persisted chat batch");
    Ok(n)
}

async fn insert(state: &ChatState, msgs: &[ChatMessage]) -> anyhow::Result<()> {
    let ids: Vec<uuid::Uuid> = msgs.iter().map(|m| m.id).collect();
    let streams: Vec<uuid::Uuid> = msgs.iter().map(|m| m.stream_id.0).collect();
    let users: Vec<uuid::Uuid> = msgs.iter().map(|m| m.user.id.0).collect();
    let names: Vec<&str> = msgs.iter().map(|m| m.user.name.as_str()).collect();
    let badges: Vec<String> = msgs.iter().map(|m| m.user.badges.join(",")).collect();
    let bodies: Vec<&str> = msgs.iter().map(|m| m.text.as_str()).collect();
    let times: Vec<chrono::DateTime<chrono::Utc>> = msgs.iter().map(|m| m.ts).collect();
    sqlx::query!(
        "INSERT INTO chat_messages (id, stream_id, user_id, user_name, badges, body, created_at)
         SELECT id, s, u, n, CASE WHEN b = '' THEN '{}'::text[] ELSE string_to_array(b, ',') END, body, t
         FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::timestamptz[])
              AS x(id, s, u, n, b, body, t)
         ON CONFLICT DO NOTHING",
        &ids,
        &streams,
        &users,
        // `as`: borrowed names and bodies are text[] too, but the macro's check wants `&[String]`.
        &names as &[&str],
        &badges,
        &bodies as &[&str],
        &times,
    )
    .execute(&state.chat_db)
    .await?;
    Ok(())
}
