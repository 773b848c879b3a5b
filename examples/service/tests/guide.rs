//! `docs/guide.md` quotes this crate: every `// ANCHOR: name` … `// ANCHOR_END: name` region
//! of its sources is a ```rust block of the guide, and every ```rust block of the guide is
//! such a region, character for character. The ```toml block's lines are lines of
//! `Cargo.toml`. Change the code, then the guide.

use std::path::Path;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The anchored regions of the crate's sources: (name, text).
fn anchors(root: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for file in ["src/lib.rs", "src/main.rs", "tests/service.rs"] {
        let text = read(&root.join(file));
        let mut open: Option<(String, Vec<&str>)> = None;
        for line in text.lines() {
            let trimmed = line.trim();
            if let Some(name) = trimmed.strip_prefix("// ANCHOR: ") {
                open = Some((name.to_owned(), Vec::new()));
            } else if let Some(name) = trimmed.strip_prefix("// ANCHOR_END: ") {
                let (open_name, lines) = open.take().expect("ANCHOR_END without ANCHOR");
                assert_eq!(
                    open_name, name,
                    "{file}: ANCHOR_END {name} closes {open_name}"
                );
                found.push((open_name, lines.join("\n")));
            } else if let Some((_, lines)) = open.as_mut() {
                lines.push(line);
            }
        }
        assert!(open.is_none(), "{file}: an ANCHOR is not closed");
    }
    found
}

/// The fenced blocks of `markdown` in `language`.
fn blocks(markdown: &str, language: &str) -> Vec<String> {
    let fence = format!("```{language}");
    let mut found = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        match current.as_mut() {
            None if line.trim_end() == fence => current = Some(Vec::new()),
            Some(lines) if line.trim_end() == "```" => {
                found.push(lines.join("\n"));
                current = None;
            }
            Some(lines) => lines.push(line),
            None => {}
        }
    }
    found
}

#[test]
fn the_guide_quotes_this_crate_exactly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = read(&root.join("../../docs/guide.md"));
    let quoted = blocks(&guide, "rust");
    let anchors = anchors(root);
    assert!(anchors.len() >= 10, "anchors found: {}", anchors.len());
    for (name, text) in &anchors {
        assert!(
            quoted.contains(text),
            "docs/guide.md does not quote the region `{name}` as it is now:\n{text}"
        );
    }
    for block in &quoted {
        assert!(
            anchors.iter().any(|(_, text)| text == block),
            "docs/guide.md has a ```rust block that is no region of examples/service:\n{block}"
        );
    }
    let manifest = read(&root.join("Cargo.toml"));
    for block in blocks(&guide, "toml") {
        for line in block.lines() {
            assert!(
                manifest.lines().any(|l| l == line),
                "docs/guide.md's Cargo.toml line is not in examples/service/Cargo.toml: {line}"
            );
        }
    }
}
