//! The page's PPO run, in the core rather than in `web/` so that native tests run exactly what
//! the page runs. One direction each, from the bottom:
//! - [`setting_keys`]: the settings panel's keys, labels and explanations;
//! - [`settings`]: what a student can change, by URL key, with ranges;
//! - [`walkthrough`]: one PPO iteration with everything the page's stages show;
//! - [`wire`]: the messages between the page and its Web Worker (plain data: settings and
//!   walkthroughs in, results out; it runs nothing);
//! - [`run`]: the tiny model's run ([`run::Lab`]): iterations, replays, pins;
//! - [`bench`]: the benchmark mode's timings;
//! - [`timings`]: what the page measures about its own start and iterations (plain data);
//! - [`server`]: what the Web Worker runs, answering the page's requests with the run.

pub mod bench;
pub mod run;
pub mod server;
pub mod setting_keys;
pub mod settings;
pub mod timings;
pub mod walkthrough;
pub mod wire;
