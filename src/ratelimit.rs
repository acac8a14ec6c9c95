//! Rate limits (GCRA, governor): per principal (every API and gateway request) and per
//! connector (tool calls and relayed requests). A quota of 0 switches a limit off.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// A keyed limiter hashing its keys with foldhash (the request path's hasher; SipHash cost
/// ~1k instructions a lookup).
type Keyed = DefaultKeyedRateLimiter<
    String,
    NoOpMiddleware<<DefaultClock as Clock>::Instant>,
    foldhash::fast::RandomState,
>;

/// A refused request: when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after_secs: u64,
}

pub struct RateLimits {
    principal: Option<Keyed>,
    connector: Option<Keyed>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("principal", &self.principal.is_some())
            .field("connector", &self.connector.is_some())
            .finish()
    }
}

fn limiter(per_second: u32, burst: u32) -> Option<Keyed> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(RateLimiter::dashmap_with_hasher(
        Quota::per_second(rate).allow_burst(burst),
        foldhash::fast::RandomState::default(),
    ))
}

impl RateLimits {
    pub fn new(
        per_principal: u32,
        principal_burst: u32,
        per_connector: u32,
        connector_burst: u32,
    ) -> Self {
        Self {
            principal: limiter(per_principal, principal_burst),
            connector: limiter(per_connector, connector_burst),
            clock: DefaultClock::default(),
        }
    }

    fn check(&self, limiter: Option<&Keyed>, key: &str) -> Result<(), Limited> {
        let Some(l) = limiter else { return Ok(()) };
        l.check_key(&key.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            Limited {
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }

    /// One request by user `user_id`.
    pub fn check_principal(&self, user_id: &str) -> Result<(), Limited> {
        self.check(self.principal.as_ref(), user_id)
    }

    /// One use of connector `connector_id`.
    pub fn check_connector(&self, connector_id: &str) -> Result<(), Limited> {
        self.check(self.connector.as_ref(), connector_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refuses_with_a_retry_time() {
        let r = RateLimits::new(1, 2, 0, 0);
        assert!(r.check_principal("a").is_ok());
        assert!(r.check_principal("a").is_ok());
        let refused = r.check_principal("a").unwrap_err();
        assert!((1..=2).contains(&refused.retry_after_secs), "{refused:?}");
        assert!(r.check_principal("b").is_ok(), "per key");
        for _ in 0..100 {
            assert!(r.check_connector("c").is_ok(), "0 switches it off");
        }
    }
}
