//! The HTTP server: routes, admission (rate limit, auth, fault numbering) and the fault
//! applications; the page builders of the members endpoints are in `pagination`, the shapes of
//! the answers in `responses`.
//!
//! Every handler is `admit` (token bucket, credentials, request number, latency, injected
//! errors), a synchronous page builder (window -> index range -> envelope bytes, written
//! straight into one buffer sized for the page), then `finish` (hang, body faults, counters).

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::compression::CompressionLayer;

use crate::auth::{AuthState, Denied};
use crate::config::{ErrorRate, Faults, MockConfig, Target};
use crate::dataset::{AVERAGE_RECORD_BYTES, Dataset, RECORD_BUFFER, Timeline, mix64};
use crate::error::MockError;
use crate::query::{BadRequest, Params, looks_secret};
use crate::ratelimit::{Bucket, Decision};
use crate::stats::{Recorder, Stats};

mod pagination;
mod responses;

use pagination::*;
use responses::*;

/// A running mock API. Dropping it stops the server too; [`MockServer::shutdown`] also waits
/// for the server task to end.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<io::Result<()>>,
}

/// Starts a server for `config` on `addr` (a loopback address; port 0 picks a free port).
pub async fn start(config: MockConfig, addr: SocketAddr) -> Result<MockServer, MockError> {
    config.validate()?;
    if !addr.ip().is_loopback() {
        return Err(MockError::Config {
            field: "addr",
            message: format!("{addr} is not a loopback address, expected 127.0.0.1 or ::1"),
        });
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MockError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| MockError::Bind { addr, source })?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let timeline = Timeline::try_new(config.start_time, config.step)?;
    let shared = Arc::new(Shared {
        dataset: Dataset::new(config.seed, timeline),
        auth: AuthState::new(config.auth.clone(), config.seed),
        bucket: config.rate_limit.map(Bucket::new),
        faults: Mutex::new(Arc::new(config.faults.clone())),
        stats: Recorder::new(config.log_capacity.get()),
        base_url: format!("http://{addr}"),
        shutdown: shutdown_rx.clone(),
        config,
    });
    let mut router = Router::new()
        .route(
            "/3.0/lists/{list_id}/members",
            get(offset_members).post(offset_members),
        )
        .route("/page/members", get(page_members).post(page_members))
        .route("/cursor/members", get(cursor_members).post(cursor_members))
        .route(
            "/pointer/members",
            get(pointer_members).post(pointer_members),
        )
        .route("/link/members", get(link_members).post(link_members))
        .route("/all/members", get(all_members).post(all_members))
        .route("/oauth/token", get(oauth_token).post(oauth_token))
        .route("/oauth/test", get(oauth_test))
        .route("/stats", get(stats))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), log_requests))
        .with_state(shared.clone());
    if shared.config.compression {
        router = router.layer(CompressionLayer::new());
    }
    let mut signal = shutdown_rx;
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { wait_for_shutdown(&mut signal).await })
            .await
    });
    tracing::debug!(%addr, "mock api listening");
    Ok(MockServer {
        addr,
        shared,
        shutdown,
        task,
    })
}

impl MockServer {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A snapshot of what the server observed so far.
    pub fn stats(&self) -> Stats {
        self.shared.stats.snapshot()
    }

    /// Replaces the faults; requests admitted from now on see the new ones.
    pub fn set_faults(&self, faults: Faults) -> Result<(), MockError> {
        faults.validate()?;
        *self.shared.lock_faults() = Arc::new(faults);
        Ok(())
    }

    /// Makes every access token issued so far expire now (OAuth2 mode), so the next request
    /// with one gets a 401.
    pub fn expire_access_tokens(&self) {
        self.shared.auth.expire_access_tokens();
    }

    /// The dataset the server serves (for comparing records).
    pub fn dataset(&self) -> Dataset {
        self.shared.dataset
    }

    /// Stops accepting, lets in-flight requests finish (hanging ones end at once), and waits
    /// for the server task.
    pub async fn shutdown(self) -> Result<(), MockError> {
        // send_replace works even when every receiver is gone.
        self.shutdown.send_replace(true);
        match self.task.await {
            Ok(result) => result.map_err(MockError::Serve),
            Err(join_error) => Err(MockError::Serve(io::Error::other(join_error.to_string()))),
        }
    }
}

