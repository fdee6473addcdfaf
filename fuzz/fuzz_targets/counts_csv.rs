//! Any counts CSV (`reconcile --counts FILE`): an error naming the file, or counts that
//! keep the reader's promises (each tenant/site/category once, no count above the
//! representable maximum, an exact count never above its row's count bound), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sitetally_licensing::count::MAX_DEVICES;
use sitetally_licensing::counts_csv::read_counts_csv;
use std::collections::HashSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match read_counts_csv(text, "fuzz.csv") {
        Err(e) => assert!(e.0.contains("fuzz.csv"), "error without the file: {e}"),
        Ok(counts) => {
            let mut keys = HashSet::new();
            for c in &counts.counts {
                assert!(
                    keys.insert((c.tenant.clone(), c.site.clone(), c.category)),
                    "a row twice: {}/{}/{:?}",
                    c.tenant,
                    c.site,
                    c.category
                );
                assert!(c.count.value <= MAX_DEVICES, "count above the maximum");
            }
            for exact in counts.exact.values() {
                assert!(*exact <= MAX_DEVICES, "exact count above the maximum");
            }
        }
    }
});
