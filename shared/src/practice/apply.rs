//! What an event changes, decided as pure code from the session as it stands (locked
//! for the rest of the transaction) and the event.
//!
//! - **Order.** A session-level event (`transcript.improved`, `sentences.extracted`,
//!   `session.failed`) applies only when its timestamp is not older than the session's
//!   `last_event_at`; an attempt-level event (`attempt.scored`, `attempt.failed`) only
//!   when it is not older than that attempt's. The two clocks are separate, so a delayed
//!   sentence list still lands after the first scores.
//! - **Status** moves only forward ([`SessionStatus::may_become`]).
//! - **Results** are recomputed ([`super::scores`]) whenever an attempt or the sentence
//!   list changes, and the session becomes `completed` once every sentence is scored.
//!
//! An event that changes nothing is still a processed delivery: it was received, and
//! what it reported is already superseded.

use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::event::{AttemptScore, EventKind, PracticeEvent};
use super::scores::{ScoredAttempt, SessionResults, session_results};
use super::status::{AttemptStatus, SessionStatus};

/// A practice session as the webhook sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionState {
    pub id: Uuid,
    pub status: SessionStatus,
    /// Length of `sentences`, when it is a list.
    pub sentence_count: Option<usize>,
    pub last_event_at: Option<NaiveDateTime>,
    pub attempts: Vec<AttemptState>,
}

impl SessionState {
    /// The session as it stands once `changes` are written: the in-memory model of
    /// what the write statements do to the columns a `SessionState` holds
    /// (`sessions::UPDATE_SQL`, `attempts::upsert_sql`, and `practice_record_scored` for
    /// a scored attempt). A field the change leaves `None` keeps its value; an attempt
    /// the session does not have yet is created, `pending` with nothing scored, and then
    /// changed; a failed attempt keeps what it was scored before. What a `SessionState`
    /// does not hold (texts, error messages, the results' columns) is not modelled here.
    ///
    /// Tests plan with [`plan_changes`] and write with this: the unit tests here, the
    /// property tests of the ordering rule, and the integration tests that compare the
    /// database's rows with it.
    pub fn with_changes(&self, changes: &Changes<'_>) -> SessionState {
        let mut next = self.clone();
        if let Some(change) = changes.attempt() {
            let (id, at, status) = match change {
                AttemptChange::Scored { attempt_id, at, .. } => {
                    (*attempt_id, *at, AttemptStatus::Completed)
                }
                AttemptChange::Failed { attempt_id, at, .. } => {
                    (*attempt_id, *at, AttemptStatus::Failed)
                }
            };
            let position = match next.attempts.iter().position(|attempt| attempt.id == id) {
                Some(position) => position,
                None => {
                    next.attempts.push(AttemptState::pending(id));
                    next.attempts.len() - 1
                }
            };
            let attempt = &mut next.attempts[position];
            attempt.status = status;
            attempt.last_event_at = Some(at);
            if let AttemptChange::Scored { score, .. } = change {
                attempt.sentence_index = Some(score.sentence_index);
                attempt.pronunciation_score = Some(score.pronunciation_score);
                attempt.is_passed = Some(score.is_passed);
            }
        }
        if let Some(change) = changes.session() {
            if let Some(status) = change.status {
                next.status = status;
            }
            if let Some(sentences) = change.sentences {
                next.sentence_count = Some(sentences.len());
            }
            if let Some(at) = change.last_event_at {
                next.last_event_at = Some(at);
            }
        }
        next
    }
}

/// One of the session's attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptState {
    pub id: Uuid,
    pub status: AttemptStatus,
    pub sentence_index: Option<i32>,
    pub pronunciation_score: Option<Decimal>,
    pub is_passed: Option<bool>,
    pub last_event_at: Option<NaiveDateTime>,
}

impl AttemptState {
    /// An attempt as a write creates it before changing it: `pending`, nothing scored.
    fn pending(id: Uuid) -> AttemptState {
        AttemptState {
            id,
            status: AttemptStatus::Pending,
            sentence_index: None,
            pronunciation_score: None,
            is_passed: None,
            last_event_at: None,
        }
    }
}

