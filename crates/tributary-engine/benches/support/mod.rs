//! What the engine's benches share: the flow bundle of a scheduled bench flow.

use chrono::{DateTime, Datelike as _, Timelike as _, Utc};
use serde_json::json;

/// A bundle whose flow has one cron slot (seconds precision) at `slot`, reading the mock API's
/// members from `url` with OFFSET paging, `backfill: false`.
pub fn scheduled_bundle(
    name: &str,
    url: &str,
    start: DateTime<Utc>,
    slot: DateTime<Utc>,
) -> String {
    let cron = format!(
        "{} {} {} {} {} *",
        slot.second(),
        slot.minute(),
        slot.hour(),
        slot.day(),
        slot.month()
    );
    json!({
        "name": name,
        "connectionSpec": {
            "name": "mock members",
            "providerId": tributary_spec::GENERIC_REST_PROVIDER_ID,
            "version": "1.0",
            "authSpec": [{"name": "Basic Authentication", "type": "BasicAuthentication", "spec": {
                "type": "object",
                "properties": {"host": {"type": "string"}, "username": {"type": "string"}, "password": {"type": "string", "format": "password"}},
                "required": ["host", "username", "password"]}}],
            "sourceSpec": {"attributes": {
                "urlParams": {"path": "/3.0/lists/x/members", "method": "GET"},
                "contentPath": {"path": "$.members"},
                "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": 100, "offSetName": "offset"},
                "scheduleParams": {"scheduleStartParamName": "since_last_changed", "scheduleEndParamName": "before_last_changed",
                                   "scheduleStartParamFormat": "yyyy-MM-ddTHH:mm:ssZ", "scheduleEndParamFormat": "yyyy-MM-ddTHH:mm:ssZ"},
            }},
        },
        "baseConnection": {"auth": {"specName": "Basic Authentication", "params": {"host": url, "username": "u", "password": "p"}}},
        "sourceConnection": {"params": {}},
        "targetConnection": {"params": {"dataSetId": name}},
        "flow": {"scheduleParams": {"startTime": start.timestamp(), "frequency": "hour", "interval": 1, "backfill": false, "cron": cron}},
    })
    .to_string()
}
