//! An envelope's `effective_at` (contract section 12): an instant, or a
//! day in the tenant's time zone, and when it makes a command due.

use super::outcome::Rejection;
use super::payload::parse_time;
use std::time::Duration;
use time::OffsetDateTime;

/// An envelope's `effective_at`: an instant, or a day in the tenant's zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EffectiveAt {
    At(OffsetDateTime),
    Day(time::Date),
}

impl EffectiveAt {
    /// `YYYY-MM-DD`, or an RFC 3339 timestamp.
    pub fn parse(s: &str) -> Result<EffectiveAt, Rejection> {
        let day = time::macros::format_description!("[year]-[month]-[day]");
        if s.len() == 10 {
            return time::Date::parse(s, &day)
                .map(EffectiveAt::Day)
                .map_err(|_| {
                    Rejection::invalid(
                        "effective_at must be an RFC 3339 timestamp or a date YYYY-MM-DD",
                    )
                });
        }
        parse_time("effective_at", s).map(EffectiveAt::At)
    }

    /// The instant it names: a day is its first instant in `time_zone`,
    /// local midnight, or the end of the gap on a day whose midnight a
    /// daylight-saving change skips.
    pub fn instant(self, time_zone: &str) -> Result<OffsetDateTime, Rejection> {
        let day = match self {
            // To the microsecond, as Postgres keeps it: the reply and
            // `schedule list` then name the same instant.
            EffectiveAt::At(t) => {
                return t
                    .replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
                    .map_err(|_| Rejection::invalid("effective_at is out of range"))
            }
            EffectiveAt::Day(d) => d,
        };
        let unknown =
            || Rejection::invalid(format!("the tenant's time_zone `{time_zone}` is unknown"));
        let tz = jiff::tz::TimeZone::get(time_zone).map_err(|_| unknown())?;
        let midnight = jiff::civil::date(day.year() as i16, day.month() as i8, day.day() as i8)
            .at(0, 0, 0, 0)
            .to_zoned(tz)
            .map_err(|_| Rejection::invalid("effective_at is out of range"))?;
        OffsetDateTime::from_unix_timestamp(midnight.timestamp().as_second())
            .map_err(|_| Rejection::invalid("effective_at is out of range"))
    }
}

/// When a command with `effective` must apply: `Some(instant)` if that is
/// after `now` (it waits), `None` if it applies now. Further ahead than
/// `max_ahead` is refused.
pub fn due_at(
    effective: EffectiveAt,
    time_zone: &str,
    now: OffsetDateTime,
    max_ahead: Duration,
) -> Result<Option<OffsetDateTime>, Rejection> {
    let at = effective.instant(time_zone)?;
    if at <= now {
        return Ok(None);
    }
    if at - now > max_ahead {
        return Err(Rejection::invalid(format!(
            "effective_at is more than {} ahead (limits.max_schedule_ahead)",
            humantime::format_duration(max_ahead)
        )));
    }
    Ok(Some(at))
}

/// Whether a time zone name is one the worker knows (checked at start).
pub fn known_time_zone(name: &str) -> bool {
    jiff::tz::TimeZone::get(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    const AHEAD: Duration = Duration::from_secs(400 * 86_400);

    #[test]
    fn a_day_is_local_midnight_in_the_tenants_zone() {
        let day = EffectiveAt::parse("2026-12-15").unwrap();
        assert_eq!(day, EffectiveAt::Day(date!(2026 - 12 - 15)));
        assert_eq!(day.instant("UTC").unwrap(), datetime!(2026-12-15 00:00 UTC));
        assert_eq!(
            day.instant("Europe/Berlin").unwrap(),
            datetime!(2026-12-14 23:00 UTC)
        );
        assert_eq!(
            EffectiveAt::parse("2026-07-15")
                .unwrap()
                .instant("America/New_York")
                .unwrap(),
            datetime!(2026-07-15 04:00 UTC),
            "daylight saving time"
        );
    }

    #[test]
    fn on_daylight_saving_days_the_day_starts_at_its_real_first_instant() {
        // Berlin springs forward at 02:00 and falls back at 03:00: midnight exists.
        assert_eq!(
            EffectiveAt::Day(date!(2026 - 03 - 29))
                .instant("Europe/Berlin")
                .unwrap(),
            datetime!(2026-03-28 23:00 UTC)
        );
        assert_eq!(
            EffectiveAt::Day(date!(2026 - 10 - 25))
                .instant("Europe/Berlin")
                .unwrap(),
            datetime!(2026-10-24 22:00 UTC)
        );
        // Santiago springs forward at midnight: 00:00 does not exist, the
        // day starts at 01:00 local (-03), 04:00 UTC.
        assert_eq!(
            EffectiveAt::Day(date!(2026 - 09 - 06))
                .instant("America/Santiago")
                .unwrap(),
            datetime!(2026-09-06 04:00 UTC)
        );
        // Santiago falls back at midnight to 23:00 the day before: the hour
        // before midnight repeats, midnight itself happens once, at -04.
        assert_eq!(
            EffectiveAt::Day(date!(2026 - 04 - 05))
                .instant("America/Santiago")
                .unwrap(),
            datetime!(2026-04-05 04:00 UTC)
        );
    }

    #[test]
    fn timestamps_keep_their_offset_and_bad_values_are_refused() {
        let at = EffectiveAt::parse("2026-12-15T09:30:00+01:00").unwrap();
        assert_eq!(
            at.instant("Asia/Tokyo").unwrap(),
            datetime!(2026-12-15 08:30 UTC)
        );
        for bad in [
            "2026-13-01",
            "15.12.2026",
            "tomorrow",
            "2026-12-15T25:00:00Z",
        ] {
            assert!(EffectiveAt::parse(bad).is_err(), "{bad}");
        }
        let day = EffectiveAt::parse("2026-12-15").unwrap();
        assert!(day.instant("Mars/Olympus").is_err());
        assert!(known_time_zone("Europe/Berlin") && !known_time_zone("Mars/Olympus"));
    }

    #[test]
    fn only_the_future_waits_and_not_too_far() {
        let now = datetime!(2026-12-01 12:00 UTC);
        let at = |s: &str| EffectiveAt::parse(s).unwrap();
        assert_eq!(
            due_at(at("2026-12-01T12:00:00Z"), "UTC", now, AHEAD).unwrap(),
            None
        );
        assert_eq!(due_at(at("2026-11-01"), "UTC", now, AHEAD).unwrap(), None);
        assert_eq!(
            due_at(at("2026-12-02"), "UTC", now, AHEAD).unwrap(),
            Some(datetime!(2026-12-02 00:00 UTC))
        );
        assert!(due_at(at("2028-01-06"), "UTC", now, AHEAD).is_err());
        assert!(due_at(at("2027-12-31"), "UTC", now, AHEAD).is_ok());
    }
}
