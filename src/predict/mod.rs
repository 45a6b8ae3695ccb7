//! Predict, then reveal: the questions the page asks before it shows an answer.
//!
//! Each question is made from the batch on show (the tokens, values and advantages of one
//! response, the batch's KL), at a point where PPO surprises students: which tokens get a
//! positive advantage, one step of the reverse GAE sweep, a sign that whitening flips, a ratio
//! the clip switches off, a token the critic no longer learns from, the response that pays the
//! most KL. [`reveal`] checks a student's answer against the batch and says why, with the
//! numbers. A question whose answer the batch leaves undefined (no real token, no whitening, no
//! critic, a tie for the largest KL) is not asked.
//!
//! No UI here: the page's predict card (src/web/predict/) draws them; tests/predict.rs
//! answers every kind right and wrong on real iterations.

pub mod ask;
mod pick;
pub mod question;
pub mod reveal;

pub use ask::{question, questions};
pub use question::{
    Ask, KL_RESOLUTION, Kind, Mark, NUMBER_TOLERANCE, Question, Response, Reveal, Start, Tally,
    from_url, in_stage, parse_number,
};
pub use reveal::reveal;
