//! Cron expressions as Chaos Mesh's scheduler reads them (the robfig/cron dialect): five
//! fields (`minute hour day-of-month month day-of-week`), or six with a leading seconds field,
//! the descriptors `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`,
//! `@hourly`, and `@every <duration>`. Everything is evaluated in UTC; a `TZ=`/`CRON_TZ=`
//! prefix is accepted only when it names UTC, since the hub has no time-zone database and a
//! silently shifted schedule would be worse than a refusal.
//!
//! Field syntax: `*`, `?` (day fields only, same as `*`), `n`, `a-b`, `*/s`, `a-b/s`, `a/s`
//! (from `a` to the field's maximum), comma lists, and month (`JAN`…`DEC`) and weekday
//! (`SUN`…`SAT`) names in any case. Weekdays run 0 (Sunday) to 6, and 7 is read as Sunday.
//!
//! Why this parser is written here rather than taken from a crate: the dialect is robfig/cron's,
//! and no maintained crate implements exactly that. `croner` (the closest) accepts Quartz
//! extensions (`L`, `W`, `#`, a year field, a `+` day-of-week modifier) that Chaos Mesh would
//! refuse, so a schedule the hub accepted could fail on a cluster; it has no `@every`; and its
//! interval stepping is its own. The evaluation is the part a crate would really save, and it
//! is small here (a field-by-field forward walk). The test module pins that, on the syntax both
//! dialects share, this parser and `croner` give the same fire times (`agrees_with_croner`).

use std::time::Duration;

use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveDate, TimeZone, Timelike, Utc};

use chaoshub_schema::duration::parse_duration;

