//! Deterministic generator of realistic company documents (the
//! `companies.json` shape) for tests and benches. Record `index` of `seed`
//! is always the same document; a chosen fraction is broken on purpose,
//! each record breaking exactly one known rule.

use super::dates::format_java;
use chrono::{DateTime, SecondsFormat};
use serde_json::{json, Value};

/// The splitmix64 generator: tiny, fast, and good enough for test data.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The one rule a generated record breaks on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// Rule name from [`crate::RULES`].
    pub rule: &'static str,
    /// Pointer to the broken field.
    pub pointer: String,
}

/// One generated document and, if it is broken, how.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The company document.
    pub doc: Value,
    /// `None` for a valid record.
    pub broken: Option<Broken>,
}

const SYLLABLES: &[&str] = &[
    "wet", "paint", "dig", "zo", "ho", "flick", "tweet", "ya", "hoo", "net", "sky", "pe", "lin",
    "ked", "data", "sys", "go", "ogle", "vi", "mo", "ni", "cloud", "bit", "ly", "mé", "tro",
];
const CATEGORIES: &[&str] = &[
    "web",
    "software",
    "mobile",
    "enterprise",
    "ecommerce",
    "games_video",
    "advertising",
    "biotech",
];
const ROUNDS: &[&str] = &["angel", "seed", "a", "b", "c", "unattributed"];
// (city, state, country, latitude, longitude)
const CITIES: &[(&str, &str, &str, f64, f64)] = &[
    ("Seattle", "WA", "USA", 47.603122, -122.333253),
    ("New York", "NY", "USA", 40.7237306, -73.9964312),
    ("San Francisco", "CA", "USA", 37.775196, -122.419204),
    ("London", "", "GBR", 51.5073346, -0.1276831),
    ("Berlin", "", "DEU", 52.5234051, 13.4113999),
    ("Tokyo", "", "JPN", 35.6894875, 139.6917064),
    ("Sydney", "", "AUS", -33.8674869, 151.2069902),
    ("Stockholm", "", "SWE", 59.3325765, 18.0649033),
];
const INVESTORS: &[&str] = &[
    "Accel Partners",
    "Trinity Ventures",
    "Sequoia Capital",
    "Index Ventures",
    "Atomico",
];
const MONTHS_MS: u64 = 30 * 86_400_000;

/// The money string of a generated record: several currencies and shapes.
fn money(r: &mut SplitMix64) -> String {
    let symbol = *r.pick(&["$", "$", "$", "€", "£", "¥", "C$", "kr", "USD "]);
    match r.below(6) {
        0 => format!("{symbol}{}.{}M", 1 + r.below(99), r.below(10)),
        1 => format!("{symbol}{}k", 1 + r.below(999)),
        2 => format!("{symbol}{}.{}B", 1 + r.below(3), r.below(10)),
        3 => format!("{symbol}0"),
        4 => format!("{symbol}{},{:03}", 1 + r.below(999), r.below(1000)),
        _ => format!("{symbol}{}M", 1 + r.below(500)),
    }
}

fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

fn org(r: &mut SplitMix64) -> Value {
    let name = *r.pick(INVESTORS);
    json!({"name": name, "permalink": slug(name)})
}

/// `null` with probability `p`, otherwise `make(r)`.
fn or_null(r: &mut SplitMix64, p: f64, make: impl FnOnce(&mut SplitMix64) -> Value) -> Value {
    if r.chance(p) {
        Value::Null
    } else {
        make(r)
    }
}

/// `""` with probability `p`, otherwise `make(r)`: the data set's other "absent".
fn or_blank(r: &mut SplitMix64, p: f64, make: impl FnOnce(&mut SplitMix64) -> Value) -> Value {
    if r.chance(p) {
        json!("")
    } else {
        make(r)
    }
}

