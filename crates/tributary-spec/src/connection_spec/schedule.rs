//! `scheduleParams` (reference §2.5): the simple form with its date formats, and ADVANCE.

use crate::date_format::DateFormat;
use crate::model::ScheduleParams;
use crate::raw::{Ctx, Node};
use crate::template::{Reserved, Template};

/// Keys of `scheduleParams`, simple and ADVANCE.
const SCHEDULE_KEYS: [&str; 8] = [
    "type",
    "scheduleStartParamName",
    "scheduleEndParamName",
    "scheduleStartParamFormat",
    "scheduleEndParamFormat",
    "paramFormat",
    "incremental",
    "backfill",
];

/// Default date pattern of the simple schedule form when a format is absent.
const DEFAULT_SCHEDULE_FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ss'Z'";

pub(super) fn read_schedule_params(ctx: &mut Ctx, node: &Node<'_>) -> Option<ScheduleParams> {
    let obj = ctx.object(node, "scheduleParams")?;
    obj.warn_unknown_keys(ctx, &SCHEDULE_KEYS, "scheduleParams");
    let is_advance = match obj.get(ctx, &["type"]) {
        Some(type_node) => match ctx.string(&type_node, "the schedule type")? {
            text if text.eq_ignore_ascii_case("advance") => true,
            text if text.eq_ignore_ascii_case("simple") || text.is_empty() => false,
            text => {
                ctx.err(&type_node.ptr, format!("unknown schedule type {text:?}; expected ADVANCE, or no type for the simple form"));
                return None;
            }
        },
        None => false,
    };
    let format = |ctx: &mut Ctx, names: &[&str], required: bool| -> Option<DateFormat> {
        let node = if required {
            obj.require(
                ctx,
                names,
                "a date pattern such as \"yyyy-MM-dd'T'HH:mm:ssZ\"",
            )?
        } else {
            match obj.get(ctx, names) {
                Some(node) => node,
                None => return DateFormat::parse(DEFAULT_SCHEDULE_FORMAT).ok(),
            }
        };
        let pattern = ctx.non_empty_string(&node, "a date pattern")?;
        DateFormat::parse(&pattern)
            .map_err(|message| ctx.err(&node.ptr, message))
            .ok()
    };
    if is_advance {
        let param_format = format(ctx, &["paramFormat"], true);
        let incremental = obj.req_string(ctx, &["incremental"], "the incremental query expression");
        let backfill = obj.req_string(ctx, &["backfill"], "the backfill query expression");
        let (param_format, incremental, backfill) = (param_format?, incremental?, backfill?);
        let backfill = Template::parse(&backfill);
        if backfill
            .reserved()
            .any(|reserved| reserved == Reserved::StartTime)
        {
            ctx.err(
                &obj.ptr_of("backfill"),
                "the backfill expression uses {START_TIME}, but a backfill run has no window start",
            );
            return None;
        }
        return Some(ScheduleParams::Advance {
            format: param_format,
            incremental: Template::parse(&incremental),
            backfill,
        });
    }
    let start_param = obj.req_string(
        ctx,
        &["scheduleStartParamName"],
        "the query parameter of the window start",
    );
    let end_param = obj.req_string(
        ctx,
        &["scheduleEndParamName"],
        "the query parameter of the window end",
    );
    let start_format = format(ctx, &["scheduleStartParamFormat"], false);
    let end_format = format(ctx, &["scheduleEndParamFormat"], false);
    Some(ScheduleParams::Simple {
        start_param: start_param?,
        end_param: end_param?,
        start_format: start_format?,
        end_format: end_format?,
    })
}
