//! Command-line interface: the built-in commands here, plus one client
//! subcommand per system (`tributary chat ...`, `tributary logistics ...`)
//! added from the system list at start.

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use tributary_runtime::System;

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
///     tributary serve NAME [NAME...]
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

/// Built-in subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every service in one process on embedded defaults (SQLite, the
    /// embedded bus, a local object directory, an in-process cache) unless
    /// configuration points elsewhere. A failing service is restarted with
    /// backoff; the others keep running. Stops gracefully on Ctrl-C.
    Up(UpArgs),
    /// Run one service (see `tributary services`), for cluster deployments;
    /// exits non-zero when the service fails.
    Serve(ServeArgs),
    /// List the services `serve` knows.
    Services(ListArgs),
    /// Apply every system's database migrations and exit (each system in
    /// its own namespace, under a lock: safe next to running services).
    Migrate(ListArgs),
    /// Print the effective configuration (secrets masked) and exit.
    Config,
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
    /// Service names (`tributary services` lists them); several run in one
    /// process, e.g. `serve docs-executor docs-outbox`.
    #[arg(required = true, num_args = 1..)]
    pub services: Vec<String>,
}

/// Options of listing commands.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Produce then consume N records: raw rdkafka vs our Kafka adapter and
    /// runner on the same broker, and the embedded bus (persistence on).
    Bus(BusBenchArgs),
    /// The document-update executor on a generated stream: raw rdkafka
    /// passthrough vs ours on Kafka vs quixstreams, and ours on the embedded
    /// defaults; each of ours checked against the reference merge.
    Docs(DocsBenchArgs),
    /// File imports on a generated companies file: `psql \copy` into one
    /// jsonb column (the floor) vs dlt vs ours (upload to `completed` through
    /// the spawned services) on one PostgreSQL, and ours on the embedded
    /// stack; seconds, MB/s, records/s and peak RSS of each.
    Imports(Box<ImportsBenchArgs>),
}

/// `bench imports` options.
#[derive(Debug, Args)]
pub struct ImportsBenchArgs {
    /// PostgreSQL server URL (`postgres://user@host:port/db`, any existing
    /// database); a fresh database is created on it for a), b) and c) and
    /// dropped afterwards. Without it only d) (embedded) is measured.
    #[arg(long, env = "TRIBUTARY_BENCH_POSTGRES")]
    pub sql: Option<String>,
    /// Kafka broker URL (`kafka://host:port`) of c).
    #[arg(long, env = "TRIBUTARY_BENCH_KAFKA")]
    pub kafka: Option<String>,
    /// S3 endpoint (`http://host:port`) of c); without it c) stores uploads in a local directory.
    #[arg(long, env = "TRIBUTARY_BENCH_S3")]
    pub s3: Option<String>,
    /// S3 bucket (a prefix of its own is used and emptied afterwards).
    #[arg(
        long,
        env = "TRIBUTARY_BENCH_S3_BUCKET",
        default_value = "tributary-test"
    )]
    pub s3_bucket: String,
    /// S3 region.
    #[arg(long, env = "TRIBUTARY_BENCH_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// S3 access key id.
    #[arg(long, env = "TRIBUTARY_BENCH_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key.
    #[arg(
        long,
        env = "TRIBUTARY_BENCH_S3_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub s3_secret_access_key: Option<String>,
    /// Records of the file at scale 1 (the real `companies.json` has about 18,800).
    #[arg(long, default_value_t = 18_800)]
    pub records: u64,
    /// Multiplies `--records` (`--scale 10`: the 10x file).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Mean bytes of each record's generated HTML `overview` (the real
    /// overviews are long; 1750 brings 18,800 records to the real ~75 MB).
    #[arg(long, default_value_t = 1750)]
    pub overview_bytes: usize,
    /// Share of invalid records (rejected by ours, loaded by the peers).
    #[arg(long, default_value_t = 0.0)]
    pub invalid: f64,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Processor batch size (`imports.batch_size`; default: the service's).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// The psql program.
    #[arg(long, default_value = "psql")]
    pub psql: PathBuf,
    /// Python with dlt installed (e.g. a venv's bin/python); runs b).
    #[arg(long, env = "TRIBUTARY_BENCH_DLT_PYTHON")]
    pub dlt_python: Option<PathBuf>,
    /// The dlt script.
    #[arg(long, default_value = "scripts/bench/imports_dlt.py")]
    pub dlt_script: PathBuf,
    /// Skip d) (ours on the embedded stack).
    #[arg(long)]
    pub no_sqlite: bool,
    /// Directory for the file and the runs' data (default: a temporary one, removed).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the database and the file.
    #[arg(long)]
    pub keep: bool,
}