/// Starts a server, prints `listening on http://ADDR` as one line on stdout, and serves until
/// ctrl-c or SIGTERM.
pub async fn serve_forever(config: MockConfig, addr: SocketAddr) -> Result<(), MockError> {
    let server = start(config, addr).await?;
    {
        use std::io::Write;
        let mut stdout = io::stdout().lock();
        // The line is the contract with scripts that wait for the port; a closed stdout is
        // not a reason to stop serving.
        let _ = writeln!(stdout, "listening on {}", server.base_url());
        let _ = stdout.flush();
    }
    wait_for_signal().await;
    server.shutdown().await
}

/// State shared by every handler.
#[derive(Debug)]
struct Shared {
    config: MockConfig,
    dataset: Dataset,
    auth: AuthState,
    bucket: Option<Bucket>,
    faults: Mutex<Arc<Faults>>,
    stats: Recorder,
    base_url: String,
    shutdown: watch::Receiver<bool>,
}

/// A data request that passed the rate limit and auth.
#[derive(Debug)]
struct Admitted {
    request_no: u64,
    faults: Arc<Faults>,
    rate: Option<Decision>,
    params: Params,
}

/// A built page, before faults damage it.
#[derive(Debug)]
struct Page {
    body: Vec<u8>,
    /// Record offset of the page within its window (what [`Target::Offset`] matches).
    offset: u64,
    n_records: u64,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// How the envelope is shaped (the shape faults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Normal,
    NotAnObject,
    MissingContent,
}

type AppState = Arc<Shared>;

impl Shared {
    fn lock_faults(&self) -> std::sync::MutexGuard<'_, Arc<Faults>> {
        // A poisoned lock only means a panic while swapping an Arc; the Arc is intact.
        self.faults
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The records of the request's schedule window.
    fn window_range(&self, params: &Params) -> Result<Range<u64>, BadRequest> {
        let window = params.window()?;
        Ok(self.dataset.timeline().index_range(
            window.lower_ns,
            window.upper_ns,
            self.config.records,
        ))
    }

    /// A page size parameter: `default` when absent, at least `min`, at most `max_page_size`.
    fn page_size(
        &self,
        params: &Params,
        name: &str,
        default: u64,
        min: u64,
    ) -> Result<u64, BadRequest> {
        let size = params.u64_or(name, default)?;
        let max = u64::from(self.config.max_page_size.get());
        if size < min || size > max {
            return Err(BadRequest(format!(
                "query parameter {name}={size} is out of range, expected {min}..={max}"
            )));
        }
        Ok(size)
    }

    /// An envelope `{"<key>":[records]<trailer>}` (or the shape fault's variant) in one
    /// buffer reserved for the whole page.
    fn envelope(
        &self,
        key: &str,
        shape: Shape,
        records: Range<u64>,
        trailer: impl FnOnce(&mut Vec<u8>),
    ) -> Vec<u8> {
        let count = usize::try_from(records.end - records.start).unwrap_or(0);
        let mut out = Vec::with_capacity(
            count
                .saturating_mul(AVERAGE_RECORD_BYTES)
                .saturating_add(RECORD_BUFFER + 512),
        );
        if shape == Shape::NotAnObject {
            out.push(b'[');
            self.dataset.write_records(records, &mut out);
            out.push(b']');
            return out;
        }
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(key.as_bytes());
        if shape == Shape::MissingContent {
            out.extend_from_slice(b"_moved");
        }
        out.extend_from_slice(b"\":[");
        self.dataset.write_records(records, &mut out);
        out.push(b']');
        trailer(&mut out);
        out.push(b'}');
        out
    }
}

impl Admitted {
    fn hits(&self, target: Option<Target>, offset: u64) -> bool {
        target.is_some_and(|target| target.matches(self.request_no, offset))
    }

    fn shape(&self, offset: u64) -> Shape {
        if self.hits(self.faults.not_an_object, offset) {
            Shape::NotAnObject
        } else if self.hits(self.faults.missing_content, offset) {
            Shape::MissingContent
        } else {
            Shape::Normal
        }
    }
}

