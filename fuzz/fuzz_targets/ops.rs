#![no_main]
//! `cargo +nightly fuzz run ops`: arbitrary operation sequences against the shadow model.

#[path = "../model.rs"]
mod model;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = model::check(&model::decode(data)) {
        panic!("{e}");
    }
});
