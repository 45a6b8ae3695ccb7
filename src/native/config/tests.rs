//! The config loader's tests: inheritance, overrides, and each bad value named.

use super::*;

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

fn err(file: &Path, overrides: &[&str]) -> String {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    format!("{:#}", load_config(file, &o).unwrap_err())
}

#[test]
fn the_shipped_configs_load_and_debug_inherits_the_main_one() {
    let main = load_config(&configs().join("config.yaml"), &[]).unwrap();
    let debug = load_config(&configs().join("config_debug.yaml"), &[]).unwrap();
    assert_eq!(
        (main.training.device.as_str(), main.training.dtype.as_str()),
        ("cuda", "bfloat16")
    );
    assert_eq!(
        (
            debug.training.device.as_str(),
            debug.training.dtype.as_str()
        ),
        ("cpu", "float32")
    );
    assert_eq!(debug.data.source, DataSource::GsmMini);
    assert!(!debug.ppo.use_8bit_adam);
    // Keys the debug file does not set come from config.yaml.
    assert_eq!(debug.ppo.clip_ratio, main.ppo.clip_ratio);
    assert_eq!(debug.ppo.gamma, main.ppo.gamma);
    // The effective config reads back to the same values.
    let again: TrainConfig = serde_yaml::from_str(&debug.to_yaml()).unwrap();
    assert_eq!(again, debug);
}

#[test]
fn overrides_replace_values_by_key_path() {
    let file = configs().join("config_debug.yaml");
    let o = vec![
        "ppo.epochs=7".to_string(),
        "training.output_dir=/tmp/x".to_string(),
        "ppo.adaptive_kl={target: 6, horizon: 10000}".to_string(),
    ];
    let c = load_config(&file, &o).unwrap();
    assert_eq!(c.ppo.epochs, 7);
    assert_eq!(c.training.output_dir, PathBuf::from("/tmp/x"));
    assert_eq!(
        c.ppo.adaptive_kl,
        Some(AdaptiveKl {
            target: 6.0,
            horizon: 10000.0
        })
    );
}

#[test]
fn bad_values_name_the_key() {
    let file = configs().join("config_debug.yaml");
    let cases: [(&str, &str); 10] = [
        (
            "ppo.adaptive_kl.target=6",
            "override `ppo.adaptive_kl.target=6`: `ppo.adaptive_kl` is null here; set it \
             whole, e.g. `ppo.adaptive_kl={...}`",
        ),
        (
            "ppo.max_grad_norm=-1",
            "key `ppo.max_grad_norm` must be > 0 or null, found -1",
        ),
        (
            "ppo.clip_ratio=-0.2",
            "key `ppo.clip_ratio` must be > 0, found -0.2",
        ),
        (
            "ppo.gamma=1.5",
            "key `ppo.gamma` must be in [0, 1], found 1.5",
        ),
        (
            "ppo.mini_batch_size=1000",
            "key `ppo.mini_batch_size` must be in 1..=",
        ),
        ("ppo.epochs=two", "ppo.epochs: invalid type: string \"two\""),
        (
            "ppo.epoch=2",
            "override `ppo.epoch=2`: unknown key `ppo.epoch`",
        ),
        ("ppo=2", "ppo: invalid type: integer `2`"),
        (
            "training.dtype=bfloat16",
            "key `training.device` must be cuda for training.dtype bfloat16, found cpu",
        ),
        (
            "ppo.kl_estimator=k4",
            "key `ppo.kl_estimator` must be k1, k2 or k3, found k4",
        ),
    ];
    for (o, want) in cases {
        let e = err(&file, &[o]);
        assert!(e.contains(want), "{o}: {e}");
    }
    assert!(err(&file, &["nonsense"]).contains("expected key.sub=value"));
    // Infinite numbers, or ones an f32 cannot hold, are refused before any range check passes
    // them (an infinite learning rate is > 0), and by the override that set them. (serde_yaml
    // reads `1e999`, whose value is infinite, as a string: refused as a wrong type.)
    for (o, key) in [
        ("ppo.learning_rate=.inf", "ppo.learning_rate"),
        ("ppo.kl_coeff=1e300", "ppo.kl_coeff"),
        ("rollout.temperature=1e39", "rollout.temperature"),
        ("grpo.beta=-.inf", "grpo.beta"),
        ("ppo.gamma=.nan", "ppo.gamma"),
    ] {
        let e = err(&file, &[o]);
        let want = format!("override `{o}`: key `{key}` must be a finite number");
        assert!(e.contains(&want), "{o}: {e}");
    }
    let e = err(&file, &["ppo.kl_coeff=1e999"]);
    assert!(e.contains("ppo.kl_coeff: invalid type: string"), "{e}");
    let e = err(&file, &["data.path=data/gsm8k/train.jsonl"]);
    assert!(
        e.contains(
            "override `data.path=data/gsm8k/train.jsonl`: key `data.path` is read only with \
             data.source gsm8k"
        ),
        "{e}"
    );
    // A range error names the override that set the value; a file's own value names the file.
    let e = err(&file, &["ppo.epochs=0"]);
    assert!(
        e.starts_with("override `ppo.epochs=0`: key `ppo.epochs` must be at least 1"),
        "{e}"
    );
    let e = err(&file, &["ppo.epochs=two"]);
    assert!(
        e.starts_with("override `ppo.epochs=two`: ppo.epochs: invalid type"),
        "{e}"
    );
    // A conflict an override caused names the override, though the key it reports is the
    // file's.
    let e = err(&file, &["training.dtype=bfloat16"]);
    assert!(
        e.starts_with(
            "override `training.dtype=bfloat16`: key `training.device` must be cuda for \
             training.dtype bfloat16"
        ),
        "{e}"
    );
    // So does a key inside a section an override set whole, and not one whose name only
    // begins like the override's key.
    let whole = "ppo.adaptive_kl={target: 0, horizon: 10000}";
    let e = err(&file, &[whole]);
    assert!(
        e.starts_with(&format!(
            "override `{whole}`: key `ppo.adaptive_kl.target` must be > 0"
        )),
        "{e}"
    );
    // An adaptive KL horizon under 0.2 × the batch would let one step take β to 0 or below.
    // config_debug.yaml's batch is 32: 6.4 is refused, 6.5 is not.
    let e = err(&file, &["ppo.adaptive_kl={target: 1, horizon: 6.4}"]);
    assert!(
        e.contains("key `ppo.adaptive_kl.horizon` must be above 0.2 × rollout.batch_size = 6.4 ("),
        "{e}"
    );
    let o = ["ppo.adaptive_kl={target: 1, horizon: 6.5}".to_string()];
    assert_eq!(
        load_config(&file, &o)
            .unwrap()
            .ppo
            .adaptive_kl
            .unwrap()
            .horizon,
        6.5
    );
    // A member's section is read only when that member trains: overriding another's would do
    // nothing.
    let e = err(&file, &["grpo.group_size=8"]);
    assert!(
        e.starts_with(
            "override `grpo.group_size=8`: section `grpo` is read only with algorithm grpo, and \
             this run's is ppo"
        ),
        "{e}"
    );
    let e = err(&file, &["algorithm=rloo", "dapo.dynamic_sampling=false"]);
    assert!(e.contains("this run's is rloo"), "{e}");
    let e = err(
        &file,
        &["algorithm=dr_grpo", "dr_grpo.beta=-1", "grpo.beta=0.1"],
    );
    assert!(
        e.starts_with("override `dr_grpo.beta=-1`: key `dr_grpo.beta` must be >= 0"),
        "{e}"
    );
    let e = err(&file, &["ppo.use_8bit_adam=true", "training.device=wgpu"]);
    assert!(
        e.contains("key `ppo.use_8bit_adam` must be false on training.device wgpu"),
        "{e}"
    );
    assert!(load_config(&file, &["ppo.use_8bit_adam=true".to_string()]).is_ok());
}

