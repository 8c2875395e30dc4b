//! Overload on one machine: an encoder that stays under real time sheds the top of its ladder,
//! as the operator does on Kubernetes (`operator/src/scaling.rs`, `shed_if_slow`): below 0.9x for
//! `--shed-after-secs` (30), one level less (Full → Reduced → Passthrough), then a new spell.
//! Without it the encoder's input backs up behind the publisher and the delay grows without
//! bound.
//!
//! The speed is measured here, over the last few seconds of `out_time_us` against the wall
//! clock, not taken from ffmpeg's `speed=`: that one is averaged from the encoder's start, so an
//! encoder that falls behind after ten minutes would take minutes to show it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use onair_domain::LadderLevel as Level;

/// Under this fraction of real time an encoder is falling behind (the operator's rule: a
/// live-fed encoder that keeps up measures just under 1.0).
pub const SLOW: f64 = 0.9;
/// The span the speed is measured over.
const WINDOW: Duration = Duration::from_secs(6);
/// Too short a span says nothing yet.
const MIN_SPAN: Duration = Duration::from_secs(2);

/// How recently the encoder's input must have backed up for its slowness to be the machine's.
pub const BACKED_UP_RECENTLY: Duration = Duration::from_secs(5);

/// The speed that counts for shedding: an encoder whose input never backs up is fed under real
/// time (a publisher on a weak uplink), and shedding would not help it, so its slowness does not
/// count; with a full input pipe the machine is what is slow.
pub fn effective_speed(speed: f64, backed_up: Option<Instant>, now: Instant) -> f64 {
    let machine_bound = backed_up.is_some_and(|t| now.saturating_duration_since(t) < BACKED_UP_RECENTLY);
    if machine_bound { speed } else { speed.max(SLOW) }
}

/// One encoder's speed and slow spell.
#[derive(Debug)]
pub struct Shedder {
    after: Duration,
    samples: VecDeque<(Instant, u64)>,
    slow_since: Option<Instant>,
}

impl Shedder {
    /// `after`: how long under real time before a level goes; zero never sheds.
    pub fn new(after: Duration) -> Self {
        Self { after, samples: VecDeque::new(), slow_since: None }
    }

    /// The encoder's output time (µs) at `now`; the speed over the window, once it means
    /// something.
    pub fn observe(&mut self, now: Instant, out_time_us: u64) -> Option<f64> {
        self.samples.push_back((now, out_time_us));
        while self.samples.len() > 2 && self.samples.front().is_some_and(|(t, _)| now.duration_since(*t) > WINDOW) {
            self.samples.pop_front();
        }
        let (t0, o0) = *self.samples.front()?;
        let span = now.duration_since(t0);
        (span >= MIN_SPAN).then(|| out_time_us.saturating_sub(o0) as f64 / 1e6 / span.as_secs_f64())
    }

    /// The level to shed to, if the encoder has been slow for long enough at `level`.
    pub fn decide(&mut self, now: Instant, speed: f64, level: Level) -> Option<Level> {
        if self.after.is_zero() || speed >= SLOW {
            self.slow_since = None;
            return None;
        }
        let since = *self.slow_since.get_or_insert(now);
        if now.duration_since(since) < self.after {
            return None;
        }
        // A new spell for the next level down.
        self.slow_since = None;
        match level {
            Level::Full => Some(Level::Reduced),
            Level::Reduced => Some(Level::Passthrough),
            Level::Passthrough => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, secs: f64) -> Instant {
        t0 + Duration::from_secs_f64(secs)
    }

    #[test]
    fn speed_is_measured_over_the_recent_window_not_since_the_start() {
        let t0 = Instant::now();
        let mut s = Shedder::new(Duration::from_secs(30));
        // 60 s at real time, then half speed: the recent window shows it within seconds.
        let mut out = 0u64;
        let mut last = None;
        for i in 0..=80 {
            out += if i <= 60 { 1_000_000 } else { 500_000 };
            last = s.observe(at(t0, f64::from(i)), out);
        }
        let speed = last.unwrap_or_default();
        assert!((speed - 0.5).abs() < 0.01, "{speed}");
        assert_eq!(Shedder::new(Duration::ZERO).observe(t0, 0), None, "one sample says nothing");
    }

    #[test]
    fn only_a_machine_that_backs_up_its_encoder_counts_as_slow() {
        let t0 = Instant::now();
        assert_eq!(effective_speed(0.5, Some(t0), at(t0, 1.0)), 0.5, "input backed up a second ago");
        assert_eq!(effective_speed(0.5, None, t0), SLOW, "never backed up: a slow publisher");
        assert_eq!(effective_speed(0.5, Some(t0), at(t0, 6.0)), SLOW, "backed up long ago");
        assert_eq!(effective_speed(1.2, None, t0), 1.2);
        // A publisher at 0.8x on an idle machine never starts a spell.
        let mut s = Shedder::new(Duration::from_secs(3));
        for i in 0..20 {
            assert_eq!(
                s.decide(at(t0, f64::from(i)), effective_speed(0.8, None, at(t0, f64::from(i))), Level::Full),
                None
            );
        }
    }

    #[test]
    fn a_slow_spell_sheds_one_level_at_a_time_and_recovery_resets_it() {
        let t0 = Instant::now();
        let mut s = Shedder::new(Duration::from_secs(30));
        assert_eq!(s.decide(at(t0, 0.0), 0.5, Level::Full), None);
        assert_eq!(s.decide(at(t0, 29.0), 0.5, Level::Full), None);
        assert_eq!(s.decide(at(t0, 30.0), 0.5, Level::Full), Some(Level::Reduced));
        // A new spell: not again at once.
        assert_eq!(s.decide(at(t0, 31.0), 0.5, Level::Reduced), None);
        assert_eq!(s.decide(at(t0, 45.0), 1.0, Level::Reduced), None, "keeping up ends the spell");
        assert_eq!(s.decide(at(t0, 50.0), 0.8, Level::Reduced), None);
        assert_eq!(s.decide(at(t0, 80.0), 0.8, Level::Reduced), Some(Level::Passthrough));
        assert_eq!(s.decide(at(t0, 200.0), 0.1, Level::Passthrough), None, "nothing below passthrough");
        let mut off = Shedder::new(Duration::ZERO);
        assert_eq!(off.decide(at(t0, 0.0), 0.1, Level::Full), None);
        assert_eq!(off.decide(at(t0, 100.0), 0.1, Level::Full), None, "zero never sheds");
    }
}
