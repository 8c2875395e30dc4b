//! Blocking playlist reload (RFC 8216bis §6.2.5.2) and blocking part/segment requests, as pure
//! decisions over the newest [`Position`] plus a [`Live`] handle that waits for them.
//!
//! Rules, as gohlslib and the spec have them:
//! * `_HLS_part` without `_HLS_msn` is a bad request.
//! * `_HLS_msn` more than two beyond the last complete segment (one beyond the open one) is a bad
//!   request at once, and so is an `_HLS_part` more than the Advance Part Limit ahead.
//! * A part index past the last part of a complete segment M means part 0 of M+1.
//! * An ended stream answers at once.

use std::time::Duration;

use tokio::sync::watch;

/// The newest part of a rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Segment holding the newest part.
    pub msn: u64,
    /// Index of the newest part in that segment.
    pub part: u64,
    /// That segment is complete (only before the next one starts: at the end of the stream).
    pub complete: bool,
    pub ended: bool,
}

/// A playlist request's delivery directives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Request {
    pub msn: Option<u64>,
    pub part: Option<u64>,
    /// `_HLS_skip=YES` (or `v2`): a delta update.
    pub skip: bool,
}

impl Request {
    /// Parses the query string (without `?`); other parameters are ignored.
    pub fn parse(query: Option<&str>) -> Result<Self, &'static str> {
        let mut out = Self::default();
        for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "_HLS_msn" => out.msn = Some(value.parse().map_err(|_| "_HLS_msn is not a number")?),
                "_HLS_part" => out.part = Some(value.parse().map_err(|_| "_HLS_part is not a number")?),
                "_HLS_skip" => out.skip = matches!(value, "YES" | "v2"),
                _ => {}
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Now,
    Wait,
    BadRequest(&'static str),
}

/// How many parts ahead of the newest one a request may ask for: three seconds' worth when parts
/// are shorter than a second, else three (the spec's Advance Part Limit).
pub fn advance_part_limit(part_target: Duration) -> u64 {
    let nanos = part_target.as_nanos();
    if nanos > 0 && part_target < Duration::from_secs(1) {
        u64::try_from(3_000_000_000u128.div_ceil(nanos)).unwrap_or(u64::MAX)
    } else {
        3
    }
}

/// Whether a playlist request can be answered now; `last` is `None` before the first part.
pub fn decide(last: Option<Position>, req: Request, part_limit: u64) -> Decision {
    let Some(msn) = req.msn else {
        return if req.part.is_some() { Decision::BadRequest("_HLS_part without _HLS_msn") } else { Decision::Now };
    };
    let Some(last) = last else {
        return Decision::Wait;
    };
    if last.ended {
        return Decision::Now;
    }
    // The last complete segment is last.msn - 1; two beyond it is one beyond the open segment.
    if msn > last.msn + 1 {
        return Decision::BadRequest("_HLS_msn more than two segments ahead");
    }
    let part = req.part;
    if msn < last.msn {
        // Segment msn is complete, and part 0 of the next one exists.
        return Decision::Now;
    }
    let ahead = match (msn == last.msn, part) {
        (true, None) => return if last.complete { Decision::Now } else { Decision::Wait },
        (true, Some(p)) if p <= last.part => return Decision::Now,
        (true, Some(p)) => p - last.part,
        (false, None) => return Decision::Wait,
        (false, Some(p)) => p + 1,
    };
    if ahead > part_limit { Decision::BadRequest("_HLS_part beyond the Advance Part Limit") } else { Decision::Wait }
}

/// What to do with a request for a part or segment URI that does not exist (yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    Wait,
    NotFound,
}

