//! A word-level tokenizer read from a `tokenizer.json` of the one shape the tiny model's
//! tokenizer has (src/native/tiny.rs writes it): added tokens are split out of the text first,
//! the rest is cut into words by [`SPLIT_PATTERN`], each word is looked up in the vocabulary
//! (the unknown token when it is not there), and decoding joins the tokens as they are.
//!
//! It gives the same ids, tokens and text as the tokenizers crate does for such a file
//! (tests/tokenizer.rs checks every GSM-mini text and the awkward cases), in a few hundred lines:
//! the page reads its tokenizer with this alone, without the tokenizers crate and its regular
//! expression engine and Unicode tables in the download. Natively, every other `tokenizer.json`
//! (Qwen's byte-level BPE) goes to the tokenizers crate.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// How text splits into words: a word with its leading space, one digit (so every number can
/// be written), a run of punctuation, a newline, other white space. Regular-expression
/// alternation takes the first alternative that matches, each as long as it can.
pub const SPLIT_PATTERN: &str = r" ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]+|\n|\s+";

/// The tokenizer: a vocabulary, its added tokens and the unknown token's id.
#[derive(Debug, Clone)]
pub struct WordLevel {
    vocab: HashMap<String, u32>,
    by_id: HashMap<u32, String>,
    /// Added tokens (`<|im_start|>`), longest first: at each place in the text the longest one
    /// that starts there is taken, as the tokenizers crate does.
    added: Vec<(String, u32)>,
    added_by_id: HashMap<u32, String>,
    /// Ids of the added tokens marked special: `decode(.., skip_special_tokens = true)` drops them.
    special: HashSet<u32>,
    unk: u32,
}

impl WordLevel {
    /// Read a parsed `tokenizer.json`. `Err` says in words which part is not of the supported
    /// shape (the key and what it holds).
    pub fn from_json(json: &Value) -> Result<Self, String> {
        for key in ["normalizer", "post_processor", "truncation", "padding"] {
            match json.get(key) {
                None | Some(Value::Null) => {}
                Some(other) => return Err(format!("`{key}` is {}, not null", brief(other))),
            }
        }
        let pre = json.get("pre_tokenizer").unwrap_or(&Value::Null);
        let split_pattern = pre.pointer("/pattern/Regex").and_then(Value::as_str);
        if pre.get("type").and_then(Value::as_str) != Some("Split")
            || split_pattern != Some(SPLIT_PATTERN)
            || pre.get("behavior").and_then(Value::as_str) != Some("Isolated")
            || pre.get("invert").and_then(Value::as_bool) != Some(false)
        {
            return Err(format!(
                "`pre_tokenizer` is {}, not a Split on {SPLIT_PATTERN:?} (Isolated, not inverted)",
                brief(pre)
            ));
        }
        let decoder = json.get("decoder").unwrap_or(&Value::Null);
        if decoder.get("type").and_then(Value::as_str) != Some("Fuse") {
            return Err(format!("`decoder` is {}, not Fuse", brief(decoder)));
        }
        let model = json.get("model").unwrap_or(&Value::Null);
        if model.get("type").and_then(Value::as_str) != Some("WordLevel") {
            return Err(format!(
                "`model.type` is {}, not WordLevel",
                brief(model.get("type").unwrap_or(&Value::Null))
            ));
        }
        let Some(entries) = model.get("vocab").and_then(Value::as_object) else {
            return Err("`model.vocab` is not an object of token: id".to_string());
        };
        let mut vocab = HashMap::with_capacity(entries.len());
        let mut by_id = HashMap::with_capacity(entries.len());
        for (token, id) in entries {
            let id = id
                .as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| format!("`model.vocab` gives {token:?} the id {id}"))?;
            vocab.insert(token.clone(), id);
            by_id.insert(id, token.clone());
        }
        let unk_token = model
            .get("unk_token")
            .and_then(Value::as_str)
            .ok_or("`model.unk_token` is missing")?;
        let unk = *vocab
            .get(unk_token)
            .ok_or_else(|| format!("`model.unk_token` {unk_token:?} is not in `model.vocab`"))?;

