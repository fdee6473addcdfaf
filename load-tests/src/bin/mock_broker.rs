//! librdkafka's in-process mock cluster hosted in its own process, as the broker every
//! drain contender reads from (Tansu is too slow for throughput runs). Prints
//! `bootstrap=<servers>` once ready; exits when its standard input closes.
//!
//! `mock_broker --topic device-discoveries --partitions 4`

use clap::Parser;
use rdkafka::mocking::MockCluster;
use std::io::Read;

#[derive(Parser)]
struct Args {
    /// Topics to create (repeatable).
    #[arg(long, default_value = "device-discoveries")]
    topic: Vec<String>,
    #[arg(long, default_value_t = 4)]
    partitions: i32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster = MockCluster::new(1)?;
    for t in &args.topic {
        cluster.create_topic(t, args.partitions, 1)?;
    }
    println!("bootstrap={}", cluster.bootstrap_servers());
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink); // lives until the parent closes stdin
    Ok(())
}