/// Why an expression is not a schedule. The message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(String);

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CronSchedule {
    /// Calendar fields, each a bit set of the values that match.
    Fields(Fields),
    /// `@every <duration>`: a fixed interval, at least one second, in whole seconds.
    Every(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    second: u64,
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    /// Whether the day fields were written as `*` or `?`. As in cron, when both day fields are
    /// restricted a day matches if either matches; otherwise both must.
    dom_any: bool,
    dow_any: bool,
}

struct Bounds {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECOND: Bounds = Bounds {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: Bounds = Bounds {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Bounds = Bounds {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Bounds = Bounds {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: Bounds = Bounds {
    name: "day of week",
    min: 0,
    // 7 is accepted as Sunday and folded onto 0 after parsing.
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// How far ahead `next_after` searches before concluding that an expression never fires
/// (`0 0 30 2 *`, February 30th). Leap days recur within 8 years.
const SEARCH_YEARS: i32 = 9;

impl CronSchedule {
    pub fn parse(text: &str) -> Result<CronSchedule, CronError> {
        let mut text = text.trim();
        if let Some((tz, rest)) = text.split_once(char::is_whitespace) {
            if let Some(zone) = tz
                .strip_prefix("TZ=")
                .or_else(|| tz.strip_prefix("CRON_TZ="))
            {
                if !matches!(zone, "UTC" | "Etc/UTC" | "Z" | "GMT" | "Etc/GMT") {
                    return Err(CronError(format!(
                        "time zone {zone:?} is not supported: the hub evaluates schedules in UTC; write the expression in UTC and drop the TZ= prefix"
                    )));
                }
                text = rest.trim();
            }
        }
        if let Some(descriptor) = text.strip_prefix('@') {
            return Self::descriptor(descriptor);
        }
        let fields: Vec<&str> = text.split_whitespace().collect();
        let (second, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(CronError(format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with a leading seconds field, or a descriptor such as @hourly or @every 30s; got {n} field(s) in {text:?}"
                )))
            }
        };
        let (dom, dom_any) = field(rest[2], &DOM, true)?;
        let (mut dow, dow_any) = field(rest[4], &DOW, true)?;
        if dow & (1 << 7) != 0 {
            dow = (dow & !(1 << 7)) | 1;
        }
        Ok(CronSchedule::Fields(Fields {
            second: field(second, &SECOND, false)?.0,
            minute: field(rest[0], &MINUTE, false)?.0,
            hour: field(rest[1], &HOUR, false)?.0,
            dom,
            month: field(rest[3], &MONTH, false)?.0,
            dow,
            dom_any,
            dow_any,
        }))
    }

    fn descriptor(name: &str) -> Result<CronSchedule, CronError> {
        if let Some(every) = name.strip_prefix("every") {
            let every = every.trim();
            let d = parse_duration(every).map_err(|e| {
                CronError(format!("@every needs a duration such as 30s or 1h30m: {e}"))
            })?;
            // The interval is kept in whole seconds and is at least one second, as robfig/cron
            // does, so a fire time is always on a second boundary.
            return Ok(CronSchedule::Every(Duration::from_secs(d.as_secs().max(1))));
        }
        let expression = match name {
            "yearly" | "annually" => "0 0 0 1 1 *",
            "monthly" => "0 0 0 1 * *",
            "weekly" => "0 0 0 * * 0",
            "daily" | "midnight" => "0 0 0 * * *",
            "hourly" => "0 0 * * * *",
            other => {
                return Err(CronError(format!(
                    "unknown descriptor @{other} (use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>)"
                )))
            }
        };
        Self::parse(expression)
    }

    /// The first fire time strictly after `t`, or `None` if the expression never fires.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            CronSchedule::Every(d) => {
                // Fire times are on whole seconds: drop the fraction, then add the interval.
                let base = t.with_nanosecond(0)?;
                base.checked_add_signed(ChronoDuration::from_std(*d).ok()?)
            }
            CronSchedule::Fields(f) => f.next_after(t),
        }
    }

    /// Every fire time in `(after, until]`, oldest first, at most `cap` of them; the flag says
    /// whether more were left out.
    pub fn fire_times(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        cap: usize,
    ) -> (Vec<DateTime<Utc>>, bool) {
        let mut out = Vec::new();
        let mut t = after;
        while let Some(next) = self.next_after(t) {
            if next > until {
                return (out, false);
            }
            if out.len() == cap {
                return (out, true);
            }
            out.push(next);
            t = next;
        }
        (out, false)
    }
}

impl Fields {
    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = bit(self.dom, date.day());
        let dow = bit(self.dow, date.weekday().num_days_from_sunday());
        if self.dom_any || self.dow_any {
            dom && dow
        } else {
            dom || dow
        }
    }

    fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Start at the next whole second, then walk forward field by field, from the coarsest:
        // a field that does not match jumps to the start of its next unit and resets the finer
        // fields. Each jump moves forward, so the walk ends.
        let mut t = t.with_nanosecond(0)? + ChronoDuration::seconds(1);
        let limit = t.year() + SEARCH_YEARS;
        loop {
            if t.year() > limit {
                return None;
            }
            if !bit(self.month, t.month()) {
                let (y, m) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single()?;
                continue;
            }
            if !self.day_matches(t.date_naive()) {
                let next_day = t.date_naive().succ_opt()?;
                t = Utc.from_utc_datetime(&next_day.and_hms_opt(0, 0, 0)?);
                continue;
            }
            if !bit(self.hour, t.hour()) {
                t = t.with_minute(0)?.with_second(0)? + ChronoDuration::hours(1);
                continue;
            }
            if !bit(self.minute, t.minute()) {
                t = t.with_second(0)? + ChronoDuration::minutes(1);
                continue;
            }
            if !bit(self.second, t.second()) {
                t += ChronoDuration::seconds(1);
                continue;
            }
            return Some(t);
        }
    }
}

fn bit(set: u64, value: u32) -> bool {
    set & (1u64 << value) != 0
}

/// Parses one field into a bit set; the flag says whether it was `*` or `?`.
fn field(text: &str, bounds: &Bounds, day_field: bool) -> Result<(u64, bool), CronError> {
    let mut set = 0u64;
    let any = text == "*" || (day_field && text == "?");
    for part in text.split(',') {
        set |= part_bits(part, bounds, day_field)
            .map_err(|e| CronError(format!("{} field {text:?}: {e}", bounds.name)))?;
    }
    Ok((set, any))
}

fn part_bits(part: &str, bounds: &Bounds, day_field: bool) -> Result<u64, String> {
    if part.is_empty() {
        return Err("empty list item".into());
    }
    let (range, step) = match part.split_once('/') {
        Some((r, s)) => {
            let step: u32 = s
                .parse()
                .map_err(|_| format!("step {s:?} is not a whole number"))?;
            if step == 0 {
                return Err("a step of 0 never advances".into());
            }
            (r, Some(step))
        }
        None => (part, None),
    };
    let (lo, hi) = if range == "*" || (day_field && range == "?") {
        (bounds.min, bounds.max)
    } else if let Some((a, b)) = range.split_once('-') {
        (value(a, bounds)?, value(b, bounds)?)
    } else {
        let v = value(range, bounds)?;
        // `a/s` runs from `a` to the maximum, as in robfig/cron.
        (v, if step.is_some() { bounds.max } else { v })
    };
    if lo > hi {
        return Err(format!("range {lo}-{hi} runs backwards"));
    }
    let step = step.unwrap_or(1);
    let mut bits = 0u64;
    let mut v = lo;
    while v <= hi {
        bits |= 1 << v;
        v += step;
    }
    Ok(bits)
}

