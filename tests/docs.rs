//! The documentation holds to the code: every setting the handler reads is in `docs/SETTINGS.md`'s tables (and
//! nothing else is), every function with its trigger and route is in `docs/FUNCTIONS.md`, and every relative link
//! in the README and `docs/` reaches a file, and a heading when it names one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use acs_recording_handler::config::{HOST_VARIABLES, SETTINGS};
use serde_json::Value;
use support::{project_root, read_json};

/// The README and every Markdown file under `docs/`, by path relative to the project root.
fn documents() -> BTreeMap<PathBuf, String> {
    let root = project_root();
    let mut paths = vec![PathBuf::from("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "md") {
            paths.push(path.strip_prefix(&root).unwrap().to_owned());
        }
    }
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(root.join(&path)).unwrap();
            (path, text)
        })
        .collect()
}

/// The lines of a Markdown text outside fenced code blocks, with inline code spans blanked out.
fn prose(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let spans: Vec<&str> = line.split('`').collect();
        // Odd pieces are inside a code span (an unbalanced backtick leaves the rest as prose).
        let kept: String = spans
            .iter()
            .enumerate()
            .map(|(i, piece)| if i % 2 == 1 && i + 1 < spans.len() { "" } else { piece })
            .collect();
        lines.push(kept);
    }
    lines
}

/// The anchors GitHub gives a Markdown file's headings: lower case, punctuation but `-` and `_` dropped, spaces as
/// `-`, and a repeated anchor numbered `-1`, `-2`, ….
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        let heading = line.trim_start_matches('#');
        if fenced || heading.len() == line.len() || !heading.starts_with(' ') {
            continue;
        }
        let slug: String = heading
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let count = seen.entry(slug.clone()).or_default();
        anchors.insert(if *count == 0 {
            slug.clone()
        } else {
            format!("{slug}-{count}")
        });
        *count += 1;
    }
    anchors
}

/// Every `[text](target)` link in a Markdown text's prose.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in prose(text) {
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            found.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    found
}

fn normalized(path: &Path) -> PathBuf {
    let mut parts: Vec<std::path::Component> = Vec::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::CurDir => {}
            other => parts.push(other),
        }
    }
    parts.iter().collect()
}

