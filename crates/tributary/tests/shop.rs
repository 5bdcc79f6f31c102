//! Spawned-binary tests of the shop system, each scenario on the embedded
//! bus + SQLite and on Kafka + PostgreSQL, driven only through the real
//! `tributary shop` CLI over the shop REST API:
//!
//! - the whole pipeline: products and prompts sent from NDJSON files and
//!   emulated, filtered by a live filter, joined, and sunk; the tables hold
//!   exactly the expected products, filtered products and (prompt, product)
//!   pairs; a bad pattern is refused and the old filter kept; a filter
//!   change applies to every later product and is still in force after a
//!   restart; poison products and prompts reach `<topic>.dlq` with the error;
//! - the join service SIGKILLed mid-stream and restarted: no pair missed,
//!   none extra (the sink dedupes redeliveries by the idempotent key).
//! - late records on event time, stamped by the producer (`shop send
//!   --event-time`): within the grace period still joined, beyond it
//!   dropped and counted, though a partner is in state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use tributary_shop::domain::{Emulator, Filter, FilterSpec, JoinKey, Product, Prompt};
use tributary_testkit::spawn::{command, json_lines, stdout_ok, Tributary};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tributary"))
}

fn shop(api: SocketAddr, args: &[&str]) -> Output {
    let api = format!("http://{api}");
    command(bin())
        .args(["shop", "--api", &api])
        .args(args)
        .output()
        .expect("run tributary shop")
}

fn shop_json(api: SocketAddr, args: &[&str]) -> Vec<serde_json::Value> {
    let mut a = args.to_vec();
    a.push("--json");
    json_lines(&shop(api, &a))
}

/// The backends and names of one test: its own topics and groups.
struct Setup {
    env: Vec<(String, String)>,
    products: String,
    prompts: String,
    bus: String,
    patience: Duration,
}

