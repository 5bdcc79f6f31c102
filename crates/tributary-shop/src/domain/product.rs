//! The product record of `shop_products` / `analytic_products_filtered` and
//! the recommendation record of `personal_recom`, in their wire shape.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::join::JoinKey;
use super::{as_string, parse_object, Fields, ParseError};

/// A product as a store publishes it. Ids and `index` are strings on the
/// wire; `created_at` / `updated_at` are kept as the producer wrote them
/// (the seed wrote Go's `time.Now().String()`, the emulator writes RFC 3339).
///
/// Build one from untrusted bytes with [`Product::parse`]; the derived
/// `Deserialize` does not check the rules below and is meant for records this
/// system wrote itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Unique id, the message key of `shop_products`. Not blank.
    pub product_id: String,
    /// Display name; the filter and the join look at it. Not blank.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Price.
    pub price: Price,
    /// Category, e.g. `Smartphones`.
    pub category: String,
    /// Brand, e.g. `Apple`.
    pub brand: String,
    /// Stock levels.
    pub stock: Stock,
    /// Stock keeping unit.
    pub sku: String,
    /// Free-form tags.
    pub tags: Vec<String>,
    /// Pictures.
    pub images: Vec<Image>,
    /// Technical data.
    pub specifications: Specifications,
    /// When the product was created, as the producer wrote it.
    pub created_at: String,
    /// When the product was last changed, as the producer wrote it.
    pub updated_at: String,
    /// The store's own index of the product.
    pub index: String,
    /// The store that sells it. Not blank.
    pub store_id: String,
}

/// A price: an integer amount in whole units of `currency` (as the seed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    /// Amount, zero or more.
    pub amount: i64,
    /// Currency code, e.g. `RUB`. Not blank.
    pub currency: String,
}

/// Stock levels, both zero or more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stock {
    /// Units that can be sold.
    pub available: i64,
    /// Units held for open orders.
    pub reserved: i64,
}

/// A picture of the product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// Where the picture is.
    pub url: String,
    /// Alternative text.
    pub alt: String,
}

/// Technical data, free text as the stores send it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Specifications {
    /// e.g. `187 g`.
    pub weight: String,
    /// e.g. `147.6 x 71.6 x 7.8 mm`.
    pub dimensions: String,
    /// e.g. `20 h`.
    pub battery_life: String,
    /// e.g. `IP68`.
    pub water_resistance: String,
}

impl Product {
    /// Parses one JSON record.
    ///
    /// # Errors
    /// A [`ParseError`] naming the first field that is missing, has the wrong
    /// type, or breaks a rule (blank id or name, negative amount or stock).
    pub fn parse(json: &[u8]) -> Result<Self, ParseError> {
        // Fast path: the typed decoder (no intermediate JSON tree), then the
        // rules it does not know. Whatever it refuses takes the checked path,
        // which names the field; what it accepts, the checked path accepts
        // too, as the same product (tests: `fast_path_agrees_with_the_checked_parse`).
        if let Ok(p) = serde_json::from_slice::<Self>(json) {
            if p.follows_rules() {
                return Ok(p);
            }
        }
        Self::parse_checked(json)
    }

    /// The field-by-field parse behind [`Product::parse`]'s errors.
    fn parse_checked(json: &[u8]) -> Result<Self, ParseError> {
        let value = parse_object(json)?;
        Self::from_fields(&Fields::of(&value, String::new())?)
    }

    /// The rules the derived decoder does not check (see the fields).
    fn follows_rules(&self) -> bool {
        let filled = |s: &str| !s.trim().is_empty();
        filled(&self.product_id)
            && filled(&self.name)
            && filled(&self.price.currency)
            && filled(&self.store_id)
            && self.price.amount >= 0
            && self.stock.available >= 0
            && self.stock.reserved >= 0
    }

    /// The key this product joins on: its normalised name.
    pub fn join_key(&self) -> JoinKey {
        JoinKey::new(&self.name)
    }

