//! What a fetch needs: the [`FetchPlan`] of one run (rendered request, pagination, records,
//! auth, window, resume point) and the [`FetchContext`] every run of the process shares (HTTP
//! client, limiters, [`FetchSettings`]).

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tributary_spec::{EndPageIndex, FlowBundle, Pagination, ScheduleWindow, SourceSpec};

use crate::auth::{Auth, AuthRegistry, TokenCallback};
use crate::budget::MemoryBudget;
use crate::error::{FetchError, Redactor};
use crate::limit::{CredentialFingerprint, HostLimiter, Limiters, RateQuota};
use crate::page::{NextPage, Position, WindowPosition};
use crate::records::{AttrFilter, ExplodeSelector, RecordPath, RecordSelector};
use crate::request::{BaseRequest, RenderInputs, origin_of, render_base_request};
use crate::retry::RetryPolicy;

/// Settings of the fetcher that are not in the spec.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// Per-request timeout, from connecting to the end of the body.
    pub request_timeout: Duration,
    /// A body larger than this fails with [`FetchError::TooLarge`].
    pub max_response_bytes: u64,
    pub retry: RetryPolicy,
    /// Pages buffered between the fetcher and its consumer.
    pub channel_capacity: usize,
    /// The quota of every origin without an entry in `host_quotas`.
    pub quota: Option<RateQuota>,
    /// Quotas per host (config `[limits.hosts."HOST"]`): a key is a host (`api.example.com`) or
    /// a host and port (`127.0.0.1:8080`), matched case-insensitively; `host:port` wins over
    /// `host`. The quota applies to each (origin, credential) limiter of that host.
    pub host_quotas: BTreeMap<String, RateQuota>,
    /// The longest wait a `Retry-After` or rate-limit reset may ask for; a longer one fails
    /// the request with [`FetchError::WaitTooLong`] (config `limits.max_wait_secs`).
    pub max_wait: Duration,
}

/// What runs share: the HTTP client (connection pool), the limiter registry and the budget of
/// pages in flight.
#[derive(Debug, Clone)]
pub struct FetchContext {
    pub client: reqwest::Client,
    pub limiters: Limiters,
    pub settings: FetchSettings,
    /// OAuth2 token states shared by every run of this context, per grant: runs with the same
    /// credential refresh once, and a rotated refresh token is never spent twice.
    pub auths: AuthRegistry,
    /// When set, every page acquires its size (records, plus the raw body when kept) before it
    /// goes into a run's channel, and holds it until the consumer drops the page; so pages
    /// buffered across every run of the process stay under this budget.
    pub page_budget: Option<MemoryBudget>,
}

/// One run's fetch: the rendered request, pagination, records, auth, window and resume point.
#[derive(Debug, Clone)]
pub struct FetchPlan {
    pub request: BaseRequest,
    pub pagination: Pagination,
    pub selector: RecordSelector,
    pub auth: Auth,
    pub window: Option<ScheduleWindow>,
    /// Resume after this position instead of starting at the first page.
    pub start: Option<Position>,
    /// The most pages of OFFSET / PAGE in flight at once (`1`: one after another). `None`: the
    /// concurrency adapts from 1 up to [`crate::DEFAULT_CONCURRENCY_CEILING`].
    pub max_concurrent_requests: Option<NonZeroU32>,
    /// Keep each page's raw body in [`crate::Page::body`] (explore shows the page as the source sent
    /// it); off by default, so a page holds its records only once.
    pub keep_raw_bodies: bool,
    pub(crate) paths: PagingPaths,
    pub(crate) redactor: Redactor,
}

/// The JSONPaths pagination reads from each page.
#[derive(Debug, Clone, Default)]
pub(crate) struct PagingPaths {
    pub(crate) pointer: Option<RecordPath>,
    pub(crate) token: Option<RecordPath>,
    pub(crate) end_condition: Option<(RecordPath, Value)>,
}

/// Secret values shorter than this are not masked in stored URLs (they would match everywhere).
const MIN_MASKED_SECRET_LEN: usize = 4;

/// The default of [`FetchSettings::max_wait`]: 15 minutes.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(15 * 60);

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("tributary/", env!("CARGO_PKG_VERSION"));

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(60),
            max_response_bytes: 256 * 1024 * 1024,
            retry: RetryPolicy::default(),
            channel_capacity: 4,
            quota: None,
            host_quotas: BTreeMap::new(),
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

impl FetchSettings {
    /// The quota for requests to `url`: its `host:port` entry, else its host's, else `quota`.
    pub fn quota_for(&self, url: &url::Url) -> Option<RateQuota> {
        let Some(host) = url.host_str() else {
            return self.quota;
        };
        let entry = |key: &str| {
            self.host_quotas
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(key))
                .map(|(_, quota)| *quota)
        };
        let with_port = url
            .port_or_known_default()
            .and_then(|port| entry(&format!("{host}:{port}")));
        with_port.or_else(|| entry(host)).or(self.quota)
    }
}

