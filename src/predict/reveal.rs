//! A student's answer checked against the batch, with the numbers that say why.

use super::question::*;
use crate::explain::format::{count, num};

/// Checks `response` against the batch's answer to `question`.
pub fn reveal(question: &Question, response: &Response) -> Reveal {
    match (&question.ask, &question.answer, response) {
        (Ask::Tokens(texts), Response::Tokens(answer), Response::Tokens(picked)) => {
            let marks: Vec<Mark> = (0..texts.len())
                .map(|t| match (picked.contains(&t), answer.contains(&t)) {
                    (true, true) => Mark::Hit,
                    (false, true) => Mark::Missed,
                    (true, false) => Mark::Wrong,
                    (false, false) => Mark::Rejected,
                })
                .collect();
            let right_count = marks.iter().filter(|m| m.right()).count();
            let right = right_count == marks.len();
            let n = |m: Mark| marks.iter().filter(|&&x| x == m).count();
            Reveal {
                right,
                verdict: format!(
                    "{} of {} right: you picked {} of the {} with Â_t > 0{}{}. {}",
                    right_count,
                    marks.len(),
                    n(Mark::Hit),
                    answer.len(),
                    match n(Mark::Wrong) {
                        0 => String::new(),
                        k => format!(", and {} with Â_t ≤ 0", count(k, "token", "tokens")),
                    },
                    if right { ": all right" } else { "" },
                    question.why
                ),
                marks,
            }
        }
        (Ask::Number { tolerance }, Response::Number(answer), Response::Number(said)) => {
            let right = said.is_finite() && (said - answer).abs() <= *tolerance;
            Reveal {
                right,
                verdict: format!(
                    "You said {}; the batch's value is {}: {} (answers within {:.3} count, the \
                     numbers shown being rounded). {}",
                    num(*said),
                    num(*answer),
                    if right {
                        "right".to_string()
                    } else {
                        format!("off by {}", num((said - answer).abs()))
                    },
                    tolerance,
                    question.why
                ),
                marks: Vec::new(),
            }
        }
        (Ask::Choice(choices), Response::Choice(answer), Response::Choice(said)) => {
            let right = said == answer;
            let name = |i: usize| choices.get(i).map_or("nothing", String::as_str);
            Reveal {
                right,
                verdict: format!(
                    "You said {}; the answer is {}{}. {}",
                    name(*said),
                    name(*answer),
                    if right { ": right" } else { "" },
                    question.why
                ),
                marks: Vec::new(),
            }
        }
        _ => Reveal {
            right: false,
            verdict: format!(
                "That answer does not fit the question (it asks for {}).",
                match question.ask {
                    Ask::Tokens(_) => "tokens",
                    Ask::Number { .. } => "a number",
                    Ask::Choice(_) => "one of its choices",
                }
            ),
            marks: Vec::new(),
        },
    }
}
