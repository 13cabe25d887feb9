//! Replays the fuzz corpora (`server/fuzz/corpus/<target>/`) through the same entry points the fuzz
//! targets call, so every input the fuzzer ever kept — crashes it found among them — stays tested
//! without libFuzzer.

use std::path::Path;

use pushbench_server::fuzzing;

/// Every file of one target's corpus; at least `min` of them, so an emptied corpus fails.
fn corpus(target: &str, min: usize) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(inputs.len() >= min, "{}: {} inputs", dir.display(), inputs.len());
    inputs
}

#[test]
fn request_heads_of_the_corpus_parse_or_go_to_hyper() {
    let inputs = corpus("request_head", 10);
    let direct = inputs.iter().filter(|head| fuzzing::request_head(head)).count();
    // The corpus reaches both outcomes.
    assert!(direct > 0 && direct < inputs.len(), "{direct} of {}", inputs.len());
}

#[test]
fn subscribe_queries_of_the_corpus_parse_or_are_refused() {
    let inputs = corpus("subscribe_query", 10);
    let valid = inputs
        .iter()
        .filter_map(|bytes| std::str::from_utf8(bytes).ok())
        .filter(|query| fuzzing::subscribe_query(query).0)
        .count();
    assert!(valid > 0 && valid < inputs.len(), "{valid} of {}", inputs.len());
}

#[test]
fn websocket_frames_of_the_corpus_are_publishes_or_errors() {
    let inputs = corpus("client_message", 10);
    let valid = inputs
        .iter()
        .filter_map(|bytes| std::str::from_utf8(bytes).ok())
        .filter(|text| fuzzing::client_message(text))
        .count();
    assert!(valid > 0 && valid < inputs.len(), "{valid} of {}", inputs.len());
}

#[test]
fn sse_streams_of_the_corpus_parse_the_same_however_cut() {
    for input in corpus("sse_stream", 10) {
        fuzzing::sse_stream(&input);
    }
}
