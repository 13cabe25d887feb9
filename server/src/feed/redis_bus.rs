//! The Redis backplane: several server nodes share one feed through a Redis Stream.
//!
//! # How it works
//! - **Publish** runs one Lua script that takes the next id from a counter (`INCR {key}:id`) and appends
//!   the event to the stream `{key}` under the entry id `0-<id>`, trimmed to about `--replay-events`
//!   entries (`MAXLEN ~`). Ids are therefore server-wide and strictly increasing across nodes, and an
//!   event is acknowledged only once Redis holds it. If Redis is unreachable the publish fails (503):
//!   nothing is acknowledged that is not stored.
//! - **Every node follows the stream** with `XREAD BLOCK` on a connection of its own and appends each
//!   entry to its local [replay log](super::ReplayLog), which its subscribers read exactly as with the
//!   embedded feed. The transports do not know which feed runs.
//! - **Start**: a node loads the newest `--replay-events` entries, so a client can resume on any node
//!   from a cursor another node gave it. Redis unreachable at start is an error.
//! - **Outage**: subscribers stay connected; the follower retries every [`RETRY`] and, when Redis is
//!   back, reads on from the last id it had, so nothing published before the outage is skipped. If the
//!   stream was trimmed past that id meanwhile, the missed range is marked evicted and subscribers get
//!   the gap notice. A Redis that comes back without its data (no AOF or RDB) has no counter: the next
//!   publish, or the next node to start, restarts it from the clock (Unix µs, where the embedded feed's
//!   ids start too), above every id handed out before, so ids only increase whichever node publishes
//!   first. Events that were acknowledged but that no node had read yet are lost with such a Redis, and
//!   every node's subscribers get a gap notice for the jump: run Redis with persistence.
//! - **Trimming**: Redis keeps about `--replay-events` entries (approximate trimming lets Redis drop
//!   whole macro-nodes, which is much cheaper); each node's local log keeps exactly `--replay-events`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use pushbench_common::Topic;
use pushbench_common::wire::PublishAck;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, AsyncConnectionConfig};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::log::clock_origin;
use super::{Feed, FeedError};

/// Pause between reconnection attempts while Redis is down.
const RETRY: Duration = Duration::from_millis(500);
/// How long one `XREAD` blocks before it is issued again (also bounds how late shutdown is noticed).
const BLOCK: Duration = Duration::from_millis(1000);
/// Most entries one `XREAD` returns.
const READ_COUNT: usize = 1000;

/// `KEYS[1]` stream, `KEYS[2]` id counter; `ARGV` topic, ts, data, approximate max length, the publishing
/// node's newest id, and where a missing counter starts (the larger of that id and the clock, in µs).
/// The counter never hands out an id at or below the node's newest, and a Redis that came back from a
/// restart without its data restarts it from the clock, above every id handed out before, so ids keep
/// increasing for every node, whichever publishes first. Ids are formatted with `%d`: Lua's default
/// number format would write a 16-digit id as `1.8e+15`.
const PUBLISH_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], ARGV[6])
end
local id = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[5])
if id <= floor then
  id = floor + 1
  redis.call('SET', KEYS[2], string.format('%d', id))
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '0-' .. string.format('%d', id), 'topic', ARGV[1], 'ts', ARGV[2], 'data', ARGV[3])
return id
";

/// State of the connection to Redis, for metrics.
#[derive(Debug, Default)]
pub struct BusStatus {
    up: AtomicBool,
    outages: AtomicU64,
    publish_failures: AtomicU64,
}

impl BusStatus {
    /// Whether the follower is connected.
    pub fn is_up(&self) -> bool {
        self.up.load(Relaxed)
    }

    /// Times the connection was lost.
    pub fn outages(&self) -> u64 {
        self.outages.load(Relaxed)
    }

    /// Publishes refused because Redis did not take them.
    pub fn publish_failures(&self) -> u64 {
        self.publish_failures.load(Relaxed)
    }

    fn set_up(&self, up: bool) {
        if self.up.swap(up, Relaxed) && !up {
            self.outages.fetch_add(1, Relaxed);
        }
    }
}

/// A node's handle on the shared stream: publishing, and the facts the follower needs.
pub struct RedisBus {
    client: redis::Client,
    publisher: ConnectionManager,
    script: redis::Script,
    stream_key: String,
    counter_key: String,
    max_len: usize,
    /// Connection state, shown in `/metrics`.
    pub status: Arc<BusStatus>,
}

/// The follower's connection: its reads block for [`BLOCK`] when nothing is published, so it must wait
/// longer than that for an answer (the client's default of 500 ms would call every quiet second an
/// outage and reconnect).
fn follower_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(BLOCK + Duration::from_secs(2)))
}

/// One entry of the stream, decoded.
struct Entry {
    id: u64,
    topic: Topic,
    ts: u64,
    data: String,
}

