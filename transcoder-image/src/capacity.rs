//! The origin's capacity for viewers who reach it directly. Behind CDNs the origin sees a few
//! requests per edge; when every CDN fails, every player falls back to it at once, and without a
//! limit that fallback takes the origin (and the streams it encodes) down with the CDNs. So
//! direct playback is metered: requests/s and bytes/s, per stream and in total, as token buckets.
//! Past them a request gets 503 with `Retry-After` and `Cache-Control: no-store` (hls.js retries
//! on its backoff, and no cache keeps the refusal), and the streams keep being encoded for the
//! viewers already served. Edges are not metered (`metering.rs` tells them apart).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use onair_domain::StreamId;

/// How long a bucket may save up: a full bucket allows this many seconds of its rate at once.
const BURST: Duration = Duration::from_secs(2);
/// Per-stream buckets kept at most (a full bucket is dropped first: it holds no state).
const MAX_STREAMS: usize = 10_000;

/// One token bucket: `rate` per second, saving up to `rate × BURST`. A request takes from it
/// only if something is left; bytes are charged after the fact and may leave it in debt (a
/// segment's size is known only once it is answered), which the next requests wait out.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    rate: f64,
    level: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u64, now: Instant) -> Self {
        let rate = rate as f64;
        Self { rate, level: rate * BURST.as_secs_f64(), at: now }
    }

    fn refill(&mut self, now: Instant) {
        let cap = self.rate * BURST.as_secs_f64();
        self.level = (self.level + self.rate * now.saturating_duration_since(self.at).as_secs_f64()).min(cap);
        self.at = now;
    }

    fn has_some(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.level > 0.0
    }

    fn take(&mut self, amount: f64) {
        self.level -= amount;
    }

    fn full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.level >= self.rate * BURST.as_secs_f64()
    }
}

/// The configured rates; 0 is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    pub requests: u64,
    pub bytes: u64,
    pub stream_requests: u64,
    pub stream_bytes: u64,
}

impl Rates {
    fn any(&self) -> bool {
        self.requests + self.bytes + self.stream_requests + self.stream_bytes > 0
    }
}

/// A pair of buckets (requests, bytes), each absent when its rate is 0.
#[derive(Debug, Clone, Copy)]
struct Pair {
    requests: Option<Bucket>,
    bytes: Option<Bucket>,
}

impl Pair {
    fn new(requests: u64, bytes: u64, now: Instant) -> Self {
        let make = |rate| (rate > 0).then(|| Bucket::new(rate, now));
        Self { requests: make(requests), bytes: make(bytes) }
    }

    /// Which limit refuses a request now, if one does.
    fn refuses(&mut self, now: Instant) -> Option<&'static str> {
        if self.requests.as_mut().is_some_and(|b| !b.has_some(now)) {
            return Some("requests");
        }
        if self.bytes.as_mut().is_some_and(|b| !b.has_some(now)) {
            return Some("bytes");
        }
        None
    }

    fn take_request(&mut self) {
        if let Some(b) = &mut self.requests {
            b.take(1.0);
        }
    }

    fn take_bytes(&mut self, n: u64) {
        if let Some(b) = &mut self.bytes {
            b.take(n as f64);
        }
    }

    fn full(&mut self, now: Instant) -> bool {
        self.requests.as_mut().is_none_or(|b| b.full(now)) && self.bytes.as_mut().is_none_or(|b| b.full(now))
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// `total` or `stream`.
    pub scope: &'static str,
    /// `requests` or `bytes`.
    pub kind: &'static str,
}

/// The buckets: one pair for all direct viewers, one per stream.
#[derive(Debug)]
pub struct Capacity {
    rates: Rates,
    inner: Mutex<(Pair, HashMap<StreamId, Pair>)>,
}

impl Capacity {
    pub fn new(rates: Rates) -> Self {
        let now = Instant::now();
        Self { rates, inner: Mutex::new((Pair::new(rates.requests, rates.bytes, now), HashMap::new())) }
    }

    pub fn limited(&self) -> bool {
        self.rates.any()
    }

