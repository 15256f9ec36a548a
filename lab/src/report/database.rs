//! The database writes, per phase: what bounded each architecture's rate
//! (its connections, the time each write held one, the rows it carried),
//! as a table and, where the rate it stored fell short of what was offered,
//! in words.

use crate::experiment::Phase;
use crate::run_folder::summary::{DatabaseTime, Summary};

use super::format::count;

/// A row of the table.
#[derive(Debug, serde::Serialize)]
pub struct DatabaseRow {
    architecture: String,
    phase: &'static str,
    offered: String,
    stored: String,
    writes: String,
    rows_per_write: String,
    held: String,
    waited: String,
    busy: String,
    bound: String,
}

fn rate(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.1}/s")
    } else {
        format!("{}/s", count(v.round() as u64))
    }
}

/// A rate as [`rate`] prints it, without its unit: `2,574`.
fn per_second(v: f64) -> String {
    rate(v).trim_end_matches("/s").to_string()
}

/// The rows a write carried, in words: `one row`, `88.8 rows`.
fn rows_per_write(d: &DatabaseTime) -> String {
    if (d.rows_per_write - 1.0).abs() < 0.05 {
        "one row".to_string()
    } else {
        format!("{:.1} rows", d.rows_per_write)
    }
}

fn duration_ms(v: f64) -> String {
    match v {
        v if v >= 1000.0 => format!("{:.2} s", v / 1000.0),
        v if v < 10.0 => format!("{v:.2} ms"),
        v => format!("{v:.0} ms"),
    }
}

/// The phase column of a run without faults or steps.
const WHOLE_RUN: &str = "whole run";

/// Every architecture's writes in every phase (or over the whole run of a
/// run without faults or steps), in the scenario's order.
pub fn rows(summary: &Summary, order: &[&str]) -> Vec<DatabaseRow> {
    let mut rows = Vec::new();
    for name in order {
        let Some(a) = summary.architectures.get(*name) else {
            continue;
        };
        let run = a.database_run.as_ref().map(|d| (WHOLE_RUN, d));
        for (phase, d) in a.database.iter().map(|(p, d)| (p.name(), d)).chain(run) {
            rows.push(DatabaseRow {
                architecture: name.to_string(),
                phase,
                offered: d.offered_per_s.map_or("-".into(), rate),
                stored: rate(d.rows_per_s),
                writes: count(d.writes),
                rows_per_write: written(d, format!("{:.1}", d.rows_per_write)),
                held: written(d, duration_ms(d.held_ms)),
                waited: d.waited_ms.map_or("-".into(), duration_ms),
                busy: format!("{:.1} of {}", d.busy_connections, d.connections),
                bound: d.bound_rows_per_s.map_or("-".into(), rate),
            });
        }
    }
    rows
}

/// A figure of the writes, `-` where none got a connection.
fn written(d: &DatabaseTime, figure: String) -> String {
    if d.writes == 0 { "-".into() } else { figure }
}

/// Where an architecture stored fewer rows a second than it was offered
/// (by more than 5 %), why, in figures: connections × rows per write ÷ time
/// held. Markdown emphasis.
pub fn notes(summary: &Summary, order: &[&str]) -> Vec<String> {
    let mut notes = Vec::new();
    for name in order {
        let Some(a) = summary.architectures.get(*name) else {
            continue;
        };
        let run = a.database_run.as_ref().map(|d| ("over the run", d));
        for (when, d) in a.database.iter().map(|(p, d)| (when(*p), d)).chain(run) {
            if let Some(note) = note(name, when, d) {
                notes.push(note);
            }
        }
    }
    notes
}

/// A phase in a note's words: `during the fault`.
fn when(phase: Phase) -> &'static str {
    match phase {
        Phase::Before => "before the fault",
        Phase::During => "during the fault",
        Phase::Between => "between the faults",
        Phase::After => "after the fault",
    }
}