impl Setup {
    fn new(sql: &str, bus: &str, dir: &Path, patience: Duration) -> Self {
        let products = tributary_testkit::unique("shop_products");
        let prompts = tributary_testkit::unique("shop_find");
        let mut env: Vec<(String, String)> = [
            ("TRIBUTARY__SQL__URL", sql.to_owned()),
            ("TRIBUTARY__BUS__URL", bus.to_owned()),
            ("TRIBUTARY__DATA_DIR", dir.to_string_lossy().into_owned()),
            ("TRIBUTARY__AUDIT__ENABLED", "false".to_owned()),
            ("TRIBUTARY__SHOP__EMULATOR_RATE", "0".to_owned()),
            ("TRIBUTARY__SHOP__PRODUCTS_TOPIC", products.clone()),
            ("TRIBUTARY__SHOP__PROMPTS_TOPIC", prompts.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (key, prefix) in [
            ("FILTERED_TOPIC", "shop_filtered"),
            ("RECOMMENDATIONS_TOPIC", "shop_recom"),
            ("CONTROL_TOPIC", "shop_control"),
            ("FILTER_GROUP", "shop-filter"),
            ("JOIN_GROUP", "shop-join"),
            ("SINK_GROUP", "shop-sink"),
        ] {
            env.push((
                format!("TRIBUTARY__SHOP__{key}"),
                tributary_testkit::unique(prefix),
            ));
        }
        Self {
            env,
            products,
            prompts,
            bus: bus.to_owned(),
            patience,
        }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn start(&self, services: &[&str], extra: &[(&str, &str)], log: &Path) -> Tributary {
        let mut args = vec!["serve"];
        args.extend_from_slice(services);
        let mut env = self.env();
        env.extend_from_slice(extra);
        Tributary::start(bin(), &args, &env, log)
    }
}

const ALL: [&str; 4] = [
    "shop-api",
    "shop-filter",
    "shop-recommendations",
    "shop-sink",
];

fn write_ndjson<T: serde::Serialize>(path: &Path, records: &[T], poison: &[&str]) {
    let mut text = String::new();
    for p in poison {
        text.push_str(p);
        text.push('\n');
    }
    for r in records {
        text.push_str(&serde_json::to_string(r).unwrap());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn send(
    api: SocketAddr,
    dir: &Path,
    name: &str,
    kind: &str,
    text: &[impl serde::Serialize],
    poison: &[&str],
) -> u64 {
    let file = dir.join(name);
    write_ndjson(&file, text, poison);
    let v = shop_json(api, &["send", kind, file.to_str().unwrap()]);
    v[0]["sent"].as_u64().unwrap()
}

fn counts(api: SocketAddr) -> (u64, u64, u64) {
    let v = &shop_json(api, &["stats"])[0];
    (
        v["products"].as_u64().unwrap(),
        v["filtered"].as_u64().unwrap(),
        v["recommendations"].as_u64().unwrap(),
    )
}

fn wait_counts(api: SocketAddr, want: (u64, u64, u64), procs: &[&Tributary]) {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let got = counts(api);
        if got == want {
            return;
        }
        let logs: Vec<String> = procs.iter().map(|t| t.log_text()).collect();
        assert!(
            Instant::now() < deadline,
            "stats (products, filtered, recommendations) {got:?}, want {want:?}\n{}",
            logs.join("\n----\n")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Sets the filter with the CLI and waits until every one of `replicas`
/// filter replicas reports it applied; returns its `set_at`.
fn set_filter(api: SocketAddr, args: &[&str], replicas: usize, t: &Tributary) -> i64 {
    let mut a = vec!["filter", "set"];
    a.extend_from_slice(args);
    let set = shop_json(api, &a).remove(0);
    let set_at = set["filter"]["set_at"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = shop_json(api, &["filter", "get"]).remove(0);
        let applied = v["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["set_at"].as_i64() == Some(set_at))
            .count();
        if applied >= replicas {
            return set_at;
        }
        assert!(
            Instant::now() < deadline,
            "filter not applied: {v}\n{}",
            t.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every (prompt id, product id) pair with the same join key among products
/// passing `filters` (product, the filter it met).
fn pairs(prompts: &[Prompt], products: &[(Product, &Filter)]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for p in prompts {
        for (q, f) in products {
            if f.passes(q) && p.join_key() == JoinKey::new(&q.name) {
                out.insert(format!("{}:{}", p.id, q.product_id));
            }
        }
    }
    out
}

fn recommendation_keys(api: SocketAddr, users: &BTreeSet<String>) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for u in users {
        for r in shop_json(api, &["recommendations", "--user", u]) {
            assert_eq!(r["user_id"], u.as_str());
            assert!(
                keys.insert(r["key"].as_str().unwrap().to_owned()),
                "a pair twice: {r}"
            );
        }
    }
    keys
}

fn products(seed: u64, range: std::ops::Range<u64>) -> Vec<Product> {
    let e = Emulator::new(seed);
    range.map(|i| e.product(i, chrono::Utc::now())).collect()
}

fn compiled(spec: FilterSpec) -> Filter {
    Filter::compile(&spec).unwrap()
}

/// Checks `<topic>.dlq` holds exactly the records with the keys `keys`
/// (once per consuming group `groups`), each with an error naming `field`.
async fn check_dlq(s: &Setup, topic: &str, keys: &[(&str, &str)], groups: usize) {
    let dead = tributary_testkit::read_topic(&s.bus, &format!("{topic}.dlq"), s.patience).await;
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for m in &dead {
        let key = String::from_utf8_lossy(m.key.as_deref().unwrap_or_default()).into_owned();
        let error = String::from_utf8_lossy(m.header("dlq.error").unwrap()).into_owned();
        let field = keys.iter().find(|(k, _)| *k == key).map(|(_, f)| *f);
        let field = field.unwrap_or_else(|| panic!("unexpected dead letter {key}: {error}"));
        assert!(error.contains(field), "{key}: {error} should name {field}");
        assert_eq!(
            m.header("dlq.topic").map(|v| v.to_vec()),
            Some(topic.as_bytes().to_vec())
        );
        *got.entry(key).or_default() += 1;
    }
    let want: BTreeMap<String, usize> = keys
        .iter()
        .map(|(k, _)| ((*k).to_owned(), groups))
        .collect();
    assert_eq!(got, want, "dead letters of {topic}");
}

/// The whole pipeline on `sql` + `bus` (see the module docs). `second`:
/// a second `shop-filter` replica runs in a process of its own (Kafka), and
/// every filter change must be applied by both.
async fn pipeline_end_to_end(sql: &str, bus: &str, dir: &Path, patience: Duration, second: bool) {
    let s = Setup::new(sql, bus, dir, patience);
    let log = dir.join("shop.log");
    let mut t = s.start(&ALL, &[], &log);
    let api = t
        .wait_ready(Duration::from_secs(120))
        .addr_of("shop-api")
        .unwrap();
    let v = shop_json(api, &["filter", "get"]).remove(0);
    assert_eq!(
        (
            v["filter"]["pattern"].as_str(),
            v["control_offset"].as_i64()
        ),
        (Some(""), None)
    );

    let mut other = second.then(|| s.start(&["shop-filter"], &[], &dir.join("filter2.log")));
    if let Some(o) = other.as_mut() {
        o.wait_ready(Duration::from_secs(120));
    }
    let replicas = if second { 2 } else { 1 };
    let set_at = set_filter(api, &["iphone"], replicas, &t);
    let iphone = compiled(FilterSpec::substring("iphone", set_at));
    // A bad regex is refused naming the problem, and the filter stays.
    let bad = shop(api, &["filter", "set", "--regex", "(iPhone"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("400") && err.contains("unclosed group"),
        "{err}"
    );
    let v = shop_json(api, &["filter", "get"]).remove(0);
    assert_eq!(
        (
            v["filter"]["pattern"].as_str(),
            v["filter"]["set_at"].as_i64()
        ),
        (Some("iphone"), Some(set_at))
    );

    // Prompts for catalogue names, sent before and after the products they meet.
    let e = Emulator::new(5);
    let prompts: Vec<Prompt> = (0..60).map(|i| e.prompt(i, 4)).collect();
    let users: BTreeSet<String> = prompts.iter().map(|p| p.user_id.clone()).collect();
    let batch1 = products(11, 0..200);
    let batch2 = products(11, 200..400);
    let mut bad_price = serde_json::to_value(&batch1[0]).unwrap();
    bad_price["product_id"] = "bad-price".into();
    bad_price["price"]["amount"] = "ten".into();
    let bad_price = bad_price.to_string();
    let poison_products = [
        r#"{"product_id":"bad-shape","name":"Apple iPhone 15"}"#,
        bad_price.as_str(),
    ];
    let poison_prompts = [r#"{"id":"not-a-uuid","user_id":"u","find":"apple iphone 15"}"#];
    assert_eq!(
        send(api, dir, "p1.ndjson", "products", &batch1, &poison_products),
        202
    );
    assert_eq!(
        send(
            api,
            dir,
            "q.ndjson",
            "prompts",
            &prompts[..30],
            &poison_prompts
        ),
        31
    );
    assert_eq!(send(api, dir, "p2.ndjson", "products", &batch2, &[]), 200);
    assert_eq!(
        send(api, dir, "q2.ndjson", "prompts", &prompts[30..], &[]),
        30
    );
    // 40 emulated products, seed 77 (their names depend only on seed and index).
    let em = shop_json(
        api,
        &["emulate", "--rate", "400", "--count", "40", "--seed", "77"],
    );
    assert_eq!(em[0]["sent"], 40);
    let emulated = products(77, 0..40);

    let mut seen: Vec<(Product, &Filter)> = batch1
        .iter()
        .chain(&batch2)
        .chain(&emulated)
        .map(|p| (p.clone(), &iphone))
        .collect();
    let filtered =
        |seen: &[(Product, &Filter)]| seen.iter().filter(|(p, f)| f.passes(p)).count() as u64;
    let want_pairs = pairs(&prompts, &seen);
    assert!(
        filtered(&seen) > 10 && want_pairs.len() > 5,
        "{} filtered, {} pairs",
        filtered(&seen),
        want_pairs.len()
    );
    wait_counts(api, (440, filtered(&seen), want_pairs.len() as u64), &[&t]);
    assert_eq!(recommendation_keys(api, &users), want_pairs);
    // Every product (and the two poison ones) went through the filter before it changes.
    let filter_in = r#"tributary_shop_records_in_total{service="shop-filter"}"#;
    let deadline = Instant::now() + Duration::from_secs(60);
    let filter_total = |t: &Tributary, o: &Option<Tributary>| {
        t.metric(filter_in) + o.as_ref().map_or(0.0, |o| o.metric(filter_in))
    };
    while filter_total(&t, &other) < 442.0 {
        assert!(
            Instant::now() < deadline,
            "filter at {}\n{}",
            filter_total(&t, &other),
            t.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listed = shop_json(api, &["products", "--name", "IPHONE", "--filtered"]);
    assert_eq!(listed.len() as u64, filtered(&seen));
    assert!(listed.iter().all(|p| p["name"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .contains("iphone")));

    // A new filter applies to every later product.
    let set_at = set_filter(api, &["--regex", "^Samsung"], replicas, &t);
    let samsung = compiled(FilterSpec::regex("^Samsung", false, set_at));
    let batch3 = products(11, 400..600);
    send(api, dir, "p3.ndjson", "products", &batch3, &[]);
    seen.extend(batch3.iter().map(|p| (p.clone(), &samsung)));
    assert!(batch3.iter().any(|p| iphone.passes(p)) && batch3.iter().any(|p| samsung.passes(p)));
    let want_pairs = pairs(&prompts, &seen);
    wait_counts(api, (640, filtered(&seen), want_pairs.len() as u64), &[&t]);
    let both = |name: &str| t.metric(name) + other.as_ref().map_or(0.0, |o| o.metric(name));
    let rejected = both("tributary_shop_records_rejected_total");
    assert!(rejected >= 5.0, "rejected records counted: {rejected}");
    assert!(t.metric("tributary_shop_join_matches_total") >= want_pairs.len() as f64);
    assert!(both("tributary_shop_filter_pass_ratio") > 0.0);

    // After a restart the filter is the same, and still applies.
    let st = t.stop(Duration::from_secs(30));
    assert!(st.success(), "exit after SIGTERM: {st}\n{}", t.log_text());
    t.restart();
    let api = t
        .wait_ready(Duration::from_secs(120))
        .addr_of("shop-api")
        .unwrap();
    let v = shop_json(api, &["filter", "get"]).remove(0);
    assert_eq!(
        (
            v["filter"]["kind"].as_str(),
            v["filter"]["pattern"].as_str(),
            v["filter"]["set_at"].as_i64()
        ),
        (Some("regex"), Some("^Samsung"), Some(set_at))
    );
    let batch4 = products(11, 600..800);
    send(api, dir, "p4.ndjson", "products", &batch4, &[]);
    seen.extend(batch4.iter().map(|p| (p.clone(), &samsung)));
    let want_pairs = pairs(&prompts, &seen);
    wait_counts(api, (840, filtered(&seen), want_pairs.len() as u64), &[&t]);
    assert_eq!(recommendation_keys(api, &users), want_pairs);
    let text = stdout_ok(&shop(api, &["filter", "get"]));
    assert!(
        text.contains("regex \"^Samsung\"") && text.contains("applied"),
        "{text}"
    );
    let st = t.stop(Duration::from_secs(30));
    assert!(st.success(), "exit after SIGTERM: {st}\n{}", t.log_text());
    if let Some(o) = other.as_mut() {
        let st = o.stop(Duration::from_secs(30));
        assert!(st.success(), "exit after SIGTERM: {st}\n{}", o.log_text());
    }

    // Poison records reached the dead-letter topics with the field named: products from the
    // filter's and the sink's group each, the prompt from the join's.
    check_dlq(
        &s,
        &s.products,
        &[
            ("bad-shape", "price: missing"),
            ("bad-price", "price.amount"),
        ],
        2,
    )
    .await;
    check_dlq(&s, &s.prompts, &[("not-a-uuid", "id")], 1).await;
    eprintln!(
        "shop pipeline: 840 products, {} filtered, {} recommendations, 3 poison records dead-lettered",
        filtered(&seen),
        want_pairs.len()
    );
}

// Proves the whole shop pipeline on SQLite + the embedded bus (see the module docs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_end_to_end_sqlite_embedded() {
    let dir = tributary_testkit::temp_dir();
    let sql = format!("sqlite://{}", dir.path().join("t.db").display());
    let bus = format!("sqlite://{}", dir.path().join("bus.db").display());
    pipeline_end_to_end(&sql, &bus, dir.path(), Duration::from_secs(3), false).await;
}

// Proves the same on PostgreSQL + Kafka, with a second filter replica in another process that
// applies every filter change too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_end_to_end_postgres_kafka() {
    use tributary_testkit::{backend, fresh_postgres_db, Backend};
    let (Some(pg), Some(kafka)) = (backend(Backend::Postgres), backend(Backend::Kafka)) else {
        return;
    };
    let dir = tributary_testkit::temp_dir();
    let sql = fresh_postgres_db(&pg).await.unwrap();
    pipeline_end_to_end(&sql, &kafka, dir.path(), Duration::from_secs(60), true).await;
}

/// `names` x `per_name` prompts (over 5 users) and `names` x
/// `products_per_name` products with exactly those names.
fn join_stream(
    names: usize,
    per_name: usize,
    products_per_name: usize,
) -> (Vec<Prompt>, Vec<Product>) {
    let catalogue = Emulator::catalogue();
    let e = Emulator::new(3);
    let mut prompts = Vec::new();
    let mut products = Vec::new();
    for (n, name) in catalogue.iter().take(names).enumerate() {
        for i in 0..per_name {
            let find = if i % 2 == 0 {
                name.to_lowercase()
            } else {
                format!("  {}  ", name.to_uppercase())
            };
            let mut p = Prompt::new(format!("user-{}", i % 5), find);
            p.id = uuid::Uuid::from_u128(((n as u128) << 32) | i as u128 | (1 << 100));
            prompts.push(p);
        }
        for i in 0..products_per_name {
            let mut p = e.product((n * products_per_name + i) as u64, chrono::Utc::now());
            p.name = name.clone();
            products.push(p);
        }
    }
    (prompts, products)
}

/// Reads the recommendations topic until every pair of `all` was seen and
/// checks it holds exactly those pairs (by their idempotent key), each
/// record keyed by its prompt id; returns the records read (duplicates
/// only as the same key).
async fn check_output_pairs(
    s: &Setup,
    all: &BTreeSet<String>,
    patience: Duration,
) -> Vec<tributary_bus::Message> {
    let recom_topic = &s
        .env
        .iter()
        .find(|(k, _)| k == "TRIBUTARY__SHOP__RECOMMENDATIONS_TOPIC")
        .unwrap()
        .1;
    let key_of = |m: &tributary_bus::Message| {
        String::from_utf8_lossy(m.header("shop.key").unwrap()).into_owned()
    };
    let distinct = |ms: &[tributary_bus::Message]| ms.iter().map(key_of).collect::<BTreeSet<_>>();
    let out = tributary_testkit::read_topic_until(&s.bus, recom_topic, patience, |ms| {
        ms.len() >= all.len() && distinct(ms).len() >= all.len()
    })
    .await;
    for m in &out {
        let prompt = String::from_utf8_lossy(m.key.as_deref().unwrap()).into_owned();
        let key = key_of(m);
        assert!(
            key.starts_with(&format!("{prompt}:")),
            "keyed by prompt id: {key}"
        );
    }
    assert_eq!(&distinct(&out), all, "the output topic holds every pair");
    out
}

/// The join service is SIGKILLed mid-stream and restarted (see the module
/// docs). `split`: the join runs in a process of its own and only it is
/// killed (Kafka), and restarts under a new group (`regroup`, see the docs
/// crash test for why on tansu); otherwise one process runs every service
/// and the whole process is killed (the embedded bus belongs to one process).
async fn join_killed_mid_stream(sql: &str, bus: &str, dir: &Path, split: bool, patience: Duration) {
    let s = Setup::new(sql, bus, dir, patience);
    let (prompts, stream) = join_stream(20, 8, 15);
    let all = pairs(
        &prompts,
        &stream
            .iter()
            .map(|p| (p.clone(), &Filter::All))
            .collect::<Vec<_>>(),
    );
    assert_eq!(all.len(), 20 * 8 * 15);
    let users: BTreeSet<String> = prompts.iter().map(|p| p.user_id.clone()).collect();

    let (mut front, mut join) = if split {
        let front = s.start(
            &["shop-api", "shop-filter", "shop-sink"],
            &[],
            &dir.join("front.log"),
        );
        let join = s.start(&["shop-recommendations"], &[], &dir.join("join.log"));
        (Some(front), join)
    } else {
        (None, s.start(&ALL, &[], &dir.join("shop.log")))
    };
    let ready = match front.as_mut() {
        Some(f) => f.wait_ready(Duration::from_secs(120)),
        None => join.wait_ready(Duration::from_secs(120)),
    };
    if split {
        join.wait_ready(Duration::from_secs(120));
    }
    let api = ready.addr_of("shop-api").unwrap();
    send(api, dir, "prompts.ndjson", "prompts", &prompts, &[]);
    for (i, chunk) in stream.chunks(50).enumerate() {
        send(
            api,
            dir,
            &format!("products-{i}.ndjson"),
            "products",
            chunk,
            &[],
        );
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    let at_kill = loop {
        let (_, _, recs) = counts(api);
        if recs >= 400 {
            break recs;
        }
        assert!(
            Instant::now() < deadline,
            "no progress\n{}",
            join.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    join.kill9();
    assert!(at_kill < all.len() as u64, "the kill must land mid-stream");
    let group = tributary_testkit::unique("shop-join");
    if split {
        join = s.start(
            &["shop-recommendations"],
            &[("TRIBUTARY__SHOP__JOIN_GROUP", group.as_str())],
            &dir.join("join.log"),
        );
    } else {
        join.restart();
    }
    let ready = join.wait_ready(Duration::from_secs(120));
    let api = match &front {
        Some(_) => api,
        None => ready.addr_of("shop-api").unwrap(),
    };
    let procs: Vec<&Tributary> = front.iter().chain(std::iter::once(&join)).collect();
    wait_counts(api, (300, 300, all.len() as u64), &procs);
    assert_eq!(recommendation_keys(api, &users), all);
    // Every pair is on the output topic too, duplicates only as the same key.
    let outputs = join.metric("tributary_shop_join_matches_total");
    for p in [Some(&mut join), front.as_mut()].into_iter().flatten() {
        let st = p.stop(Duration::from_secs(30));
        assert!(st.success(), "exit after SIGTERM: {st}\n{}", p.log_text());
    }
    let out = check_output_pairs(&s, &all, patience + Duration::from_secs(120)).await;
    eprintln!(
        "shop join SIGKILL at {at_kill} of {} recommendations: all {} pairs in the table once; \
         {} output records read until every pair was seen, {outputs} emitted after the restart",
        all.len(),
        all.len(),
        out.len()
    );
}

// Proves a SIGKILLed join loses no pair (SQLite, embedded bus): restarted, the table holds
// every (prompt, product) pair exactly once and the output topic every pair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_sigkill_misses_no_pair_sqlite_embedded() {
    let dir = tributary_testkit::temp_dir();
    let sql = format!("sqlite://{}", dir.path().join("t.db").display());
    let bus = format!("sqlite://{}", dir.path().join("bus.db").display());
    join_killed_mid_stream(&sql, &bus, dir.path(), false, Duration::from_secs(3)).await;
}

// Proves the same on PostgreSQL + Kafka, killing only the join's own process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_sigkill_misses_no_pair_postgres_kafka() {
    use tributary_testkit::{backend, fresh_postgres_db, Backend};
    let (Some(pg), Some(kafka)) = (backend(Backend::Postgres), backend(Backend::Kafka)) else {
        return;
    };
    let dir = tributary_testkit::temp_dir();
    let sql = fresh_postgres_db(&pg).await.unwrap();
    join_killed_mid_stream(&sql, &kafka, dir.path(), true, Duration::from_secs(60)).await;
}

/// Sends `records` with the CLI, every one stamped with event time `at_ms`.
fn send_at(
    api: SocketAddr,
    dir: &Path,
    name: &str,
    kind: &str,
    records: &[impl serde::Serialize],
    at_ms: i64,
) {
    let file = dir.join(name);
    write_ndjson(&file, records, &[]);
    let at = at_ms.to_string();
    let v = shop_json(
        api,
        &["send", kind, file.to_str().unwrap(), "--event-time", &at],
    );
    assert_eq!(v[0]["sent"].as_u64(), Some(records.len() as u64), "{v:?}");
}

/// Waits until `cond` holds of the process's metric `name`.
fn wait_metric(t: &Tributary, name: &str, what: &str, cond: impl Fn(f64) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = t.metric(name);
        if cond(v) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} = {v}: waited for {what}\n{}",
            t.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Late records on event time (see the module docs): with a 1 h window
/// and 10 min grace, once stream time is T+3h a record at T+1h55m (older
/// than the window bound T+2h but within grace) still joins, and records
/// before T+1h50m are dropped as late, though their partner is in state
/// (T is a day ago: a replay of old records).
/// Each step waits for its effect, so the join sees them in this order on
/// every bus.
async fn late_records_on_event_time(sql: &str, bus: &str, dir: &Path, patience: Duration) {
    const MIN: i64 = 60_000;
    let s = Setup::new(sql, bus, dir, patience);
    let mut t = s.start(
        &ALL,
        &[
            ("TRIBUTARY__SHOP__JOIN_WINDOW_MS", "3600000"),
            ("TRIBUTARY__SHOP__JOIN_GRACE_MS", "600000"),
        ],
        &dir.join("shop.log"),
    );
    let api = t
        .wait_ready(Duration::from_secs(120))
        .addr_of("shop-api")
        .unwrap();
    let names = Emulator::catalogue();
    let (a, b) = (&names[0], &names[1]);
    let e = Emulator::new(11);
    let product = |i: u64, name: &str| {
        let mut p = e.product(i, chrono::Utc::now());
        p.name = name.to_owned();
        p
    };
    let prompt = |find: &str| Prompt::new("late-user".to_owned(), find.to_lowercase());
    let t0 = chrono::Utc::now().timestamp_millis() - 24 * 60 * MIN;

    // Step 1: prompt A at T and product A at T+30m join.
    let p_a = prompt(a);
    let q_a = product(0, a);
    send_at(api, dir, "p-a.ndjson", "prompts", &[&p_a], t0);
    send_at(api, dir, "q-a.ndjson", "products", &[&q_a], t0 + 30 * MIN);
    wait_counts(api, (1, 1, 1), &[&t]);
    // Step 2: a prompt B at T+3h moves stream time there (stream time is
    // per partition with repartition topics: the late records below share
    // its key, so its partition). It meets nothing: the products B below
    // are more than the window older.
    let p_adv = prompt(b);
    send_at(
        api,
        dir,
        "p-adv.ndjson",
        "prompts",
        &[&p_adv],
        t0 + 180 * MIN,
    );
    let lag_now = (chrono::Utc::now().timestamp_millis() - (t0 + 180 * MIN)) as f64 / 1000.0;
    wait_metric(
        &t,
        "tributary_shop_join_watermark_lag_seconds",
        "stream time T+3h",
        |v| v <= lag_now + 60.0 && v >= lag_now - 3600.0,
    );
    // Step 3: prompt B at T+2h30m and product B at T+1h55m: within grace, joined.
    let p_b = prompt(b);
    let q_b = product(1, b);
    send_at(api, dir, "p-b.ndjson", "prompts", &[&p_b], t0 + 150 * MIN);
    send_at(api, dir, "q-b.ndjson", "products", &[&q_b], t0 + 115 * MIN);
    wait_counts(api, (2, 2, 2), &[&t]);
    // Step 4: product B at T+1h45m and prompt B at T+1h48m: beyond grace,
    // dropped, though each would meet a record in state within the window.
    let q_late = product(2, b);
    let p_late = prompt(b);
    send_at(
        api,
        dir,
        "q-late.ndjson",
        "products",
        &[&q_late],
        t0 + 105 * MIN,
    );
    send_at(
        api,
        dir,
        "p-late.ndjson",
        "prompts",
        &[&p_late],
        t0 + 108 * MIN,
    );
    wait_metric(
        &t,
        "tributary_shop_join_late_total",
        "two late records",
        |v| v >= 2.0,
    );
    // The sink still stores the late product; no pair came of it.
    wait_counts(api, (3, 3, 2), &[&t]);
    let users = BTreeSet::from(["late-user".to_owned()]);
    let want: BTreeSet<String> = [
        format!("{}:{}", p_a.id, q_a.product_id),
        format!("{}:{}", p_b.id, q_b.product_id),
    ]
    .into();
    assert_eq!(recommendation_keys(api, &users), want);
    assert_eq!(t.metric("tributary_shop_join_late_total"), 2.0);
    let st = t.stop(Duration::from_secs(30));
    assert!(st.success(), "exit after SIGTERM: {st}\n{}", t.log_text());
}

// Proves late records are joined within grace and dropped beyond it, on event time set by
// the producer (SQLite, embedded bus).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_records_within_and_beyond_grace_sqlite_embedded() {
    let dir = tributary_testkit::temp_dir();
    let sql = format!("sqlite://{}", dir.path().join("t.db").display());
    let bus = format!("sqlite://{}", dir.path().join("bus.db").display());
    late_records_on_event_time(&sql, &bus, dir.path(), Duration::from_secs(3)).await;
}

// Proves the same on PostgreSQL + Kafka (the producer timestamps travel through the broker).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_records_within_and_beyond_grace_postgres_kafka() {
    use tributary_testkit::{backend, fresh_postgres_db, Backend};
    let (Some(pg), Some(kafka)) = (backend(Backend::Postgres), backend(Backend::Kafka)) else {
        return;
    };
    let dir = tributary_testkit::temp_dir();
    let sql = fresh_postgres_db(&pg).await.unwrap();
    late_records_on_event_time(&sql, &kafka, dir.path(), Duration::from_secs(60)).await;
}

/// Records the join (not the repartition step) of process `t` took in.
fn join_in(t: &Tributary) -> f64 {
    t.metric("tributary_shop_records_in_total{service=\"shop-recommendations\"}")
}

// Proves two join replicas in one group on Kafka (inputs re-keyed through the repartition
// topics, state split by partition) give exactly the reference pairs: A runs alone, B joins
// mid-stream (rebalance), A leaves on SIGTERM mid-stream (rebalance; B takes every
// partition, loading their state from the table). Asserted: the final table and the output
// topic, not how partitions were split (tansu may give the first member every partition
// until A leaves).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_two_replicas_rebalance_postgres_kafka() {
    use tributary_testkit::{backend, fresh_postgres_db, Backend};
    let (Some(pg), Some(kafka)) = (backend(Backend::Postgres), backend(Backend::Kafka)) else {
        return;
    };
    let dir = tributary_testkit::temp_dir();
    let dir = dir.path();
    let sql = fresh_postgres_db(&pg).await.unwrap();
    let s = Setup::new(&sql, &kafka, dir, Duration::from_secs(60));
    let (prompts, stream) = join_stream(20, 8, 15);
    let all_of = |products: &[Product]| {
        pairs(
            &prompts,
            &products
                .iter()
                .map(|p| (p.clone(), &Filter::All))
                .collect::<Vec<_>>(),
        )
    };
    let all = all_of(&stream);
    assert_eq!(all.len(), 20 * 8 * 15);
    let users: BTreeSet<String> = prompts.iter().map(|p| p.user_id.clone()).collect();
    // Half the products of every name first, the rest after B joined.
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for (i, p) in stream.iter().enumerate() {
        if i % 15 < 7 {
            first.push(p.clone());
        } else {
            second.push(p.clone());
        }
    }
    let mut front = s.start(
        &["shop-api", "shop-filter", "shop-sink"],
        &[],
        &dir.join("front.log"),
    );
    let api = front
        .wait_ready(Duration::from_secs(120))
        .addr_of("shop-api")
        .unwrap();
    let mut a = s.start(&["shop-recommendations"], &[], &dir.join("a.log"));
    a.wait_ready(Duration::from_secs(120));
    send(api, dir, "prompts.ndjson", "prompts", &prompts, &[]);
    send(api, dir, "first.ndjson", "products", &first, &[]);
    let first_pairs = all_of(&first).len() as u64;
    wait_counts(
        api,
        (first.len() as u64, first.len() as u64, first_pairs),
        &[&front, &a],
    );
    assert!(
        a.log_text().contains("re-keyed by the join key"),
        "the join repartitions on Kafka\n{}",
        a.log_text()
    );

    let mut b = s.start(&["shop-recommendations"], &[], &dir.join("b.log"));
    b.wait_ready(Duration::from_secs(120));
    for (i, chunk) in second.chunks(20).enumerate() {
        send(
            api,
            dir,
            &format!("second-{i}.ndjson"),
            "products",
            chunk,
            &[],
        );
        if i == 3 {
            let st = a.stop(Duration::from_secs(60));
            assert!(
                st.success(),
                "A's exit after SIGTERM: {st}\n{}",
                a.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_counts(api, (300, 300, all.len() as u64), &[&front, &b]);
    assert_eq!(recommendation_keys(api, &users), all);
    let b_in = join_in(&b);
    assert!(b_in >= 1.0, "B joined no record\n{}", b.log_text());
    let reloads = b.metric("tributary_shop_join_state_reloads_total");
    for p in [&mut b, &mut front] {
        let st = p.stop(Duration::from_secs(30));
        assert!(st.success(), "exit after SIGTERM: {st}\n{}", p.log_text());
    }
    let out = check_output_pairs(&s, &all, Duration::from_secs(180)).await;
    eprintln!(
        "shop join, two replicas: B joined {b_in} records after A's {} first-half pairs, \
         {reloads} stale-part reloads in B; all {} pairs in the table once, {} output records",
        first_pairs,
        all.len(),
        out.len()
    );
}
