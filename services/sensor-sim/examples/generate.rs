//! Generates a simulated stream in memory and prints its shape and the generation rate.
//!
//! `cargo run --release -p sitetally-sensor-sim --example generate -- [sites] [max_size] [events]`
//! (defaults: 100 sites of 5..=20,000 devices, 300,000 events).

use sitetally_sensor_sim::{EventStream, MessageKind, SimConfig, SizeProfile, World};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (sites, max, events) = (
        arg(1, 100) as usize,
        arg(2, 20_000) as u32,
        arg(3, 300_000) as usize,
    );
    let mut config = SimConfig::new(42, sites);
    config.sizes = SizeProfile::Realistic { min: 5, max };
    config.endless = true;
    if let Some(f) = std::env::args().nth(4).and_then(|a| a.parse().ok()) {
        config.avro_fraction = f;
    }
    let start = Instant::now();
    let world = Arc::new(World::new(config).expect("valid settings"));
    let built = start.elapsed();
    let now_ms = 1_795_424_400_000;
    let start = Instant::now();
    let (mut bytes, mut valid) = (0usize, 0usize);
    for m in EventStream::new(world.clone(), now_ms).take(events) {
        bytes += m.payload.len();
        valid += usize::from(m.kind == MessageKind::Valid);
    }
    let took = start.elapsed();
    println!(
        "world: {} sites, {} devices, {} planned messages (built in {built:?})",
        world.sites.len(),
        world.devices.len(),
        world.planned_messages()
    );
    println!(
        "{events} messages ({valid} valid, {bytes} bytes) in {took:?}: {:.0} messages/s",
        events as f64 / took.as_secs_f64()
    );
}
