//! The `company` kind: CrunchBase company documents (`companies.json`).
//!
//! Messy is valid: `null`, a missing field and a blank string all mean
//! absent; partial founding dates are normal. Unknown fields are kept in
//! [`Company::document`].

use super::dates::{days_in_month, parse_timestamp, PartialDate};
use super::money::Money;
use super::rules::{is_email, is_permalink, is_url, Violation, RULES};
use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// The typed projection of a company document: the columns users filter on,
/// plus the whole document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Company {
    /// `_id.$oid`, the MongoDB object id, if present.
    pub id: Option<String>,
    /// Company name, not blank.
    pub name: String,
    /// URL slug, not blank, ASCII letters, digits, `-`, `_`, `.`.
    pub permalink: String,
    /// CrunchBase category, e.g. `web`.
    pub category_code: Option<String>,
    /// Founding date from `founded_year`/`_month`/`_day` (needs a year).
    pub founded: Option<PartialDate>,
    /// Year the company died, if it did.
    pub deadpooled_year: Option<i32>,
    /// Head count.
    pub number_of_employees: Option<u64>,
    /// `total_money_raised`, parsed.
    pub total_money_raised: Option<Money>,
    /// Home page, an http(s) URL.
    pub homepage_url: Option<String>,
    /// Twitter handle as written.
    pub twitter_username: Option<String>,
    /// Contact email.
    pub email_address: Option<String>,
    /// Number of entries in `offices`.
    pub offices: usize,
    /// When the record was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When the record was last updated.
    pub updated_at: Option<DateTime<Utc>>,
    /// The whole document as uploaded, unknown fields included.
    pub document: Value,
}

/// Validates one document against every rule, with the clock's year as the
/// upper bound of plausible years.
pub fn validate(raw: &Value) -> Result<Company, Vec<Violation>> {
    validate_at(raw, Utc::now().year())
}

