//! Unit tests of ask.rs: the kinds' keys and stages, balanced picks, and single questions.

use super::*;

use crate::explain::stage::StageKey;
use crate::predict::reveal::reveal;

#[test]
fn keys_round_trip_and_every_stage_named_exists() {
    for kind in Kind::ALL {
        assert_eq!(Kind::parse(kind.key()), Some(kind));
        assert!(StageKey::ALL.contains(&kind.stage()));
    }
    assert_eq!(Kind::parse("nope"), None);
}

#[test]
fn balanced_picks_take_yes_and_no_alike() {
    let (yes, no) = ([1, 2], [7]);
    let picks: Vec<usize> = (0..200)
        .filter_map(|i| pick_balanced(&yes, &no, i, 0, Kind::RatioClipped))
        .collect();
    let from_yes = picks.iter().filter(|p| yes.contains(p)).count();
    assert!((60..=140).contains(&from_yes), "{from_yes} of 200 from yes");
    assert!(picks.contains(&1) && picks.contains(&2) && picks.contains(&7));
    assert_eq!(pick_balanced(&[], &[], 3, 0, Kind::RatioClipped), None);
    assert_eq!(pick_balanced(&[], &[5], 3, 0, Kind::RatioClipped), Some(5));
}

fn choice_question() -> Question {
    Question {
        kind: Kind::WhiteningFlip,
        row: 0,
        t: Some(0),
        prompt: String::new(),
        ask: Ask::Choice(vec!["yes".into(), "no".into()]),
        answer: Response::Choice(1),
        why: "because".into(),
        supposed: None,
    }
}

#[test]
fn a_choice_is_right_only_when_it_is_the_answer() {
    let q = choice_question();
    let right = reveal(&q, &Response::Choice(1));
    assert!(right.right);
    assert_eq!(
        right.verdict,
        "You said no; the answer is no: right. because"
    );
    let wrong = reveal(&q, &Response::Choice(0));
    assert!(!wrong.right);
    assert_eq!(wrong.verdict, "You said yes; the answer is no. because");
    assert!(!reveal(&q, &Response::Number(1.0)).right);
}

#[test]
fn a_number_is_right_within_the_tolerance_and_never_when_not_a_number() {
    let q = Question {
        kind: Kind::GaeStep,
        ask: Ask::Number {
            tolerance: NUMBER_TOLERANCE,
        },
        answer: Response::Number(0.689975),
        ..choice_question()
    };
    assert!(reveal(&q, &Response::Number(0.690)).right);
    assert!(reveal(&q, &Response::Number(0.6915)).right);
    assert!(!reveal(&q, &Response::Number(0.693)).right);
    assert!(!reveal(&q, &Response::Number(f32::NAN)).right);
    assert!(reveal(&q, &Response::Number(0.5)).verdict.starts_with(
        "You said 0.500; the batch's value is 0.690: off by 0.190 (answers within 0.002"
    ));
}

#[test]
fn picked_tokens_are_marked_hit_missed_wrong_or_rejected() {
    let q = Question {
        kind: Kind::AdvantageSign,
        ask: Ask::Tokens(vec!["a".into(), "b".into(), "c".into(), "d".into()]),
        answer: Response::Tokens(vec![0, 2]),
        ..choice_question()
    };
    let r = reveal(&q, &Response::Tokens(vec![0, 3]));
    assert_eq!(
        r.marks,
        [Mark::Hit, Mark::Rejected, Mark::Missed, Mark::Wrong]
    );
    assert!(!r.right);
    assert!(r.verdict.starts_with(
        "2 of 4 right: you picked 1 of the 2 with Â_t > 0, and 1 token with Â_t ≤ 0. "
    ));
    let all = reveal(&q, &Response::Tokens(vec![0, 2]));
    assert!(all.right);
    assert!(
        all.verdict
            .starts_with("4 of 4 right: you picked 2 of the 2 with Â_t > 0: all right. ")
    );
}

#[test]
fn the_tally_counts_per_stage() {
    let mut tally = Tally::default();
    tally.record(StageKey::Gae, true);
    tally.record(StageKey::Gae, false);
    tally.record(StageKey::Update, true);
    assert_eq!(tally.by_stage[StageKey::Gae.index()], (1, 2));
    assert_eq!(tally.total(), (2, 3));
}

#[test]
fn numbers_are_read_with_either_minus_and_either_decimal_mark() {
    assert_eq!(parse_number(" −1,5 "), Some(-1.5));
    assert_eq!(parse_number("0.42"), Some(0.42));
    assert_eq!(parse_number("abc"), None);
    assert_eq!(parse_number("inf"), None);
}

#[test]
fn the_url_turns_predict_on_at_a_stage_or_a_question() {
    assert_eq!(from_url("1"), Ok(Start::default()));
    assert_eq!(
        from_url("gae"),
        Ok(Start {
            stage: Some(StageKey::Gae),
            first: None
        })
    );
    assert_eq!(
        from_url("whitening-flip"),
        Ok(Start {
            stage: Some(StageKey::Gae),
            first: Some(Kind::WhiteningFlip)
        })
    );
    assert!(from_url("gea").unwrap_err().contains("gae-step"));
}

#[test]
fn a_stage_asks_the_chosen_question_first() {
    let q = |kind| Question {
        kind,
        ..choice_question()
    };
    let all = vec![
        q(Kind::AdvantageSign),
        q(Kind::GaeStep),
        q(Kind::WhiteningFlip),
    ];
    let kinds = |qs: Vec<Question>| qs.into_iter().map(|q| q.kind).collect::<Vec<_>>();
    assert_eq!(
        kinds(in_stage(all.clone(), StageKey::Gae, None)),
        [Kind::GaeStep, Kind::WhiteningFlip]
    );
    assert_eq!(
        kinds(in_stage(
            all.clone(),
            StageKey::Gae,
            Some(Kind::WhiteningFlip)
        )),
        [Kind::WhiteningFlip, Kind::GaeStep]
    );
    assert_eq!(
        kinds(in_stage(all, StageKey::Values, Some(Kind::WhiteningFlip))),
        [Kind::AdvantageSign]
    );
}
