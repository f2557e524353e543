//! Any line as a control request: a request or an error message, never a panic.
#![no_main]

use appliance::api::parse_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_request(&String::from_utf8_lossy(data));
});
