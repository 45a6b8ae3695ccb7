//! What predict mode remembers while the page is open: whether it is on, every question's
//! outcome, and the tally per stage. Plain state, held by the page's [`AppState`](crate::web::state::AppState).

use std::collections::HashMap;

use leptos::prelude::*;

use crate::predict::{Kind, Question, Response, Reveal, Tally};

/// What became of one question.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Revealed { said: Response, reveal: Reveal },
    Skipped,
}

/// Predict mode's state: whether it is on, every question's outcome by (iteration, response,
/// kind), and the tally.
#[derive(Clone, Copy)]
pub struct Predict {
    pub on: RwSignal<bool>,
    /// The question a stage asks first (`?predict=<question>`).
    pub first: Option<Kind>,
    pub outcomes: RwSignal<HashMap<(usize, usize, Kind), Outcome>>,
    pub tally: RwSignal<Tally>,
}

impl Predict {
    /// Off without a start from the URL.
    pub fn new(start: Option<crate::predict::Start>) -> Self {
        Self {
            on: RwSignal::new(start.is_some()),
            first: start.and_then(|s| s.first),
            outcomes: RwSignal::new(HashMap::new()),
            tally: RwSignal::new(Tally::default()),
        }
    }

    pub(super) fn record(self, iteration: usize, question: &Question, outcome: Outcome) {
        if let Outcome::Revealed { reveal, .. } = &outcome {
            self.tally
                .update(|t| t.record(question.kind.stage(), reveal.right));
        }
        self.outcomes.update(|o| {
            o.insert((iteration, question.row, question.kind), outcome);
        });
    }
}
