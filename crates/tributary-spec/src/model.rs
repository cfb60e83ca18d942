//! The typed, validated spec model: what every other crate codes against.
//!
//! Values of these types only come out of the validators in `validate` (or are built by hand in
//! tests), so code downstream never re-checks them: a `Pagination::Offset` always has an offset
//! parameter name and a non-zero page size, a `FlowSchedule` with `Frequency::Minute` always has
//! an interval of at least 15, a `Template` is already split into literal text and placeholders.
//!
//! `Template`, `DateFormat` and `JsonPath` are defined in their own modules (`template`,
//! `date_format`, `json_path`) and re-exported here because they are part of the model.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub use crate::date_format::DateFormat;
pub use crate::json_path::JsonPath;
pub use crate::template::{JsonTemplate, Template};

/// The id of the built-in flow spec `RestStorageToAEP`, used by every batch SSS source.
pub const REST_STORAGE_TO_AEP_FLOW_SPEC_ID: &str = "6499120c-0b15-42dc-936e-847ea3c24d72";
/// The id of the built-in target connection spec "Data Lake".
pub const DATA_LAKE_TARGET_SPEC_ID: &str = "c604ff05-7f1a-43c0-8e18-33bf874cb11c";
/// The `providerId` of generic REST / SSS connection specs and of the flow spec.
pub const GENERIC_REST_PROVIDER_ID: &str = "0ed90a81-07f4-4586-8190-b40eccef1c5a";
/// Default cap on requests per run when `maximumRequest` is absent (reference §2.4).
pub const DEFAULT_MAXIMUM_REQUESTS: u32 = 10_000;

/// A validated connection spec (reference §1): how to authenticate and how to fetch records.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSpec {
    /// `id`, assigned by the server; absent in a spec file that was never registered.
    pub id: Option<String>,
    pub name: String,
    /// `type`, `"generic-rest"` for batch SSS specs.
    pub kind: Option<String>,
    pub description: Option<String>,
    pub provider_id: Option<String>,
    /// `version`, `"1.0"` when absent.
    pub version: String,
    /// `authSpec[]`, in document order; never empty.
    pub auth_specs: Vec<AuthSpec>,
    pub source: SourceSpec,
    /// `exploreSpec`, kept as given (the docs' `"http: //json-schema"` typo is tolerated).
    pub explore: Option<Value>,
    /// The whole document as given, for the API to echo back.
    pub raw: Value,
}

/// One entry of `authSpec[]` (reference §1.3).
#[derive(Debug, Clone, PartialEq)]
pub struct AuthSpec {
    /// Display name, e.g. `"Basic Authentication"`.
    pub name: String,
    /// The `type` as written, e.g. `"BasicAuthentication"`, `"OAuth2RefreshCode"`, `"KeyBased"`.
    pub type_name: String,
    pub kind: AuthKind,
    /// `spec`: the draft-07 JSON schema of the base connection's `auth.params`.
    pub params_schema: Value,
    /// Properties whose values are secrets: `format: "password"` in the schema, plus
    /// `password`, `accessToken`, `refreshToken`, `clientSecret` and every API key property.
    pub secret_fields: Vec<String>,
}

/// The closed set of auth types SSS defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthKind {
    /// `BasicAuthentication`: `Authorization: Basic base64(username:password)`.
    Basic,
    /// `OAuth2RefreshCode`: `Authorization: Bearer <accessToken>`, refreshed through
    /// `accessTokenUrl`. The names used in the token exchange come from the base connection's
    /// `requestParameterOverride` param; see [`TokenRequestNames::from_params`].
    OAuth2RefreshCode,
    /// `KeyBased`: every key property sent in a header (`restAttributes.headerParamName`, else
    /// a header named after the property).
    KeyBased { keys: Vec<ApiKeyPlacement> },
}

/// Where one API key goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyPlacement {
    /// The auth param holding the key, e.g. `authKey1`.
    pub property: String,
    /// The HTTP header it is sent in, e.g. `X-Auth-Key1`.
    pub header_name: String,
}

/// Field and parameter names of the OAuth2 token exchange, after `requestParameterOverride`
/// (reference §1.3; defaults are the "\[inferred\]" proposal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequestNames {
    /// Name of the access-token field in the token response (default `access_token`).
    pub access_token_field: String,
    /// Name of the refresh-token field (default `refresh_token`).
    pub refresh_token_field: String,
    /// Name of the expires-in field (default `expires_in`).
    pub expire_in_field: String,
    /// HTTP method of the token call (default POST).
    pub method: HttpMethod,
    /// Name of the client-id parameter in the token request (default `client_id`).
    pub client_id_param: String,
    /// Name of the client-secret parameter (default `client_secret`).
    pub client_secret_param: String,
}