/// `bench docs` options.
#[derive(Debug, Args)]
pub struct DocsBenchArgs {
    /// Kafka broker URL (`kafka://host:port`); without it only the embedded run is measured.
    #[arg(long, env = "TRIBUTARY_BENCH_KAFKA")]
    pub kafka: Option<String>,
    /// Database of the Kafka run (an empty one; default: a temporary SQLite file).
    #[arg(long)]
    pub sql: Option<String>,
    /// Cache of the Kafka run (`redis://host:port`; keys under a unique
    /// prefix); default: the in-process cache.
    #[arg(long)]
    pub redis: Option<String>,
    /// Distinct urls.
    #[arg(long, default_value_t = 100_000)]
    pub urls: usize,
    /// Updates in total, duplicates included.
    #[arg(long, default_value_t = 1_000_000)]
    pub updates: usize,
    /// Fraction of exact duplicates.
    #[arg(long, default_value_t = 0.2)]
    pub duplicates: f64,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Partitions of the input topic.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// Executor batch size (`docs.batch_max`).
    #[arg(long, default_value_t = 1000)]
    pub batch_max: usize,
    /// Python with quixstreams installed (e.g. a venv's bin/python); runs c).
    #[arg(long, env = "TRIBUTARY_BENCH_QUIX_PYTHON")]
    pub quix_python: Option<PathBuf>,
    /// The quixstreams script.
    #[arg(long, default_value = "scripts/bench/docs_quixstreams.py")]
    pub quix_script: PathBuf,
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

/// What the command line asked for.
#[derive(Debug)]
pub enum Invocation {
    /// A built-in command.
    Builtin(Cli),
    /// A system's client subcommand: the system's name and its arguments.
    System {
        /// `--config`, when given.
        config: Option<PathBuf>,
        /// The system's name.
        name: &'static str,
        /// The system subcommand's own arguments.
        matches: clap::ArgMatches,
    },
}

/// The whole command: the built-ins plus every system's subcommand.
pub fn command(systems: &[System]) -> clap::Command {
    let mut cmd = Cli::command();
    for sys in systems {
        if let Some(cli) = &sys.cli {
            cmd = cmd.subcommand(cli.command(sys.name, sys.about));
        }
    }
    cmd
}

/// Parses the process's arguments (exits with clap's message on error).
pub fn parse(systems: &[System]) -> Invocation {
    let matches = command(systems).get_matches();
    if let Some((name, sub)) = matches.subcommand() {
        if let Some(sys) = systems.iter().find(|s| s.name == name && s.cli.is_some()) {
            return Invocation::System {
                config: matches.get_one::<PathBuf>("config").cloned(),
                name: sys.name,
                matches: sub.clone(),
            };
        }
    }
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => Invocation::Builtin(cli),
        Err(e) => e.exit(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the CLI definition, with every system's subcommand, is consistent (clap's own debug assertions).
    #[test]
    fn cli_is_consistent() {
        command(&crate::systems::all()).debug_assert();
    }

    // Proves every system with a CLI gets its subcommand and the built-ins are still parsed.
    #[test]
    fn system_subcommands_are_derived_from_the_list() {
        let systems = crate::systems::all();
        let cmd = command(&systems);
        for sys in systems.iter().filter(|s| s.cli.is_some()) {
            assert!(
                cmd.get_subcommands().any(|c| c.get_name() == sys.name),
                "no subcommand {}",
                sys.name
            );
        }
        let m = command(&systems)
            .try_get_matches_from(["tributary", "chat", "count"])
            .expect("chat count parses");
        assert_eq!(m.subcommand_name(), Some("chat"));
        let m = command(&systems)
            .try_get_matches_from(["tributary", "serve", "chat-api"])
            .expect("serve parses");
        let cli = Cli::from_arg_matches(&m).expect("built-in");
        assert!(matches!(cli.command, Command::Serve(ref a) if a.services == ["chat-api"]));
    }
}
