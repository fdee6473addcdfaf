//! Any bytes through the hot-path decoder (schema-registry header, Avro plan, JSON
//! scanner) give the same accept/reject and the same fields as the reference path
//! (serde over apache-avro's schema via serde_avro_fast, serde_json): differential.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sitetally_core::codec::Codec;
use sitetally_core::Report;

fuzz_target!(|data: &[u8]| {
    let mut fast = Codec::bundled();
    let mut reference = Codec::bundled();
    let a = fast.decode_report(data);
    let b = reference.decode_as::<Report<'_>>(data);
    match (&a, &b) {
        (Ok(x), Ok(y)) => assert_eq!(x, y, "fast and reference decoders disagree"),
        (Err(_), Err(_)) => {}
        _ => panic!("accept/reject differ: fast {a:?}, reference {b:?}"),
    }
});
