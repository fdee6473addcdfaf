//! Any licence file (TOML or JSON) and settings file: an error naming the problem or a
//! book, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sitetally_licensing::{LicenceBook, Settings};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let settings = Settings::default();
    let _ = LicenceBook::parse("fuzz.toml", text, &settings);
    let _ = LicenceBook::parse("fuzz.json", text, &settings);
    let _ = Settings::from_toml_str(text);
});
