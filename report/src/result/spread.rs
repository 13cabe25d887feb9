//! Run-to-run spread of a metric: the median and the range (min, max) of its per-run values.
//!
//! `pushbench run --repeat N` and `pushbench merge` keep every run's value of every [`Metric`] so that
//! a merged result can be merged again exactly; the median and the range are derived from them. The range
//! is the spread `compare` uses: with five runs, min and max are the whole observed noise band, which is
//! what a noise-proof gate needs (a median absolute deviation would hide the one slow run out of five that
//! a shared machine does produce).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Metric, TransportResult};

/// One metric over several runs; `None` entries are runs where it could not be measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Median of the measured runs (the mean of the two middle ones for an even count).
    pub median: Option<f64>,
    /// Smallest measured value.
    pub min: Option<f64>,
    /// Largest measured value.
    pub max: Option<f64>,
    /// Every run's value, in run order.
    pub runs: Vec<Option<f64>>,
}

impl Spread {
    /// Summarizes the per-run values.
    pub fn of(runs: Vec<Option<f64>>) -> Self {
        let mut measured: Vec<f64> = runs.iter().flatten().copied().collect();
        measured.sort_by(f64::total_cmp);
        let n = measured.len();
        let median = match n {
            0 => None,
            _ if n % 2 == 1 => Some(measured[n / 2]),
            _ => Some((measured[n / 2 - 1] + measured[n / 2]) / 2.0),
        };
        Self {
            median,
            min: measured.first().copied(),
            max: measured.last().copied(),
            runs,
        }
    }

    /// `(max − min) / median` in percent: the relative width of the noise band.
    pub fn relative_range_pct(&self) -> Option<f64> {
        match (self.min, self.max, self.median) {
            (Some(min), Some(max), Some(median)) if median > 0.0 => {
                Some((max - min) / median * 100.0)
            }
            (Some(min), Some(max), Some(_)) if min == max => Some(0.0),
            _ => None,
        }
    }
}

/// Per metric name, the spread over the runs merged into one transport's result.
pub type Spreads = BTreeMap<String, Spread>;

/// The per-run values of every metric of `r`: its recorded spread when it is itself a merge of runs,
/// else its own values as one run.
pub fn runs_of(r: &TransportResult) -> BTreeMap<Metric, Vec<Option<f64>>> {
    Metric::ALL
        .into_iter()
        .map(|m| {
            let runs = match r.spread.get(m.name()) {
                Some(s) => s.runs.clone(),
                None => vec![m.value(r)],
            };
            (m, runs)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_range_skip_unmeasured_runs() {
        let s = Spread::of(vec![Some(3.0), None, Some(1.0), Some(10.0)]);
        assert_eq!((s.median, s.min, s.max), (Some(3.0), Some(1.0), Some(10.0)));
        assert_eq!(Spread::of(vec![Some(1.0), Some(2.0)]).median, Some(1.5));
        assert_eq!(Spread::of(vec![None]).median, None);
        assert_eq!(s.relative_range_pct(), Some(300.0));
        assert_eq!(
            Spread::of(vec![Some(0.0), Some(0.0)]).relative_range_pct(),
            Some(0.0)
        );
    }
}
