//! The one error of the console's screens and actions, and what each kind
//! answers: a page in the caller's frame, the login form again, or a plain
//! refusal.

use std::fmt::Display;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::login::login_page;
use crate::console::auth::{self, Caller, LoginError};
use crate::console::view::{self, page};

/// Why a screen or an action stopped short. The kinds shown as a page carry
/// who asked, so the page keeps their navigation (boxed: a `Result` of a
/// page stays small).
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// A change from a session without the session's token.
    #[error("refused: the form's token does not match this session (reload the page)")]
    Forbidden,
    /// A login from an address with too many failures lately.
    #[error("too many failed logins from this address")]
    TooManyLogins,
    #[error("Wrong token.")]
    WrongToken,
    /// A login whose name is empty, too long or not printable.
    #[error("Give your name: up to 64 printable characters.")]
    BadName,
    /// Nothing by that name, or nothing named.
    #[error("{what}")]
    NotFound { caller: Box<Caller>, what: String },
    /// A form the action cannot use; `back` is the form's screen and the
    /// link to it.
    #[error("{message}")]
    BadForm {
        caller: Box<Caller>,
        message: &'static str,
        back: (&'static str, &'static str),
    },
    /// The console's own work failed (the database, the broker).
    #[error("{error}")]
    Failed { caller: Box<Caller>, error: String },
}

impl PageError {
    pub fn not_found(caller: &Caller, what: impl Into<String>) -> PageError {
        PageError::NotFound {
            caller: Box::new(caller.clone()),
            what: what.into(),
        }
    }

    pub fn bad_form(
        caller: &Caller,
        message: &'static str,
        back: (&'static str, &'static str),
    ) -> PageError {
        PageError::BadForm {
            caller: Box::new(caller.clone()),
            message,
            back,
        }
    }

    pub fn failed(caller: &Caller, e: impl Display) -> PageError {
        PageError::Failed {
            caller: Box::new(caller.clone()),
            error: e.to_string(),
        }
    }
}

/// Failures of the work behind a screen, shown to who asked:
/// `audit::recent(..).await.show_to(&caller)?`.
pub trait ShowTo<T> {
    fn show_to(self, caller: &Caller) -> Result<T, PageError>;
}

impl<T, E: Display> ShowTo<T> for Result<T, E> {
    fn show_to(self, caller: &Caller) -> Result<T, PageError> {
        self.map_err(|e| PageError::failed(caller, e))
    }
}

impl From<LoginError> for PageError {
    fn from(e: LoginError) -> PageError {
        match e {
            LoginError::RateLimited => PageError::TooManyLogins,
            LoginError::WrongToken => PageError::WrongToken,
            LoginError::BadName => PageError::BadName,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let text = self.to_string();
        let alert = || html! { div.notice.bad role="alert" { (text) } };
        match &self {
            PageError::Forbidden => (StatusCode::FORBIDDEN, text).into_response(),
            // The answer a bearer token gets from the same limit.
            PageError::TooManyLogins => auth::too_many(),
            PageError::WrongToken => {
                (StatusCode::UNAUTHORIZED, login_page(Some(&text))).into_response()
            }
            PageError::BadName => {
                (StatusCode::BAD_REQUEST, login_page(Some(&text))).into_response()
            }
            PageError::NotFound { caller, .. } => (
                StatusCode::NOT_FOUND,
                page("Not found", "", Some(caller), alert()),
            )
                .into_response(),
            PageError::BadForm { caller, back, .. } => {
                view::outcome(caller, back.0, false, &text, *back)
            }
            PageError::Failed { caller, .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                page("Something failed", "", Some(caller), alert()),
            )
                .into_response(),
        }
    }
}
