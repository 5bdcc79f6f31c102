//! The README's rules table of the `company` kind equals `RULES` (names and
//! descriptions, in order), so the documentation cannot drift from the code.

use tributary_imports::RULES;

// Proves every rule is documented in the README's "File imports" section, and nothing else.
#[test]
fn readme_rules_table_matches_rules() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let text = std::fs::read_to_string(path).expect("README.md");
    let section = text
        .split("\n## File imports")
        .nth(1)
        .expect("a File imports section")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    let table = section
        .split("| rule | checks |")
        .nth(1)
        .expect("the rules table");
    let rows: Vec<(String, String)> = table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').splitn(2, " | ").collect();
            (
                cells[0].trim().trim_matches('`').to_owned(),
                cells
                    .get(1)
                    .copied()
                    .unwrap_or_default()
                    .trim()
                    .trim_end_matches('|')
                    .trim()
                    .to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = RULES
        .iter()
        .map(|(n, d)| ((*n).to_owned(), (*d).to_owned()))
        .collect();
    assert_eq!(rows, want);
}
