//! No import cycle between the top-level modules of any crate of the workspace.
//!
//! Each crate's `src/` is read as text: comments and string literals are blanked, then every `crate::…`
//! path and every `super::…` path that climbs to the crate root names a top-level module (inline
//! `mod name { … }` blocks are followed, so a test module's `super::` stays where it is). A file under
//! `src/NAME.rs` or `src/NAME/` belongs to top-level module `NAME`; the crate roots (`lib.rs`, `main.rs`)
//! only declare and re-export, and are not counted. Modules that reach each other through such paths
//! form a cycle (a strongly connected component of more than one module), and each one fails this test,
//! with the paths that tie it, unless it is listed in [`KNOWN_CYCLES`] exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Cycles that exist and are owned elsewhere, each to be removed from this list by whoever breaks it (the
/// test fails when a listed cycle is gone, so the list stays true): crate directory, modules.
/// None at present: the last (the server's `demo` and `transport`) was broken by moving the publish token
/// into `auth`.
const KNOWN_CYCLES: &[(&str, &[&str])] = &[];

/// An import of top-level module `to` by top-level module `from`, seen at `file:line`.
#[derive(Debug, Clone)]
struct Edge {
    from: String,
    to: String,
    at: String,
}

#[test]
fn no_new_import_cycle_between_top_level_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the workspace directory");
    let mut failures = Vec::new();
    let mut found_known = BTreeSet::new();
    for krate in workspace_members(&root) {
        let src = root.join(&krate).join("src");
        let edges = crate_edges(&src);
        for cycle in cycles(&edges) {
            let known = KNOWN_CYCLES.iter().any(|(k, modules)| {
                *k == krate
                    && modules.iter().copied().collect::<BTreeSet<_>>() == cycle_names(&cycle)
            });
            if known {
                found_known.insert((krate.clone(), cycle.clone()));
                continue;
            }
            let ties: Vec<String> = edges
                .iter()
                .filter(|e| cycle.contains(&e.from) && cycle.contains(&e.to))
                .map(|e| format!("    {} -> {} ({})", e.from, e.to, e.at))
                .collect();
            failures.push(format!(
                "{krate}: the modules {} import each other:\n{}",
                cycle.iter().cloned().collect::<Vec<_>>().join(", "),
                ties.join("\n")
            ));
        }
    }
    for (krate, modules) in KNOWN_CYCLES {
        let set: BTreeSet<String> = modules.iter().map(|m| (*m).to_owned()).collect();
        if !found_known.contains(&((*krate).to_owned(), set)) {
            failures.push(format!(
                "{krate}: the known cycle {modules:?} is gone (or changed): remove it from KNOWN_CYCLES \
                 in {}",
                file!()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

fn cycle_names(cycle: &BTreeSet<String>) -> BTreeSet<&str> {
    cycle.iter().map(String::as_str).collect()
}

/// The `members` of the workspace's `Cargo.toml`.
fn workspace_members(root: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(root.join("Cargo.toml")).expect("workspace Cargo.toml");
    let start = text.find("members").expect("a members list");
    let list = &text[start..];
    let list = &list[list.find('[').expect("[") + 1..list.find(']').expect("]")];
    let members: Vec<String> = list
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    assert!(members.len() >= 3, "members: {members:?}");
    members
}

/// Every import between two different top-level modules of the crate whose sources are in `src`.
fn crate_edges(src: &Path) -> Vec<Edge> {
    let mut files = Vec::new();
    collect_rs(src, &mut files);
    assert!(!files.is_empty(), "no sources under {}", src.display());
    let mut edges = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        let path = module_path(rel);
        let Some(top) = path.first().cloned() else {
            continue; // lib.rs, main.rs
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (line, to) in imports(&blank_comments_and_strings(&text), &path) {
            if to != top {
                edges.push(Edge {
                    from: top.clone(),
                    to,
                    at: format!("{}:{line}", rel.display()),
                });
            }
        }
    }
    edges
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("readable dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file relative to `src/`: `a.rs` and `a/mod.rs` are `[a]`, `a/b.rs` is
/// `[a, b]`, the crate roots are `[]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return Vec::new();
    }
    if stem != "mod" {
        parts.push(stem.to_owned());
    }
    parts
}

/// `text` with comments, string and character literals replaced by spaces (newlines kept, so that line
/// numbers hold).
fn blank_comments_and_strings(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_char_before(&b, i)
        {
            // A raw string r"…", r#"…"#: ends at a quote followed by as many hashes.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < b.len() {
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.extend(b[i..j.min(b.len())].iter().map(|&c| blank(c)));
            i = j;
        } else if c == '"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != '"' {
                j += if b[j] == '\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(b.len());
            out.extend(b[i..end].iter().map(|&c| blank(c)));
            i = end;
        } else if c == '\'' {
            // A character literal ('a', '\n', '\u{1F600}') or a lifetime ('a): only the first is blanked.
            let end = if next == Some('\\') {
                (i + 2..b.len()).find(|&j| b[j] == '\'').map(|j| j + 1)
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    out.extend(b[i..end].iter().map(|&c| blank(c)));
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_char_before(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    Punct(char),
    PathSep,
}

/// Tokens with their line numbers (identifiers, `::`, single punctuation; literals dropped).
fn tokens(code: &str) -> Vec<(usize, Token)> {
    let b: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < b.len() {
        let c = b[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push((line, Token::Ident(b[start..i].iter().collect())));
        } else if c == ':' && b.get(i + 1) == Some(&':') {
            out.push((line, Token::PathSep));
            i += 2;
        } else {
            out.push((line, Token::Punct(c)));
            i += 1;
        }
    }
    out
}

/// The top-level modules that the code of a file at module path `file_path` names through `crate::` or a
/// `super::` that climbs to the root, with the line of each.
fn imports(code: &str, file_path: &[String]) -> Vec<(usize, String)> {
    let toks = tokens(code);
    let ident = |k: usize| match toks.get(k) {
        Some((_, Token::Ident(s))) => Some(s.as_str()),
        _ => None,
    };
    let is = |k: usize, t: &Token| toks.get(k).map(|(_, x)| x) == Some(t);
    // Inline modules: (name, brace depth at which their body ends).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut out = Vec::new();
    let mut k = 0;
    while k < toks.len() {
        let (line, tok) = &toks[k];
        match tok {
            Token::Punct('{') => {
                depth += 1;
                k += 1;
            }
            Token::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                k += 1;
            }
            Token::Ident(w) if w == "mod" && is(k + 2, &Token::Punct('{')) => {
                let name = ident(k + 1).unwrap_or_default().to_owned();
                inline.push((name, depth + 1));
                k += 2;
            }
            Token::Ident(w)
                if (w == "crate" || w == "super")
                    && is(k + 1, &Token::PathSep)
                    && !(k > 0 && is(k - 1, &Token::Punct('$')))
                    && !(k > 0 && is(k - 1, &Token::PathSep)) =>
            {
                // Where the path starts: the crate root for `crate`, the parent of this module per `super`.
                let mut here: Vec<String> = file_path.to_vec();
                here.extend(inline.iter().map(|(n, _)| n.clone()));
                let mut j = k;
                let mut base: Option<Vec<String>> = if w == "crate" {
                    j += 2;
                    Some(Vec::new())
                } else {
                    let mut p = here.clone();
                    while ident(j) == Some("super") && is(j + 1, &Token::PathSep) {
                        if p.pop().is_none() {
                            break;
                        }
                        j += 2;
                    }
                    Some(p)
                };
                if let Some(b) = base.take() {
                    if let Some(top) = b.first() {
                        out.push((*line, top.clone()));
                    } else {
                        for name in first_segments(&toks, j) {
                            out.push((*line, name));
                        }
                    }
                }
                k = j.max(k + 1);
            }
            _ => k += 1,
        }
    }
    out.retain(|(_, m)| m != "self" && m != "super" && m != "crate");
    out
}

/// The first segment of the path at token `j`, or of each path in a `{…}` group there.
fn first_segments(toks: &[(usize, Token)], j: usize) -> Vec<String> {
    match toks.get(j).map(|(_, t)| t) {
        Some(Token::Ident(s)) => vec![s.clone()],
        Some(Token::Punct('{')) => {
            let mut names = Vec::new();
            let mut depth = 0;
            let mut expect_name = true;
            for (_, t) in &toks[j..] {
                match t {
                    Token::Punct('{') => {
                        depth += 1;
                        expect_name = depth == 1;
                    }
                    Token::Punct('}') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Token::Punct(',') if depth == 1 => expect_name = true,
                    Token::Ident(s) if depth == 1 && expect_name => {
                        names.push(s.clone());
                        expect_name = false;
                    }
                    _ => {
                        if depth == 1 {
                            expect_name = false;
                        }
                    }
                }
            }
            names
        }
        _ => Vec::new(),
    }
}

/// The strongly connected components of more than one module (Tarjan's algorithm).
fn cycles(edges: &[Edge]) -> Vec<BTreeSet<String>> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in edges {
        graph.entry(&e.from).or_default().insert(&e.to);
        graph.entry(&e.to).or_default();
    }
    struct State<'a> {
        graph: &'a BTreeMap<&'a str, BTreeSet<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in &s.graph[v] {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph: &graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for &v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn the_reader_finds_crate_and_super_paths_and_follows_inline_modules() {
    let code = blank_comments_and_strings(
        "use crate::{alpha::A, beta};\n\
         // crate::gamma in a comment\n\
         let s = \"crate::delta in a string\";\n\
         fn f() -> crate::epsilon::E { super::zeta::Z }\n\
         mod tests { use super::*; use super::super::eta; }\n",
    );
    let found: Vec<String> = imports(&code, &["here".to_owned()])
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    assert_eq!(found, ["alpha", "beta", "epsilon", "zeta", "here", "eta"]);
    let edges = |pairs: &[(&str, &str)]| -> Vec<Edge> {
        pairs
            .iter()
            .map(|(a, b)| Edge {
                from: (*a).into(),
                to: (*b).into(),
                at: String::new(),
            })
            .collect()
    };
    let c = cycles(&edges(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]));
    assert_eq!(c.len(), 1);
    assert_eq!(cycle_names(&c[0]), ["a", "b", "c"].into_iter().collect());
    assert!(cycles(&edges(&[("a", "b"), ("b", "c")])).is_empty());
}
