//! The tiny model behind the page and `configs/config_debug.yaml`: a word-level tokenizer made
//! from GSM-mini text, and supervised pretraining on GSM-mini answers that are right only about
//! half the time.
//!
//! Every worked answer keeps its calculator notes right (`<<3+4=7>>7`), but the final line
//! `#### N` is replaced by a nearby wrong number in about half the examples. A model trained on
//! that copies the computed number into the answer line about half the time: PPO then has
//! something to learn in minutes (report what you computed), and the page's reward curve rises.
//!
//! Only the response tokens are targets (label masking): the prompt is context, and the model is
//! never trained to write the system message or the question.

use std::collections::BTreeSet;

use anyhow::{Context, Result, anyhow, bail};
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde_json::{Value, json};

use crate::compute::read_f32;
use crate::data::gsm_mini::gsm_mini_problem;
use crate::data::gsm8k::Problem;
use crate::model::chat::gsm8k_prompt;
use crate::model::tokenizer::TextTokenizer;
use crate::model::weights::saved_config;
use crate::model::{
    Precision, Qwen2Config, Qwen2Model, ValueHeadInit, init_random, save_model_f16,
};
use crate::ppo::entropy::logsumexp;
use crate::rng::Rng;

/// Special tokens, ids 0.. in this order. `<|im_end|>` ends an answer (EOS) and `<|endoftext|>`
/// pads, as in Qwen's tokenizer.
pub const SPECIAL_TOKENS: [&str; 4] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"];

/// How text splits into words (the page's tokenizer reads this pattern without a regex engine).
pub use crate::model::word_level::SPLIT_PATTERN;

/// A `tokenizer.json` for the given texts: a WordLevel model whose vocabulary is the special
/// tokens, the ten digits with and without a leading space, and every word of `texts` in sorted
/// order. The decoder joins tokens as they are, so decode(encode(text)) == text.
pub fn build_tokenizer(texts: &[String]) -> Result<String> {
    let skeleton = |vocab: &[String]| -> Value {
        let added: Vec<Value> = SPECIAL_TOKENS
            .iter()
            .enumerate()
            .map(|(id, content)| {
                json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": false, "special": true})
            })
            .collect();
        let vocab: serde_json::Map<String, Value> = vocab
            .iter()
            .enumerate()
            .map(|(id, token)| (token.clone(), json!(id)))
            .collect();
        json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": {"type": "Split", "pattern": {"Regex": SPLIT_PATTERN},
                              "behavior": "Isolated", "invert": false},
            "post_processor": null,
            "decoder": {"type": "Fuse"},
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
        })
    };
    let specials: Vec<String> = SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect();
    // Split every text with a tokenizer that knows only the special tokens: each unknown piece's
    // offsets give the word.
    let base = tokenizers::Tokenizer::from_bytes(skeleton(&specials).to_string().as_bytes())
        .map_err(|e| anyhow!("the tokenizer skeleton does not load: {e}"))?;
    let mut words = BTreeSet::new();
    for digit in '0'..='9' {
        words.insert(digit.to_string());
        words.insert(format!(" {digit}"));
    }
    for text in texts {
        let encoding = base
            .encode(text.as_str(), false)
            .map_err(|e| anyhow!("cannot split {text:?}: {e}"))?;
        for (&id, &(start, end)) in encoding.get_ids().iter().zip(encoding.get_offsets()) {
            if id as usize >= SPECIAL_TOKENS.len() - 1 {
                words.insert(text[start..end].to_string());
            }
        }
    }
    let vocab: Vec<String> = specials.into_iter().chain(words).collect();
    let tokenizer = tokenizers::Tokenizer::from_bytes(skeleton(&vocab).to_string().as_bytes())
        .map_err(|e| anyhow!("the tokenizer does not load: {e}"))?;
    tokenizer
        .to_string(true)
        .map_err(|e| anyhow!("cannot write the tokenizer: {e}"))
}

