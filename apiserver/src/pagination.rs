//! Cursor pagination: opaque cursors (base64url JSON of the last row's sort key) and a
//! `limit` of 1-100, so pages stay stable while rows are added.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page.
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
    /// `next_cursor` from the previous page (opaque, base64url); empty for the first page.
    #[param(pattern = r"^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

/// The sort key of the last row of a page.
pub struct Cursor<T>(pub T);

impl PageParams {
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(20),
            Some(n) if (1..=100).contains(&n) => Ok(n),
            Some(_) => Err(onair_domain::ValidationError::new("limit", "must be between 1 and 100").into()),
        }
    }

    pub fn cursor<T: DeserializeOwned>(&self) -> Result<Option<Cursor<T>>, ApiError> {
        let Some(raw) = self.cursor.as_deref().filter(|c| !c.is_empty()) else { return Ok(None) };
        let bad = || ApiError::bad_request("invalid_cursor", "the cursor is not one this server issued");
        if raw.len() > 512 {
            return Err(bad());
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map(|v| Some(Cursor(v))).map_err(|_| bad())
    }

    /// The cursor of a list ordered by (time, id), newest first: decoded, its time checked.
    pub fn time_cursor(&self) -> Result<Option<(chrono::DateTime<chrono::Utc>, uuid::Uuid)>, ApiError> {
        let after = self.cursor::<(chrono::DateTime<chrono::Utc>, uuid::Uuid)>()?.map(|c| c.0);
        if let Some((t, _)) = after {
            sane_time(t)?;
        }
        Ok(after)
    }
}

/// Reject cursor timestamps no server could have issued, before Postgres sees them (a year like
/// -10000 parses in chrono but is out of range for `timestamptz`).
pub fn sane_time(t: chrono::DateTime<chrono::Utc>) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    use chrono::Datelike as _;
    if (1970..=9999).contains(&t.year()) {
        Ok(t)
    } else {
        Err(ApiError::bad_request("invalid_cursor", "the cursor is not one this server issued"))
    }
}

impl<T: Serialize> Cursor<T> {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&self.0).unwrap_or_default())
    }
}

/// One page of results.
#[derive(Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Build a page from up to `limit + 1` rows (the extra row only says whether more exist).
    pub fn from_rows<R, K: Serialize>(
        mut rows: Vec<R>,
        limit: i64,
        key: impl Fn(&R) -> Cursor<K>,
        map: impl FnMut(R) -> T,
    ) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more { rows.last().map(|r| key(r).encode()) } else { None };
        Self { items: rows.into_iter().map(map).collect(), next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        let c = Cursor((5_i64, "x".to_owned())).encode();
        let p = PageParams { limit: None, cursor: Some(c) };
        assert_eq!(p.cursor::<(i64, String)>().unwrap().unwrap().0, (5, "x".to_owned()));
        for junk in ["!!", "e30", "' OR 1=1 --"] {
            let p = PageParams { limit: None, cursor: Some(junk.into()) };
            assert!(p.cursor::<(i64, String)>().is_err(), "{junk}");
        }
        assert!(PageParams { limit: Some(0), cursor: None }.limit().is_err());
        assert!(PageParams { limit: Some(101), cursor: None }.limit().is_err());
        assert_eq!(PageParams::default().limit().unwrap(), 20);
    }

    #[test]
    fn page_from_rows_sets_cursor_only_when_more() {
        let p: Page<i32> = Page::from_rows(vec![1, 2, 3], 2, |r| Cursor(*r), |r| r * 10);
        assert_eq!(p.items, vec![10, 20]);
        assert_eq!(p.next_cursor, Some(Cursor(2).encode()));
        let p: Page<i32> = Page::from_rows(vec![1, 2], 2, |r| Cursor(*r), |r| r);
        assert_eq!(p.next_cursor, None);
    }
}
