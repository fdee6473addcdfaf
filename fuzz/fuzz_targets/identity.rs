//! MAC and IP parsing and device identity on any text: never a panic; an accepted MAC
//! re-parses to itself from its canonical form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sitetally_core::identity::{identify, Mac};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\n');
    let macs: Vec<&str> = parts.next().unwrap_or("").split(',').collect();
    let ips: Vec<&str> = parts.next().unwrap_or("").split(',').collect();
    let zone = parts.next();
    let device_id = parts.next();
    let _ = identify(macs.iter().copied(), ips.iter().copied(), zone, "sensor", device_id);
    for m in &macs {
        if let Some(mac) = Mac::parse(m) {
            let canonical = mac.to_string();
            assert_eq!(Mac::parse(&canonical), Some(mac), "{m:?} -> {canonical}");
        }
    }
});
