//! docs/FAQ.md, built into the binary and split into its questions, so that the page can show
//! every answer offline and list, under each stage, the questions that point to it.
//!
//! The parser knows only what FAQ.md uses: `## ` categories, `### ` questions, paragraphs,
//! `- ` lists, fenced code blocks, and inline `code` and `[text](target)` links.

/// The FAQ's text.
pub const FAQ_MD: &str = include_str!("../docs/FAQ.md");

/// Where the served page lives in FAQ.md's links; such links open a stage in the page itself.
const PAGE_PREFIX: &str = "http://127.0.0.1:8080/";

/// A piece of a line of text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inline {
    Text(String),
    Code(String),
    /// A link to a stage of the page (its URL key: `gae`, `update`, ...).
    Stage {
        text: String,
        stage: String,
    },
    /// A link to another question (its anchor).
    Question {
        text: String,
        anchor: String,
    },
    /// A link to another document, shown as its path.
    Doc {
        text: String,
        path: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block {
    Paragraph(Vec<Inline>),
    List(Vec<Vec<Inline>>),
    Code(String),
}

/// One question and its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// GitHub's anchor for the heading: lower case, punctuation dropped, spaces as `-`.
    pub anchor: String,
    pub category: String,
    pub question: String,
    pub blocks: Vec<Block>,
}

impl Entry {
    /// The page stages this answer links to, in order of first mention.
    pub fn stages(&self) -> Vec<String> {
        let mut stages: Vec<String> = Vec::new();
        let mut visit = |inlines: &[Inline]| {
            for inline in inlines {
                if let Inline::Stage { stage, .. } = inline
                    && !stages.contains(stage)
                {
                    stages.push(stage.clone());
                }
            }
        };
        for block in &self.blocks {
            match block {
                Block::Paragraph(inlines) => visit(inlines),
                Block::List(items) => items.iter().for_each(|item| visit(item)),
                Block::Code(_) => {}
            }
        }
        stages
    }
}

/// The anchor GitHub gives a heading.
pub fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Splits a line into text, inline code and links.
pub fn inlines(line: &str) -> Vec<Inline> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if c == '`'
            && let Some(end) = rest[1..].find('`')
        {
            flush(&mut text, &mut out);
            out.push(Inline::Code(rest[1..1 + end].to_string()));
            rest = &rest[end + 2..];
            continue;
        }
        if c == '['
            && let Some(close) = rest.find("](")
            && let Some(end) = rest[close..].find(')')
        {
            let label = rest[1..close].to_string();
            let target = &rest[close + 2..close + end];
            flush(&mut text, &mut out);
            out.push(link(label, target));
            rest = &rest[close + end + 1..];
            continue;
        }
        text.push(c);
        rest = &rest[c.len_utf8()..];
    }
    flush(&mut text, &mut out);
    out
}

fn flush(text: &mut String, out: &mut Vec<Inline>) {
    if !text.is_empty() {
        out.push(Inline::Text(std::mem::take(text)));
    }
}

fn link(text: String, target: &str) -> Inline {
    let page = target.strip_prefix(PAGE_PREFIX).unwrap_or(target);
    if let Some(query) = page.strip_prefix('?')
        && let Some(stage) = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("stage="))
    {
        return Inline::Stage {
            text,
            stage: stage.to_string(),
        };
    }
    match target.strip_prefix('#') {
        Some(anchor) => Inline::Question {
            text,
            anchor: anchor.to_string(),
        },
        None => Inline::Doc {
            text,
            path: format!("docs/{}", target.split('#').next().unwrap_or(target)),
        },
    }
}

/// Every question of FAQ.md, in order.
pub fn entries() -> Vec<Entry> {
    parse(FAQ_MD)
}

