//! The SSE parser the load generator reads streams with: any bytes, cut anywhere, give the same events
//! as the whole, and never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    pushbench_server::fuzzing::sse_stream(input);
});
