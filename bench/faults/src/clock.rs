//! One clock for every observation: seconds since the run began.

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Seconds since the first call.
pub fn now() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// A closed interval of run time, `[from, to]`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from: f64,
    pub to: f64,
}

impl Window {
    pub fn contains(&self, t: f64) -> bool {
        (self.from..=self.to).contains(&t)
    }
}

/// The longest of `spans` that began in `w`, whole: an outage belongs to the window whose fault
/// caused it, however long it lasts.
pub fn longest_starting_in(spans: &[(f64, f64)], w: Window) -> f64 {
    spans.iter().filter(|(a, _)| w.contains(*a)).map(|(a, b)| b - a).fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_belongs_whole_to_the_window_it_began_in() {
        let w = Window { from: 10.0, to: 20.0 };
        assert_eq!(longest_starting_in(&[(1.0, 2.0), (8.0, 12.0), (15.0, 16.0)], w), 1.0);
        assert_eq!(longest_starting_in(&[(19.0, 30.0)], w), 11.0);
        assert_eq!(longest_starting_in(&[(21.0, 30.0)], w), 0.0);
    }
}