fn note(name: &str, when: &str, d: &DatabaseTime) -> Option<String> {
    let offered = d.offered_per_s?;
    if d.rows_per_s >= 0.95 * offered {
        return None;
    }
    // Writes that got no connection from a pool that was not full: the
    // database refused them, or did not answer its connecting (a full
    // pool's waits time out: that is below).
    if d.no_connection > 0 && d.no_connection >= d.writes && !pool_full(d) {
        return Some(refused(name, when, offered, d));
    }
    if d.held_ms <= 0.0 {
        return None;
    }
    let rows = rows_per_write(d);
    let held = duration_ms(d.held_ms);
    let full = pool_full(d);
    // The pool or the writer's own pace explains the rate only if it was
    // the bound: a pool that could store the rate offered, or a writer idle
    // most of the time (its database down, its breaker open), fell short
    // for another reason, which the rest of the report gives.
    let bound = if full {
        d.bound_rows_per_s.is_some_and(|b| b < offered)
    } else {
        d.busy_connections >= 0.5
    };
    if !bound {
        return None;
    }
    let mut note = if full {
        format!(
            "**{name}** stored {} rows a second {when} against {} offered: **each write held one of \
             its {} connections for {held}** with {rows}, so the pool could store at most {} a \
             second ({} × {rows} ÷ {held}); {:.1} connections were busy at a time on average",
            per_second(d.rows_per_s),
            per_second(offered),
            d.connections,
            d.bound_rows_per_s.map_or("-".into(), per_second),
            d.connections,
            d.busy_connections,
        )
    } else {
        format!(
            "**{name}** stored {} rows a second {when} against {} offered: **each write held a \
             connection for {held}** with {rows}, and it kept {:.1} of its {} connections busy \
             on average: {:.1} × {rows} ÷ {held} is its rate; more rows per write or more writes \
             at once would raise it",
            per_second(d.rows_per_s),
            per_second(offered),
            d.busy_connections,
            d.connections,
            d.busy_connections,
        )
    };
    if let Some(waited) = d.waited_ms.filter(|w| *w >= 1.0) {
        note.push_str(&format!(
            "; a write waited {} for a connection on average",
            duration_ms(waited)
        ));
    }
    if d.no_connection > 0 {
        note.push_str(&format!(
            "; {} got none (the wait timed out)",
            count(d.no_connection)
        ));
    }
    note.push('.');
    Some(note)
}

/// Most of a writer's writes got no connection (its database down): that
/// bounded it, not its pool nor its round trips.
fn refused(name: &str, when: &str, offered: f64, d: &DatabaseTime) -> String {
    let waited = d
        .waited_ms
        .map(|w| format!(" after {} on average", duration_ms(w)))
        .unwrap_or_default();
    format!(
        "**{name}** stored {} rows a second {when} against {} offered: **{} of its writes got no \
         connection**{waited} (its database refused them, or the wait for one timed out) and {}: \
         its database bounded it, not its pool{}.",
        per_second(d.rows_per_s),
        per_second(offered),
        count(d.no_connection),
        match d.writes {
            0 => "none got one".to_string(),
            n => format!("{} got one", count(n)),
        },
        if d.writes > 0 && d.bound_rows_per_s.is_none() {
            ", and so few writes give no pool's bound"
        } else {
            ""
        },
    )
}

/// Whether the pool was the bound: every connection busy on average, or
/// writes waiting for one about as long as one was held (by writes enough
/// to give a bound: the one write a crash let through says nothing).
fn pool_full(d: &DatabaseTime) -> bool {
    d.busy_connections >= 0.9 * f64::from(d.connections)
        || (d.bound_rows_per_s.is_some() && d.waited_ms.is_some_and(|w| w >= 0.5 * d.held_ms))
}

/// A step's pool in a capacity table's cell: time held per write and the
/// connections busy.
pub fn step_cell(d: Option<&DatabaseTime>) -> String {
    d.map_or("-".into(), |d| {
        format!(
            "{}, {:.1}/{}",
            duration_ms(d.held_ms),
            d.busy_connections,
            d.connections
        )
    })
}

