//! The pipeline alone: decode ▶ validate ▶ identity ▶ dedup ▶ rows on pre-encoded messages
//! in memory, one thread. Prints events/s per core and the mix it saw.
//!
//! `cargo run --release -p sitetally-load-tests --bin pipeline_alone -- --events 5000000`

use clap::Parser;
use sitetally_core::codec::Codec;
use sitetally_core::{Outcome, Pipeline, PipelineConfig};
use sitetally_load_tests::{now_ms, workload, Stopwatch};

/// The allocator the `sitetally` binary runs with (see its main.rs), so the pipeline is
/// measured as shipped.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
struct Args {
    /// Messages to run through the pipeline.
    #[arg(long, default_value_t = 5_000_000)]
    events: usize,
    /// Sites in the simulated workload.
    #[arg(long, default_value_t = 100)]
    sites: usize,
    /// Repetitions (best one reported, all printed).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

fn main() {
    let args = Args::parse();
    let now = now_ms();
    eprintln!(
        "pre-encoding {} messages from the simulator ...",
        args.events
    );
    // One contiguous buffer, as librdkafka holds the messages of a fetch response; a
    // separate allocation per message made the figures depend on where the allocator put
    // them (glibc vs jemalloc: ~15% apart on the same pipeline).
    let mut arena = Vec::new();
    let mut spans = Vec::with_capacity(args.events);
    for m in workload(7, args.sites, now).take(args.events) {
        let start = arena.len();
        arena.extend_from_slice(&m.payload);
        spans.push(start..arena.len());
    }
    let bytes = arena.len();
    let messages = || spans.iter().map(|span| &arena[span.clone()]);
    let mut best = 0f64;
    for run in 0..args.runs {
        let mut p = Pipeline::new(&PipelineConfig::default(), Codec::bundled());
        let mut rows = 0u64;
        let sw = Stopwatch::start("thread-self");
        for m in messages() {
            if let Outcome::New(row) = p.process(m, now) {
                rows += 1;
                std::hint::black_box(row);
            }
        }
        let m = sw.stop(spans.len() as u64);
        let rate = m.events_per_sec();
        best = best.max(rate);
        let (entries, dedup_bytes) = p.memory();
        eprintln!(
            "run {run}: {} events ({} MB) in {:.2?}: {:.2} M events/s wall, {:.2} M events per CPU-second, {:.0} ns/event; rows {rows}; dedup {entries} entries in {dedup_bytes} bytes ({:.1} B each); {:?}",
            m.events, bytes / 1_000_000, m.wall, rate / 1e6, m.events_per_cpu_sec() / 1e6, 1e9 / rate,
            dedup_bytes as f64 / entries.max(1) as f64, p.stats
        );
    }
    println!(
        "{{\"bench\":\"pipeline_alone\",\"events\":{},\"best_events_per_sec\":{best:.0}}}",
        spans.len()
    );
}
