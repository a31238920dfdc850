//! The practice webhook's ordering rule (CONTRACT.md section 5): for a random history of
//! one session's events (transcript improved, sentences extracted, session failed,
//! attempts scored and failed), delivered with repeats of a `webhook-id`, re-sends
//! under new ids and in a shuffled order, planning each delivery with
//! [`plan_changes`] and writing the changes to an in-memory session
//! ([`SessionState::with_changes`], the model of the repositories' writes) ends in the
//! state of a reference model that applies the distinct events in timestamp order,
//! statuses moving only forward.
//!
//! Where the contract's rules cannot all hold whatever the arrival order, the histories
//! stay out of the conflict (and say why):
//! - terminal states are never left, so an attempt is either scored or failed (never
//!   both), and a history with a `session.failed` never scores every sentence: which
//!   terminal state wins would depend on arrival;
//! - "one sentence when there is no list" plus forward-only would complete a session
//!   on its first score when that score arrives before the list, so the session
//!   starts with its sentence list (the same length as any later extraction's);
//! - an attempt keeps its sentence index.
//!
//! Session-level events reach the webhook in their timestamp order among themselves
//! (attempt-level events arrive in any order around them): the session has one clock
//! for all its fields, see [`a_sentence_list_older_than_an_improved_transcript_is_kept`].

use std::collections::{BTreeMap, HashSet};

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;
use uuid::Uuid;
use voice_edge_shared::practice::apply::{AttemptChange, Changes, SessionState, plan_changes};
use voice_edge_shared::practice::event::{AttemptScore, EventKind, EventType, PracticeEvent};
use voice_edge_shared::practice::status::{AttemptStatus, SessionStatus};

const SESSION: Uuid = Uuid::from_u128(0x5e55_1011);

fn attempt_id(number: usize) -> Uuid {
    Uuid::from_u128(0xa77e_0000 + number as u128)
}

fn at(second: usize) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2025, 11, 22)
        .unwrap()
        .and_hms_opt(10, 0, 0)
        .unwrap()
        + TimeDelta::seconds(second as i64)
}

/// What one event of a history says, before it gets its time.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Transcript(String),
    Sentences(Vec<String>),
    SessionFailed(String),
    /// An attempt scored: attempt number, score in hundredths, passed.
    Scored(usize, i64, bool),
    AttemptFailed(usize, String),
}

impl Kind {
    fn is_session_level(&self) -> bool {
        matches!(
            self,
            Kind::Transcript(_) | Kind::Sentences(_) | Kind::SessionFailed(_)
        )
    }
}

/// One attempt of a history: its sentence and whether ClassConnect scores or fails it.
#[derive(Debug, Clone)]
struct AttemptPlan {
    index: usize,
    scored: bool,
}

#[derive(Debug, Clone)]
struct History {
    sentence_count: usize,
    initial_status: SessionStatus,
    attempts: Vec<AttemptPlan>,
    /// The distinct events, each with its own second (distinct: the contract orders by
    /// timestamp and says nothing of ties).
    events: Vec<(usize, Kind)>,
    /// Deliveries in arrival order: (event, webhook-id).
    deliveries: Vec<(usize, String)>,
}

fn sentences(count: usize, variant: u8) -> Vec<String> {
    (0..count)
        .map(|index| format!("Sentence {index}, take {variant}: the fox jumps."))
        .collect()
}

