#![no_main]
//! See `switchboard_fuzz::jsonrpc` (fuzz/src/jsonrpc.rs) for the input format and the properties.

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::jsonrpc::check(data));