async fn oauth_token(
    State(shared): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    Recorder::bump(&shared.stats.token_requests);
    let body: &[u8] = if method == Method::POST { &body } else { b"" };
    let fields = match request_params(&uri, &headers, body) {
        Ok(fields) => fields,
        Err(BadRequest(message)) => return token_error(400, "invalid_request", &message),
    };
    let grant = match shared.auth.refresh(&headers, &fields) {
        Ok(grant) => grant,
        Err(error) => return token_error(error.status, error.error, &error.description),
    };
    Recorder::bump(&shared.stats.refreshes);
    let Some(oauth) = shared.auth.oauth() else {
        return token_error(
            404,
            "invalid_request",
            "this mock api is not configured for oauth2",
        );
    };
    let mut response = serde_json::Map::new();
    response.insert(oauth.fields.access_token.clone(), json!(grant.access_token));
    response.insert(
        oauth.fields.refresh_token.clone(),
        json!(grant.refresh_token),
    );
    response.insert(
        oauth.fields.expires_in.clone(),
        json!(grant.expires_in_secs),
    );
    response.insert("token_type".into(), json!("Bearer"));
    let mut response = json_response(
        StatusCode::OK,
        serde_json::Value::Object(response).to_string().into_bytes(),
        None,
    );
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

async fn oauth_test(State(shared): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    match guard(&shared, &uri, &headers, b"") {
        Ok((_, rate)) => json_response(StatusCode::OK, br#"{"ok":true}"#.to_vec(), rate.as_ref()),
        Err(response) => response,
    }
}

async fn stats(State(shared): State<AppState>) -> Response {
    match serde_json::to_vec(&shared.stats.snapshot()) {
        Ok(body) => json_response(StatusCode::OK, body, None),
        Err(error) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "stats",
            &error.to_string(),
            None,
        ),
    }
}

async fn not_found(method: Method, uri: Uri) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "not found",
        &format!(
            "no endpoint {method} {}; the mock api serves /3.0/lists/{{listId}}/members, /page/members, /cursor/members, /pointer/members, /link/members, /all/members, /oauth/token, /oauth/test and /stats",
            uri.path()
        ),
        None,
    )
}

/// Counts and logs every request but `/stats`, with its status once answered.
async fn log_requests(State(shared): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if path == "/stats" {
        return next.run(request).await;
    }
    Recorder::bump(&shared.stats.requests);
    let carries_credentials = request
        .headers()
        .keys()
        .any(|name| looks_secret(name.as_str()));
    if carries_credentials {
        Recorder::bump(&shared.stats.requests_with_credentials);
    }
    let query = Params::parse(request.uri().query().unwrap_or_default()).redacted();
    let id = shared
        .stats
        .arrive(request.method().to_string(), path, query);
    let response = next.run(request).await;
    shared.stats.complete(id, response.status().as_u16());
    response
}

/// Admission of a data request, then the page, then the faults.
async fn serve_page<F>(
    shared: &Shared,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    build: F,
) -> Response
where
    F: FnOnce(&Shared, &Admitted) -> Result<Page, BadRequest>,
{
    let admitted = match admit(shared, uri, headers, body).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let page = match build(shared, &admitted) {
        Ok(page) => page,
        Err(BadRequest(message)) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "bad request",
                &message,
                admitted.rate.as_ref(),
            );
        }
    };
    finish(shared, &admitted, page).await
}

/// Rate limit, then credentials.
// The Err is the finished refusal, returned to the client at once; boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn guard(
    shared: &Shared,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Params, Option<Decision>), Response> {
    let rate = shared.bucket.as_ref().map(Bucket::take);
    if let Some(decision) = rate.filter(|decision| !decision.admitted) {
        Recorder::bump(&shared.stats.rate_limited);
        let mut response = problem(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests",
            "the rate limit is exhausted; retry after the number of seconds in Retry-After",
            Some(&decision),
        );
        if let Some(secs) = decision.retry_after_secs {
            let value = retry_after_value(shared.config.retry_after_format, secs);
            response.headers_mut().insert("retry-after", value);
        }
        return Err(response);
    }
    let params = request_params(uri, headers, body).map_err(|BadRequest(message)| {
        problem(
            StatusCode::BAD_REQUEST,
            "bad request",
            &message,
            rate.as_ref(),
        )
    })?;
    if let Err(Denied {
        reason,
        www_authenticate,
    }) = shared.auth.check(headers, &params)
    {
        Recorder::bump(&shared.stats.unauthorized);
        let mut response = problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            reason,
            rate.as_ref(),
        );
        response.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static(www_authenticate),
        );
        return Err(response);
    }
    Ok((params, rate))
}

