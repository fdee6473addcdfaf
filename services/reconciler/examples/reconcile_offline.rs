//! Offline reconciliation, as `sitetally reconcile --licences FILE --counts FILE` does it.
//!
//! cargo run -p sitetally-reconciler --example reconcile_offline -- \
//!     --licences services/reconciler/examples/licences.toml \
//!     --counts services/reconciler/examples/counts.csv --now 2025-06-01T00:00:00Z

use clap::Parser;
use sitetally_reconciler::ReconcileArgs;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: ReconcileArgs,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    match cli.args.run_offline().await {
        Ok((out, code)) => {
            print!("{out}");
            std::process::exit(code);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(sitetally_reconciler::offline::EXIT_USAGE);
        }
    }
}
