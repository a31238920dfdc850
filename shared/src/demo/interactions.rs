//! The repository of `demo_interactions`: what happened in a demo session, appended in
//! batches.
//!
//! A batch is one `INSERT … SELECT` over `jsonb_to_recordset`: one statement, so all
//! of its rows are stored or none, and conditional on the session being active and the
//! caller's, so a batch that races an end stores nothing.

use serde_json::{Value, json};
use uuid::Uuid;

use super::model::SessionStatus;
use super::requests::NewInteraction;
use crate::db::{self, Db, DbError};

/// Appends `items` to an active session of `student_id`. Returns how many rows were
/// stored: `items.len()`, or `0` when the session is not (or no longer) active.
pub async fn insert_batch(
    db: &Db,
    session_id: Uuid,
    student_id: Uuid,
    items: &[NewInteraction],
) -> Result<u64, DbError> {
    let records: Vec<Value> = items
        .iter()
        .map(|item| {
            json!({
                "id": Uuid::new_v4(),
                "interaction_type": item.interaction_type.as_str(),
                "transcript": item.transcript,
                "words": item.words,
                "payload": item.payload,
            })
        })
        .collect();
    db.execute(
        "INSERT INTO demo_interactions \
           (id, demo_session_id, interaction_type, transcript, words, payload) \
         SELECT item.id, session.id, item.interaction_type, item.transcript, item.words, item.payload \
         FROM demo_voice_sessions AS session \
         CROSS JOIN jsonb_to_recordset($3) \
           AS item(id uuid, interaction_type text, transcript text, words jsonb, payload jsonb) \
         WHERE session.id = $1 AND session.student_id = $2 AND session.status = $4",
        &[
            session_id.into(),
            student_id.into(),
            db::jsonb(&Value::Array(records)),
            db::text(SessionStatus::Active.as_str()),
        ],
    ).await
}
