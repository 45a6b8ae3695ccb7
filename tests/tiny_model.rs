//! The committed tiny model (`www/models/tiny`, made by `examples/pretrain_tiny.rs`): small, a
//! readable vocabulary that covers GSM-mini, and answers right only about half the time, so PPO
//! has room to improve it.

use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;
use ppo_lens::compute::block_on;
use ppo_lens::data::gsm_mini;
use ppo_lens::model::Precision;
use ppo_lens::model::ValueHeadInit;
use ppo_lens::model::chat::gsm8k_prompt;
use ppo_lens::model::save_model_f16;
use ppo_lens::model::tokenizer::TextTokenizer;
use ppo_lens::native::model_dir::{LoadedModel, load_dir};
use ppo_lens::native::tiny::{PretrainConfig, pretrain};
use ppo_lens::reward::{GsmScore, gsm8k_reward};
use ppo_lens::rng::Rng;
use ppo_lens::rollout::{SamplingParams, rollout};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/www/models/tiny");

fn load_tiny() -> LoadedModel {
    load_dir(
        Path::new(DIR),
        Precision::F32,
        ValueHeadInit::Zeros,
        0,
        &Device::flex(),
    )
    .unwrap()
}

#[test]
fn files_are_small_and_the_vocabulary_is_readable() {
    let mut names: Vec<String> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["config.json", "model.safetensors", "tokenizer.json"]
    );
    let total: u64 = names
        .iter()
        .map(|n| Path::new(DIR).join(n).metadata().unwrap().len())
        .sum();
    // 217,263 bytes today (the weights in F16, 213,712): under a quarter of a MiB, as the
    // README says (its weights 214 KB).
    assert!(total < 256 << 10, "{total} bytes");

    let loaded = load_tiny();
    let tok = loaded.tokenizer.unwrap();
    assert_eq!(tok.vocab_size(), loaded.model.config.vocab_size);
    // Every GSM-mini prompt and answer encodes without an unknown word and decodes back.
    let unk = tok.token_id("<unk>").unwrap();
    for p in gsm_mini(200, 77) {
        let text = format!("{}{}<|im_end|>", gsm8k_prompt(&p.question), p.answer);
        let ids = tok.encode(&text).unwrap();
        assert!(!ids.contains(&unk), "{text}");
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
    }
    // Words are whole tokens a student can read.
    for word in [" apples", " has", "####", " <<", ">>", " =", "\n"] {
        assert!(tok.token_id(word).is_some(), "{word:?}");
    }
}

#[test]
fn sampled_answers_are_well_formed_and_about_half_right() {
    let loaded = load_tiny();
    let tok = loaded.tokenizer.unwrap();
    let problems = gsm_mini(96, 2024);
    let prompts: Vec<Vec<u32>> = problems
        .iter()
        .map(|p| tok.encode(&gsm8k_prompt(&p.question)).unwrap())
        .collect();
    let eos = tok.token_id("<|im_end|>").unwrap();
    let pad = tok.token_id("<|endoftext|>").unwrap();
    let r = block_on(rollout(
        &loaded.model,
        &prompts,
        &SamplingParams::new(1.0, 0, 1.0).unwrap(),
        64,
        &[eos],
        pad,
        0,
        &mut Rng::new(5),
        &mut |_| {},
    ))
    .unwrap();
    let (mut correct, mut formatted) = (0, 0);
    for (b, p) in problems.iter().enumerate() {
        let text = tok.decode(&r.response_ids(b), true).unwrap();
        match gsm8k_reward(&text, &p.final_answer().unwrap()) {
            GsmScore::Correct { .. } => correct += 1,
            GsmScore::WrongNumber { .. } => formatted += 1,
            GsmScore::NoAnswer => {}
        }
    }
    let n = problems.len() as f64;
    let finished = r.finished.iter().filter(|&&f| f).count() as f64 / n;
    assert!(
        finished > 0.9,
        "only {finished} of responses ended with <|im_end|>"
    );
    assert!(
        (correct + formatted) as f64 / n > 0.9,
        "{correct} + {formatted} of {n}"
    );
    let right = correct as f64 / n;
    assert!((0.3..0.75).contains(&right), "right {right}");
}

/// `examples/pretrain_tiny.rs` remakes what is committed: its corpus builds the committed
/// tokenizer byte for byte and its settings the committed config.json.
#[test]
fn pretraining_remakes_the_committed_tokenizer_and_config() {
    let config = PretrainConfig {
        steps: 0,
        ..PretrainConfig::default()
    };
    let made = block_on(pretrain(&config, |_, _, _| {})).unwrap();
    let committed = |file: &str| std::fs::read_to_string(Path::new(DIR).join(file)).unwrap();
    assert!(
        made.tokenizer_json == committed("tokenizer.json"),
        "the tokenizer built from the default corpus differs from www/models/tiny/tokenizer.json"
    );
    assert_eq!(made.shipped_files().unwrap().1, committed("config.json"));
}

