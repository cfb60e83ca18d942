//! The members endpoints of the five pagination styles (offset, page, cursor, pointer, link)
//! and the unpaginated one: each maps its request to a window of the dataset and writes the
//! page's envelope. Cursor tokens are opaque to clients.

use axum::extract::{Path, State};
use axum::http::header::{HeaderName, HeaderValue};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;

use super::{AppState, Page, Shape, serve_page, total_count_header, write_json_string};
use crate::dataset::{AVERAGE_RECORD_BYTES, RECORD_BUFFER, write_u64};
use crate::query::BadRequest;

pub(super) async fn offset_members(
    State(shared): State<AppState>,
    Path(list_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve_page(&shared, &uri, &headers, &body, |shared, admitted| {
        let params = &admitted.params;
        let range = shared.window_range(params)?;
        let count = shared.page_size(params, "count", 10, 0)?;
        let offset = params.u64_or("offset", 0)?;
        let start = range.start.saturating_add(offset).min(range.end);
        let end = start.saturating_add(count).min(range.end);
        let total = range.end - range.start;
        let has_more = end < range.end;
        let body = shared.envelope("members", admitted.shape(offset), start..end, |out| {
            out.extend_from_slice(b",\"list_id\":");
            write_json_string(out, &list_id);
            out.extend_from_slice(b",\"total_items\":");
            write_u64(out, total);
            out.extend_from_slice(if has_more {
                b",\"has_more\":true"
            } else {
                b",\"has_more\":false"
            });
            out.extend_from_slice(b",\"_links\":[{\"rel\":\"self\",\"href\":");
            write_json_string(out, &format!("{}{}", shared.base_url, uri.path()));
            out.extend_from_slice(b",\"method\":\"GET\"}]");
        });
        Ok(Page {
            body,
            offset,
            n_records: end - start,
            headers: vec![total_count_header(total)],
        })
    })
    .await
}

pub(super) async fn page_members(
    State(shared): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve_page(&shared, &uri, &headers, &body, |shared, admitted| {
        let params = &admitted.params;
        let range = shared.window_range(params)?;
        let size = shared.page_size(params, "pageSize", 100, 1)?;
        let base = params.u64_or("base", 0)?;
        if base > 1 {
            return Err(BadRequest(format!(
                "query parameter base={base} is not 0 or 1"
            )));
        }
        let page = params.u64_or("page", base)?;
        let Some(relative) = page.checked_sub(base) else {
            return Err(BadRequest(format!(
                "query parameter page={page} is below the first page index {base}"
            )));
        };
        let offset = relative.saturating_mul(size);
        let start = range.start.saturating_add(offset).min(range.end);
        let end = start.saturating_add(size).min(range.end);
        let total = range.end - range.start;
        let body = shared.envelope("items", admitted.shape(offset), start..end, |out| {
            out.extend_from_slice(b",\"page\":");
            write_u64(out, page);
            out.extend_from_slice(b",\"pageSize\":");
            write_u64(out, size);
            out.extend_from_slice(b",\"total\":");
            write_u64(out, total);
        });
        let page_count = total.div_ceil(size);
        Ok(Page {
            body,
            offset,
            n_records: end - start,
            headers: vec![
                (
                    HeaderName::from_static("x-pagecount"),
                    HeaderValue::from(page_count),
                ),
                total_count_header(total),
            ],
        })
    })
    .await
}

pub(super) async fn cursor_members(
    State(shared): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header_cursor = headers
        .get("x-cursor")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    serve_page(&shared, &uri, &headers, &body, |shared, admitted| {
        let params = &admitted.params;
        let range = shared.window_range(params)?;
        let limit = shared.page_size(params, "limit", 100, 1)?;
        let token = params.get("cursor").or(header_cursor.as_deref());
        let position = match token {
            None => range.start,
            Some(token) => decode_cursor(token)?.clamp(range.start, range.end),
        };
        let end = position.saturating_add(limit).min(range.end);
        let offset = position - range.start;
        let next = if admitted.faults.repeating_cursor {
            // Always the second page's token: a client that follows it sees it again.
            let second = range.start.saturating_add(limit);
            (second < range.end).then(|| encode_cursor(second))
        } else {
            (end < range.end).then(|| encode_cursor(end))
        };
        let body = shared.envelope("data", admitted.shape(offset), position..end, |out| {
            out.extend_from_slice(b",\"meta\":{\"has_more\":");
            out.extend_from_slice(if next.is_some() { b"true" } else { b"false" });
            out.extend_from_slice(b",\"after_cursor\":");
            match &next {
                Some(token) => write_json_string(out, token),
                None => out.extend_from_slice(b"null"),
            }
            out.push(b'}');
        });
        Ok(Page {
            body,
            offset,
            n_records: end - position,
            headers: Vec::new(),
        })
    })
    .await
}

pub(super) async fn pointer_members(
    State(shared): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve_page(&shared, &uri, &headers, &body, |shared, admitted| {
        let params = &admitted.params;
        let range = shared.window_range(params)?;
        let limit = shared.page_size(params, "limit", 100, 1)?;
        let offset = params.u64_or("after", 0)?;
        let start = range.start.saturating_add(offset).min(range.end);
        let end = start.saturating_add(limit).min(range.end);
        let next = (end < range.end).then(|| {
            let query = params.encode_with("after", &(end - range.start).to_string());
            let foreign = admitted
                .faults
                .foreign_pointer
                .as_ref()
                .filter(|foreign| foreign.at.matches(admitted.request_no, offset));
            match foreign {
                Some(foreign) => format!("{}/pointer/members?{query}", foreign.base_url),
                None if params.flag("relative") => format!("/pointer/members?{query}"),
                None => format!("{}/pointer/members?{query}", shared.base_url),
            }
        });
        let body = shared.envelope("results", admitted.shape(offset), start..end, |out| {
            out.extend_from_slice(b",\"paging\":{\"next\":");
            match &next {
                Some(url) => write_json_string(out, url),
                None => out.extend_from_slice(b"null"),
            }
            out.push(b'}');
        });
        Ok(Page {
            body,
            offset,
            n_records: end - start,
            headers: Vec::new(),
        })
    })
    .await
}

pub(super) async fn link_members(
    State(shared): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve_page(&shared, &uri, &headers, &body, |shared, admitted| {
        let params = &admitted.params;
        let range = shared.window_range(params)?;
        let per_page = shared.page_size(params, "per_page", 30, 1)?;
        let page = params.u64_or("page", 1)?;
        if page == 0 {
            return Err(BadRequest(
                "query parameter page=0 is out of range, pages start at 1".into(),
            ));
        }
        let offset = (page - 1).saturating_mul(per_page);
        let start = range.start.saturating_add(offset).min(range.end);
        let end = start.saturating_add(per_page).min(range.end);
        let total = range.end - range.start;
        let last_page = total.div_ceil(per_page).max(1);
        let link = |n: u64, rel: &str| {
            format!(
                "<{}/link/members?{}>; rel=\"{rel}\"",
                shared.base_url,
                params.encode_with("page", &n.to_string())
            )
        };
        let mut links = Vec::with_capacity(4);
        if end < range.end {
            links.push(link(page + 1, "next"));
        }
        if page > 1 {
            links.push(link(page - 1, "prev"));
        }
        links.push(link(1, "first"));
        links.push(link(last_page, "last"));
        let count = usize::try_from(end - start).unwrap_or(0);
        let mut body = Vec::with_capacity(
            count
                .saturating_mul(AVERAGE_RECORD_BYTES)
                .saturating_add(RECORD_BUFFER + 32),
        );
        if admitted.shape(offset) == Shape::Normal {
            body.push(b'[');
            shared.dataset.write_records(start..end, &mut body);
            body.push(b']');
        } else {
            body.extend_from_slice(b"{\"records\":[");
            shared.dataset.write_records(start..end, &mut body);
            body.extend_from_slice(b"]}");
        }
        let mut headers = vec![total_count_header(total)];
        if let Ok(value) = HeaderValue::from_str(&links.join(", ")) {
            headers.push((HeaderName::from_static("link"), value));
        }
        Ok(Page {
            body,
            offset,
            n_records: end - start,
            headers,
        })
    })
    .await
}

pub(super) async fn all_members(
    State(shared): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve_page(&shared, &uri, &headers, &body, |shared, admitted| {
        let range = shared.window_range(&admitted.params)?;
        let total = range.end - range.start;
        if total > shared.config.all_cap {
            return Err(BadRequest(format!(
                "the window holds {total} records, more than the {} that /all/members returns at once; narrow it with since_last_changed/before_last_changed",
                shared.config.all_cap
            )));
        }
        let body = shared.envelope("members", admitted.shape(0), range.clone(), |out| {
            out.extend_from_slice(b",\"total_items\":");
            write_u64(out, total);
        });
        Ok(Page {
            body,
            offset: 0,
            n_records: total,
            headers: vec![total_count_header(total)],
        })
    })
    .await
}

/// Cursor tokens are opaque to clients: base64url of `c1:<record index>`.
pub(super) fn encode_cursor(index: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("c1:{index}"))
}

pub(super) fn decode_cursor(token: &str) -> Result<u64, BadRequest> {
    URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix("c1:")?.parse().ok())
        .ok_or_else(|| {
            BadRequest(format!(
                "cursor {token:?} is not a token this server issued"
            ))
        })
}
