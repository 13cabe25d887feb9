use super::*;

const OURS: &str = include_str!("../../../scenarios/profiles/pushbench-server.profile.toml");

fn idle() -> Idle {
    Idle {
        keepalive: Duration::from_millis(1_500),
        longpoll_hold: Duration::from_millis(20_000),
    }
}

fn ours() -> Profile {
    Profile::parse(OURS, "ours", Files::BuiltIn).unwrap()
}

/// The error of `text` with `from` replaced by `to` in the profile of our server.
fn refused(from: &str, to: &str) -> String {
    assert!(OURS.contains(from), "{from:?} is in the profile");
    Profile::parse(&OURS.replacen(from, to, 1), "t.toml", Files::BuiltIn)
        .unwrap_err()
        .to_string()
}

#[test]
fn the_cursor_goes_where_the_profile_says() {
    let nchan = Profile::nchan();
    let poll = nchan.route(Transport::Poll).unwrap();
    let cursor = [
        Some("Mon, 23 Nov 2026 06:29:36 GMT".to_owned()),
        Some("0".to_owned()),
    ];
    let (path, headers) = poll.request(&["a".into()], &cursor, idle());
    assert_eq!(path, "/poll?id=a");
    assert_eq!(
        headers,
        vec![
            ("if-modified-since".to_owned(), cursor[0].clone().unwrap()),
            ("if-none-match".to_owned(), "0".to_owned())
        ]
    );
    let ours = ours();
    let lp = ours.route(Transport::LongPoll).unwrap();
    let (path, _) = lp.request(&["a".into(), "b".into()], &[Some("41".into())], idle());
    assert_eq!(path, "/longpoll?topic=a&topic=b&timeout_ms=20000&after=41");
    let sse = ours.route(Transport::Sse).unwrap();
    assert_eq!(
        sse.request(&["a".into()], &[Some("7".into())], idle()),
        (
            "/sse?topic=a".to_owned(),
            vec![("last-event-id".to_owned(), "7".to_owned())]
        )
    );
}

#[test]
fn a_cursor_in_the_path_starts_from_its_initial_value() {
    let text = OURS.replace(
        "url = \"/stream?{topics}\"\ncursor = [{ from = \"message:/id\", to = \"query:after\" }]",
        "url = \"/events/{cursor}?{topics}\"\ncursor = [{ from = \"message:/id\", to = \"url\" }]\ncursor_initial = \"now\"",
    );
    let p = Profile::parse(&text, "t", Files::BuiltIn).unwrap();
    let stream = p.route(Transport::Stream).unwrap();
    assert_eq!(
        stream.request(&["a".into()], &[None], idle()).0,
        "/events/now?topic=a"
    );
    assert_eq!(
        stream.request(&["a".into()], &[Some("9".into())], idle()).0,
        "/events/9?topic=a"
    );
    let missing = Profile::parse(
        &text.replace("cursor_initial = \"now\"", ""),
        "t",
        Files::BuiltIn,
    )
    .unwrap_err()
    .to_string();
    assert!(
        missing.contains("`transports.stream.cursor_initial`"),
        "{missing}"
    );
}