fn office(r: &mut SplitMix64) -> Value {
    let (city, state, country, lat, lng) = *r.pick(CITIES);
    // Up to 0.01 degrees off the city centre, 7 decimals like the data set.
    let mut near =
        |x: f64| json!(((x + (r.below(2001) as f64 - 1000.0) / 1e5) * 1e7).round() / 1e7);
    let (lat, lng) = (near(lat), near(lng));
    let (lat, lng) = if r.chance(0.2) {
        (json!(null), json!(null))
    } else {
        (lat, lng)
    };
    json!({
        "description": "", "address1": format!("{} Main Street", 1 + r.below(900)),
        "address2": or_blank(r, 0.5, |r| json!(format!("Suite {}", 100 + r.below(900)))),
        "zip_code": format!("{:05}", r.below(100_000)), "city": city, "state_code": state,
        "country_code": country, "latitude": lat, "longitude": lng,
    })
}

fn funding_round(r: &mut SplitMix64, id: u64, year: u64, permalink: &str) -> Value {
    json!({
        "id": id, "round_code": r.pick(ROUNDS), "source_description": "",
        "source_url": format!("http://techcrunch.com/{year}/{permalink}"),
        "raised_amount": or_null(r, 0.1, |r| json!(100_000 * (1 + r.below(500)))),
        "raised_currency_code": r.pick(&["USD", "USD", "EUR", "GBP"]),
        "funded_year": year, "funded_month": or_null(r, 0.2, |r| json!(1 + r.below(12))),
        "funded_day": or_null(r, 0.4, |r| json!(1 + r.below(28))),
        "investments": [{"company": null, "financial_org": org(r), "person": null}],
    })
}

fn acquisition(r: &mut SplitMix64, permalink: &str) -> Value {
    json!({
        "price_amount": or_null(r, 0.5, |r| json!(1_000_000 * (1 + r.below(900)))),
        "price_currency_code": "USD", "term_code": r.pick(&[json!(null), json!("cash")]),
        "source_url": format!("http://allthingsd.com/{permalink}"), "source_description": "",
        "acquired_year": 2008 + r.below(6), "acquired_month": 1 + r.below(12), "acquired_day": null,
        "acquiring_company": {"name": "Viggle", "permalink": "viggle"},
    })
}

