//! A session's results (CONTRACT.md section 5) against a model in integer hundredths:
//! `pronunciation_score` is the mean, over sentence indexes, of each index's most
//! recent scored attempt, rounded half away from zero to 2 places; `is_passed` holds
//! when every sentence (or the one, without a sentence list) has a most recent scored
//! attempt that passed; the session is complete once every sentence has one.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use proptest::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;
use voice_edge_shared::practice::scores::{ScoredAttempt, round_score, session_results};

fn at(second: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2025, 11, 22)
        .unwrap()
        .and_hms_opt(9, 0, 0)
        .unwrap()
        + TimeDelta::seconds(i64::from(second))
}

/// One scored attempt: sentence index, score in hundredths, passed, and a key whose
/// rank is its (distinct) scoring time.
type Attempt = (i32, i64, bool, u32);

struct Expected {
    score: Option<Decimal>,
    is_passed: bool,
    all_sentences_scored: bool,
}

fn model(sentence_count: Option<usize>, attempts: &[(i32, i64, bool, u32)]) -> Expected {
    let mut latest: BTreeMap<i32, (u32, i64, bool)> = BTreeMap::new();
    for &(index, score, passed, second) in attempts {
        let newer = latest.get(&index).is_none_or(|&(seen, _, _)| second > seen);
        if newer {
            latest.insert(index, (second, score, passed));
        }
    }
    let count = latest.len() as i64;
    let total: i64 = latest.values().map(|&(_, score, _)| score).sum();
    // Half away from zero on a non-negative mean: floor(total / count + 1/2).
    let score = (count > 0).then(|| Decimal::new((2 * total + count) / (2 * count), 2));
    let sentences = match sentence_count {
        None | Some(0) => 1,
        Some(count) => count,
    };
    let per_sentence: Vec<Option<bool>> = (0..sentences as i32)
        .map(|index| latest.get(&index).map(|&(_, _, passed)| passed))
        .collect();
    Expected {
        score,
        is_passed: per_sentence.iter().all(|passed| *passed == Some(true)),
        all_sentences_scored: per_sentence.iter().all(Option::is_some),
    }
}

prop_compose! {
    fn attempts()(
        seeds in prop::collection::vec((0i32..6, 0i64..=10_000, any::<bool>()), 0..20),
        time_keys in prop::collection::vec(any::<u32>(), 20),
    ) -> Vec<Attempt> {
        // Distinct scoring times: the rank of each attempt's key.
        let mut order: Vec<usize> = (0..seeds.len()).collect();
        order.sort_by_key(|&attempt| (time_keys[attempt], attempt));
        let mut seconds = vec![0u32; seeds.len()];
        for (rank, &attempt) in order.iter().enumerate() {
            seconds[attempt] = rank as u32;
        }
        seeds
            .iter()
            .zip(seconds)
            .map(|(&(index, score, passed), second)| (index, score, passed, second))
            .collect()
    }
}

proptest! {
    #![proptest_config(crate::config(10_000))]

    #[test]
    fn session_results_follow_the_contract(
        sentence_count in prop::option::of(0usize..6),
        attempt_count in 0i32..40,
        attempts in attempts(),
    ) {
        let scored: Vec<ScoredAttempt> = attempts
            .iter()
            .enumerate()
            .map(|(number, &(index, score, is_passed, second))| ScoredAttempt {
                id: Uuid::from_u128(number as u128 + 1),
                sentence_index: index,
                score: Decimal::new(score, 2),
                is_passed,
                scored_at: at(second),
            })
            .collect();
        let results = session_results(sentence_count, attempt_count, &scored);
        let expected = model(sentence_count, &attempts);
        prop_assert_eq!(results.attempt_count, attempt_count);
        prop_assert_eq!(results.pronunciation_score, expected.score);
        prop_assert_eq!(results.is_passed, expected.is_passed);
        prop_assert_eq!(results.all_sentences_scored, expected.all_sentences_scored);
        if let Some(score) = results.pronunciation_score {
            prop_assert!(score.scale() <= 2, "{}", score);
            prop_assert!((Decimal::ZERO..=Decimal::ONE_HUNDRED).contains(&score));
        }
    }

    /// Rounding to the stored 2 places is half away from zero, as Postgres rounds
    /// `numeric`: a model on integer thousandths.
    #[test]
    fn round_score_rounds_half_away_from_zero(thousandths in -1_000_000i64..=1_000_000) {
        let magnitude = (thousandths.abs() + 5) / 10;
        let expected = Decimal::new(thousandths.signum() * magnitude, 2);
        prop_assert_eq!(round_score(Decimal::new(thousandths, 3)), expected);
    }
}

#[test]
fn the_model_rounds_a_worked_example() {
    // Sentence 0: 80.00 then (later) 70.05; sentence 1: 66.66. Mean (70.05 + 66.66) / 2
    // = 68.355, rounded half away from zero: 68.36.
    let attempts = [
        (0, 8_000, true, 1),
        (0, 7_005, true, 3),
        (1, 6_666, false, 2),
    ];
    let expected = model(Some(2), &attempts);
    assert_eq!(expected.score, Some(Decimal::new(6_836, 2)));
    assert!(!expected.is_passed);
    assert!(expected.all_sentences_scored);
}
