//! A fixed-size log-linear histogram of u64 values (latencies in ns): 128 linear sub-buckets
//! per power of two, so a reported value is within 1/128 (< 0.8 %) of the true one. Recording
//! is an index computation and an increment: no allocation per sample.

const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;
/// Enough buckets for every u64.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// The latency histogram.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    sum: u128,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn index(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros();
    let shift = exp - SUB_BITS;
    ((shift as usize + 1) << SUB_BITS) + ((v >> shift) as usize & (SUB - 1))
}

/// The largest value that falls in bucket `i`.
fn upper(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let shift = (i >> SUB_BITS) - 1;
    let low = ((SUB + (i & (SUB - 1))) as u64) << shift;
    low + ((1u64 << shift) - 1)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            sum: 0,
            max: 0,
        }
    }

    /// Records one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.sum += u128::from(v);
        self.max = self.max.max(v);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest value recorded (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The mean (0 when empty).
    pub fn mean(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            (self.sum / u128::from(self.total)) as u64
        }
    }

    /// The value at quantile `q` (0.0 to 1.0): the upper end of the bucket holding the sample of
    /// rank ⌈q·n⌉, never above the maximum. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_within_one_percent() {
        let mut prev_upper = None;
        for i in 0..BUCKETS {
            let up = upper(i);
            if let Some(p) = prev_upper {
                assert_eq!(index(p + 1), i, "bucket {i} starts right after {p}");
            }
            assert_eq!(index(up), i);
            prev_upper = Some(up);
            if up == u64::MAX {
                assert_eq!(i, BUCKETS - 1);
                break;
            }
        }
        for v in [
            1u64,
            127,
            128,
            129,
            1000,
            123_456,
            9_876_543_210,
            u64::MAX / 3,
        ] {
            let up = upper(index(v));
            assert!(
                up >= v && (up - v) as f64 <= v as f64 / 128.0,
                "{v} -> {up}"
            );
        }
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.max(), 10_000_000);
        assert_eq!(h.mean(), 5_000_500);
        for (q, exact) in [(0.5, 5_000_000u64), (0.9, 9_000_000), (0.99, 9_900_000)] {
            let got = h.quantile(q);
            assert!(got >= exact && got - exact <= exact / 100, "q{q}: {got}");
        }
        assert_eq!(h.quantile(1.0), 10_000_000);
        // The smallest sample's bucket is [1000, 1003]: its upper end is reported.
        assert_eq!(h.quantile(0.0), 1003);
    }

    #[test]
    fn small_and_empty_histograms() {
        let mut h = Histogram::new();
        assert_eq!((h.quantile(0.5), h.max(), h.mean()), (0, 0, 0));
        h.record(5);
        h.record(5);
        h.record(100);
        assert_eq!(h.quantile(0.5), 5);
        assert_eq!(h.quantile(0.999), 100);
    }
}
