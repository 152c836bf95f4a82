//! Number, price, duration and date formatting for humans (UTC, English, no locale machinery).

/// Placeholder shown wherever a value is unknown.
pub const MISSING: &str = "—";

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Compact count: `950`, `1.2K`, `34.5M`, `5.6B`, `1.2T`.
pub fn compact(value: f64) -> String {
    if !value.is_finite() {
        return MISSING.to_owned();
    }
    let sign = if value < 0.0 { "-" } else { "" };
    let v = value.abs();
    let units = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")];
    for (scale, suffix) in units {
        // The 0.9995 factor sends 999,960 to "1M" rather than "1000K".
        if v >= scale * 0.9995 {
            let scaled = v / scale;
            let text = if scaled >= 100.0 {
                format!("{scaled:.0}")
            } else {
                format!("{scaled:.1}")
            };
            return format!("{sign}{}{suffix}", trim_zero(&text));
        }
    }
    if v >= 1.0 || v == 0.0 {
        format!("{sign}{}", trim_zero(&format!("{v:.1}")))
    } else {
        format!("{sign}{}", trim_zeros(&format!("{v:.3}")))
    }
}

/// Compact token count: `1.2K`, `3.4M`, `5.6B`.
pub fn tokens(value: u64) -> String {
    compact(value as f64)
}

/// Integer with thousands separators: `1,048,576`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A USD amount (usually per million tokens): `$0`, `$0.50`, `$0.075`, `$0.0000012`, `$15`, `$2.50`, `$1,200`.
pub fn usd(value: f64) -> String {
    if !value.is_finite() {
        return MISSING.to_owned();
    }
    let sign = if value < 0.0 { "-" } else { "" };
    let v = value.abs();
    let body = if v == 0.0 {
        "0".to_owned()
    } else if v >= 1000.0 {
        thousands(v.round() as u64)
    } else if v >= 1.0 {
        let text = format!("{v:.2}");
        text.strip_suffix(".00").map(str::to_owned).unwrap_or(text)
    } else {
        // Enough decimals to show two significant digits, but never fewer than two.
        let magnitude = -v.log10().floor() as i32;
        let decimals = (magnitude + 1).clamp(2, 10) as usize;
        let text = format!("{v:.decimals$}");
        let trimmed = text.trim_end_matches('0');
        let places = trimmed.split_once('.').map_or(0, |(_, frac)| frac.len());
        if places < 2 {
            format!("{v:.2}")
        } else {
            trimmed.to_owned()
        }
    };
    format!("{sign}${body}")
}

/// Optional price per million tokens; `None` renders as a dash.
pub fn price(value: Option<f64>) -> String {
    value.map_or_else(|| MISSING.to_owned(), usd)
}

/// Milliseconds: `4.2 ms`, `420 ms`, `1,250 ms`, `12.5 s`.
pub fn millis(value: f64) -> String {
    if !value.is_finite() {
        return MISSING.to_owned();
    }
    let v = value.max(0.0);
    if v < 10.0 {
        format!("{} ms", trim_zero(&format!("{v:.1}")))
    } else if v < 10_000.0 {
        format!("{} ms", thousands(v.round() as u64))
    } else {
        format!("{} s", trim_zero(&format!("{:.1}", v / 1000.0)))
    }
}

/// Throughput: `85.3 tok/s`, `142 tok/s`.
pub fn tokens_per_sec(value: f64) -> String {
    if !value.is_finite() {
        return MISSING.to_owned();
    }
    let v = value.max(0.0);
    if v < 100.0 {
        format!("{} tok/s", trim_zero(&format!("{v:.1}")))
    } else {
        format!("{} tok/s", thousands(v.round() as u64))
    }
}

/// Percentage 0–100: `99.2%`, `99.95%`, `100%`.
pub fn percent(value: f64) -> String {
    if !value.is_finite() {
        return MISSING.to_owned();
    }
    let text = if value > 99.0 && value < 100.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.1}")
    };
    format!("{}%", trim_zeros(&text))
}

/// Runs `f` on a present value, or shows the dash.
pub fn opt<T>(value: Option<T>, f: impl Fn(T) -> String) -> String {
    value.map_or_else(|| MISSING.to_owned(), f)
}

fn trim_zero(text: &str) -> &str {
    text.strip_suffix(".0").unwrap_or(text)
}

fn trim_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

/// A calendar date and time of day in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
}