/// A missing part `(msn, part)` — or whole segment when `part` is `None` — is waited for when it
/// is the next one to come (the preload hint, or the open segment); anything else is not found.
pub fn pending(last: Option<Position>, first_msn: u64, msn: u64, part: Option<u64>) -> Pending {
    let Some(last) = last else {
        return if msn == first_msn && part.is_none_or(|p| p == 0) { Pending::Wait } else { Pending::NotFound };
    };
    if last.ended {
        return Pending::NotFound;
    }
    let next = match part {
        None => msn == last.msn && !last.complete || msn == last.msn + 1,
        Some(p) => msn == last.msn && p == last.part + 1 || msn == last.msn + 1 && p == 0,
    };
    if next { Pending::Wait } else { Pending::NotFound }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The caller answers 503.
    #[error("timed out waiting for the requested part")]
    Timeout,
    /// The stream's writer is gone.
    #[error("the rendition is gone")]
    Gone,
}

/// Publisher side of [`Live`].
#[derive(Debug)]
pub struct LiveSender(watch::Sender<Option<Position>>);

impl LiveSender {
    pub fn publish(&self, position: Option<Position>) {
        self.0.send_if_modified(|current| {
            let changed = *current != position;
            *current = position;
            changed
        });
    }

    pub fn subscribe(&self) -> Live {
        Live { rx: self.0.subscribe() }
    }
}

/// Per rendition, cheap to clone: the newest [`Position`], and waits for a later one.
#[derive(Debug, Clone)]
pub struct Live {
    rx: watch::Receiver<Option<Position>>,
}

impl Live {
    pub fn channel() -> (LiveSender, Live) {
        let (tx, rx) = watch::channel(None);
        (LiveSender(tx), Live { rx })
    }

    pub fn position(&self) -> Option<Position> {
        *self.rx.borrow()
    }

    /// Waits until a playlist for `req` can be answered (see [`decide`]).
    pub async fn wait(&self, req: Request, part_limit: u64, timeout: Duration) -> Result<(), WaitError> {
        self.wait_until(timeout, |pos| match decide(pos, req, part_limit) {
            Decision::Now => Some(Ok(())),
            Decision::Wait => None,
            Decision::BadRequest(why) => Some(Err(WaitError::BadRequest(why))),
        })
        .await
    }