#[test]
fn poll_answers_are_read_as_the_profile_says() {
    let ours = ours();
    let poll = ours.route(Transport::Poll).unwrap();
    let body = br#"{"events":[{"id":5,"topic":"a","ts":1,"data":"10 1 xx"},{"id":6,"topic":"a","ts":2,"data":"11 2 xx"}],"next":6}"#;
    let answer = poll.read_answer(body).unwrap();
    assert_eq!(answer.cursor.as_deref(), Some("6"));
    assert_eq!(
        answer.messages,
        vec![
            Read::Payload {
                payload: "10 1 xx".into(),
                cursor: None
            },
            Read::Payload {
                payload: "11 2 xx".into(),
                cursor: None
            }
        ]
    );
    let empty = poll.read_answer(br#"{"events":[],"next":3}"#).unwrap();
    assert!(empty.messages.is_empty() && empty.cursor.as_deref() == Some("3"));

    let nchan = Profile::nchan();
    let lp = nchan.route(Transport::LongPoll).unwrap();
    let answer = lp
        .read_answer(b"121 1 xxxx\n122 2 xxxx\r\n123 3 xxxx")
        .unwrap();
    assert_eq!(answer.messages.len(), 3);
    let one = nchan
        .route(Transport::Poll)
        .unwrap()
        .read_answer(b"7 1 x")
        .unwrap();
    assert_eq!(one.messages.len(), 1);
}

#[test]
fn a_poll_answer_that_does_not_fit_names_the_field() {
    let ours = ours();
    let poll = ours.route(Transport::Poll).unwrap();
    let e = poll.read_answer(br#"{"items":[],"next":1}"#).unwrap_err();
    assert_eq!(e.field, "transports.poll.messages");
    assert!(e.reason.contains("holds nothing"), "{e}");
    assert!(e.snippet.contains("items"), "{e}");
    let e = poll.read_answer(b"<html>").unwrap_err();
    assert_eq!(e.field, "transports.poll.body");
    let e = poll
        .read_answer(br#"{"events":[{"id":1,"payload":"x"}],"next":1}"#)
        .unwrap_err();
    assert_eq!(e.field, "message.payload");
    assert!(e.snippet.contains("payload"), "{e}");
    let e = poll.read_answer(br#"{"events":[]}"#).unwrap_err();
    assert_eq!(e.field, "transports.poll.cursor");
}

#[test]
fn wrong_profiles_are_refused_naming_the_field() {
    for (from, to, expect) in [
        (
            "url = \"/publish/{topic}\"",
            "url = \"/publish/{topik}\"",
            "field `publish.url`: unknown placeholder {topik} (known here: {topic}, {seq})",
        ),
        (
            "body = \"{payload}\"",
            "body = \"hello\"",
            "field `publish.body`: must carry {payload}",
        ),
        (
            "url = \"/sse?{topics}\"",
            "url = \"/sse\"",
            "field `transports.sse.url`: must name the topics",
        ),
        (
            "url = \"/sse?{topics}\"",
            "url = \"sse?{topics}\"",
            "field `transports.sse.url`: \"sse?{topics}\": a path",
        ),
        (
            "payload = \"/data\"",
            "payload = \"data\"",
            "field `message.payload`: \"data\" is not a JSON pointer",
        ),
        (
            "messages = \"/events\"\ncursor = [{ from = \"body:/next\"",
            "cursor = [{ from = \"body:/next\"",
            "field `transports.poll.messages`: body = \"json\" needs",
        ),
        (
            "{ from = \"sse:id\", to = \"header:Last-Event-ID\" }",
            "{ from = \"header:Last-Event-ID\", to = \"header:Last-Event-ID\" }",
            "field `transports.sse.cursor[0]`: from = \"header:Last-Event-ID\" does not fit sse",
        ),
        (
            "to = \"query:after\" }]\n\n[transports.longpoll]",
            "to = \"path\" }]\n\n[transports.longpoll]",
            "field `transports.poll.cursor[0]`: to = \"path\": query:NAME, header:NAME or url",
        ),
        (
            "url = \"http://127.0.0.1:8080\"",
            "url = \"http://127.0.0.1:8080/api\"",
            "field `server.url`",
        ),
        (
            "url = \"http://127.0.0.1:8080\"",
            "start = [\"my-server\"]",
            "field `server.start`: nothing tells the server its port",
        ),
        (
            "url = \"http://127.0.0.1:8080\"",
            "",
            "field `server`: give exactly one of",
        ),
        (
            "topics = { param = \"topic\" }",
            "topics = { param = \"topic\", join = \",\" }",
            "field `topics`",
        ),
        (
            "[transports.ws]\nurl = \"/ws?{topics}\"",
            "[transports.ws]\nurl = \"/ws?{topics}\"\nbody = \"json\"",
            "field `transports.ws.body`: only for poll and longpoll",
        ),
        (
            "[publish]\n",
            "[publish]\nmethod = \"GET\"\n",
            "field `publish.method`",
        ),
    ] {
        let e = refused(from, to);
        assert!(e.contains(expect), "{from:?} -> {to:?}: {e}");
        assert!(
            e.starts_with("profile t.toml: ") || e.contains("t.toml"),
            "{e}"
        );
    }
    // Unknown fields and transports are refused by name, with the line.
    let e = refused("[transports.ws]", "[transports.websocket]");
    assert!(e.contains("unknown transport \"websocket\""), "{e}");
    let e = refused("content_type =", "content-type =");
    assert!(e.contains("unknown field `content-type`"), "{e}");
}

#[test]
fn a_route_crosses_to_the_workers_unchanged() {
    for profile in [Profile::nchan(), ours()] {
        for route in &profile.routes {
            let json = serde_json::to_string(route).unwrap();
            assert_eq!(&serde_json::from_str::<Route>(&json).unwrap(), route);
        }
    }
}

#[test]
fn a_scenario_table_is_a_profile_too() {
    let table: toml::Table = toml::from_str(OURS).unwrap();
    assert_eq!(
        Profile::from_table(table, "[target]", Files::BuiltIn).unwrap(),
        ours()
    );
}

#[test]
fn the_files_a_profile_names_are_read_beside_it() {
    let dir = std::env::temp_dir().join(format!("profile-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("p.profile.toml");
    std::fs::write(
        &profile,
        OURS.replace(
            "url = \"http://127.0.0.1:8080\"",
            "start = [\"srv\", \"--config\", \"{dir}/srv.conf\"]\nfiles = { \"srv.conf\" = \"srv.conf.in\" }",
        ),
    )
    .unwrap();
    let missing = Profile::load(&profile).unwrap_err().to_string();
    assert!(missing.contains("srv.conf.in"), "{missing}");
    std::fs::write(dir.join("srv.conf.in"), "listen {{HOST}}:{{PORT}}\n").unwrap();
    let loaded = Profile::load(&profile).unwrap();
    let ServerSpec::Start(start) = loaded.server else {
        panic!("started")
    };
    assert_eq!(
        start.files,
        vec![("srv.conf".into(), "listen {{HOST}}:{{PORT}}\n".into())]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