/// Validates one document; years up to `current_year + 1` are plausible.
/// Every violation of the record is reported, not only the first.
pub fn validate_at(raw: &Value, current_year: i32) -> Result<Company, Vec<Violation>> {
    let Some(doc) = raw.as_object() else {
        let message = "a company record must be a JSON object";
        return Err(vec![Violation::new("", "type.document", raw, message)]);
    };
    let mut c = Checker {
        doc,
        found: Vec::new(),
    };
    let years = 1800..=i64::from(current_year) + 1;
    let in_years = format!("must be in {years:?}");

    let name = c.text("name");
    c.required("name", name.is_some(), "name.required");
    let permalink = c.text("permalink");
    c.required("permalink", permalink.is_some(), "permalink.required");
    let permalink = c.keep(
        permalink,
        "permalink",
        "permalink.format",
        |p| is_permalink(p),
        "may hold only ASCII letters, digits, '-', '_' and '.'",
    );

    let before = c.found.len();
    let (year, month, day) = (
        c.int("founded_year"),
        c.int("founded_month"),
        c.int("founded_day"),
    );
    let year = c.keep(
        year,
        "founded_year",
        "founded.year_plausible",
        |y| years.contains(y),
        &in_years,
    );
    let month = c.keep(
        month,
        "founded_month",
        "founded.month_range",
        |m| (1..=12).contains(m),
        "must be in 1..=12",
    );
    let day = match (day, month) {
        (Some(_), None) if c.present("founded_month").is_none() => {
            c.fail(
                "founded_day",
                "founded.day_valid",
                "founded_day needs founded_month",
            );
            None
        }
        (Some(d), Some(m)) => {
            // Without a year, February may have 29 days.
            let max = days_in_month(year.map_or(2000, |y| y as i32), m as u8);
            let message = format!("must be in 1..={max} for month {m}");
            c.keep(
                Some(d),
                "founded_day",
                "founded.day_valid",
                |d| (1..=i64::from(max)).contains(d),
                &message,
            )
        }
        _ => None,
    };
    let founded = year
        .filter(|_| c.found.len() == before)
        .map(|y| PartialDate {
            year: y as i32,
            month: month.map(|m| m as u8),
            day: day.map(|d| d as u8),
        });

    // The data set writes 0 and 1 for "unknown" (the seed's own c.json has 1).
    let dead = c.int("deadpooled_year").filter(|y| !matches!(y, 0 | 1));
    let dead = c.keep(
        dead,
        "deadpooled_year",
        "deadpooled.year_plausible",
        |y| years.contains(y),
        &in_years,
    );
    let employees = c.int("number_of_employees");
    let employees = c.keep(
        employees,
        "number_of_employees",
        "employees.non_negative",
        |n| *n >= 0,
        "must not be negative",
    );
    let money = c
        .text("total_money_raised")
        .and_then(|s| match Money::parse(&s) {
            Ok(m) => Some(m),
            Err(e) => {
                c.fail("total_money_raised", "money.parse", e.to_string());
                None
            }
        });
    let urls = [
        "homepage_url",
        "crunchbase_url",
        "blog_url",
        "blog_feed_url",
    ]
    .map(|key| {
        let url = c.text(key);
        c.keep(
            url,
            key,
            "url.format",
            |u| is_url(u),
            "must be an http(s) URL with a host",
        )
    });
    let email = c.text("email_address");
    let email = c.keep(
        email,
        "email_address",
        "email.format",
        |e| is_email(e),
        "must look like local@domain.tld",
    );
    let created_at = c.timestamp("created_at", "created_at.parse");
    let updated_at = c.timestamp("updated_at", "updated_at.parse");
    let offices = c.offices();
    let [homepage_url, ..] = urls;

    let company = Company {
        id: doc
            .get("_id")
            .and_then(|id| id.get("$oid"))
            .and_then(Value::as_str)
            .map(str::to_string),
        name: name.unwrap_or_default(),
        permalink: permalink.unwrap_or_default(),
        category_code: c.text("category_code"),
        founded,
        deadpooled_year: dead.map(|y| y as i32),
        number_of_employees: employees.map(|n| n as u64),
        total_money_raised: money,
        homepage_url,
        twitter_username: c.text("twitter_username"),
        email_address: email,
        offices,
        created_at,
        updated_at,
        document: raw.clone(),
    };
    if c.found.is_empty() {
        Ok(company)
    } else {
        Err(c.found)
    }
}

/// `null` and blank strings mean absent.
fn is_absent(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// The `type.<field>` rule of a field (`office.latitude` for nested ones).
fn type_rule(field: &str) -> &'static str {
    let rule = RULES
        .iter()
        .find(|(name, _)| name.strip_prefix("type.") == Some(field));
    rule.map_or("type.document", |(name, _)| name)
}

/// Reads the fields of one document and collects violations.
struct Checker<'a> {
    doc: &'a Map<String, Value>,
    found: Vec<Violation>,
}

impl<'a> Checker<'a> {
    /// Records a violation at `pointer` by `value`.
    fn push(&mut self, pointer: &str, rule: &'static str, value: &Value, message: String) {
        self.found
            .push(Violation::new(pointer, rule, value, message));
    }

    /// Records a violation of the top-level field `key`.
    fn fail(&mut self, key: &str, rule: &'static str, message: impl Into<String>) {
        let value = self.doc.get(key).unwrap_or(&Value::Null);
        self.found
            .push(Violation::new(&format!("/{key}"), rule, value, message));
    }

