//! The Web Worker's side of the page: a [`LabServer`] owns the device and the run and answers
//! the page's requests ([`crate::lab::wire`]).

use burn::tensor::Device;

use crate::compute::{BackendKind, Compute, now_ms};
use crate::lab::bench::bench_stages;
use crate::lab::run::Lab;
use crate::lab::settings::LabSettings;
use crate::lab::wire::{BenchResults, Iterated, Progress, Reply, Request};
use crate::selfcheck;

/// What the page's Web Worker runs: it owns the device and the [`Lab`], and answers the page's
/// [`Request`]s one at a time (see [`crate::lab::wire`]). Choosing the backend is the browser's part;
/// everything after it is here, so native tests drive exactly what the worker does.
pub struct LabServer {
    compute: Compute,
    lab: Option<Lab>,
}

impl LabServer {
    pub fn new(compute: Compute) -> Self {
        Self { compute, lab: None }
    }

    pub fn compute(&self) -> &Compute {
        &self.compute
    }

    /// Answers one request; `progress` hears about a long one: benchmark mode's lines, an
    /// iteration's rollout token by token.
    pub async fn handle(&mut self, request: Request, progress: &dyn Fn(Progress)) -> Reply {
        match request {
            // The backend is chosen once, before the server exists; asking again describes it.
            Request::Start { .. } => Reply::Started {
                kind: self.compute.kind,
                summary: self.compute.summary(),
                notices: Vec::new(),
            },
            Request::SelfCheck => {
                let started = now_ms();
                Reply::SelfCheck(
                    selfcheck::run(&self.compute.device)
                        .await
                        .map(|check| (check, now_ms() - started)),
                )
            }
            Request::Bench {
                settings,
                iterations,
            } => Reply::Bench(
                self.bench(&settings, iterations, progress)
                    .await
                    .map(Box::new),
            ),
            Request::Reset(settings) => Reply::Reset(
                Lab::new(&settings, &self.compute.device).map(|lab| self.lab = Some(lab)),
            ),
            Request::Iterate {
                settings,
                attention_row,
                pinned,
            } => Reply::Iteration(
                self.iterate(&settings, attention_row, pinned, progress)
                    .await,
            ),
            Request::Replay {
                iteration,
                lr,
                epochs,
            } => Reply::Replay(match &self.lab {
                Some(lab) => lab.replay(iteration, lr, epochs).await.map(Box::new),
                None => Err("the model is not loaded: reset first".into()),
            }),
            Request::Attention { iteration, row } => Reply::Attention(match &self.lab {
                Some(lab) => lab.attention(iteration, row).await.map(Box::new),
                None => Err("the model is not loaded: reset first".into()),
            }),
        }
    }

    async fn iterate(
        &mut self,
        settings: &LabSettings,
        attention_row: Option<usize>,
        pinned: Option<usize>,
        progress: &dyn Fn(Progress),
    ) -> Result<Box<Iterated>, String> {
        let lab = self
            .lab
            .as_mut()
            .ok_or("the model is not loaded: reset first")?;
        lab.pinned = pinned;
        let walk = lab
            .iterate_watched(settings, attention_row, &mut |s| {
                progress(Progress::Sampling(s))
            })
            .await?;
        Ok(Box::new(Iterated {
            iteration: lab.iteration,
            problems: lab.problems().to_vec(),
            walk,
            exercises_ran: crate::exercises::ran_summary(),
        }))
    }

    /// Benchmark mode: on WebGPU first when the server runs on it, then on flex.
    async fn bench(
        &self,
        settings: &LabSettings,
        iterations: usize,
        progress: &dyn Fn(Progress),
    ) -> Result<BenchResults, String> {
        let webgpu = if self.compute.kind == BackendKind::WebGpu {
            progress(Progress::Line(format!(
                "WebGPU: 1 + {iterations} iterations…"
            )));
            Some(bench_stages(settings, iterations, &self.compute.device).await?)
        } else {
            None
        };
        progress(Progress::Line(format!(
            "flex: 1 + {iterations} iterations…"
        )));
        let flex = bench_stages(settings, iterations, &Device::flex()).await?;
        Ok(BenchResults {
            webgpu_adapter: if webgpu.is_some() {
                self.compute.adapter.clone().unwrap_or_default()
            } else {
                String::new()
            },
            webgpu,
            flex,
        })
    }
}
