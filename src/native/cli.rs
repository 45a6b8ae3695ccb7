//! The `ppo-lens` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};

use super::score::{ScoreInput, score_command};
use super::train::{TrainOutcome, train};
use super::{doctor, ppo_cmd};

#[derive(Debug, Parser)]
#[command(
    name = "ppo-lens",
    version,
    about = "Learn, see and run PPO for language models",
    long_about = "Learn, see and run PPO for language models.\n\n\
                  The same crate builds the step-through page (wasm32, served by Trunk) and this \
                  native command line."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Report the backends in this build, the devices that answer, and the tools the page needs.
    Doctor,
    /// Generalized Advantage Estimation on rewards and values from a JSON file.
    ///
    /// The file holds {"rewards": [[..]], "values": [[..]], "mask": [[..]], "gamma": g, "lam": l},
    /// rows [B][T]; "mask" is optional (all ones), 1 on response tokens and 0 on padding after
    /// them. Prints {"deltas", "advantages", "returns"} (and "whitened"), each [B][T].
    Gae {
        /// The JSON input file.
        #[arg(long, value_name = "FILE.json")]
        input: PathBuf,
        /// Also whiten the advantages over the real tokens of the batch.
        #[arg(long)]
        whiten: bool,
        /// Print the reverse sweep as a table with every formula filled in, instead of JSON.
        #[arg(long)]
        table: bool,
        /// A faded worked example on the first sequence: the sweep worked, then one more of its
        /// last advantages left blank each pass for you to type in (read from stdin), each right
        /// within 0.001, with a hint on a miss.
        #[arg(long, conflicts_with_all = ["whiten", "table"])]
        quiz: bool,
    },
    /// The PPO losses (clipped policy, clipped value, entropy) on numbers from a JSON file.
    ///
    /// The file holds [B][T] rows "logprobs_old", "logprobs_new", "advantages", "values_old",
    /// "values_new", "returns", optional "mask" (all ones), the numbers "clip_ratio",
    /// "clip_range_value", "vf_coef", "entropy_coeff", and optional "logits" [B][T][V]. Prints
    /// {"policy_loss", "value_loss", "entropy", "total_loss", "policy_clip_frac",
    /// "value_clip_frac", "approx_kl"}; "entropy" is null without logits.
    Losses {
        /// The JSON input file.
        #[arg(long, value_name = "FILE.json")]
        input: PathBuf,
    },
    /// Per-token log-probabilities and values of a text (or of token ids) under a model.
    ///
    /// MODEL is a Hugging Face directory: config.json, model.safetensors (or a sharded index),
    /// tokenizer.json (needed for --text), value_head.safetensors (values are 0 without it).
    /// Prints {"ids", "tokens", "logprobs", "values"}; logprobs[0] is null and logprobs[t] is
    /// log p(ids[t] | ids[<t]).
    Score {
        /// The model directory.
        #[arg(long, value_name = "DIR")]
        model: PathBuf,
        /// The text to score (tokenized with the model's tokenizer.json, no special tokens added).
        #[arg(long, conflicts_with = "ids", required_unless_present = "ids")]
        text: Option<String>,
        /// Token ids to score, comma-separated: 1,2,3.
        #[arg(long, value_name = "1,2,3")]
        ids: Option<String>,
        /// Where to run: cpu (flex), wgpu, or cuda (builds with --features cuda).
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Time the model and one PPO iteration on flex (the CPU backend).
    ///
    /// For each model (tiny: the page's; 50M: a ~50M-parameter Qwen2 with random weights):
    /// forward tokens/s over [4, 128], KV-cache greedy decode tokens/s (4 x 64 tokens), one PPO
    /// iteration (8 rollouts x 32 tokens, 2 epochs of mini-batches of 4) split into rollout,
    /// reference + rewards, GAE + whitening and update, and the peak resident memory of each.
    /// `scripts/bench.sh` runs the same workloads with PyTorch and transformers and prints the
    /// ratios.
    Bench {
        /// Which models, comma-separated: tiny, 50M.
        #[arg(long, default_value = "tiny,50M", value_delimiter = ',')]
        models: Vec<String>,
        /// Timed runs per workload (median; after one warm-up run; PPO and decode use at most 3).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
        iters: u64,
        /// One JSON line per model instead of the table.
        #[arg(long)]
        json: bool,
        /// Hand-written CPU kernels to turn off, comma-separated, so burn's own path runs in
        /// their place (few_rows, gemm_linear, decode_step, adamw, or all).
        #[arg(long, default_value = "")]
        without: String,
        /// Each model with every kernel on, then each off in turn, then all off: one table
        /// with what turning each off costs.
        #[arg(long, conflicts_with_all = ["without", "json"])]
        each_kernel: bool,
    },
    /// Time a training config's recipe on its device, with a model of a config.json's shape and
    /// seeded random weights: decoding (tokens/s, bytes read per second) and one PPO update
    /// (tokens/s, TFLOP/s at 6 x parameters per token); given the device's peaks, the share of
    /// its memory bandwidth and the model FLOP utilisation. scripts/gpu_run.sh runs it on a GPU
    /// with configs/config.yaml and Qwen1.5-1.8B-Chat's shape (configs/shapes/).
    BenchRecipe {
        /// The YAML config whose recipe to run (device, dtype, batch, lengths, update).
        #[arg(long, value_name = "FILE.yaml")]
        config: PathBuf,
        /// A Hugging Face config.json: the model's shape (its weights are made here, random).
        #[arg(long, value_name = "config.json")]
        shape: PathBuf,
        /// Prompt tokens before each response.
        #[arg(long, default_value_t = 256)]
        prompt_len: usize,
        /// Greedy decoding steps timed after the prefill.
        #[arg(long, default_value_t = 64)]
        decode_tokens: usize,
        /// The device's dense bf16 peak in TFLOP/s, for the model FLOP utilisation.
        #[arg(long, value_parser = positive)]
        peak_tflops: Option<f64>,
        /// The device's memory bandwidth in GB/s, for decoding's share of it.
        #[arg(long, value_parser = positive)]
        peak_gbps: Option<f64>,
        /// One JSON object instead of the lines for people.
        #[arg(long)]
        json: bool,
        /// Overrides of the config, key.sub=value: rollout.batch_size=8
        #[arg(value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Grade your five exercises (exercises/*.rs) and say which ones the trainer and the page
    /// will run: yours where written (with the `exercises` feature), the reference elsewhere.
    Exercises,
    /// Summarise a training output directory, finished or still running: the run's metrics at
    /// its first, middle and last step, what the health checks found (findings.jsonl), and
    /// its plots and checkpoints.
    Report {
        /// The output directory (training.output_dir).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Train with PPO on GSM8K (or GSM-mini) as a config file says.
    ///
    /// Writes to training.output_dir: effective_config.yaml, metrics.jsonl (one row per step),
    /// findings.jsonl (each run-health finding once, when it first appears),
    /// plots.png and plots.svg, checkpoints step_N/ and final/ (a Hugging Face directory plus
    /// value head, optimizer and trainer state). Ctrl-C finishes the running step, saves
    /// step_N/ and exits with status 130; a second Ctrl-C exits at once.
    Train {
        /// The YAML config (configs/config.yaml, configs/config_debug.yaml).
        #[arg(long, value_name = "FILE.yaml")]
        config: PathBuf,
        /// Continue from a checkpoint directory (output_dir/step_N).
        #[arg(long, value_name = "DIR")]
        resume: Option<PathBuf>,
        /// Start afresh in an output_dir that holds an earlier run, removing its checkpoints
        /// (without it such a run is refused).
        #[arg(long, conflicts_with = "resume")]
        overwrite: bool,
        /// Overrides, key.sub=value: ppo.learning_rate=1e-5 training.total_ppo_steps=10
        #[arg(value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Run burn's own ops everywhere instead of the hand-written CPU kernels (the same as
        /// training.fast_cpu=false).
        #[arg(long)]
        no_fast_cpu: bool,
    },
}

/// A device's peak, which a share is divided by: a finite number above 0 (0 gave an infinite
/// share).
fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err("must be a number above 0".into()),
    }
}

