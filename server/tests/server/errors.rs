//! Every bad input gets a clear status and a one-line JSON error, and nothing accepted is lost.

use pushbench_common::Transport;
use pushbench_common::wire::{Control, ErrorBody};
use reqwest::{Method, StatusCode};

use crate::client::{Received, Subscriber, TestServer};

async fn expect_error(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Vec<u8>,
    status: StatusCode,
    needle: &str,
) {
    let response = server
        .http
        .request(method.clone(), server.url(path))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), status, "{method} {path}");
    let text = response.text().await.unwrap();
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    let error: ErrorBody =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"));
    assert!(
        error.error.contains(needle),
        "{method} {path}: {:?} should mention {needle:?}",
        error.error
    );
}

#[tokio::test]
async fn bad_requests_get_their_status_and_a_json_reason() {
    let server = TestServer::start(&["--max-payload", "1000"]).await;
    let ok = server.publish("kept", "accepted before the errors").await;
    let bad = StatusCode::BAD_REQUEST;
    for endpoint in ["poll", "longpoll", "stream", "sse", "ws"] {
        expect_error(
            &server,
            Method::GET,
            &format!("/{endpoint}"),
            vec![],
            bad,
            "at least one `topic=`",
        )
        .await;
        expect_error(
            &server,
            Method::GET,
            &format!("/{endpoint}?topic=a%20b"),
            vec![],
            bad,
            "may only contain",
        )
        .await;
        expect_error(
            &server,
            Method::GET,
            &format!("/{endpoint}?topic=a&after=x"),
            vec![],
            bad,
            "`after` must be a non-negative integer",
        )
        .await;
        expect_error(
            &server,
            Method::GET,
            &format!("/{endpoint}?topic=a&after=-3"),
            vec![],
            bad,
            "`after`",
        )
        .await;
        expect_error(
            &server,
            Method::GET,
            &format!("/{endpoint}?topic=a&since=3"),
            vec![],
            bad,
            "unknown query parameter",
        )
        .await;
        expect_error(
            &server,
            Method::DELETE,
            &format!("/{endpoint}?topic=a"),
            vec![],
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        )
        .await;
    }
    let long_topic = "t".repeat(129);
    expect_error(
        &server,
        Method::GET,
        &format!("/poll?topic={long_topic}"),
        vec![],
        bad,
        "at most 128",
    )
    .await;
    expect_error(
        &server,
        Method::GET,
        "/longpoll?topic=a&timeout_ms=0",
        vec![],
        bad,
        "`timeout_ms` must be between 1 and 120000",
    )
    .await;
    expect_error(
        &server,
        Method::GET,
        "/longpoll?topic=a&timeout_ms=999999",
        vec![],
        bad,
        "`timeout_ms` must be between",
    )
    .await;
    expect_error(
        &server,
        Method::GET,
        "/longpoll?topic=a&timeout_ms=soon",
        vec![],
        bad,
        "`timeout_ms` must be a non-negative integer",
    )
    .await;
    expect_error(
        &server,
        Method::GET,
        "/ws?topic=a",
        vec![],
        bad,
        "expected a WebSocket upgrade",
    )
    .await;
    let sse_bad_cursor = server
        .http
        .get(server.url("/sse?topic=a"))
        .header("Last-Event-ID", "abc")
        .send()
        .await
        .unwrap();
    assert_eq!(sse_bad_cursor.status(), bad);

    expect_error(
        &server,
        Method::POST,
        "/publish/bad%20topic",
        b"x".to_vec(),
        bad,
        "may only contain",
    )
    .await;
    expect_error(
        &server,
        Method::POST,
        "/publish/a",
        vec![b'x'; 1001],
        StatusCode::PAYLOAD_TOO_LARGE,
        "1000 bytes",
    )
    .await;
    expect_error(
        &server,
        Method::POST,
        "/publish/a",
        vec![0xff, 0xfe, 0x00],
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UTF-8",
    )
    .await;
    expect_error(
        &server,
        Method::GET,
        "/publish/a",
        vec![],
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
    )
    .await;
    expect_error(
        &server,
        Method::GET,
        "/nowhere",
        vec![],
        StatusCode::NOT_FOUND,
        "no such endpoint",
    )
    .await;
    let generator = server
        .http
        .put(server.url("/generator"))
        .json(&serde_json::json!({"rate": -1, "bytes": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(generator.status(), bad);
    assert!(
        generator
            .text()
            .await
            .unwrap()
            .contains("rate must be between")
    );
    expect_error(
        &server,
        Method::PUT,
        "/generator",
        b"{}".to_vec(),
        bad,
        "Content-Type: application/json",
    )
    .await;

    // A body sent in chunks without Content-Length is limited too.
    let chunks =
        futures_util::stream::iter((0..5).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 400])));
    let response = server
        .http
        .post(server.url("/publish/a"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Nothing accepted was lost, and nothing refused was stored.
    let mut subscriber =
        Subscriber::connect(&server, Transport::Poll, &["kept", "a"], Some(0)).await;
    let received = subscriber.collect_until(ok.id).await;
    assert_eq!(
        received,
        vec![Received::Event {
            id: ok.id,
            topic: "kept".into(),
            data: "accepted before the errors".into()
        }]
    );
    assert_eq!(server.stats().await["events_published"], 1);
}

#[tokio::test]
async fn publishing_requires_the_token_when_one_is_set() {
    let server = TestServer::start(&["--publish-token", "s3cret"]).await;
    expect_error(
        &server,
        Method::POST,
        "/publish/a",
        b"x".to_vec(),
        StatusCode::UNAUTHORIZED,
        "Bearer",
    )
    .await;
    let wrong = server
        .http
        .post(server.url("/publish/a"))
        .bearer_auth("guess")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = server
        .http
        .post(server.url("/publish/a"))
        .bearer_auth("s3cret")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);

    let mut ws = Subscriber::connect(&server, Transport::Ws, &["a"], None).await;
    let refused = ws
        .ws_request(r#"{"type":"publish","topic":"a","data":"x"}"#)
        .await;
    assert!(
        matches!(&refused, Control::Error { error } if error.contains("Bearer")),
        "{refused:?}"
    );
    let accepted = ws
        .ws_request(r#"{"type":"publish","topic":"a","data":"x","token":"s3cret"}"#)
        .await;
    assert!(matches!(accepted, Control::Published(_)), "{accepted:?}");
    let malformed = ws.ws_request(r#"{"type":"shout"}"#).await;
    assert!(
        matches!(&malformed, Control::Error { error } if error.contains("invalid frame")),
        "{malformed:?}"
    );
    let bad_topic = ws
        .ws_request(r#"{"type":"publish","topic":"a b","data":"x","token":"s3cret"}"#)
        .await;
    assert!(
        matches!(&bad_topic, Control::Error { error } if error.contains("may only contain")),
        "{bad_topic:?}"
    );
}

#[tokio::test]
async fn subscribers_past_max_connections_get_503_until_a_slot_frees() {
    let server = TestServer::start(&["--max-connections", "2"]).await;
    let first = Subscriber::connect(&server, Transport::Sse, &["a"], None).await;
    let _second = Subscriber::connect(&server, Transport::Ws, &["a"], None).await;
    for endpoint in ["poll", "stream", "sse"] {
        expect_error(
            &server,
            Method::GET,
            &format!("/{endpoint}?topic=a"),
            vec![],
            StatusCode::SERVICE_UNAVAILABLE,
            "limit of 2",
        )
        .await;
    }
    assert_eq!(server.stats().await["rejected_connections"], 3);
    drop(first);
    // The slot frees when the server notices the closed connection.
    let deadline = tokio::time::Instant::now() + crate::client::PATIENCE;
    loop {
        let status = server
            .http
            .get(server.url("/poll?topic=a"))
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::OK {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
