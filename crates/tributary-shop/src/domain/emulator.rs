//! The `shop` emulator: deterministic products (and prompts) from a seed,
//! with realistic names from a built-in catalogue so filters and prompts
//! find them.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use uuid::Uuid;

use super::{Image, Price, Product, Prompt, Specifications, Stock};

/// The SplitMix64 generator (Steele, Lea, Flood 2014): tiny, fast, and good
/// enough for test data. Not for anything secret.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

/// SplitMix64's increment (the golden ratio, odd).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function, a bijection on `u64`.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SplitMix64 {
    /// A generator starting at `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix64(self.state)
    }

    /// Uniform in `0..n` (0 when `n` is 0), by multiply-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi` (`lo` when `hi < lo`).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = hi.saturating_sub(lo).max(0) as u64;
        lo.saturating_add(self.below(span.saturating_add(1)) as i64)
    }

    /// A uniformly chosen element.
    ///
    /// # Panics
    /// When `items` is empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A product category with plausible ranges for its numbers.
struct Category {
    name: &'static str,
    price: (i64, i64),
    weight_g: (i64, i64),
    battery_h: (i64, i64),
    /// Width, height, depth ranges in mm.
    dims_mm: [(i64, i64); 3],
    water: &'static [&'static str],
}

const PHONES: Category = Category {
    name: "Smartphones",
    price: (15_000, 160_000),
    weight_g: (150, 240),
    battery_h: (18, 32),
    dims_mm: [(146, 164), (70, 78), (7, 9)],
    water: &["IP67", "IP68"],
};
const WATCHES: Category = Category {
    name: "Smartwatches",
    price: (4_000, 90_000),
    weight_g: (25, 65),
    battery_h: (18, 336),
    dims_mm: [(40, 49), (38, 45), (9, 14)],
    water: &["5 ATM", "10 ATM", "IP68"],
};
const AUDIO: Category = Category {
    name: "Headphones",
    price: (3_000, 60_000),
    weight_g: (5, 390),
    battery_h: (6, 60),
    dims_mm: [(20, 190), (20, 210), (20, 80)],
    water: &["none", "IPX4", "IP54"],
};
const TABLETS: Category = Category {
    name: "Tablets",
    price: (20_000, 190_000),
    weight_g: (290, 700),
    battery_h: (9, 14),
    dims_mm: [(195, 282), (134, 215), (5, 8)],
    water: &["none"],
};
const LAPTOPS: Category = Category {
    name: "Laptops",
    price: (60_000, 350_000),
    weight_g: (1_100, 2_200),
    battery_h: (10, 22),
    dims_mm: [(300, 360), (210, 250), (11, 18)],
    water: &["none"],
};
const SPEAKERS: Category = Category {
    name: "Speakers",
    price: (3_000, 40_000),
    weight_g: (200, 1_500),
    battery_h: (10, 24),
    dims_mm: [(90, 230), (70, 100), (70, 100)],
    water: &["IP67", "IPX7"],
};

/// A product line: every model gives the name `"{brand} {line} {model}"`
/// (or `"{brand} {model}"` when the line is empty).
struct Line {
    brand: &'static str,
    line: &'static str,
    category: &'static Category,
    models: &'static [&'static str],
}

const fn line(
    brand: &'static str,
    line: &'static str,
    category: &'static Category,
    models: &'static [&'static str],
) -> Line {
    Line {
        brand,
        line,
        category,
        models,
    }
}

