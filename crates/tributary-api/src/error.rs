//! Error bodies: the Flow Service problem-details body (`FLOW-nnnn-status`), the API gateway's
//! `{error_code, message}` body, and the documented content-type error. Every body carries the
//! request id; no message ever holds a secret (messages are built from field names and
//! validator diagnostics, which never quote secret values).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tributary_spec::{Diagnostics, Severity};

tokio::task_local! {
    /// The id of the request being handled (set by the request-id middleware).
    pub(crate) static REQUEST_ID: String;
}

/// An error answer of the API.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub shape: ErrorShape,
    /// Lowercase, no trailing period.
    pub message: String,
    /// Extra `report` fields (`id`, `type`, `errors`).
    pub report: Map<String, Value>,
}

/// Which of the documented bodies to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"type": ".../FLOW-<code>-<status>", "title", "status", "report": {...}}`.
    Flow { code: u16, title: &'static str },
    /// `{"error_code": "403010", "message": ...}` (the gateway in front of the service).
    Gateway { error_code: &'static str },
    /// `{"type": "/placeholder/type/uri", "status": 400, "title": "BadRequestError", "detail"}`.
    ContentType,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn flow(
        status: StatusCode,
        code: u16,
        title: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            shape: ErrorShape::Flow { code, title },
            message: message.into(),
            report: Map::new(),
        }
    }

    pub fn gateway(
        status: StatusCode,
        error_code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            shape: ErrorShape::Gateway { error_code },
            message: message.into(),
            report: Map::new(),
        }
    }

    /// 400: a bad request with a Flow Service code.
    pub fn bad_request(code: u16, message: impl Into<String>) -> Self {
        ApiError::flow(StatusCode::BAD_REQUEST, code, "Bad request", message)
    }

    /// 404 `FLOW-1439-404` for a resource id of `kind` (`flows`, `connections`, ...).
    pub fn not_found(kind: &str, id: &str) -> Self {
        let mut err = ApiError::flow(
            StatusCode::NOT_FOUND,
            1439,
            "Resource not found",
            format!("no {kind} with id {id:?} in this org and sandbox"),
        );
        err.report
            .insert("id".to_owned(), Value::String(id.to_owned()));
        err.report
            .insert("type".to_owned(), Value::String(kind.to_owned()));
        err
    }

    /// 400 with every error of a validation, each with its JSON pointer.
    pub fn invalid(code: u16, what: &str, diagnostics: &Diagnostics) -> Self {
        let errors: Vec<Value> = diagnostics
            .iter()
            .filter(|diag| diag.severity == Severity::Error)
            .map(|diag| json!({"path": diag.pointer, "message": diag.message}))
            .collect();
        let summary: Vec<String> = diagnostics
            .iter()
            .filter(|diag| diag.severity == Severity::Error)
            .map(|diag| format!("{}: {}", diag.display_pointer(), diag.message))
            .collect();
        let mut err = ApiError::flow(
            StatusCode::BAD_REQUEST,
            code,
            "Validation error",
            format!("{what} is not valid: {}", summary.join("; ")),
        );
        err.report.insert("errors".to_owned(), Value::Array(errors));
        err
    }

    /// 400 for one field: `{path, message}` in `report.errors` too.
    pub fn field(code: u16, pointer: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut err = ApiError::flow(
            StatusCode::BAD_REQUEST,
            code,
            "Validation error",
            format!(
                "{}: {message}",
                if pointer.is_empty() {
                    "(root)"
                } else {
                    pointer
                }
            ),
        );
        err.report.insert(
            "errors".to_owned(),
            json!([{"path": pointer, "message": message}]),
        );
        err
    }

    /// 500 for a failure of ours (state, a worker thread); the cause is logged, not sent.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, context, "internal error");
        ApiError::flow(
            StatusCode::INTERNAL_SERVER_ERROR,
            1102,
            "Internal server error",
            format!("internal error while {context}"),
        )
    }

    pub fn with_report(mut self, key: &str, value: Value) -> Self {
        self.report.insert(key.to_owned(), value);
        self
    }

    /// The JSON body as sent.
    pub fn body(&self) -> Value {
        let request_id = REQUEST_ID.try_with(Clone::clone).unwrap_or_default();
        match &self.shape {
            ErrorShape::Flow { code, title } => {
                let mut report = Map::new();
                report.insert(
                    "detailed-message".to_owned(),
                    Value::String(self.message.clone()),
                );
                report.insert("request-id".to_owned(), Value::String(request_id));
                for (key, value) in &self.report {
                    report.insert(key.clone(), value.clone());
                }
                json!({
                    "type": format!("https://ns.adobe.com/aep/errors/FLOW-{code}-{}", self.status.as_u16()),
                    "title": title,
                    "status": self.status.as_u16(),
                    "report": report,
                    "errorMessage": self.message,
                })
            }
            ErrorShape::Gateway { error_code } => json!({
                "error_code": error_code,
                "message": self.message,
                "request-id": request_id,
            }),
            ErrorShape::ContentType => json!({
                "type": "/placeholder/type/uri",
                "status": 400,
                "title": "BadRequestError",
                "detail": self.message,
                "request-id": request_id,
            }),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl From<tributary_state::StateError> for ApiError {
    fn from(err: tributary_state::StateError) -> Self {
        ApiError::internal("using state", err)
    }
}
