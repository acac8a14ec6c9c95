#![no_main]
//! See `switchboard_fuzz::sealed_session` (fuzz/src/sealed_session.rs) for the input format and the properties.

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::sealed_session::check(data));