        let mut added = Vec::new();
        let mut special = HashSet::new();
        let listed = match json.get("added_tokens") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(list)) => list.as_slice(),
            Some(other) => return Err(format!("`added_tokens` is {}, not a list", brief(other))),
        };
        for (i, token) in listed.iter().enumerate() {
            let content = token.get("content").and_then(Value::as_str);
            let id = token
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|id| u32::try_from(id).ok());
            let (Some(content), Some(id)) = (content, id) else {
                return Err(format!("`added_tokens[{i}]` has no content and id"));
            };
            for flag in ["single_word", "lstrip", "rstrip"] {
                if token.get(flag).and_then(Value::as_bool).unwrap_or(false) {
                    return Err(format!("`added_tokens[{i}].{flag}` is true"));
                }
            }
            if content.is_empty() {
                return Err(format!("`added_tokens[{i}].content` is empty"));
            }
            if token
                .get("special")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                special.insert(id);
            }
            added.push((content.to_string(), id));
        }
        let added_by_id = added.iter().map(|(t, id)| (*id, t.clone())).collect();
        added.sort_by_key(|(content, _)| std::cmp::Reverse(content.len()));
        Ok(Self {
            vocab,
            by_id,
            added,
            added_by_id,
            special,
            unk,
        })
    }

    /// Ids for `text`: added tokens written in the text become their ids, every other word its
    /// vocabulary id or the unknown token's.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        let mut plain_from = 0;
        let mut at = 0;
        while at < text.len() {
            let rest = &text[at..];
            if let Some((content, id)) = self.added.iter().find(|(c, _)| rest.starts_with(c)) {
                self.encode_plain(&text[plain_from..at], &mut ids);
                ids.push(*id);
                at += content.len();
                plain_from = at;
            } else {
                at += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
        self.encode_plain(&text[plain_from..], &mut ids);
        ids
    }

    fn encode_plain(&self, mut text: &str, ids: &mut Vec<u32>) {
        while !text.is_empty() {
            let (word, rest) = text.split_at(word_len(text));
            ids.push(self.vocab.get(word).copied().unwrap_or(self.unk));
            text = rest;
        }
    }

    /// The text of `ids` joined as they are; ids with no token are left out, and special added
    /// tokens too when `skip_special_tokens`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> String {
        ids.iter()
            .filter(|id| !(skip_special_tokens && self.special.contains(id)))
            .filter_map(|id| self.token(*id))
            .collect()
    }

    /// The token string of `id` (an added token's first), if there is one.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.added_by_id
            .get(&id)
            .or_else(|| self.by_id.get(&id))
            .map(String::as_str)
    }

    /// The id of a token string (an added token's first), if it is one.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.added
            .iter()
            .find(|(content, _)| content == token)
            .map(|(_, id)| *id)
            .or_else(|| self.vocab.get(token).copied())
    }

    /// How many different token strings the vocabulary and the added tokens hold together.
    pub fn vocab_size(&self) -> usize {
        let added_elsewhere = self
            .added
            .iter()
            .filter(|(content, _)| !self.vocab.contains_key(content))
            .count();
        self.vocab.len() + added_elsewhere
    }
}

/// The length in bytes of the word [`SPLIT_PATTERN`] matches at the start of `text` (not
/// empty). Every character is matched by one alternative, so this is never 0: a letter, digit or
/// other character by the first three, white space by the last two.
fn word_len(text: &str) -> usize {
    let letters = |t: &str| t.bytes().take_while(u8::is_ascii_alphabetic).count();
    let others = |t: &str| -> usize {
        t.chars()
            .take_while(|c| !c.is_whitespace() && !c.is_ascii_alphanumeric())
            .map(char::len_utf8)
            .sum()
    };
    let (space, body) = match text.strip_prefix(' ') {
        // ` ?` takes the space when what follows lets the rest match; a space is not itself a
        // letter, digit or other character, so without it only the white-space alternatives
        // could match.
        Some(body) => (1, body),
        None => (0, text),
    };
    let n = letters(body);
    if n > 0 {
        return space + n;
    }
    if body.starts_with(|c: char| c.is_ascii_digit()) {
        return space + 1;
    }
    let n = others(body);
    if n > 0 {
        return space + n;
    }
    if text.starts_with('\n') {
        return 1;
    }
    text.chars()
        .take_while(|c| c.is_whitespace())
        .map(char::len_utf8)
        .sum::<usize>()
        .max(text.chars().next().map_or(1, char::len_utf8))
}

/// A short rendering of a JSON value for an error message.
fn brief(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}