/// Record `index` of the stream for `seed`; broken with probability
/// `invalid_fraction` (0.0..=1.0).
pub fn company(seed: u64, index: u64, invalid_fraction: f64) -> Generated {
    let mut r = SplitMix64::new(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
    let r = &mut r;
    let defect = r.chance(invalid_fraction).then(|| r.below(5));

    let mut name = String::new();
    for _ in 0..2 + r.below(2) {
        name.push_str(r.pick::<&str>(SYLLABLES));
    }
    if let Some(first) = name.get(..1) {
        name = first.to_ascii_uppercase() + &name[1..];
    }
    if r.chance(0.2) {
        name.push_str(r.pick::<&str>(&[" Inc", " Labs", " Media", " GmbH"]));
    }
    let mut permalink = slug(&name);
    if r.chance(0.3) {
        permalink = format!("{permalink}-{}", index % 100);
    }
    let domain = format!("{permalink}.com");

    let ms = 1_104_537_600_000 + r.below(96 * MONTHS_MS) as i64; // 2005..2013
    let created = DateTime::from_timestamp_millis(ms).unwrap_or_default();
    let created_at = match r.below(5) {
        0 | 1 => json!({"$date": ms}),
        2 => json!({"$date": created.to_rfc3339_opts(SecondsFormat::Millis, true)}),
        3 => json!({"$date": {"$numberLong": ms.to_string()}}),
        _ => json!(format_java(&created)),
    };
    let updated = DateTime::from_timestamp_millis(ms + r.below(24 * MONTHS_MS) as i64);

    let year = json!(1990 + r.below(23));
    let null = Value::Null;
    let (mut fy, mut fm, mut fd) = match r.below(5) {
        0 => (null.clone(), null.clone(), null.clone()),
        1 => (year, null.clone(), null.clone()),
        2 => (year, json!(1 + r.below(12)), null.clone()),
        _ => (year, json!(1 + r.below(12)), json!(1 + r.below(28))),
    };
    let user = *r.pick(&["info", "contact", "press"]);
    let mut email = or_blank(r, 0.33, |r| {
        or_null(r, 0.5, |_| json!(format!("{user}@{domain}")))
    });
    let mut raised = or_null(r, 0.3, |r| json!(money(r)));
    let mut offices: Vec<Value> = (0..r.below(4)).map(|_| office(r)).collect();

    let mark = |rule: &'static str, pointer: &str| {
        let pointer = pointer.to_string();
        Some(Broken { rule, pointer })
    };
    let broken = match defect {
        Some(0) => {
            (fy, fm, fd) = (json!(2001), json!(13), null.clone());
            mark("founded.month_range", "/founded_month")
        }
        Some(1) => {
            (fy, fm, fd) = (json!(2001), json!(2), json!(30));
            mark("founded.day_valid", "/founded_day")
        }
        Some(2) => {
            if offices.is_empty() {
                offices.push(json!({"city": "Nowhere", "latitude": null, "longitude": 0.0}));
            }
            let k = r.below(offices.len() as u64) as usize;
            offices[k]["latitude"] = json!(123.0);
            mark("office.latitude_range", &format!("/offices/{k}/latitude"))
        }
        Some(3) => {
            email = json!(format!("{user} at {domain}"));
            mark("email.format", "/email_address")
        }
        Some(_) => {
            raised = json!("$abcM");
            mark("money.parse", "/total_money_raised")
        }
        None => None,
    };

    let rounds: Vec<Value> = (0..r.below(4))
        .map(|i| funding_round(r, index * 10 + i, 2005 + i, &permalink))
        .collect();
    let image =
        json!({"available_sizes": [[[150, 75], "assets/images/resized/0000/3604/v14.jpg"]]});
    let person = json!({"first_name": "Ben", "last_name": "Elowitz", "permalink": "ben-elowitz"});
    let mut doc = json!({
        "_id": {"$oid": format!("{:016x}{:08x}", r.next_u64(), r.next_u64() as u32)},
        "name": name, "permalink": permalink,
        "crunchbase_url": format!("http://www.crunchbase.com/company/{permalink}"),
        "homepage_url": or_blank(r, 0.2, |_| json!(format!("http://www.{domain}"))),
        "blog_url": or_null(r, 0.5, |_| json!(format!("http://blog.{domain}/"))),
        "blog_feed_url": or_blank(r, 0.5, |_| json!(format!("http://blog.{domain}/feed/"))),
        "twitter_username": or_null(r, 0.4, |_| json!(permalink.replace('-', ""))),
        "category_code": or_null(r, 0.1, |r| json!(r.pick(CATEGORIES))),
        "number_of_employees": or_null(r, 0.4, |r| json!(r.below(5000))),
        "founded_year": fy, "founded_month": fm, "founded_day": fd,
        "deadpooled_year": r.pick(&[null.clone(), null.clone(), json!(1), json!(2012)]),
        "deadpooled_month": null, "deadpooled_day": null, "deadpooled_url": null,
        "tag_list": or_blank(r, 0.3, |r| json!(format!("{}, startup", r.pick(CATEGORIES)))),
        "alias_list": or_null(r, 0.5, |_| json!("")),
        "email_address": email,
    });
    let rest = json!({
        "phone_number": or_blank(r, 0.5, |r| json!(format!("206.{:03}.{:04}", r.below(1000), 42))),
        "description": or_null(r, 0.5, |_| json!("Technology Platform Company")),
        "created_at": created_at, "updated_at": updated.as_ref().map(format_java),
        "overview": format!("<p>{name} has offices in {} places.</p>", offices.len()),
        "image": or_null(r, 0.5, |_| image),
        "products": [{"name": format!("{name} Pro"), "permalink": format!("{permalink}-pro")}],
        "relationships": [{"is_past": r.chance(0.3), "title": "CEO", "person": person}],
        "competitions": [{"competitor": {"name": "Wikia", "permalink": "wikia"}}],
        "providerships": [], "total_money_raised": raised, "funding_rounds": rounds,
        "acquisition": or_null(r, 0.85, |r| acquisition(r, &permalink)),
        "acquisitions": (0..r.below(2)).map(|_| acquisition(r, "tiny-co")).collect::<Vec<_>>(),
        "investments": [], "offices": offices, "milestones": [], "ipo": null, "video_embeds": [],
        "screenshots": [], "external_links": [], "partners": [],
    });
    if let (Some(map), Value::Object(rest)) = (doc.as_object_mut(), rest) {
        map.extend(rest);
    }
    Generated { doc, broken }
}