#[rustfmt::skip] // a table reads better one line per product line
const CATALOGUE: &[Line] = &[
    line("Apple", "iPhone", &PHONES, &["15", "15 Plus", "15 Pro", "15 Pro Max", "16", "16 Pro"]),
    line("Apple", "Watch", &WATCHES, &["Series 9", "Series 10", "Ultra 2", "SE"]),
    line("Apple", "AirPods", &AUDIO, &["Pro 2", "Max", "4"]),
    line("Apple", "iPad", &TABLETS, &["Air 11", "Pro 13", "mini 7"]),
    line("Apple", "MacBook", &LAPTOPS, &["Air 13", "Air 15", "Pro 14"]),
    line("Samsung", "Galaxy", &PHONES, &["S24", "S24 Ultra", "A55", "Z Flip 6"]),
    line("Samsung", "Galaxy Watch", &WATCHES, &["6", "6 Classic", "7", "Ultra"]),
    line("Samsung", "Galaxy Buds", &AUDIO, &["2 Pro", "3", "FE"]),
    line("Samsung", "Galaxy Tab", &TABLETS, &["S9", "S9 FE", "A9"]),
    line("Google", "Pixel", &PHONES, &["8", "8 Pro", "9", "9 Pro"]),
    line("Google", "Pixel Watch", &WATCHES, &["2", "3"]),
    line("Google", "Pixel Buds", &AUDIO, &["Pro 2"]),
    line("Xiaomi", "", &PHONES, &["14", "14 Ultra"]),
    line("Xiaomi", "Redmi Note", &PHONES, &["13", "13 Pro"]),
    line("Xiaomi", "Smart Band", &WATCHES, &["8", "9"]),
    line("Xiaomi", "Pad", &TABLETS, &["6", "6S Pro"]),
    line("Sony", "", &AUDIO, &["WH-1000XM5", "WF-1000XM5"]),
    line("Sony", "Xperia", &PHONES, &["1 VI", "10 VI"]),
    line("Huawei", "Watch GT", &WATCHES, &["4", "5"]),
    line("Huawei", "MatePad", &TABLETS, &["11.5", "Pro 13.2"]),
    line("Huawei", "Pura", &PHONES, &["70", "70 Pro"]),
    line("Garmin", "Forerunner", &WATCHES, &["265", "965"]),
    line("Garmin", "Fenix", &WATCHES, &["7", "8"]),
    line("JBL", "Flip", &SPEAKERS, &["6"]),
    line("JBL", "Charge", &SPEAKERS, &["5"]),
    line("JBL", "Tune", &AUDIO, &["770NC"]),
    line("Lenovo", "ThinkPad", &LAPTOPS, &["X1 Carbon", "T14"]),
];

const ADJECTIVES: &[&str] = &["Compact", "Powerful", "Light", "Durable", "Elegant", "Fast"];
const FEATURES: &[&str] = &[
    "an all-day battery",
    "a bright display",
    "fast charging",
    "a premium finish",
    "great sound",
];
const TAGS: &[&str] = &["new", "bestseller", "sale", "gift", "premium", "wireless"];

fn name_of(line: &Line, model: &str) -> String {
    if line.line.is_empty() {
        format!("{} {model}", line.brand)
    } else {
        format!("{} {} {model}", line.brand, line.line)
    }
}

/// Emulated stores publishing products. Everything a product contains is a
/// pure function of `(seed, index, now)`.
#[derive(Debug, Clone)]
pub struct Emulator {
    seed: u64,
    stores: u64,
    next_index: u64,
}

