//! The numbers: a histogram of every round trip, percentiles, and the median with its spread
//! over repeated runs.

/// Every round-trip time of one timed section, in nanoseconds.
///
/// The storage is allocated up front ([`Histogram::with_capacity`]) so that recording in the
/// timed loop never allocates; percentiles sort the samples once, after the loop.
#[derive(Debug)]
pub struct Histogram {
    samples: Vec<u64>,
    sorted: bool,
}

impl Histogram {
    /// Room for `n` samples, allocated and touched now (so that the timed loop takes no page
    /// faults either).
    pub fn with_capacity(n: usize) -> Self {
        let mut samples = Vec::with_capacity(n);
        // Not zeros: `vec![0; n]` may come from calloc, whose fresh pages are not touched.
        samples.resize(n, u64::MAX);
        std::hint::black_box(&mut samples[..]);
        samples.clear();
        Self {
            samples,
            sorted: true,
        }
    }

    /// Record one sample. Never allocates while fewer samples than the capacity were recorded.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        debug_assert!(self.samples.len() < self.samples.capacity());
        self.samples.push(ns);
        self.sorted = false;
    }

    /// The `q`-th percentile (`0 < q <= 100`) by the nearest-rank method: the smallest sample
    /// such that at least `q` percent of the samples are at or below it. `None` when empty.
    pub fn percentile(&mut self, q: f64) -> Option<u64> {
        if self.samples.is_empty() {
            return None;
        }
        if !self.sorted {
            self.samples.sort_unstable();
            self.sorted = true;
        }
        Some(self.samples[nearest_rank(self.samples.len(), q)])
    }
}

/// The 0-based index of the `q`-th percentile of `n` sorted samples (nearest rank).
fn nearest_rank(n: usize, q: f64) -> usize {
    let q = q.clamp(0.0, 100.0);
    // rank = ceil(q/100 * n), 1-based; at least 1.
    let rank = ((q / 100.0) * n as f64).ceil() as usize;
    rank.clamp(1, n) - 1
}

/// A value measured over several runs: the median and the min-max spread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The median (the mean of the two middle values for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when there are none or one is NaN.
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_a_hundred() {
        let mut h = Histogram::with_capacity(100);
        // Recorded out of order: percentile sorts.
        for v in (1..=100).rev() {
            h.record(v);
        }
        assert_eq!(h.samples.len(), 100);
        assert_eq!(h.percentile(50.0), Some(50));
        assert_eq!(h.percentile(99.0), Some(99));
        assert_eq!(h.percentile(100.0), Some(100));
        assert_eq!(h.percentile(0.5), Some(1));
    }

    #[test]
    fn percentiles_of_few_samples() {
        let mut h = Histogram::with_capacity(3);
        assert_eq!(h.percentile(50.0), None);
        h.record(30);
        assert_eq!(h.percentile(50.0), Some(30));
        assert_eq!(h.percentile(99.0), Some(30));
        h.record(10);
        h.record(20);
        assert_eq!(h.percentile(50.0), Some(20));
        // ceil(0.99 * 3) = 3: the largest.
        assert_eq!(h.percentile(99.0), Some(30));
    }

    #[test]
    fn p99_sees_the_tail() {
        let mut h = Histogram::with_capacity(1000);
        for i in 0..1000 {
            h.record(if i % 50 == 0 { 1_000_000 } else { 100 });
        }
        // 20 of 1000 samples (2%) are slow: p50 is fast, p99 is slow.
        assert_eq!(h.percentile(50.0), Some(100));
        assert_eq!(h.percentile(99.0), Some(1_000_000));
        assert_eq!(h.percentile(97.0), Some(100));
    }

    #[test]
    fn recording_within_capacity_does_not_reallocate() {
        let mut h = Histogram::with_capacity(64);
        let before = h.samples.as_ptr();
        for i in 0..64 {
            h.record(i);
        }
        assert_eq!(h.samples.as_ptr(), before);
    }

    #[test]
    fn median_and_spread() {
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(Spread::of(&[1.0, f64::NAN]), None);
        assert_eq!(
            Spread::of(&[5.0]),
            Some(Spread {
                median: 5.0,
                min: 5.0,
                max: 5.0
            })
        );
        assert_eq!(
            Spread::of(&[3.0, 1.0, 2.0, 10.0, 4.0]),
            Some(Spread {
                median: 3.0,
                min: 1.0,
                max: 10.0
            })
        );
        assert_eq!(
            Spread::of(&[4.0, 1.0, 2.0, 3.0]),
            Some(Spread {
                median: 2.5,
                min: 1.0,
                max: 4.0
            })
        );
    }
}
