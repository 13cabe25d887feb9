//! The search itself, free of any run or clock: which value to try next, given the verdicts so far.
//!
//! Grow from `start` by `factor` while steps pass (the last growth step is clamped to `max`), then bisect
//! between the largest passing and the smallest failing value for at most `refine` steps; never more than
//! `max_steps` steps in all. A step the load generator or the machine could not measure honestly
//! ([`Verdict::Machine`]) ends the search at once: nothing above it says anything about the server.

use serde::{Deserialize, Serialize};

/// What one step says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Zero loss, every subscriber connected, p99 under the limit, machine not saturated.
    Pass,
    /// The server lost events or was too slow: a limit of the server.
    Fail,
    /// The load generator or the machine was the limit (saturated, out of file descriptors, connect
    /// failures): not a limit of the server; the search stops.
    Machine,
    /// The step's run failed (the server would not start, a worker died, ...): the search stops.
    Error,
}

/// The bounds of a search, validated by [`Params::new`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// First value tried.
    pub start: f64,
    /// Growth factor while steps pass (> 1).
    pub factor: f64,
    /// Bisection steps between the last pass and the first fail.
    pub refine: u32,
    /// Largest value tried.
    pub max: f64,
    /// Most steps in all.
    pub max_steps: u32,
    /// Whole values only (subscribers); otherwise hundredths (events per second).
    pub integer: bool,
}

/// Why search bounds were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamsError {
    /// `--start` must be positive and finite.
    #[error("--start must be a positive number, got {0}")]
    Start(f64),
    /// `--factor` must be above 1.
    #[error("--factor must be a number above 1, got {0}")]
    Factor(f64),
    /// `--max` below `--start`.
    #[error("--max ({max}) must be at least --start ({start})")]
    Max {
        /// `--start`.
        start: f64,
        /// `--max`.
        max: f64,
    },
    /// `--max-steps` of 0.
    #[error("--max-steps must be at least 1")]
    Steps,
}

impl Params {
    /// Checks the bounds; `start` is rounded to the value resolution first.
    pub fn new(
        start: f64,
        factor: f64,
        refine: u32,
        max: f64,
        max_steps: u32,
        integer: bool,
    ) -> Result<Self, ParamsError> {
        let p = Self {
            start,
            factor,
            refine,
            max,
            max_steps,
            integer,
        };
        let start = p.round(start);
        if !start.is_finite() || start <= 0.0 {
            return Err(ParamsError::Start(p.start));
        }
        if !factor.is_finite() || factor <= 1.0 {
            return Err(ParamsError::Factor(factor));
        }
        if !max.is_finite() || max < start {
            return Err(ParamsError::Max { start, max });
        }
        if max_steps == 0 {
            return Err(ParamsError::Steps);
        }
        Ok(Self { start, ..p })
    }

    /// Smallest difference between two values.
    fn resolution(&self) -> f64 {
        if self.integer { 1.0 } else { 0.01 }
    }

    fn round(&self, v: f64) -> f64 {
        let r = self.resolution();
        (v / r).round() * r
    }
}

/// A search in progress: feed it each step's verdict with [`Search::record`], ask [`Search::next`].
#[derive(Debug, Clone)]
pub struct Search {
    params: Params,
    /// Largest passing value so far.
    pass: Option<f64>,
    /// Smallest failing value so far.
    fail: Option<f64>,
    /// Bisection steps scheduled so far.
    refined: u32,
    steps: u32,
    next: Option<f64>,
}

impl Search {
    /// A search whose first step is `params.start`.
    pub fn new(params: Params) -> Self {
        Self {
            params,
            pass: None,
            fail: None,
            refined: 0,
            steps: 0,
            next: Some(params.start),
        }
    }

    /// The value of the next step, or `None` when the search is over.
    pub fn next(&self) -> Option<f64> {
        self.next
    }