/// `sourceSpec` (reference §2): the request definition. For a shape (a) spec it is read from
/// `sourceSpec.attributes`; for Adobe's generic REST template (shape b) from the source
/// connection's params, with the same rules.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSpec {
    pub request: RequestTemplate,
    /// `contentPath`: where the records are in a response page.
    pub content: ContentPath,
    /// `explodeEntityPath`: a sub-array of each record to flatten into rows.
    pub explode: Option<ContentPath>,
    pub pagination: Pagination,
    pub schedule: Option<ScheduleParams>,
    /// JSON schema of the source connection's `params`: `sourceSpec.spec`, or
    /// `sourceSpec.attributes.spec`, or the merge of both when both are given.
    pub params_schema: Option<Value>,
    /// `sourceSpec.attributes.schema` (or `sourceSpec.schema`): custom JSON schema of the records.
    pub record_schema: Option<Value>,
}

/// The request of one page, before templating (`urlParams`, `headerParams`, `bodyParams`).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestTemplate {
    /// `urlParams.host`; when absent the auth param `host` is the URL prefix.
    pub host: Option<Template>,
    /// `urlParams.path`.
    pub path: Template,
    pub method: HttpMethod,
    /// `urlParams.queryParams`, in document order (object or legacy `a=b,c=${d}` string).
    pub query: Vec<(String, Template)>,
    /// `headerParams`, in document order.
    pub headers: Vec<(String, Template)>,
    /// `bodyParams`, sent only with POST; every string in it is a template.
    pub body: Option<JsonTemplate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    Get,
    Post,
}

/// `contentPath` or `explodeEntityPath` (reference §2.3), from either the string or the object shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentPath {
    /// JSONPath to the array of records, e.g. `$.members`.
    pub path: JsonPath,
    /// `keepAttributes`: whitelist of top-level keys (empty = keep all).
    pub keep: Vec<String>,
    /// `skipAttributes`: blacklist of top-level keys.
    pub skip: Vec<String>,
    /// `overrideWrapperAttribute`.
    pub wrapper: Option<String>,
}

/// `paginationParams` (reference §2.4). `maximumRequest` and `delayRequestMillis` are accepted
/// on every type ([`PagingCommon`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Pagination {
    /// `OFFSET`: offset starts at 0 and grows by `limit` after each page.
    Offset {
        limit_name: String,
        limit: NonZeroU32,
        /// `offSetName` / `offsetName`.
        offset_name: String,
        end_condition: Option<EndCondition>,
        common: PagingCommon,
    },
    /// `POINTER`: the next page's URL (absolute) or parameter is read from the response.
    Pointer {
        limit_name: Option<String>,
        limit: Option<NonZeroU32>,
        /// `pointerPath` / `pointerName`, normalised to a JSONPath (`paging.next` -> `$.paging.next`).
        pointer_path: JsonPath,
        common: PagingCommon,
    },
    /// `CONTINUATION_TOKEN`: a token read from the response is sent with the next request.
    ContinuationToken {
        limit_name: Option<String>,
        limit: Option<NonZeroU32>,
        /// `continuationTokenPath`.
        token_path: JsonPath,
        /// `parameterType`: `QUERYPARAM` or `HEADERPARAM` (default query).
        placement: TokenPlacement,
        /// `parameterName`, e.g. `page[after]`.
        parameter_name: String,
        common: PagingCommon,
    },
    /// `PAGE`: a page-number parameter from `initialPageIndex` up.
    Page {
        limit_name: Option<String>,
        limit: Option<NonZeroU32>,
        /// `pageParamName`.
        page_param: String,
        /// `initialPageIndex`, default 0.
        initial_index: u64,
        end_index: Option<EndPageIndex>,
        common: PagingCommon,
    },
    /// `LINK` (our extension): follow the RFC 8288 `Link: <…>; rel="next"` response header.
    Link {
        limit_name: Option<String>,
        limit: Option<NonZeroU32>,
        common: PagingCommon,
    },
    /// `NONE`: one request returns everything.
    None { common: PagingCommon },
}

/// Settings every pagination type accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagingCommon {
    /// `maximumRequest`, default [`DEFAULT_MAXIMUM_REQUESTS`].
    pub maximum_requests: NonZeroU32,
    /// `delayRequestMillis`: pause between two requests of a run.
    pub delay: Option<Duration>,
}

