//! Request plumbing shared by every operation: request ids and the access log, the gateway's
//! credential and tenancy checks, JSON bodies (content type, size, syntax with line and
//! column), query strings with repeated keys, and `If-Match` from the header or the query.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::ApiState;
use crate::error::{ApiError, ApiResult, ErrorShape, REQUEST_ID};

/// Bodies larger than this are refused with 413 (a mapping set of a few thousand mappings, or
/// a preview of a few thousand records, stays well below).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// One org × sandbox: every entity belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tenant {
    pub org: String,
    pub sandbox: String,
}

/// Credentials the API accepts: one entry per IMS org.
#[derive(Clone, Default)]
pub struct ApiAuth {
    pub orgs: Vec<OrgCredential>,
}

/// One org's API key and bearer token, already resolved (no `${env:X}` left).
#[derive(Clone)]
pub struct OrgCredential {
    pub org_id: String,
    pub api_key: String,
    pub bearer_token: String,
}

impl std::fmt::Debug for ApiAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let orgs: Vec<&str> = self.orgs.iter().map(|org| org.org_id.as_str()).collect();
        f.debug_struct("ApiAuth").field("orgs", &orgs).finish()
    }
}

impl std::fmt::Debug for OrgCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgCredential")
            .field("org_id", &self.org_id)
            .field("api_key", &"***")
            .field("bearer_token", &"***")
            .finish()
    }
}

/// Sets the request id (the caller's `x-request-id` when it is sane, else a new one), runs the
/// request inside it, echoes it in the response, and writes one structured log line.
pub(crate) async fn request_context(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = request.method().clone();
    // The path only: query strings may carry etags or base64 source params.
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|matched| matched.as_str().to_owned());
    let org = request
        .headers()
        .get("x-gw-ims-org-id")
        .and_then(|value| value.to_str().ok())
        .map(|org| org.chars().take(100).collect::<String>())
        .unwrap_or_default();
    let mut response = REQUEST_ID
        .scope(request_id.clone(), next.run(request))
        .await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    crate::metrics::observe_request(
        method.as_str(),
        route.as_deref().unwrap_or("unmatched"),
        status,
        elapsed,
    );
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    tracing::info!(
        target: "tributary_api::access",
        request_id = %request_id,
        method = %method,
        path = %path,
        route = route.as_deref().unwrap_or(""),
        status,
        duration_ms = format!("{duration_ms:.2}"),
        org = %org,
        "request"
    );
    response
}

/// The gateway checks: `Authorization: Bearer`, `x-api-key`, `x-gw-ims-org-id` against the
/// configured orgs, then `x-sandbox-name`. Puts the [`Tenant`] into the request.
pub(crate) async fn authenticate(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    match check_credentials(&state.inner.auth, request.headers()) {
        Ok(tenant) => {
            request.extensions_mut().insert(tenant);
            next.run(request).await
        }
        Err(err) => err.into_response(),
    }
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

pub(crate) fn check_credentials(auth: &ApiAuth, headers: &HeaderMap) -> ApiResult<Tenant> {
    let Some(authorization) = header_text(headers, "authorization") else {
        return Err(ApiError::gateway(
            StatusCode::FORBIDDEN,
            "403010",
            "Oauth token is missing.",
        ));
    };
    let token = authorization
        .strip_prefix("Bearer ")
        .or_else(|| authorization.strip_prefix("bearer "))
        .map(str::trim)
        .unwrap_or("");
    let Some(api_key) = header_text(headers, "x-api-key") else {
        return Err(ApiError::gateway(
            StatusCode::FORBIDDEN,
            "403000",
            "Api Key is required",
        ));
    };
    let Some(org_id) = header_text(headers, "x-gw-ims-org-id") else {
        return Err(ApiError::gateway(
            StatusCode::BAD_REQUEST,
            "400003",
            "Missing header x-gw-ims-org-id",
        ));
    };
    let Some(credential) = auth
        .orgs
        .iter()
        .find(|org| !token.is_empty() && constant_time_eq(&org.bearer_token, token))
    else {
        return Err(ApiError::gateway(
            StatusCode::UNAUTHORIZED,
            "401013",
            "Oauth token is not valid",
        ));
    };
    if !constant_time_eq(&credential.api_key, api_key) {
        return Err(ApiError::gateway(
            StatusCode::FORBIDDEN,
            "403003",
            "Api Key is invalid",
        ));
    }
    if credential.org_id != org_id {
        return Err(ApiError::gateway(
            StatusCode::FORBIDDEN,
            "403025",
            "Profile is not valid for the org in x-gw-ims-org-id",
        ));
    }
    let Some(sandbox) = header_text(headers, "x-sandbox-name") else {
        return Err(ApiError::flow(
            StatusCode::BAD_REQUEST,
            2105,
            "Bad request",
            "the header x-sandbox-name is missing",
        ));
    };
    let is_valid_sandbox = sandbox.len() <= 64
        && sandbox
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !is_valid_sandbox {
        return Err(ApiError::flow(
            StatusCode::NOT_FOUND,
            2100,
            "Sandbox not found",
            "x-sandbox-name must be a lower-case sandbox name (letters, digits, - and _), e.g. prod",
        ));
    }
    Ok(Tenant {
        org: credential.org_id.clone(),
        sandbox: sandbox.to_owned(),
    })
}

/// Compares secrets without an early exit on the first differing byte.
pub(crate) fn constant_time_eq(expected: &str, given: &str) -> bool {
    let expected = expected.as_bytes();
    let given = given.as_bytes();
    let mut diff = expected.len() ^ given.len();
    for (idx, byte) in expected.iter().enumerate() {
        diff |= usize::from(byte ^ given.get(idx).copied().unwrap_or(0));
    }
    diff == 0
}

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Tenant>().cloned().ok_or_else(|| {
            ApiError::gateway(StatusCode::FORBIDDEN, "403010", "Oauth token is missing.")
        })
    }
}