/// The committed weights are what `examples/pretrain_tiny.rs` writes (`shipped_files`): every
/// tensor in F16, and the model loaded from them and written again gives the same bytes (F16
/// widened to f32 and rounded back is exact).
#[test]
fn the_committed_weights_are_half_precision_and_write_back_byte_for_byte() {
    let committed = std::fs::read(Path::new(DIR).join("model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&committed).unwrap();
    for (name, view) in tensors.tensors() {
        assert_eq!(view.dtype(), safetensors::Dtype::F16, "{name}");
    }
    let loaded = load_tiny();
    assert_eq!(loaded.model.config.dtype, "float16");
    let written = save_model_f16(&loaded.model).unwrap();
    assert!(written == committed, "written again, the weights differ");
    // The model computes in f32 on exactly the stored values.
    let embed = loaded.model.embed_tokens.weight.val().into_data();
    for &w in embed.as_slice::<f32>().unwrap() {
        let again = burn::tensor::f16::from_f32(w).to_f32();
        assert_eq!(again, w, "a loaded weight is not an F16 value");
    }
}

/// The first steps of the committed model's recipe, as measured: a change to the corpus, the
/// initialisation, the batches drawn, the loss, the learning-rate warm-up or the optimiser moves
/// these numbers. (The 1500-step run itself is not compared byte for byte: over that many steps
/// the rounding of sums taken in another order, on another CPU's kernels, grows into different
/// weights of the same quality.)
#[test]
fn the_first_pretraining_steps_are_the_recipes() {
    let config = PretrainConfig {
        steps: 10,
        ..PretrainConfig::default()
    };
    let mut losses = Vec::new();
    let made = block_on(pretrain(&config, |step, _, loss| losses.push((step, loss)))).unwrap();
    let bytes = ppo_lens::model::save_model(&made.model.valid()).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut norms: Vec<(String, f64)> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let sum: f64 = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
                .map(|x| x * x)
                .sum();
            (name, sum.sqrt())
        })
        .collect();
    norms.sort_by(|a, b| a.0.cmp(&b.0));
    println!("losses {losses:?}");
    for (name, norm) in &norms {
        println!("(\"{name}\", {norm:.9}),");
    }
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-4 * b.abs().max(1e-3);
    assert_eq!(losses.len(), WANT_LOSSES.len(), "{losses:?}");
    for ((step, loss), (want_step, want)) in losses.iter().zip(WANT_LOSSES) {
        assert_eq!(step, want_step);
        assert!(
            close(*loss as f64, *want),
            "loss at step {step}: {loss}, recipe {want}"
        );
    }
    assert_eq!(norms.len(), WANT_NORMS.len());
    for ((name, norm), (want_name, want)) in norms.iter().zip(WANT_NORMS) {
        assert_eq!(name, want_name);
        assert!(close(*norm, *want), "{name}: norm {norm}, recipe {want}");
    }
}

/// Measured on this project's 2-core machine (`--nocapture` prints them).
const WANT_LOSSES: &[(usize, f64)] = &[(0, 4.6681437), (9, 4.392596)];
const WANT_NORMS: &[(&str, f64)] = &[
    ("model.embed_tokens.weight", 1.622571081),
    ("model.layers.0.input_layernorm.weight", 7.997670073),
    ("model.layers.0.mlp.down_proj.weight", 2.245400161),
    ("model.layers.0.mlp.gate_proj.weight", 2.243730477),
    ("model.layers.0.mlp.up_proj.weight", 2.260622397),
    (
        "model.layers.0.post_attention_layernorm.weight",
        8.014788114,
    ),
    ("model.layers.0.self_attn.k_proj.bias", 0.008238061),
    ("model.layers.0.self_attn.k_proj.weight", 0.895550926),
    ("model.layers.0.self_attn.o_proj.weight", 1.272943419),
    ("model.layers.0.self_attn.q_proj.bias", 0.015845171),
    ("model.layers.0.self_attn.q_proj.weight", 1.285389836),
    ("model.layers.0.self_attn.v_proj.bias", 0.013149711),
    ("model.layers.0.self_attn.v_proj.weight", 0.897586362),
    ("model.layers.1.input_layernorm.weight", 8.004212335),
    ("model.layers.1.mlp.down_proj.weight", 2.262036151),
    ("model.layers.1.mlp.gate_proj.weight", 2.235545263),
    ("model.layers.1.mlp.up_proj.weight", 2.235890282),
    (
        "model.layers.1.post_attention_layernorm.weight",
        8.010051997,
    ),
    ("model.layers.1.self_attn.k_proj.bias", 0.008293988),
    ("model.layers.1.self_attn.k_proj.weight", 0.940459362),
    ("model.layers.1.self_attn.o_proj.weight", 1.319541913),
    ("model.layers.1.self_attn.q_proj.bias", 0.015869262),
    ("model.layers.1.self_attn.q_proj.weight", 1.292683132),
    ("model.layers.1.self_attn.v_proj.bias", 0.012559463),
    ("model.layers.1.self_attn.v_proj.weight", 0.938644421),
    ("model.norm.weight", 8.005164558),
];

