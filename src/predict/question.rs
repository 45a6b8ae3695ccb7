//! What a question is and what becomes of it: its kind and stage, how it asks, the student's
//! response, the marks and verdict of its reveal, the tally, and `?predict=` in the URL.

use crate::explain::stage::StageKey;

/// The kinds of question, in the order of the stages that ask them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Values stage: which tokens of this response will get Â_t > 0?
    AdvantageSign,
    /// Score stage: which response pays the largest KL penalty?
    LargestKl,
    /// Score stage, with the adaptive KL controller on: which way does β move after this batch?
    BetaMoves,
    /// GAE stage: A_t from δ_t and A_{t+1}.
    GaeStep,
    /// GAE stage (its whitening step): does whitening flip this token's sign?
    WhiteningFlip,
    /// Update stage: does the clip switch this token's policy gradient off?
    RatioClipped,
    /// Update stage: does the critic still learn from this token?
    CriticLearns,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::AdvantageSign,
        Kind::LargestKl,
        Kind::BetaMoves,
        Kind::GaeStep,
        Kind::WhiteningFlip,
        Kind::RatioClipped,
        Kind::CriticLearns,
    ];

    /// Stable name, for URLs (`?predict=`), tests and the page's test ids.
    pub fn key(self) -> &'static str {
        match self {
            Kind::AdvantageSign => "advantage-sign",
            Kind::LargestKl => "largest-kl",
            Kind::BetaMoves => "beta-moves",
            Kind::GaeStep => "gae-step",
            Kind::WhiteningFlip => "whitening-flip",
            Kind::RatioClipped => "ratio-clipped",
            Kind::CriticLearns => "critic-learns",
        }
    }

    pub fn parse(key: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.key() == key)
    }

    /// The stage whose view holds the answer, and so asks the question.
    pub fn stage(self) -> StageKey {
        match self {
            Kind::AdvantageSign => StageKey::Values,
            Kind::LargestKl | Kind::BetaMoves => StageKey::Score,
            Kind::GaeStep | Kind::WhiteningFlip => StageKey::Gae,
            Kind::RatioClipped | Kind::CriticLearns => StageKey::Update,
        }
    }
}

/// How the student answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Ask {
    /// Pick any number of the response's real tokens (their texts, in order).
    Tokens(Vec<String>),
    /// Type a number: right within `tolerance` of the batch's.
    Number { tolerance: f32 },
    /// Pick one of these.
    Choice(Vec<String>),
}

/// An answer: the student's, or the batch's.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    /// Token positions `t` of the response, ascending.
    Tokens(Vec<usize>),
    Number(f32),
    /// An index into [`Ask::Choice`].
    Choice(usize),
}

/// One question on one batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Question {
    pub kind: Kind,
    /// The response asked about (for [`Kind::LargestKl`], the row on show when it was asked).
    pub row: usize,
    /// The token asked about, for questions about one token.
    pub t: Option<usize>,
    /// The question, with the numbers the student may use.
    pub prompt: String,
    pub ask: Ask,
    /// The batch's answer.
    pub answer: Response,
    /// Why that is the answer, with this batch's numbers.
    pub why: String,
    /// The value the question supposes instead of the batch's: the ratio, or the critic's new
    /// value, of a token after a harder push, when the update left every token of the response
    /// inside its band. None when the question is about the batch's own numbers.
    pub supposed: Option<f32>,
}

/// What the reveal says of one real token, for questions that pick tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Picked, and Â_t > 0.
    Hit,
    /// Not picked, but Â_t > 0.
    Missed,
    /// Picked, but Â_t ≤ 0.
    Wrong,
    /// Not picked, and Â_t ≤ 0.
    Rejected,
}

impl Mark {
    pub fn key(self) -> &'static str {
        match self {
            Mark::Hit => "hit",
            Mark::Missed => "missed",
            Mark::Wrong => "wrong",
            Mark::Rejected => "rejected",
        }
    }

    /// Whether the student got this token right.
    pub fn right(self) -> bool {
        matches!(self, Mark::Hit | Mark::Rejected)
    }
}

/// The reveal of one answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Reveal {
    pub right: bool,
    /// The student's answer beside the batch's, then the question's `why`.
    pub verdict: String,
    /// For [`Ask::Tokens`]: every real token's mark, in order; empty otherwise.
    pub marks: Vec<Mark>,
}

/// How far a typed number may be from the batch's: the inputs the question shows are rounded to
/// 3 decimals, so a right computation on them can be off by about 0.0015.
pub const NUMBER_TOLERANCE: f32 = 0.002;

/// Sums of per-token KL closer than this are a tie, and a largest sum below it is rounding, not
/// a policy that moved: on the first iteration the policy is the reference, and the sampler's
/// and the reference pass's logprobs differ only by float error (about 1e-7 a token).
pub const KL_RESOLUTION: f32 = 1e-4;

/// Right answers and questions asked, per stage, while the page is open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// `(right, asked)` per stage, in [`StageKey::ALL`] order.
    pub by_stage: [(usize, usize); StageKey::ALL.len()],
}

impl Tally {
    pub fn record(&mut self, stage: StageKey, right: bool) {
        let entry = &mut self.by_stage[stage.index()];
        entry.0 += usize::from(right);
        entry.1 += 1;
    }

    /// `(right, asked)` over every stage.
    pub fn total(&self) -> (usize, usize) {
        self.by_stage
            .iter()
            .fold((0, 0), |(r, a), &(sr, sa)| (r + sr, a + sa))
    }
}

/// Where `?predict=` starts predict mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Start {
    /// The stage to open (None: where the URL's `stage`, else the overview, says).
    pub stage: Option<StageKey>,
    /// The question to ask first in its stage (None: the stage's order).
    pub first: Option<Kind>,
}

/// What `?predict=` asks for: predict mode on (`1`, `true`, `on`), at a stage (its key), or at a
/// question (its kind: its stage opens, and it is asked first there), so that a class can vote
/// on that question before the reveal.
pub fn from_url(value: &str) -> Result<Start, String> {
    if matches!(value, "1" | "true" | "on") {
        return Ok(Start::default());
    }
    if let Some(stage) = StageKey::parse(value) {
        return Ok(Start {
            stage: Some(stage),
            first: None,
        });
    }
    if let Some(kind) = Kind::parse(value) {
        return Ok(Start {
            stage: Some(kind.stage()),
            first: Some(kind),
        });
    }
    Err(format!(
        "expected 1, a stage ({}) or a question ({})",
        StageKey::ALL.map(StageKey::key).join(", "),
        Kind::ALL.map(Kind::key).join(", ")
    ))
}

/// The questions of `stage` among `questions`, `first` (when it is one of them) ahead of the rest.
pub fn in_stage(questions: Vec<Question>, stage: StageKey, first: Option<Kind>) -> Vec<Question> {
    let (mut lead, rest): (Vec<Question>, Vec<Question>) = questions
        .into_iter()
        .filter(|q| q.kind.stage() == stage)
        .partition(|q| Some(q.kind) == first);
    lead.extend(rest);
    lead
}

/// A number as a student types it: a real minus sign and a decimal comma are read too.
pub fn parse_number(text: &str) -> Option<f32> {
    let cleaned = text.trim().replace('−', "-").replace(',', ".");
    cleaned.parse::<f32>().ok().filter(|x| x.is_finite())
}
