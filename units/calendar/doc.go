// Package calendar owns systemd's time languages as Vigil reads them:
// calendar events (OnCalendar=, "Mon..Fri *-*-* 04:00", man systemd.time
// "CALENDAR EVENTS") with their normalized form and next elapse, and time
// spans ("1h 30min", "infinity"). It also renders the reports that
// `initctl calendar` and `initctl timespan` print, byte for byte what
// `systemd-analyze calendar` and `systemd-analyze timespan` (systemd 252)
// print, so that an administrator sees the same thing on either system.
//
// The package is pure: it reads time zone files from /usr/share/zoneinfo
// when an expression names a zone, and nothing else. It imports nothing of
// Vigil, so the unit loader and the observer's timer source can both use it.
//
// # Semantics
//
// Parse accepts exactly what systemd 252 accepts and normalizes the same
// way (ranges trimmed to a multiple of their repetition, duplicates
// dropped, two-digit years mapped to 1970..2069, years outside 1970..2199
// refused). Expressions that cannot elapse (*-02-30) parse and never
// elapse.
//
// Next follows systemd's search (calendarspec.c find_next) step for step,
// including its treatment of local time: a wall time that a daylight
// saving change skips is moved past the gap, so "*-*-* 02:30" does not
// elapse on the spring-forward day in Europe/Berlin; a wall time that
// occurs twice elapses once, at the instance with the offset the search
// was last in (glibc mktime keeps that offset between calls, systemd
// relies on it). The search gives up after 1000 steps, as systemd does,
// so no expression can make a caller spin.
//
// Time spans are counted in microseconds (systemd's usec_t), not in
// time.Duration: systemd accepts spans up to 584,000 years and its month
// is 30.4375 days; see Timespan.
package calendar
