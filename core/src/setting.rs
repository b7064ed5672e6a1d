//! Per-handle settings changed through `&self`, as std's `set_nonblocking` and
//! `set_read_timeout` are: a flag ([`FlagSetting`]) and an optional timeout
//! ([`TimeoutSetting`]), each one atomic word.
//!
//! A setter racing a call on another thread may or may not apply to that call (the word is
//! read once per call, `Relaxed`), as with std's `SO_RCVTIMEO`. One word per setting, no
//! protocol between words: there is nothing for loom to check, hence the `allow` of the
//! atomics lint (which keeps the lock-free code behind the loom shims) in this file alone.
#![allow(clippy::disallowed_types)]

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A boolean setting (a handle's non-blocking mode), changed through `&self`.
///
/// ```
/// use ipcraft_core::FlagSetting;
/// let nonblocking = FlagSetting::new(false);
/// nonblocking.set(true);
/// assert!(nonblocking.get());
/// ```
#[derive(Default)]
pub struct FlagSetting(AtomicBool);

impl FlagSetting {
    /// A setting with value `value`.
    pub const fn new(value: bool) -> Self {
        Self(AtomicBool::new(value))
    }

    /// The value last set.
    #[inline]
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Set the value.
    #[inline]
    pub fn set(&self, value: bool) {
        self.0.store(value, Ordering::Relaxed);
    }
}

impl fmt::Debug for FlagSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

/// An optional timeout setting (`None`: wait forever), changed through `&self`. Any
/// [`Duration`] up to `u64::MAX - 1` nanoseconds (584 years) is kept exactly; longer ones are
/// cut to that.
///
/// ```
/// use ipcraft_core::TimeoutSetting;
/// use std::time::Duration;
/// let timeout = TimeoutSetting::new(None);
/// timeout.set(Some(Duration::from_millis(250)));
/// assert_eq!(timeout.get(), Some(Duration::from_millis(250)));
/// timeout.set(Some(Duration::ZERO));
/// assert_eq!(timeout.get(), Some(Duration::ZERO));
/// timeout.set(None);
/// assert_eq!(timeout.get(), None);
/// ```
#[derive(Default)]
pub struct TimeoutSetting(AtomicU64);

impl TimeoutSetting {
    /// A setting with value `timeout`.
    pub fn new(timeout: Option<Duration>) -> Self {
        Self(AtomicU64::new(encode(timeout)))
    }

    /// The timeout last set.
    #[inline]
    pub fn get(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n - 1)),
        }
    }

    /// Set the timeout.
    #[inline]
    pub fn set(&self, timeout: Option<Duration>) {
        self.0.store(encode(timeout), Ordering::Relaxed);
    }
}

impl Clone for TimeoutSetting {
    fn clone(&self) -> Self {
        Self::new(self.get())
    }
}

impl Clone for FlagSetting {
    fn clone(&self) -> Self {
        Self::new(self.get())
    }
}

impl fmt::Debug for TimeoutSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

/// 0 for none, nanoseconds + 1 otherwise.
fn encode(timeout: Option<Duration>) -> u64 {
    timeout.map_or(0, |t| {
        u64::try_from(t.as_nanos())
            .unwrap_or(u64::MAX)
            .min(u64::MAX - 1)
            + 1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_trip_and_huge_ones_saturate() {
        let t = TimeoutSetting::default();
        assert_eq!(t.get(), None);
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_secs(3600),
        ] {
            t.set(Some(d));
            assert_eq!(t.get(), Some(d));
        }
        t.set(Some(Duration::MAX));
        assert_eq!(t.get(), Some(Duration::from_nanos(u64::MAX - 1)));
        assert_eq!(t.clone().get(), t.get());
    }
}
