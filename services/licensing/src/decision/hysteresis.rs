//! Hysteresis: once a subject has reached a level (near limit, over) or needed a tier,
//! it keeps it until the count clears the boundary by a margin, so a count hovering at
//! a boundary does not raise an alert each run.

use crate::settings::Settings;
use crate::tier::{TierCatalogue, TierNeed};

/// Level 0/1/2 (within / near / over) with hysteresis: to go below a level reached
/// before, the count must clear that level's threshold by `hysteresis_ratio` of the
/// capacity. Monotone in `value` for a fixed `prev`.
pub(super) fn level(value: u64, capacity: u64, prev: Option<u8>, s: &Settings) -> (u8, bool) {
    let near = ((capacity as f64) * s.near_limit_ratio).ceil() as u64;
    let margin = ((capacity as f64) * s.hysteresis_ratio).ceil() as u64;
    let raw = if value > capacity {
        2
    } else if value >= near {
        1
    } else {
        0
    };
    let p = prev.unwrap_or(0);
    let over_thr = if p >= 2 {
        capacity.saturating_sub(margin)
    } else {
        capacity
    };
    let near_thr = if p >= 1 {
        near.saturating_sub(margin)
    } else {
        near
    };
    let lvl = if value > over_thr {
        2
    } else if value >= near_thr {
        1
    } else {
        0
    };
    (lvl, lvl != raw)
}

/// The tier to buy, with hysteresis: a site that needed `prev` keeps needing it until
/// its count is `hysteresis_ratio` below the boundary under `prev`, so a site hovering at
/// 5,000 devices does not flip between "buy XL" and "buy 2 x XL". Monotone in `value`:
/// `max(required(v), min(prev, required(v / (1 - h))))`.
pub(super) fn sticky_need(
    cat: &TierCatalogue,
    s: &Settings,
    value: u64,
    prev: Option<TierNeed>,
) -> TierNeed {
    let required = cat.required(value, s.above_xl);
    let Some(prev) = prev else {
        return required;
    };
    let inflated = ((value as f64) / (1.0 - s.hysteresis_ratio)).ceil() as u64;
    let near_prev = cat.required(inflated, s.above_xl);
    let capped = if cat.capacity(near_prev) <= cat.capacity(prev) {
        near_prev
    } else {
        prev
    };
    if cat.capacity(capped) > cat.capacity(required) {
        capped
    } else {
        required
    }
}
