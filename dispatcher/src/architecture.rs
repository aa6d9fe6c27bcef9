//! The layering rules of this crate, checked on its own source (see ARCHITECTURE.md):
//!
//! - no import cycle between modules (each top-level module of `src/` is a node, and so is
//!   each service under `src/services/`);
//! - a service never imports from `api`;
//! - every HTTP handler (an `#[utoipa::path]` route) lives under `api/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The node a source file belongs to: `api`, `app`, `services::cascade`, …
fn node_of(relative: &Path) -> String {
    let parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    match parts.as_slice() {
        [first, second, ..] if first == "services" && second != "mod" => {
            format!("services::{second}")
        }
        [first, ..] => first.clone(),
        [] => String::new(),
    }
}

/// The nodes a path `crate::a::b::…` names, most specific first.
fn node_named(path: &str, nodes: &BTreeSet<String>) -> Option<String> {
    let mut segments = path.split("::");
    let first = segments.next()?;
    if first == "services"
        && let Some(second) = segments.next()
    {
        let service = format!(
            "services::{}",
            second.trim_matches(|c: char| !c.is_alphanumeric() && c != '_')
        );
        if nodes.contains(&service) {
            return Some(service);
        }
    }
    nodes.contains(first).then(|| first.to_owned())
}

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// What each node refers to with `crate::…`, from the source under `src`.
fn references(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    source_files(src, &mut files);
    let nodes: BTreeSet<String> = files
        .iter()
        .filter_map(|file| file.strip_prefix(src).ok())
        .map(node_of)
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Ok(relative) = file.strip_prefix(src) else {
            continue;
        };
        let from = node_of(relative);
        let text = std::fs::read_to_string(file).unwrap_or_default();
        // Doc comments may name other modules freely.
        let code: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let edges = graph.entry(from.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            // `crate::{a, b::c}` names several paths at once.
            let paths: Vec<String> = match rest.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|path| path.trim().to_owned())
                    .collect(),
                None => vec![
                    rest.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                        .collect(),
                ],
            };
            for path in paths {
                if let Some(to) = node_named(&path, &nodes)
                    && to != from
                {
                    edges.insert(to);
                }
            }
        }
    }
    graph
}

/// A cycle in `graph`, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|seen| seen == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut done, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
    }

    #[test]
    fn no_two_modules_import_each_other_even_through_others() {
        let graph = references(&src());
        assert!(graph.len() > 10, "the source was not found: {graph:?}");
        if let Some(cycle) = find_cycle(&graph) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }

    #[test]
    fn the_cycle_finder_finds_a_cycle_through_three_modules() {
        let graph: BTreeMap<String, BTreeSet<String>> = [
            ("a", vec!["b"]),
            ("b", vec!["c"]),
            ("c", vec!["a"]),
            ("d", vec!["a"]),
        ]
        .into_iter()
        .map(|(from, to)| (from.to_owned(), to.into_iter().map(str::to_owned).collect()))
        .collect();
        let cycle = find_cycle(&graph).expect("a cycle");
        assert_eq!(cycle.first(), cycle.last());
        assert_eq!(cycle.len(), 4);
    }

    #[test]
    fn no_service_imports_from_the_http_api() {
        let graph = references(&src());
        for (from, to) in &graph {
            if from.starts_with("services::") {
                assert!(!to.contains("api"), "{from} imports from api: {to:?}");
            }
        }
    }

    #[test]
    fn every_http_handler_lives_under_api() {
        let mut files = Vec::new();
        source_files(&src(), &mut files);
        let outside: Vec<_> = files
            .iter()
            .filter(|file| !file.starts_with(src().join("api")))
            .filter(|file| {
                std::fs::read_to_string(file)
                    .unwrap_or_default()
                    .lines()
                    .any(|line| line.trim_start().starts_with("#[utoipa::path"))
            })
            .collect();
        assert!(outside.is_empty(), "handlers outside api/: {outside:?}");
    }
}