/// One pretraining example: the GSM8K prompt and the answer the model learns to write.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub prompt: String,
    /// The worked answer, ending in `#### N` and `<|im_end|>`.
    pub response: String,
    /// Whether `N` is the right answer.
    pub correct: bool,
    pub problem: Problem,
}

/// `n` GSM-mini examples from `seed`; in a `wrong_fraction` of them the final answer line is
/// replaced by a number 1 to 3 away from the right one (never negative). The notes stay right.
pub fn tiny_corpus(n: usize, seed: u64, wrong_fraction: f64) -> Vec<Example> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let problem = gsm_mini_problem(&mut rng);
            let right: i64 = problem
                .final_answer()
                .and_then(|a| a.parse().ok())
                .expect("GSM-mini answers end in #### N");
            let (work, _) = problem
                .answer
                .rsplit_once("\n#### ")
                .expect("GSM-mini answers end in #### N");
            let wrong = rng.unit() < wrong_fraction;
            let reported = if wrong {
                let offset = 1 + rng.below(3) as i64;
                if rng.unit() < 0.5 && right - offset >= 0 {
                    right - offset
                } else {
                    right + offset
                }
            } else {
                right
            };
            Example {
                prompt: gsm8k_prompt(&problem.question),
                response: format!("{work}\n#### {reported}<|im_end|>"),
                correct: !wrong,
                problem,
            }
        })
        .collect()
}

/// The tiny model's settings.
#[derive(Clone, Debug)]
pub struct PretrainConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub examples: usize,
    pub wrong_fraction: f64,
    pub steps: usize,
    pub batch_size: usize,
    /// Peak learning rate: linear warm-up over `warmup` steps, then cosine decay to a tenth.
    pub lr: f64,
    pub warmup: usize,
    pub seed: u64,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        PretrainConfig {
            hidden_size: 64,
            intermediate_size: 192,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            examples: 4000,
            wrong_fraction: 0.5,
            steps: 1500,
            batch_size: 32,
            lr: 3e-3,
            warmup: 50,
            seed: 7,
        }
    }
}

impl PretrainConfig {
    fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let progress = (step - self.warmup) as f64 / (self.steps - self.warmup).max(1) as f64;
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos());
        self.lr * (0.1 + 0.9 * cosine)
    }
}

/// A pretrained tiny model and its tokenizer.
pub struct Pretrained {
    /// On the autodiff device it was trained on (`.valid()` for inference).
    pub model: Qwen2Model,
    pub tokenizer_json: String,
    pub corpus: Vec<Example>,
}

impl Pretrained {
    /// What `www/models/tiny` holds of the model: `model.safetensors` with every weight in F16,
    /// and the `config.json` that says so. Half precision halves the page's largest piece of data
    /// (the weights are built into its wasm; float bytes hardly compress) and moves each weight by
    /// at most 1 part in 2,048 (in f16's normal range, above 6.1e-5; smaller ones by at most
    /// 3e-8); the page and the trainer load it widened to f32.
    pub fn shipped_files(&self) -> Result<(Vec<u8>, String)> {
        let model = self.model.valid();
        let weights = save_model_f16(&model)?;
        let mut config = saved_config(&model);
        config.dtype = "float16".into();
        Ok((weights, config.to_json()))
    }
}

/// Next-token cross-entropy over the response tokens of right-padded rows.
/// `ids [B, T]`, `attention_mask [B, T]`, `loss_mask [B, T-1]` (1 where token t+1 is a target).
fn lm_loss(
    model: &Qwen2Model,
    ids: Tensor<2, Int>,
    attention_mask: Tensor<2, Int>,
    loss_mask: Tensor<2>,
) -> Tensor<1> {
    let [b, t] = ids.dims();
    let logits = model.forward(ids.clone(), attention_mask, false).logits; // [B, T, V]
    let logits = logits.narrow(1, 0, t - 1); // [B, T-1, V]: position t predicts token t+1
    let targets = ids.narrow(1, 1, t - 1).reshape([b, t - 1, 1]);
    let picked = logits.clone().gather(2, targets).reshape([b, t - 1]);
    let nll = logsumexp(logits).reshape([b, t - 1]) - picked; // [B, T-1]
    (nll * loss_mask.clone()).sum() / loss_mask.sum()
}