/// The query's fields followed by a POST body's (form-urlencoded, or a JSON object).
fn request_params(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Params, BadRequest> {
    let params = Params::parse(uri.query().unwrap_or_default());
    if body.is_empty() {
        return Ok(params);
    }
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("json"));
    let body_fields = if is_json {
        json_fields(body)
            .ok_or_else(|| BadRequest("the JSON body is not an object of fields".into()))?
    } else {
        Params::parse(&String::from_utf8_lossy(body))
    };
    Ok(params.merged(body_fields))
}

/// [`guard`], then the request number, latency and injected errors.
async fn admit(
    shared: &Shared,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Admitted, Response> {
    let (params, rate) = guard(shared, uri, headers, body)?;
    let request_no = shared
        .stats
        .data_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    let faults = shared.lock_faults().clone();
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if let Some(errors) = faults.server_errors
        && error_hit(errors.rate, shared.config.seed, request_no)
    {
        Recorder::bump(&shared.stats.injected_errors);
        tracing::debug!(
            request_no,
            status = errors.status,
            "injecting a server error"
        );
        let status = StatusCode::from_u16(errors.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut response = problem(
            status,
            "injected fault",
            &format!("request {request_no} fails by fault injection"),
            rate.as_ref(),
        );
        if let Some(retry_after) = errors.retry_after {
            let secs = retry_after.as_secs_f64().ceil() as u64;
            let value = retry_after_value(shared.config.retry_after_format, secs);
            response.headers_mut().insert("retry-after", value);
        }
        return Err(response);
    }
    Ok(Admitted {
        request_no,
        faults,
        rate,
        params,
    })
}

/// Hang, count, then damage the body if a fault says so.
async fn finish(shared: &Shared, admitted: &Admitted, page: Page) -> Response {
    if admitted.hits(admitted.faults.hang, page.offset) {
        tracing::debug!(
            request_no = admitted.request_no,
            offset = page.offset,
            "hanging until shutdown"
        );
        let mut signal = shared.shutdown.clone();
        wait_for_shutdown(&mut signal).await;
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down",
            "the server stopped while this request hung",
            None,
        );
    }
    let stats = &shared.stats;
    stats
        .records_served
        .fetch_add(page.n_records, std::sync::atomic::Ordering::Relaxed);
    stats
        .bytes_served
        .fetch_add(page.body.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let Page {
        mut body,
        offset,
        headers,
        ..
    } = page;
    let mut response = if admitted.hits(admitted.faults.malformed, offset) {
        tracing::debug!(
            request_no = admitted.request_no,
            offset,
            "serving malformed JSON"
        );
        body.truncate(body.len() / 2);
        json_response(StatusCode::OK, body, admitted.rate.as_ref())
    } else if admitted.hits(admitted.faults.truncate, offset) {
        tracing::debug!(
            request_no = admitted.request_no,
            offset,
            "truncating the body"
        );
        truncated_response(body, admitted.rate.as_ref())
    } else {
        json_response(StatusCode::OK, body, admitted.rate.as_ref())
    };
    for (name, value) in headers {
        response.headers_mut().insert(name, value);
    }
    response
}

fn error_hit(rate: ErrorRate, seed: u64, request_no: u64) -> bool {
    match rate {
        ErrorRate::EveryNth(every) => request_no.is_multiple_of(every.get()),
        ErrorRate::Ratio(ratio) => {
            let draw = mix64(seed ^ request_no.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            (draw as f64) < ratio * (u64::MAX as f64)
        }
    }
}

/// The fields of a JSON object body as params (strings as they are, other scalars as JSON).
fn json_fields(body: &[u8]) -> Option<Params> {
    let serde_json::Value::Object(object) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    let mut encoded = String::new();
    for (name, value) in object {
        let text = match value {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        };
        if !encoded.is_empty() {
            encoded.push('&');
        }
        crate::query::encode_component(&name, &mut encoded);
        encoded.push('=');
        crate::query::encode_component(&text, &mut encoded);
    }
    Some(Params::parse(&encoded))
}

/// Appends `text` as a JSON string literal.
fn write_json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for byte in text.bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(b"0123456789abcdef"[usize::from(byte >> 4)]);
                out.push(b"0123456789abcdef"[usize::from(byte & 0xf)]);
            }
            _ => out.push(byte),
        }
    }
    out.push(b'"');
}

async fn wait_for_shutdown(signal: &mut watch::Receiver<bool>) {
    loop {
        if *signal.borrow_and_update() {
            return;
        }
        // A dropped sender (the MockServer was dropped) also means stop.
        if signal.changed().await.is_err() {
            return;
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // Without a ctrl-c handler only SIGTERM (or the process ending) stops us.
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
