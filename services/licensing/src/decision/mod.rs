//! Decisions: given the licences, a device count and the time, what state is a site (or
//! a tenant's Enterprise IoT coverage, or a legacy plan) in, and what must be bought.
//!
//! Everything here is pure: no I/O, the time is a parameter. [`crate::engine`] feeds it
//! counts and fetches exact ones when an estimate is too close to call.
//!
//! Status functions are monotone in the count for a fixed licence, previous status and
//! time, so "the band straddles a boundary" is exactly "the band's two ends decide
//! differently" ([`Outcome::same_decision`]).
//!
//! Layout (every item is re-exported here, so paths stay `decision::X`):
//! - `subject`    what a decision is about, and its storage key;
//! - `status`     statuses, transition keys and day counters;
//! - `outcome`    the outcome of one count value, the stored decision, utilisation;
//! - `hysteresis` levels and tiers to buy that hold until a count clears a margin;
//! - `site`       OT sites: coverage lookup, paid, trial, legacy plan, grace and retention;
//! - `eiot`       Enterprise IoT against E5 + standalone licences or a trial;
//! - `legacy`     legacy committed-device plans (OT and Enterprise IoT).

mod eiot;
mod hysteresis;
mod legacy;
mod outcome;
mod site;
mod status;
mod subject;
#[cfg(test)]
pub(crate) mod test_support;

pub use crate::time::{minus_days, plus_days};
pub use eiot::{decide_eiot, eiot_covered, round_up_100};
pub use legacy::{decide_commitment, decide_legacy_eiot, decide_legacy_ot};
pub use outcome::{utilisation, Coverage, Decision, Outcome};
pub use site::{decide_site, SiteContext};
pub use status::{days_left, Status};
pub use subject::Subject;