impl Emulator {
    /// Five stores, starting at index 0.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            stores: 5,
            next_index: 0,
        }
    }

    /// Spreads products over `stores` stores (at least one).
    pub fn with_stores(mut self, stores: u64) -> Self {
        self.stores = stores.max(1);
        self
    }

    /// Every product name the emulator can produce (for prompts and tests).
    pub fn catalogue() -> Vec<String> {
        CATALOGUE
            .iter()
            .flat_map(|l| l.models.iter().map(move |m| name_of(l, m)))
            .collect()
    }

    /// The product at `index`, stamped relative to `now`. Its `product_id`
    /// is UUID-shaped and distinct for every `(seed, index)`: the high half
    /// is a bijection of the index (for one seed), the low half of the seed.
    pub fn product(&self, index: u64, now: DateTime<Utc>) -> Product {
        let hi = mix64(mix64(self.seed).wrapping_add(index.wrapping_mul(GAMMA)));
        let lo = mix64(self.seed ^ 0x5348_4f50); // "SHOP"
        let product_id = Uuid::from_u64_pair(hi, lo).to_string();
        let mut rng = SplitMix64::new(hi ^ lo);

        let line = rng.pick(CATALOGUE);
        let cat = line.category;
        let model = *rng.pick(line.models);
        let name = name_of(line, model);
        let amount = rng.range(cat.price.0 / 1_000, cat.price.1 / 1_000) * 1_000 - 10;
        let available = rng.range(0, 500);
        let reserved = rng.range(0, available.min(50));
        let mut tags = vec![cat.name.to_lowercase(), line.brand.to_lowercase()];
        for _ in 0..rng.range(1, 2) {
            let tag = rng.pick(TAGS).to_string();
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        let images = (1..=rng.range(1, 3))
            .map(|n| Image {
                url: format!("https://img.example.com/products/{product_id}/{n}.jpg"),
                alt: format!("{name}, view {n}"),
            })
            .collect();
        let [w, h, d] = cat.dims_mm.map(|(a, b)| rng.range(a, b));
        let specifications = Specifications {
            weight: format!("{} g", rng.range(cat.weight_g.0, cat.weight_g.1)),
            dimensions: format!("{w} x {h} x {d} mm"),
            battery_life: format!("{} h", rng.range(cat.battery_h.0, cat.battery_h.1)),
            water_resistance: rng.pick(cat.water).to_string(),
        };
        let created = now - Duration::minutes(rng.range(0, 365 * 24 * 60));
        let updated = created + (now - created) / 2;
        let description = format!(
            "{}: {} {} with {}.",
            name,
            rng.pick(ADJECTIVES),
            cat.name.to_lowercase(),
            rng.pick(FEATURES)
        );
        let brand3: String = line
            .brand
            .chars()
            .take(3)
            .collect::<String>()
            .to_uppercase();
        Product {
            sku: format!("{brand3}-{index:08}"),
            product_id,
            description,
            price: Price {
                amount,
                currency: "RUB".to_owned(),
            },
            category: cat.name.to_owned(),
            brand: line.brand.to_owned(),
            stock: Stock {
                available,
                reserved,
            },
            tags,
            images,
            specifications,
            created_at: created.to_rfc3339_opts(SecondsFormat::Millis, true),
            updated_at: updated.to_rfc3339_opts(SecondsFormat::Millis, true),
            index: index.to_string(),
            store_id: format!("store-{}", 1 + rng.below(self.stores)),
            name,
        }
    }

    /// The next product (indices count up from 0).
    pub fn next_product(&mut self, now: DateTime<Utc>) -> Product {
        let p = self.product(self.next_index, now);
        self.next_index = self.next_index.wrapping_add(1);
        p
    }

    /// A search prompt for a catalogue name, typed the way people type
    /// (sometimes lowercase, stray spaces), by one of `users` users. The id
    /// is a version-4 UUID drawn from the seed, so it is deterministic too.
    pub fn prompt(&self, index: u64, users: u64) -> Prompt {
        let mut rng =
            SplitMix64::new(mix64(self.seed ^ 0x4649_4e44).wrapping_add(index.wrapping_mul(GAMMA)));
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        let line = rng.pick(CATALOGUE);
        let model = *rng.pick(line.models);
        let name = name_of(line, model);
        let find = match rng.below(3) {
            0 => name,
            1 => name.to_lowercase(),
            _ => format!(" {} ", name.replace(' ', "  ")),
        };
        Prompt {
            id: uuid::Builder::from_random_bytes(bytes).into_uuid(),
            user_id: format!("user-{}", 1 + rng.below(users.max(1))),
            find,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashSet;

    use super::*;
    use crate::domain::{Filter, FilterSpec};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z")
            .unwrap()
            .to_utc()
    }

    // Proves the generator is standard SplitMix64 (reference outputs for seed 0).
    #[test]
    fn splitmix64_reference_vector() {
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
        assert!((0..1000).all(|_| r.range(3, 5) >= 3 && r.range(3, 5) <= 5));
    }

    // Proves products are deterministic per (seed, index) and ids are unique across indices and seeds.
    #[test]
    fn deterministic_and_unique() {
        let a = Emulator::new(42);
        assert_eq!(a.product(7, now()), a.product(7, now()));
        let mut seq = Emulator::new(42);
        let _ = seq.next_product(now());
        assert_eq!(seq.next_product(now()), a.product(1, now()));
        let mut ids = HashSet::new();
        for seed in 0..3 {
            let e = Emulator::new(seed);
            for i in 0..5_000 {
                assert!(ids.insert(e.product(i, now()).product_id));
            }
        }
        assert_ne!(a.prompt(1, 10), a.prompt(2, 10));
        assert_eq!(a.prompt(1, 10), a.prompt(1, 10));
        assert_eq!(a.prompt(1, 10).id.get_version_num(), 4);
    }

    // Proves generated records have the wire shape, realistic names, and that filters and prompts find them.
    #[test]
    fn realistic_and_parseable() {
        let names = Emulator::catalogue();
        assert!(names.contains(&"Apple iPhone 15 Pro".to_owned()));
        assert!(names.contains(&"Samsung Galaxy Watch 6".to_owned()));
        let e = Emulator::new(9).with_stores(3);
        let products: Vec<Product> = (0..300).map(|i| e.product(i, now())).collect();
        for p in &products {
            let json = serde_json::to_vec(p).unwrap();
            assert_eq!(&Product::parse(&json).unwrap(), p);
            assert!(names.contains(&p.name) && p.name.starts_with(&p.brand));
            assert!(["store-1", "store-2", "store-3"].contains(&p.store_id.as_str()));
            assert!(p.stock.reserved <= p.stock.available && p.price.amount > 0);
        }
        let iphone = Filter::compile(&FilterSpec::substring("iphone", 0)).unwrap();
        assert!(products.iter().any(|p| iphone.passes(p)));
        let keys: HashSet<_> = products.iter().map(Product::join_key).collect();
        assert!((0..50).any(|i| keys.contains(&e.prompt(i, 5).join_key())));
    }
}