/// Parses the arguments, runs the subcommand, and turns an error into a message and exit code 1.
pub fn main() -> ExitCode {
    keep_freed_memory();
    on_worker_thread(run)
}

/// Keeps freed memory in the process for the next allocation; true when glibc took all three
/// settings (false elsewhere, where nothing changes).
///
/// glibc hands a block above its mmap threshold back to the kernel when it is freed, and trims
/// the heap's free top, so each step's new activations and gradients cost a page fault and a
/// zeroed page per 4 KiB again (page faults were about 4% of a `ppo-lens bench` profile). Here
/// blocks under 32 MiB (the largest threshold `mallopt` takes on 64-bit) come from the heap, the
/// heap is never trimmed, and it grows 64 MiB at a time; larger blocks (the 50M model's logits
/// over a batch, its embedding's gradient) are still mapped afresh. Measured on the 50M model
/// (docs/performance.md, "glibc's allocator keeps freed memory"): the PPO iteration 0-5%
/// faster (median about 3%), decoding 1-9%, the forward pass 11-17%, peak memory 2-3% higher.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
    {
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_TOP_PAD: i32 = -2;
        const M_MMAP_THRESHOLD: i32 = -3;
        // Each is set whether or not another was refused.
        [
            (M_MMAP_THRESHOLD, 32 << 20),
            (M_TRIM_THRESHOLD, i32::MAX),
            (M_TOP_PAD, 64 << 20),
        ]
        // SAFETY: mallopt only sets the allocator's thresholds; it returns 1 when it took one.
        .map(|(param, value)| unsafe { mallopt(param, value) } == 1)
        .iter()
        .all(|&took| took)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64")))]
    false
}

/// Stack for rayon's threads, which run the whole command (the main thread has 8 MiB).
const WORKER_STACK: usize = 8 << 20;

