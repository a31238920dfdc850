//! The refresh rules: who may refresh a token session, how often, and for how long.
//!
//! Only its owner (`403` otherwise), at most [`MAX_REFRESHES`] times (`429` after), and
//! not once it is [`SESSION_LIFETIME_MINUTES`] old (`410`). Pure: the clock is an
//! argument. The repository repeats the count and age conditions in its `UPDATE`, so
//! that concurrent refreshes cannot exceed them either.

use chrono::{Duration, NaiveDateTime};

use super::Caller;
use super::sessions::TokenSession;
use crate::error::ApiError;

/// Refreshes a session may have.
pub const MAX_REFRESHES: i32 = 5;

/// How long after minting a session may be refreshed.
pub const SESSION_LIFETIME_MINUTES: i32 = 60;

/// `Retry-After` on a session that has used its refreshes: nothing will change for it,
/// so this only paces a client that retries anyway; it should mint a new session.
const EXHAUSTED_RETRY_AFTER_SECS: u64 = 60;

/// Whether the caller owns the session: the same user, or for a session minted
/// anonymously, an anonymous caller with the same client key.
pub fn is_owner(session: &TokenSession, caller: &Caller) -> bool {
    match session.user_id {
        Some(owner) => caller.user_id == Some(owner),
        None => caller.user_id.is_none() && caller.client_key == session.client_key,
    }
}

/// Whether `caller` may refresh `session` at `now` (UTC).
pub fn check_refresh(
    session: &TokenSession,
    caller: &Caller,
    now: NaiveDateTime,
) -> Result<(), ApiError> {
    if !is_owner(session, caller) {
        return Err(ApiError::forbidden(
            "This token session belongs to someone else",
        ));
    }
    if now >= session.created_at + Duration::minutes(SESSION_LIFETIME_MINUTES.into()) {
        return Err(expired());
    }
    if session.refresh_count >= MAX_REFRESHES {
        return Err(exhausted());
    }
    Ok(())
}

/// `410`: the session is too old to refresh.
pub fn expired() -> ApiError {
    ApiError::Gone(format!(
        "This token session is over {SESSION_LIFETIME_MINUTES} minutes old; request a new token"
    ))
}

/// `429`: the session has had all its refreshes.
pub fn exhausted() -> ApiError {
    ApiError::RateLimited {
        retry_after: EXHAUSTED_RETRY_AFTER_SECS,
        message: format!(
            "This token session has been refreshed {MAX_REFRESHES} times, the most allowed; request a new token"
        ),
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::personas::Persona;

    fn at(minutes: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_760_000_000, 0)
            .unwrap()
            .naive_utc()
            + Duration::minutes(minutes)
    }

    fn user(id: u128) -> Caller {
        let user_id = Uuid::from_u128(id);
        Caller {
            user_id: Some(user_id),
            sub: Some(user_id.to_string()),
            role: crate::auth::Role::Authenticated,
            client_key: format!("user:{user_id}"),
            rate: crate::ratelimit::RateCaller::User(user_id),
        }
    }

    fn anonymous(ip: &str) -> Caller {
        Caller {
            user_id: None,
            sub: None,
            role: crate::auth::Role::Anon,
            client_key: format!("ip:{ip}"),
            rate: crate::ratelimit::RateCaller::Anonymous(ip.parse().ok()),
        }
    }

    fn session_of(caller: &Caller, refresh_count: i32) -> TokenSession {
        TokenSession {
            id: Uuid::from_u128(99),
            user_id: caller.user_id,
            client_key: caller.client_key.clone(),
            persona: Persona::StudentTutor,
            language: "en".into(),
            model: "gpt-realtime".into(),
            voice: "ash".into(),
            activity_id: None,
            refresh_count,
            created_at: at(0),
            last_refreshed_at: None,
        }
    }

    #[test]
    fn the_owner_may_refresh_a_young_session() {
        let owner = user(1);
        assert!(check_refresh(&session_of(&owner, 0), &owner, at(1)).is_ok());
        assert!(check_refresh(&session_of(&owner, 4), &owner, at(59)).is_ok());
    }

    #[test]
    fn someone_else_gets_403_even_from_the_same_address() {
        let owner = user(1);
        let error = check_refresh(&session_of(&owner, 0), &user(2), at(1)).unwrap_err();
        assert_eq!(error.status(), 403);
        let mut impostor = anonymous("10.0.0.1");
        impostor.client_key = owner.client_key.clone();
        assert_eq!(
            check_refresh(&session_of(&owner, 0), &impostor, at(1))
                .unwrap_err()
                .status(),
            403
        );
    }

    #[test]
    fn an_anonymous_session_belongs_to_its_client_address_only() {
        let owner = anonymous("10.0.0.1");
        let session = session_of(&owner, 0);
        assert!(check_refresh(&session, &anonymous("10.0.0.1"), at(1)).is_ok());
        assert_eq!(
            check_refresh(&session, &anonymous("10.0.0.2"), at(1))
                .unwrap_err()
                .status(),
            403
        );
        assert_eq!(
            check_refresh(&session, &user(1), at(1))
                .unwrap_err()
                .status(),
            403
        );
    }

    #[test]
    fn the_sixth_refresh_is_429() {
        let owner = user(1);
        let error = check_refresh(&session_of(&owner, 5), &owner, at(1)).unwrap_err();
        assert_eq!(error.status(), 429);
        assert!(!error.headers().is_empty(), "a 429 carries Retry-After");
    }

    #[test]
    fn a_session_sixty_minutes_old_is_410() {
        let owner = user(1);
        assert_eq!(
            check_refresh(&session_of(&owner, 0), &owner, at(60))
                .unwrap_err()
                .status(),
            410
        );
        assert_eq!(
            check_refresh(&session_of(&owner, 5), &owner, at(90))
                .unwrap_err()
                .status(),
            410
        );
    }
}