prop_compose! {
    fn history()(
        sentence_count in 1usize..=3,
        initial in 0usize..3,
        with_failure in any::<bool>(),
        attempt_seeds in prop::collection::vec((0usize..3, any::<bool>()), 1..=4),
        seeds in prop::collection::vec(
            (0u8..4, 0usize..4, 0i64..=10_000, any::<bool>(), 0u8..3, 1usize..=3, any::<bool>()),
            1..=12,
        ),
        time_keys in prop::collection::vec(any::<u32>(), 12),
        arrival_keys in prop::collection::vec(any::<u32>(), 48),
    ) -> History {
        let initial_status =
            [SessionStatus::Pending, SessionStatus::Processing, SessionStatus::Analyzing][initial];
        // With a session failure in the history, the last sentence is never scored.
        let scorable = if with_failure { sentence_count - 1 } else { sentence_count };
        let attempts: Vec<AttemptPlan> = attempt_seeds
            .iter()
            .map(|&(index, scored)| AttemptPlan {
                index: if scorable == 0 { 0 } else { index % scorable },
                scored: scored && scorable > 0,
            })
            .collect();

        let kinds: Vec<Kind> = seeds
            .iter()
            .map(|&(kind, attempt, score, passed, variant, _, _)| match kind {
                0 => Kind::Transcript(format!("improved transcript {variant} ✓ 𝄞")),
                1 => Kind::Sentences(sentences(sentence_count, variant)),
                2 if with_failure => Kind::SessionFailed(format!("failure {variant}")),
                2 => Kind::Transcript(format!("improved transcript {variant}")),
                _ => {
                    let number = attempt % attempts.len();
                    if attempts[number].scored {
                        Kind::Scored(number, score, passed)
                    } else {
                        Kind::AttemptFailed(number, format!("attempt error {variant}"))
                    }
                }
            })
            .collect();
        // Distinct seconds: the rank of each event's key.
        let mut order: Vec<usize> = (0..kinds.len()).collect();
        order.sort_by_key(|&event| (time_keys[event], event));
        let mut events = vec![(0, Kind::Transcript(String::new())); kinds.len()];
        for (second, &event) in order.iter().enumerate() {
            events[event] = (second, kinds[event].clone());
        }

        // Every event delivered 1–3 times under its id, some re-sent under a new id.
        let mut deliveries = Vec::new();
        for (event, &(_, _, _, _, _, copies, resent)) in seeds.iter().enumerate() {
            for _ in 0..copies {
                deliveries.push((event, format!("msg_{event}")));
            }
            if resent {
                deliveries.push((event, format!("msg_{event}_resent")));
            }
        }
        let mut keyed: Vec<(u32, usize, (usize, String))> = deliveries
            .into_iter()
            .enumerate()
            .map(|(position, delivery)| (arrival_keys[position], position, delivery))
            .collect();
        keyed.sort();
        let mut deliveries: Vec<(usize, String)> =
            keyed.into_iter().map(|(_, _, delivery)| delivery).collect();
        // Session-level deliveries keep their timestamp order among themselves.
        let slots: Vec<usize> = (0..deliveries.len())
            .filter(|&slot| events[deliveries[slot].0].1.is_session_level())
            .collect();
        let mut session_level: Vec<(usize, String)> =
            slots.iter().map(|&slot| deliveries[slot].clone()).collect();
        session_level.sort_by_key(|(event, _)| events[*event].0);
        for (slot, delivery) in slots.into_iter().zip(session_level) {
            deliveries[slot] = delivery;
        }

        History { sentence_count, initial_status, attempts, events, deliveries }
    }
}

// ---------------------------------------------------------------------------------
// The code under test, driven as the webhook drives it.

/// A practice session's row and its attempts' rows, as the repositories keep them.
#[derive(Debug, Clone)]
struct Rows {
    session: SessionState,
    improved_transcript: Option<String>,
    sentences: Option<Vec<String>>,
    error_message: Option<String>,
    attempt_count: i32,
    pronunciation_score: Option<Decimal>,
    is_passed: bool,
    attempt_errors: BTreeMap<Uuid, String>,
}