/// A write to one attempt (created when the session has no attempt with its id).
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptChange<'a> {
    Scored {
        attempt_id: Uuid,
        at: NaiveDateTime,
        score: &'a AttemptScore,
    },
    Failed {
        attempt_id: Uuid,
        at: NaiveDateTime,
        error_message: &'a str,
    },
}

/// A write to the session; `None` fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionChange<'a> {
    pub status: Option<SessionStatus>,
    pub improved_transcript: Option<&'a str>,
    pub sentences: Option<&'a [String]>,
    pub error_message: Option<&'a str>,
    pub results: Option<SessionResults>,
    /// Set by session-level events only.
    pub last_event_at: Option<NaiveDateTime>,
}

/// Everything an event writes. An attempt never changes without its session, whose
/// results follow from its attempts.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Changes<'a> {
    /// The event is older than what it reports on, or would move a status backwards.
    #[default]
    Nothing,
    Session(SessionChange<'a>),
    AttemptAndSession(AttemptChange<'a>, SessionChange<'a>),
}

impl<'a> Changes<'a> {
    /// The attempt's change, if any.
    pub fn attempt(&self) -> Option<&AttemptChange<'a>> {
        match self {
            Changes::AttemptAndSession(attempt, _) => Some(attempt),
            _ => None,
        }
    }

    /// The session's change, if any.
    pub fn session(&self) -> Option<&SessionChange<'a>> {
        match self {
            Changes::Nothing => None,
            Changes::Session(session) | Changes::AttemptAndSession(_, session) => Some(session),
        }
    }
}

/// Decides what `event` changes in `session`.
pub fn plan_changes<'a>(session: &SessionState, event: &'a PracticeEvent) -> Changes<'a> {
    let at = event.at;
    match &event.kind {
        EventKind::TranscriptImproved {
            improved_transcript,
        } if not_older(at, session.last_event_at) => Changes::Session(SessionChange {
            improved_transcript: Some(improved_transcript),
            last_event_at: Some(at),
            ..SessionChange::default()
        }),
        EventKind::SentencesExtracted { sentences } if not_older(at, session.last_event_at) => {
            let results = results_of(Some(sentences.len()), &session.attempts);
            let mut wanted = vec![SessionStatus::Analyzing];
            if results.all_sentences_scored {
                wanted.push(SessionStatus::Completed);
            }
            Changes::Session(SessionChange {
                status: advance(session.status, &wanted),
                sentences: Some(sentences),
                results: Some(results),
                last_event_at: Some(at),
                ..SessionChange::default()
            })
        }
        EventKind::SessionFailed { error_message }
            if not_older(at, session.last_event_at)
                && session.status.may_become(SessionStatus::Failed) =>
        {
            Changes::Session(SessionChange {
                status: advance(session.status, &[SessionStatus::Failed]),
                error_message: Some(error_message),
                last_event_at: Some(at),
                ..SessionChange::default()
            })
        }
        EventKind::AttemptScored(score) => {
            let change = AttemptChange::Scored {
                attempt_id: score.attempt_id,
                at,
                score,
            };
            plan_attempt_change(session, change)
        }
        EventKind::AttemptFailed {
            attempt_id,
            error_message,
        } => {
            let change = AttemptChange::Failed {
                attempt_id: *attempt_id,
                at,
                error_message,
            };
            plan_attempt_change(session, change)
        }
        _ => Changes::Nothing,
    }
}

