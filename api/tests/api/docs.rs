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
    // Read by unit tests only (the README's test command).
    "TEST_REDIS_URL",
    // Rust constants named in `#[graphql(guard = "…")]` attributes.
    "USERS_READ",
    "USERS_WRITE",
    "USERS_DELETE",
    "ROLES_READ",
    "ROLES_WRITE",
    "ROLES_ASSIGN",
    "AUDIT_READ",
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

/// Link targets of a Markdown text outside code blocks: inline links
/// `[text](target)`, reference definitions `[ref]: target`, autolinks
/// `<scheme:…>`, HTML `href`/`src` attributes, and bare `http(s)://`,
/// `ftp://`, `mailto:` and `www.` addresses.
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
        let trimmed = prose.trim_start();
        if trimmed.starts_with('[')
            && let Some((_, rest)) = trimmed.split_once("]:")
            && let Some(target) = rest.split_whitespace().next()
        {
            out.push(target.trim_matches(['<', '>']).to_owned());
        }
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let tail = &rest[at + 2..];
            let end = tail.find(')').unwrap_or(tail.len());
            out.push(tail[..end].trim().to_owned());
            rest = &tail[end..];
        }
        for attribute in ["href=", "src="] {
            let mut rest = prose.as_str();
            while let Some(at) = rest.find(attribute) {
                let tail = &rest[at + attribute.len()..];
                let quote = tail.chars().next().unwrap_or(' ');
                let value: String = if quote == '"' || quote == '\'' {
                    tail[1..].chars().take_while(|c| *c != quote).collect()
                } else {
                    tail.chars()
                        .take_while(|c| !c.is_whitespace() && *c != '>')
                        .collect()
                };
                out.push(value);
                rest = tail;
            }
        }
        let mut rest = prose.as_str();
        while let Some(at) = rest.find('<') {
            let tail = &rest[at + 1..];
            let end = tail.find('>').unwrap_or(tail.len());
            let inside = &tail[..end];
            if !inside.contains(char::is_whitespace) && (external(inside) || inside.contains('@')) {
                out.push(inside.to_owned());
            }
            rest = &tail[end..];
        }
        for word in prose.split(|c: char| c.is_whitespace() || "<>()[]\"'".contains(c)) {
            let word = word.trim_end_matches(['.', ',', ';', ':']);
            if ["http://", "https://", "ftp://", "mailto:", "www."]
                .iter()
                .any(|p| word.starts_with(p))
            {
                out.push(word.to_owned());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether a link target leaves the repository: any URL scheme, a `www.`
/// host, or an email address.
fn external(target: &str) -> bool {
    let scheme = target.split_once(':').is_some_and(|(s, _)| {
        s.len() > 1
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    });
    scheme || target.starts_with("www.") || target.contains('@')
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> Vec<String> {
    let mut fenced = false;
    markdown
        .lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
            }
            !fenced && line.starts_with('#')
        })
        .map(|line| slug(&line.trim_start_matches('#').replace('`', "")))
        .collect()
}

fn assert_links_stay_inside(relative: &str) {
    let path = root().join(relative);
    let text = std::fs::read_to_string(&path).unwrap();
    let dir = path.parent().unwrap();
    let repo = root().canonicalize().unwrap();
    let mut checked = 0;
    for target in links(&text) {
        assert!(
            !external(&target),
            "{relative} links outside the repository: {target}"
        );
        let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
        let resolved = if file.is_empty() {
            path.clone()
        } else {
            dir.join(file)
                .canonicalize()
                .unwrap_or_else(|_| panic!("{relative} links to a missing file: {target}"))
        };
        assert!(
            resolved.starts_with(&repo),
            "{relative} links outside the repository: {target}"
        );
        if !anchor.is_empty() && resolved.extension().is_some_and(|e| e == "md") {
            let headings = anchors(&std::fs::read_to_string(&resolved).unwrap());
            assert!(
                headings.iter().any(|h| h == anchor),
                "{relative} links to a missing heading: {target}"
            );
        }
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
    let found = links(
        "see [a](docs/a.md#x) and <https://example.com/x> or https://example.org.\n\
         ```\ncurl http://localhost:8080\n```\n`http://inline` [b](../shared/spec.md)\n\
         [ref]: ../../../x.md\n[ref2]:https://example.net\n\
         <a href=\"https://badge.example\"><img src='https://img.example/x.svg'></a>\n\
         www.example.com and <mailto:a@b.c> or <a@b.c>; ftp://files.example",
    );
    for expected in [
        "docs/a.md#x",
        "https://example.com/x",
        "https://example.org",
        "../shared/spec.md",
        "../../../x.md",
        "https://example.net",
        "https://badge.example",
        "https://img.example/x.svg",
        "www.example.com",
        "mailto:a@b.c",
        "a@b.c",
        "ftp://files.example",
    ] {
        assert!(
            found.iter().any(|f| f == expected),
            "{expected} in {found:?}"
        );
    }
    assert!(
        !found
            .iter()
            .any(|f| f.contains("localhost") || f.contains("inline"))
    );
    for outside in ["https://x", "mailto:a@b.c", "www.x.org", "a@b.c", "ftp://x"] {
        assert!(external(outside), "{outside}");
    }
    for inside in [
        "docs/api.md",
        "../schema.graphql",
        "#limits",
        "api.md#errors",
    ] {
        assert!(!external(inside), "{inside}");
    }
    assert_eq!(slug("Not built yet"), "not-built-yet");
    assert_eq!(slug("POST /graphql"), "post-graphql");
}
