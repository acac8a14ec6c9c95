//! A log-linear latency histogram in nanoseconds: 64 linear sub-buckets per power of two, so
//! any recorded value is reported within 1/64 (1.6%) of itself. Fixed size, no allocation per
//! sample, mergeable across connections.

/// Sub-buckets per power of two (2^6).
const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
/// Powers of two covered: up to 2^40 ns (~18 minutes).
const RANGES: usize = 41 - SUB_BITS as usize;
const BUCKETS: usize = SUB + RANGES * SUB;

#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("max", &self.max)
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let sub = (v >> (exp - SUB_BITS)) as usize & (SUB - 1);
    let i = (exp - SUB_BITS + 1) as usize * SUB + sub;
    i.min(BUCKETS - 1)
}

/// The smallest value that lands in bucket `i`.
fn lower_bound(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let range = (i / SUB) as u32; // >= 1
    let sub = (i % SUB) as u64;
    let exp = range - 1 + SUB_BITS;
    (1u64 << exp) + (sub << (exp - SUB_BITS))
}

impl Histogram {
    pub fn record(&mut self, nanos: u64) {
        self.counts[index(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(nanos);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0..=1), as the middle of its bucket; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let lo = lower_bound(i);
                let hi = lower_bound(i + 1);
                return (lo + (hi - lo) / 2).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut prev = 0;
        for v in (0..2_000_000u64).step_by(7).chain([u64::MAX / 4]) {
            let i = index(v);
            assert!(i >= prev, "index must not decrease at {v}");
            prev = i;
            let lo = lower_bound(i);
            assert!(lo <= v, "lower bound {lo} above {v}");
            if i + 1 < BUCKETS {
                assert!(lower_bound(i + 1) > v, "{v} beyond its bucket");
                assert!((lower_bound(i + 1) - lo) as f64 <= (v as f64 / 64.0).max(1.0));
            }
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.02, "{p50}");
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.02, "{p99}");
        let mut other = Histogram::default();
        other.record(5);
        h.merge(&other);
        assert_eq!(h.count(), 1001);
        assert_eq!(h.quantile(0.0), 5);
    }
}
