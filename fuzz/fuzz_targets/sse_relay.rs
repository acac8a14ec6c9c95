#![no_main]
//! See `switchboard_fuzz::sse_relay` (fuzz/src/sse_relay.rs) for the input format and the properties.

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::sse_relay::check(data));