/// What the pool did at a step that missed its bounds, offered `rps`: the
/// bound, or not, beside the time held at the step `below` it. Markdown
/// emphasis.
pub fn step_note(d: &DatabaseTime, rps: f64, below: Option<&DatabaseTime>) -> String {
    let held = match below {
        Some(b) => format!(
            "{} ({} at the step below)",
            duration_ms(d.held_ms),
            duration_ms(b.held_ms)
        ),
        None => duration_ms(d.held_ms),
    };
    let rows = rows_per_write(d);
    let waited = d
        .waited_ms
        .filter(|w| *w >= 1.0)
        .map(|w| format!(", writes waited {} for one", duration_ms(w)))
        .unwrap_or_default();
    let bound = d.bound_rows_per_s.map_or("-".into(), per_second);
    if pool_full(d) && d.bound_rows_per_s.is_some_and(|b| b < 1.05 * rps) {
        format!(
            "There **its pool was the bound**: {:.1} of its {} connections busy on average, each \
             write holding one {held} with {rows}{waited}: at most {bound} rows a second.",
            d.busy_connections, d.connections,
        )
    } else {
        format!(
            "Its pool was not the bound there: {:.1} of its {} connections busy on average, each \
             write holding one {held} with {rows}{waited} (at most {bound} rows a second).",
            d.busy_connections, d.connections,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(held_ms: f64, busy: f64, rows_per_write: f64, rows_per_s: f64) -> DatabaseTime {
        DatabaseTime {
            writes: 1000,
            rows_per_write,
            held_ms,
            waited_ms: Some(1840.0),
            no_connection: 0,
            connections: 10,
            busy_connections: busy,
            bound_rows_per_s: Some(10.0 * rows_per_write / (held_ms / 1000.0)),
            rows_per_s,
            offered_per_s: Some(200.0),
        }
    }

    #[test]
    fn a_full_pool_of_slow_writes_is_named_as_the_bound() {
        let note = note("rest", when(Phase::During), &time(312.0, 9.9, 1.0, 31.0)).unwrap();
        assert!(
            note.contains("**rest** stored 31 rows a second during the fault against 200 offered"),
            "{note}"
        );
        assert!(
            note.contains("each write held one of its 10 connections for 312 ms"),
            "{note}"
        );
        assert!(
            note.contains("at most 32 a second (10 × one row ÷ 312 ms)"),
            "{note}"
        );
        assert!(note.contains("waited 1.84 s for a connection"), "{note}");
        // More writes timed out waiting than got a connection: the pool
        // full, it is still the pool's note.
        let mut timed_out = time(312.0, 9.9, 1.0, 31.0);
        (timed_out.writes, timed_out.no_connection) = (190, 410);
        let note = super::note("rest", when(Phase::During), &timed_out).unwrap();
        assert!(
            note.contains("each write held one of its 10 connections for 312 ms")
                && note.contains(
                    "waited 1.84 s for a connection on average; 410 got none (the wait timed out)."
                ),
            "{note}"
        );
    }

    #[test]
    fn a_writer_that_uses_few_of_its_connections_is_told_apart() {
        let mut slow = time(1800.0, 1.0, 100.0, 55.0);
        slow.waited_ms = Some(0.2);
        let note = note("kafka", when(Phase::During), &slow).unwrap();
        assert!(
            note.contains("kept 1.0 of its 10 connections busy"),
            "{note}"
        );
        assert!(note.contains("1.0 × 100.0 rows ÷ 1.80 s"), "{note}");
    }

    #[test]
    fn a_rate_that_fell_for_another_reason_is_not_put_on_the_pool() {
        // The database down: writes fail at once, nothing is stored.
        let mut down = time(0.5, 0.01, 1.0, 0.0);
        down.waited_ms = Some(0.0);
        assert!(note("rest", when(Phase::During), &down).is_none());
        // Every connection busy, yet the pool could store what was offered.
        let mut busy = time(20.0, 9.8, 1.0, 150.0);
        busy.waited_ms = Some(30.0);
        assert!(note("rest", when(Phase::During), &busy).is_none());
    }

    #[test]
    fn a_writer_whose_database_refused_its_writes_is_not_put_on_the_pool() {
        // The database down: one write got through, the rest got no
        // connection, and one write gives no pool's bound.
        let mut down = time(1.12, 0.0, 1.0, 0.0);
        (down.writes, down.no_connection) = (1, 4499);
        (down.waited_ms, down.bound_rows_per_s) = (Some(0.23), None);
        let note = note("rest", when(Phase::During), &down).unwrap();
        assert!(
            note.contains(
                "**4,499 of its writes got no connection** after 0.23 ms on average (its \
                 database refused them, or the wait for one timed out) and 1 got one: its \
                 database bounded it, not its pool, and so few writes give no pool's bound."
            ),
            "{note}"
        );
        let mut summary = crate::report::example_summary();
        let name = summary.architectures.keys().next().unwrap().clone();
        summary.architectures.get_mut(&name).unwrap().database =
            [(Phase::During, down.clone())].into_iter().collect();
        let row = &rows(&summary, &[&name])[0];
        assert_eq!((row.writes.as_str(), row.bound.as_str()), ("1", "-"));
        // The lone write held its connection for less than the waits took:
        // still the database's.
        let mut short = down.clone();
        short.held_ms = 0.1;
        assert!(
            super::note("rest", when(Phase::During), &short)
                .unwrap()
                .contains("its database bounded it, not its pool")
        );
        // None got through: no figure of a write.
        (down.writes, down.held_ms, down.rows_per_write) = (0, 0.0, 0.0);
        let note = super::note("rest", when(Phase::During), &down).unwrap();
        assert!(
            note.contains("timed out) and none got one: its database bounded it, not its pool."),
            "{note}"
        );
        summary.architectures.get_mut(&name).unwrap().database =
            [(Phase::During, down)].into_iter().collect();
        let row = &rows(&summary, &[&name])[0];
        assert_eq!(
            [&row.writes, &row.rows_per_write, &row.held, &row.bound].map(String::as_str),
            ["0", "-", "-", "-"]
        );
        // A few refused among many writes (a crash's edge): the usual note.
        let mut edge = time(312.0, 9.9, 1.0, 31.0);
        edge.no_connection = 12;
        assert!(
            super::note("rest", when(Phase::During), &edge)
                .unwrap()
                .contains("each write held one of its 10 connections")
        );
    }

    #[test]
    fn a_missed_step_says_whether_its_pool_was_the_bound() {
        let mut full = time(3.3, 9.8, 1.0, 2950.0);
        full.waited_ms = Some(40.0);
        let below = time(1.7, 3.5, 1.0, 2000.0);
        let note = step_note(&full, 3000.0, Some(&below));
        assert!(
            note.contains("holding one 3.30 ms (1.70 ms at the step below)"),
            "{note}"
        );
        assert!(
            note.contains("**its pool was the bound**: 9.8 of its 10 connections busy"),
            "{note}"
        );
        assert!(note.contains("at most 3,030 rows a second"), "{note}");
        let idle = time(1.2, 0.6, 1.0, 2950.0);
        let mut idle = idle;
        idle.waited_ms = Some(0.0);
        let note = step_note(&idle, 3000.0, None);
        assert!(
            note.starts_with("Its pool was not the bound there: 0.6 of its 10"),
            "{note}"
        );
        assert_eq!(step_cell(Some(&full)), "3.30 ms, 9.8/10");
        assert_eq!(step_cell(None), "-");
    }

    #[test]
    fn a_run_without_faults_or_steps_shows_its_writes_over_the_whole_run() {
        let mut summary = crate::report::example_summary();
        let order: Vec<String> = summary.architectures.keys().cloned().collect();
        for a in summary.architectures.values_mut() {
            a.database.clear();
        }
        let first = summary.architectures.get_mut(&order[0]).unwrap();
        first.database_run = Some(time(312.0, 9.9, 1.0, 31.0));
        let order: Vec<&str> = order.iter().map(String::as_str).collect();
        let rows = rows(&summary, &order);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (
                rows[0].architecture.as_str(),
                rows[0].phase,
                rows[0].stored.as_str()
            ),
            (order[0], WHOLE_RUN, "31/s")
        );
        let notes = notes(&summary, &order);
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains("stored 31 rows a second over the run against 200 offered"),
            "{notes:?}"
        );
    }

    #[test]
    fn a_rate_that_kept_up_needs_no_note() {
        assert!(
            note(
                "grouped",
                when(Phase::During),
                &time(300.0, 6.0, 50.0, 199.0)
            )
            .is_none()
        );
    }
}
