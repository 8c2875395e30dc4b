//! No import cycles between the top-level modules of any workspace crate.
//!
//! A module is `src/x.rs` with everything under `src/x/`; module `x` depends on `y` when its
//! non-test code names `crate::y` (or a name the crate root re-exports from `y`). The crate
//! graph has no cycles (cargo refuses them); this keeps the graphs inside crates the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `members = [...]` of the root manifest.
fn members(root: &Path) -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("root Cargo.toml is readable");
    let start = manifest.find("members = [").expect("the root manifest lists members");
    let list = &manifest[start..];
    let list = &list[list.find('[').expect("opening bracket") + 1..list.find(']').expect("closing bracket")];
    list.split(',').map(|m| m.trim().trim_matches('"')).filter(|m| !m.is_empty()).map(|m| root.join(m)).collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments and without a trailing `#[cfg(test)]` module.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("source is readable");
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The first path segment of every path after each `crate::` (groups included).
fn crate_refs(code: &str) -> Vec<String> {
    let mut refs = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => item_start = true,
                    c if item_start && depth == 1 && !c.is_whitespace() => {
                        refs.push(ident(&group[j..]).to_owned());
                        item_start = false;
                    }
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
            }
        } else {
            refs.push(ident(rest).to_owned());
        }
    }
    refs
}

/// Names the crate root re-exports, by the module they come from (`pub use error::ApiError;`).
fn reexports(root_code: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for (i, _) in root_code.match_indices("pub use ") {
        let stmt = &root_code[i + "pub use ".len()..];
        let stmt = &stmt[..stmt.find(';').unwrap_or(stmt.len())];
        let module = ident(stmt);
        if !modules.contains(module) {
            continue;
        }
        for word in stmt[module.len()..].split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if !word.is_empty() && word != "self" {
                names.insert(word.to_owned(), module.to_owned());
            }
        }
    }
    names
}

/// Module -> the modules it names.
fn graph(krate: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let src = krate.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let module_of = |f: &Path| -> Option<String> {
        let rel = f.strip_prefix(&src).ok()?;
        let first = rel.components().next()?.as_os_str().to_str()?;
        let name = first.trim_end_matches(".rs");
        (!matches!(name, "lib" | "main" | "bin")).then(|| name.to_owned())
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(f)).collect();
    let root = ["lib.rs", "main.rs"].iter().map(|f| src.join(f)).find(|f| f.exists());
    let names = root.map(|r| reexports(&code(&r), &modules)).unwrap_or_default();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(file) else { continue };
        let deps = graph.entry(from.clone()).or_default();
        for r in crate_refs(&code(file)) {
            let to = if modules.contains(&r) { Some(&r) } else { names.get(&r) };
            if let Some(to) = to.filter(|to| **to != from) {
                deps.insert(to.clone());
            }
        }
    }
    graph
}

/// One cycle through `start`, if any (depth-first search back to it).
fn cycle_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    walk(graph, start, start, &mut path, &mut BTreeSet::new()).then(|| {
        path.push(start.to_owned());
        path
    })
}

/// Crates whose cycles are known and owned by other work (none now).
const KNOWN: &[&str] = &[];

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let root = workspace_root();
    let mut cycles = Vec::new();
    for krate in members(&root) {
        if KNOWN.iter().any(|k| krate.ends_with(k)) {
            continue;
        }
        let graph = graph(&krate);
        let mut reported = BTreeSet::new();
        for module in graph.keys() {
            if reported.contains(module) {
                continue;
            }
            if let Some(cycle) = cycle_through(&graph, module) {
                reported.extend(cycle.iter().cloned());
                let name = krate.strip_prefix(&root).unwrap_or(&krate).display().to_string();
                cycles.push(format!("{name}: {}", cycle.join(" -> ")));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles between modules:\n{}", cycles.join("\n"));
}

#[test]
fn the_parser_sees_groups_and_reexports() {
    let refs = crate_refs("use crate::{a::B, c, d::{e, f}};\nlet x = crate::g::h();");
    assert_eq!(refs, ["a", "c", "d", "g"]);
    let modules = BTreeSet::from(["error".to_owned()]);
    let names = reexports("pub use error::{ApiError, ApiResult};", &modules);
    assert_eq!(names.get("ApiError").map(String::as_str), Some("error"));
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a".to_owned(), BTreeSet::from(["b".to_owned()])), ("b".to_owned(), BTreeSet::from(["a".to_owned()]))].into();
    assert_eq!(cycle_through(&graph, "a"), Some(vec!["a".into(), "b".into(), "a".into()]));
}