    /// Records the verdict of the step at `value` (the value [`Search::next`] gave) and decides the next.
    pub fn record(&mut self, value: f64, verdict: Verdict) {
        self.steps += 1;
        match verdict {
            Verdict::Machine | Verdict::Error => {
                self.next = None;
                return;
            }
            Verdict::Pass => self.pass = Some(self.pass.map_or(value, |p| p.max(value))),
            Verdict::Fail => self.fail = Some(self.fail.map_or(value, |f| f.min(value))),
        }
        let p = &self.params;
        self.next = match (self.pass, self.fail) {
            // Nothing fails yet: grow, up to max.
            (Some(pass), None) if pass >= p.max => None,
            (Some(pass), None) => {
                let grown = p.round(pass * p.factor).max(pass + p.resolution());
                Some(grown.min(p.max))
            }
            // Fails at the first value tried: nothing below it is searched.
            (None, _) => None,
            (Some(pass), Some(fail)) if self.refined < p.refine => {
                let mid = if p.integer {
                    ((pass + fail) / 2.0).floor()
                } else {
                    p.round((pass + fail) / 2.0)
                };
                (mid > pass && mid < fail).then(|| {
                    self.refined += 1;
                    mid
                })
            }
            (Some(_), Some(_)) => None,
        };
        if self.steps >= p.max_steps {
            self.next = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(start: f64, max: f64, refine: u32, max_steps: u32) -> Params {
        Params::new(start, 2.0, refine, max, max_steps, true).unwrap()
    }

    /// Walks a search against a server that sustains exactly `capacity`; returns the values tried.
    fn walk(params: Params, capacity: f64) -> Vec<f64> {
        let mut search = Search::new(params);
        let mut tried = Vec::new();
        while let Some(v) = search.next() {
            tried.push(v);
            let verdict = if v <= capacity {
                Verdict::Pass
            } else {
                Verdict::Fail
            };
            search.record(v, verdict);
            assert!(tried.len() <= 100, "the search does not end: {tried:?}");
        }
        tried
    }

    #[test]
    fn grows_by_the_factor_then_bisects_between_last_pass_and_first_fail() {
        let tried = walk(params(100.0, 19_000.0, 3, 50), 1000.0);
        assert_eq!(
            tried,
            [100.0, 200.0, 400.0, 800.0, 1600.0, 1200.0, 1000.0, 1100.0]
        );
    }

    #[test]
    fn the_last_growth_step_is_clamped_to_max_and_a_pass_there_ends_it() {
        assert_eq!(
            walk(params(100.0, 700.0, 3, 50), 1e9),
            [100.0, 200.0, 400.0, 700.0]
        );
        // start = max: one step.
        assert_eq!(walk(params(8.0, 8.0, 3, 50), 1e9), [8.0]);
    }

    #[test]
    fn a_fail_at_start_ends_it_without_going_lower() {
        assert_eq!(walk(params(100.0, 1000.0, 3, 50), 50.0), [100.0]);
    }

    #[test]
    fn bisection_stops_at_the_resolution_and_after_refine_steps() {
        // Integers: between 2 (pass) and 3 (fail) there is nothing to try.
        assert_eq!(walk(params(1.0, 100.0, 10, 50), 2.0), [1.0, 2.0, 4.0, 3.0]);
        // No refinement at all.
        assert_eq!(walk(params(1.0, 100.0, 0, 50), 5.0), [1.0, 2.0, 4.0, 8.0]);
        // Fractional values (rates): hundredths.
        let rate = Params::new(0.5, 2.0, 20, 10.0, 50, false).unwrap();
        let tried = walk(rate, 0.7);
        assert_eq!(&tried[..2], [0.5, 1.0]);
        assert!(tried.len() < 12, "{tried:?}");
        let last_pass = tried
            .iter()
            .filter(|&&v| v <= 0.7)
            .fold(0.0_f64, |a, &b| a.max(b));
        assert!((last_pass - 0.7).abs() < 0.011, "{tried:?}");
    }

    #[test]
    fn max_steps_bounds_the_walk() {
        assert_eq!(walk(params(1.0, 1e6, 3, 4), 1e9), [1.0, 2.0, 4.0, 8.0]);
        assert_eq!(walk(params(1.0, 1e6, 3, 1), 1e9), [1.0]);
    }

    #[test]
    fn a_machine_limit_stops_at_once() {
        let mut search = Search::new(params(10.0, 1000.0, 3, 50));
        search.record(10.0, Verdict::Pass);
        assert_eq!(search.next(), Some(20.0));
        search.record(20.0, Verdict::Machine);
        assert_eq!(search.next(), None);
        let mut search = Search::new(params(10.0, 1000.0, 3, 50));
        search.record(10.0, Verdict::Error);
        assert_eq!(search.next(), None, "a failed run stops it too");
    }

    #[test]
    fn growth_always_moves_and_bad_bounds_are_refused() {
        // ×1.01 from 10 rounds to 10: the next value is still one above.
        let p = Params::new(10.0, 1.01, 0, 12.0, 50, true).unwrap();
        assert_eq!(walk(p, 1e9), [10.0, 11.0, 12.0]);
        assert_eq!(
            Params::new(0.0, 2.0, 3, 10.0, 5, true),
            Err(ParamsError::Start(0.0))
        );
        assert_eq!(
            Params::new(1.0, 1.0, 3, 10.0, 5, true),
            Err(ParamsError::Factor(1.0))
        );
        assert!(matches!(
            Params::new(20.0, 2.0, 3, 10.0, 5, true),
            Err(ParamsError::Max { .. })
        ));
        assert_eq!(
            Params::new(1.0, 2.0, 3, 10.0, 0, true),
            Err(ParamsError::Steps)
        );
    }
}
