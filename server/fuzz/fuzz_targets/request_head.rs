//! The direct path's request-head parsing: any bytes, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|head: &[u8]| {
    pushbench_server::fuzzing::request_head(head);
});
