//! A session's results, recomputed from its attempts after every change to them, exactly
//! as the contract (section 5) defines them:
//!
//! - `attempt_count`: the session's attempts;
//! - `pronunciation_score`: the mean, over sentence indexes, of each index's most recent
//!   scored attempt, rounded to 2 places (half away from zero, as Postgres rounds
//!   `numeric`);
//! - `is_passed`: every sentence (or the one, when there is no sentence list) has a most
//!   recent scored attempt that passed;
//! - the session is complete once every sentence has a scored attempt.
//!
//! "Most recent" is by the timestamp of the event that scored the attempt, so a delayed
//! delivery of an earlier attempt's score does not displace a later re-attempt.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use rust_decimal::{Decimal, RoundingStrategy};
use uuid::Uuid;

/// Decimal places of every stored score (`numeric(5,2)`).
pub const SCORE_PLACES: u32 = 2;

/// An attempt that has a score.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredAttempt {
    pub id: Uuid,
    pub sentence_index: i32,
    pub score: Decimal,
    pub is_passed: bool,
    /// When the scoring event happened (ClassConnect's `timestamp`).
    pub scored_at: NaiveDateTime,
}

/// What a session shows of its attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionResults {
    pub attempt_count: i32,
    /// `None` while no attempt is scored.
    pub pronunciation_score: Option<Decimal>,
    pub is_passed: bool,
    /// Every sentence has a scored attempt.
    pub all_sentences_scored: bool,
}

/// Rounds a score to [`SCORE_PLACES`] the way Postgres rounds `numeric`.
pub fn round_score(score: Decimal) -> Decimal {
    score.round_dp_with_strategy(SCORE_PLACES, RoundingStrategy::MidpointAwayFromZero)
}

/// The session's results from its attempt count, the length of its sentence list
/// (`None` or `0` when it has none: then it is one sentence, index 0) and its scored
/// attempts.
pub fn session_results(
    sentence_count: Option<usize>,
    attempt_count: i32,
    scored: &[ScoredAttempt],
) -> SessionResults {
    let mut latest: BTreeMap<i32, &ScoredAttempt> = BTreeMap::new();
    for attempt in scored {
        let newer = latest.get(&attempt.sentence_index).is_none_or(|current| {
            (attempt.scored_at, attempt.id) > (current.scored_at, current.id)
        });
        if newer {
            latest.insert(attempt.sentence_index, attempt);
        }
    }

    let pronunciation_score = (!latest.is_empty()).then(|| {
        let total: Decimal = latest.values().map(|attempt| attempt.score).sum();
        round_score(total / Decimal::from(latest.len()))
    });

    let sentences = sentence_count.unwrap_or(0).max(1);
    let per_sentence: Vec<Option<&&ScoredAttempt>> = (0..sentences)
        .map(|index| {
            i32::try_from(index)
                .ok()
                .and_then(|index| latest.get(&index))
        })
        .collect();
    let all_sentences_scored = per_sentence.iter().all(Option::is_some);
    let is_passed = per_sentence
        .iter()
        .all(|attempt| attempt.is_some_and(|attempt| attempt.is_passed));

    SessionResults {
        attempt_count,
        pronunciation_score,
        is_passed,
        all_sentences_scored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn at(second: u32) -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2025, 11, 22)
            .unwrap()
            .and_hms_opt(10, 0, second)
            .unwrap()
    }

    fn scored(index: i32, score: &str, passed: bool, second: u32) -> ScoredAttempt {
        ScoredAttempt {
            id: Uuid::new_v4(),
            sentence_index: index,
            score: Decimal::from_str(score).unwrap(),
            is_passed: passed,
            scored_at: at(second),
        }
    }

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    #[test]
    fn three_sentences_complete_and_pass_only_after_the_third_is_scored() {
        let attempts = [scored(0, "80", true, 1), scored(1, "90", true, 2)];
        let partial = session_results(Some(3), 2, &attempts);
        assert_eq!(partial.pronunciation_score, Some(dec("85.00")));
        assert!(!partial.all_sentences_scored);
        assert!(
            !partial.is_passed,
            "a sentence without a scored attempt has not passed"
        );

        let attempts = [
            attempts[0].clone(),
            attempts[1].clone(),
            scored(2, "71", true, 3),
        ];
        let complete = session_results(Some(3), 3, &attempts);
        assert_eq!(complete.pronunciation_score, Some(dec("80.33")));
        assert!(complete.all_sentences_scored);
        assert!(complete.is_passed);
        assert_eq!(complete.attempt_count, 3);
    }

    #[test]
    fn a_re_attempt_replaces_its_sentences_earlier_score() {
        let attempts = [
            scored(0, "80", true, 1),
            scored(1, "40", false, 2),
            scored(2, "70", true, 3),
            scored(1, "95.5", true, 4),
        ];
        let results = session_results(Some(3), 4, &attempts);
        // (80 + 95.5 + 70) / 3 = 81.8333…
        assert_eq!(results.pronunciation_score, Some(dec("81.83")));
        assert!(results.is_passed);
        assert_eq!(results.attempt_count, 4);
    }

    #[test]
    fn most_recent_is_by_scoring_time_not_by_arrival_order() {
        // The re-attempt (scored at second 9) arrived before the first try's late score.
        let attempts = [scored(0, "95", true, 9), scored(0, "30", false, 1)];
        let results = session_results(None, 2, &attempts);
        assert_eq!(results.pronunciation_score, Some(dec("95.00")));
        assert!(results.is_passed);
    }

    #[test]
    fn a_failed_latest_attempt_fails_the_session_even_when_an_older_one_passed() {
        let attempts = [scored(0, "90", true, 1), scored(0, "50", false, 2)];
        let results = session_results(Some(1), 2, &attempts);
        assert!(!results.is_passed);
        assert!(results.all_sentences_scored);
    }

    #[test]
    fn without_a_sentence_list_the_session_is_one_sentence() {
        let results = session_results(None, 1, &[scored(0, "66.666", true, 1)]);
        assert!(results.all_sentences_scored);
        assert!(results.is_passed);
        assert_eq!(results.pronunciation_score, Some(dec("66.67")));
        let empty_list = session_results(Some(0), 1, &[scored(0, "60", false, 1)]);
        assert!(empty_list.all_sentences_scored);
        assert!(!empty_list.is_passed);
    }

    #[test]
    fn no_scored_attempt_means_no_score() {
        let results = session_results(Some(2), 1, &[]);
        assert_eq!(results.pronunciation_score, None);
        assert!(!results.is_passed);
        assert!(!results.all_sentences_scored);
    }

    #[test]
    fn rounding_is_half_away_from_zero_like_postgres_numeric() {
        assert_eq!(round_score(dec("80.125")), dec("80.13"));
        assert_eq!(round_score(dec("80.135")), dec("80.14"));
        assert_eq!(round_score(dec("80.124")), dec("80.12"));
        // (80.5 + 80.51) / 2 = 80.505 → 80.51, where banker's rounding would give 80.50.
        let results = session_results(
            None,
            2,
            &[scored(0, "80.5", true, 1), scored(1, "80.51", true, 2)],
        );
        assert_eq!(results.pronunciation_score, Some(dec("80.51")));
    }

    #[test]
    fn scores_of_indexes_beyond_the_list_count_in_the_mean_but_not_for_passing() {
        let attempts = [scored(0, "100", true, 1), scored(5, "50", false, 2)];
        let results = session_results(Some(1), 2, &attempts);
        assert_eq!(results.pronunciation_score, Some(dec("75.00")));
        assert!(results.is_passed);
    }
}
