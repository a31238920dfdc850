//! One student's data erased on request (contract section 7a):
//! `POST /functions/v1/voice-monitoring/erase` `{"user_id", "include_practice"?,
//! "reason"}`, for admins and `service_role`.
//!
//! The work is one call of `public.erase_student_data`
//! (`sql/migrations/0161_student_erasure.sql`), one statement and so one transaction:
//! token sessions, metrics, errors, the user's rate-limit windows, demo sessions and
//! their interactions deleted; the payloads and raw bodies of deliveries about the
//! user's practice sessions emptied (their ids kept, so a retried delivery is still a
//! duplicate); with `include_practice` the practice sessions and attempts deleted; an
//! audit row with the actor, the reason and the counts. The answer is the count per
//! table. Running it again erases nothing more (every count 0) and writes another
//! audit row. Tests: `tests/integration/tests/data_lifecycle.rs`.

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::{Claims, Role};
use crate::db::{self, Db, ParameterValue};
use crate::error::ApiError;
use crate::monitoring::rollout::audit_reason;

/// The body of `POST /erase`, as sent.
#[derive(Debug, Clone, Deserialize)]
pub struct EraseBody {
    pub user_id: String,
    #[serde(default)]
    pub include_practice: Option<bool>,
    pub reason: String,
}

/// A checked erasure request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EraseRequest {
    pub user_id: Uuid,
    pub include_practice: bool,
    pub reason: String,
}

impl EraseBody {
    /// A UUID for `user_id`, a reason of 1–500 characters.
    pub fn validate(self) -> Result<EraseRequest, ApiError> {
        let user_id = Uuid::parse_str(self.user_id.trim())
            .map_err(|_| ApiError::bad_field("user_id", "user_id must be a UUID"))?;
        let reason = audit_reason(&self.reason)?;
        Ok(EraseRequest {
            user_id,
            include_practice: self.include_practice.unwrap_or(false),
            reason,
        })
    }
}

/// Admins (a signed-in user with `app_metadata.role` admin) and `service_role` may
/// erase; the actor's role as the audit row names it, or `None` for everyone else.
pub fn eraser_role(claims: &Claims) -> Option<&'static str> {
    match claims.role() {
        Role::ServiceRole => Some("service_role"),
        Role::Authenticated if claims.is_admin() => Some("admin"),
        _ => None,
    }
}

/// Erases `request.user_id`'s data as `actor_role` (and `actor_id`, when the token
/// names a user); answers the body of the `200`.
pub async fn erase(
    db: &Db,
    request: &EraseRequest,
    actor_id: Option<Uuid>,
    actor_role: &str,
) -> Result<Value, ApiError> {
    let sql = "SELECT public.erase_student_data($1::uuid, $2, $3, $4::uuid, $5)::text AS result";
    let params = [
        request.user_id.into(),
        db::text(&request.reason),
        ParameterValue::Boolean(request.include_practice),
        actor_id.into(),
        db::text(actor_role),
    ];
    let rows = db.query_one(sql, &params).await?;
    let row = rows
        .rows()
        .next()
        .ok_or_else(|| ApiError::internal("erase_student_data gave no row"))?;
    let result: String = db::column(&row, "result")?;
    let result: Value = serde_json::from_str(&result)
        .map_err(|error| ApiError::internal(format!("erase_student_data's answer: {error}")))?;
    Ok(json!({
        "user_id": request.user_id,
        "include_practice": request.include_practice,
        "erased": result["counts"],
        "audit_id": result["audit_id"],
        "erased_at": result["erased_at"],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Result<EraseRequest, ApiError> {
        crate::http::parse_json::<EraseBody>(value.to_string().as_bytes())?.validate()
    }

    fn claims(role: &str, app_role: Option<&str>) -> Claims {
        Claims {
            sub: Some("6f1c1f0e-8f55-4a4e-9a35-3f7d2b0c9e11".into()),
            role: Some(role.into()),
            app_metadata: match app_role {
                Some(app_role) => json!({"role": app_role}),
                None => json!({}),
            },
            ..Claims::default()
        }
    }

    #[test]
    fn only_admins_and_service_role_erase() {
        assert_eq!(
            eraser_role(&claims("service_role", None)),
            Some("service_role")
        );
        assert_eq!(
            eraser_role(&claims("authenticated", Some("admin"))),
            Some("admin")
        );
        assert_eq!(eraser_role(&claims("authenticated", Some("teacher"))), None);
        assert_eq!(eraser_role(&claims("authenticated", None)), None);
        assert_eq!(eraser_role(&claims("anon", Some("admin"))), None);
    }

    #[test]
    fn a_request_names_a_user_and_a_reason() {
        let request = body(json!({
            "user_id": "6F1C1F0E-8F55-4A4E-9A35-3F7D2B0C9E11",
            "reason": "  parent's request, ticket 12 ",
        }))
        .unwrap();
        assert_eq!(
            request.user_id.to_string(),
            "6f1c1f0e-8f55-4a4e-9a35-3f7d2b0c9e11"
        );
        assert!(!request.include_practice);
        assert_eq!(request.reason, "parent's request, ticket 12");
        let with_practice = body(json!({
            "user_id": "6f1c1f0e-8f55-4a4e-9a35-3f7d2b0c9e11",
            "include_practice": true,
            "reason": "x",
        }))
        .unwrap();
        assert!(with_practice.include_practice);
    }

    #[test]
    fn a_bad_request_is_400_naming_the_field() {
        for (value, field) in [
            (json!({"user_id": "nope", "reason": "x"}), "user_id"),
            (
                json!({"user_id": "6f1c1f0e-8f55-4a4e-9a35-3f7d2b0c9e11", "reason": "  "}),
                "reason",
            ),
            (
                json!({"user_id": "6f1c1f0e-8f55-4a4e-9a35-3f7d2b0c9e11", "reason": "r".repeat(501)}),
                "reason",
            ),
        ] {
            let error = body(value).unwrap_err();
            assert!(
                matches!(&error, ApiError::BadRequest { field: Some(f), .. } if f == field),
                "{error:?}"
            );
        }
        assert_eq!(body(json!({"reason": "x"})).unwrap_err().status(), 400);
        assert_eq!(
            body(json!({"user_id": "6f1c1f0e-8f55-4a4e-9a35-3f7d2b0c9e11", "reason": "x", "include_practice": "yes"}))
                .unwrap_err()
                .status(),
            400
        );
    }
}