#[test]
fn unknown_keys_in_a_file_are_named() {
    let dir = std::env::temp_dir().join(format!("ppo-lens-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.yaml");
    let base = configs().join("config_debug.yaml");
    std::fs::write(
        &file,
        format!("inherit: {}\nppo:\n  clip_ratoi: 0.3\n", base.display()),
    )
    .unwrap();
    let e = err(&file, &[]);
    assert!(e.contains("ppo: unknown field `clip_ratoi`"), "{e}");
    std::fs::write(&file, format!("inherit: {}\n", file.display())).unwrap();
    assert!(err(&file, &[]).contains("`inherit` loops back"));
    std::fs::write(&file, "ppo: [1, 2\n").unwrap();
    assert!(err(&file, &[]).contains("not valid YAML"));
    // A key whose null means "none" must still be there: left out, it is named, not read
    // as none (no gradient clipping, a fixed KL coefficient).
    let full = std::fs::read_to_string(configs().join("config.yaml")).unwrap();
    for key in ["max_grad_norm", "adaptive_kl"] {
        let without: String = full
            .lines()
            .filter(|l| !l.trim_start().starts_with(&format!("{key}:")))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&file, without).unwrap();
        let e = err(&file, &[]);
        assert!(e.contains(&format!("missing field `{key}`")), "{e}");
    }
    // A bad value is reported against the file of the chain that set it: here the inherited
    // one, not the file the run was given.
    let base = dir.join("base.yaml");
    std::fs::write(
        &base,
        format!(
            "inherit: {}\nppo:\n  epochs: 0\n",
            configs().join("config_debug.yaml").display()
        ),
    )
    .unwrap();
    std::fs::write(&file, "inherit: base.yaml\nrollout:\n  temperature: 0.9\n").unwrap();
    let e = err(&file, &[]);
    assert!(
        e.starts_with(&format!(
            "{}: key `ppo.epochs` must be at least 1",
            base.display()
        )),
        "{e}"
    );
    std::fs::write(&file, "inherit: base.yaml\nppo:\n  epochs: 3\n").unwrap();
    assert_eq!(load_config(&file, &[]).unwrap().ppo.epochs, 3);
    // So is an unknown key, in a section or at the top; and an override that serde lists
    // among the keys it expected (`algorithm`) is not blamed for another file's typo.
    for (typo, key) in [
        ("ppo:\n  clip_ratoi: 0.3\n", "ppo"),
        ("algoritm: grpo\n", ""),
        ("ppoo:\n  epochs: 2\n", ""),
    ] {
        let inherit = configs().join("config_debug.yaml");
        std::fs::write(&base, format!("inherit: {}\n{typo}", inherit.display())).unwrap();
        let e = err(&file, &["algorithm=grpo"]);
        let field = typo
            .trim_start_matches("ppo:\n  ")
            .split(':')
            .next()
            .unwrap();
        let want = match key {
            "" => format!("{}: unknown field `{field}`", base.display()),
            _ => format!("{}: {key}: unknown field `{field}`", base.display()),
        };
        assert!(e.starts_with(&want), "{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
