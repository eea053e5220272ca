//! A circuit breaker per tenant: a tenant whose processor keeps running to its time or
//! fuel limit is slowed down by itself, with no quota set, so that it cannot hold a core
//! for ever (an event that spins holds a worker, and a core, until its limit).
//!
//! After [`TRIP_AFTER`] events in a row ran to their limit, the tenant's events wait
//! (`QuotaLimit::Breaker`): nothing more of it starts for [`SHARE`] times what the last of
//! them took (at least [`COOL_MIN`]), so that it uses at most about 1/[`SHARE`] of a worker.
//! Then one event goes (half-open): if it runs to its limit too, the tenant waits twice as
//! long as before (up to [`COOL_MAX`]); if it ends by itself (succeeds, or fails for another
//! reason), the tenant is back to normal. Nothing fails and nothing is lost: its events
//! only wait.

use std::time::{Duration, Instant};

use crate::sync::Ran;

/// Events in a row that ran to their limit before the tenant is slowed down.
pub(in crate::embed) const TRIP_AFTER: u32 = 3;
/// A slowed-down tenant waits this many times the time its last event took.
pub(in crate::embed) const SHARE: u32 = 20;
/// The shortest and longest wait.
const COOL_MIN: Duration = Duration::from_secs(1);
const COOL_MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    /// Nothing starts until then.
    Open {
        until: Instant,
    },
    /// One event may run; its outcome decides.
    HalfOpen,
}

/// A tenant's breaker.
pub(in crate::embed) struct Breaker {
    state: State,
    /// Events in a row that ran to their limit.
    in_a_row: u32,
    /// The last wait.
    cool: Duration,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: State::Closed,
            in_a_row: 0,
            cool: Duration::ZERO,
        }
    }
}

impl Breaker {
    /// Take in how the events collected last ended, in order. `true` if the tenant has
    /// just been slowed down (it was not).
    pub(in crate::embed) fn record(&mut self, ran: &[Ran], now: Instant) -> bool {
        let mut tripped = false;
        for ran in ran {
            match *ran {
                Ran::Otherwise => {
                    self.in_a_row = 0;
                    self.state = State::Closed;
                }
                Ran::ToItsLimit(took) => {
                    self.in_a_row = self.in_a_row.saturating_add(1);
                    let wait = took.saturating_mul(SHARE).max(COOL_MIN);
                    match self.state {
                        State::Closed if self.in_a_row >= TRIP_AFTER => {
                            self.cool = wait.min(COOL_MAX);
                            self.state = State::Open {
                                until: now + self.cool,
                            };
                            tripped = true;
                        }
                        State::HalfOpen => {
                            self.cool = self.cool.saturating_mul(2).max(wait).min(COOL_MAX);
                            self.state = State::Open {
                                until: now + self.cool,
                            };
                        }
                        // Closed and under the count, or an event that ran before it tripped.
                        _ => {}
                    }
                }
            }
        }
        tripped
    }

    /// Whether the tenant is slowed down.
    pub(in crate::embed) fn throttled(&self) -> bool {
        self.state != State::Closed
    }

    /// How many events may start now (`usize::MAX`: no bound), or until when none may.
    /// `in_flight`: its events handed out and not collected yet.
    pub(in crate::embed) fn room(
        &mut self,
        now: Instant,
        in_flight: usize,
    ) -> Result<usize, Instant> {
        match self.state {
            State::Closed => Ok(usize::MAX),
            State::Open { until } if now < until => Err(until),
            // The wait is over: one event, once the ones that ran before are collected
            // (the loop comes back as they finish).
            State::Open { .. } | State::HalfOpen => {
                self.state = State::HalfOpen;
                Ok(usize::from(in_flight == 0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPUN: Ran = Ran::ToItsLimit(Duration::from_millis(300));

    #[test]
    fn trips_after_three_in_a_row_and_lets_one_through_after_the_wait() {
        let start = Instant::now();
        let mut breaker = Breaker::default();
        assert!(!breaker.record(&[SPUN, SPUN, Ran::Otherwise, SPUN, SPUN], start));
        assert_eq!(breaker.room(start, 0), Ok(usize::MAX));
        assert!(breaker.record(&[SPUN], start));
        assert!(breaker.throttled());
        // 20 x 300 ms.
        let until = breaker.room(start, 0).unwrap_err();
        assert_eq!(until - start, Duration::from_secs(6));
        assert_eq!(breaker.room(until, 1), Ok(0), "waits for the one in flight");
        assert_eq!(breaker.room(until, 0), Ok(1));
        assert_eq!(breaker.room(until, 1), Ok(0), "one at a time");
        // The one let through spun too: twice as long.
        assert!(!breaker.record(&[SPUN], until));
        assert_eq!(
            breaker.room(until, 0).unwrap_err() - until,
            Duration::from_secs(12)
        );
    }

    #[test]
    fn one_event_that_ends_by_itself_closes_it() {
        let start = Instant::now();
        let mut breaker = Breaker::default();
        assert!(breaker.record(&[SPUN, SPUN, SPUN], start));
        let later = start + Duration::from_secs(6);
        assert_eq!(breaker.room(later, 0), Ok(1));
        assert!(!breaker.record(&[Ran::Otherwise], later));
        assert!(!breaker.throttled());
        assert_eq!(breaker.room(later, 0), Ok(usize::MAX));
        // Counted afresh.
        assert!(!breaker.record(&[SPUN, SPUN], later));
        assert!(breaker.record(&[SPUN], later));
    }

    #[test]
    fn short_limits_wait_at_least_a_second_and_long_ones_at_most_five_minutes() {
        let start = Instant::now();
        let mut quick = Breaker::default();
        quick.record(&[Ran::ToItsLimit(Duration::from_millis(1)); 3], start);
        assert_eq!(quick.room(start, 0).unwrap_err() - start, COOL_MIN);
        let mut slow = Breaker::default();
        slow.record(&[Ran::ToItsLimit(Duration::from_secs(60)); 3], start);
        assert_eq!(slow.room(start, 0).unwrap_err() - start, COOL_MAX);
    }
}
