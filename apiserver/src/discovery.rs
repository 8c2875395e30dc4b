//! Discovery: search by text, category, tag and language, live streams first by viewers;
//! categories with live counts.

use axum::extract::State;
use chrono::{DateTime, Utc};
use onair_domain::{Category, Language, Tag};
use onair_web::{Json, Query};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::pagination::{Cursor, Page, PageParams, sane_time};
use crate::state::AppState;
use crate::streams::{StreamRow, StreamView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search)).routes(routes!(categories))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Free text over titles, tags, streamer names and categories; prefixes match (`spee`
    /// finds `speedrun`) and, for longer words, near misses too. Up to 200 characters, no
    /// control characters.
    #[param(max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub q: Option<String>,
    /// A category slug.
    #[param(pattern = r"^[A-Za-z0-9-]{1,40}$")]
    pub category: Option<String>,
    /// 1 to 25 letters, digits, `-` or `_`.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,25}$")]
    pub tag: Option<String>,
    /// A language code like `en` or `pt-br`.
    #[param(pattern = r"^[a-z]{2}(-[a-z]{2})?$")]
    pub language: Option<String>,
    /// Only streams on air now.
    pub live: Option<bool>,
    /// Items per page.
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
    /// `next_cursor` from the previous page (opaque, base64url); empty for the first page.
    #[param(pattern = r"^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CategoryView {
    pub slug: String,
    pub name: String,
    pub live_streams: i64,
    pub viewers: i64,
}

/// Turn free text into a prefix tsquery: words of letters and digits only, so nothing the
/// client types can change the query's structure.
pub fn to_prefix_tsquery(q: &str) -> Option<String> {
    let words: Vec<String> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(8)
        .map(|w| format!("{}:*", w.to_lowercase()))
        .collect();
    (!words.is_empty()).then(|| words.join(" & "))
}

/// The stream columns a search ranks and returns (everything but the search vector).
const RANK_COLUMNS: &str = "id, user_id, title, category, tags, language, quality, status, current_viewers, peak_viewers, created_at, started_at, ended_at, playback_access";

/// Sort key of a search result: on air first, then viewers, then newest.
type SearchKey = (bool, i32, DateTime<Utc>, Uuid);

/// Search streams.
#[utoipa::path(get, path = "/api/streams/search", tag = "discovery", params(SearchParams),
    responses((status = 200, body = Page<StreamView>), (status = 400, body = onair_web::ErrorBody)))]
async fn search(State(state): State<AppState>, Query(p): Query<SearchParams>) -> ApiResult<Json<Page<StreamView>>> {
    let page = PageParams { limit: p.limit, cursor: p.cursor.clone() };
    let limit = page.limit()?;
    let after: Option<SearchKey> = page.cursor()?.map(|c: Cursor<SearchKey>| c.0);
    if let Some((_, _, t, _)) = after {
        sane_time(t)?;
    }
    // Checked before trimming, as the document's pattern reads it; Postgres cannot even hold a NUL.
    if p.q.as_deref().is_some_and(|q| q.chars().any(char::is_control)) {
        return Err(onair_domain::ValidationError::new("q", "must not contain control characters").into());
    }
    let q = p.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if let Some(q) = q
        && q.chars().count() > 200
    {
        return Err(onair_domain::ValidationError::new("q", "must be at most 200 characters").into());
    }
    let category = p.category.as_deref().map(Category::parse).transpose()?;
    let tag = p.tag.as_deref().map(Tag::parse).transpose()?;
    let language = p.language.as_deref().map(Language::parse).transpose()?;
    let live_only = p.live.unwrap_or(false);

    let filters = Filters { category, tag, language, live_only };
    // `Some(Err(()))`: the text is only punctuation, so nothing can match.
    let text = q.map(|q| to_prefix_tsquery(q).ok_or(()));
    let rows = match text {
        Some(Err(())) => vec![],
        Some(Ok(tsq)) => {
            let rows = search_rows(&state, &filters, Some(Match::Text(tsq)), after, limit).await?;
            // Nothing matched word for word: try near misses on titles (typos), first page only.
            let q = q.unwrap_or_default();
            if rows.is_empty() && after.is_none() && q.chars().count() >= 4 {
                // One page of near misses; a cursor would resume the exact match, which found nothing.
                let mut near = search_rows(&state, &filters, Some(Match::Fuzzy(q.to_lowercase())), None, limit).await?;
                near.truncate(limit as usize);
                near
            } else {
                rows
            }
        }
        None => search_rows(&state, &filters, None, after, limit).await?,
    };
    Ok(Json(Page::from_rows(
        rows,
        limit,
        |r| Cursor((r.status == "live", r.current_viewers, r.created_at, r.id)),
        |r| r.into_view(&state),
    )))
}

struct Filters {
    category: Option<Category>,
    tag: Option<Tag>,
    language: Option<Language>,
    live_only: bool,
}

enum Match {
    /// A prefix tsquery over the search vector.
    Text(String),
    /// Trigram word similarity on the title.
    Fuzzy(String),
}

