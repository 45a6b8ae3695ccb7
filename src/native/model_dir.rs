//! Hugging Face model directories on disk: `config.json`, `model.safetensors` (or the shards
//! named by `model.safetensors.index.json`), `tokenizer.json`, and `value_head.safetensors` for a
//! trained critic. Saving writes the same layout atomically.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use burn::tensor::Device;

use crate::compute::{BackendKind, Compute, block_on};
use crate::model::tokenizer::TextTokenizer;
use crate::model::weights::saved_config;
use crate::model::{
    Precision, Qwen2Config, Qwen2Model, ValueHeadInit, WeightFiles, load_model, save_model,
    save_value_head,
};

pub const CONFIG: &str = "config.json";
pub const WEIGHTS: &str = "model.safetensors";
pub const WEIGHTS_INDEX: &str = "model.safetensors.index.json";
pub const TOKENIZER: &str = "tokenizer.json";
pub const VALUE_HEAD: &str = "value_head.safetensors";

/// A model directory loaded onto a device.
pub struct LoadedModel {
    pub model: Qwen2Model,
    /// `None` when the directory has no `tokenizer.json`.
    pub tokenizer: Option<TextTokenizer>,
    /// The raw `tokenizer.json`, to copy into checkpoints.
    pub tokenizer_json: Option<Vec<u8>>,
    /// Whether `value_head.safetensors` was there (otherwise the head is freshly initialised).
    pub has_value_head: bool,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("{}: cannot read", path.display()))
}

/// Read `dir/config.json`.
pub fn read_config(dir: &Path) -> Result<Qwen2Config> {
    if !dir.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    let path = dir.join(CONFIG);
    let text =
        fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(Qwen2Config::from_json(&text, &path.display().to_string())?)
}

/// The weight files of `dir`: `model.safetensors`, or every shard its index names.
fn weight_paths(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join(WEIGHTS);
    let index = dir.join(WEIGHTS_INDEX);
    if single.exists() {
        return Ok(vec![single]);
    }
    if !index.exists() {
        bail!("{}: no {WEIGHTS} and no {WEIGHTS_INDEX}", dir.display());
    }
    let text =
        fs::read_to_string(&index).with_context(|| format!("{}: cannot read", index.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", index.display()))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| {
            anyhow!(
                "{}: key `weight_map` is missing or not an object",
                index.display()
            )
        })?;
    let mut shards = BTreeSet::new();
    for (name, file) in map {
        let file = file.as_str().ok_or_else(|| {
            anyhow!(
                "{}: weight_map[`{name}`] must be a file name, found {file}",
                index.display()
            )
        })?;
        if file.contains('/') || file.contains('\\') || file.starts_with('.') {
            bail!(
                "{}: weight_map[`{name}`] = {file:?} is not a file in the directory",
                index.display()
            );
        }
        shards.insert(file.to_string());
    }
    if shards.is_empty() {
        bail!("{}: `weight_map` names no files", index.display());
    }
    Ok(shards.into_iter().map(|f| dir.join(f)).collect())
}

/// Load `dir` onto `device`. Without `value_head.safetensors` the head starts as `value_init`.
pub fn load_dir(
    dir: &Path,
    precision: Precision,
    value_init: ValueHeadInit,
    seed: u64,
    device: &Device,
) -> Result<LoadedModel> {
    let load = || -> Result<LoadedModel> {
        let config = read_config(dir)?;
        let paths = weight_paths(dir)?;
        let blobs: Vec<(String, Vec<u8>)> = paths
            .iter()
            .map(|p| Ok((p.display().to_string(), read(p)?)))
            .collect::<Result<_>>()?;
        let views: Vec<(String, &[u8])> = blobs
            .iter()
            .map(|(n, b)| (n.clone(), b.as_slice()))
            .collect();
        let weights = WeightFiles::parse(&views)?;

        let head_path = dir.join(VALUE_HEAD);
        let head_blob = if head_path.exists() {
            Some(read(&head_path)?)
        } else {
            None
        };
        let head_views = head_blob
            .as_ref()
            .map(|b| vec![(head_path.display().to_string(), b.as_slice())]);
        let head = head_views
            .as_ref()
            .map(|v| WeightFiles::parse(v))
            .transpose()?;

        let model = load_model(
            &config,
            &weights,
            head.as_ref(),
            value_init,
            seed,
            precision,
            device,
        )?;

        let tok_path = dir.join(TOKENIZER);
        let (tokenizer, tokenizer_json) = if tok_path.exists() {
            let bytes = read(&tok_path)?;
            (
                Some(TextTokenizer::from_bytes(
                    &bytes,
                    &tok_path.display().to_string(),
                )?),
                Some(bytes),
            )
        } else {
            (None, None)
        };
        Ok(LoadedModel {
            model,
            tokenizer,
            tokenizer_json,
            has_value_head: head.is_some(),
        })
    };
    load().with_context(|| format!("cannot load the model in {}", dir.display()))
}

