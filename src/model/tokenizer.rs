//! The tokenizer: a Hugging Face `tokenizer.json`, read with the tokenizers crate (natively and
//! in the page alike).

use super::ModelError;

/// Text to ids and back, plus the token strings the page and `ppo-lens score` show.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
}

impl TextTokenizer {
    /// Parse `tokenizer.json`; `file` names it in errors.
    pub fn from_bytes(bytes: &[u8], file: &str) -> Result<Self, ModelError> {
        tokenizers::Tokenizer::from_bytes(bytes)
            .map(|inner| Self { inner })
            .map_err(|e| ModelError::File {
                file: file.to_string(),
                message: format!("not a readable tokenizer.json: {e}"),
            })
    }

    /// Ids for `text`. Special tokens written in the text (`<|im_start|>`) become their ids; no
    /// BOS is added (Qwen adds none).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        self.inner
            .encode(text, false)
            .map(|enc| enc.get_ids().to_vec())
            .map_err(|e| ModelError::Other(format!("cannot tokenize {text:?}: {e}")))
    }

    /// Text for `ids`, special tokens kept or skipped.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, ModelError> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| ModelError::Other(format!("cannot decode {ids:?}: {e}")))
    }

    /// The vocabulary string of one id (`Ġ`-style byte-level marks included), if it exists.
    pub fn token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The id of a vocabulary string, if it exists.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}
