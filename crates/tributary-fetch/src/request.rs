//! The request of a run, rendered once from the spec's `urlParams`, `headerParams` and
//! `bodyParams`: templates are filled from the source params, then the auth params, then
//! `${env:X}`, then the schedule window's placeholders. Only the pagination parameters change
//! from page to page; they are added per request by the pager.
//!
//! A query or header parameter whose template needs a schedule value the run does not have (a
//! first backfill run has no `{START_TIME}`; a run without a window has none) is left out, which
//! is how "the first backfill run omits the start" extends to templates.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};
use tributary_spec::{
    HttpMethod, RenderContext, RenderMode, ScheduleParams, ScheduleWindow, SourceSpec, SpecError,
    Template,
};
use url::Url;

use crate::error::{FetchError, Redactor};

/// The rendered request of a run, before pagination.
#[derive(Clone)]
pub struct BaseRequest {
    pub method: reqwest::Method,
    pub url: Url,
    /// `scheme://host:port` of `url`: auth headers go only to this origin.
    pub origin: String,
    /// Spec headers; the flag marks values rendered from auth params or the environment, which
    /// are dropped like auth headers when a pointer leaves the origin.
    pub headers: Vec<(HeaderName, HeaderValue, bool)>,
    pub body: Option<Bytes>,
}

/// What templates may read during a run.
#[derive(Clone, Copy)]
#[allow(missing_debug_implementations)] // Holds auth params (secrets) and a closure; nothing to print.
pub struct RenderInputs<'a> {
    pub source_params: &'a Map<String, Value>,
    /// Auth params with `${env:X}` resolved.
    pub auth_params: &'a Map<String, Value>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub window: Option<&'a ScheduleWindow>,
}

impl std::fmt::Debug for BaseRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values may be credentials: names only. The URL is printed by callers through
        // the redactor, so only the origin and path appear here.
        f.debug_struct("BaseRequest")
            .field("method", &self.method)
            .field("origin", &self.origin)
            .field("path", &self.url.path())
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, _, _)| name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("body_bytes", &self.body.as_ref().map(Bytes::len))
            .finish()
    }
}

/// Renders the request of a run. Adds every query param rendered from a secret to the
/// redactor's list of credential-carrying params.
pub fn render_base_request(
    source: &SourceSpec,
    inputs: &RenderInputs<'_>,
    redactor: &mut Redactor,
) -> Result<BaseRequest, FetchError> {
    let base_ctx = RenderContext::new(inputs.source_params, inputs.auth_params, inputs.env);
    let schedule_values = match (&source.schedule, inputs.window) {
        (Some(schedule), Some(window)) => {
            Some(schedule.values(window, &base_ctx).map_err(spec_error)?)
        }
        _ => None,
    };
    let ctx = match &schedule_values {
        Some(values) => base_ctx.with_schedule(values),
        None => base_ctx,
    };
    let template = &source.request;
    let host = match &template.host {
        Some(host) => host.render(&ctx, RenderMode::Raw).map_err(spec_error)?,
        None => match inputs.auth_params.get("host").and_then(Value::as_str) {
            Some(host) => host.to_owned(),
            None => {
                return Err(FetchError::Spec(
                    "the request has no host: sourceSpec urlParams.host is absent and the base connection has no auth param host".to_owned(),
                ));
            }
        },
    };
    let path = template
        .path
        .render(&ctx, RenderMode::UrlPath)
        .map_err(spec_error)?;
    let joined = if path.is_empty() {
        host.trim().to_owned()
    } else {
        format!(
            "{}/{}",
            host.trim().trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    };
    let mut url = Url::parse(&joined).map_err(|err| {
        FetchError::Spec(format!(
            "urlParams host + path give {:?}, which is not a URL: {err}",
            redactor.text(&joined)
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::Spec(format!(
            "request URL {:?} must use http or https, found {}",
            redactor.url(&url),
            url.scheme()
        )));
    }
    for (name, value_template) in &template.query {
        let Some(value) = render_optional(value_template, &ctx, RenderMode::Raw)? else {
            continue;
        };
        if is_sensitive(value_template, inputs) {
            redactor.add_secret_param(name);
        }
        url.query_pairs_mut().append_pair(name, &value);
    }
    if let (Some(ScheduleParams::Simple { .. }), Some(window), Some(schedule)) =
        (&source.schedule, inputs.window, &source.schedule)
    {
        let pairs = schedule.query_pairs(window);
        url.query_pairs_mut().extend_pairs(pairs);
    }
    let mut headers = Vec::with_capacity(template.headers.len());
    for (name, value_template) in &template.headers {
        let Some(value) = render_optional(value_template, &ctx, RenderMode::Header)? else {
            continue;
        };
        let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            FetchError::Spec(format!(
                "headerParams name {name:?} is not a valid header name"
            ))
        })?;
        let sensitive = is_sensitive(value_template, inputs);
        let mut header_value = HeaderValue::from_str(&value).map_err(|_| {
            FetchError::Spec(format!(
                "headerParams {name}: the rendered value holds a character not allowed in a header"
            ))
        })?;
        header_value.set_sensitive(sensitive);
        headers.push((header_name, header_value, sensitive));
    }
    let body = match (template.method, &template.body) {
        (HttpMethod::Post, Some(body)) => {
            let value = body.render(&ctx).map_err(spec_error)?;
            let bytes = serde_json::to_vec(&value).map_err(|err| {
                FetchError::Spec(format!("bodyParams cannot be serialised: {err}"))
            })?;
            if !headers
                .iter()
                .any(|(name, _, _)| name == http::header::CONTENT_TYPE)
            {
                headers.push((
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                    false,
                ));
            }
            Some(Bytes::from(bytes))
        }
        _ => None,
    };
    let method = match template.method {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Post => reqwest::Method::POST,
    };
    Ok(BaseRequest {
        method,
        origin: origin_of(&url),
        url,
        headers,
        body,
    })
}

/// `scheme://host:port` (port always explicit, so `http://h` and `http://h:80` compare equal).
pub fn origin_of(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    )
}

/// Renders `template`, or `None` when it needs a schedule value this run does not have.
fn render_optional(
    template: &Template,
    ctx: &RenderContext<'_>,
    mode: RenderMode,
) -> Result<Option<String>, FetchError> {
    match template.render(ctx, mode) {
        Ok(value) => Ok(Some(value)),
        Err(SpecError::NoScheduleValue { .. }) => Ok(None),
        Err(err) => Err(spec_error(err)),
    }
}

/// Whether the template reads an auth param (not shadowed by a source param) or the environment.
fn is_sensitive(template: &Template, inputs: &RenderInputs<'_>) -> bool {
    template.env_vars().next().is_some()
        || template.params().any(|name| {
            !inputs.source_params.contains_key(name) && inputs.auth_params.contains_key(name)
        })
}

fn spec_error(err: SpecError) -> FetchError {
    FetchError::Spec(err.to_string())
}

#[cfg(test)]
mod tests;
