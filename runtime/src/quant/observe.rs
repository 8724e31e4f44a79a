//! Calibration: the range of every activation over the calibration images,
//! as the largest magnitude (min-max) or a high percentile of magnitudes,
//! which lets a few outliers saturate instead of coarsening every other
//! value's step.

use serde::{Deserialize, Serialize};

/// Bins of the magnitude histograms, over [0, the largest magnitude].
const BINS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The largest magnitude seen.
    #[value(name = "minmax")]
    MinMax,
    /// The 99.99th percentile of magnitudes.
    Percentile,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::MinMax => "minmax",
            Method::Percentile => "percentile",
        }
    }
}

/// What the calibration has seen of each operation's output (number 0 is
/// the input). Percentiles take two passes over the images: the largest
/// magnitudes first, then histograms up to them.
#[derive(Debug, Clone)]
pub struct Observers {
    max: Vec<f32>,
    hist: Option<Vec<Vec<u64>>>,
}

impl Observers {
    pub fn new(values: usize) -> Self {
        Observers {
            max: vec![0.0; values],
            hist: None,
        }
    }

    pub fn see(&mut self, id: usize, v: &[f32]) {
        match &mut self.hist {
            None => {
                let m = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                self.max[id] = self.max[id].max(m);
            }
            Some(hist) => {
                let max = self.max[id];
                if max > 0.0 {
                    let bins = &mut hist[id];
                    let per = BINS as f32 / max;
                    for x in v {
                        bins[((x.abs() * per) as usize).min(BINS - 1)] += 1;
                    }
                }
            }
        }
    }

    /// Starts the second pass (after every image went through the first).
    pub fn start_histograms(&mut self) {
        self.hist = Some(vec![vec![0; BINS]; self.max.len()]);
    }

    /// Each value's range under `method`: what int8's 127 stands for.
    pub fn ranges(&self, method: Method) -> Vec<f32> {
        match (method, &self.hist) {
            (Method::Percentile, Some(hist)) => self
                .max
                .iter()
                .zip(hist)
                .map(|(&max, bins)| percentile(bins, max, 0.9999))
                .collect(),
            _ => self.max.clone(),
        }
    }
}

/// The upper edge of the bin where the share `p` of the counts is reached.
fn percentile(bins: &[u64], max: f32, p: f64) -> f32 {
    let total: u64 = bins.iter().sum();
    if total == 0 {
        return max;
    }
    let want = (total as f64 * p).ceil() as u64;
    let mut seen = 0;
    for (i, &b) in bins.iter().enumerate() {
        seen += b;
        if seen >= want {
            return max * (i + 1) as f32 / bins.len() as f32;
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percentile_leaves_out_a_rare_outlier_and_min_max_does_not() {
        let mut o = Observers::new(1);
        let mut v: Vec<f32> = (0..100_000).map(|i| (i % 100) as f32 / 100.0).collect();
        v.push(50.0);
        o.see(0, &v);
        o.start_histograms();
        o.see(0, &v);
        assert_eq!(o.ranges(Method::MinMax), [50.0]);
        let p = o.ranges(Method::Percentile)[0];
        assert!((0.98..1.1).contains(&p), "{p}");
    }
}