impl FetchContext {
    /// A context with a new HTTP client and the given limiter registry.
    pub fn try_new(limiters: Limiters, settings: FetchSettings) -> Result<Self, FetchError> {
        Ok(Self {
            client: http_client()?,
            limiters,
            settings,
            auths: AuthRegistry::new(),
            page_budget: None,
        })
    }
}

impl FetchContext {
    /// The limiter of `url`'s origin and `credential`, created with the quota the settings give
    /// that host.
    pub(crate) fn limiter(
        &self,
        url: &url::Url,
        credential: CredentialFingerprint,
    ) -> Arc<HostLimiter> {
        self.limiters
            .limiter(&origin_of(url), credential, self.settings.quota_for(url))
    }

    /// `plan` with its auth swapped for the one this context shares for its OAuth2 grant (see
    /// [`AuthRegistry::share`]); [`crate::fetch_pages`] does this itself, so calling it first is
    /// only needed to share before the fetch starts.
    pub fn share_auth(&self, mut plan: FetchPlan) -> FetchPlan {
        plan.auth = self.auths.share(&plan.auth);
        plan
    }

    /// Holds every page's bytes against `budget` while it is buffered (see
    /// [`FetchContext::page_budget`]).
    pub fn with_page_budget(mut self, budget: MemoryBudget) -> Self {
        self.page_budget = Some(budget);
        self
    }
}

/// The HTTP client of the fetcher: rustls with the ring provider, gzip/deflate/brotli,
/// `User-Agent: tributary/<version>`, no automatic redirects.
pub fn http_client() -> Result<reqwest::Client, FetchError> {
    // Installing twice fails harmlessly: another part of the process installed it first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        // Redirects are followed by the fetcher, which knows which headers are credentials and
        // where they may go; the client's policy would carry them to any host.
        .redirect(reqwest::redirect::Policy::none())
        .gzip(true)
        .deflate(true)
        .brotli(true)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|err| {
            FetchError::Spec(format!(
                "cannot build the http client: {}",
                err.without_url()
            ))
        })
}

impl FetchPlan {
    /// The plan of a run of `source` with `auth`; templates are rendered now.
    pub fn try_new(
        source: &SourceSpec,
        auth: Auth,
        inputs: &RenderInputs<'_>,
    ) -> Result<Self, FetchError> {
        let mut redactor = auth.redactor().clone();
        let request = render_base_request(source, inputs, &mut redactor)?;
        let selector = selector_of(source)?;
        let paths = PagingPaths::of(&source.pagination)?;
        Ok(Self {
            request,
            pagination: source.pagination.clone(),
            selector,
            auth,
            window: inputs.window.copied(),
            start: None,
            max_concurrent_requests: None,
            keep_raw_bodies: false,
            paths,
            redactor,
        })
    }

    /// The plan of a flow bundle's run: auth params with `${env:X}` resolved through `env`,
    /// OAuth2 rotations reported to `on_rotate`, the flow's `maxConcurrentRequests`.
    pub fn from_bundle(
        bundle: &FlowBundle,
        window: Option<ScheduleWindow>,
        env: &dyn Fn(&str) -> Option<String>,
        on_rotate: Option<TokenCallback>,
    ) -> Result<Self, FetchError> {
        let auth_params = bundle
            .base
            .resolved_params(env)
            .map_err(|err| FetchError::Spec(err.to_string()))?;
        let auth = Auth::try_new(
            &bundle.auth_spec,
            &auth_params,
            &bundle.base.secret_fields,
            on_rotate,
        )?;
        let inputs = RenderInputs {
            source_params: &bundle.source.params,
            auth_params: &auth_params,
            env,
            window: window.as_ref(),
        };
        let mut plan = Self::try_new(&bundle.connection_spec.source, auth, &inputs)?;
        plan.max_concurrent_requests = bundle.options.max_concurrent_requests;
        Ok(plan)
    }

    /// Continue after `position` (a checkpoint of an earlier, interrupted run of this window).
    pub fn resume_from(mut self, position: Position) -> Self {
        self.start = Some(position);
        self
    }

    /// At most `n` pages of OFFSET / PAGE in flight (`1`: one after another); the concurrency
    /// still adapts below `n`.
    pub fn with_max_concurrent_requests(mut self, n: NonZeroU32) -> Self {
        self.max_concurrent_requests = Some(n);
        self
    }

    /// Keep every page's raw body in [`crate::Page::body`].
    pub fn with_raw_bodies(mut self) -> Self {
        self.keep_raw_bodies = true;
        self
    }

