//! A circuit breaker per connector (per replica): after `failures` consecutive upstream
//! failures (unreachable, timed out, 5xx) the connector's circuit opens and requests are
//! answered at once (`destination_unavailable`, `circuit_open`) for `open_for`; then one probe
//! goes through (half-open): its success closes the circuit, its failure opens it again. One
//! bad connector never slows another.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
struct Circuit {
    failures: AtomicU32,
    /// Unix ms until which the circuit is open (0: closed).
    open_until: AtomicI64,
    probing: AtomicBool,
}

#[derive(Clone)]
pub struct Breakers {
    failures: u32,
    open_for: Duration,
    circuits: crate::cache::SyncCache<String, Arc<Circuit>>,
    /// Circuits with failures counted (open ones among them): while none has, every connector
    /// is healthy and no circuit is looked up.
    troubled: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Breakers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breakers")
            .field("failures", &self.failures)
            .field("open_for", &self.open_for)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}

impl Breakers {
    /// `failures == 0` turns breakers off.
    pub fn new(failures: u32, open_for: Duration) -> Self {
        Self {
            failures,
            open_for,
            circuits: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3600))
                .build_with_hasher(crate::cache::FastHash::default()),
            troubled: Arc::default(),
        }
    }

    /// Breakers that never open.
    pub fn off() -> Self {
        Self::new(0, Duration::from_secs(1))
    }

    /// `Err(seconds until the next probe)` while the connector's circuit is open.
    pub fn allow(&self, connector_id: &str) -> Result<(), u64> {
        if self.failures == 0 || self.troubled.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        let Some(c) = self.circuits.get(connector_id) else {
            return Ok(());
        };
        let until = c.open_until.load(Ordering::SeqCst);
        if until == 0 {
            return Ok(());
        }
        let now = now_ms();
        if now < until {
            return Err(u64::try_from((until - now + 999) / 1000)
                .unwrap_or(1)
                .max(1));
        }
        // Half-open: one probe at a time.
        if c.probing
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            Ok(())
        } else {
            Err(1)
        }
    }

    /// Records the outcome of one upstream exchange.
    pub fn record(&self, connector_id: &str, ok: bool) {
        if self.failures == 0 {
            return;
        }
        if ok {
            if self.troubled.load(Ordering::SeqCst) == 0 {
                return;
            }
            if let Some(c) = self.circuits.get(connector_id) {
                if c.open_until.swap(0, Ordering::SeqCst) != 0 {
                    tracing::info!(connector = %connector_id, "circuit closed: upstream answered");
                }
                if c.failures.swap(0, Ordering::SeqCst) > 0 {
                    self.troubled.fetch_sub(1, Ordering::SeqCst);
                }
                c.probing.store(false, Ordering::SeqCst);
            }
            return;
        }
        let c = self
            .circuits
            .get_with(connector_id.to_owned(), || Arc::new(Circuit::default()));
        let n = c.failures.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 1 {
            self.troubled.fetch_add(1, Ordering::SeqCst);
        }
        let was_probe = c.probing.swap(false, Ordering::SeqCst);
        if n >= self.failures || was_probe {
            let open_ms = i64::try_from(self.open_for.as_millis()).unwrap_or(i64::MAX);
            c.open_until
                .store(now_ms().saturating_add(open_ms), Ordering::SeqCst);
            tracing::warn!(
                connector = %connector_id,
                failures = n,
                open_for = ?self.open_for,
                "circuit open: upstream failing"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_then_probes_once() {
        let b = Breakers::new(3, Duration::from_millis(50));
        for _ in 0..2 {
            b.record("a", false);
            assert!(b.allow("a").is_ok());
        }
        b.record("a", false);
        assert!(b.allow("a").is_err(), "open after 3");
        assert!(b.allow("other").is_ok(), "other connectors unaffected");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allow("a").is_ok(), "one probe when half-open");
        assert!(b.allow("a").is_err(), "only one");
        b.record("a", false);
        assert!(b.allow("a").is_err(), "a failed probe reopens");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allow("a").is_ok());
        b.record("a", true);
        assert!(
            b.allow("a").is_ok() && b.allow("a").is_ok(),
            "closed after a good probe"
        );
        // a success resets the count
        b.record("a", false);
        b.record("a", false);
        b.record("a", true);
        b.record("a", false);
        assert!(b.allow("a").is_ok());
        assert_eq!(
            b.troubled.load(Ordering::SeqCst),
            1,
            "a has failures counted"
        );
        b.record("a", true);
        assert_eq!(
            b.troubled.load(Ordering::SeqCst),
            0,
            "all healthy: no lookups"
        );
        for _ in 0..3 {
            b.record("b", false);
        }
        assert!(b.allow("b").is_err(), "still opens after healthy times");
    }

    #[test]
    fn off_never_opens() {
        let b = Breakers::off();
        for _ in 0..100 {
            b.record("a", false);
        }
        assert!(b.allow("a").is_ok());
    }
}