impl RedisBus {
    /// Connects (failing if Redis is unreachable) and prepares publishing.
    pub async fn connect(url: &str, key: &str, max_len: usize) -> Result<Self, FeedError> {
        let client = redis::Client::open(url).map_err(|e| FeedError::Bus(format!("{url}: {e}")))?;
        // Few retries: a node that cannot reach Redis at start should say so at once, and a publish during
        // an outage should fail fast (503) rather than hang; the manager keeps reconnecting in between.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_max_delay(RETRY)
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let publisher = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| FeedError::Bus(format!("{url}: {e}")))?;
        Ok(Self {
            client,
            publisher,
            script: redis::Script::new(PUBLISH_SCRIPT),
            stream_key: key.to_owned(),
            counter_key: format!("{key}:id"),
            max_len,
            status: Arc::new(BusStatus {
                up: AtomicBool::new(true),
                ..BusStatus::default()
            }),
        })
    }

    /// Appends an event to the shared stream; its id comes back from Redis, above `floor` (the newest id
    /// this node has seen).
    pub async fn publish(
        &self,
        topic: &Topic,
        data: &str,
        ts: u64,
        floor: u64,
    ) -> Result<PublishAck, FeedError> {
        let mut connection = self.publisher.clone();
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(&self.stream_key)
            .key(&self.counter_key)
            .arg(topic.as_str())
            .arg(ts)
            .arg(data)
            .arg(self.max_len)
            .arg(floor)
            .arg(floor.max(clock_origin()));
        let mut id: Result<u64, _> = invocation.invoke_async(&mut connection).await;
        // After Redis restarts, the first write goes to the old, dead connection and fails with a broken
        // pipe while the manager reconnects. Nothing reached Redis, so sending it once more cannot
        // publish twice; any other failure might have, and is the client's to retry.
        if id.as_ref().is_err_and(never_sent) {
            id = invocation.invoke_async(&mut connection).await;
        }
        id.map(|id| PublishAck { id, ts }).map_err(|e| {
            self.status.publish_failures.fetch_add(1, Relaxed);
            FeedError::Bus(e.to_string())
        })
    }

    /// The newest `count` entries and the counter's value: a new node's starting window.
    pub async fn history(
        &self,
        count: usize,
    ) -> Result<(Vec<(u64, Topic, u64, String)>, u64), FeedError> {
        let mut connection = self.publisher.clone();
        // An empty Redis (first start, or restarted without its data) gets its counter from the clock,
        // so the ids of this run start above those of any earlier one (see `clock_origin`).
        let _: redis::Value = redis::cmd("SET")
            .arg(&self.counter_key)
            .arg(clock_origin())
            .arg("NX")
            .query_async(&mut connection)
            .await
            .map_err(|e| FeedError::Bus(e.to_string()))?;
        let newest: StreamRangeReply = connection
            .xrevrange_count(&self.stream_key, "+", "-", count)
            .await
            .map_err(|e| FeedError::Bus(e.to_string()))?;
        let counter: Option<u64> = connection
            .get(&self.counter_key)
            .await
            .map_err(|e| FeedError::Bus(e.to_string()))?;
        let mut entries: Vec<_> = newest
            .ids
            .iter()
            .filter_map(decode)
            .map(|e| (e.id, e.topic, e.ts, e.data))
            .collect();
        entries.reverse();
        Ok((entries, counter.unwrap_or(0)))
    }

    /// Follows the stream from `last` into `feed` until `shutdown`, reconnecting after every failure.
    pub async fn follow(self: Arc<Self>, feed: Feed, mut last: u64, shutdown: CancellationToken) {
        let options = StreamReadOptions::default()
            .block(BLOCK.as_millis() as usize)
            .count(READ_COUNT);
        let config = follower_config();
        loop {
            let connected = tokio::select! {
                () = shutdown.cancelled() => return,
                connected = self.client.get_multiplexed_async_connection_with_config(&config) => connected,
            };
            let mut connection: MultiplexedConnection = match connected {
                Ok(connection) => connection,
                Err(e) => {
                    self.status.set_up(false);
                    warn!(error = %e, "redis unreachable; retrying");
                    tokio::select! { () = shutdown.cancelled() => return, () = tokio::time::sleep(RETRY) => continue }
                }
            };
            loop {
                let (keys, ids) = ([&self.stream_key], [format!("0-{last}")]);
                let read: redis::RedisResult<Option<StreamReadReply>> = tokio::select! {
                    () = shutdown.cancelled() => return,
                    read = connection.xread_options(&keys, &ids, &options) => read,
                };
                let reply = match read {
                    Ok(reply) => reply,
                    Err(e) => {
                        self.status.set_up(false);
                        warn!(error = %e, "lost redis; subscribers stay connected, retrying");
                        break;
                    }
                };
                if !self.status.is_up() {
                    info!(last, "redis is back; reading on from the last id");
                }
                self.status.set_up(true);
                // One lock for the whole reply: a burst of publishes costs subscribers one wake-up.
                let mut fresh = Vec::new();
                for entry in reply
                    .into_iter()
                    .flat_map(|r| r.keys)
                    .flat_map(|k| k.ids)
                    .filter_map(|e| decode(&e))
                {
                    if entry.id <= last {
                        continue;
                    }
                    if entry.id > last + 1 {
                        warn!(
                            from = last + 1,
                            to = entry.id - 1,
                            "events were trimmed from redis before this node read them"
                        );
                    }
                    last = entry.id;
                    fresh.push((entry.id, entry.topic, entry.ts, entry.data));
                }
                feed.append_replicated(fresh);
            }
        }
    }
}

/// Whether a command failed before any of it reached Redis (writing to a connection already closed).
/// redis-rs keeps the `io::Error` behind an `Arc` that cannot be downcast, so its kind is recognised by
/// the text std gives it; a reset or an end of file while waiting for the answer does not count, since
/// Redis may have run the command.
fn never_sent(error: &redis::RedisError) -> bool {
    let broken_pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe).to_string();
    error.is_connection_dropped()
        && std::error::Error::source(error).is_some_and(|source| source.to_string() == broken_pipe)
}

/// Decodes an entry written by [`PUBLISH_SCRIPT`]; anything else in the stream is ignored.
fn decode(entry: &StreamId) -> Option<Entry> {
    let id = entry.id.strip_prefix("0-")?.parse().ok()?;
    let field =
        |name: &str| -> Option<String> { redis::from_redis_value_ref(entry.map.get(name)?).ok() };
    Some(Entry {
        id,
        topic: Topic::parse(&field("topic")?).ok()?,
        ts: field("ts")?.parse().ok()?,
        data: field("data")?,
    })
}