/// Write `model` (and `tokenizer.json` when given) to `dir` in the HF layout. The files are
/// written into a fresh sibling directory first, flushed, and then renamed into place, so `dir`
/// never holds a half-written checkpoint; an older `dir` is replaced only after that.
pub fn save_dir(model: &Qwen2Model, tokenizer_json: Option<&[u8]>, dir: &Path) -> Result<()> {
    let weights = save_model(model)?;
    let head = save_value_head(model)?;
    let config = saved_config(model).to_json();
    let mut files: Vec<(&str, &[u8])> = vec![
        (CONFIG, config.as_bytes()),
        (WEIGHTS, &weights),
        (VALUE_HEAD, &head),
    ];
    if let Some(tok) = tokenizer_json {
        files.push((TOKENIZER, tok));
    }
    write_dir_atomically(dir, &files)
}

/// Write `files` as the whole content of `dir`, atomically (see [`save_dir`]).
pub fn write_dir_atomically(dir: &Path, files: &[(&str, &[u8])]) -> Result<()> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dir
        .file_name()
        .ok_or_else(|| anyhow!("{}: not a directory name", dir.display()))?;
    fs::create_dir_all(parent).with_context(|| format!("{}: cannot create", parent.display()))?;
    let pid = std::process::id();
    let tmp = parent.join(format!(".{}.tmp-{pid}", name.to_string_lossy()));
    let old = parent.join(format!(".{}.old-{pid}", name.to_string_lossy()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("{}: cannot remove", tmp.display()))?;
    }
    fs::create_dir(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    for (file, bytes) in files {
        let path = tmp.join(file);
        let mut f = fs::File::create(&path)
            .with_context(|| format!("{}: cannot create", path.display()))?;
        std::io::Write::write_all(&mut f, bytes)
            .with_context(|| format!("{}: cannot write", path.display()))?;
        f.sync_all()
            .with_context(|| format!("{}: cannot flush", path.display()))?;
    }
    if dir.exists() {
        fs::rename(dir, &old).with_context(|| format!("{}: cannot move aside", dir.display()))?;
    }
    fs::rename(&tmp, dir).with_context(|| format!("{}: cannot move into place", dir.display()))?;
    if old.exists() {
        fs::remove_dir_all(&old).with_context(|| format!("{}: cannot remove", old.display()))?;
    }
    if let Ok(d) = fs::File::open(parent) {
        let _ = d.sync_all(); // make the rename durable where the platform allows
    }
    Ok(())
}

/// The ids that end a response and the pad id, from the tokenizer and `config.json`: `<|im_end|>`
/// (the chat template's end of turn) and the config's EOS ids end a response; `<|endoftext|>`
/// pads and is never an EOS.
pub fn stop_ids(
    tokenizer: &TextTokenizer,
    config_eos: &[u32],
    vocab: usize,
    dir: &Path,
) -> Result<(Vec<u32>, u32)> {
    let pad = tokenizer.token_id("<|endoftext|>").with_context(|| {
        format!(
            "{}: tokenizer.json has no <|endoftext|> token to pad with",
            dir.display()
        )
    })?;
    let im_end = tokenizer.token_id("<|im_end|>");
    // The tokenizer's ids, checked before they join config.json's (which Qwen2Config has
    // already checked against its vocab_size), so the message names the file to look at.
    for (what, id) in [("padding", Some(pad)), ("end", im_end)] {
        if let Some(id) = id {
            in_vocab(id, vocab, dir, &format!("its {what} token"))?;
        }
    }
    let mut eos: Vec<u32> = im_end.into_iter().collect();
    eos.extend(config_eos.iter().copied().filter(|&id| id != pad));
    eos.sort_unstable();
    eos.dedup();
    if eos.is_empty() {
        bail!(
            "{}: no end-of-response id: tokenizer.json has no <|im_end|> and config.json no eos_token_id",
            dir.display()
        );
    }
    Ok((eos, pad))
}

