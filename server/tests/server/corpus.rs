//! Replays the fuzz corpora (`server/fuzz/corpus/<target>/`) through the same entry points the fuzz
//! targets call, so every input the fuzzer ever kept — crashes it found among them — stays tested
//! without libFuzzer.

use std::path::Path;

use pushbench_server::fuzzing;

/// Every file of one target's corpus; at least `min` of them, so an emptied corpus fails.
fn corpus(target: &str, min: usize) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(
        inputs.len() >= min,
        "{}: {} inputs",
        dir.display(),
        inputs.len()
    );
    inputs
}

/// Runs `parses` over a target's corpus and checks that the corpus reaches both outcomes; text targets
/// skip inputs that are not UTF-8, as their fuzz targets do.
fn both_outcomes(target: &str, parses: impl Fn(&[u8]) -> Option<bool>) {
    let inputs = corpus(target, 10);
    let outcomes: Vec<bool> = inputs.iter().filter_map(|input| parses(input)).collect();
    let accepted = outcomes.iter().filter(|&&ok| ok).count();
    assert!(
        accepted > 0 && accepted < outcomes.len(),
        "{target}: {accepted} of {} accepted",
        outcomes.len()
    );
}

#[test]
fn request_heads_of_the_corpus_parse_or_go_to_hyper() {
    both_outcomes("request_head", |head| Some(fuzzing::request_head(head)));
}

#[test]
fn subscribe_queries_of_the_corpus_parse_or_are_refused() {
    both_outcomes("subscribe_query", |bytes| {
        Some(fuzzing::subscribe_query(std::str::from_utf8(bytes).ok()?).0)
    });
}

#[test]
fn websocket_frames_of_the_corpus_are_publishes_or_errors() {
    both_outcomes("client_message", |bytes| {
        Some(fuzzing::client_message(std::str::from_utf8(bytes).ok()?))
    });
}

#[test]
fn sse_streams_of_the_corpus_parse_the_same_however_cut() {
    for input in corpus("sse_stream", 10) {
        fuzzing::sse_stream(&input);
    }
}
