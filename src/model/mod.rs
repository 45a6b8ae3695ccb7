//! The model: a Qwen2-architecture decoder with a value head, its config, its weights in the
//! Hugging Face safetensors layout, its tokenizer and chat template.
//!
//! Core code: no file system here (the native loader reads directories, the page fetches
//! files); everything works from bytes.

pub mod chat;
pub mod config;
pub mod decode;
pub mod init;
pub mod qwen2;
pub mod tokenizer;
pub mod weights;
pub mod word_level;

pub use config::Qwen2Config;
pub use init::init_random;
pub use qwen2::{ForwardOutput, KvCache, Qwen2Model};
pub use weights::{
    Precision, ValueHeadInit, WeightFiles, load_model, save_model, save_model_f16, save_value_head,
};

use std::fmt;

/// Everything that can go wrong building a model from files, each naming what was wrong.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelError {
    /// A bad `config.json` key or value.
    Config {
        file: String,
        key: String,
        message: String,
    },
    /// A file that is missing, unreadable or not what its name says.
    File { file: String, message: String },
    /// A tensor the model needs is not in any weight file.
    MissingTensor { name: String, files: Vec<String> },
    /// A tensor with the wrong shape.
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A tensor stored in a dtype ppo-lens does not read.
    Dtype { name: String, found: String },
    /// Anything else, said in words.
    Other(String),
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config { file, key, message } if key.is_empty() => write!(f, "{file}: {message}"),
            Self::Config { file, key, message } => write!(f, "{file}: key `{key}` {message}"),
            Self::File { file, message } => write!(f, "{file}: {message}"),
            Self::MissingTensor { name, files } => {
                write!(
                    f,
                    "tensor `{name}` is missing (looked in {})",
                    files.join(", ")
                )
            }
            Self::Shape {
                name,
                expected,
                found,
            } => {
                write!(
                    f,
                    "tensor `{name}` has shape {found:?}, expected {expected:?}"
                )
            }
            Self::Dtype { name, found } => write!(
                f,
                "tensor `{name}` is stored as {found}; ppo-lens reads F32, F16 and BF16"
            ),
            Self::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ModelError {}