fn plan_attempt_change<'a>(session: &SessionState, change: AttemptChange<'a>) -> Changes<'a> {
    let (attempt_id, at, next_status) = match &change {
        AttemptChange::Scored { attempt_id, at, .. } => {
            (*attempt_id, *at, AttemptStatus::Completed)
        }
        AttemptChange::Failed { attempt_id, at, .. } => (*attempt_id, *at, AttemptStatus::Failed),
    };
    let mut attempts = session.attempts.clone();
    let position = match attempts.iter().position(|attempt| attempt.id == attempt_id) {
        Some(position) => {
            let current = &attempts[position];
            if !not_older(at, current.last_event_at) || !current.status.may_become(next_status) {
                return Changes::Nothing;
            }
            position
        }
        None => {
            attempts.push(AttemptState::pending(attempt_id));
            attempts.len() - 1
        }
    };
    let attempt = &mut attempts[position];
    attempt.status = next_status;
    attempt.last_event_at = Some(at);
    if let AttemptChange::Scored { score, .. } = &change {
        attempt.sentence_index = Some(score.sentence_index);
        attempt.pronunciation_score = Some(score.pronunciation_score);
        attempt.is_passed = Some(score.is_passed);
    }

    let results = results_of(session.sentence_count, &attempts);
    let status = if results.all_sentences_scored {
        advance(session.status, &[SessionStatus::Completed])
    } else {
        None
    };
    Changes::AttemptAndSession(
        change,
        SessionChange {
            status,
            results: Some(results),
            ..SessionChange::default()
        },
    )
}

/// The order rule: an event applies unless it is older than what shaped the row.
fn not_older(at: NaiveDateTime, last_event_at: Option<NaiveDateTime>) -> bool {
    last_event_at.is_none_or(|last| at >= last)
}

/// The furthest of `wanted`, taken in order, that `current` may move to; `None` when the
/// status stays.
fn advance(current: SessionStatus, wanted: &[SessionStatus]) -> Option<SessionStatus> {
    let status = wanted.iter().fold(current, |status, &next| {
        if status.may_become(next) {
            next
        } else {
            status
        }
    });
    (status != current).then_some(status)
}