fn value(text: &str, bounds: &Bounds) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = bounds.names.iter().position(|n| *n == lower) {
        // Month names start at 1, weekday names at 0 (Sunday).
        return Ok(i as u32 + if bounds.min == 1 { 1 } else { 0 });
    }
    let v: u32 = text.parse().map_err(|_| {
        if bounds.names.is_empty() {
            format!("{text:?} is not a number")
        } else {
            format!(
                "{text:?} is neither a number nor a name ({})",
                bounds.names.join(", ")
            )
        }
    })?;
    if v < bounds.min || v > bounds.max {
        return Err(format!("{v} is out of range {}-{}", bounds.min, bounds.max));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        crate::time::parse(text).unwrap()
    }

    fn next(expr: &str, after: &str) -> String {
        let s = CronSchedule::parse(expr).unwrap();
        crate::time::format(s.next_after(at(after)).unwrap())
    }

    #[test]
    fn next_fire_times_table() {
        let table = [
            // (expression, after, next)
            (
                "*/5 * * * *",
                "2030-01-01T00:00:00Z",
                "2030-01-01T00:05:00.000Z",
            ),
            (
                "*/5 * * * *",
                "2030-01-01T00:04:59.900Z",
                "2030-01-01T00:05:00.000Z",
            ),
            (
                "0 * * * *",
                "2030-01-01T00:00:00Z",
                "2030-01-01T01:00:00.000Z",
            ),
            (
                "30 2 * * *",
                "2030-01-01T03:00:00Z",
                "2030-01-02T02:30:00.000Z",
            ),
            (
                "*/10 * * * * *",
                "2030-01-01T00:00:05Z",
                "2030-01-01T00:00:10.000Z",
            ),
            (
                "15 30 * * * *",
                "2030-01-01T00:00:00Z",
                "2030-01-01T00:30:15.000Z",
            ),
            (
                "0 0 1 * *",
                "2030-01-15T00:00:00Z",
                "2030-02-01T00:00:00.000Z",
            ),
            (
                "0 0 * * MON",
                "2030-01-01T00:00:00Z",
                "2030-01-07T00:00:00.000Z",
            ),
            (
                "0 0 * * 7",
                "2030-01-01T00:00:00Z",
                "2030-01-06T00:00:00.000Z",
            ),
            (
                "0 0 * * sun",
                "2030-01-01T00:00:00Z",
                "2030-01-06T00:00:00.000Z",
            ),
            (
                "0 12 * JAN-MAR/2 *",
                "2030-02-01T00:00:00Z",
                "2030-03-01T12:00:00.000Z",
            ),
            (
                "0 0 29 2 *",
                "2030-01-01T00:00:00Z",
                "2032-02-29T00:00:00.000Z",
            ),
            // Both day fields restricted: either matches (the 13th, or a Friday).
            (
                "0 0 13 * FRI",
                "2030-01-01T00:00:00Z",
                "2030-01-04T00:00:00.000Z",
            ),
            (
                "0 0 13 * FRI",
                "2030-01-12T00:00:00Z",
                "2030-01-13T00:00:00.000Z",
            ),
            // One restricted and one `?`: only the restricted one counts.
            (
                "0 0 13 * ?",
                "2030-01-01T00:00:00Z",
                "2030-01-13T00:00:00.000Z",
            ),
            (
                "5/20 * * * *",
                "2030-01-01T00:06:00Z",
                "2030-01-01T00:25:00.000Z",
            ),
            (
                "1,2,40-42 * * * *",
                "2030-01-01T00:02:00Z",
                "2030-01-01T00:40:00.000Z",
            ),
            (
                "59 23 31 12 *",
                "2030-01-01T00:00:00Z",
                "2030-12-31T23:59:00.000Z",
            ),
            (
                "@hourly",
                "2030-01-01T00:59:59Z",
                "2030-01-01T01:00:00.000Z",
            ),
            ("@daily", "2030-01-01T00:00:00Z", "2030-01-02T00:00:00.000Z"),
            (
                "@midnight",
                "2030-01-01T10:00:00Z",
                "2030-01-02T00:00:00.000Z",
            ),
            (
                "@weekly",
                "2030-01-01T00:00:00Z",
                "2030-01-06T00:00:00.000Z",
            ),
            (
                "@monthly",
                "2030-01-01T00:00:00Z",
                "2030-02-01T00:00:00.000Z",
            ),
            (
                "@yearly",
                "2030-01-01T00:00:00Z",
                "2031-01-01T00:00:00.000Z",
            ),
            (
                "@annually",
                "2030-06-01T00:00:00Z",
                "2031-01-01T00:00:00.000Z",
            ),
            (
                "@every 5s",
                "2030-01-01T00:00:00.700Z",
                "2030-01-01T00:00:05.000Z",
            ),
            (
                "@every 1h30m",
                "2030-01-01T00:00:00Z",
                "2030-01-01T01:30:00.000Z",
            ),
            (
                "@every 100ms",
                "2030-01-01T00:00:00Z",
                "2030-01-01T00:00:01.000Z",
            ),
            (
                "TZ=UTC 0 6 * * *",
                "2030-01-01T00:00:00Z",
                "2030-01-01T06:00:00.000Z",
            ),
            (
                "CRON_TZ=Etc/UTC 0 6 * * *",
                "2030-01-01T07:00:00Z",
                "2030-01-02T06:00:00.000Z",
            ),
        ];
        for (expr, after, want) in table {
            assert_eq!(next(expr, after), want, "{expr} after {after}");
        }
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        let table = [
            ("", "expected 5 fields"),
            ("* * * *", "got 4 field(s)"),
            ("* * * * * * *", "got 7 field(s)"),
            ("60 * * * *", "minute field \"60\": 60 is out of range 0-59"),
            ("* 24 * * *", "hour field"),
            ("* * 0 * *", "day of month field"),
            ("* * * 13 *", "month field"),
            ("* * * * 8", "day of week field"),
            ("*/0 * * * *", "a step of 0"),
            ("5-1 * * * *", "runs backwards"),
            ("a * * * *", "is not a number"),
            ("* * * FOO *", "neither a number nor a name"),
            ("1,,2 * * * *", "empty list item"),
            ("? * * * *", "minute field"),
            ("@fortnightly", "unknown descriptor @fortnightly"),
            ("@every", "@every needs a duration"),
            ("@every soon", "@every needs a duration"),
            (
                "TZ=Europe/Paris 0 6 * * *",
                "time zone \"Europe/Paris\" is not supported",
            ),
        ];
        for (expr, want) in table {
            let err = CronSchedule::parse(expr).unwrap_err().to_string();
            assert!(err.contains(want), "{expr:?}: {err:?} lacks {want:?}");
        }
    }

    #[test]
    fn an_impossible_date_never_fires() {
        let s = CronSchedule::parse("0 0 30 2 *").unwrap();
        assert_eq!(s.next_after(at("2030-01-01T00:00:00Z")), None);
    }

    #[test]
    fn fire_times_lists_a_window_and_caps_it() {
        let s = CronSchedule::parse("@every 10s").unwrap();
        let (times, more) =
            s.fire_times(at("2030-01-01T00:00:00Z"), at("2030-01-01T00:01:00Z"), 100);
        assert_eq!(times.len(), 6);
        assert!(!more);
        let (times, more) = s.fire_times(at("2030-01-01T00:00:00Z"), at("2030-01-01T00:01:00Z"), 3);
        assert_eq!(times.len(), 3);
        assert!(more);
    }

    fn field_strategy(min: u32, max: u32) -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_string()),
            (min..=max).prop_map(|v| v.to_string()),
            (min..=max, min..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (1u32..=(max - min + 1)).prop_map(|s| format!("*/{s}")),
            (min..=max, min..=max).prop_map(|(a, b)| format!("{a},{b}")),
        ]
    }

    fn expression() -> impl Strategy<Value = String> {
        (
            field_strategy(0, 59),
            field_strategy(0, 59),
            field_strategy(0, 23),
            field_strategy(1, 28),
            field_strategy(1, 12),
            field_strategy(0, 6),
        )
            .prop_map(|(s, m, h, d, mo, w)| format!("{s} {m} {h} {d} {mo} {w}"))
    }

    /// Whether `t` is a fire time, checked directly against the expression's text.
    fn matches(expr: &str, t: DateTime<Utc>) -> bool {
        let CronSchedule::Fields(f) = CronSchedule::parse(expr).unwrap() else {
            unreachable!()
        };
        t.nanosecond() == 0
            && bit(f.second, t.second())
            && bit(f.minute, t.minute())
            && bit(f.hour, t.hour())
            && bit(f.month, t.month())
            && f.day_matches(t.date_naive())
    }

    /// One field in the syntax robfig/cron and croner share: `*`, a value, a range, a stepped
    /// star or range, a list, and names where the field has them.
    fn shared_field(min: u32, max: u32, names: &'static [&'static str]) -> BoxedStrategy<String> {
        let plain = prop_oneof![
            Just("*".to_string()),
            (min..=max).prop_map(|v| v.to_string()),
            (min..=max, min..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (1u32..=(max - min + 1)).prop_map(|s| format!("*/{s}")),
            (min..=max, min..=max, 1u32..=5).prop_map(|(a, b, s)| format!(
                "{}-{}/{s}",
                a.min(b),
                a.max(b)
            )),
            proptest::collection::btree_set(min..=max, 2..4).prop_map(|set| set
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")),
        ];
        if names.is_empty() {
            plain.boxed()
        } else {
            prop_oneof![
                3 => plain,
                1 => proptest::sample::select(names).prop_map(str::to_ascii_uppercase),
            ]
            .boxed()
        }
    }

    fn shared_expression() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just(None), shared_field(0, 59, &[]).prop_map(Some)],
            shared_field(0, 59, &[]),
            shared_field(0, 23, &[]),
            shared_field(1, 31, &[]),
            shared_field(1, 12, MONTH.names),
            shared_field(0, 6, DOW.names),
        )
            .prop_map(|(s, m, h, d, mo, w)| match s {
                Some(s) => format!("{s} {m} {h} {d} {mo} {w}"),
                None => format!("{m} {h} {d} {mo} {w}"),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Differential test against a maintained crate on the syntax both accept: the next
        /// five fire times after a random moment agree, including the cron rule that a day
        /// matches either day field when both are restricted.
        #[test]
        fn agrees_with_croner(expr in shared_expression(), offset in 0i64..300_000_000) {
            let ours = CronSchedule::parse(&expr).unwrap();
            let theirs = croner::parser::CronParser::builder()
                .seconds(croner::parser::Seconds::Optional)
                .year(croner::parser::Year::Disallowed)
                .build()
                .parse(&expr)
                .unwrap();
            let mut t = at("2030-01-01T00:00:00Z") + ChronoDuration::seconds(offset);
            for _ in 0..5 {
                let Some(mine) = ours.next_after(t) else {
                    // Never fires (say, the 31st of a 30-day month only): croner searches
                    // thousands of years to say the same, so that case is left to the
                    // `an_impossible_date_never_fires` test.
                    break;
                };
                let other = theirs.find_next_occurrence(&t, false).unwrap();
                prop_assert_eq!(mine, other, "{} after {}", expr, t);
                t = mine;
            }
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC{0,40}") {
            let _ = CronSchedule::parse(&text);
        }

        #[test]
        fn next_is_later_and_a_fire_time(expr in expression(), offset in 0i64..400_000_000) {
            let schedule = CronSchedule::parse(&expr).unwrap();
            let t = at("2030-01-01T00:00:00Z") + ChronoDuration::seconds(offset);
            if let Some(n) = schedule.next_after(t) {
                prop_assert!(n > t);
                prop_assert!(matches(&expr, n), "{expr}: {n} is not a fire time");
            }
        }

        #[test]
        fn next_skips_no_fire_time(
            minute in field_strategy(0, 59),
            hour in field_strategy(0, 23),
            offset in 0i64..10_000_000,
        ) {
            // Every-second expressions within a day: brute force over whole minutes.
            let expr = format!("0 {minute} {hour} * * *");
            let schedule = CronSchedule::parse(&expr).unwrap();
            let t = at("2030-03-01T00:00:00Z") + ChronoDuration::seconds(offset);
            let n = schedule.next_after(t).unwrap();
            prop_assert!(n - t <= ChronoDuration::days(1));
            let mut probe = t.with_second(0).unwrap() + ChronoDuration::minutes(1);
            while probe < n {
                prop_assert!(!matches(&expr, probe), "{expr}: skipped {probe} before {n}");
                probe += ChronoDuration::minutes(1);
            }
        }

        #[test]
        fn every_fires_at_the_interval(secs in 1u64..100_000, offset in 0i64..1_000_000) {
            let schedule = CronSchedule::parse(&format!("@every {secs}s")).unwrap();
            let t = at("2030-01-01T00:00:00Z") + ChronoDuration::seconds(offset);
            let n = schedule.next_after(t).unwrap();
            prop_assert_eq!((n - t).num_seconds() as u64, secs);
        }
    }
}