/// Converts unix seconds to a UTC calendar date by walking whole years from 1970 (a few dozen steps).
pub fn civil(unix_secs: i64) -> Civil {
    let mut days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let mut year = 1970;
    while days < 0 {
        year -= 1;
        days += year_len(year);
    }
    while days >= year_len(year) {
        days -= year_len(year);
        year += 1;
    }
    let mut month = 0;
    while days >= month_len(year, month) {
        days -= month_len(year, month);
        month += 1;
    }
    Civil {
        year,
        month: month as u32 + 1,
        day: days as u32 + 1,
        hour: (secs / 3600) as u32,
        minute: (secs % 3600 / 60) as u32,
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn year_len(year: i64) -> i64 {
    if is_leap(year) { 366 } else { 365 }
}

fn month_len(year: i64, month0: usize) -> i64 {
    const LENGTHS: [i64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if month0 == 1 && is_leap(year) {
        29
    } else {
        LENGTHS[month0.min(11)]
    }
}

/// `Mar 14, 2023`.
pub fn date(unix_secs: i64) -> String {
    let c = civil(unix_secs);
    format!("{} {}, {}", MONTHS[c.month as usize - 1], c.day, c.year)
}

/// `Mar 14` — for axis labels.
pub fn short_date(unix_secs: i64) -> String {
    let c = civil(unix_secs);
    format!("{} {}", MONTHS[c.month as usize - 1], c.day)
}

/// `14:00` — for axis labels.
pub fn hour_minute(unix_secs: i64) -> String {
    let c = civil(unix_secs);
    format!("{:02}:{:02}", c.hour, c.minute)
}

/// `Mar 14, 14:00 UTC` — for tooltips.
pub fn date_time(unix_secs: i64) -> String {
    let c = civil(unix_secs);
    format!(
        "{} {}, {:02}:{:02} UTC",
        MONTHS[c.month as usize - 1],
        c.day,
        c.hour,
        c.minute
    )
}

/// `2024-03-14` → `Mar 14`; anything that is not an ISO date is returned unchanged.
pub fn day_label(iso_day: &str) -> String {
    let mut parts = iso_day.get(..10).unwrap_or(iso_day).splitn(3, '-');
    let (Some(_), Some(month), Some(day)) = (parts.next(), parts.next(), parts.next()) else {
        return iso_day.to_owned();
    };
    match (month.parse::<usize>(), day.parse::<u32>()) {
        (Ok(m @ 1..=12), Ok(d @ 1..=31)) => format!("{} {d}", MONTHS[m - 1]),
        _ => iso_day.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_counts() {
        assert_eq!(tokens(0), "0");
        assert_eq!(tokens(950), "950");
        assert_eq!(tokens(1_000), "1K");
        assert_eq!(tokens(1_234), "1.2K");
        assert_eq!(tokens(12_345), "12.3K");
        assert_eq!(tokens(123_456), "123K");
        assert_eq!(tokens(999_999), "1M");
        assert_eq!(tokens(3_400_000), "3.4M");
        assert_eq!(tokens(5_600_000_000), "5.6B");
        assert_eq!(tokens(u64::MAX), "18446744T");
        assert_eq!(compact(0.25), "0.25");
        assert_eq!(compact(-2500.0), "-2.5K");
        assert_eq!(compact(f64::NAN), MISSING);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_048_576), "1,048,576");
    }

    #[test]
    fn prices() {
        assert_eq!(usd(0.0), "$0");
        assert_eq!(usd(0.5), "$0.50");
        assert_eq!(usd(0.075), "$0.075");
        assert_eq!(usd(0.0001), "$0.0001");
        assert_eq!(usd(0.00000123), "$0.0000012");
        assert_eq!(usd(2.5), "$2.50");
        assert_eq!(usd(15.0), "$15");
        assert_eq!(usd(1234.4), "$1,234");
        assert_eq!(usd(f64::INFINITY), MISSING);
        assert_eq!(price(None), MISSING);
        assert_eq!(price(Some(30.0)), "$30");
    }

    #[test]
    fn durations_rates_and_percentages() {
        assert_eq!(millis(4.25), "4.2 ms");
        assert_eq!(millis(420.4), "420 ms");
        assert_eq!(millis(1250.0), "1,250 ms");
        assert_eq!(millis(12_500.0), "12.5 s");
        assert_eq!(tokens_per_sec(85.34), "85.3 tok/s");
        assert_eq!(tokens_per_sec(142.2), "142 tok/s");
        assert_eq!(percent(100.0), "100%");
        assert_eq!(percent(99.2), "99.2%");
        assert_eq!(percent(99.95), "99.95%");
        assert_eq!(percent(0.0), "0%");
        assert_eq!(opt(None::<f64>, millis), MISSING);
    }

    #[test]
    fn calendar_dates() {
        assert_eq!(
            civil(0),
            Civil {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0
            }
        );
        assert_eq!(date(1_678_752_000), "Mar 14, 2023");
        assert_eq!(date(951_782_400), "Feb 29, 2000");
        assert_eq!(date(-86_400), "Dec 31, 1969");
        assert_eq!(
            date_time(1_709_164_800 + 14 * 3600 + 30 * 60),
            "Feb 29, 14:30 UTC"
        );
        assert_eq!(short_date(1_735_689_599), "Dec 31");
        assert_eq!(hour_minute(1_735_689_599), "23:59");
        assert_eq!(day_label("2024-03-14"), "Mar 14");
        assert_eq!(day_label("2024-03-14 00:00:00"), "Mar 14");
        assert_eq!(day_label("yesterday"), "yesterday");
        assert_eq!(day_label("2024-13-01"), "2024-13-01");
    }
}