    /// The field's value, `None` when absent.
    fn present(&self, key: &str) -> Option<&'a Value> {
        self.doc.get(key).filter(|v| !is_absent(v))
    }

    /// `value` if it passes `ok`; otherwise reports `rule` on `key`.
    fn keep<T>(
        &mut self,
        value: Option<T>,
        key: &str,
        rule: &'static str,
        ok: impl FnOnce(&T) -> bool,
        message: &str,
    ) -> Option<T> {
        match value {
            Some(v) if !ok(&v) => {
                self.fail(key, rule, format!("{key} {message}"));
                None
            }
            other => other,
        }
    }

    fn required(&mut self, key: &str, ok: bool, rule: &'static str) {
        if !ok && self.present(key).is_none() {
            self.fail(key, rule, format!("{key} is required"));
        }
    }

    /// A trimmed, non-blank string field.
    fn text(&mut self, key: &str) -> Option<String> {
        match self.present(key)? {
            Value::String(s) => Some(s.trim().to_string()),
            _ => {
                self.fail(key, type_rule(key), "expected a string");
                None
            }
        }
    }

    /// An integer field (`2005.0` is not one).
    fn int(&mut self, key: &str) -> Option<i64> {
        let n = self.present(key)?.as_i64();
        if n.is_none() {
            self.fail(key, type_rule(key), "expected an integer");
        }
        n
    }

    fn timestamp(&mut self, key: &str, parse_rule: &'static str) -> Option<DateTime<Utc>> {
        let v = self.present(key)?;
        if !matches!(v, Value::String(_) | Value::Object(_)) {
            self.fail(
                key,
                type_rule(key),
                "expected a string or a {\"$date\": ...} object",
            );
            return None;
        }
        parse_timestamp(v)
            .map_err(|e| self.fail(key, parse_rule, e.to_string()))
            .ok()
    }

    /// Checks each office's coordinates; returns how many offices there are.
    fn offices(&mut self) -> usize {
        let list = match self.present("offices") {
            None => return 0,
            Some(Value::Array(list)) => list,
            Some(_) => {
                self.fail("offices", "type.offices", "expected an array");
                return 0;
            }
        };
        for (i, office) in list.iter().enumerate() {
            let Some(office) = office.as_object() else {
                self.push(
                    &format!("/offices/{i}"),
                    "type.office",
                    office,
                    "expected an object".into(),
                );
                continue;
            };
            for (key, limit) in [("latitude", 90.0), ("longitude", 180.0)] {
                let pointer = format!("/offices/{i}/{key}");
                match office.get(key).filter(|v| !is_absent(v)) {
                    None => {}
                    Some(Value::Number(n)) if n.as_f64().is_some_and(|x| x.abs() <= limit) => {}
                    Some(v @ Value::Number(_)) => {
                        let rule = match key {
                            "latitude" => "office.latitude_range",
                            _ => "office.longitude_range",
                        };
                        let message = format!("{key} must be in -{limit}..={limit}");
                        self.push(&pointer, rule, v, message);
                    }
                    Some(v) => self.push(
                        &pointer,
                        type_rule(&format!("office.{key}")),
                        v,
                        "expected a number".into(),
                    ),
                }
            }
        }
        list.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A record in the style of the seed's `c.json`, written by hand.
    const C_JSON: &str = r#"{
      "_id": {"$oid": "52cdef7c4bab8bd675297d8a"},
      "name": "Wetpaint", "permalink": "abc2",
      "crunchbase_url": "http://www.crunchbase.com/company/wetpaint",
      "homepage_url": "http://wetpaint-inc.com", "blog_url": "http://digitalquarters.net/",
      "blog_feed_url": "http://digitalquarters.net/feed/", "twitter_username": "BachelrWetpaint",
      "category_code": "web", "number_of_employees": 47,
      "founded_year": 2005, "founded_month": 10, "founded_day": 17, "deadpooled_year": 1,
      "tag_list": "wiki, seattle, elowitz, media-industry", "alias_list": "",
      "email_address": "info@wetpaint.com", "phone_number": "206.859.6300",
      "description": "Technology Platform Company",
      "created_at": {"$date": 1180075887000}, "updated_at": "Sun Dec 08 07:15:44 UTC 2013",
      "overview": "<p>Wetpaint is a technology platform company that uses social media to build audiences.</p>",
      "image": {"available_sizes": [[[150, 75], "assets/images/resized/0000/3604/3604v14-max-150x150.jpg"]]},
      "products": [{"name": "Wikison Wetpaint", "permalink": "wetpaint-wiki"}],
      "relationships": [{"is_past": false, "title": "Co-Founder/CEO", "person": {"first_name": "Ben", "last_name": "Elowitz", "permalink": "ben-elowitz"}}],
      "competitions": [{"competitor": {"name": "Wikia", "permalink": "wikia"}}],
      "providerships": [], "total_money_raised": "$39.8M",
      "funding_rounds": [{"id": 888, "round_code": "a", "source_url": "http://seattlepi.nwsource.com/business/246734_wiki02.html",
        "source_description": "", "raised_amount": 5250000, "raised_currency_code": "USD",
        "funded_year": 2005, "funded_month": 10, "funded_day": 1,
        "investments": [{"company": null, "financial_org": {"name": "Trinity Ventures", "permalink": "trinity-ventures"}, "person": null}]}],
      "investments": [],
      "acquisition": {"price_amount": 30000000, "price_currency_code": "USD", "term_code": "cash_and_stock",
        "acquired_year": 2013, "acquired_month": 12, "acquired_day": 16, "acquiring_company": {"name": "Viggle", "permalink": "viggle"}},
      "acquisitions": [],
      "offices": [
        {"description": "", "address1": "710 - 2nd Avenue", "address2": "Suite 1100", "zip_code": "98104", "city": "Seattle",
         "state_code": "WA", "country_code": "USA", "latitude": 47.603122, "longitude": -122.333253},
        {"description": "", "address1": "270 Lafayette Street", "address2": "Suite 505", "zip_code": "10012", "city": "New York",
         "state_code": "NY", "country_code": "USA", "latitude": 40.7237306, "longitude": -73.9964312}],
      "milestones": [{"id": 5869, "stoned_year": 2010, "source_text": null, "stoneable": {"name": "Wetpaint", "permalink": "wetpaint"}}],
      "video_embeds": [], "screenshots": [], "external_links": [], "partners": []
    }"#;

    fn seed_doc() -> Value {
        serde_json::from_str(C_JSON).unwrap()
    }

    /// The seed record with top-level fields replaced by `patch`.
    fn with(patch: Value) -> Value {
        let mut doc = seed_doc();
        if let (Some(map), Value::Object(patch)) = (doc.as_object_mut(), patch) {
            map.extend(patch);
        }
        doc
    }

    fn broken(doc: &Value) -> Vec<(String, &'static str)> {
        match validate_at(doc, 2025) {
            Ok(_) => Vec::new(),
            Err(v) => v.into_iter().map(|v| (v.pointer, v.rule)).collect(),
        }
    }

    // Proves the seed's c.json style record is valid and projects its columns.
    #[test]
    fn seed_style_record() {
        let c = validate_at(&seed_doc(), 2025).unwrap();
        assert_eq!(
            (c.name.as_str(), c.permalink.as_str(), c.id.as_deref()),
            ("Wetpaint", "abc2", Some("52cdef7c4bab8bd675297d8a"))
        );
        assert_eq!(
            c.founded,
            Some(PartialDate {
                year: 2005,
                month: Some(10),
                day: Some(17)
            })
        );
        assert_eq!(
            (c.number_of_employees, c.offices, c.deadpooled_year),
            (Some(47), 2, None)
        );
        assert_eq!(
            c.total_money_raised,
            Some(Money {
                minor: 3_980_000_000,
                currency: "USD".into()
            })
        );
        assert_eq!(
            c.created_at.map(|t| t.to_rfc3339()),
            Some("2007-05-25T06:51:27+00:00".into())
        );
        assert_eq!(
            c.updated_at.map(|t| t.to_rfc3339()),
            Some("2013-12-08T07:15:44+00:00".into())
        );
        assert_eq!(c.homepage_url.as_deref(), Some("http://wetpaint-inc.com"));
        assert_eq!(
            c.document["milestones"][0]["id"], 5869,
            "unknown fields are kept"
        );
        assert!(validate(&seed_doc()).is_ok(), "clock-based variant agrees");
    }

    // Proves blank strings, nulls, partial dates and every timestamp shape are valid.
    #[test]
    fn messy_but_valid() {
        let blanks = json!({
            "homepage_url": "", "blog_url": " ", "email_address": "", "total_money_raised": "",
            "category_code": null, "number_of_employees": "", "founded_month": "",
            "founded_day": null, "created_at": "", "updated_at": null, "offices": null,
            "twitter_username": "", "unknown": {"x": [1]},
        });
        let c = validate_at(&with(blanks), 2025).unwrap();
        assert_eq!(
            c.founded,
            Some(PartialDate {
                year: 2005,
                month: None,
                day: None
            })
        );
        assert_eq!(
            (c.homepage_url, c.email_address, c.created_at, c.offices),
            (None, None, None, 0)
        );
        let c = validate_at(&with(json!({"founded_day": null})), 2025).unwrap();
        assert_eq!(
            c.founded,
            Some(PartialDate {
                year: 2005,
                month: Some(10),
                day: None
            })
        );
        let patches = r#"
            {"founded_year": null, "founded_month": null, "founded_day": null}
            {"founded_year": 2004, "founded_month": 2, "founded_day": 29}
            {"founded_year": null, "founded_month": 2, "founded_day": 29}
            {"founded_year": 2026, "deadpooled_year": 0}
            {"deadpooled_year": 2012, "number_of_employees": 0}
            {"created_at": {"$date": "2007-05-25T06:51:27Z"}, "updated_at": {"$date": 1386486944000}}
            {"created_at": {"$date": {"$numberLong": "1180075887000"}}}
            {"created_at": "Fri May 25 06:51:27 UTC 2007"}
            {"offices": [], "total_money_raised": "$0"}
            {"offices": [{"latitude": null}, {"latitude": "", "longitude": -180.0}, {"latitude": 90, "longitude": 180}]}
            {"total_money_raised": "€500k", "homepage_url": "https://www.example.co.uk:8443/a?b=c"}
            {"name": " Wetpaint ", "permalink": "wet_paint.v2-1"}"#;
        for patch in patches.trim().lines() {
            assert_eq!(
                broken(&with(serde_json::from_str(patch).unwrap())),
                [],
                "{patch}"
            );
        }
    }

    // Proves each rule fires, alone and at the right pointer, on its invalid input.
    #[test]
    fn each_rule() {
        let cases = r#"
            name.required             /name                  {"name": ""}
            name.required             /name                  {"name": null}
            permalink.required        /permalink             {"permalink": "  "}
            permalink.format          /permalink             {"permalink": "abc 2"}
            founded.year_plausible    /founded_year          {"founded_year": 1799}
            founded.year_plausible    /founded_year          {"founded_year": 2027}
            founded.month_range       /founded_month         {"founded_month": 13}
            founded.month_range       /founded_month         {"founded_month": 0, "founded_day": null}
            founded.day_valid         /founded_day           {"founded_month": 2, "founded_day": 30}
            founded.day_valid         /founded_day           {"founded_year": 2005, "founded_month": 2, "founded_day": 29}
            founded.day_valid         /founded_day           {"founded_month": null, "founded_day": 3}
            deadpooled.year_plausible /deadpooled_year       {"deadpooled_year": 203}
            deadpooled.year_plausible /deadpooled_year       {"deadpooled_year": -1}
            office.latitude_range     /offices/1/latitude    {"offices": [{}, {"latitude": 123.0}]}
            office.latitude_range     /offices/0/latitude    {"offices": [{"latitude": -90.5}]}
            office.longitude_range    /offices/0/longitude   {"offices": [{"longitude": 180.01}]}
            email.format              /email_address         {"email_address": "info at wetpaint.com"}
            url.format                /homepage_url          {"homepage_url": "wetpaint-inc.com"}
            url.format                /crunchbase_url        {"crunchbase_url": "http://"}
            url.format                /blog_url              {"blog_url": "htp://x.com"}
            url.format                /blog_feed_url         {"blog_feed_url": "http://a b.com/feed"}
            money.parse               /total_money_raised    {"total_money_raised": "$abcM"}
            employees.non_negative    /number_of_employees   {"number_of_employees": -3}
            created_at.parse          /created_at            {"created_at": {"$date": "yesterday"}}
            created_at.parse          /created_at            {"created_at": "Mon May 25 06:51:27 UTC 2007"}
            updated_at.parse          /updated_at            {"updated_at": "2013-13-08"}
            type.name                 /name                  {"name": 5}
            type.permalink            /permalink             {"permalink": ["abc2"]}
            type.category_code        /category_code         {"category_code": 1}
            type.homepage_url         /homepage_url          {"homepage_url": true}
            type.crunchbase_url       /crunchbase_url        {"crunchbase_url": {}}
            type.blog_url             /blog_url              {"blog_url": 1}
            type.blog_feed_url        /blog_feed_url         {"blog_feed_url": 1}
            type.twitter_username     /twitter_username      {"twitter_username": 1}
            type.email_address        /email_address         {"email_address": 1}
            type.total_money_raised   /total_money_raised    {"total_money_raised": 39800000}
            type.number_of_employees  /number_of_employees   {"number_of_employees": 4.5}
            type.founded_year         /founded_year          {"founded_year": "2005"}
            type.founded_month        /founded_month         {"founded_month": 10.0}
            type.founded_day          /founded_day           {"founded_day": "17"}
            type.deadpooled_year      /deadpooled_year       {"deadpooled_year": true}
            type.created_at           /created_at            {"created_at": 1180075887000}
            type.updated_at           /updated_at            {"updated_at": [1]}
            type.offices              /offices               {"offices": {"city": "Seattle"}}
            type.office               /offices/1             {"offices": [{}, "Seattle"]}
            type.office.latitude      /offices/0/latitude    {"offices": [{"latitude": "47.6"}]}
            type.office.longitude     /offices/0/longitude   {"offices": [{"longitude": [0]}]}"#;
        let mut covered = vec!["type.document".to_string()];
        for line in cases.trim().lines() {
            let mut parts = line.split_whitespace();
            let (rule, pointer) = (parts.next().unwrap(), parts.next().unwrap());
            let patch = parts.collect::<Vec<_>>().join(" ");
            let got = broken(&with(serde_json::from_str(&patch).unwrap()));
            assert_eq!(got, [(pointer.to_string(), rule)], "{patch}");
            covered.push(rule.to_string());
        }
        let v = validate_at(&json!([1]), 2025).unwrap_err();
        assert_eq!((v[0].pointer.as_str(), v[0].rule), ("", "type.document"));
        covered.sort_unstable();
        covered.dedup();
        let mut all: Vec<_> = RULES.iter().map(|(n, _)| n.to_string()).collect();
        all.sort_unstable();
        assert_eq!(covered, all, "every rule in RULES has an invalid case");
    }

    // Proves every violation of a record is reported, with value and message.
    #[test]
    fn all_violations_reported() {
        let long = format!("${}M", "x".repeat(200));
        let doc = with(json!({
            "name": "", "founded_month": 13, "email_address": "nope", "total_money_raised": long,
            "offices": [{"latitude": 123, "longitude": -200}],
        }));
        let v = validate_at(&doc, 2025).unwrap_err();
        let rules: Vec<_> = v.iter().map(|v| v.rule).collect();
        assert_eq!(
            rules,
            [
                "name.required",
                "founded.month_range",
                "money.parse",
                "email.format",
                "office.latitude_range",
                "office.longitude_range"
            ]
        );
        assert_eq!((v[1].value.as_str(), v[4].value.as_str()), ("13", "123"));
        assert_eq!(v[2].value.chars().count(), 100);
        assert!(v.iter().all(|v| !v.message.is_empty()));
    }
}
