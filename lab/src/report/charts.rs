//! The report's charts, one method each, drawn from an analysed run: the
//! first repetition in colour, the others faintly behind it, fault periods
//! shaded, hypothesis limits drawn as rules.

use crate::analyze::{Analysis, Second};
use crate::chart::{self, LineChart};
use crate::experiment::{Experiment, Metric};
use crate::run_folder::summary::windows_of;

use super::num;

/// One line of a panel: its label, its style and the count it draws.
type Count = (&'static str, usize, fn(&Second) -> u64);

/// A drawn chart: its name (the SVG file's stem), title and SVG.
pub type Drawn = (&'static str, String, String);

/// What every chart of one run is drawn from.
pub struct Charts<'a> {
    analysis: &'a Analysis,
    experiment: &'a Experiment,
    /// The architectures in the scenario's order (their colour index).
    names: Vec<&'a str>,
    /// The first repetition's fault windows.
    faults: Vec<(f64, f64)>,
    /// The load's end, in seconds.
    x_max: f64,
}

impl<'a> Charts<'a> {
    pub fn new(analysis: &'a Analysis, experiment: &'a Experiment) -> Self {
        Self {
            analysis,
            experiment,
            names: experiment.architectures.iter().map(|a| a.name()).collect(),
            faults: analysis.summary.windows(0),
            x_max: experiment.duration.0.as_secs_f64(),
        }
    }

    /// Every chart that applies to the run, in the report's order.
    pub fn draw(&self) -> anyhow::Result<Vec<Drawn>> {
        let incomplete = self.incomplete()?;
        if self.analysis.summary.architectures.is_empty() {
            return Ok(incomplete.into_iter().collect());
        }
        let mut out = vec![
            self.timeline()?,
            self.answers()?,
            self.fates()?,
            self.latency()?,
            self.errors()?,
        ];
        out.extend(self.backlog_and_breaker()?);
        out.extend(self.freshness()?);
        out.push(self.audit()?);
        out.push(self.cost_by_budget()?);
        out.extend(self.capacity()?);
        out.extend(incomplete);
        Ok(out)
    }

    /// Answers per second of the repetition a killed runner never ended,
    /// one panel per architecture, its faults as they stood shaded.
    fn incomplete(&self) -> anyhow::Result<Option<Drawn>> {
        let Some(incomplete) = &self.analysis.summary.incomplete else {
            return Ok(None);
        };
        let counts: [Count; 2] = [("ok/s", 1, |s| s.ok), ("failed/s", 2, |s| s.failed)];
        // The seconds flushed whole: the last one was cut by the kill.
        let whole = incomplete.sent_until_s.floor().max(1.0);
        let panels: Vec<(String, Vec<chart::Line>)> = self
            .names
            .iter()
            .filter_map(|name| {
                let series = self
                    .analysis
                    .incomplete_series
                    .iter()
                    .find(|s| s.architecture == *name)?;
                let lines = counts
                    .iter()
                    .map(|(label, style, count)| {
                        let points = series
                            .seconds
                            .iter()
                            .filter(|s| f64::from(s.t) < whole)
                            .map(|s| (f64::from(s.t), count(s) as f64))
                            .collect();
                        (label.to_string(), *style, points)
                    })
                    .collect();
                Some((name.to_string(), lines))
            })
            .collect();
        if panels.is_empty() {
            return Ok(None);
        }
        let title = format!(
            "Repetition {}, cut short: successful and failed requests per second up to the last \
             whole second flushed",
            incomplete.repetition + 1
        );
        let faults = windows_of(&incomplete.faults, incomplete.repetition);
        let svg = chart::panels(
            &title,
            "requests/s",
            &panels,
            &faults,
            self.analysis.summary.warmup_s,
            whole,
        )?;
        Ok(Some((super::INCOMPLETE_CHART, title, svg)))
    }

    /// Latency p99 by offered rate, one line per architecture, with the
    /// scenario's bound: a stepped rate's capacity.
    fn capacity(&self) -> anyhow::Result<Option<Drawn>> {
        let summary = &self.analysis.summary;
        let series: Vec<chart::Line> = self
            .names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let capacity = summary.architectures.get(*name)?.capacity.as_ref()?;
                let points = capacity
                    .steps
                    .iter()
                    .filter_map(|s| Some((s.rps, s.latency_ms.as_ref()?.p99)))
                    .collect();
                Some((name.to_string(), i, points))
            })
            .collect();
        let Some(bound) = summary
            .architectures
            .values()
            .find_map(|a| a.capacity.as_ref().map(|c| c.max_p99_ms))
        else {
            return Ok(None);
        };
        let rates = || series.iter().flat_map(|(_, _, p)| p.iter().map(|p| p.0));
        let (low, high) = (
            rates().fold(f64::INFINITY, f64::min),
            rates().fold(0.0, f64::max),
        );
        if !low.is_finite() {
            return Ok(None);
        }
        let pad = ((high - low) * 0.05).max(1.0);
        let capacity = LineChart {
            title: "Capacity: latency p99 of successful requests at each offered rate (ms, log scale)",
            x_label: "offered req/s",
            y_label: "p99 ms",
            series,
            faults: &[],
            warmup: 0.0,
            x_range: (low - pad, high + pad),
            thresholds: vec![(format!("p99 bound {}", super::ms(Some(bound))), bound)],
            markers: Vec::new(),
            faint: Vec::new(),
            log_x: false,
            log_y: true,
            legend: plotters::prelude::SeriesLabelPosition::UpperLeft,
            height: 280,
            max_gap: f64::INFINITY,
            dots: true,
        };
        Ok(Some((
            super::CAPACITY_CHART,
            capacity.title.to_string(),
            chart::lines(&capacity)?,
        )))
    }

    /// The per-second series of one repetition as chart points, up to
    /// second `until` (the load's end for request figures; the scraped
    /// series go on through the drain).
    fn points_of(
        &self,
        name: &str,
        repetition: u32,
        until: f64,
        f: &dyn Fn(&Second) -> Option<f64>,
    ) -> Vec<(f64, f64)> {
        self.analysis
            .series_of(name, repetition)
            .map(|s| {
                s.seconds
                    .iter()
                    .filter(|second| f64::from(second.t) < until)
                    .filter_map(|second| Some((f64::from(second.t), f(second)?)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One line per architecture of the first repetition.
    fn lines(&self, until: f64, f: &dyn Fn(&Second) -> Option<f64>) -> Vec<chart::Line> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.to_string(), i, self.points_of(name, 0, until, f)))
            .filter(|(_, _, p)| !p.is_empty())
            .collect()
    }

    /// The other repetitions, drawn faintly behind the first.
    fn others(&self, until: f64, f: &dyn Fn(&Second) -> Option<f64>) -> Vec<chart::Line> {
        (1..self.analysis.summary.repetitions as u32)
            .flat_map(|r| {
                self.names
                    .iter()
                    .enumerate()
                    .map(move |(i, name)| (name.to_string(), i, self.points_of(name, r, until, f)))
            })
            .filter(|(_, _, p)| !p.is_empty())
            .collect()
    }

    /// A chart over the run's time, faults and warm-up shaded.
    fn over_time(&self, title: &'static str, y: &'static str, x_max: f64) -> LineChart<'_> {
        let mut chart = LineChart::over_time(title, y, &self.faults, x_max);
        chart.warmup = self.analysis.summary.warmup_s;
        chart
    }

    /// " (first repetition)" when there are others.
    fn first(&self) -> &'static str {
        if self.analysis.summary.repetitions > 1 {
            " (first repetition)"
        } else {
            ""
        }
    }

    /// Limits of the scenario's hypotheses on `metrics`, as chart rules; one
    /// rule per limit, naming every architecture held to it.
    fn thresholds(&self, metrics: &[Metric], scale: f64) -> Vec<(String, f64)> {
        let mut rules: Vec<(String, f64, Vec<&str>)> = Vec::new();
        for h in self
            .experiment
            .hypotheses
            .iter()
            .filter(|h| metrics.contains(&h.metric))
        {
            let (sign, limit) = match (h.max, h.min) {
                (Some(max), _) => ("≤", max),
                (None, Some(min)) => ("≥", min),
                (None, None) => continue,
            };
            let label = format!("{sign} {}", num(Some(limit * scale)));
            match rules.iter_mut().find(|r| r.0 == label) {
                Some(rule) => rule.2.push(&h.architecture),
                None => rules.push((label, limit * scale, vec![&h.architecture])),
            }
        }
        rules
            .into_iter()
            .map(|(label, value, names)| (format!("limit {label} ({})", names.join(", ")), value))
            .collect()
    }

    /// Timeline strip: the offered load and the faults.
    fn timeline(&self) -> anyhow::Result<Drawn> {
        let offered = self
            .names
            .first()
            .map(|name| self.points_of(name, 0, self.x_max, &|s| Some(s.offered as f64)))
            .unwrap_or_default();
        let named: Vec<(f64, f64, String)> = self
            .analysis
            .summary
            .faults
            .iter()
            .filter(|f| f.repetition == 0)
            .zip(&self.faults)
            .map(|(f, w)| (w.0, w.1, f.kind.clone()))
            .collect();
        Ok((
            "timeline",
            "Offered load per architecture and fault periods".to_string(),
            chart::strip(&offered, &named, self.x_max)?,
        ))
    }

    /// One panel per architecture of the first repetition's per-second
    /// `counts`.
    fn panels_of(&self, counts: &[Count]) -> Vec<(String, Vec<chart::Line>)> {
        self.names
            .iter()
            .map(|name| {
                let lines = counts
                    .iter()
                    .map(|(label, style, count)| {
                        let points =
                            self.points_of(name, 0, self.x_max, &|s| Some(count(s) as f64));
                        (label.to_string(), *style, points)
                    })
                    .collect();
                (name.to_string(), lines)
            })
            .collect()
    }

    /// Answers per second, one panel per architecture.
    fn answers(&self) -> anyhow::Result<Drawn> {
        let panels = self.panels_of(&[("ok/s", 1, |s| s.ok), ("failed/s", 2, |s| s.failed)]);
        let title = format!("Successful and failed requests per second{}", self.first());
        let svg = chart::panels(
            &title,
            "requests/s",
            &panels,
            &self.faults,
            self.analysis.summary.warmup_s,
            self.x_max,
        )?;
        Ok(("answers", title, svg))
    }

    /// What became of each second's acknowledged events: lost, or stored
    /// later than the staleness budget; one panel per architecture.
    fn fates(&self) -> anyhow::Result<Drawn> {
        let panels = self.panels_of(&[("lost/s", 2, |s| s.lost), ("late/s", 3, |s| s.late)]);
        let title = format!(
            "Acknowledged events lost, or stored later than {}, by the second they were sent{}",
            self.experiment.economics.staleness_budget,
            self.first()
        );
        let svg = chart::panels(
            &title,
            "events/s",
            &panels,
            &self.faults,
            self.analysis.summary.warmup_s,
            self.x_max,
        )?;
        Ok(("fates", title, svg))
    }

    /// Latency p99 of successful requests per second, log scale.
    fn latency(&self) -> anyhow::Result<Drawn> {
        let mut latency = self.over_time(
            "Latency p99 of successful requests, per second (ms, log scale)",
            "ms",
            self.x_max,
        );
        latency.series = self.lines(self.x_max, &|s| s.ok_p99_ms);
        latency.faint = self.others(self.x_max, &|s| s.ok_p99_ms);
        latency.log_y = true;
        latency.thresholds = self.thresholds(&[Metric::LatencyP99Ms], 1.0);
        Ok((
            "latency",
            latency.title.to_string(),
            chart::lines(&latency)?,
        ))
    }

    /// Error rate per second, with the hypotheses' limits.
    fn errors(&self) -> anyhow::Result<Drawn> {
        let mut errors = self.over_time(
            if self.analysis.summary.repetitions > 1 {
                "Error rate per second (%); other repetitions faint"
            } else {
                "Error rate per second (%)"
            },
            "% failed",
            self.x_max,
        );
        let error_rate = |s: &Second| (s.offered > 0).then_some(100.0 * s.error_rate);
        errors.series = self.lines(self.x_max, &error_rate);
        errors.faint = self.others(self.x_max, &error_rate);
        errors.thresholds = self.thresholds(&[Metric::ErrorRate], 100.0);
        Ok(("errors", errors.title.to_string(), chart::lines(&errors)?))
    }

    /// The consumers' backlog and breaker state, when there are consumers;
    /// the scrapes go on while they drain after the load.
    fn backlog_and_breaker(&self) -> anyhow::Result<Vec<Drawn>> {
        let backlog_lines = self.lines(f64::INFINITY, &|s| s.backlog);
        if backlog_lines.is_empty() {
            return Ok(Vec::new());
        }
        let x_max = backlog_lines
            .iter()
            .flat_map(|(_, _, p)| p.iter().map(|p| p.0 + 1.0))
            .fold(self.x_max, f64::max);
        let mut backlog = self.over_time(
            "Consumer backlog: events on the topic not yet stored",
            "messages",
            x_max,
        );
        backlog.series = backlog_lines;
        backlog.faint = self.others(f64::INFINITY, &|s| s.backlog);
        let mut breaker = self.over_time(
            "Circuit breaker: 0 closed, 1 half-open, 2 open",
            "state",
            x_max,
        );
        breaker.series = self.lines(f64::INFINITY, &|s| s.breaker);
        breaker.height = 200;
        Ok(vec![
            (
                "backlog",
                backlog.title.to_string(),
                chart::lines(&backlog)?,
            ),
            (
                "breaker",
                breaker.title.to_string(),
                chart::lines(&breaker)?,
            ),
        ])
    }

    /// The freshness distribution with the staleness budget, when anything
    /// acknowledged was stored.
    fn freshness(&self) -> anyhow::Result<Option<Drawn>> {
        let cdf: Vec<chart::Line> = self
            .names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let points = self.analysis.freshness_cdf.get(*name)?;
                (!points.is_empty()).then(|| {
                    let percent = points.iter().map(|(ms, share)| (*ms, 100.0 * share));
                    (name.to_string(), i, percent.collect())
                })
            })
            .collect();
        if cdf.is_empty() {
            return Ok(None);
        }
        let economics = &self.experiment.economics;
        let budget_ms = economics.staleness_budget.0.as_secs_f64() * 1000.0;
        let delays = || cdf.iter().flat_map(|(_, _, p)| p.iter().map(|p| p.0));
        let slowest = delays().fold(budget_ms, f64::max);
        let fastest = delays().fold(f64::INFINITY, f64::min).max(0.1);
        let freshness = LineChart {
            title: "Freshness: share of acknowledged events stored within x ms (log scale)",
            x_label: "sent → stored, ms",
            y_label: "% of events",
            series: cdf,
            faults: &[],
            warmup: 0.0,
            x_range: (fastest * 0.8, slowest * 1.25),
            thresholds: Vec::new(),
            markers: vec![(
                format!("staleness budget {}", economics.staleness_budget),
                budget_ms,
            )],
            faint: Vec::new(),
            log_x: true,
            log_y: false,
            legend: plotters::prelude::SeriesLabelPosition::LowerRight,
            height: 280,
            max_gap: f64::INFINITY,
            dots: false,
        };
        Ok(Some((
            "freshness",
            freshness.title.to_string(),
            chart::lines(&freshness)?,
        )))
    }

    /// The loss audit: acknowledged, stored, lost, stale and failed per
    /// architecture.
    fn audit(&self) -> anyhow::Result<Drawn> {
        let budget = &self.experiment.economics.staleness_budget;
        let groups: Vec<(String, Vec<(String, f64)>)> = self
            .names
            .iter()
            .filter_map(|name| {
                let a = self.analysis.summary.architectures.get(*name)?;
                Some((
                    name.to_string(),
                    vec![
                        ("acknowledged".to_string(), a.acknowledged as f64),
                        ("stored".to_string(), a.stored as f64),
                        ("lost".to_string(), a.lost as f64),
                        (format!("stale (> {budget})"), a.stale as f64),
                        ("failed requests".to_string(), a.totals.failed as f64),
                    ],
                ))
            })
            .collect();
        Ok((
            "audit",
            "Loss audit: what each architecture acknowledged, stored, lost".to_string(),
            chart::bars(
                "Loss audit: acknowledged, stored, lost, stale, failed",
                &groups,
            )?,
        ))
    }

    /// Cost per outage against the staleness budget, from the freshness of
    /// each stored event: what the answer would have been with another
    /// budget, without running again.
    fn cost_by_budget(&self) -> anyhow::Result<Drawn> {
        let economics = &self.experiment.economics;
        let series: Vec<chart::Line> = self
            .names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let a = self.analysis.summary.architectures.get(*name)?;
                let points = a
                    .cost_by_staleness_budget
                    .iter()
                    .map(|c| (c.staleness_budget_s, c.per_outage))
                    .collect();
                Some((name.to_string(), i, points))
            })
            .collect();
        let budgets = || series.iter().flat_map(|(_, _, p)| p.iter().map(|p| p.0));
        let title = format!(
            "Revenue lost per outage ({}) if an event stored later than the budget counts as failed (log scale)",
            economics.currency
        );
        let spec = LineChart {
            title: &title,
            x_label: "staleness budget, s",
            y_label: "revenue lost per outage",
            series: series.clone(),
            faint: Vec::new(),
            faults: &[],
            warmup: 0.0,
            x_range: (
                budgets().fold(f64::INFINITY, f64::min).min(1.0) * 0.8,
                budgets().fold(1.0, f64::max) * 1.25,
            ),
            thresholds: Vec::new(),
            markers: vec![(
                format!("this run's budget {}", economics.staleness_budget),
                economics.staleness_budget.0.as_secs_f64(),
            )],
            log_x: true,
            log_y: false,
            legend: plotters::prelude::SeriesLabelPosition::UpperRight,
            height: 280,
            max_gap: f64::INFINITY,
            dots: true,
        };
        Ok(("cost_by_budget", title.clone(), chart::lines(&spec)?))
    }
}
