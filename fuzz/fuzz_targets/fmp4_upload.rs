#![no_main]
// libFuzzer's entry point is a `no_mangle` function.
#![allow(unsafe_code)]

libfuzzer_sys::fuzz_target!(init: onair_fuzz::init(), |data: &[u8]| onair_fuzz::run(onair_fuzz::fmp4_upload, data));
