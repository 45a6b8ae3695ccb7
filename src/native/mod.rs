//! Native face of ppo-lens: the command line and what only runs outside a browser.

pub mod cli;
pub mod config;
pub mod doctor;
pub mod inputs;
pub mod model_dir;
pub mod plots;
pub mod ppo_cmd;
pub mod score;
pub mod tiny;
pub mod train;
