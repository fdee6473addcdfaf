//! sitetally-reconciler: compares what ingest counted with what each customer licensed,
//! decides per site and per tenant, and tells the systems that act on overruns.
//!
//! Layout:
//! - [`tier`]       tiers (XS..3XL) and the tier catalogue: sizes, the smallest tier
//!                  covering a count, stacked XL vs 2XL/3XL above 5,000 devices;
//! - [`settings`]   billing windows, thresholds and one setting per contradiction in the
//!                  licensing documents, each with its documented default;
//! - [`licence`]    tenants, sites, OT licences, Enterprise IoT coverage, legacy plans,
//!                  and the validated TOML/JSON licence file;
//! - [`count`]      error-aware counts (exact or estimated ± sigma) and the
//!                  [`count::CountSource`] trait storage implements;
//! - [`decision`]   pure decisions: status of a site / tenant for a count at a time;
//! - [`engine`]     runs decisions over all subjects, fetching exact counts when an
//!                  estimate's band straddles a boundary.
#![doc = ""]

pub mod count;
pub mod decision;
pub mod engine;
pub mod licence;
pub mod settings;
pub mod tier;