/// `endConditionName` + `endConditionValue`: paging stops when the value at `path` equals `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct EndCondition {
    pub path: JsonPath,
    /// The literal after `Const:`, typed: `Const:false` -> `false`, `Const:0` -> `0`,
    /// `Const:done` -> `"done"`, `Const:null` -> `null`.
    pub value: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPlacement {
    Query,
    Header,
}

/// `endPageIndex`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndPageIndex {
    /// A literal last page number.
    Literal(u64),
    /// A response header holding the last page number: `headers.x-pagecount` -> `x-pagecount`.
    Header(String),
}

/// `scheduleParams` of a connection spec (reference §2.5).
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleParams {
    /// Two query parameters carry the window start and end.
    Simple {
        start_param: String,
        end_param: String,
        start_format: DateFormat,
        end_format: DateFormat,
    },
    /// `type: "ADVANCE"`: `{SCHEDULE_QUERY}` is replaced by `incremental` (or `backfill` on the
    /// first backfill run), in which `{START_TIME}` / `{END_TIME}` are formatted with `format`.
    Advance {
        format: DateFormat,
        incremental: Template,
        backfill: Template,
    },
}

/// A validated RestStorageToAEP flow spec (reference §4).
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSpec {
    pub id: Option<String>,
    pub name: String,
    pub provider_id: Option<String>,
    pub version: String,
    pub source_connection_spec_ids: Vec<String>,
    pub target_connection_spec_ids: Vec<String>,
    /// Names of the allowed transformations (`transformationSpecs` / `transformationSpec`), e.g. `Mapping`.
    pub transformation_names: Vec<String>,
    pub raw: Value,
}

/// `scheduleParams` of a flow (reference §4, §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSchedule {
    /// `startTime`, epoch seconds given as an integer or a string.
    pub start_time: DateTime<Utc>,
    pub frequency: Frequency,
    /// Units of `frequency` between runs: 0 for `once`, >= 15 for `minute`, >= 1 otherwise.
    pub interval: u32,
    /// `backfill`, default true (always false for `once`, where it is not allowed).
    pub backfill: bool,
    /// Our extension: `scheduleParams.cron` (+ `timeZone`) instead of a fixed interval.
    pub cron: Option<CronSchedule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Frequency {
    Once,
    Minute,
    Hour,
    Day,
    Week,
}

/// A cron schedule, kept as text: the engine parses it with the `cron` crate (6 or 7 fields,
/// seconds first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    pub expression: String,
    /// IANA time-zone name (`timeZone`); UTC when absent.
    pub time_zone: Option<String>,
}

/// `options` of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FlowOptions {
    /// Percent of rejected rows tolerated before a run fails; `None` = any rejected row fails it.
    pub partial_ingestion_percent: Option<f64>,
    /// Forced on when partial ingestion is on (reference §6).
    pub error_diagnostics_enabled: bool,
    /// Our extension `maxConcurrentRequests`: the most pages of OFFSET / PAGE in flight at once
    /// (`1`: strictly sequential). `None`: the fetcher adapts the concurrency up to its default
    /// ceiling.
    pub max_concurrent_requests: Option<NonZeroU32>,
}

/// One entry of a flow's `transformations[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transformation {
    /// `name`, `Mapping` for RestStorageToAEP.
    pub name: String,
    /// `params.mappingId`.
    pub mapping_id: Option<String>,
    /// `params.mappingVersion`, a number or a numeric string, default 0.
    pub mapping_version: u64,
}

/// A `POST /flows` body (reference §6).
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub name: String,
    pub description: Option<String>,
    pub flow_spec_id: String,
    /// `flowSpec.version`, default `1.0`.
    pub flow_spec_version: String,
    pub source_connection_ids: Vec<String>,
    pub target_connection_ids: Vec<String>,
    pub transformations: Vec<Transformation>,
    pub schedule: Option<FlowSchedule>,
    pub options: FlowOptions,
}

/// A Data Prep mapping set in either dialect (reference §8.2).
#[derive(Debug, Clone, PartialEq)]
pub struct MappingSet {
    pub mappings: Vec<Mapping>,
    /// `strictMapping`, default false: when true, a transformation error rejects its row
    /// instead of nullifying the column (applied by the transform stage).
    pub strict: bool,
    /// `allowNullValues`, default false: when true, a required destination of the target
    /// schema left null keeps its row, with a warning (applied by the transform stage).
    pub allow_null_values: bool,
    /// `outputSchema.schemaRef.id` (current) or `xdmSchema` (legacy).
    pub output_schema_id: Option<String>,
}

