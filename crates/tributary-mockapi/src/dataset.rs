//! The deterministic, seeded, Mailchimp-members-like dataset.
//!
//! Record `i` of seed `s` is a pure function of `(s, i)` and the [`Timeline`]: its fields are
//! drawn from a splitmix64 stream seeded by both, its `id` is unique per index (the second half
//! is a bijection of the index), and its `last_changed` is `start + i * step`, strictly
//! increasing, so a time window maps to an index range without scanning
//! ([`Timeline::index_range`]).
//!
//! Two writers share one generator (`Member`): [`Dataset::write_record_json`] appends JSON
//! bytes directly (the server's hot path: no `serde_json::Value`, no allocation per record) and
//! [`Dataset::record`] builds a `serde_json::Value` for tests to compare against. A test checks
//! that the two agree. Every string in the name tables is plain ASCII that needs no escaping.

use std::ops::Range;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::error::MockError;

/// 2024-01-01T00:00:00Z in epoch seconds.
pub const DEFAULT_START_TIME_SECS: i64 = 1_704_067_200;
/// One second between consecutive records' `last_changed`.
pub const DEFAULT_STEP: Duration = Duration::from_secs(1);
/// Room reserved for writing one record: more than the longest record can take.
pub const RECORD_BUFFER: usize = 1_024;
/// About the average record size, to reserve a page buffer once.
pub const AVERAGE_RECORD_BYTES: usize = 640;

/// `last_changed` of record `i` is `start + i * step`, in nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    start_ns: i128,
    step_ns: i128,
    /// Fraction digits written after the seconds: 0, 3, 6 or 9, the fewest that keep every
    /// timestamp exact.
    frac_digits: u8,
}

/// A seed and a timeline: everything needed to produce any record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dataset {
    seed: u64,
    timeline: Timeline,
    list_id: [u8; 10],
}

/// The canonical record `index` of `seed` on the default timeline (record 0 changed at
/// 2024-01-01T00:00:00Z, one second apart), equal to what a server with a default
/// `start_time` and `step` serves.
pub fn record(seed: u64, index: u64) -> Value {
    Dataset::new(seed, Timeline::default()).record(index)
}

/// Appends the JSON of [`record`]`(seed, index)` to `out`.
pub fn write_record_json(seed: u64, index: u64, out: &mut Vec<u8>) {
    Dataset::new(seed, Timeline::default()).write_record_json(index, out);
}

/// The drawn fields of one record; `&'static str`s and numbers only, so drawing allocates
/// nothing.
#[derive(Debug, Clone, Copy)]
struct Member {
    id_high: u64,
    id_low: u64,
    index: u64,
    first_name: &'static str,
    last_name: &'static str,
    domain: &'static str,
    unique_email_id: u64,
    status: &'static str,
    address: Option<Address>,
    phone_area: u16,
    phone_line: u16,
    birthday_month: u8,
    birthday_day: u8,
    open_rate_permille: u16,
    click_rate_permille: u16,
    ip: [u8; 4],
    timestamp_opt_ns: i128,
    member_rating: u8,
    last_changed_ns: i128,
    language: &'static str,
    vip: bool,
    latitude_e4: i32,
    longitude_e4: i32,
    country_code: &'static str,
    timezone: &'static str,
    n_tags: usize,
    tags: [(u32, &'static str); 2],
}

#[derive(Debug, Clone, Copy)]
struct Address {
    number: u16,
    street: &'static str,
    city: &'static str,
    state: &'static str,
    zip: u32,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            start_ns: i128::from(DEFAULT_START_TIME_SECS) * NANOS_PER_SEC,
            step_ns: DEFAULT_STEP.as_nanos() as i128,
            frac_digits: 0,
        }
    }
}

impl Timeline {
    /// A timeline starting at `start` with `step` between records (at least 1 ns).
    pub fn try_new(start: DateTime<Utc>, step: Duration) -> Result<Timeline, MockError> {
        if step.is_zero() {
            return Err(MockError::Config {
                field: "step",
                message: "zero, expected a positive duration so last_changed strictly increases"
                    .into(),
            });
        }
        let start_ns = i128::from(start.timestamp()) * NANOS_PER_SEC
            + i128::from(start.timestamp_subsec_nanos());
        let step_ns = step.as_nanos() as i128;
        let frac_digits = [(NANOS_PER_SEC, 0), (1_000_000, 3), (1_000, 6)]
            .into_iter()
            .find(|(unit, _)| start_ns % unit == 0 && step_ns % unit == 0)
            .map_or(9, |(_, digits)| digits);
        Ok(Timeline {
            start_ns,
            step_ns,
            frac_digits,
        })
    }

