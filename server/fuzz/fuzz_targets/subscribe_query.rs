//! Subscription query parsing (topics, cursor, long-poll hold): any text, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|query: &str| {
    pushbench_server::fuzzing::subscribe_query(query);
});