/// The page reads the tiny model's tokenizer without the tokenizers crate (src/model/word_level.rs).
/// It must give that crate's ids, tokens and text: on every GSM-mini text and on text the
/// vocabulary never saw (unknown words, runs of white space of every kind, non-ASCII letters and
/// punctuation, special tokens inside words and cut short, ids that are no token).
#[test]
fn the_page_tokenizer_gives_the_tokenizers_crate_answers() {
    let bytes = std::fs::read(Path::new(DIR).join("tokenizer.json")).unwrap();
    let ours = TextTokenizer::from_bytes(&bytes, "tokenizer.json").unwrap();
    assert!(
        ours.is_word_level(),
        "the tiny tokenizer must be read by the page's reader"
    );
    let hub = tokenizers::Tokenizer::from_bytes(&bytes).unwrap();

    let mut texts: Vec<String> = gsm_mini(300, 5)
        .into_iter()
        .flat_map(|p| [gsm8k_prompt(&p.question), format!("{}<|im_end|>", p.answer)])
        .collect();
    for odd in [
        "",
        " ",
        "  two spaces before, two after  ",
        "tab\there, CRLF\r\nand \n\n\n three newlines; \n \n",
        " \t\n x",
        "no\u{a0}break\u{a0}space, em\u{2003}space, NEL\u{85}, ideographic\u{3000}space, LS\u{2028}",
        "zero\u{200b}width and BOM\u{feff}",
        "café naïve résumé — “quoted” ½ 3½ €5 Ωmega 東京 😀!!",
        "xyzzy plugh 123456 -7.5 +8 1,000 $3.50 (a) [b] {c} #### 42",
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
        "word<|im_end|>word <|endoftext|><|endoftext|><unk> <|im_",
        "<|im_start<|im_start|>|>",
        "A1b2C3 __init__ e.g. U.S.A. can't won't",
    ] {
        texts.push(odd.to_string());
    }
    for text in &texts {
        let ids = ours.encode(text).unwrap();
        let theirs = hub.encode(text.as_str(), false).unwrap().get_ids().to_vec();
        assert_eq!(ids, theirs, "encode {text:?}");
        for skip in [false, true] {
            assert_eq!(
                ours.decode(&ids, skip).unwrap(),
                hub.decode(&ids, skip).unwrap(),
                "decode {text:?} skip_special_tokens={skip}"
            );
        }
    }
    let strange = [5, 4_000_000, 0, 1, 3, 2, 9];
    for skip in [false, true] {
        assert_eq!(
            ours.decode(&strange, skip).unwrap(),
            hub.decode(&strange, skip).unwrap()
        );
    }
    assert_eq!(ours.vocab_size(), hub.get_vocab_size(true));
    for id in 0..ours.vocab_size() as u32 + 3 {
        assert_eq!(ours.token(id), hub.id_to_token(id), "token {id}");
        if let Some(token) = hub.id_to_token(id) {
            assert_eq!(
                ours.token_id(&token),
                hub.token_to_id(&token),
                "id of {token:?}"
            );
        }
    }
    for not_a_token in ["", "xyzzy", " <|im_end|>", "<|im_end"] {
        assert_eq!(ours.token_id(not_a_token), hub.token_to_id(not_a_token));
    }
}

/// A tokenizer.json of another shape is not read by the word-level reader (natively it goes to
/// the tokenizers crate; the page refuses it, naming the part it does not read).
#[test]
fn the_word_level_reader_names_what_it_does_not_read() {
    use ppo_lens::model::word_level::WordLevel;
    let bytes = std::fs::read(Path::new(DIR).join("tokenizer.json")).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert!(WordLevel::from_json(&json).is_ok());
    let changed = |pointer: &str, value: serde_json::Value| {
        let mut j = json.clone();
        *j.pointer_mut(pointer).unwrap() = value;
        WordLevel::from_json(&j).unwrap_err()
    };
    let err = changed("/pre_tokenizer/pattern/Regex", "\\s+".into());
    assert!(err.contains("`pre_tokenizer`"), "{err}");
    let err = changed("/model/type", "BPE".into());
    assert!(err.contains("`model.type` is \"BPE\""), "{err}");
    let err = changed("/normalizer", serde_json::json!({"type": "NFC"}));
    assert!(err.contains("`normalizer`"), "{err}");
    let err = changed("/model/unk_token", "<nope>".into());
    assert!(err.contains("\"<nope>\" is not in `model.vocab`"), "{err}");
    let err = changed("/added_tokens/1/lstrip", true.into());
    assert!(err.contains("`added_tokens[1].lstrip` is true"), "{err}");
    // The Qwen fixtures' byte-level BPE tokenizers go to the tokenizers crate natively.
    let qwen = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/qwen2-tied/tokenizer.json"
    ))
    .unwrap();
    let tok = TextTokenizer::from_bytes(&qwen, "tokenizer.json").unwrap();
    assert!(!tok.is_word_level());
}
