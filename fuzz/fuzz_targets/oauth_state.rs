#![no_main]
//! See `switchboard_fuzz::oauth_state` (fuzz/src/oauth_state.rs) for the input format and the properties.

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::oauth_state::check(data));
