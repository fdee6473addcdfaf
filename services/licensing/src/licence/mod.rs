//! The licence model: tenants, sites, OT site licences, Enterprise IoT coverage and
//! legacy committed-device plans, and loading them from a TOML or JSON file with errors
//! that name the offending field (`tenants[0].sites[2].licences[0].tier: ...`).
//!
//! Time rules kept here (DESIGN §3): a licence or plan change takes effect one hour after
//! confirmation; paid licences last one year; trial length is a licence field and a trial
//! can be extended in its final 15 days; a paid licence cancelled within 7 days of its
//! start is refunded pro rata.
//!
//! Layout (every public item is re-exported here, so paths stay `licence::X`):
//! - `ot`          OT site licences and sites: terms, extensions, cancellations, refunds;
//! - `legacy`      legacy committed-device plans and the commitment in force;
//! - `eiot`        a tenant's Enterprise IoT coverage and trial;
//! - `book`        tenants and the licence book, their lookups, loading, [`LicenceError`];
//! - `raw`         the document as written (serde shapes, times kept as text);
//! - `validate`    from the raw document to the book, naming the field in every error;
//! - `validate_ot` the rules for one OT licence and for the licences of one site;
//! - `fields`      reading one raw field (required, time, id) with its path in errors.

mod book;
mod eiot;
mod fields;
mod legacy;
mod ot;
mod raw;
#[cfg(test)]
mod test_support;
mod validate;
mod validate_ot;

pub use book::{toml_error, LicenceBook, LicenceError, Tenant};
pub use eiot::{EiotTrial, EnterpriseIot};
pub use legacy::{charged_device_days, commitment_at, Commitment, CommitmentTerm, LegacyOtPlan};
pub use ot::{LicenceKind, OtLicence, Site, TrialExtension};
