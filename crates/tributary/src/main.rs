//! `tributary`: every Tributary service in one binary.
//!
//! `tributary up` runs them all in one process on embedded defaults;
//! `tributary serve NAME` runs one against real backends; other subcommands
//! are clients and tools. Thin: parse, build, run. The systems come from
//! the one list in [`systems`].

mod bench;
mod bench_docs;
mod bench_imports;
mod bench_shop;
mod cli;
mod run;
mod systems;

/// mimalloc instead of glibc malloc: the services allocate many short-lived
/// records (JSON values, messages, batches) across threads. Measured with
/// `tributary bench imports --scale 10` on PostgreSQL + Kafka + S3: upload
/// to completed 42.6 s instead of 55.1 s (glibc spent a third of the shop
/// join bench's busiest thread in malloc/free/consolidate).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // One rustls provider for every TLS client of the process (PostgreSQL,
    // Redis, S3), before any of them starts.
    tributary_storage::install_crypto_provider();
    let systems = systems::all();
    let invocation = cli::parse(&systems);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::main(invocation, systems)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line per cause, outermost first: "what failed: why".
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