    /// Waits until `done` answers for the current position; `Timeout` after `timeout`.
    pub async fn wait_until<T>(
        &self,
        timeout: Duration,
        mut done: impl FnMut(Option<Position>) -> Option<Result<T, WaitError>>,
    ) -> Result<T, WaitError> {
        let mut rx = self.rx.clone();
        let wait = async {
            loop {
                let pos = *rx.borrow_and_update();
                if let Some(answer) = done(pos) {
                    return answer;
                }
                if rx.changed().await.is_err() {
                    // No more updates will come: one last look.
                    let pos = *rx.borrow();
                    return done(pos).unwrap_or(Err(WaitError::Gone));
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(Err(WaitError::Timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;

    const LIMIT: u64 = 15;

    fn at(msn: u64, part: u64) -> Option<Position> {
        Some(Position { msn, part, complete: false, ended: false })
    }

    fn req(msn: Option<u64>, part: Option<u64>) -> Request {
        Request { msn, part, skip: false }
    }

    #[test]
    fn decide_table() {
        let ended = Some(Position { msn: 5, part: 2, complete: true, ended: true });
        let cases: &[(Option<Position>, Request, Decision)] = &[
            (at(5, 2), req(None, None), Now),
            (None, req(None, None), Now),
            (at(5, 2), req(None, Some(1)), BadRequest("_HLS_part without _HLS_msn")),
            (None, req(Some(0), None), Wait),
            (at(5, 2), req(Some(4), None), Now),
            (at(5, 2), req(Some(4), Some(9)), Now),
            (at(5, 2), req(Some(5), Some(2)), Now),
            (at(5, 2), req(Some(5), Some(0)), Now),
            (at(5, 2), req(Some(5), Some(3)), Wait),
            (at(5, 2), req(Some(5), None), Wait),
            (at(5, 2), req(Some(6), None), Wait),
            (at(5, 2), req(Some(6), Some(0)), Wait),
            (at(5, 2), req(Some(6), Some(14)), Wait),
            (at(5, 2), req(Some(6), Some(15)), BadRequest("_HLS_part beyond the Advance Part Limit")),
            (at(5, 2), req(Some(5), Some(18)), BadRequest("_HLS_part beyond the Advance Part Limit")),
            (at(5, 2), req(Some(7), None), BadRequest("_HLS_msn more than two segments ahead")),
            (at(5, 2), req(Some(7), Some(0)), BadRequest("_HLS_msn more than two segments ahead")),
            (ended, req(Some(5), Some(7)), Now),
            (ended, req(Some(9), None), Now),
            (Some(Position { msn: 5, part: 2, complete: true, ended: false }), req(Some(5), None), Now),
        ];
        for (i, (pos, r, want)) in cases.iter().enumerate() {
            assert_eq!(decide(*pos, *r, LIMIT), *want, "case {i}: {pos:?} {r:?}");
        }
        assert_eq!(advance_part_limit(Duration::from_millis(200)), 15);
        assert_eq!(advance_part_limit(Duration::from_millis(333)), 10);
        assert_eq!(advance_part_limit(Duration::from_secs(2)), 3);
    }

    #[test]
    fn pending_table() {
        use Pending::*;
        let ended = Some(Position { msn: 5, part: 2, complete: true, ended: true });
        let cases: &[(Option<Position>, u64, Option<u64>, Pending)] = &[
            (at(5, 2), 5, Some(3), Wait),
            (at(5, 2), 6, Some(0), Wait),
            (at(5, 2), 5, Some(4), NotFound),
            (at(5, 2), 6, Some(1), NotFound),
            (at(5, 2), 7, Some(0), NotFound),
            (at(5, 2), 4, Some(9), NotFound),
            (at(5, 2), 5, None, Wait),
            (at(5, 2), 6, None, Wait),
            (at(5, 2), 7, None, NotFound),
            (None, 0, Some(0), Wait),
            (None, 0, None, Wait),
            (None, 1, None, NotFound),
            (ended, 5, Some(3), NotFound),
        ];
        for (i, (pos, msn, part, want)) in cases.iter().enumerate() {
            assert_eq!(pending(*pos, 0, *msn, *part), *want, "case {i}");
        }
    }

    #[test]
    fn parses_queries() {
        assert_eq!(Request::parse(None), Ok(Request::default()));
        assert_eq!(
            Request::parse(Some("_HLS_msn=7&_HLS_part=2&_HLS_skip=YES&token=x")),
            Ok(Request { msn: Some(7), part: Some(2), skip: true })
        );
        assert_eq!(Request::parse(Some("_HLS_skip=v2")).map(|r| r.skip), Ok(true));
        assert!(Request::parse(Some("_HLS_msn=-1")).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn wait_returns_when_the_part_arrives() {
        let (tx, live) = Live::channel();
        tx.publish(at(5, 2));
        let waiter = tokio::spawn({
            let live = live.clone();
            async move { live.wait(req(Some(5), Some(3)), LIMIT, Duration::from_secs(3)).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished());
        tx.publish(at(5, 3));
        assert_eq!(waiter.await.ok(), Some(Ok(())));
        let started = tokio::time::Instant::now();
        assert_eq!(
            live.wait(req(Some(9), None), LIMIT, Duration::from_secs(3)).await,
            Err(WaitError::BadRequest("_HLS_msn more than two segments ahead"))
        );
        assert_eq!(started.elapsed(), Duration::ZERO, "refused at once");
        assert_eq!(live.wait(req(Some(6), None), LIMIT, Duration::from_secs(3)).await, Err(WaitError::Timeout));
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        drop(tx);
        assert_eq!(live.wait(req(Some(6), None), LIMIT, Duration::from_secs(3)).await, Err(WaitError::Gone));
    }
}
