//! The tokenizer: a Hugging Face `tokenizer.json`. The tiny model's word-level tokenizer is read
//! by [`WordLevel`] natively and in the page alike; natively every other one (Qwen's byte-level
//! BPE) is read by the tokenizers crate, which the page does not carry.

use super::ModelError;
use super::word_level::WordLevel;

/// Text to ids and back, plus the token strings the page and `ppo-lens score` show.
pub struct TextTokenizer {
    inner: Inner,
}

// One per loaded tokenizer: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Inner {
    WordLevel(WordLevel),
    #[cfg(not(target_arch = "wasm32"))]
    Hub(tokenizers::Tokenizer),
}

impl TextTokenizer {
    /// Parse `tokenizer.json`; `file` names it in errors.
    pub fn from_bytes(bytes: &[u8], file: &str) -> Result<Self, ModelError> {
        let bad = |message: String| ModelError::File {
            file: file.to_string(),
            message,
        };
        let json: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("not a readable tokenizer.json: {e}")))?;
        let inner = match WordLevel::from_json(&json) {
            Ok(word_level) => Inner::WordLevel(word_level),
            #[cfg(not(target_arch = "wasm32"))]
            Err(_) => tokenizers::Tokenizer::from_bytes(bytes)
                .map(Inner::Hub)
                .map_err(|e| bad(format!("not a readable tokenizer.json: {e}")))?,
            #[cfg(target_arch = "wasm32")]
            Err(why) => {
                return Err(bad(format!(
                    "the page reads word-level tokenizers like the tiny model's only: {why}"
                )));
            }
        };
        Ok(Self { inner })
    }

    /// Whether the tokenizer is read by [`WordLevel`], the reader the page has.
    pub fn is_word_level(&self) -> bool {
        matches!(self.inner, Inner::WordLevel(_))
    }

    /// Ids for `text`. Special tokens written in the text (`<|im_start|>`) become their ids; no
    /// BOS is added (Qwen adds none).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        match &self.inner {
            Inner::WordLevel(t) => Ok(t.encode(text)),
            #[cfg(not(target_arch = "wasm32"))]
            Inner::Hub(t) => t
                .encode(text, false)
                .map(|enc| enc.get_ids().to_vec())
                .map_err(|e| ModelError::Other(format!("cannot tokenize {text:?}: {e}"))),
        }
    }

    /// Text for `ids`, special tokens kept or skipped.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, ModelError> {
        match &self.inner {
            Inner::WordLevel(t) => Ok(t.decode(ids, skip_special_tokens)),
            #[cfg(not(target_arch = "wasm32"))]
            Inner::Hub(t) => t
                .decode(ids, skip_special_tokens)
                .map_err(|e| ModelError::Other(format!("cannot decode {ids:?}: {e}"))),
        }
    }

    /// The vocabulary string of one id (`Ġ`-style byte-level marks included), if it exists.
    pub fn token(&self, id: u32) -> Option<String> {
        match &self.inner {
            Inner::WordLevel(t) => t.token(id).map(str::to_string),
            #[cfg(not(target_arch = "wasm32"))]
            Inner::Hub(t) => t.id_to_token(id),
        }
    }

    /// The id of a vocabulary string, if it exists.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        match &self.inner {
            Inner::WordLevel(t) => t.token_id(token),
            #[cfg(not(target_arch = "wasm32"))]
            Inner::Hub(t) => t.token_to_id(token),
        }
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        match &self.inner {
            Inner::WordLevel(t) => t.vocab_size(),
            #[cfg(not(target_arch = "wasm32"))]
            Inner::Hub(t) => t.get_vocab_size(true),
        }
    }
}
