//! The docs against the code: the config keys of docs/config.md against
//! `config::KEYS`, the exit codes of docs/operations.md against
//! `client::EXIT_CODES`, the status fields of docs/operations.md against
//! those src/status.rs writes, each both ways; and the README's length and
//! every relative link of the README and docs/. Files only: no port, no
//! process.

use rolld::{client, config};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The lines of a Markdown text outside fenced code blocks.
fn prose(md: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push(line);
        }
    }
    out
}

/// `` `x` `` alone: `x`.
fn code_span(s: &str) -> Option<&str> {
    let s = s.trim().strip_prefix('`')?.strip_suffix('`')?;
    (!s.is_empty() && !s.contains('`')).then_some(s)
}

/// The cells of the rows of every table whose header row is `header`
/// (`| a | b |`), without the header and the separator.
fn table_rows(md: &str, header: &str) -> Vec<Vec<String>> {
    let lines = prose(md);
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != header {
            i += 1;
            continue;
        }
        i += 2;
        while i < lines.len() && lines[i].trim_start().starts_with('|') {
            let row = lines[i].trim().trim_start_matches('|').trim_end_matches('|');
            out.push(row.split('|').map(|c| c.trim().to_string()).collect());
            i += 1;
        }
    }
    out
}

/// Both ways: what `code` has that `docs` lacks, and the other way round.
fn same(what: &str, code: &BTreeSet<String>, docs: &BTreeSet<String>) {
    let undocumented: Vec<&String> = code.difference(docs).collect();
    let unknown: Vec<&String> = docs.difference(code).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "{what}: in the code but not in the docs: {undocumented:?}; in the docs but not in the code: {unknown:?}"
    );
}

/// docs/config.md documents each key under a `###` heading that is the
/// key's dotted path in backticks and nothing else.
#[test]
fn every_config_key_is_documented_and_no_other() {
    let md = read("docs/config.md");
    let docs: BTreeSet<String> =
        prose(&md).iter().filter_map(|l| l.strip_prefix("### ")).filter_map(code_span).map(str::to_string).collect();
    let keys: BTreeSet<String> = config::KEYS.iter().map(|k| k.to_string()).collect();
    assert_eq!(keys.len(), config::KEYS.len(), "KEYS lists a key twice");
    same("config keys (docs/config.md `### `key`` headings)", &keys, &docs);
}

/// docs/operations.md's table `| command | exit | meaning |` has one row
/// per (command, code) of `client::EXIT_CODES`.
#[test]
fn every_exit_code_is_documented_and_no_other() {
    let md = read("docs/operations.md");
    let rows = table_rows(&md, "| command | exit | meaning |");
    assert!(!rows.is_empty(), "docs/operations.md: no table `| command | exit | meaning |`");
    let mut docs = BTreeSet::new();
    for row in &rows {
        let command = code_span(&row[0]).unwrap_or_else(|| panic!("not a command in backticks: {row:?}"));
        let code: u8 = row[1].parse().unwrap_or_else(|_| panic!("not an exit code: {row:?}"));
        assert!(!row[2].is_empty(), "no meaning: {row:?}");
        assert!(docs.insert(format!("{command} {code}")), "documented twice: {row:?}");
    }
    let code: BTreeSet<String> = client::EXIT_CODES.iter().map(|(c, n, _)| format!("{c} {n}")).collect();
    assert_eq!(code.len(), client::EXIT_CODES.len(), "EXIT_CODES lists a code twice");
    same("exit codes (docs/operations.md)", &code, &docs);
}

/// The field names src/status.rs writes into the JSON: every `\"name\":`
/// in its code (its tests left out).
fn status_fields() -> BTreeSet<String> {
    let src = read("src/status.rs");
    let src = src.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = BTreeSet::new();
    // `\"name\":`: a name between two escaped quotes, then a colon.
    let mut rest = src;
    while let Some(at) = rest.find("\\\"") {
        rest = &rest[at + 2..];
        let Some(end) = rest.find("\\\"") else { break };
        let name = &rest[..end];
        if rest[end + 2..].starts_with(':')
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            out.insert(name.to_string());
            rest = &rest[end + 2..];
        }
    }
    out
}