#[test]
fn every_relative_link_in_the_docs_reaches_its_file_and_heading() {
    let root = project_root();
    let documents = documents();
    assert!(
        documents.len() >= 8,
        "the README and docs/ were not found: {:?}",
        documents.keys()
    );
    let mut checked = 0;
    let mut broken = Vec::new();
    for (path, text) in &documents {
        for link in links(text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() {
                path.clone()
            } else {
                normalized(&path.parent().unwrap_or(Path::new("")).join(file))
            };
            checked += 1;
            if !root.join(&target).exists() {
                broken.push(format!("{}: {link} (no {})", path.display(), target.display()));
                continue;
            }
            if anchor.is_empty() {
                continue;
            }
            let Some(target_text) = documents.get(&target) else {
                broken.push(format!(
                    "{}: {link} (an anchor in a file that is not Markdown)",
                    path.display()
                ));
                continue;
            };
            if !anchors(target_text).contains(anchor) {
                broken.push(format!(
                    "{}: {link} (no heading #{anchor} in {})",
                    path.display(),
                    target.display()
                ));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(checked >= 20, "only {checked} relative links found");
}

#[test]
fn the_readme_links_every_reference_file_in_docs() {
    let documents = documents();
    let readme_links: BTreeSet<String> = links(&documents[Path::new("README.md")])
        .into_iter()
        .map(|link| link.split('#').next().unwrap_or_default().to_owned())
        .collect();
    for path in documents.keys().filter(|path| path.starts_with("docs")) {
        let link = path.to_string_lossy().replace('\\', "/");
        assert!(readme_links.contains(&link), "the README does not link {link}");
    }
}

#[test]
fn the_settings_tables_list_every_setting_the_handler_reads_and_no_other() {
    let text = &documents()[Path::new("docs/SETTINGS.md")];
    let mut documented = BTreeSet::new();
    let mut in_table = false;
    for line in text.lines() {
        if !line.starts_with('|') {
            in_table = false;
        } else if line.starts_with("| Setting |") {
            in_table = true;
        } else if in_table {
            let first_column = line.split('|').nth(1).unwrap_or_default();
            documented.extend(first_column.split('`').skip(1).step_by(2).map(str::to_owned));
        }
    }
    let missing: Vec<_> = SETTINGS.iter().filter(|name| !documented.contains(**name)).collect();
    assert!(missing.is_empty(), "docs/SETTINGS.md's tables leave out {missing:?}");
    let unknown: Vec<_> = documented
        .iter()
        .filter(|name| !SETTINGS.contains(&name.as_str()) && !HOST_VARIABLES.contains(&name.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/SETTINGS.md's tables name settings the handler never reads: {unknown:?}"
    );
}

/// Every function folder in the app root: its name and trigger binding.
fn functions() -> Vec<(String, Value)> {
    let root = project_root();
    let mut functions = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let folder = entry.unwrap().path();
        let definition = folder.join("function.json");
        if !definition.is_file() {
            continue;
        }
        let bindings = read_json(&definition)["bindings"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let trigger = bindings
            .into_iter()
            .find(|binding| binding["type"].as_str().is_some_and(|kind| kind.ends_with("Trigger")))
            .unwrap_or_else(|| panic!("{} has no trigger", definition.display()));
        let name = folder.file_name().unwrap().to_string_lossy().into_owned();
        functions.push((name, trigger));
    }
    functions.sort_by(|a, b| a.0.cmp(&b.0));
    functions
}

#[test]
fn every_function_is_documented_with_its_trigger_and_route() {
    let text = &documents()[Path::new("docs/FUNCTIONS.md")];
    let rows: Vec<&str> = text.lines().filter(|line| line.starts_with("| `")).collect();
    let functions = functions();
    assert!(
        functions.len() >= 6,
        "the function folders were not found: {functions:?}"
    );
    for (name, trigger) in &functions {
        let row = rows
            .iter()
            .find(|row| row.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("docs/FUNCTIONS.md has no row for {name}"));
        let kind = trigger["type"].as_str().unwrap();
        assert!(
            row.contains(&format!("`{kind}`")),
            "{name}'s row does not name its trigger {kind}: {row}"
        );
        // What starts it: the route and methods, the queue, or the schedule, spelled as in function.json.
        let starts = ["route", "queueName", "schedule"]
            .iter()
            .filter_map(|key| trigger[*key].as_str())
            .chain(
                trigger["methods"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str),
            );
        for value in starts {
            assert!(
                row.to_lowercase().contains(&format!("`{}`", value.to_lowercase())),
                "{name}'s row does not say `{value}`: {row}"
            );
        }
        if let Some(level) = trigger["authLevel"].as_str() {
            assert!(
                row.contains(&format!("`{level}`")),
                "{name}'s row does not say its key level {level}"
            );
        }
    }
    let documented = rows.len();
    assert_eq!(
        documented,
        functions.len(),
        "docs/FUNCTIONS.md lists {documented} functions, the app has {}",
        functions.len()
    );
}

#[test]
fn the_link_checker_finds_what_github_would_link() {
    let text = "# Deploy with `azd`\n## What is stored\n## What is stored\n```\n# not a heading\n```\n\
                See [x](#what-is-stored-1) and `[y](nope.md)` and [z](other.md#a-b).";
    let found = anchors(text);
    assert!(found.contains("deploy-with-azd"), "{found:?}");
    assert!(
        found.contains("what-is-stored") && found.contains("what-is-stored-1"),
        "{found:?}"
    );
    assert!(!found.contains("not-a-heading"), "{found:?}");
    assert_eq!(links(text), ["#what-is-stored-1", "other.md#a-b"]);
}
