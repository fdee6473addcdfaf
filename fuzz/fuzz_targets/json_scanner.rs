//! The JSON scanner only ever accepts what serde_json accepts, with the same fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sitetally_core::Report;

fuzz_target!(|data: &[u8]| {
    if let Some(fast) = sitetally_core::json_fast::decode(data) {
        let reference: Report<'_> = serde_json::from_slice(data)
            .unwrap_or_else(|e| panic!("scanner accepted what serde_json rejects: {e}"));
        assert_eq!(fast, reference);
    }
});
