//! sitetally-licensing: the licensing rules, pure. Licences, tiers and settings in; counts
//! in; decisions and alerts out. No I/O, no async runtime, no broker or database client:
//! every function takes the time as a parameter and can be tested alone.
//!
//! Layout:
//! - [`tier`]     tiers (XS..3XL) and the tier catalogue: sizes, the smallest tier
//!   covering a count, stacked XL vs 2XL/3XL above 5,000 devices;
//! - [`settings`] billing windows, thresholds and one setting per contradiction in the
//!   licensing documents, each with its documented default;
//! - [`licence`]  tenants, sites, OT licences, Enterprise IoT coverage, legacy plans, and
//!   the validated TOML/JSON licence document (one submodule each);
//! - [`calendar`] the dates ahead per tenant (trial ends, renewals, service stop,
//!   retention end), from the same licence data as the decisions;
//! - [`count`]    count windows and queries, per-category counts, and the
//!   [`count::CountSource`] trait that storage (or a counts file) answers;
//! - [`counts_csv`] the counts CSV of offline runs (text in, a count source out; fuzzed);
//! - [`decision`] the status of a site / tenant / legacy plan for a count at a time, with
//!   hysteresis (one submodule per kind of subject);
//! - [`engine`]   decisions over all subjects, asking for an exact count whenever an
//!   estimate's band straddles a boundary;
//! - [`alert`]    alerts on transitions, idempotency keys, JSON/Avro encodings, and the
//!   per-subject state kept between runs;
//! - [`time`]     saturating date arithmetic (no date computation may panic);
//! - [`forecast`] least-squares trend and boundary crossing with a 95% range.

pub mod alert;
pub mod calendar;
pub mod count;
pub mod counts_csv;
pub mod decision;
pub mod engine;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod forecast;
pub mod licence;
#[cfg(test)]
mod props;
pub mod settings;
pub mod tier;
pub mod time;

pub use alert::{Alert, SubjectState};
pub use count::{
    CategoryCount, Count, CountError, CountMethod, CountQuery, CountSource, CountWindow,
};
pub use decision::{Decision, Status, Subject};
pub use licence::LicenceBook;
pub use settings::Settings;
pub use tier::{Tier, TierCatalogue, TierNeed};