    fn from_fields(f: &Fields<'_>) -> Result<Self, ParseError> {
        let price = f.object("price")?;
        let stock = f.object("stock")?;
        let specs = f.object("specifications")?;
        let tags = f
            .array("tags")?
            .iter()
            .enumerate()
            .map(|(i, v)| as_string(v, || format!("{}[{i}]", f.path("tags"))))
            .collect::<Result<_, _>>()?;
        let images = f
            .array("images")?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let img = Fields::of(v, format!("{}[{i}]", f.path("images")))?;
                Ok(Image {
                    url: img.string("url")?,
                    alt: img.string("alt")?,
                })
            })
            .collect::<Result<_, ParseError>>()?;
        Ok(Self {
            product_id: f.required("product_id")?,
            name: f.required("name")?,
            description: f.string("description")?,
            price: Price {
                amount: price.count("amount")?,
                currency: price.required("currency")?,
            },
            category: f.string("category")?,
            brand: f.string("brand")?,
            stock: Stock {
                available: stock.count("available")?,
                reserved: stock.count("reserved")?,
            },
            sku: f.string("sku")?,
            tags,
            images,
            specifications: Specifications {
                weight: specs.string("weight")?,
                dimensions: specs.string("dimensions")?,
                battery_life: specs.string("battery_life")?,
                water_resistance: specs.string("water_resistance")?,
            },
            created_at: f.string("created_at")?,
            updated_at: f.string("updated_at")?,
            index: f.string("index")?,
            store_id: f.required("store_id")?,
        })
    }
}

/// A search prompt answered by a product: the record of `personal_recom`,
/// keyed by `prompt_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The prompt's id.
    pub prompt_id: Uuid,
    /// Who asked.
    pub user_id: String,
    /// What they asked for, as typed.
    pub find: String,
    /// The product that answers it.
    pub product: Product,
    /// Event time (ms since the Unix epoch) of the later of the two records.
    pub matched_at: i64,
}

impl Recommendation {
    /// The idempotent key `"{prompt_id}:{product_id}"`: a redelivered
    /// recommendation has the same key, so a sink upserting by it dedupes.
    pub fn key(&self) -> String {
        format!("{}:{}", self.prompt_id, self.product.product_id)
    }