/// Pretrain from scratch. `log(step, lr, loss)` is called every 50 steps and at the end.
pub async fn pretrain(
    config: &PretrainConfig,
    mut log: impl FnMut(usize, f64, f32),
) -> Result<Pretrained> {
    let corpus = tiny_corpus(config.examples, config.seed, config.wrong_fraction);
    let texts: Vec<String> = corpus
        .iter()
        .map(|e| format!("{}{}", e.prompt, e.response))
        .collect();
    let tokenizer_json = build_tokenizer(&texts)?;
    let tokenizer = TextTokenizer::from_bytes(tokenizer_json.as_bytes(), "tokenizer.json")?;
    let pad = tokenizer
        .token_id("<|endoftext|>")
        .context("the tokenizer has no <|endoftext|>")?;
    // (ids, first response position)
    let encoded: Vec<(Vec<u32>, usize)> = corpus
        .iter()
        .map(|e| {
            let prompt = tokenizer.encode(&e.prompt)?;
            let response = tokenizer.encode(&e.response)?;
            Ok((
                [prompt.as_slice(), response.as_slice()].concat(),
                prompt.len(),
            ))
        })
        .collect::<Result<_>>()?;
    let longest = encoded.iter().map(|(ids, _)| ids.len()).max().unwrap_or(0);

    let mut model_config = Qwen2Config::new(
        tokenizer.vocab_size(),
        config.hidden_size,
        config.intermediate_size,
        config.layers,
        config.heads,
        config.kv_heads,
        true,
    )
    .map_err(|e| anyhow!(e))?;
    model_config.max_position_embeddings = longest.next_power_of_two().max(256);
    model_config.eos_token_ids = vec![
        tokenizer
            .token_id("<|im_end|>")
            .context("the tokenizer has no <|im_end|>")?,
    ];
    if longest > model_config.max_position_embeddings {
        bail!("an example has {longest} tokens");
    }
    let device = Device::flex().autodiff();
    let mut model = init_random(
        &model_config,
        config.seed,
        0.02,
        ValueHeadInit::Zeros,
        Precision::F32,
        &device,
    )?;
    let mut optim = AdamWConfig::new().with_weight_decay(0.01).init();
    let mut rng = Rng::new(config.seed ^ 0x5eed);
    for step in 0..config.steps {
        let rows: Vec<&(Vec<u32>, usize)> = (0..config.batch_size)
            .map(|_| &encoded[rng.below(encoded.len())])
            .collect();
        let t = rows.iter().map(|(ids, _)| ids.len()).max().unwrap_or(0);
        let b = rows.len();
        let mut ids = Vec::with_capacity(b * t);
        let mut mask = Vec::with_capacity(b * t);
        let mut loss_mask = Vec::with_capacity(b * (t - 1));
        for (row, start) in &rows {
            ids.extend(row.iter().map(|&id| id as i64));
            ids.extend(std::iter::repeat_n(pad as i64, t - row.len()));
            mask.extend(std::iter::repeat_n(1i64, row.len()));
            mask.extend(std::iter::repeat_n(0i64, t - row.len()));
            // Target token j+1 is a response token when start <= j+1 < row.len().
            loss_mask
                .extend((0..t - 1).map(|j| (j + 1 >= *start && j + 1 < row.len()) as u8 as f32));
        }
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, t]), &device);
        let mask = Tensor::<2, Int>::from_data(TensorData::new(mask, [b, t]), &device);
        let loss_mask = Tensor::<2>::from_data(TensorData::new(loss_mask, [b, t - 1]), &device);
        let loss = lm_loss(&model, ids, mask, loss_mask);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let lr = config.lr_at(step);
        model = optim.step(lr, model, grads);
        if step % 50 == 0 || step + 1 == config.steps {
            let value = read_f32(loss.detach()).await.map_err(|e| anyhow!(e))?[0];
            log(step, lr, value);
        }
    }
    Ok(Pretrained {
        model,
        tokenizer_json,
        corpus,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::block_on;

    #[test]
    fn tokenizer_round_trips_and_splits_digits() {
        let corpus = tiny_corpus(50, 1, 0.5);
        let texts: Vec<String> = corpus
            .iter()
            .map(|e| format!("{}{}", e.prompt, e.response))
            .collect();
        let json = build_tokenizer(&texts).unwrap();
        let tok = TextTokenizer::from_bytes(json.as_bytes(), "tokenizer.json").unwrap();
        for (i, special) in SPECIAL_TOKENS.iter().enumerate() {
            assert_eq!(tok.token_id(special), Some(i as u32));
        }
        for text in &texts {
            let ids = tok.encode(text).unwrap();
            assert!(!ids.contains(&3), "unknown word in {text:?}");
            assert_eq!(&tok.decode(&ids, false).unwrap(), text);
        }
        let ids = tok
            .encode(" has 12 + 7 = <<12+7=19>>19 pens.\n#### 19")
            .unwrap();
        let pieces: Vec<String> = ids.iter().map(|&i| tok.token(i).unwrap()).collect();
        assert_eq!(
            pieces,
            [
                " has", " 1", "2", " +", " 7", " =", " <<", "1", "2", "+", "7", "=", "1", "9",
                ">>", "1", "9", " pens", ".", "\n", "####", " 1", "9"
            ]
        );
        // Numbers never seen still encode: every digit is in the vocabulary.
        let ids = tok.encode("#### 9081").unwrap();
        assert_eq!(tok.decode(&ids, true).unwrap(), "#### 9081");
        // The same texts give the same file.
        assert_eq!(build_tokenizer(&texts).unwrap(), json);
    }

    #[test]
    fn about_the_asked_fraction_of_answers_is_wrong_and_notes_stay_right() {
        let corpus = tiny_corpus(2000, 3, 0.5);
        let wrong = corpus.iter().filter(|e| !e.correct).count();
        assert!((900..1100).contains(&wrong), "{wrong} wrong of 2000");
        for e in &corpus {
            let reported = e
                .response
                .trim_end_matches("<|im_end|>")
                .rsplit_once("#### ")
                .unwrap()
                .1;
            let right = e.problem.final_answer().unwrap();
            assert_eq!(reported == right, e.correct, "{}", e.response);
            let (work, _) = e.problem.answer.rsplit_once("\n#### ").unwrap();
            assert!(e.response.starts_with(work));
            assert!(reported.parse::<i64>().unwrap() >= 0);
        }
    }

    #[test]
    fn pretraining_is_seeded_and_lowers_the_loss() {
        let config = PretrainConfig {
            hidden_size: 16,
            intermediate_size: 32,
            layers: 1,
            heads: 2,
            kv_heads: 1,
            examples: 64,
            steps: 40,
            batch_size: 4,
            lr: 1e-2,
            warmup: 2,
            ..PretrainConfig::default()
        };
        let run = || {
            let mut losses = Vec::new();
            let out = block_on(pretrain(&config, |_, _, loss| losses.push(loss))).unwrap();
            let bytes = crate::model::save_model(&out.model.valid()).unwrap();
            (losses, bytes)
        };
        let (losses, bytes) = run();
        assert!(losses.last().unwrap() < &(losses[0] * 0.8), "{losses:?}");
        let (losses_again, bytes_again) = run();
        assert_eq!(losses, losses_again);
        assert!(bytes == bytes_again, "the same seed gave different weights");
    }
}