/// Runs `f` on one of rayon's threads, the calling thread waiting.
///
/// Matrix products, AdamW and many tensor ops share their work out through rayon. Called from
/// a thread outside the pool, each such call hands its whole job to the pool and sleeps until it
/// is done: two thread wake-ups per call, and decoding makes about fifty calls per token. From
/// a thread of the pool, the caller works on one part itself and the other threads take the
/// rest. Measured on the 50M model, one run after the other on 2 cores: the PPO update 2.2-2.7 s
/// on the main thread, 1.7-2.3 s here; decode about 8% faster.
pub fn on_worker_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    // Fails only when the pool was already made (then it is used as it is).
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(WORKER_STACK)
        .build_global();
    rayon::scope(|_| f())
}

fn run() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Train {
        config,
        resume,
        overwrite,
        overrides,
        no_fast_cpu,
    } = &cli.command
    {
        let mut overrides = overrides.clone();
        if *no_fast_cpu {
            overrides.push("training.fast_cpu=false".into());
        }
        return train_main(config, resume.as_deref(), *overwrite, &overrides);
    }
    let result = match cli.command {
        Command::Train { .. } => unreachable!("handled above"),
        Command::Doctor => doctor::run(),
        Command::Report { dir } => super::findings::report(&dir).map(|text| print!("{text}")),
        Command::Exercises => {
            let (lines, all_pass) = crate::native::exercises_report();
            lines.iter().for_each(|line| println!("{line}"));
            if all_pass {
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "not every exercise passes yet; one at a time: cargo test --features exercises --test exercises ex1"
                ))
            }
        }
        Command::Bench {
            models,
            iters,
            json,
            without,
            each_kernel,
        } => (|| {
            // At least 1 (clap refuses 0).
            let iters = iters as usize;
            let off = crate::cpu_fast::Kernel::parse_list(&without)
                .map_err(|err| anyhow::anyhow!("--without: {err}"))?;
            crate::cpu_fast::only_without(&off);
            let device = crate::compute::Compute::flex().device;
            for model in &models {
                if each_kernel {
                    let table = super::bench::each_kernel(model, iters)?;
                    println!("{table}");
                    continue;
                }
                let result = super::bench::run(model, iters, &device)?;
                println!("{}", if json { result.json() } else { result.table() });
            }
            Ok(())
        })(),
        Command::BenchRecipe {
            config,
            shape,
            prompt_len,
            decode_tokens,
            peak_tflops,
            peak_gbps,
            json,
            overrides,
        } => (|| {
            let args = super::bench_recipe::RecipeArgs {
                prompt_len,
                decode_tokens,
                peak_tflops,
                peak_gbps,
            };
            let result = super::bench_recipe::run(&config, &overrides, &shape, &args)?;
            if json {
                println!("{}", serde_json::to_string(&result)?);
            } else {
                println!("{}", result.table());
            }
            Ok(())
        })(),
        Command::Gae {
            input, quiz: true, ..
        } => ppo_cmd::gae_quiz_command(&input),
        Command::Gae {
            input,
            whiten,
            table,
            quiz: false,
        } => ppo_cmd::gae_command(&input, whiten, table).map(|out| println!("{out}")),
        Command::Losses { input } => ppo_cmd::losses_command(&input).map(|out| println!("{out}")),
        Command::Score {
            model,
            text,
            ids,
            device,
        } => {
            let input = match (text, ids) {
                (Some(text), _) => Ok(ScoreInput::Text(text)),
                (None, Some(ids)) => Ok(ScoreInput::Ids(ids)),
                (None, None) => Err(anyhow::anyhow!("give --text or --ids")),
            };
            input
                .and_then(|input| score_command(&model, input, &device))
                .map(|out| println!("{out}"))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `ppo-lens train`: the first Ctrl-C asks the loop to save and stop after the running step.
fn train_main(
    config: &Path,
    resume: Option<&Path>,
    overwrite: bool,
    overrides: &[String],
) -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handler = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: exiting without saving");
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: saving after this step (Ctrl-C again to exit at once)");
    });
    if let Err(err) = handler {
        eprintln!("warning: Ctrl-C will not save a checkpoint: {err}");
    }
    match train(config, overrides, resume, overwrite, stop) {
        Ok(TrainOutcome::Finished { .. }) => ExitCode::SUCCESS,
        Ok(TrainOutcome::Interrupted { step, checkpoint }) => {
            eprintln!(
                "interrupted after step {step}; resume with --resume {}",
                checkpoint.display()
            );
            ExitCode::from(130)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// The command runs on a thread of rayon's pool (its stack size is the pool's, set only
    /// when nothing used rayon before, as in the binary; other tests here may have).
    #[test]
    fn commands_run_on_a_pool_thread() {
        assert_eq!(rayon::current_thread_index(), None, "a test thread");
        let index = on_worker_thread(rayon::current_thread_index);
        assert!(index.is_some(), "ran outside the pool");
    }
}