/// One mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub source_type: MappingSourceType,
    /// `source` / `sourceAttribute`: a field path, an expression or a literal.
    pub source: String,
    /// `destination` / `destinationXdmPath`.
    pub destination: String,
    pub identity: bool,
    pub primary_identity: bool,
    pub namespace_code: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MappingSourceType {
    /// `ATTRIBUTE`, stored as `text/x.schema-path`; the legacy dialect is always this.
    Attribute,
    /// `EXPRESSION`, stored as `text/x.aep-xl`.
    Expression,
    /// `STATIC`, stored as `text/plain`.
    Static,
}

/// A base connection: which authSpec and its credentials. Debug never prints secret values.
#[derive(Clone, PartialEq)]
pub struct BaseConnection {
    pub name: Option<String>,
    /// `auth.specName` as written (matched case-insensitively against authSpec name or type).
    pub auth_spec_name: String,
    /// `auth.params`; string values may hold `${env:NAME}`, rendered at run time.
    pub params: Map<String, Value>,
    /// Param names whose values are secrets (from the matched authSpec, plus well-known names).
    pub secret_fields: Vec<String>,
}

/// A source connection: the per-source params declared by `sourceSpec.spec`. Debug hides the
/// values of params whose names look secret (some specs take an API key as a source param).
#[derive(Clone, PartialEq)]
pub struct SourceConnection {
    pub name: Option<String>,
    pub params: Map<String, Value>,
}

/// A target connection: the dataset and, as our extension, its inline schema.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConnection {
    pub name: Option<String>,
    /// `params.dataSetId`.
    pub dataset_id: String,
    /// `data.schema.jsonSchema` (our extension): the dataset's schema inline.
    pub schema: Option<Value>,
    /// `data.schema.id`: the dataset's schema by id (the engine loads it).
    pub schema_id: Option<String>,
    /// `data.format`: how the dataset is laid out.
    pub format: TargetFormat,
}

/// `data.format` of a target connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetFormat {
    /// Parquet batches (the default). Adobe's values `parquet_xdm`, `parquet`, `json`,
    /// `delimited` and `tabular` describe the data Adobe lands in its lake; here each of them
    /// means the dataset's Parquet batches.
    #[default]
    Parquet,
    /// `delta` (our extension, DESIGN.md): the same Parquet parts plus a Delta Lake log, one
    /// commit per window.
    Delta,
}

/// Where a bundle's connection spec comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum SpecRef {
    /// The spec itself, inline.
    Inline(Value),
    /// `{"path": "..."}`, relative to the bundle file.
    Path(String),
    /// `{"id": "..."}` of a registered spec.
    Id(String),
}

/// A flow bundle (DESIGN.md): one file = one dataflow, everything resolved and cross-checked.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowBundle {
    pub name: String,
    /// How the bundle referred to its connection spec.
    pub connection_spec_ref: SpecRef,
    pub connection_spec: ConnectionSpec,
    /// The authSpec the base connection's `specName` matched.
    pub auth_spec: AuthSpec,
    pub base: BaseConnection,
    pub source: SourceConnection,
    pub target: TargetConnection,
    pub mapping: Option<MappingSet>,
    pub schedule: Option<FlowSchedule>,
    pub options: FlowOptions,
}

impl fmt::Debug for BaseConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BaseConnection")
            .field("name", &self.name)
            .field("auth_spec_name", &self.auth_spec_name)
            .field(
                "params",
                &crate::secrets::Redacted::new(&self.params, &self.secret_fields),
            )
            .field("secret_fields", &self.secret_fields)
            .finish()
    }
}

impl ConnectionSpec {
    /// The authSpec a base connection's `auth.specName` selects: matched case-insensitively
    /// against each entry's `name`, then its `type` (reference §1.3, "\[conflict\]").
    pub fn auth_spec(&self, spec_name: &str) -> Option<&AuthSpec> {
        let wanted = spec_name.trim();
        self.auth_specs
            .iter()
            .find(|auth_spec| auth_spec.name.eq_ignore_ascii_case(wanted))
            .or_else(|| {
                self.auth_specs
                    .iter()
                    .find(|auth_spec| auth_spec.type_name.eq_ignore_ascii_case(wanted))
            })
    }
}

