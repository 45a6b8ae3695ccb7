//! The page's benchmark mode: a fresh run's iterations timed stage by stage on one backend.

use burn::tensor::Device;

use crate::lab::run::Lab;
use crate::lab::settings::LabSettings;
use crate::lab::walkthrough::StageTimes;
use crate::lab::wire::StageBench;

/// Runs `1 + iterations` iterations of a fresh lab on `device` with `settings` (attention maps
/// kept, as when stepping through) and times every stage.
pub async fn bench_stages(
    settings: &LabSettings,
    iterations: usize,
    device: &Device,
) -> Result<StageBench, String> {
    if iterations == 0 {
        return Err("the benchmark needs at least 1 timed iteration".into());
    }
    let mut lab = Lab::new(settings, device)?;
    let first = lab.iterate(settings, Some(0)).await?.times;
    let mut runs = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        runs.push(lab.iterate(settings, Some(0)).await?.times);
    }
    let median = |pick: fn(&StageTimes) -> f64| {
        let mut xs: Vec<f64> = runs.iter().map(pick).collect();
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    };
    Ok(StageBench {
        first,
        median: StageTimes {
            rollout_ms: median(|t| t.rollout_ms),
            score_ms: median(|t| t.score_ms),
            gae_ms: median(|t| t.gae_ms),
            mask_ms: median(|t| t.mask_ms),
            update_ms: median(|t| t.update_ms),
            after_ms: median(|t| t.after_ms),
        },
        iterations,
    })
}
