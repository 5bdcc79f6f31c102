//! The one list of systems in this binary. Everything else (settings,
//! services, `serve`, `up`, the CLI, `config`, `migrate`) is derived from
//! it: adding a system is its crate plus one line here.

use tributary_runtime::System;

/// Every system of this build, in start order.
pub fn all() -> Vec<System> {
    vec![
        tributary_logistics::system(),
        tributary_chat::system(),
        tributary_documents::system(),
        tributary_imports::system(),
        tributary_shop::system(),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use tributary_runtime::Settings;

    /// The keys named in the first column of the README's configuration
    /// table. Shorthand: `a.b.c` / `.d` means `a.b.c` and `a.b.d`;
    /// `x.*` means the map `x`.
    fn readme_keys() -> BTreeSet<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let text = std::fs::read_to_string(path).expect("README.md");
        let section = text
            .split("\n## Configuration")
            .nth(1)
            .expect("a Configuration section")
            .split("\n## ")
            .next()
            .unwrap_or_default();
        let mut keys = BTreeSet::new();
        for line in section.lines().filter(|l| l.starts_with("| `")) {
            let cell = line.split('|').nth(1).unwrap_or_default();
            let mut last = String::new();
            for token in cell.split('`').skip(1).step_by(2) {
                let key = match token.strip_prefix('.') {
                    Some(tail) => match last.rsplit_once('.') {
                        Some((stem, _)) => format!("{stem}.{tail}"),
                        None => tail.to_owned(),
                    },
                    None => token.to_owned(),
                };
                keys.insert(key.trim_end_matches(".*").to_owned());
                last = key;
            }
        }
        keys
    }

    // Proves the README's configuration table names exactly the settings keys of this build
    // (every system's section included), so it cannot drift from the code.
    #[test]
    fn readme_configuration_table_matches_the_settings() {
        let systems = super::all();
        let code: BTreeSet<String> = Settings::keys(&systems)
            .expect("keys")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let readme = readme_keys();
        let missing: Vec<_> = code.difference(&readme).collect();
        let stale: Vec<_> = readme.difference(&code).collect();
        assert!(
            missing.is_empty() && stale.is_empty(),
            "README configuration table out of date\n  undocumented keys: {missing:?}\n  documented but unknown: {stale:?}"
        );
    }

    // Proves the system list obeys the contract: unique names, services named <system>-<part>,
    // migrations in the system's own namespace.
    #[test]
    fn system_list_obeys_the_contract() {
        tributary_runtime::system::check(&super::all()).expect("contract");
    }
}
