//! Secrets never reach output: `tributary config` and the error of a start
//! that cannot reach its database, with a secret in every place a user puts
//! one (URL userinfo, a libpq `password=` query parameter, an OTLP endpoint's
//! userinfo and token, Kafka SASL/JAAS properties, S3 keys, a Redis password,
//! API tokens).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

use tributary_testkit::spawn::{command, free_port};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tributary"))
}

const SECRETS: [&str; 8] = [
    "pgpass1",
    "pgpass2",
    "otlppass",
    "otlptok",
    "jaaspass",
    "saslpass",
    "s3secret",
    "redispass",
];

fn secret_env(pg_port: u16) -> Vec<(String, String)> {
    vec![
        (
            "TRIBUTARY__SQL__URL".into(),
            format!(
                "postgres://app:pgpass1@127.0.0.1:{pg_port}/x?sslmode=disable&password=pgpass2"
            ),
        ),
        (
            "TRIBUTARY__TELEMETRY__OTLP_ENDPOINT".into(),
            "http://otel:otlppass@127.0.0.1:1/?token=otlptok".into(),
        ),
        (
            "TRIBUTARY__OBJECTS__SECRET_ACCESS_KEY".into(),
            "s3secret".into(),
        ),
        (
            "TRIBUTARY__CACHE__URL".into(),
            "redis://:redispass@127.0.0.1:1".into(),
        ),
    ]
}

/// librdkafka properties have dots in their names, so they come from a file.
fn kafka_options_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("tributary.toml");
    std::fs::write(
        &path,
        "[bus.kafka.options]\n\
         \"sasl.mechanism\" = \"PLAIN\"\n\
         \"sasl.password\" = \"saslpass\"\n\
         \"sasl.jaas.config\" = 'org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"jaaspass\";'\n",
    )
    .unwrap();
    path
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_clean(what: &str, all: &str) {
    for s in SECRETS {
        assert!(!all.contains(s), "{what} shows the secret {s}:\n{all}");
    }
}

// Proves `tributary config` prints every section with each secret masked, and still shows
// what is not secret (hosts, the SASL mechanism, sslmode) so the output stays useful.
#[test]
fn config_masks_every_secret() {
    let dir = tributary_testkit::temp_dir();
    let out = command(bin())
        .current_dir(dir.path())
        .envs(secret_env(5432))
        .arg("--config")
        .arg(kafka_options_file(dir.path()))
        .arg("config")
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert_clean("tributary config", &all);
    for visible in ["sslmode=disable", "PLAIN", "127.0.0.1", "otel:***@"] {
        assert!(
            all.contains(visible),
            "config should still show {visible}:\n{all}"
        );
    }
}

// Proves a start that fails on its database (nothing listens on the port) names the
// database, redacted, and leaks none of the secrets into the error or the log.
#[test]
fn startup_error_masks_every_secret() {
    let dir = tributary_testkit::temp_dir();
    let port = free_port();
    let mut env = secret_env(port);
    // No OTLP exporter here: it would fail before the database is tried.
    env.retain(|(k, _)| k != "TRIBUTARY__TELEMETRY__OTLP_ENDPOINT");
    let out = command(bin())
        .current_dir(dir.path())
        .envs(env)
        .env("TRIBUTARY__SQL__ACQUIRE_TIMEOUT_SECS", "1")
        .arg("--config")
        .arg(kafka_options_file(dir.path()))
        .arg("migrate")
        .output()
        .unwrap();
    let all = text(&out);
    assert!(
        !out.status.success(),
        "migrate must fail without a database:\n{all}"
    );
    assert_clean("a failed start", &all);
    assert!(
        all.contains(&format!("127.0.0.1:{port}")),
        "the error names the database:\n{all}"
    );
}