/// A token id the model can embed: below config.json's `vocab_size`. A tokenizer.json from a
/// model with a larger vocabulary would otherwise index past the embedding table.
pub fn in_vocab(id: u32, vocab: usize, dir: &Path, what: &str) -> Result<()> {
    if id as usize >= vocab {
        bail!(
            "{}: tokenizer.json gives {what} the id {id}, outside config.json's vocab_size {vocab}: \
             the two files are from different models",
            dir.display()
        );
    }
    Ok(())
}

/// The first of the keys that make a model what it is (its shapes, norms and positions) on
/// which two config.json files differ: the key and both values.
pub fn differs(a: &Qwen2Config, b: &Qwen2Config) -> Option<(&'static str, String, String)> {
    let keys = |c: &Qwen2Config| {
        [
            ("vocab_size", c.vocab_size.to_string()),
            ("hidden_size", c.hidden_size.to_string()),
            ("intermediate_size", c.intermediate_size.to_string()),
            ("num_hidden_layers", c.num_hidden_layers.to_string()),
            ("num_attention_heads", c.num_attention_heads.to_string()),
            ("num_key_value_heads", c.num_key_value_heads.to_string()),
            (
                "max_position_embeddings",
                c.max_position_embeddings.to_string(),
            ),
            ("rms_norm_eps", c.rms_norm_eps.to_string()),
            ("rope_theta", c.rope_theta.to_string()),
            ("tie_word_embeddings", c.tie_word_embeddings.to_string()),
        ]
    };
    keys(a)
        .into_iter()
        .zip(keys(b))
        .find(|((_, x), (_, y))| x != y)
        .map(|((key, x), (_, y))| (key, x, y))
}

/// The precision to compute a checkpoint in on a backend: bf16 on CUDA when the checkpoint is
/// stored in bf16 (half the memory, tensor cores), f32 everywhere else (flex computes in f32; the
/// wgpu adapters here have no bf16 arithmetic).
pub fn precision_for(kind: BackendKind, config: &Qwen2Config) -> Precision {
    if kind == BackendKind::Cuda && config.dtype == "bfloat16" {
        Precision::Bf16
    } else {
        Precision::F32
    }
}

/// Open the device a command asked for by name (`cpu`/`flex`, `wgpu`, `cuda`). `asked` says
/// where the name came from, to begin an error with: `--device` for a flag, "key
/// `training.device` is" for a config.
pub fn open_device(name: &str, asked: &str) -> Result<Compute> {
    // The page's parse lists webgpu, which natively is refused below: name only what works here.
    let kind = BackendKind::parse(name).map_err(|_| {
        anyhow!("{asked} {name}: not a device; natively one of cpu (or flex), wgpu, cuda")
    })?;
    match kind {
        BackendKind::Flex => Ok(Compute::flex()),
        BackendKind::Wgpu => block_on(Compute::wgpu()).map_err(|e| anyhow!("{asked} {name}: {e}")),
        BackendKind::Cuda => cuda().map_err(|e| anyhow!("{asked} {name}: {e}")),
        BackendKind::WebGpu => {
            bail!("{asked} {name}: WebGPU exists only in the page; natively use wgpu")
        }
    }
}

/// CUDA starts when the device is first described, on a thread of its own, and panics there
/// without a driver: describing it and one small read, guarded, turn that into an error naming
/// the cause.
#[cfg(feature = "cuda")]
fn cuda() -> Result<Compute> {
    super::doctor::guarded(|| {
        let compute = Compute::describe(Device::cuda(0), BackendKind::Cuda);
        let zero = burn::tensor::Tensor::<1>::zeros([1], &compute.device);
        block_on(crate::compute::read_f32(zero)).map(|_| compute)
    })
    .and_then(|opened| opened)
    .map_err(|reason| anyhow!("CUDA is unavailable here: {reason}"))
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<Compute> {
    bail!("this build has no CUDA backend; rebuild with `cargo build --release --features cuda`")
}