impl TokenRequestNames {
    /// The names after the base connection's `requestParameterOverride` param (an object of
    /// `accessTokenField`, `refreshTokenField`, `expireInField`, `authenticationMethod`,
    /// `clientId`, `clientSecret`); absent fields keep their defaults.
    pub fn from_params(params: &Map<String, Value>) -> TokenRequestNames {
        let mut names = TokenRequestNames::default();
        let Some(overrides) = params
            .get("requestParameterOverride")
            .and_then(Value::as_object)
        else {
            return names;
        };
        let text = |key: &str| {
            overrides
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        if let Some(value) = text("accessTokenField") {
            names.access_token_field = value;
        }
        if let Some(value) = text("refreshTokenField") {
            names.refresh_token_field = value;
        }
        if let Some(value) = text("expireInField") {
            names.expire_in_field = value;
        }
        if let Some(value) = text("clientId") {
            names.client_id_param = value;
        }
        if let Some(value) = text("clientSecret") {
            names.client_secret_param = value;
        }
        if let Some(method) = text("authenticationMethod")
            && method.eq_ignore_ascii_case("get")
        {
            names.method = HttpMethod::Get;
        }
        names
    }
}

impl Default for TokenRequestNames {
    fn default() -> TokenRequestNames {
        TokenRequestNames {
            access_token_field: "access_token".to_owned(),
            refresh_token_field: "refresh_token".to_owned(),
            expire_in_field: "expires_in".to_owned(),
            method: HttpMethod::Post,
            client_id_param: "client_id".to_owned(),
            client_secret_param: "client_secret".to_owned(),
        }
    }
}

impl Pagination {
    /// The settings every type shares.
    pub fn common(&self) -> &PagingCommon {
        match self {
            Pagination::Offset { common, .. }
            | Pagination::Pointer { common, .. }
            | Pagination::ContinuationToken { common, .. }
            | Pagination::Page { common, .. }
            | Pagination::Link { common, .. }
            | Pagination::None { common } => common,
        }
    }

    /// The page-size parameter and value, when the type sends one.
    pub fn limit(&self) -> Option<(&str, NonZeroU32)> {
        match self {
            Pagination::Offset {
                limit_name, limit, ..
            } => Some((limit_name.as_str(), *limit)),
            Pagination::Pointer {
                limit_name, limit, ..
            }
            | Pagination::ContinuationToken {
                limit_name, limit, ..
            }
            | Pagination::Page {
                limit_name, limit, ..
            }
            | Pagination::Link {
                limit_name, limit, ..
            } => Some((limit_name.as_deref()?, (*limit)?)),
            Pagination::None { .. } => None,
        }
    }

    /// The spec's name of the type (`OFFSET`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Pagination::Offset { .. } => "OFFSET",
            Pagination::Pointer { .. } => "POINTER",
            Pagination::ContinuationToken { .. } => "CONTINUATION_TOKEN",
            Pagination::Page { .. } => "PAGE",
            Pagination::Link { .. } => "LINK",
            Pagination::None { .. } => "NONE",
        }
    }
}

impl Default for PagingCommon {
    fn default() -> PagingCommon {
        PagingCommon {
            maximum_requests: NonZeroU32::new(DEFAULT_MAXIMUM_REQUESTS).expect("10000 is not zero"),
            delay: None,
        }
    }
}

impl FlowSchedule {
    /// Time between two runs; `None` for `once` and for cron schedules.
    pub fn period(&self) -> Option<chrono::Duration> {
        if self.cron.is_some() {
            return None;
        }
        let interval = i64::from(self.interval);
        match self.frequency {
            Frequency::Once => None,
            Frequency::Minute => Some(chrono::Duration::minutes(interval)),
            Frequency::Hour => Some(chrono::Duration::hours(interval)),
            Frequency::Day => Some(chrono::Duration::days(interval)),
            Frequency::Week => Some(chrono::Duration::weeks(interval)),
        }
    }
}

impl Frequency {
    /// The lowercase name used in flows.
    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Once => "once",
            Frequency::Minute => "minute",
            Frequency::Hour => "hour",
            Frequency::Day => "day",
            Frequency::Week => "week",
        }
    }
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
        }
    }
}

impl BaseConnection {
    /// The auth params with every `${env:NAME}` in string values rendered through `env`
    /// (production passes `|name| std::env::var(name).ok()`). A missing variable is an error
    /// naming it.
    pub fn resolved_params(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Map<String, Value>, crate::SpecError> {
        crate::template::resolve_env_in_map(&self.params, env)
    }
}

impl fmt::Debug for SourceConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceConnection")
            .field("name", &self.name)
            .field("params", &crate::secrets::Redacted::new(&self.params, &[]))
            .finish()
    }
}

#[cfg(test)]
mod tests;
