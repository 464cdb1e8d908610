//! The repository documents its own API: every error code, configuration
//! variable and audit action the code names is in `docs/api.md`, and the
//! README and the API reference link only to files of the repository.

use std::path::{Path, PathBuf};

/// Upper-case string literals of the code that are not part of the API:
/// Redis commands and replies, a JWK key type, a header value, a Cargo
/// variable.
const NOT_API: &[&str] = &[
    "PING",
    "PONG",
    "MGET",
    "INFO",
    "OKP",
    "DENY",
    "CARGO_PKG_VERSION",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `"SOME_NAME"` literals: error codes, environment variables, audit actions.
fn upper_case_literals(source: &str) -> Vec<String> {
    source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.len() >= 3
                && s.starts_with(|c: char| c.is_ascii_uppercase())
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_code_variable_and_action_of_the_code_is_documented() {
    let docs = std::fs::read_to_string(root().join("docs/api.md")).expect("docs/api.md exists");
    let mut files = Vec::new();
    rust_files(&root().join("api/src"), &mut files);
    let mut names: Vec<String> = files
        .iter()
        .flat_map(|f| upper_case_literals(&std::fs::read_to_string(f).unwrap()))
        .filter(|name| !NOT_API.contains(&name.as_str()))
        .collect();
    // Read by the tracing filter, not named as a literal.
    names.push("RUST_LOG".into());
    names.sort();
    names.dedup();
    assert!(names.len() > 40, "the scan finds the names: {names:?}");
    for expected in ["BAD_USER_INPUT", "DATABASE_URL", "NO_COLOR", "LOGIN_FAILED"] {
        assert!(names.iter().any(|n| n == expected), "{expected} is scanned");
    }
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !docs.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "named in api/src but not documented (as `NAME`) in docs/api.md: {missing:?}"
    );
}

/// Link targets of a Markdown text outside code blocks: `[text](target)`,
/// `<target>` autolinks, and bare `http(s)://` addresses.
fn links(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Inline code is not a link.
        let prose: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let tail = &rest[at + 2..];
            let end = tail.find(')').unwrap_or(tail.len());
            out.push(tail[..end].trim().to_owned());
            rest = &tail[end..];
        }
        for word in prose.split(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == '(') {
            if word.starts_with("http://") || word.starts_with("https://") {
                out.push(word.trim_end_matches([')', '.', ',']).to_owned());
            }
        }
    }
    out
}

fn assert_links_stay_inside(relative: &str) {
    let path = root().join(relative);
    let text = std::fs::read_to_string(&path).unwrap();
    let dir = path.parent().unwrap();
    let repo = root().canonicalize().unwrap();
    let mut checked = 0;
    for target in links(&text) {
        assert!(
            !target.contains("://") && !target.starts_with("mailto:"),
            "{relative} links outside the repository: {target}"
        );
        let file = target.split('#').next().unwrap();
        if file.is_empty() {
            continue;
        }
        let resolved = dir
            .join(file)
            .canonicalize()
            .unwrap_or_else(|_| panic!("{relative} links to a missing file: {target}"));
        assert!(
            resolved.starts_with(&repo),
            "{relative} links outside the repository: {target}"
        );
        checked += 1;
    }
    assert!(checked > 0, "{relative} links to the repository's files");
}

#[test]
fn the_readme_and_the_api_reference_link_only_inside_the_repository() {
    assert_links_stay_inside("README.md");
    assert_links_stay_inside("docs/api.md");
    assert!(
        std::fs::read_to_string(root().join("README.md"))
            .unwrap()
            .contains("docs/api.md"),
        "the README points at the API reference"
    );
}

#[test]
fn the_link_scanner_sees_every_kind_of_link() {
    let mut found = links(
        "see [a](docs/a.md#x) and <https://example.com/x> or https://example.org.\n\
         ```\ncurl http://localhost:8080\n```\n`http://inline` [b](../shared/spec.md)",
    );
    found.sort();
    assert_eq!(
        found,
        [
            "../shared/spec.md",
            "docs/a.md#x",
            "https://example.com/x",
            "https://example.org"
        ]
    );
}
