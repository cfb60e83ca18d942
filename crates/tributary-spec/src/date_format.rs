//! `DateFormat`: the date patterns of `scheduleParams`, in Java style (`yyyy-MM-dd'T'HH:mm:ssZ`,
//! `SSS`, `XXX`) and .NET style (`fffffff`, `FFF`, `K`, `zzz`, `tt`), compiled once.
//!
//! Both dialects agree on `yyyy yy MM M dd d HH H hh h mm m ss s` and on non-letters being
//! literal. A pattern is read as .NET when it uses `f`, `F`, `K` or `tt`; that decides the
//! letters the dialects disagree on (`z`: zone name "UTC" in Java, offset in .NET; `ddd`:
//! weekday name in .NET). An unquoted `T` is a literal, as in the reference's
//! `yyyy-MM-ddTHH:mm:ssZ`. Schedule windows are UTC, so zones and offsets always render UTC:
//! Java `Z` -> `+0000`, `XXX` -> `Z`, `xxx` -> `+00:00`; .NET `K` -> `Z`, `zzz` -> `+00:00`.

use std::fmt;

use chrono::{DateTime, Datelike, Timelike, Utc};

/// A compiled date pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct DateFormat {
    pattern: String,
    items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Literal(String),
    /// Year padded to `width` digits (`yy` = the last two digits).
    Year {
        two_digits: bool,
        width: usize,
    },
    Month {
        width: usize,
    },
    MonthName {
        long: bool,
    },
    Day {
        width: usize,
    },
    DayOfYear {
        width: usize,
    },
    WeekdayName {
        long: bool,
    },
    Hour24 {
        width: usize,
    },
    Hour12 {
        width: usize,
    },
    Minute {
        width: usize,
    },
    Second {
        width: usize,
    },
    /// `digits` digits of the second's fraction, truncated; `trim` drops trailing zeros (.NET `F`).
    Fraction {
        digits: usize,
        trim: bool,
    },
    AmPm,
    /// A fixed text for the UTC zone / offset (`+0000`, `Z`, `+00:00`, `UTC`).
    Zone(&'static str),
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

impl DateFormat {
    /// Compiles a pattern. The error is a lowercase message naming the offending letter.
    pub fn parse(pattern: &str) -> Result<DateFormat, String> {
        if pattern.trim().is_empty() {
            return Err(
                "expected a date pattern such as \"yyyy-MM-dd'T'HH:mm:ssZ\", found an empty string"
                    .to_owned(),
            );
        }
        let is_dotnet = is_dotnet(pattern);
        let chars: Vec<char> = pattern.chars().collect();
        let mut items = Vec::new();
        let mut idx = 0;
        while idx < chars.len() {
            let ch = chars[idx];
            if ch == '\'' {
                // Quoted literal; '' is a single quote (inside or outside quotes).
                if chars.get(idx + 1) == Some(&'\'') {
                    push_literal(&mut items, "'");
                    idx += 2;
                    continue;
                }
                let mut text = String::new();
                idx += 1;
                loop {
                    match chars.get(idx) {
                        None => {
                            return Err(format!(
                                "unterminated quoted literal in date pattern {pattern:?}"
                            ));
                        }
                        Some('\'') if chars.get(idx + 1) == Some(&'\'') => {
                            text.push('\'');
                            idx += 2;
                        }
                        Some('\'') => {
                            idx += 1;
                            break;
                        }
                        Some(other) => {
                            text.push(*other);
                            idx += 1;
                        }
                    }
                }
                push_literal(&mut items, &text);
                continue;
            }
            if !ch.is_ascii_alphabetic() {
                push_literal(&mut items, &ch.to_string());
                idx += 1;
                continue;
            }
            let mut count = 1;
            while chars.get(idx + count) == Some(&ch) {
                count += 1;
            }
            idx += count;
            let item = letter_item(ch, count, is_dotnet).ok_or_else(|| {
                format!(
                    "unknown date pattern letter {:?} in {pattern:?}; known: y M d H h m s S f F a tt E Z X x z K D T, quote literal text with '...'",
                    ch.to_string().repeat(count)
                )
            })?;
            match item {
                Item::Literal(text) => push_literal(&mut items, &text),
                other => items.push(other),
            }
        }
        Ok(DateFormat {
            pattern: pattern.to_owned(),
            items,
        })
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Formats an instant (UTC).
    pub fn format(&self, time: DateTime<Utc>) -> String {
        let mut out = String::with_capacity(self.pattern.len() + 8);
        for item in &self.items {
            match item {
                Item::Literal(text) => out.push_str(text),
                Item::Year {
                    two_digits: true, ..
                } => push_padded(&mut out, i64::from(time.year()).rem_euclid(100), 2),
                Item::Year {
                    two_digits: false,
                    width,
                } => push_padded(&mut out, i64::from(time.year()), *width),
                Item::Month { width } => push_padded(&mut out, i64::from(time.month()), *width),
                Item::MonthName { long } => {
                    let name = MONTHS[time.month0() as usize];
                    out.push_str(if *long { name } else { &name[..3] });
                }
                Item::Day { width } => push_padded(&mut out, i64::from(time.day()), *width),
                Item::DayOfYear { width } => {
                    push_padded(&mut out, i64::from(time.ordinal()), *width)
                }
                Item::WeekdayName { long } => {
                    let name = WEEKDAYS[time.weekday().num_days_from_monday() as usize];
                    out.push_str(if *long { name } else { &name[..3] });
                }
                Item::Hour24 { width } => push_padded(&mut out, i64::from(time.hour()), *width),
                Item::Hour12 { width } => {
                    let hour = time.hour() % 12;
                    push_padded(
                        &mut out,
                        i64::from(if hour == 0 { 12 } else { hour }),
                        *width,
                    );
                }
                Item::Minute { width } => push_padded(&mut out, i64::from(time.minute()), *width),
                Item::Second { width } => push_padded(&mut out, i64::from(time.second()), *width),
                Item::Fraction { digits, trim } => {
                    // Leap-second nanos (>= 1e9) are clamped so the fraction keeps its width.
                    let nanos = format!("{:09}", time.nanosecond().min(999_999_999));
                    let mut fraction: String = nanos.chars().take(*digits).collect();
                    while fraction.len() < *digits {
                        fraction.push('0');
                    }
                    if *trim {
                        let kept = fraction.trim_end_matches('0').len();
                        fraction.truncate(kept);
                        // .NET drops the separating point too when nothing is left.
                        if fraction.is_empty() && out.ends_with('.') {
                            out.pop();
                        }
                    }
                    out.push_str(&fraction);
                }
                Item::AmPm => out.push_str(if time.hour() < 12 { "AM" } else { "PM" }),
                Item::Zone(text) => out.push_str(text),
            }
        }
        out
    }
}

impl fmt::Debug for DateFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DateFormat({:?})", self.pattern)
    }
}