/// One page of streams matching `m` and `f`, ranked on air first, then viewers, then newest.
///
/// With a text match the matching rows are found first (GIN) and then ranked: left to
/// itself the planner walks the rank index and filters, which for a rare match reads the whole
/// index (40 ms at 100k rows for a query with no hits) instead of sorting a handful of rows.
async fn search_rows(
    state: &AppState,
    f: &Filters,
    m: Option<Match>,
    after: Option<SearchKey>,
    limit: i64,
) -> ApiResult<Vec<StreamRow>> {
    // Built at run time, not `query_as!`: which filters, which match and which cursor apply
    // change the statement, and one static query with optional parameters would plan worse.
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new("");
    // A tag is as selective as a word, so it also picks rows first.
    let first = m.is_some() || f.tag.is_some();
    if first {
        sql.push("WITH matched AS MATERIALIZED (SELECT ").push(RANK_COLUMNS).push(" FROM streams WHERE true");
        if let Some(t) = &f.tag {
            sql.push(" AND tags @> ARRAY[").push_bind(t.as_str().to_owned()).push("]::text[]");
        }
    }
    if let Some(m) = &m {
        sql.push(" AND ");
        match m {
            Match::Text(tsq) => sql.push("search @@ to_tsquery('simple', ").push_bind(tsq.clone()).push(")"),
            // `<%` finds candidates through the trigram index; the explicit bound is stricter
            // than pg_trgm's default 0.6, which lets `speedrn` match `speedpaint` too.
            Match::Fuzzy(q) => sql
                .push_bind(q.clone())
                .push(" <% lower(title) AND word_similarity(")
                .push_bind(q.clone())
                .push(", lower(title)) >= 0.7"),
        };
    }
    if first {
        sql.push(") ");
    }
    // Rank and cut the page first, then join the streamer of just those rows.
    sql.push(
        "SELECT s.id, s.user_id, u.username, u.display_name, u.avatar_url, s.title, s.category, s.tags, s.language,
        s.quality, s.status, s.current_viewers, s.peak_viewers, s.created_at, s.started_at, s.ended_at, s.playback_access FROM (SELECT ",
    )
    .push(RANK_COLUMNS)
    .push(if first { " FROM matched s" } else { " FROM streams s" });
    sql.push(" WHERE true");
    if let Some(c) = &f.category {
        sql.push(" AND s.category = ").push_bind(c.as_str().to_owned());
    }
    if let Some(l) = &f.language {
        sql.push(" AND s.language = ").push_bind(l.as_str().to_owned());
    }
    if f.live_only {
        sql.push(" AND s.status = 'live'");
        if let Some((_, viewers, created, id)) = after {
            sql.push(" AND (s.current_viewers, s.created_at, s.id) < (")
                .push_bind(viewers)
                .push(", ")
                .push_bind(created)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        sql.push(" ORDER BY s.current_viewers DESC, s.created_at DESC, s.id DESC");
        sql.push(" LIMIT ").push_bind(limit + 1);
        sql.push(") s JOIN users u ON u.id = s.user_id ORDER BY s.current_viewers DESC, s.created_at DESC, s.id DESC");
    } else {
        if let Some((live, viewers, created, id)) = after {
            sql.push(" AND ((s.status = 'live'), s.current_viewers, s.created_at, s.id) < (")
                .push_bind(live)
                .push(", ")
                .push_bind(viewers)
                .push(", ")
                .push_bind(created)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        sql.push(" ORDER BY (s.status = 'live') DESC, s.current_viewers DESC, s.created_at DESC, s.id DESC");
        sql.push(" LIMIT ").push_bind(limit + 1);
        sql.push(") s JOIN users u ON u.id = s.user_id");
        sql.push(" ORDER BY (s.status = 'live') DESC, s.current_viewers DESC, s.created_at DESC, s.id DESC");
    }
    Ok(sql.build_query_as().fetch_all(&state.read_db).await?)
}

/// Every category with how many streams are live in it and how many watch them.
#[utoipa::path(get, path = "/api/categories", tag = "discovery", responses((status = 200, body = Vec<CategoryView>)))]
async fn categories(State(state): State<AppState>) -> ApiResult<Json<Vec<CategoryView>>> {
    // `!`: count and coalesce are never NULL, which Postgres does not report.
    let rows = sqlx::query_as!(
        CategoryView,
        r#"SELECT c.slug, c.name, count(s.id) AS "live_streams!",
            coalesce(sum(s.current_viewers), 0)::bigint AS "viewers!"
         FROM categories c LEFT JOIN streams s ON s.category = c.slug AND s.status = 'live'
         GROUP BY c.slug, c.name, c.sort_order
         ORDER BY "viewers!" DESC, "live_streams!" DESC, c.sort_order, c.slug"#,
    )
    .fetch_all(&state.read_db)
    .await?;
    Ok(Json(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsquery_is_built_from_words_only() {
        assert_eq!(to_prefix_tsquery("Speed run!").as_deref(), Some("speed:* & run:*"));
        assert_eq!(to_prefix_tsquery("'; DROP TABLE streams; --").as_deref(), Some("drop:* & table:* & streams:*"));
        assert_eq!(to_prefix_tsquery("a & b | !c <-> d:*").as_deref(), Some("a:* & b:* & c:* & d:*"));
        assert_eq!(to_prefix_tsquery("%%% ---"), None);
        assert_eq!(to_prefix_tsquery("ゲーム 実況").as_deref(), Some("ゲーム:* & 実況:*"));
    }
}