fn results_of(sentence_count: Option<usize>, attempts: &[AttemptState]) -> SessionResults {
    let scored: Vec<ScoredAttempt> = attempts
        .iter()
        .filter(|attempt| attempt.status == AttemptStatus::Completed)
        .filter_map(|attempt| {
            Some(ScoredAttempt {
                id: attempt.id,
                sentence_index: attempt.sentence_index?,
                score: attempt.pronunciation_score?,
                is_passed: attempt.is_passed.unwrap_or(false),
                // Rows scored before this function existed count as the oldest.
                scored_at: attempt.last_event_at.unwrap_or(NaiveDateTime::MIN),
            })
        })
        .collect();
    let attempt_count = i32::try_from(attempts.len()).unwrap_or(i32::MAX);
    session_results(sentence_count, attempt_count, &scored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::practice::event::EventType;
    use serde_json::json;
    use std::str::FromStr;

    fn at(second: u32) -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2025, 11, 22)
            .unwrap()
            .and_hms_opt(10, 0, second)
            .unwrap()
    }

    fn session(status: SessionStatus, sentence_count: Option<usize>) -> SessionState {
        SessionState {
            id: Uuid::from_u128(1),
            status,
            sentence_count,
            last_event_at: None,
            attempts: Vec::new(),
        }
    }

    fn event(second: u32, kind: EventKind) -> PracticeEvent {
        let event_type = match &kind {
            EventKind::TranscriptImproved { .. } => EventType::TranscriptImproved,
            EventKind::SentencesExtracted { .. } => EventType::SentencesExtracted,
            EventKind::AttemptScored(_) => EventType::AttemptScored,
            EventKind::AttemptFailed { .. } => EventType::AttemptFailed,
            EventKind::SessionFailed { .. } => EventType::SessionFailed,
        };
        PracticeEvent {
            event_type,
            at: at(second),
            session_id: Uuid::from_u128(1),
            kind,
        }
    }

    fn scored(second: u32, attempt: u128, index: i32, score: &str, passed: bool) -> PracticeEvent {
        event(
            second,
            EventKind::AttemptScored(Box::new(AttemptScore {
                attempt_id: Uuid::from_u128(attempt),
                sentence_index: index,
                pronunciation_score: Decimal::from_str(score).unwrap(),
                is_passed: passed,
                pronunciation_analysis: json!({}),
                feedback_data: json!({}),
                transcription_results: json!({}),
                word_level_scores: Vec::new(),
            })),
        )
    }

    /// Plans an event and writes its changes to the in-memory state.
    fn step(state: &mut SessionState, event: &PracticeEvent) {
        *state = state.with_changes(&plan_changes(state, event));
    }

    #[test]
    fn a_write_changes_only_what_it_names_and_creates_a_missing_attempt() {
        let mut state = session(SessionStatus::Analyzing, Some(2));
        step(&mut state, &scored(4, 7, 0, "90", true));
        state.last_event_at = Some(at(5));
        assert_eq!(state.with_changes(&Changes::Nothing), state);

        let failed = |attempt| AttemptChange::Failed {
            attempt_id: Uuid::from_u128(attempt),
            at: at(6),
            error_message: "noise",
        };
        let written = state
            .with_changes(&Changes::AttemptAndSession(
                failed(7),
                SessionChange::default(),
            ))
            .with_changes(&Changes::AttemptAndSession(
                failed(8),
                SessionChange::default(),
            ));
        let kept = AttemptState {
            status: AttemptStatus::Failed,
            last_event_at: Some(at(6)),
            ..state.attempts[0].clone()
        };
        let created = AttemptState {
            status: AttemptStatus::Failed,
            last_event_at: Some(at(6)),
            ..AttemptState::pending(Uuid::from_u128(8))
        };
        assert_eq!(
            written,
            SessionState {
                attempts: vec![kept, created],
                ..state.clone()
            },
            "the session's fields are as they were; the earlier score is kept"
        );
    }

    #[test]
    fn sentences_move_processing_to_analyzing() {
        let sentences = vec!["One.".to_string(), "Two.".to_string()];
        let event = event(1, EventKind::SentencesExtracted { sentences });
        let changes = plan_changes(&session(SessionStatus::Processing, None), &event);
        let change = changes.session().cloned().unwrap();
        assert_eq!(change.status, Some(SessionStatus::Analyzing));
        assert_eq!(change.sentences.unwrap().len(), 2);
        assert_eq!(change.last_event_at, Some(at(1)));
        assert!(changes.attempt().is_none());
    }

    #[test]
    fn sentences_never_move_a_completed_session_back() {
        let sentences = vec!["One.".to_string()];
        let event = event(1, EventKind::SentencesExtracted { sentences });
        let change = plan_changes(&session(SessionStatus::Completed, None), &event)
            .session()
            .cloned()
            .unwrap();
        assert_eq!(change.status, None);
    }

    #[test]
    fn an_older_session_event_changes_nothing() {
        let mut state = session(SessionStatus::Analyzing, Some(1));
        state.last_event_at = Some(at(5));
        let older = event(
            4,
            EventKind::TranscriptImproved {
                improved_transcript: "x".into(),
            },
        );
        assert_eq!(plan_changes(&state, &older), Changes::Nothing);
        let same_time = event(
            5,
            EventKind::TranscriptImproved {
                improved_transcript: "x".into(),
            },
        );
        assert!(plan_changes(&state, &same_time).session().is_some());
    }

    #[test]
    fn a_later_scored_event_survives_a_delayed_older_one() {
        let mut state = session(SessionStatus::Analyzing, Some(1));
        let newer = scored(9, 7, 0, "90", true);
        step(&mut state, &newer);
        let older = scored(3, 7, 0, "20", false);
        assert_eq!(plan_changes(&state, &older), Changes::Nothing);
        assert_eq!(
            state.attempts[0].pronunciation_score,
            Some(Decimal::from(90))
        );
    }

    #[test]
    fn three_sentences_complete_after_the_third_with_a_re_attempt() {
        let mut state = session(SessionStatus::Analyzing, Some(3));
        let events = [
            scored(1, 1, 0, "80", true),
            scored(2, 2, 1, "40", false),
            scored(3, 3, 2, "70", true),
            scored(4, 4, 1, "95.5", true),
        ];
        let mut last = None;
        for (step, event) in events.iter().enumerate() {
            let changes = plan_changes(&state, event);
            let change = changes.session().cloned().unwrap();
            let results = change.results.clone().unwrap();
            assert_eq!(results.attempt_count, step as i32 + 1);
            if step < 2 {
                assert_eq!(change.status, None, "step {step}");
            }
            state = state.with_changes(&changes);
            last = Some((change, results));
        }
        let (change, results) = last.unwrap();
        assert_eq!(
            results.pronunciation_score,
            Some(Decimal::from_str("81.83").unwrap())
        );
        assert!(results.is_passed);
        assert_eq!(state.status, SessionStatus::Completed);
        // Completed at step 3 already (with is_passed false); step 4 only refreshes.
        assert_eq!(change.status, None);
    }

    #[test]
    fn the_third_scored_sentence_completes_the_session_unpassed_when_one_failed() {
        let mut state = session(SessionStatus::Analyzing, Some(3));
        for event in [scored(1, 1, 0, "80", true), scored(2, 2, 1, "40", false)] {
            step(&mut state, &event);
        }
        let third = scored(3, 3, 2, "70", true);
        let change = plan_changes(&state, &third).session().cloned().unwrap();
        assert_eq!(change.status, Some(SessionStatus::Completed));
        let results = change.results.unwrap();
        assert!(!results.is_passed);
        assert_eq!(
            results.pronunciation_score,
            Some(Decimal::from_str("63.33").unwrap())
        );
    }

    #[test]
    fn a_failed_attempt_is_not_revived_by_a_late_score() {
        let mut state = session(SessionStatus::Analyzing, Some(2));
        let failed = event(
            5,
            EventKind::AttemptFailed {
                attempt_id: Uuid::from_u128(7),
                error_message: "noise".into(),
            },
        );
        let changes = plan_changes(&state, &failed);
        assert_eq!(
            changes
                .session()
                .unwrap()
                .results
                .as_ref()
                .unwrap()
                .attempt_count,
            1
        );
        state = state.with_changes(&changes);
        assert_eq!(
            plan_changes(&state, &scored(6, 7, 0, "90", true)),
            Changes::Nothing
        );
    }

    #[test]
    fn session_failure_is_terminal_and_does_not_override_completion() {
        let fail = event(
            5,
            EventKind::SessionFailed {
                error_message: "timeout".into(),
            },
        );
        let change = plan_changes(&session(SessionStatus::Analyzing, None), &fail)
            .session()
            .cloned()
            .unwrap();
        assert_eq!(change.status, Some(SessionStatus::Failed));
        assert_eq!(change.error_message, Some("timeout"));
        assert_eq!(
            plan_changes(&session(SessionStatus::Completed, None), &fail),
            Changes::Nothing
        );
    }

    #[test]
    fn a_sentence_list_arriving_after_scores_counts_them() {
        let mut state = session(SessionStatus::Processing, None);
        step(&mut state, &scored(2, 2, 1, "90", true));
        assert_eq!(
            state.status,
            SessionStatus::Processing,
            "index 0 has no score yet"
        );

        let sentences = vec!["One.".to_string(), "Two.".to_string()];
        // Older than the score, but the session's clock is its own.
        let late = event(0, EventKind::SentencesExtracted { sentences });
        let changes = plan_changes(&state, &late);
        let change = changes.session().cloned().unwrap();
        assert_eq!(change.status, Some(SessionStatus::Analyzing));
        assert_eq!(
            change.results.unwrap().pronunciation_score,
            Some(Decimal::from(90))
        );
        state = state.with_changes(&changes);

        let first_sentence = scored(3, 1, 0, "80", true);
        let change = plan_changes(&state, &first_sentence)
            .session()
            .cloned()
            .unwrap();
        assert_eq!(change.status, Some(SessionStatus::Completed));
        assert_eq!(
            change.results.unwrap().pronunciation_score,
            Some(Decimal::from(85))
        );
    }
}
