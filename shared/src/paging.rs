//! List paging as the API contract describes: `?limit=` (default 50, max 500) and an
//! opaque `?cursor=`; answers `{items, next_cursor}`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

#[derive(Debug, Deserialize, Default)]
pub struct PageQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Page {
    pub limit: i64,
    /// Items strictly after this key (ids sort by creation).
    pub after: Option<String>,
}

impl PageQuery {
    pub fn parse(&self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::invalid("limit", "must be between 1 and 500"));
        }
        let after = match &self.cursor {
            None => None,
            Some(c) => Some(
                URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| ApiError::invalid("cursor", "not a cursor this API issued"))?,
            ),
        };
        Ok(Page { limit, after })
    }
}

#[derive(Debug, Serialize)]
pub struct Paged<T: Serialize> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T: Serialize> Paged<T> {
    /// `rows` were fetched with `limit + 1`; the extra row only says there is more.
    pub fn from_rows(mut rows: Vec<T>, page: &Page, key: impl Fn(&T) -> String) -> Self {
        let more = rows.len() as i64 > page.limit;
        rows.truncate(page.limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| URL_SAFE_NO_PAD.encode(key(r)))
        } else {
            None
        };
        Paged {
            items: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked() {
        assert_eq!(PageQuery::default().parse().unwrap().limit, 50);
        assert!(
            PageQuery {
                limit: Some(501),
                cursor: None
            }
            .parse()
            .is_err()
        );
        assert!(
            PageQuery {
                limit: Some(0),
                cursor: None
            }
            .parse()
            .is_err()
        );
        assert!(
            PageQuery {
                limit: None,
                cursor: Some("!!".into())
            }
            .parse()
            .is_err()
        );
    }

    #[test]
    fn cursors_round_trip() {
        let page = Page { limit: 2, after: None };
        let paged = Paged::from_rows(
            vec!["a".to_string(), "b".into(), "c".into()],
            &page,
            std::clone::Clone::clone,
        );
        assert_eq!(paged.items.len(), 2);
        let q = PageQuery {
            limit: Some(2),
            cursor: paged.next_cursor,
        };
        assert_eq!(q.parse().unwrap().after.as_deref(), Some("b"));
        let last = Paged::from_rows(vec!["c".to_string()], &page, std::clone::Clone::clone);
        assert!(last.next_cursor.is_none());
    }
}