fn practice_event(second: usize, kind: &Kind, attempts: &[AttemptPlan]) -> PracticeEvent {
    let (event_type, kind) = match kind.clone() {
        Kind::Transcript(improved_transcript) => (
            EventType::TranscriptImproved,
            EventKind::TranscriptImproved {
                improved_transcript,
            },
        ),
        Kind::Sentences(sentences) => (
            EventType::SentencesExtracted,
            EventKind::SentencesExtracted { sentences },
        ),
        Kind::SessionFailed(error_message) => (
            EventType::SessionFailed,
            EventKind::SessionFailed { error_message },
        ),
        Kind::Scored(number, hundredths, is_passed) => (
            EventType::AttemptScored,
            EventKind::AttemptScored(Box::new(AttemptScore {
                attempt_id: attempt_id(number),
                sentence_index: attempts[number].index as i32,
                pronunciation_score: Decimal::new(hundredths, 2),
                is_passed,
                pronunciation_analysis: json!({"accuracy": hundredths}),
                feedback_data: json!({}),
                transcription_results: json!({}),
                word_level_scores: Vec::new(),
            })),
        ),
        Kind::AttemptFailed(number, error_message) => (
            EventType::AttemptFailed,
            EventKind::AttemptFailed {
                attempt_id: attempt_id(number),
                error_message,
            },
        ),
    };
    PracticeEvent {
        event_type,
        at: at(second),
        session_id: SESSION,
        kind,
    }
}

/// Writes planned changes to the rows: the session's state as
/// [`SessionState::with_changes`] models the write, and the columns it does not hold
/// beside it; `None` leaves a column as it is.
fn write(rows: &mut Rows, changes: &Changes<'_>) {
    rows.session = rows.session.with_changes(changes);
    if let Some(AttemptChange::Failed {
        attempt_id,
        error_message,
        ..
    }) = changes.attempt()
    {
        rows.attempt_errors
            .insert(*attempt_id, error_message.to_string());
    }
    if let Some(change) = changes.session() {
        if let Some(text) = change.improved_transcript {
            rows.improved_transcript = Some(text.to_string());
        }
        if let Some(sentences) = change.sentences {
            rows.sentences = Some(sentences.to_vec());
        }
        if let Some(message) = change.error_message {
            rows.error_message = Some(message.to_string());
        }
        if let Some(results) = &change.results {
            rows.attempt_count = results.attempt_count;
            rows.pronunciation_score = results.pronunciation_score;
            rows.is_passed = results.is_passed;
        }
    }
}

/// Receives every delivery in arrival order: a `webhook-id` already processed is a
/// duplicate and changes nothing (the `webhook_events` key); any other is planned
/// against the rows as they stand and written.
fn deliver(history: &History) -> Rows {
    let mut rows = Rows {
        session: SessionState {
            id: SESSION,
            status: history.initial_status,
            sentence_count: Some(history.sentence_count),
            last_event_at: None,
            attempts: Vec::new(),
        },
        improved_transcript: None,
        sentences: Some(sentences(history.sentence_count, 9)),
        error_message: None,
        attempt_count: 0,
        pronunciation_score: None,
        is_passed: false,
        attempt_errors: BTreeMap::new(),
    };
    let mut processed: HashSet<&str> = HashSet::new();
    for (event, id) in &history.deliveries {
        if !processed.insert(id) {
            continue;
        }
        let (second, kind) = &history.events[*event];
        let event = practice_event(*second, kind, &history.attempts);
        let changes = plan_changes(&rows.session, &event);
        write(&mut rows, &changes);
    }
    rows
}

// ---------------------------------------------------------------------------------
// The reference model: CONTRACT.md section 5, distinct events in timestamp order.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Processing,
    Analyzing,
    Completed,
    Failed,
}

impl Status {
    /// `pending → processing → analyzing → completed | failed`, only forward (staying
    /// put is not a move); `completed` and `failed` are both the end.
    fn may_move_to(self, next: Status) -> bool {
        let step = |status: Status| match status {
            Status::Pending => 0,
            Status::Processing => 1,
            Status::Analyzing => 2,
            Status::Completed | Status::Failed => 3,
        };
        self == next || step(next) > step(self)
    }

