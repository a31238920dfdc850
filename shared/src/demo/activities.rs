//! The repository of `demo_activities`: the published demo activities, read only.

use uuid::Uuid;

use super::model::{DemoActivity, DemoType};
use crate::db::{self, Db, DbError, Row};

const SELECT_PUBLISHED: &str = "SELECT id, demo_type, language, grade_level, \
     title, description, content, is_published \
     FROM demo_activities WHERE is_published";

fn from_row(row: &Row<'_>) -> Result<DemoActivity, DbError> {
    let demo_type: String = db::column(row, "demo_type")?;
    Ok(DemoActivity {
        id: db::column(row, "id")?,
        demo_type: demo_type
            .parse::<DemoType>()
            .map_err(|error| DbError::Other(format!("demo_activities.demo_type: {error}")))?,
        language: db::column(row, "language")?,
        grade_level: db::column(row, "grade_level")?,
        title: db::column(row, "title")?,
        description: db::column(row, "description")?,
        content: db::column(row, "content")?,
        is_published: db::column(row, "is_published")?,
    })
}

/// Published activities, of one type or all, by type and title.
pub async fn list_published(
    db: &Db,
    demo_type: Option<DemoType>,
) -> Result<Vec<DemoActivity>, DbError> {
    let rows = match demo_type {
        Some(demo_type) => db.query_rows(
            &format!(
                "{SELECT_PUBLISHED} AND demo_type = $1 ORDER BY language, grade_level, title, id"
            ),
            &[db::text(demo_type.as_str())],
        ).await?,
        None => db.query_rows(
            &format!("{SELECT_PUBLISHED} ORDER BY demo_type, language, grade_level, title, id"),
            &[],
        ).await?,
    };
    rows.rows().map(|row| from_row(&row)).collect()
}

/// One published activity.
pub async fn find_published(db: &Db, id: Uuid) -> Result<Option<DemoActivity>, DbError> {
    let rows = db
        .query_rows(&format!("{SELECT_PUBLISHED} AND id = $1"), &[id.into()])
        .await?;
    rows.rows().next().map(|row| from_row(&row)).transpose()
}