    /// Parses one JSON record.
    ///
    /// # Errors
    /// A [`ParseError`] naming the offending field (`product.*` for the
    /// embedded product).
    pub fn parse(json: &[u8]) -> Result<Self, ParseError> {
        let value = parse_object(json)?;
        let f = Fields::of(&value, String::new())?;
        Ok(Self {
            prompt_id: f.uuid("prompt_id")?,
            user_id: f.required("user_id")?,
            find: f.required("find")?,
            product: Product::from_fields(&f.object("product")?)?,
            matched_at: f.int("matched_at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::domain::Emulator;

    fn sample() -> serde_json::Value {
        serde_json::to_value(Emulator::new(7).product(0, chrono::DateTime::UNIX_EPOCH)).unwrap()
    }

    // Proves a product survives a JSON round trip through `parse` unchanged.
    #[test]
    fn parse_round_trips() {
        let json = sample().to_string();
        let p = Product::parse(json.as_bytes()).unwrap();
        assert_eq!(serde_json::to_value(&p).unwrap().to_string(), json);
    }

    // Proves parse errors name the offending field, including nested ones.
    #[test]
    fn parse_errors_name_the_field() {
        let cases: [(&str, serde_json::Value); 5] = [
            ("product_id", serde_json::json!(42)),
            ("name", serde_json::json!("  ")),
            (
                "price",
                serde_json::json!({"amount": "10", "currency": "RUB"}),
            ),
            ("stock", serde_json::json!({"available": -1, "reserved": 0})),
            ("images", serde_json::json!([{"url": "u"}])),
        ];
        let expected = [
            "product_id",
            "name",
            "price.amount",
            "stock.available",
            "images[0].alt",
        ];
        for ((field, bad), want) in cases.into_iter().zip(expected) {
            let mut v = sample();
            v[field] = bad;
            let err = Product::parse(v.to_string().as_bytes()).unwrap_err();
            assert_eq!(err.field, want, "{err}");
        }
        let mut v = sample();
        v.as_object_mut().unwrap().remove("sku");
        assert_eq!(
            Product::parse(v.to_string().as_bytes())
                .unwrap_err()
                .to_string(),
            "sku: missing"
        );
        assert_eq!(Product::parse(b"[1]").unwrap_err().field, "$");
        assert_eq!(Product::parse(b"{").unwrap_err().field, "$");
    }

    // Proves the typed fast path of `parse` never disagrees with the checked parse: for the
    // sample with every field (nested ones too) replaced by each of a dozen wrong or edge
    // values, or removed, or joined by an unknown field, or repeated as a duplicate key, both
    // give the same product or the same error.
    #[test]
    fn fast_path_agrees_with_the_checked_parse() {
        let odd = [
            serde_json::json!(null),
            serde_json::json!(""),
            serde_json::json!(" \t"),
            serde_json::json!("x"),
            serde_json::json!(-1),
            serde_json::json!(0),
            serde_json::json!(7),
            serde_json::json!(1.5),
            serde_json::json!(1e3),
            serde_json::json!(u64::MAX),
            serde_json::json!(true),
            serde_json::json!([]),
            serde_json::json!(["a"]),
            serde_json::json!({}),
            serde_json::json!([{"url": "u", "alt": "a"}]),
        ];
        let mut docs = vec![sample().to_string()];
        let base = sample();
        let mut paths: Vec<Vec<String>> = Vec::new();
        for (k, v) in base.as_object().unwrap() {
            paths.push(vec![k.clone()]);
            if let Some(inner) = v.as_object() {
                paths.extend(inner.keys().map(|k2| vec![k.clone(), k2.clone()]));
            }
        }
        paths.push(vec!["images".into(), "0".into(), "alt".into()]);
        for path in &paths {
            for bad in &odd {
                let mut v = base.clone();
                let mut at = &mut v;
                for p in path {
                    at = match p.parse::<usize>() {
                        Ok(i) => &mut at[i],
                        Err(_) => &mut at[p.as_str()],
                    };
                }
                *at = bad.clone();
                docs.push(v.to_string());
            }
            let mut v = base.clone();
            if let [top] = path.as_slice() {
                v.as_object_mut().unwrap().remove(top);
            } else if let [top, inner] = path.as_slice() {
                if let Some(o) = v[top.as_str()].as_object_mut() {
                    o.remove(inner);
                }
            }
            docs.push(v.to_string());
        }
        let mut extra = base.clone();
        extra["unknown_field"] = serde_json::json!({"any": 1});
        docs.push(extra.to_string());
        let text = base.to_string();
        docs.push(text.replacen('{', "{\"name\": \"Other\", ", 1));
        docs.push(text.replacen('{', "{\"name\": \" \", ", 1));
        docs.push(format!("{text} "));
        docs.push(format!("{text}x"));
        let mut accepted = 0;
        for doc in &docs {
            let fast = Product::parse(doc.as_bytes());
            let checked = Product::parse_checked(doc.as_bytes());
            assert_eq!(format!("{fast:?}"), format!("{checked:?}"), "{doc}");
            accepted += usize::from(fast.is_ok());
        }
        assert!(
            accepted > 10 && accepted < docs.len() / 2,
            "{accepted} of {}",
            docs.len()
        );
    }

    // Proves a recommendation round-trips and its key is prompt id:product id.
    #[test]
    fn recommendation_key_and_parse() {
        let product: Product = serde_json::from_value(sample()).unwrap();
        let rec = Recommendation {
            prompt_id: Uuid::nil(),
            user_id: "u1".into(),
            find: "x".into(),
            product: product.clone(),
            matched_at: 5,
        };
        assert_eq!(rec.key(), format!("{}:{}", Uuid::nil(), product.product_id));
        let json = serde_json::to_vec(&rec).unwrap();
        assert_eq!(Recommendation::parse(&json).unwrap(), rec);
        let mut v = serde_json::to_value(&rec).unwrap();
        v["product"]["price"]["currency"] = serde_json::json!(null);
        let err = Recommendation::parse(v.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.field, "product.price.currency");
    }
}