    /// Errors when the last of `records` records would change after the year 9999, which
    /// ISO-8601 timestamps cannot show.
    pub fn check_fits(&self, records: u64) -> Result<(), MockError> {
        // 9999-12-31T23:59:59Z.
        const LAST_NS: i128 = 253_402_300_799 * NANOS_PER_SEC;
        let last = self.last_changed_ns(records.saturating_sub(1));
        if self.start_ns < 0 || last > LAST_NS {
            return Err(MockError::Config {
                field: "start_time",
                message: format!(
                    "{records} records at this step run outside years 1970..=9999, expected a shorter step or fewer records"
                ),
            });
        }
        Ok(())
    }

    /// `last_changed` of record `index`, nanoseconds since the epoch.
    pub fn last_changed_ns(&self, index: u64) -> i128 {
        self.start_ns + i128::from(index) * self.step_ns
    }

    /// `last_changed` of record `index` as a UTC time.
    pub fn last_changed(&self, index: u64) -> DateTime<Utc> {
        let ns = self.last_changed_ns(index);
        let secs = ns.div_euclid(NANOS_PER_SEC) as i64;
        let nanos = ns.rem_euclid(NANOS_PER_SEC) as u32;
        DateTime::from_timestamp(secs, nanos).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Indexes of the records (of `records`) whose `last_changed` is in
    /// `[lower_ns, upper_ns)`; a missing bound is open. O(1): `last_changed` is monotonic.
    pub fn index_range(
        &self,
        lower_ns: Option<i128>,
        upper_ns: Option<i128>,
        records: u64,
    ) -> Range<u64> {
        let first_at_or_after = |bound_ns: i128| -> u64 {
            let delta = bound_ns - self.start_ns;
            if delta <= 0 {
                return 0;
            }
            let index = (delta + self.step_ns - 1) / self.step_ns;
            u64::try_from(index).unwrap_or(u64::MAX).min(records)
        };
        let lo = lower_ns.map_or(0, first_at_or_after);
        let hi = upper_ns.map_or(records, first_at_or_after);
        lo..hi.max(lo)
    }
}

impl Dataset {
    pub fn new(seed: u64, timeline: Timeline) -> Dataset {
        let mut list_id = [0u8; 10];
        let hash = mix64(seed ^ 0x6c69_7374_5f69_6421);
        for (i, byte) in list_id.iter_mut().enumerate() {
            *byte = HEX[((hash >> (4 * i)) & 0xf) as usize];
        }
        Dataset {
            seed,
            timeline,
            list_id,
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// The `list_id` every record carries: ten hex characters derived from the seed.
    pub fn list_id(&self) -> &str {
        std::str::from_utf8(&self.list_id).expect("list ids are ASCII hex")
    }

    /// The record as a JSON value (slow; for tests and examples).
    pub fn record(&self, index: u64) -> Value {
        let member = self.member(index);
        let mut merge_fields = serde_json::Map::new();
        merge_fields.insert("FNAME".into(), json!(member.first_name));
        merge_fields.insert("LNAME".into(), json!(member.last_name));
        if let Some(address) = member.address {
            merge_fields.insert(
                "ADDRESS".into(),
                json!({
                    "addr1": format!("{} {}", address.number, address.street),
                    "city": address.city,
                    "state": address.state,
                    "zip": format!("{:05}", address.zip),
                    "country": "US",
                }),
            );
        }
        merge_fields.insert(
            "PHONE".into(),
            json!(format!(
                "+1 {}-555-{:04}",
                member.phone_area, member.phone_line
            )),
        );
        merge_fields.insert(
            "BIRTHDAY".into(),
            json!(format!(
                "{:02}/{:02}",
                member.birthday_month, member.birthday_day
            )),
        );
        let tags: Vec<Value> = member.tags[..member.n_tags]
            .iter()
            .map(|(id, name)| json!({"id": id, "name": name}))
            .collect();
        json!({
            "id": format!("{:016x}{:016x}", member.id_high, member.id_low),
            "email_address": format!(
                "{}.{}{}@{}",
                member.first_name.to_ascii_lowercase(),
                member.last_name.to_ascii_lowercase(),
                member.index,
                member.domain
            ),
            "unique_email_id": format!("{:010x}", member.unique_email_id),
            "status": member.status,
            "merge_fields": Value::Object(merge_fields),
            "stats": {
                "avg_open_rate": f64::from(member.open_rate_permille) / 1000.0,
                "avg_click_rate": f64::from(member.click_rate_permille) / 1000.0,
            },
            "ip_signup": format!("{}.{}.{}.{}", member.ip[0], member.ip[1], member.ip[2], member.ip[3]),
            "timestamp_opt": format_timestamp(member.timestamp_opt_ns, self.timeline.frac_digits),
            "member_rating": member.member_rating,
            "last_changed": format_timestamp(member.last_changed_ns, self.timeline.frac_digits),
            "language": member.language,
            "vip": member.vip,
            "location": {
                "latitude": f64::from(member.latitude_e4) / 10_000.0,
                "longitude": f64::from(member.longitude_e4) / 10_000.0,
                "country_code": member.country_code,
                "timezone": member.timezone,
            },
            "tags": tags,
            "list_id": self.list_id(),
        })
    }

    /// Appends the record's JSON to `out` (no allocation besides `out` growing).
    pub fn write_record_json(&self, index: u64, out: &mut Vec<u8>) {
        let start = out.len();
        // Writing into a slice sized for the largest record avoids a capacity check per field;
        // the unused tail is cut off afterwards.
        out.resize(start + RECORD_BUFFER, 0);
        let mut w = Out {
            buf: &mut out[start..],
            pos: 0,
        };
        self.write_member(&self.member(index), &mut w);
        let len = w.pos;
        out.truncate(start + len);
    }

    fn write_member(&self, m: &Member, w: &mut Out<'_>) {
        w.put(b"{\"id\":\"");
        w.hex(m.id_high, 16);
        w.hex(m.id_low, 16);
        w.put(b"\",\"email_address\":\"");
        w.lowercase(m.first_name);
        w.byte(b'.');
        w.lowercase(m.last_name);
        w.digits(m.index, 1);
        w.byte(b'@');
        w.put(m.domain.as_bytes());
        w.put(b"\",\"unique_email_id\":\"");
        w.hex(m.unique_email_id, 10);
        w.put(b"\",\"status\":\"");
        w.put(m.status.as_bytes());
        w.put(b"\",\"merge_fields\":{\"FNAME\":\"");
        w.put(m.first_name.as_bytes());
        w.put(b"\",\"LNAME\":\"");
        w.put(m.last_name.as_bytes());
        if let Some(address) = m.address {
            w.put(b"\",\"ADDRESS\":{\"addr1\":\"");
            w.digits(u64::from(address.number), 1);
            w.byte(b' ');
            w.put(address.street.as_bytes());
            w.put(b"\",\"city\":\"");
            w.put(address.city.as_bytes());
            w.put(b"\",\"state\":\"");
            w.put(address.state.as_bytes());
            w.put(b"\",\"zip\":\"");
            w.digits(u64::from(address.zip), 5);
            w.put(b"\",\"country\":\"US\"},\"PHONE\":\"+1 ");
        } else {
            w.put(b"\",\"PHONE\":\"+1 ");
        }
        w.digits(u64::from(m.phone_area), 1);
        w.put(b"-555-");
        w.digits(u64::from(m.phone_line), 4);
        w.put(b"\",\"BIRTHDAY\":\"");
        w.digits(u64::from(m.birthday_month), 2);
        w.byte(b'/');
        w.digits(u64::from(m.birthday_day), 2);
        w.put(b"\"},\"stats\":{\"avg_open_rate\":");
        w.fixed(i64::from(m.open_rate_permille), 3);
        w.put(b",\"avg_click_rate\":");
        w.fixed(i64::from(m.click_rate_permille), 3);
        w.put(b"},\"ip_signup\":\"");
        w.digits(u64::from(m.ip[0]), 1);
        for octet in &m.ip[1..] {
            w.byte(b'.');
            w.digits(u64::from(*octet), 1);
        }
        w.put(b"\",\"timestamp_opt\":\"");
        w.timestamp(m.timestamp_opt_ns, self.timeline.frac_digits);
        w.put(b"\",\"member_rating\":");
        w.digits(u64::from(m.member_rating), 1);
        w.put(b",\"last_changed\":\"");
        w.timestamp(m.last_changed_ns, self.timeline.frac_digits);
        w.put(b"\",\"language\":\"");
        w.put(m.language.as_bytes());
        w.put(if m.vip {
            b"\",\"vip\":true,\"location\":{\"latitude\":"
        } else {
            b"\",\"vip\":false,\"location\":{\"latitude\":"
        });
        w.fixed(i64::from(m.latitude_e4), 4);
        w.put(b",\"longitude\":");
        w.fixed(i64::from(m.longitude_e4), 4);
        w.put(b",\"country_code\":\"");
        w.put(m.country_code.as_bytes());
        w.put(b"\",\"timezone\":\"");
        w.put(m.timezone.as_bytes());
        w.put(b"\"},\"tags\":[");
        for (i, (id, name)) in m.tags[..m.n_tags].iter().enumerate() {
            if i > 0 {
                w.byte(b',');
            }
            w.put(b"{\"id\":");
            w.digits(u64::from(*id), 1);
            w.put(b",\"name\":\"");
            w.put(name.as_bytes());
            w.put(b"\"}");
        }
        w.put(b"],\"list_id\":\"");
        w.put(&self.list_id);
        w.put(b"\"}");
    }

    /// Appends the records of `indexes`, comma-separated (the inside of a JSON array).
    pub fn write_records(&self, indexes: Range<u64>, out: &mut Vec<u8>) {
        let count = usize::try_from(indexes.end.saturating_sub(indexes.start)).unwrap_or(0);
        out.reserve(
            count
                .saturating_mul(AVERAGE_RECORD_BYTES)
                .saturating_add(RECORD_BUFFER),
        );
        for index in indexes.clone() {
            if index > indexes.start {
                out.push(b',');
            }
            self.write_record_json(index, out);
        }
    }

    fn member(&self, index: u64) -> Member {
        // Seed and index are mixed through different constants so that no field of one record
        // equals a field of a neighbour.
        let mut rng = SplitMix(
            mix64(self.seed.wrapping_add(0x5851_f42d_4c95_7f2d))
                ^ index.wrapping_mul(0xd1b5_4a32_d192_ed03),
        );
        let id_high = rng.next();
        // A bijection of the index for this seed (xor with a constant, then a bijective mix):
        // ids are unique per index.
        let id_low = mix64(index ^ mix64(self.seed ^ 0xa076_1d64_78bd_642f));
        let first_name = pick(&mut rng, FIRST_NAMES);
        let last_name = pick(&mut rng, LAST_NAMES);
        let domain = pick(&mut rng, DOMAINS);
        let unique_email_id = rng.next() & 0xff_ffff_ffff;
        let status = match rng.below(100) {
            0..=69 => "subscribed",
            70..=84 => "unsubscribed",
            85..=92 => "pending",
            _ => "cleaned",
        };
        let address = (rng.below(5) == 0).then(|| {
            let (city, state, zip_base) = pick(&mut rng, CITIES);
            Address {
                number: 1 + rng.below(9_999) as u16,
                street: pick(&mut rng, STREETS),
                city,
                state,
                zip: zip_base + rng.below(90) as u32,
            }
        });
        let phone_area = 201 + rng.below(780) as u16;
        let phone_line = rng.below(10_000) as u16;
        let birthday_month = 1 + rng.below(12) as u8;
        let birthday_day = 1 + rng.below(28) as u8;
        let open_rate_permille = rng.below(1_001) as u16;
        let click_rate_permille = rng.below(u64::from(open_rate_permille) + 1) as u16;
        let ip_bits = rng.next();
        let ip = [
            1 + (ip_bits % 223) as u8,
            (ip_bits >> 8) as u8,
            (ip_bits >> 16) as u8,
            1 + ((ip_bits >> 24) % 254) as u8,
        ];
        let last_changed_ns = self.timeline.last_changed_ns(index);
        // Opted in up to 400 days before the last change.
        let timestamp_opt_ns =
            last_changed_ns - i128::from(rng.below(400 * 86_400)) * NANOS_PER_SEC;
        let member_rating = 1 + rng.below(5) as u8;
        let language = pick(&mut rng, LANGUAGES);
        let vip = rng.below(20) == 0;
        let (country_code, timezone, lat_center, lon_center) = pick(&mut rng, LOCATIONS);
        let latitude_e4 = lat_center + rng.below(10_001) as i32 - 5_000;
        let longitude_e4 = lon_center + rng.below(10_001) as i32 - 5_000;
        let n_tags = match rng.below(20) {
            0..=9 => 0,
            10..=16 => 1,
            _ => 2,
        };
        let mut tags = [(0, ""); 2];
        for tag in tags.iter_mut().take(n_tags) {
            let tag_idx = rng.below(TAGS.len() as u64) as usize;
            *tag = (1_000 + tag_idx as u32 * 7, TAGS[tag_idx]);
        }
        Member {
            id_high,
            id_low,
            index,
            first_name,
            last_name,
            domain,
            unique_email_id,
            status,
            address,
            phone_area,
            phone_line,
            birthday_month,
            birthday_day,
            open_rate_permille,
            click_rate_permille,
            ip,
            timestamp_opt_ns,
            member_rating,
            last_changed_ns,
            language,
            vip,
            latitude_e4,
            longitude_e4,
            country_code,
            timezone,
            n_tags,
            tags,
        }
    }
}

/// Formats nanoseconds since the epoch as `YYYY-MM-DDTHH:MM:SS[.fff]Z`, the way the
/// dataset writes times.
pub fn format_timestamp(ns: i128, frac_digits: u8) -> String {
    let mut buf = [0u8; 64];
    let mut w = Out {
        buf: &mut buf,
        pos: 0,
    };
    w.timestamp(ns, frac_digits);
    let len = w.pos;
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// Appends the decimal digits of `value` to `out`.
pub fn write_u64(out: &mut Vec<u8>, value: u64) {
    let mut buf = [0u8; 20];
    let mut w = Out {
        buf: &mut buf,
        pos: 0,
    };
    w.digits(value, 1);
    let len = w.pos;
    out.extend_from_slice(&buf[..len]);
}

const NANOS_PER_SEC: i128 = 1_000_000_000;
const HEX: &[u8; 16] = b"0123456789abcdef";

/// splitmix64: tiny, fast, and good enough to make fields look independent.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }

    /// A value in `0..bound` (bound > 0); the multiply-shift keeps it unbiased enough for fake
    /// data and avoids a division.
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(bound)) >> 64) as u64
    }
}

