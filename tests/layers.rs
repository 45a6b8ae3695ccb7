//! The crate's files import one way: no two files of `src/` import each other, directly or
//! around a longer circle, and no two top-level modules do either (docs/architecture.md says
//! why, and where each kind of change goes).
//!
//! The graph is read from the code: every `use` and every path written in code
//! (`crate::explain::format::num(x)`, `super::clock::next_task()`, a child module's
//! `stages::StagePanel`), each resolved to the file that defines what it names. A `pub use` that
//! hands on a name from the file's own submodules (a folder's `mod.rs` as its face) is followed
//! to the file behind it rather than counted as an import; comments, string literals and test
//! code (`#[cfg(test)]`) are not read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `src/`'s Rust files of the library (not `main.rs`), by path relative to the repository.
fn source_files() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                if rel != "src/main.rs" {
                    out.insert(rel, std::fs::read_to_string(&path).unwrap());
                }
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = BTreeMap::new();
    walk(&root.join("src"), root, &mut out);
    out
}

/// The module path of a file: `src/lab/run.rs` and `src/lab/run/mod.rs` are `["lab", "run"]`.
fn module_of(file: &str) -> Vec<String> {
    let rel = file
        .strip_prefix("src/")
        .unwrap()
        .strip_suffix(".rs")
        .unwrap();
    let mut parts: Vec<String> = rel.split('/').map(String::from).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The code of `text` with comments removed and every string and char literal emptied.
fn code_only(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        let after_next = c.get(i + 2).copied();
        if c[i] == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c[i] == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_'))
        {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= c.len() {
                    break;
                }
                if c[j] == '"' && (0..hashes).all(|h| c.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c[i] == '\'' && (next == Some('\\') || after_next == Some('\'')) {
            // A char literal ('x', '\n', '\u{..}'); a lifetime has no closing quote there.
            i += 1;
            while i < c.len() && c[i] != '\'' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn is_ident(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// One `use` tree flattened: each leaf as its path segments (`self` kept as a segment) and the
/// name it is known by here.
fn use_leaves(tree: &str) -> Vec<(Vec<String>, String)> {
    fn parse(s: &str, prefix: &[String], out: &mut Vec<(Vec<String>, String)>) {
        let s = s.trim();
        if s.is_empty() {
            return;
        }
        if let Some(open) = top_level_brace(s) {
            let head: Vec<String> = segments(&s[..open]);
            let inner = &s[open + 1..s.len() - 1];
            let mut base = prefix.to_vec();
            base.extend(head);
            for part in split_top(inner) {
                parse(part, &base, out);
            }
            return;
        }
        let (path, alias) = match s.split_once(" as ") {
            Some((p, a)) => (p.trim(), Some(a.trim().to_string())),
            None => (s, None),
        };
        let mut full = prefix.to_vec();
        full.extend(segments(path));
        let name = alias.unwrap_or_else(|| match full.last().map(String::as_str) {
            Some("self") => full
                .get(full.len().saturating_sub(2))
                .cloned()
                .unwrap_or_default(),
            Some(last) => last.to_string(),
            None => String::new(),
        });
        out.push((full, name));
    }
    fn segments(s: &str) -> Vec<String> {
        s.split("::")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect()
    }
    fn top_level_brace(s: &str) -> Option<usize> {
        s.find('{').filter(|_| s.ends_with('}'))
    }
    fn split_top(s: &str) -> Vec<&str> {
        let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
        for (i, ch) in s.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&s[start..]);
        parts
    }
    let mut out = Vec::new();
    parse(tree, &[], &mut out);
    out
}

/// What one file says: its `use` statements (visibility, leaves, the inline-module depth they
/// stand at), the paths its code writes, and its child modules declared by `mod name;`.
struct Read {
    uses: Vec<(bool, Vec<(Vec<String>, String)>, usize)>,
    paths: Vec<(Vec<String>, usize)>,
    children: BTreeSet<String>,
}

/// Where the `#[cfg(test)]` item starting at byte `i` of `code` ends (past its closing brace or
/// semicolon).
fn test_item_end(code: &str, i: usize) -> usize {
    let bytes = code.as_bytes();
    let body = code[i..].find(['{', ';']).map_or(code.len(), |k| i + k);
    if bytes.get(body) != Some(&b'{') {
        return body + 1;
    }
    let mut open = 0;
    let mut k = body;
    while k < bytes.len() {
        match bytes[k] {
            b'{' => open += 1,
            b'}' => {
                open -= 1;
                if open == 0 {
                    break;
                }
            }
            _ => {}
        }
        k += 1;
    }
    k + 1
}

/// `code` without its `#[cfg(test)]` items.
fn without_tests(code: &str) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(k) = code[i..].find("#[cfg(test)]") {
        out.push_str(&code[i..i + k]);
        i = test_item_end(code, i + k).min(code.len());
    }
    out.push_str(&code[i..]);
    out
}

fn read(text: &str) -> Read {
    let code = code_only(text);
    // Byte offsets: the code is ASCII wherever words and paths stand; other bytes are stepped over.
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let word_at = |i: usize, w: &str| {
        code[i..].starts_with(w)
            && (i == 0 || !ident(bytes[i - 1]))
            && !bytes.get(i + w.len()).copied().is_some_and(ident)
    };
    let mut read = Read {
        uses: Vec::new(),
        paths: Vec::new(),
        children: BTreeSet::new(),
    };
    let mut inline: Vec<usize> = Vec::new(); // brace depth at which each inline `mod x {` opened
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        if !code.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let b = bytes[i];
        if b == b'{' {
            depth += 1;
            i += 1;
            continue;
        }
        if b == b'}' {
            depth = depth.saturating_sub(1);
            if inline.last() == Some(&depth) {
                inline.pop();
            }
            i += 1;
            continue;
        }
        // Test code (`#[cfg(test)]` items) may import what it tests from: not read.
        if code[i..].starts_with("#[cfg(test)]") {
            i = test_item_end(&code, i);
            continue;
        }
        // `pub(in crate::web)` names where an item is visible, not what it uses.
        if code[i..].starts_with("pub(in ") {
            i = code[i..].find(')').map_or(code.len(), |k| i + k + 1);
            continue;
        }
        let boundary = i == 0 || !ident(bytes[i - 1]);
        if boundary && code[i..].starts_with("mod ") && word_at(i, "mod") {
            let rest = &code[i + 4..];
            let name: String = rest.chars().take_while(|&ch| is_ident(ch)).collect();
            let after = rest[name.len()..].trim_start();
            if after.starts_with(';') {
                read.children.insert(name);
            } else if after.starts_with('{') {
                inline.push(depth);
            }
            i += 4;
            continue;
        }
        if boundary && code[i..].starts_with("use ") && word_at(i, "use") {
            let end = code[i..].find(';').map_or(code.len(), |e| i + e);
            let before = code[..i].trim_end();
            let public = before.ends_with("pub")
                || before.ends_with(')') && {
                    let open = before.rfind('(').unwrap_or(0);
                    before[..open].trim_end().ends_with("pub")
                };
            read.uses
                .push((public, use_leaves(&code[i + 4..end]), inline.len()));
            i = end;
            continue;
        }
        if boundary && b.is_ascii_alphabetic() {
            let mut j = i;
            let mut segs = Vec::new();
            loop {
                let start = j;
                while j < bytes.len() && ident(bytes[j]) {
                    j += 1;
                }
                segs.push(code[start..j].to_string());
                if code[j..].starts_with("::")
                    && bytes
                        .get(j + 2)
                        .is_some_and(|&n| n.is_ascii_alphabetic() || n == b'_')
                {
                    j += 2;
                } else {
                    break;
                }
            }
            if segs.len() > 1 {
                read.paths.push((segs, inline.len()));
            }
            i = j.max(i + 1);
            continue;
        }
        i += 1;
    }
    read
}

/// The import graph: for each file, the files it takes names from, with the names.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn graph(files: &BTreeMap<String, String>) -> Graph {
    let modules: BTreeMap<Vec<String>, String> =
        files.keys().map(|f| (module_of(f), f.clone())).collect();
    let reads: BTreeMap<&String, Read> = files.iter().map(|(f, t)| (f, read(t))).collect();
    // Re-exports: (module, name) -> the absolute path it stands for.
    let mut reexports: BTreeMap<(Vec<String>, String), Vec<String>> = BTreeMap::new();
    let absolute = |file: &str, path: &[String], inline: usize| -> Option<Vec<String>> {
        let mut here = module_of(file);
        // Inside an inline module, `super` first leaves that module (still this file).
        let mut supers_to_skip = inline;
        let first = path.first()?.as_str();
        let mut rest: &[String] = path;
        match first {
            "crate" => {
                here.clear();
                rest = &path[1..];
            }
            "super" | "self" => {
                while let Some(seg) = rest.first() {
                    match seg.as_str() {
                        "super" if supers_to_skip > 0 => supers_to_skip -= 1,
                        "super" => {
                            here.pop()?;
                        }
                        "self" => {}
                        _ => break,
                    }
                    rest = &rest[1..];
                }
            }
            name if reads[&file.to_string()].children.contains(name) => {}
            _ => return None,
        }
        let mut out = here;
        out.extend(rest.iter().cloned());
        Some(out)
    };
    for (file, r) in &reads {
        for (public, leaves, inline) in &r.uses {
            if !public {
                continue;
            }
            for (path, name) in leaves {
                if let Some(abs) = absolute(file, path, *inline) {
                    reexports.insert((module_of(file), name.clone()), abs);
                }
            }
        }
    }
    // The file that defines what `path` names.
    let resolve = |path: &[String]| -> Option<(String, String)> {
        let mut path = path.to_vec();
        for _ in 0..16 {
            let cut = (0..=path.len())
                .rev()
                .find(|&k| modules.contains_key(&path[..k]))?;
            let module = path[..cut].to_vec();
            let file = modules[&module].clone();
            let Some(name) = path.get(cut).filter(|n| *n != "self").cloned() else {
                return Some((file, path.last().cloned().unwrap_or_default()));
            };
            match reexports.get(&(module.clone(), name.clone())) {
                Some(target) if *target != path[..=cut] => {
                    let mut next = target.clone();
                    next.extend(path[cut + 1..].iter().cloned());
                    path = next;
                }
                _ => return Some((file, name)),
            }
        }
        None
    };
    let mut g: Graph = BTreeMap::new();
    for (file, r) in &reads {
        let me = module_of(file);
        let mut add = |path: &[String], inline: usize| {
            let Some(abs) = absolute(file, path, inline) else {
                return;
            };
            if let Some((to, name)) = resolve(&abs) {
                if &to != *file {
                    g.entry(file.to_string())
                        .or_default()
                        .entry(to)
                        .or_default()
                        .insert(name);
                }
            }
        };
        for (public, leaves, inline) in &r.uses {
            for (path, _) in leaves {
                // A `pub use` of the file's own submodules is its face, not an import.
                if *public {
                    if let Some(abs) = absolute(file, path, *inline) {
                        if abs.len() > me.len() && abs[..me.len()] == me[..] {
                            continue;
                        }
                    }
                }
                add(path, *inline);
            }
        }
        for (path, inline) in &r.paths {
            add(path, *inline);
        }
    }
    g
}

/// Every circle of files (a strongly connected part of more than one file), each with the
/// imports that tie it, `a -> b: names`.
fn circles(g: &Graph) -> Vec<Vec<String>> {
    // Tarjan's algorithm.
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        if let Some(edges) = s.g.get(v) {
            for w in edges.keys() {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if s.on.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut part = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                part.push(w);
                if w == v {
                    break;
                }
            }
            if part.len() > 1 {
                let members: BTreeSet<&str> = part.iter().copied().collect();
                let mut lines = Vec::new();
                for a in &members {
                    for (b, names) in s.g.get(*a).into_iter().flatten() {
                        if members.contains(b.as_str()) {
                            let names: Vec<&str> = names.iter().map(String::as_str).collect();
                            lines.push(format!("{a} -> {b}: {}", names.join(", ")));
                        }
                    }
                }
                s.out.push(lines);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn report(found: &[Vec<String>]) -> String {
    found
        .iter()
        .enumerate()
        .map(|(i, lines)| format!("circle {}:\n  {}", i + 1, lines.join("\n  ")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_two_files_of_src_import_each_other() {
    let g = graph(&source_files());
    let found = circles(&g);
    assert!(
        found.is_empty(),
        "files of src/ that import each other (docs/architecture.md: move what both need below \
         both, or hand it down from the caller):\n{}",
        report(&found)
    );
}

/// The same rule one level up: no two of the crate's top-level modules (`ppo`, `rollout`,
/// `model`, `lab`, `web`, ...) import each other, through any of their files.
#[test]
fn no_two_top_level_modules_import_each_other() {
    let files = graph(&source_files());
    let top = |file: &str| {
        module_of(file)
            .first()
            .cloned()
            .unwrap_or_else(|| "lib".into())
    };
    let mut g: Graph = BTreeMap::new();
    for (a, edges) in &files {
        for (b, names) in edges {
            let (ta, tb) = (top(a), top(b));
            if ta != tb {
                let named = names.iter().map(|n| format!("{n} ({a} -> {b})"));
                g.entry(ta)
                    .or_default()
                    .entry(tb)
                    .or_default()
                    .extend(named);
            }
        }
    }
    let found = circles(&g);
    assert!(
        found.is_empty(),
        "top-level modules that import each other:\n{}",
        report(&found)
    );
}

/// The reader sees what the code imports: through `use`, a path in code, a child module's name,
/// `super`, and a folder's `pub use` face (followed to the file behind it).
#[test]
fn the_graph_has_the_imports_the_code_writes() {
    let g = graph(&source_files());
    let has = |a: &str, b: &str, name: &str| {
        g.get(a)
            .and_then(|e| e.get(b))
            .is_some_and(|names| names.contains(name))
    };
    let cases = [
        // `use crate::lab::wire::Sampling;`
        ("src/lab/run.rs", "src/lab/wire.rs", "Sampling"),
        // `use super::weights::{.., ValueHeadInit, ..}`
        ("src/model/init.rs", "src/model/weights.rs", "ValueHeadInit"),
        // `crate::model::Qwen2Model`, re-exported by src/model/mod.rs from qwen2.rs
        ("src/lab/run.rs", "src/model/qwen2.rs", "Qwen2Model"),
        // `super::clock::next_task()` written in code
        ("src/web/run.rs", "src/web/clock.rs", "next_task"),
        // `<stages::StagePanel state=state />`: a child module named in the page's view
        ("src/web/mod.rs", "src/web/stages/mod.rs", "StagePanel"),
        // `pub use crate::explain::stage::StageKey as Stage;`: a re-export from elsewhere
        ("src/web/state.rs", "src/explain/stage.rs", "StageKey"),
    ];
    for (a, b, name) in cases {
        assert!(
            has(a, b, name),
            "{a} -> {b} ({name}) not read: {:?}",
            g.get(a)
        );
    }
    // Comments and strings are not imports: src/model/qwen2.rs names decode_step only in docs.
    assert!(
        !g["src/model/qwen2.rs"].contains_key("src/cpu_fast/decode_step.rs"),
        "{:?}",
        g["src/model/qwen2.rs"]
    );
}

/// A circle planted in a copy of the sources is found, with both files and the names named; so
/// is a longer one.
#[test]
fn a_planted_circle_is_found_and_named() {
    let mut files = source_files();
    files
        .get_mut("src/lab/wire.rs")
        .unwrap()
        .push_str("\nuse crate::lab::run::Lab;\n");
    let found = report(&circles(&graph(&files)));
    assert!(
        found.contains("src/lab/wire.rs -> src/lab/run.rs: Lab")
            && found.contains("src/lab/run.rs -> src/lab/wire.rs: Sampling"),
        "{found}"
    );

    // Three files: iteration -> update -> losses, and losses back to iteration.
    let mut files = source_files();
    files
        .get_mut("src/ppo/losses.rs")
        .unwrap()
        .push_str("\nfn planted(e: &crate::ppo::iteration::Experience) {}\n");
    let found = report(&circles(&graph(&files)));
    assert!(
        found.contains("src/ppo/losses.rs -> src/ppo/iteration.rs: Experience")
            && found.contains("src/ppo/iteration.rs -> src/ppo/update.rs"),
        "{found}"
    );
}

/// Every file fits in one's head: at most 600 lines, except the ones that are long for a reason
/// of their own (the CPU kernels, the exercises' grader with its hand-worked cases).
#[test]
fn no_file_of_src_is_over_600_lines() {
    const EXEMPT: [(&str, &str); 3] = [
        (
            "src/cpu_fast/few_rows.rs",
            "a CPU kernel (issue 47 measures what it earns)",
        ),
        (
            "src/cpu_fast/gemm_linear.rs",
            "a CPU kernel (issue 47 measures what it earns)",
        ),
        ("src/exercises/grade.rs", "the grader's hand-worked cases"),
    ];
    let long: Vec<String> = source_files()
        .iter()
        .filter(|(f, _)| !EXEMPT.iter().any(|(e, _)| e == f))
        .map(|(f, text)| (f, text.lines().count()))
        .filter(|&(_, n)| n > 600)
        .map(|(f, n)| format!("{f}: {n} lines"))
        .collect();
    assert!(
        long.is_empty(),
        "split by what each part does:\n{}",
        long.join("\n")
    );
}

/// src/model/ is the model: its code (tests aside) names none of the CPU fast path's machinery,
/// no device, thread, SIMD or packed weight; it reaches the fast path only through `cpu_fast`'s
/// door, whose functions return `None` for burn's path.
#[test]
fn the_model_names_no_cpu_speed_machinery() {
    const WORDS: [&str; 10] = [
        "flex",
        "Flex",
        "rayon",
        "thread",
        "simd",
        "Simd",
        "Panels",
        "few_rows",
        "gemm",
        "native_kv",
    ];
    let mut found = Vec::new();
    for (file, text) in source_files() {
        if !file.starts_with("src/model/") {
            continue;
        }
        let code = without_tests(&code_only(&text));
        for word in WORDS {
            if code.contains(word) {
                found.push(format!("{file} names `{word}`"));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
    // It finds them where they are: the door's own file names them.
    let files = source_files();
    let door = without_tests(&code_only(&files["src/cpu_fast/door.rs"]));
    assert!(door.contains("Panels") && door.contains("rayon"));
}