    /// Admit a request for `stream` at `now`, or say which limit refuses it.
    pub fn admit(&self, stream: Option<StreamId>, now: Instant) -> Result<(), Refusal> {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (total, streams) = &mut *guard;
        if let Some(kind) = total.refuses(now) {
            return Err(Refusal { scope: "total", kind });
        }
        let mut per_stream = None;
        if let Some(stream) = stream
            && (self.rates.stream_requests > 0 || self.rates.stream_bytes > 0)
        {
            if streams.len() >= MAX_STREAMS && !streams.contains_key(&stream) {
                streams.retain(|_, p| !p.full(now));
            }
            let pair = streams
                .entry(stream)
                .or_insert_with(|| Pair::new(self.rates.stream_requests, self.rates.stream_bytes, now));
            if let Some(kind) = pair.refuses(now) {
                return Err(Refusal { scope: "stream", kind });
            }
            per_stream = Some(pair);
        }
        if let Some(pair) = per_stream {
            pair.take_request();
        }
        total.take_request();
        Ok(())
    }

    /// Charge `bytes` answered for `stream`.
    pub fn charge(&self, stream: Option<StreamId>, bytes: u64) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (total, streams) = &mut *guard;
        total.take_bytes(bytes);
        if let Some(pair) = stream.and_then(|s| streams.get_mut(&s)) {
            pair.take_bytes(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0192f3a0-0000-7000-8000-000000000001";
    const B: &str = "0192f3a0-0000-7000-8000-000000000002";

    fn id(s: &str) -> Option<StreamId> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn requests_past_the_rate_are_refused_until_the_bucket_refills() {
        let cap = Capacity::new(Rates { requests: 10, ..Rates::default() });
        let t0 = Instant::now();
        // A full bucket holds two seconds' worth.
        for i in 0..20 {
            assert!(cap.admit(id(A), t0).is_ok(), "request {i}");
        }
        assert_eq!(cap.admit(id(A), t0), Err(Refusal { scope: "total", kind: "requests" }));
        // 100 ms later one more request's worth has come back.
        let later = t0 + Duration::from_millis(100);
        assert!(cap.admit(id(B), later).is_ok());
        assert!(cap.admit(id(B), later).is_err());
    }

    #[test]
    fn one_stream_at_its_limit_leaves_the_others_alone() {
        let cap = Capacity::new(Rates { stream_requests: 5, ..Rates::default() });
        let t0 = Instant::now();
        for _ in 0..10 {
            cap.admit(id(A), t0).unwrap();
        }
        assert_eq!(cap.admit(id(A), t0), Err(Refusal { scope: "stream", kind: "requests" }));
        assert!(cap.admit(id(B), t0).is_ok());
    }

    #[test]
    fn bytes_are_charged_after_the_answer_and_the_debt_is_waited_out() {
        let cap = Capacity::new(Rates { bytes: 1_000, ..Rates::default() });
        let t0 = Instant::now();
        cap.admit(id(A), t0).unwrap();
        // One 5 kB answer against a 2 kB bucket: 3 kB of debt, 3 s at 1 kB/s.
        cap.charge(id(A), 5_000);
        assert_eq!(cap.admit(id(A), t0 + Duration::from_millis(2_900)), Err(Refusal { scope: "total", kind: "bytes" }));
        assert!(cap.admit(id(A), t0 + Duration::from_millis(3_100)).is_ok());
    }

    #[test]
    fn no_rates_is_no_limit() {
        let cap = Capacity::new(Rates::default());
        assert!(!cap.limited());
        let t0 = Instant::now();
        for _ in 0..10_000 {
            cap.admit(id(A), t0).unwrap();
        }
    }

    #[test]
    fn the_per_stream_table_is_bounded() {
        let cap = Capacity::new(Rates { stream_requests: 1, ..Rates::default() });
        let t0 = Instant::now();
        for i in 0..(MAX_STREAMS as u128 + 10) {
            cap.admit(Some(StreamId(uuid::Uuid::from_u128(i))), t0).unwrap();
        }
        // Every bucket is drawn from (none full), so the table may exceed the bound only until
        // they refill; once they have, an insert past it drops the full ones.
        let later = t0 + BURST;
        cap.admit(Some(StreamId(uuid::Uuid::from_u128(u128::MAX))), later).unwrap();
        assert!(cap.inner.lock().unwrap().1.len() <= 2);
    }
}