/// The first `count` records for `seed`.
pub fn companies(
    seed: u64,
    count: usize,
    invalid_fraction: f64,
) -> impl Iterator<Item = Generated> {
    (0..count as u64).map(move |i| company(seed, i, invalid_fraction))
}

/// Writes documents as NDJSON, one per line.
pub fn ndjson<'a>(docs: impl IntoIterator<Item = &'a Value>) -> Vec<u8> {
    let mut out = Vec::new();
    for doc in docs {
        out.extend_from_slice(doc.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::{body::split, company::validate_at, rules::RULES};
    use proptest::prelude::*;

    // Proves the generator is a pure function of (seed, index, fraction).
    #[test]
    fn deterministic() {
        let a: Vec<_> = companies(7, 50, 0.3).collect();
        assert_eq!(a, companies(7, 50, 0.3).collect::<Vec<_>>());
        assert_eq!(a[17], company(7, 17, 0.3));
        assert_ne!(a[0].doc, company(8, 0, 0.3).doc);
        let mut r = SplitMix64::new(0);
        assert_eq!(
            r.next_u64(),
            0xE220_A839_7B1D_CDAF,
            "reference splitmix64 output"
        );
    }

    // Proves generated data has the real shapes: every timestamp form, several
    // currencies, nulls and blanks.
    #[test]
    fn realistic_shapes() {
        let docs: Vec<Value> = companies(1, 300, 0.0).map(|g| g.doc).collect();
        let has = |f: &dyn Fn(&Value) -> bool| docs.iter().any(f);
        assert!(has(&|d| d["created_at"]["$date"].is_i64()));
        assert!(has(&|d| d["created_at"]["$date"].is_string()));
        assert!(has(&|d| d["created_at"]["$date"]["$numberLong"].is_string()));
        assert!(has(&|d| d["created_at"].as_str().is_some_and(|s| s
            .ends_with(" UTC 2009")
            || s.contains(" UTC "))));
        for prefix in ["$", "€", "£", "¥", "C$", "kr", "USD "] {
            assert!(
                has(&|d| d["total_money_raised"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(prefix))),
                "{prefix}"
            );
        }
        assert!(has(
            &|d| d["founded_year"].is_i64() && d["founded_month"].is_null()
        ));
        assert!(has(&|d| d["email_address"] == "" && d["homepage_url"] == ""));
        assert!(has(&|d| d["offices"][0]["latitude"].is_null()));
        assert!(has(&|d| d["funding_rounds"]
            .as_array()
            .is_some_and(|f| f.len() > 1)));
        assert!(has(&|d| d["acquisition"].is_object()));
    }

    // Proves a generated NDJSON body splits back into the same documents.
    #[test]
    fn ndjson_round_trip() {
        let docs: Vec<Value> = companies(3, 40, 0.2).map(|g| g.doc).collect();
        let (_, records) = split(&ndjson(&docs)).unwrap();
        let lines: Vec<String> = docs.iter().map(Value::to_string).collect();
        let back: Vec<String> = records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.bytes).into_owned())
            .collect();
        assert!(back == lines, "records are the NDJSON lines byte for byte");
    }

    proptest! {
        // Proves valid records validate clean and broken ones break exactly their known rule.
        #[test]
        fn generated_records_validate_as_labelled(seed in any::<u64>(), index in 0..10_000u64) {
            let g = company(seed, index, 0.5);
            let got = validate_at(&g.doc, 2025).err().unwrap_or_default();
            let got: Vec<_> = got.into_iter().map(|v| (v.rule, v.pointer)).collect();
            let want: Vec<_> = g.broken.clone().map(|b| (b.rule, b.pointer)).into_iter().collect();
            prop_assert_eq!(got, want);
            if let Some(b) = &g.broken {
                prop_assert!(RULES.iter().any(|(name, _)| *name == b.rule));
            }
            prop_assert!(company(seed, index, 0.0).broken.is_none());
            prop_assert!(company(seed, index, 1.0).broken.is_some());
        }
    }
}
