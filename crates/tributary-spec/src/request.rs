//! Rendering a whole `RequestTemplate` for one page: base URL (`urlParams.host`, else the auth
//! param `host`) + path, query pairs, headers and body, each in the right encoding mode.
//!
//! Query values come back unencoded because the HTTP client encodes query components itself;
//! path values are percent-encoded here, since a path is handed over as text. Debug output
//! shows header and query names only: their values may carry keys.

use std::fmt;

use serde_json::Value;

use crate::error::SpecError;
use crate::model::{HttpMethod, RequestTemplate};
use crate::template::{RenderContext, RenderMode, Template};

/// A request with every template rendered.
#[derive(Clone, PartialEq)]
pub struct RenderedRequest {
    pub method: HttpMethod,
    /// Base URL and path, e.g. `https://us6.api.mailchimp.com/3.0/lists/L1/members`. A path
    /// that carries its own `?query` (as in the Zendesk example) keeps it.
    pub url: String,
    /// `queryParams`, rendered but not percent-encoded, in document order.
    pub query: Vec<(String, String)>,
    /// `headerParams`, rendered (line breaks in values are rejected).
    pub headers: Vec<(String, String)>,
    /// `bodyParams` rendered; only POST requests carry one.
    pub body: Option<Value>,
}

impl RequestTemplate {
    /// Renders the request with `ctx` (params, env, schedule values). Errors name the
    /// placeholder or variable that has no value.
    pub fn render(&self, ctx: &RenderContext<'_>) -> Result<RenderedRequest, SpecError> {
        let host = match &self.host {
            Some(host) => host.render(ctx, RenderMode::Raw)?,
            None => {
                let Some(host) = ctx.auth_params.get("host").and_then(Value::as_str) else {
                    return Err(SpecError::MissingHost);
                };
                // The auth param may itself be `${env:...}`.
                Template::parse(host).render(
                    &RenderContext {
                        source_params: ctx.auth_params,
                        ..*ctx
                    },
                    RenderMode::Raw,
                )?
            }
        };
        let path = self.path.render(ctx, RenderMode::UrlPath)?;
        let url = join_url(&host, &path);
        let mut query = Vec::with_capacity(self.query.len());
        for (name, template) in &self.query {
            query.push((name.clone(), template.render(ctx, RenderMode::Raw)?));
        }
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, template) in &self.headers {
            headers.push((name.clone(), template.render(ctx, RenderMode::Header)?));
        }
        let body = match (&self.body, self.method) {
            (Some(body), HttpMethod::Post) => Some(body.render(ctx)?),
            _ => None,
        };
        Ok(RenderedRequest {
            method: self.method,
            url,
            query,
            headers,
            body,
        })
    }
}

impl fmt::Debug for RenderedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |pairs: &[(String, String)]| {
            pairs
                .iter()
                .map(|(name, _)| name.clone())
                .collect::<Vec<_>>()
        };
        f.debug_struct("RenderedRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("query_names", &names(&self.query))
            .field("header_names", &names(&self.headers))
            .field("has_body", &self.body.is_some())
            .finish()
    }
}

/// `host` + `path` with exactly one `/` between them (none added when the path is empty or
/// starts with `?`).
fn join_url(host: &str, path: &str) -> String {
    let host = host.trim_end_matches('/');
    if path.is_empty() || path.starts_with('?') {
        return format!("{host}{path}");
    }
    format!("{host}/{}", path.trim_start_matches('/'))
}

#[cfg(test)]
mod tests;