    /// The paths read from a page's envelope (next pointer, continuation token, end condition).
    pub(crate) fn envelope_paths(&self) -> Vec<&RecordPath> {
        [
            self.paths.pointer.as_ref(),
            self.paths.token.as_ref(),
            self.paths.end_condition.as_ref().map(|(path, _)| path),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Whether pages may be located in place ([`RecordSelector::locate_in_place`]): nothing
    /// needs the body as it came, neither the page's consumer (raw bodies) nor an envelope path
    /// that reads inside the records.
    pub(crate) fn locates_in_place(&self) -> bool {
        let content = self.selector.content_path();
        !self.keep_raw_bodies
            && !self
                .envelope_paths()
                .iter()
                .any(|path| path.reaches_into(content))
    }

    /// `url` as a [`Position`] may hold it: each secret auth param value in it (as is or
    /// form-encoded) is replaced by a marker naming the param, which
    /// [`FetchPlan::resolved_url`] fills back in from the plan's own params, so a next-page URL
    /// that echoes an API key is checkpointed without the key. Any other secret (a refreshed
    /// token) cannot be filled back in and is masked for good.
    pub fn stored_url(&self, url: &str) -> String {
        let mut stored = url.to_owned();
        for (name, secret) in self.auth.named_secrets() {
            let value = secret.expose();
            if value.len() < MIN_MASKED_SECRET_LEN {
                continue;
            }
            stored = stored.replace(value, &format!("{{{{secret:{name}}}}}"));
            let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
            if encoded != value {
                stored = stored.replace(&encoded, &format!("{{{{urlsecret:{name}}}}}"));
            }
        }
        self.redactor.text(&stored)
    }

    /// A URL of a [`Position`] with its secret markers filled in from this plan's auth params.
    pub fn resolved_url(&self, stored: &str) -> Result<String, FetchError> {
        let mut url = stored.to_owned();
        for (name, secret) in self.auth.named_secrets() {
            let encoded: String =
                url::form_urlencoded::byte_serialize(secret.expose().as_bytes()).collect();
            url = url
                .replace(&format!("{{{{secret:{name}}}}}"), secret.expose())
                .replace(&format!("{{{{urlsecret:{name}}}}}"), &encoded);
        }
        if let Some(start) = url.find("{{secret:").or_else(|| url.find("{{urlsecret:")) {
            let marker: String = url[start..].chars().take_while(|c| *c != '}').collect();
            return Err(FetchError::Spec(format!(
                "the resume position's next URL needs the auth param {:?}, which this base connection does not have",
                marker.split(':').nth(1).unwrap_or_default()
            )));
        }
        Ok(url)
    }

    /// Scrubs secrets of this plan out of text.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The first position of a run of this plan.
    pub fn start_position(&self) -> Position {
        let next = match &self.pagination {
            Pagination::Offset { .. } => NextPage::Offset { offset: 0 },
            Pagination::Page {
                initial_index,
                end_index,
                ..
            } => NextPage::Page {
                index: *initial_index,
                end: match end_index {
                    Some(EndPageIndex::Literal(end)) => Some(*end),
                    _ => None,
                },
            },
            _ => NextPage::Start,
        };
        Position {
            next,
            requests: 0,
            pages: 0,
            window: self.window.map(WindowPosition::from),
        }
    }
}

fn selector_of(source: &SourceSpec) -> Result<RecordSelector, FetchError> {
    let content = &source.content;
    let filter = |keep: &Vec<String>, skip: &Vec<String>| {
        AttrFilter::new((!keep.is_empty()).then(|| keep.clone()), skip.clone())
    };
    let explode = match &source.explode {
        Some(explode) => Some(ExplodeSelector::try_new(
            RecordPath::parse(explode.path.as_str())?,
            filter(&explode.keep, &explode.skip),
            explode.wrapper.clone(),
        )?),
        None => None,
    };
    Ok(
        RecordSelector::new(RecordPath::parse(content.path.as_str())?)
            .with_filter(filter(&content.keep, &content.skip))
            .with_wrapper(content.wrapper.clone())
            .with_explode(explode),
    )
}

impl PagingPaths {
    fn of(pagination: &Pagination) -> Result<Self, FetchError> {
        Ok(match pagination {
            Pagination::Pointer { pointer_path, .. } => Self {
                pointer: Some(RecordPath::parse(pointer_path.as_str())?),
                ..Self::default()
            },
            Pagination::ContinuationToken { token_path, .. } => Self {
                token: Some(RecordPath::parse(token_path.as_str())?),
                ..Self::default()
            },
            Pagination::Offset {
                end_condition: Some(end),
                ..
            } => Self {
                end_condition: Some((RecordPath::parse(end.path.as_str())?, end.value.clone())),
                ..Self::default()
            },
            _ => Self::default(),
        })
    }
}

#[cfg(test)]
mod tests;
