//! ppo-lens: learn, see and run PPO for language models.
//!
//! One crate with two faces over a shared core:
//! - the core ([`compute`], [`data`], [`model`], [`ppo`], [`reward`], [`rng`], [`rollout`], [`selfcheck`]): tensor code on a runtime burn [`Device`],
//!   no I/O and no UI;
//! - [`native`]: the `ppo-lens` command line (trainer, checks, `doctor`);
//! - [`web`]: the Leptos page that Trunk builds for wasm32.
//!
//! The core never imports native or web code, and those two never import each other.
//!
//! [`Device`]: burn::tensor::Device

pub mod adamw8bit;
pub mod break_it;
pub mod compute;
pub mod cpu_fast;
pub mod data;
pub mod exercises;
pub mod explain;
pub mod explore;
pub mod faded;
pub mod faq;
pub mod health;
pub mod lab;
pub mod misconceptions;
pub mod model;
pub mod palette;
pub mod ppo;
pub mod predict;
pub mod reward;
pub mod rng;
pub mod rollout;
pub mod selfcheck;
pub mod sign;

#[cfg(not(target_arch = "wasm32"))]
pub mod native;

#[cfg(target_arch = "wasm32")]
pub mod web;