/// The splitmix64 finalizer, a bijection on u64.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn pick<T: Copy>(rng: &mut SplitMix, table: &[T]) -> T {
    table[rng.below(table.len() as u64) as usize]
}

/// A write position in a slice known to be large enough ([`RECORD_BUFFER`] for a record: the
/// longest table entries, a 20-digit index and 13-digit years fit with room to spare; a test
/// checks the bound).
struct Out<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Out<'_> {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }

    #[inline(always)]
    fn byte(&mut self, byte: u8) {
        self.buf[self.pos] = byte;
        self.pos += 1;
    }

    /// The low `digits` nibbles of `value`, most significant first.
    #[inline]
    fn hex(&mut self, value: u64, digits: usize) {
        let out = &mut self.buf[self.pos..self.pos + digits];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 4 * (digits - 1 - i);
            *slot = HEX[((value >> shift) & 0xf) as usize];
        }
        self.pos += digits;
    }

    #[inline]
    fn lowercase(&mut self, text: &str) {
        let out = &mut self.buf[self.pos..self.pos + text.len()];
        for (slot, byte) in out.iter_mut().zip(text.bytes()) {
            *slot = byte.to_ascii_lowercase();
        }
        self.pos += text.len();
    }

    /// `value` in decimal, left-padded with zeros to at least `width` digits.
    #[inline]
    fn digits(&mut self, mut value: u64, width: usize) {
        let count = value
            .checked_ilog10()
            .map_or(1, |log| log as usize + 1)
            .max(width);
        let out = &mut self.buf[self.pos..self.pos + count];
        for slot in out.iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.pos += count;
    }

    /// `value / 10^decimals` with exactly `decimals` fraction digits (always a decimal point,
    /// so JSON readers see a float).
    // Always inlined so that `decimals` is a constant and the divisions become multiplications.
    #[inline(always)]
    fn fixed(&mut self, value: i64, decimals: u32) {
        if value < 0 {
            self.byte(b'-');
        }
        let magnitude = value.unsigned_abs();
        let scale = 10u64.pow(decimals);
        self.digits(magnitude / scale, 1);
        self.byte(b'.');
        self.digits(magnitude % scale, decimals as usize);
    }

    /// `YYYY-MM-DDTHH:MM:SS[.fff]Z`.
    fn timestamp(&mut self, ns: i128, frac_digits: u8) {
        // 128-bit division is a slow library call; times up to year 2262 fit 64 bits.
        let (secs, subsec) = match i64::try_from(ns) {
            Ok(ns) => (
                ns.div_euclid(1_000_000_000),
                ns.rem_euclid(1_000_000_000) as u64,
            ),
            Err(_) => (
                ns.div_euclid(NANOS_PER_SEC) as i64,
                ns.rem_euclid(NANOS_PER_SEC) as u64,
            ),
        };
        let days = secs.div_euclid(86_400);
        let secs_of_day = secs.rem_euclid(86_400) as u64;
        let (year, month, day) = civil_from_days(days);
        if year < 0 {
            // Before year 0: not ISO-8601 basic, but validation keeps servers from getting here.
            self.byte(b'-');
        }
        self.digits(year.unsigned_abs(), 4);
        self.byte(b'-');
        self.digits(u64::from(month), 2);
        self.byte(b'-');
        self.digits(u64::from(day), 2);
        self.byte(b'T');
        self.digits(secs_of_day / 3600, 2);
        self.byte(b':');
        self.digits(secs_of_day / 60 % 60, 2);
        self.byte(b':');
        self.digits(secs_of_day % 60, 2);
        if frac_digits > 0 {
            self.byte(b'.');
            let divisor = 10u64.pow(9 - u32::from(frac_digits));
            self.digits(subsec / divisor, usize::from(frac_digits));
        }
        self.byte(b'Z');
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097) as u64;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe as i64 + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub(crate) const FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Daniel",
    "Lisa",
    "Matthew",
    "Nancy",
    "Anthony",
    "Betty",
    "Mark",
    "Sandra",
    "Paul",
    "Ashley",
    "Steven",
    "Emily",
    "Andrew",
    "Kimberly",
    "Joshua",
    "Donna",
    "Kenneth",
    "Michelle",
    "Kevin",
    "Carol",
    "Brian",
    "Amanda",
    "Aiko",
    "Lukas",
    "Chloe",
    "Mateo",
    "Ines",
    "Noah",
    "Freya",
    "Omar",
];
pub(crate) const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Mueller",
    "Rossi",
    "Dubois",
    "Tanaka",
    "Kowalski",
];
pub(crate) const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example.com",
    "test.example",
];
pub(crate) const STREETS: &[&str] = &[
    "Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Pine St", "Elm St", "Park Ave", "Lake Rd",
    "Hill St", "River Rd",
];
pub(crate) const CITIES: &[(&str, &str, u32)] = &[
    ("Springfield", "IL", 62_701),
    ("Portland", "OR", 97_201),
    ("Austin", "TX", 73_301),
    ("Denver", "CO", 80_201),
    ("Boston", "MA", 2_108),
    ("Atlanta", "GA", 30_301),
    ("Madison", "WI", 53_701),
    ("Tucson", "AZ", 85_701),
];
pub(crate) const LANGUAGES: &[&str] = &["en", "en", "en", "es", "fr", "de", "it", "ja", "pt"];
/// Country, time zone, latitude and longitude of a centre, in 1e-4 degrees.
pub(crate) const LOCATIONS: &[(&str, &str, i32, i32)] = &[
    ("US", "America/New_York", 407_128, -740_060),
    ("US", "America/Chicago", 418_781, -876_298),
    ("US", "America/Los_Angeles", 340_522, -1_182_437),
    ("CA", "America/Toronto", 436_532, -793_832),
    ("GB", "Europe/London", 515_074, -1_278),
    ("FR", "Europe/Paris", 488_566, 23_522),
    ("DE", "Europe/Berlin", 525_200, 134_050),
    ("JP", "Asia/Tokyo", 356_762, 1_396_503),
    ("BR", "America/Sao_Paulo", -235_505, -466_333),
    ("AU", "Australia/Sydney", -338_688, 1_512_093),
];
pub(crate) const TAGS: &[&str] = &[
    "customer",
    "newsletter",
    "vip-event",
    "trial",
    "webinar",
    "churn-risk",
    "partner",
    "beta",
];
