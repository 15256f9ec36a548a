//! A rate shape lowered to segments, and the segments to send times.

use std::time::Duration;

use serde::Serialize;

use crate::experiment::{RateShape, seconds};

/// One segment of the lowered rate: from `start` (inclusive) to `end`
/// (exclusive) the rate goes linearly from `from_rps` to `to_rps`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RateSegment {
    #[serde(rename = "start_s", serialize_with = "seconds")]
    pub start: Duration,
    #[serde(rename = "end_s", serialize_with = "seconds")]
    pub end: Duration,
    pub from_rps: f64,
    pub to_rps: f64,
}

impl RateShape {
    /// Lowers the shape to segments covering `[0, duration)`.
    pub fn segments(&self, duration: Duration) -> Vec<RateSegment> {
        let flat = |start, end, rps| RateSegment {
            start,
            end,
            from_rps: rps,
            to_rps: rps,
        };
        match self {
            RateShape::Constant { rps } => vec![flat(Duration::ZERO, duration, *rps)],
            RateShape::Ramp { from_rps, to_rps } => vec![RateSegment {
                start: Duration::ZERO,
                end: duration,
                from_rps: *from_rps,
                to_rps: *to_rps,
            }],
            RateShape::Steps { steps } => {
                let mut steps = steps.clone();
                steps.sort_by_key(|s| s.at);
                let mut segments = Vec::new();
                let first = steps.first().map_or(Duration::ZERO, |s| s.at.0);
                if first > Duration::ZERO {
                    segments.push(flat(Duration::ZERO, first.min(duration), 0.0));
                }
                for (i, step) in steps.iter().enumerate() {
                    let end = steps
                        .get(i + 1)
                        .map_or(duration, |next| next.at.0)
                        .min(duration);
                    if step.at.0 < end {
                        segments.push(flat(step.at.0, end, step.rps));
                    }
                }
                segments
            }
            RateShape::Spike {
                base_rps,
                peak_rps,
                at,
                lasts,
            } => {
                let start = at.0.min(duration);
                let end = (at.0 + lasts.0).min(duration);
                vec![
                    flat(Duration::ZERO, start, *base_rps),
                    flat(start, end, *peak_rps),
                    flat(end, duration, *base_rps),
                ]
                .into_iter()
                .filter(|s| s.start < s.end)
                .collect()
            }
        }
    }

    /// About how many requests the shape sends in `duration`, without
    /// building the schedule.
    pub fn requests(&self, duration: Duration) -> f64 {
        self.segments(duration)
            .iter()
            .map(|s| (s.from_rps + s.to_rps) / 2.0 * (s.end - s.start).as_secs_f64())
            .sum()
    }

    /// The highest rate it reaches, in requests a second.
    pub fn peak_rps(&self) -> f64 {
        match self {
            RateShape::Constant { rps } => *rps,
            RateShape::Ramp { from_rps, to_rps } => from_rps.max(*to_rps),
            RateShape::Steps { steps } => steps.iter().map(|s| s.rps).fold(0.0, f64::max),
            RateShape::Spike {
                base_rps, peak_rps, ..
            } => base_rps.max(*peak_rps),
        }
    }

    /// The send times of every request, from the run's start, in order.
    pub fn schedule(&self, duration: Duration) -> Vec<Duration> {
        schedule_of(&self.segments(duration))
    }
}

/// The send times of every request of lowered rate `segments`, in order.
pub fn schedule_of(segments: &[RateSegment]) -> Vec<Duration> {
    let mut times = Vec::new();
    for segment in segments {
        let length = (segment.end - segment.start).as_secs_f64();
        let (a, b) = (segment.from_rps, segment.to_rps);
        // Requests due by time t into the segment: a t + (b - a) t² / 2L.
        let total = (a + b) / 2.0 * length;
        let count = total.floor() as u64;
        for i in 0..count {
            let n = i as f64;
            let t = if (b - a).abs() < 1e-9 {
                n / a
            } else {
                // Solve (b - a)/(2L) t² + a t - n = 0 for t.
                let k = (b - a) / (2.0 * length);
                (-a + (a * a + 4.0 * k * n).max(0.0).sqrt()) / (2.0 * k)
            };
            if t.is_finite() && t >= 0.0 && t < length {
                times.push(segment.start + Duration::from_secs_f64(t));
            }
        }
    }
    times
}
