//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Tributary — five event-driven systems on one platform.
///
/// Start everything on this machine with nothing installed:
///     tributary up
/// (data under ./.tributary, admin endpoints on http://127.0.0.1:9464:
/// /livez /readyz /metrics /version)
///
/// Run one service against real backends (a cluster deployment):
///     TRIBUTARY__BUS__URL=kafka://broker:9092 \
///     TRIBUTARY__SQL__URL=postgres://user:pass@db/tributary \
///     tributary serve NAME
///
/// Configuration: defaults < --config FILE (TOML) < TRIBUTARY__SECTION__KEY
/// environment variables. `tributary config` prints the effective settings.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, verbatim_doc_comment)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, short, global = true, env = "TRIBUTARY_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every service in one process on embedded defaults (SQLite, the
    /// embedded bus, a local object directory, an in-process cache) unless
    /// configuration points elsewhere. Stops gracefully on Ctrl-C.
    Up(UpArgs),
    /// Run one service (see `tributary services`), for cluster deployments.
    Serve(ServeArgs),
    /// List the services `serve` knows.
    Services,
    /// Print the effective configuration (secrets masked) and exit.
    Config,
    /// Logistics client: create|get|list|update|remove packages, tail events, bench.
    Logistics(tributary_logistics::cli::Command),
    /// Chat archive client: import|search|count|delete|users|audit|backup|restore.
    Chat(tributary_chat::cli::Command),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `up` options.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Data directory for the embedded backends (overrides `data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Service name.
    pub service: String,
}

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Produce then consume N records: raw rdkafka vs our Kafka adapter and
    /// runner on the same broker, and the embedded bus (persistence on).
    Bus(BusBenchArgs),
}

/// `bench bus` options.
#[derive(Debug, Args)]
pub struct BusBenchArgs {
    /// Kafka broker URL (`kafka://host:port`); without it only the embedded bus is measured.
    #[arg(long, env = "TRIBUTARY_BENCH_KAFKA")]
    pub kafka: Option<String>,
    /// Records per measurement.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Partitions of the bench topics.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// Sends in flight at once.
    #[arg(long, default_value_t = 50_000)]
    pub window: usize,
    /// Directory for the embedded bus file (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    // Proves the CLI definition is consistent (clap's own debug assertions).
    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
