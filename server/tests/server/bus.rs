//! Several nodes sharing one feed through a real `redis-server`: every event reaches subscribers on every
//! node once, a client resumes on another node without loss, and a Redis restart loses nothing accepted.

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pushbench_common::Transport;
use reqwest::StatusCode;

use crate::client::{PATIENCE, Received, Subscriber, TestServer, event_ids};

/// A `redis-server` of our own on a free loopback port, persisting to a temporary directory (append-only
/// file, fsync always, unless `persist` is off) so that a restart keeps the stream and the id counter.
/// Killed by PID on drop.
struct TestRedis {
    port: u16,
    dir: std::path::PathBuf,
    persist: bool,
    child: Option<Child>,
}

impl TestRedis {
    fn start() -> Self {
        Self::start_with(true)
    }

    fn start_with(persist: bool) -> Self {
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("pushbench-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Self {
            port,
            dir,
            persist,
            child: None,
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                if self.persist { "yes" } else { "no" },
            ])
            .args([
                "--appendfsync",
                "always",
                "--dir",
                self.dir.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/setup installs it)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn node(redis: &TestRedis) -> TestServer {
    TestServer::start(&["--bus", &redis.url(), "--bus-key", "test"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deliver_every_event_once_to_subscribers_on_both() {
    let redis = TestRedis::start();
    let (a, b) = (node(&redis).await, node(&redis).await);
    let mut subscribers = Vec::new();
    for transport in Transport::ALL {
        subscribers.push(Subscriber::connect(&a, transport, &["shared"], None).await);
        subscribers.push(Subscriber::connect(&b, transport, &["shared"], None).await);
    }
    let mut published = Vec::new();
    for i in 0..200 {
        let via = if i % 2 == 0 { &a } else { &b };
        published.push(via.publish("shared", &format!("event {i}")).await.id);
    }
    assert!(
        published.windows(2).all(|w| w[0] < w[1]),
        "ids increase across nodes: {published:?}"
    );
    for mut subscriber in subscribers {
        assert_eq!(
            event_ids(&subscriber.collect_until(*published.last().unwrap()).await),
            published
        );
    }
}

/// A quiet feed is not an outage: the follower's blocking reads outlast their block time, and a publish
/// after the quiet is delivered by the other node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_bus_stays_up() {
    let redis = TestRedis::start();
    let (a, b) = (node(&redis).await, node(&redis).await);
    let mut sse = Subscriber::connect(&b, Transport::Sse, &["quiet"], None).await;
    // Several of the follower's 1 s blocking reads come back empty.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let id = a.publish("quiet", "after the quiet").await.id;
    assert_eq!(event_ids(&sse.collect_until(id).await), [id]);
    for server in [&a, &b] {
        let stats = server.stats().await;
        assert_eq!(stats["bus"]["outages"], 0, "{stats}");
        assert_eq!(stats["bus"]["up"], true, "{stats}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_another_node_without_loss_or_repetition() {
    let redis = TestRedis::start();
    let (a, b) = (node(&redis).await, node(&redis).await);
    for transport in Transport::ALL {
        let topic = format!("resume.{transport}");
        let mut on_a = Subscriber::connect(&a, transport, &[&topic], None).await;
        let mut published = Vec::new();
        for i in 0..60 {
            published.push(a.publish(&topic, &i.to_string()).await.id);
        }
        let mut received = event_ids(&on_a.collect_until(published[29]).await);
        let cursor = on_a.cursor;
        drop(on_a);
        let mut on_b = match transport {
            Transport::Sse => {
                Subscriber::connect_with(&b, transport, &[&topic], None, Some(cursor)).await
            }
            _ => Subscriber::connect(&b, transport, &[&topic], Some(cursor)).await,
        };
        received.extend(event_ids(
            &on_b.collect_until(*published.last().unwrap()).await,
        ));
        assert_eq!(received, published, "{transport}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_fails_publishes_loudly_and_loses_nothing_accepted() {
    let mut redis = TestRedis::start();
    let server = node(&redis).await;
    let mut sse = Subscriber::connect(&server, Transport::Sse, &["r"], None).await;
    let mut accepted = Vec::new();
    for i in 0..20 {
        accepted.push(server.publish("r", &format!("before {i}")).await.id);
    }

    redis.stop();
    let down = server
        .http
        .post(server.url("/publish/r"))
        .body("while down")
        .send()
        .await
        .unwrap();
    assert_eq!(
        down.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a publish Redis cannot store is refused"
    );
    assert!(down.text().await.unwrap().contains("not accepted"));

    redis.spawn();
    // The node reconnects by itself; publishing works again once it has.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut i = 0;
    while accepted.len() < 40 {
        let response = server
            .http
            .post(server.url("/publish/r"))
            .body(format!("after {i}"))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::OK {
            let ack: pushbench_common::wire::PublishAck = response.json().await.unwrap();
            accepted.push(ack.id);
            i += 1;
        } else {
            assert!(
                tokio::time::Instant::now() < deadline,
                "publishing never recovered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(
        accepted.windows(2).all(|w| w[0] < w[1]),
        "ids keep increasing across the restart: {accepted:?}"
    );
    // The subscriber stayed connected through the outage and got every accepted event, once.
    let received = sse.collect_until(*accepted.last().unwrap()).await;
    assert!(
        received.iter().all(|r| matches!(r, Received::Event { .. })),
        "{received:?}"
    );
    assert_eq!(event_ids(&received), accepted);
    let stats = server.stats().await;
    assert!(stats["bus"]["outages"].as_u64().unwrap() >= 1, "{stats}");
    assert!(
        stats["bus"]["publish_failures"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert_eq!(stats["bus"]["up"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_keep_increasing_when_redis_comes_back_without_its_data() {
    let mut redis = TestRedis::start_with(false);
    let server = node(&redis).await;
    let mut stream = Subscriber::connect(&server, Transport::Stream, &["e"], None).await;
    let mut accepted = Vec::new();
    for i in 0..10 {
        accepted.push(server.publish("e", &format!("before {i}")).await.id);
    }
    // Wait until the node has read its own events back, so its newest id is known to it.
    assert_eq!(
        event_ids(&stream.collect_until(*accepted.last().unwrap()).await),
        accepted
    );
    redis.stop();
    redis.spawn(); // empty: no persistence
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let after = loop {
        let response = server
            .http
            .post(server.url("/publish/e"))
            .body("after")
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::OK {
            break response
                .json::<pushbench_common::wire::PublishAck>()
                .await
                .unwrap()
                .id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "publishing never recovered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        after > *accepted.last().unwrap(),
        "id {after} reused after {accepted:?}"
    );
    // Redis restarted its ids from the clock: events acknowledged but not read before the restart may
    // be gone, and subscribers are told so, then get what follows.
    let received = stream.collect_until(after).await;
    assert!(
        matches!(received[0], Received::Gap(gap) if gap.after == *accepted.last().unwrap() && gap.resume == after),
        "{received:?}"
    );
    assert_eq!(event_ids(&received[1..]), vec![after]);
}

#[tokio::test]
async fn a_node_without_redis_refuses_to_start() {
    let port = StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = pushbench_server::Config::try_from(
        &<pushbench_server::Args as clap::Parser>::parse_from([
            "pushbench-server",
            "--bus",
            &format!("redis://127.0.0.1:{port}"),
        ]),
    )
    .unwrap();
    let error = pushbench_server::Server::start(listener, config)
        .await
        .err()
        .expect("no Redis, no server");
    assert!(
        error.to_string().contains("event bus unavailable"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_later_serves_the_history_it_loaded() {
    let redis = TestRedis::start();
    let early = node(&redis).await;
    let mut published = Vec::new();
    for i in 0..30 {
        published.push(early.publish("h", &i.to_string()).await.id);
    }
    let late = node(&redis).await;
    for transport in Transport::ALL {
        let mut subscriber =
            Subscriber::connect(&late, transport, &["h"], Some(published[9])).await;
        let received = subscriber.collect_until(*published.last().unwrap()).await;
        assert_eq!(event_ids(&received), published[10..], "{transport}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_comes_back_empty_a_new_node_publishing_first_is_delivered_everywhere() {
    let mut redis = TestRedis::start_with(false);
    let old = node(&redis).await;
    let mut stream = Subscriber::connect(&old, Transport::Stream, &["n"], None).await;
    let mut before = Vec::new();
    for i in 0..20 {
        before.push(old.publish("n", &format!("before {i}")).await.id);
    }
    assert_eq!(
        event_ids(&stream.collect_until(*before.last().unwrap()).await),
        before
    );
    redis.stop();
    redis.spawn(); // empty: no persistence
    // A node started now (a deploy, or the whole cluster restarted) publishes before the old one does.
    let new = node(&redis).await;
    let mut after = Vec::new();
    for i in 0..2 {
        after.push(new.publish("n", &format!("after {i}")).await.id);
    }
    assert!(
        after[0] > *before.last().unwrap(),
        "ids {after:?} repeat {before:?}"
    );
    // The old node's subscriber gets them (after its follower reconnects, and the notice that ids
    // restarted from the clock) ...
    let received = stream.collect_until(after[1]).await;
    assert!(matches!(received[0], Received::Gap(_)), "{received:?}");
    assert_eq!(event_ids(&received[1..]), after);
    // ... and a cursor from before, resumed on the new node, is told what it may have missed.
    for transport in Transport::ALL {
        let mut subscriber =
            Subscriber::connect(&new, transport, &["n"], Some(*before.last().unwrap())).await;
        let received = subscriber.collect_until(after[1]).await;
        assert!(
            matches!(received[0], Received::Gap(gap) if gap.after == *before.last().unwrap()),
            "{transport}: {received:?}"
        );
        assert_eq!(event_ids(&received[1..]), after, "{transport}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_publish_after_redis_is_back_is_accepted() {
    let mut redis = TestRedis::start();
    let server = node(&redis).await;
    server.publish("p", "before").await;
    redis.stop();
    redis.spawn();
    // Wait until the node's follower has reconnected: Redis is back for this node.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let stats = server.stats().await;
        if stats["bus"]["up"] == true && stats["bus"]["outages"].as_u64().unwrap() >= 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = server
        .http
        .post(server.url("/publish/p"))
        .body("after")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        response.text().await.unwrap()
    );
    assert_eq!(server.stats().await["bus"]["publish_failures"], 0);
}