/// A JSON request body: `Content-Type: application/json` (or `+json`), at most
/// [`MAX_BODY_BYTES`], not empty, syntactically valid.
#[derive(Debug)]
pub struct JsonBody(pub Value);

/// Like [`JsonBody`], but an empty body (with or without a content type) is `None`.
#[derive(Debug)]
pub struct OptionalJsonBody(pub Option<Value>);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        check_content_type(request.headers())?;
        let bytes = read_body(request.into_body()).await?;
        parse_json_body(&bytes).map(JsonBody)
    }
}

impl<S: Send + Sync> FromRequest<S> for OptionalJsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type_check = check_content_type(request.headers());
        let bytes = read_body(request.into_body()).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(None));
        }
        content_type_check?;
        parse_json_body(&bytes).map(|value| OptionalJsonBody(Some(value)))
    }
}

fn check_content_type(headers: &HeaderMap) -> ApiResult<()> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let is_json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if is_json {
        Ok(())
    } else {
        Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            shape: ErrorShape::ContentType,
            message: "A valid content-type must be specified".to_owned(),
            report: serde_json::Map::new(),
        })
    }
}

async fn read_body(body: Body) -> ApiResult<bytes::Bytes> {
    match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => Ok(bytes),
        Err(err) => {
            let is_too_large = std::error::Error::source(&err)
                .map(|source| source.to_string())
                .unwrap_or_else(|| err.to_string())
                .contains("length limit");
            if is_too_large {
                Err(ApiError::flow(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    1406,
                    "Payload too large",
                    format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
                ))
            } else {
                Err(ApiError::bad_request(
                    1405,
                    "the request body could not be read",
                ))
            }
        }
    }
}

fn parse_json_body(bytes: &[u8]) -> ApiResult<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(1405, "the request body is empty"));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Null) => Err(ApiError::bad_request(1405, "the request body is null")),
        Ok(value) => Ok(value),
        Err(err) => {
            let text = err.to_string();
            let reason = match text.rfind(" at line ") {
                Some(idx) => text[..idx].to_owned(),
                None => text,
            };
            Err(ApiError::bad_request(
                1405,
                format!(
                    "the request body is not valid JSON: line {} column {}: {reason}",
                    err.line(),
                    err.column()
                ),
            )
            .with_report("line", Value::from(err.line()))
            .with_report("column", Value::from(err.column())))
        }
    }
}

/// The query string as (key, value) pairs in order, repeated keys kept.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = match raw {
            Some(raw) => url::form_urlencoded::parse(raw.as_bytes())
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect(),
            None => Vec::new(),
        };
        Query { pairs }
    }

    /// The last value of a key (case-sensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value.as_str())
    }

    /// The last value of a key, case-insensitively (`fileType` / `FileType`).
    pub fn get_ci(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, value)| value.as_str())
    }

    pub fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, value)| value.as_str())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Query::parse(parts.uri.query()))
    }
}

/// `If-Match` from the header or, as the older Postman collection sends it, the `if-match`
/// query parameter; `None` when neither is there.
pub fn if_match(headers: &HeaderMap, query: &Query) -> Option<String> {
    header_text(headers, "if-match")
        .map(str::to_owned)
        .or_else(|| query.get_ci("if-match").map(|v| v.trim().to_owned()))
        .filter(|value| !value.is_empty())
}

/// `If-Match` that must be there (400 `FLOW-1403-400` when it is not).
pub fn required_if_match(headers: &HeaderMap, query: &Query) -> ApiResult<String> {
    if_match(headers, query)
        .ok_or_else(|| ApiError::bad_request(1403, "the header 'If-Match' is missing"))
}

/// The etag as the API shows it: a quoted string (`"\"…\""`).
pub fn quoted_etag(etag: &str) -> String {
    format!("\"{etag}\"")
}

/// Strips the quotes (and a weak `W/`) of an etag as sent.
pub fn bare_etag(etag: &str) -> &str {
    let etag = etag.trim();
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    let etag = etag
        .strip_prefix("\\\"")
        .and_then(|rest| rest.strip_suffix("\\\""))
        .unwrap_or(etag);
    etag.strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(etag)
}

/// 404 for any path no operation has, in the Flow Service shape.
pub(crate) async fn no_route(request: Request) -> ApiError {
    ApiError::flow(
        StatusCode::NOT_FOUND,
        1101,
        "Resource not found",
        format!("no operation at {}", request.uri().path()),
    )
}

/// 405 for a known path with a method it does not have.
pub(crate) async fn no_method(request: Request) -> ApiError {
    ApiError::flow(
        StatusCode::METHOD_NOT_ALLOWED,
        1101,
        "Method not allowed",
        format!(
            "{} is not an operation of {}",
            request.method(),
            request.uri().path()
        ),
    )
}