/// docs/operations.md's table `| field | value |` lists every field of
/// `rolld status --json` as a path (`groups[].live.ports`); its last name
/// is a field src/status.rs writes, and each path's parent is listed too.
#[test]
fn every_status_field_is_documented_and_no_other() {
    let code = status_fields();
    for known in ["version", "groups", "reload_pending", "uptime_seconds", "per_port", "wredis"] {
        assert!(code.contains(known), "{known}: not found in src/status.rs, whose reading is off: {code:?}");
    }
    let md = read("docs/operations.md");
    let rows = table_rows(&md, "| field | value |");
    assert!(!rows.is_empty(), "docs/operations.md: no table `| field | value |`");
    let mut paths = BTreeSet::new();
    for row in &rows {
        let path = code_span(&row[0]).unwrap_or_else(|| panic!("not a field in backticks: {row:?}"));
        assert!(!row[1].is_empty(), "no meaning: {row:?}");
        assert!(paths.insert(path.to_string()), "documented twice: {row:?}");
    }
    for p in &paths {
        if let Some((parent, _)) = p.rsplit_once('.') {
            let parent = parent.strip_suffix("[]").unwrap_or(parent);
            assert!(paths.contains(parent), "{p}: its parent {parent} is not documented");
        }
    }
    let docs: BTreeSet<String> =
        paths.iter().map(|p| p.rsplit('.').next().unwrap_or(p).trim_end_matches("[]").to_string()).collect();
    same("status JSON fields (docs/operations.md)", &code, &docs);
}

#[test]
fn the_readme_is_short() {
    let n = read("README.md").lines().count();
    assert!(n <= 250, "README.md has {n} lines, more than 250: move the detail into docs/");
}

/// GitHub's anchor of a heading: lower case, only letters, digits, `-`
/// and `_` kept, spaces made `-`; a repeated one gets `-1`, `-2`, ...
fn anchors(md: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in prose(md) {
        let Some(text) = line.strip_prefix('#').map(|t| t.trim_start_matches('#')) else { continue };
        if !text.starts_with(' ') {
            continue;
        }
        let slug: String = text
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut name = slug.clone();
        let mut n = 0;
        while out.contains(&name) {
            n += 1;
            name = format!("{slug}-{n}");
        }
        out.insert(name);
    }
    out
}

/// The targets of the Markdown links of `md` (`[text](target)`), outside
/// code blocks.
fn links(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(md) {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

/// Every relative link of README.md and docs/*.md names a file that
/// exists, and a heading of it when it names one; every docs/*.md is
/// linked from the README.
#[test]
fn every_link_points_somewhere_and_every_doc_is_linked() {
    let mut files = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("docs/").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| p.strip_prefix(root()).expect("under the root").to_path_buf())
        .collect();
    docs.sort();
    assert!(!docs.is_empty(), "docs/ has no .md file");
    files.extend(docs.iter().cloned());
    let mut broken = Vec::new();
    let mut from_readme = BTreeSet::new();
    for file in &files {
        let md = read(file.to_str().expect("a UTF-8 path"));
        for target in links(&md) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let dest = if path.is_empty() { file.clone() } else { file.parent().unwrap_or(Path::new("")).join(path) };
            let full = root().join(&dest);
            if !full.exists() {
                broken.push(format!("{}: {target}: no such file", file.display()));
                continue;
            }
            if !anchor.is_empty() && dest.extension().is_some_and(|e| e == "md") {
                let text = std::fs::read_to_string(&full).unwrap_or_default();
                if !anchors(&text).contains(anchor) {
                    broken.push(format!("{}: {target}: no such heading", file.display()));
                }
            }
            if file == Path::new("README.md") {
                from_readme.insert(PathBuf::from(path));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    let unlinked: Vec<_> = docs.iter().filter(|d| !from_readme.contains(*d)).collect();
    assert!(unlinked.is_empty(), "not linked from README.md: {unlinked:?}");
}