/// Parses FAQ-shaped markdown: only the text under `### ` headings becomes entries.
pub fn parse(markdown: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut category = String::new();
    let mut paragraph: Vec<String> = Vec::new();
    let mut list: Vec<String> = Vec::new();
    let mut code: Option<String> = None;

    fn close(entries: &mut [Entry], paragraph: &mut Vec<String>, list: &mut Vec<String>) {
        let Some(entry) = entries.last_mut() else {
            paragraph.clear();
            list.clear();
            return;
        };
        if !paragraph.is_empty() {
            entry
                .blocks
                .push(Block::Paragraph(inlines(&paragraph.join(" "))));
            paragraph.clear();
        }
        if !list.is_empty() {
            let items = list.iter().map(|item| inlines(item)).collect();
            entry.blocks.push(Block::List(items));
            list.clear();
        }
    }

    for line in markdown.lines() {
        if let Some(body) = code.as_mut() {
            if line.trim_start().starts_with("```") {
                if let Some(entry) = entries.last_mut() {
                    entry.blocks.push(Block::Code(std::mem::take(body)));
                }
                code = None;
            } else {
                body.push_str(line);
                body.push('\n');
            }
            continue;
        }
        if line.trim_start().starts_with("```") {
            close(&mut entries, &mut paragraph, &mut list);
            code = Some(String::new());
        } else if let Some(title) = line.strip_prefix("### ") {
            close(&mut entries, &mut paragraph, &mut list);
            entries.push(Entry {
                anchor: anchor(title),
                category: category.clone(),
                question: title.trim().to_string(),
                blocks: Vec::new(),
            });
        } else if let Some(title) = line.strip_prefix("## ") {
            close(&mut entries, &mut paragraph, &mut list);
            category = title.trim().to_string();
        } else if line.starts_with("# ") || line.trim() == "---" || line.trim().is_empty() {
            close(&mut entries, &mut paragraph, &mut list);
        } else if let Some(item) = line.strip_prefix("- ") {
            if !paragraph.is_empty() {
                close(&mut entries, &mut paragraph, &mut list);
            }
            list.push(item.trim().to_string());
        } else if !list.is_empty() && line.starts_with("  ") {
            // A list item's continuation line.
            let last = list.last_mut().expect("a list item");
            last.push(' ');
            last.push_str(line.trim());
        } else {
            paragraph.push(line.trim().to_string());
        }
    }
    close(&mut entries, &mut paragraph, &mut list);
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contents_link_finds_its_question_and_every_question_is_listed() {
        let entries = entries();
        let anchors: Vec<&str> = entries.iter().map(|e| e.anchor.as_str()).collect();
        // The contents: the `- [question](#anchor)` lines before the first `---`.
        let contents = FAQ_MD.split("\n---\n").next().unwrap();
        let linked: Vec<String> = contents
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- ["))
            .map(|l| {
                l.split("](#")
                    .nth(1)
                    .unwrap()
                    .trim_end_matches(')')
                    .to_string()
            })
            .collect();
        assert_eq!(linked.len(), entries.len(), "{linked:?}");
        for link in &linked {
            assert!(anchors.contains(&link.as_str()), "#{link} has no question");
        }
        for entry in &entries {
            assert!(!entry.blocks.is_empty(), "{} has no answer", entry.question);
            assert!(!entry.category.is_empty(), "{}", entry.question);
        }
    }

    #[test]
    fn links_to_stages_are_found_and_name_real_stages() {
        let entries = entries();
        let gae = entries
            .iter()
            .find(|e| e.anchor == "gae-in-detail")
            .unwrap();
        assert_eq!(gae.stages(), vec!["gae".to_string()]);
        let keys = ["rollout", "score", "values", "gae", "update", "mask"];
        let mut linked_stages = Vec::new();
        for entry in &entries {
            for stage in entry.stages() {
                assert!(keys.contains(&stage.as_str()), "{}: {stage}", entry.anchor);
                linked_stages.push(stage);
            }
        }
        for key in ["score", "values", "gae", "update", "mask"] {
            assert!(
                linked_stages.iter().any(|s| s == key),
                "no question links to {key}"
            );
        }
    }

    #[test]
    fn inline_code_links_and_lists_are_parsed() {
        assert_eq!(
            anchor("Why the prompt_len - 1 slice?"),
            "why-the-prompt_len---1-slice"
        );
        assert_eq!(
            inlines(
                "see `A_t` on [the GAE stage](http://127.0.0.1:8080/?stage=gae) and [x](exercises.md#debugging)"
            ),
            vec![
                Inline::Text("see ".into()),
                Inline::Code("A_t".into()),
                Inline::Text(" on ".into()),
                Inline::Stage {
                    text: "the GAE stage".into(),
                    stage: "gae".into()
                },
                Inline::Text(" and ".into()),
                Inline::Doc {
                    text: "x".into(),
                    path: "docs/exercises.md".into()
                },
            ]
        );
        let parsed = parse(
            "## Cat\n### Q one?\nline a\nline b\n\n- item 1\n  more\n- item 2\n```text\nx = 1\n```\n",
        );
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].category, "Cat");
        assert_eq!(
            parsed[0].blocks,
            vec![
                Block::Paragraph(vec![Inline::Text("line a line b".into())]),
                Block::List(vec![
                    vec![Inline::Text("item 1 more".into())],
                    vec![Inline::Text("item 2".into())]
                ]),
                Block::Code("x = 1\n".into()),
            ]
        );
    }
}