    fn of(status: SessionStatus) -> Status {
        match status.as_str() {
            "pending" => Status::Pending,
            "processing" => Status::Processing,
            "analyzing" => Status::Analyzing,
            "completed" => Status::Completed,
            _ => Status::Failed,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum ModelAttempt {
    /// Sentence index, score in hundredths, passed, the second it was scored at.
    Scored(usize, i64, bool, usize),
    Failed(String),
}

#[derive(Debug, Clone)]
struct Model {
    sentence_count: usize,
    status: Status,
    improved_transcript: Option<String>,
    sentences: Vec<String>,
    error_message: Option<String>,
    attempts: BTreeMap<usize, ModelAttempt>,
}

impl Model {
    fn run(history: &History) -> Model {
        let mut model = Model {
            sentence_count: history.sentence_count,
            status: Status::of(history.initial_status),
            improved_transcript: None,
            sentences: sentences(history.sentence_count, 9),
            error_message: None,
            attempts: BTreeMap::new(),
        };
        // Distinct events: by webhook-id. A re-sent event (a new id) is applied again.
        let mut distinct: Vec<(usize, &str)> = Vec::new();
        for (event, id) in &history.deliveries {
            if !distinct.iter().any(|(_, seen)| seen == id) {
                distinct.push((*event, id));
            }
        }
        distinct.sort_by_key(|(event, _)| history.events[*event].0);
        for (event, _) in distinct {
            let (second, kind) = &history.events[event];
            model.apply(*second, kind, &history.attempts);
        }
        model
    }

    fn apply(&mut self, second: usize, kind: &Kind, plans: &[AttemptPlan]) {
        match kind {
            Kind::Transcript(text) => self.improved_transcript = Some(text.clone()),
            Kind::Sentences(sentences) => {
                self.sentences = sentences.clone();
                self.move_to(Status::Analyzing);
            }
            Kind::SessionFailed(message) => {
                if self.status.may_move_to(Status::Failed) {
                    self.status = Status::Failed;
                    self.error_message = Some(message.clone());
                }
            }
            Kind::Scored(number, hundredths, passed) => {
                if !matches!(self.attempts.get(number), Some(ModelAttempt::Failed(_))) {
                    let scored =
                        ModelAttempt::Scored(plans[*number].index, *hundredths, *passed, second);
                    self.attempts.insert(*number, scored);
                }
            }
            Kind::AttemptFailed(number, message) => {
                if !matches!(self.attempts.get(number), Some(ModelAttempt::Scored(..))) {
                    self.attempts
                        .insert(*number, ModelAttempt::Failed(message.clone()));
                }
            }
        }
        if self.latest_per_sentence().iter().all(Option::is_some) {
            self.move_to(Status::Completed);
        }
    }

    fn move_to(&mut self, next: Status) {
        if self.status.may_move_to(next) {
            self.status = next;
        }
    }

    /// Each sentence's most recently scored attempt: (score in hundredths, passed).
    fn latest_per_sentence(&self) -> Vec<Option<(i64, bool)>> {
        (0..self.sentence_count)
            .map(|sentence| {
                self.attempts
                    .values()
                    .filter_map(|attempt| match attempt {
                        ModelAttempt::Scored(index, score, passed, second)
                            if *index == sentence =>
                        {
                            Some((*second, *score, *passed))
                        }
                        _ => None,
                    })
                    .max()
                    .map(|(_, score, passed)| (score, passed))
            })
            .collect()
    }

    /// The mean over scored sentences, rounded half away from zero to 2 places.
    fn pronunciation_score(&self) -> Option<Decimal> {
        let scored: Vec<i64> = self
            .latest_per_sentence()
            .into_iter()
            .flatten()
            .map(|(score, _)| score)
            .collect();
        let count = scored.len() as i64;
        (count > 0).then(|| {
            let total: i64 = scored.iter().sum();
            Decimal::new((2 * total + count) / (2 * count), 2)
        })
    }

    fn is_passed(&self) -> bool {
        self.latest_per_sentence()
            .iter()
            .all(|latest| latest.is_some_and(|(_, passed)| passed))
    }
}

fn assert_same(rows: &Rows, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(Status::of(rows.session.status), model.status, "status");
    prop_assert_eq!(&rows.improved_transcript, &model.improved_transcript);
    prop_assert_eq!(rows.sentences.as_ref(), Some(&model.sentences));
    prop_assert_eq!(&rows.error_message, &model.error_message);
    prop_assert_eq!(
        rows.attempt_count as usize,
        model.attempts.len(),
        "attempt_count"
    );
    prop_assert_eq!(
        rows.pronunciation_score,
        model.pronunciation_score(),
        "score"
    );
    prop_assert_eq!(rows.is_passed, model.is_passed(), "is_passed");
    prop_assert_eq!(rows.session.attempts.len(), model.attempts.len());
    for (number, expected) in &model.attempts {
        let id = attempt_id(*number);
        let row = rows.session.attempts.iter().find(|a| a.id == id);
        let row = row.ok_or_else(|| TestCaseError::fail(format!("attempt {number} missing")))?;
        match expected {
            ModelAttempt::Scored(index, score, passed, _) => {
                prop_assert_eq!(row.status, AttemptStatus::Completed);
                prop_assert_eq!(row.sentence_index, Some(*index as i32));
                prop_assert_eq!(row.pronunciation_score, Some(Decimal::new(*score, 2)));
                prop_assert_eq!(row.is_passed, Some(*passed));
            }
            ModelAttempt::Failed(message) => {
                prop_assert_eq!(row.status, AttemptStatus::Failed);
                prop_assert_eq!(rows.attempt_errors.get(&id), Some(message));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(crate::config(5_000))]

    #[test]
    fn deliveries_in_any_order_end_as_the_distinct_events_in_timestamp_order(
        history in history(),
    ) {
        let rows = deliver(&history);
        let model = Model::run(&history);
        assert_same(&rows, &model)?;
    }
}

/// The model itself: a history in timestamp order with no repeats is the model's own
/// walk; one case worked by hand.
#[test]
fn the_model_completes_a_session_once_every_sentence_has_a_score() {
    let attempts = vec![
        AttemptPlan {
            index: 0,
            scored: true,
        },
        AttemptPlan {
            index: 1,
            scored: true,
        },
    ];
    let history = History {
        sentence_count: 2,
        initial_status: SessionStatus::Processing,
        attempts,
        events: vec![
            (0, Kind::Sentences(sentences(2, 0))),
            (1, Kind::Scored(0, 8_000, true)),
            (2, Kind::Scored(1, 6_125, false)),
            (3, Kind::Scored(1, 7_050, true)),
        ],
        deliveries: vec![
            (3, "c".into()),
            (1, "a".into()),
            (0, "s".into()),
            (2, "b".into()),
            (1, "a".into()),
        ],
    };
    let model = Model::run(&history);
    assert_eq!(model.status, Status::Completed);
    // (80.00 + 70.50) / 2 = 75.25; the later score of sentence 1 counts.
    assert_eq!(model.pronunciation_score(), Some(Decimal::new(7_525, 2)));
    assert!(model.is_passed());
    assert_eq!(model.attempts.len(), 2);
    assert_same(&deliver(&history), &model).unwrap();
}

/// Found by the property with session-level events in any order: the session has one
/// `last_event_at` for all its fields, so a `sentences.extracted` that arrives after a
/// newer `transcript.improved` changes nothing, and the sentence list is lost for good
/// (the model keeps both). Fixing it needs a clock per field (a migration and the
/// sessions repository), so it is left to the issue it was reported in.
#[test]
#[ignore = "known: one session clock for every field drops an older sentence list"]
fn a_sentence_list_older_than_an_improved_transcript_is_kept() {
    let history = History {
        sentence_count: 2,
        initial_status: SessionStatus::Processing,
        attempts: vec![AttemptPlan {
            index: 0,
            scored: true,
        }],
        events: vec![
            (0, Kind::Sentences(sentences(2, 1))),
            (1, Kind::Transcript("improved".into())),
        ],
        deliveries: vec![(1, "t".into()), (0, "s".into())],
    };
    assert_same(&deliver(&history), &Model::run(&history)).unwrap();
}
