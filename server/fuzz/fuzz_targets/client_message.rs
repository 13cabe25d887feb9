//! WebSocket publish frames: any text, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    pushbench_server::fuzzing::client_message(text);
});