impl fmt::Display for DateFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

/// A .NET pattern uses `f`, `F`, `K` or `tt` outside quotes.
fn is_dotnet(pattern: &str) -> bool {
    let mut in_quotes = false;
    let mut previous = '\0';
    for ch in pattern.chars() {
        if ch == '\'' {
            in_quotes = !in_quotes;
        } else if !in_quotes && (matches!(ch, 'f' | 'F' | 'K') || (ch == 't' && previous == 't')) {
            return true;
        }
        previous = ch;
    }
    false
}

fn letter_item(letter: char, count: usize, is_dotnet: bool) -> Option<Item> {
    Some(match letter {
        'y' | 'u' if count == 2 => Item::Year {
            two_digits: true,
            width: 2,
        },
        'y' | 'u' => Item::Year {
            two_digits: false,
            width: count.max(4),
        },
        'M' | 'L' if count <= 2 => Item::Month { width: count },
        'M' | 'L' => Item::MonthName { long: count >= 4 },
        'd' if is_dotnet && count >= 3 => Item::WeekdayName { long: count >= 4 },
        'd' if count <= 2 => Item::Day { width: count },
        'D' if count <= 3 => Item::DayOfYear { width: count },
        'E' => Item::WeekdayName { long: count >= 4 },
        'H' if count <= 2 => Item::Hour24 { width: count },
        'h' if count <= 2 => Item::Hour12 { width: count },
        'm' if count <= 2 => Item::Minute { width: count },
        's' if count <= 2 => Item::Second { width: count },
        'S' if count <= 9 => Item::Fraction {
            digits: count,
            trim: false,
        },
        'f' if count <= 7 => Item::Fraction {
            digits: count,
            trim: false,
        },
        'F' if count <= 7 => Item::Fraction {
            digits: count,
            trim: true,
        },
        'a' if count == 1 => Item::AmPm,
        't' if count == 2 => Item::AmPm,
        'Z' if count <= 3 => Item::Zone("+0000"),
        'Z' if count == 4 => Item::Zone("GMT"),
        'Z' if count == 5 => Item::Zone("Z"),
        'X' if count <= 3 => Item::Zone("Z"),
        'x' if count == 1 => Item::Zone("+00"),
        'x' if count == 2 => Item::Zone("+0000"),
        'x' if count == 3 => Item::Zone("+00:00"),
        'K' if count == 1 => Item::Zone("Z"),
        'z' if is_dotnet && count <= 2 => Item::Zone("+00"),
        'z' if is_dotnet && count == 3 => Item::Zone("+00:00"),
        'z' if count <= 3 => Item::Zone("UTC"),
        'z' if count == 4 => Item::Zone("Coordinated Universal Time"),
        'T' => Item::Literal("T".repeat(count)),
        _ => return None,
    })
}

fn push_literal(items: &mut Vec<Item>, text: &str) {
    if let Some(Item::Literal(last)) = items.last_mut() {
        last.push_str(text);
    } else {
        items.push(Item::Literal(text.to_owned()));
    }
}

fn push_padded(out: &mut String, value: i64, width: usize) {
    use std::fmt::Write as _;
    // Writing to a String cannot fail.
    let _ = write!(out, "{value:0width$}");
}

#[cfg(test)]
mod tests;
