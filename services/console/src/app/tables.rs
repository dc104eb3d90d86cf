//! The pages that show a list or a configuration from the API as it is: each is a
//! declaration — where to read, which list, which columns — rendered by one
//! template. Configuration documents (routing rules, SLA policies, WeCom settings)
//! show as formatted JSON.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use huoke_shared::Infra;
use huoke_shared::auth::Role;
use serde_json::Value;

use super::api::Api;
use super::pages::{list_of, refused, signed_in, text};
use super::{Chrome, SECTIONS, chrome, render};

/// One list on a page: the API to read, the array in its answer, the columns
/// (label key, field).
struct Listing {
    api: &'static str,
    list: &'static str,
    columns: &'static [(&'static str, &'static str)],
}

struct PageDef {
    path: &'static str,
    listings: &'static [Listing],
}

const PEOPLE: &[(&str, &str)] = &[
    ("col.name", "name"),
    ("col.email", "email"),
    ("col.roles", "roles"),
    ("col.capacity", "capacity"),
    ("col.daily_cap", "daily_cap"),
    ("col.active", "active"),
];

const PAGES: &[PageDef] = &[
    PageDef {
        path: "/app/campaigns",
        listings: &[
            Listing {
                api: "/v1/campaigns",
                list: "items",
                columns: &[("col.name", "name"), ("col.created_at", "created_at")],
            },
            Listing {
                api: "/v1/channels",
                list: "items",
                columns: &[
                    ("col.name", "name"),
                    ("col.kind", "kind"),
                    ("col.created_at", "created_at"),
                ],
            },
        ],
    },
    PageDef {
        path: "/app/cards",
        listings: &[Listing {
            api: "/v1/staff",
            list: "items",
            columns: &[("col.name", "name"), ("col.email", "email"), ("col.title", "title")],
        }],
    },
    PageDef {
        path: "/app/forms",
        listings: &[Listing {
            api: "/v1/forms",
            list: "items",
            columns: &[
                ("col.name", "name"),
                ("col.channel", "channel"),
                ("col.url", "url"),
                ("col.created_at", "created_at"),
            ],
        }],
    },
    PageDef {
        path: "/app/webhook-sources",
        listings: &[Listing {
            api: "/v1/webhook-sources",
            list: "items",
            columns: &[
                ("col.name", "name"),
                ("col.channel", "channel"),
                ("col.url", "url"),
                ("col.created_at", "created_at"),
            ],
        }],
    },
    PageDef {
        path: "/app/reports/funnel",
        listings: &[Listing {
            api: "/v1/reports/funnel?by=channel",
            list: "rows",
            columns: &[
                ("col.channel", "key"),
                ("col.scans", "scans"),
                ("col.captures", "captures"),
                ("col.leads", "leads"),
                ("col.mql", "mql"),
                ("col.sql", "sql"),
                ("col.sal", "sal"),
                ("col.won", "won"),
            ],
        }],
    },
    PageDef {
        path: "/app/teams",
        listings: &[
            Listing {
                api: "/v1/teams",
                list: "items",
                columns: &[
                    ("col.name", "name"),
                    ("col.manager", "manager_id"),
                    ("col.members", "members"),
                ],
            },
            Listing {
                api: "/v1/staff",
                list: "items",
                columns: PEOPLE,
            },
        ],
    },
    PageDef {
        path: "/app/routing",
        listings: &[Listing {
            api: "/v1/routing/rules",
            list: "",
            columns: &[],
        }],
    },
    PageDef {
        path: "/app/sla",
        listings: &[Listing {
            api: "/v1/sla/policies",
            list: "",
            columns: &[],
        }],
    },
    PageDef {
        path: "/app/reports/sla",
        listings: &[Listing {
            api: "/v1/reports/sla",
            list: "sdrs",
            columns: &[
                ("col.name", "name"),
                ("col.team", "team"),
                ("col.offers", "offers"),
                ("col.accepted", "accepted"),
                ("col.rejected", "rejected"),
                ("col.breached", "breached"),
                ("col.accept_median_s", "accept_median_s"),
                ("col.first_contact_median_s", "first_contact_median_s"),
            ],
        }],
    },
    PageDef {
        path: "/app/dead-letters",
        listings: &[Listing {
            api: "/v1/admin/dead-letters",
            list: "items",
            columns: &[
                ("col.queue", "queue"),
                ("col.type", "type"),
                ("col.reason", "reason"),
                ("col.attempts", "attempts"),
                ("col.dead_at", "dead_at"),
            ],
        }],
    },
    PageDef {
        path: "/app/staff",
        listings: &[Listing {
            api: "/v1/staff",
            list: "items",
            columns: PEOPLE,
        }],
    },
    PageDef {
        path: "/app/api-keys",
        listings: &[Listing {
            api: "/v1/api-keys",
            list: "items",
            columns: &[
                ("col.name", "name"),
                ("col.prefix", "prefix"),
                ("col.scopes", "scopes"),
                ("col.last_used_at", "last_used_at"),
                ("col.revoked_at", "revoked_at"),
            ],
        }],
    },
    PageDef {
        path: "/app/wecom",
        listings: &[Listing {
            api: "/v1/integrations/wecom",
            list: "",
            columns: &[],
        }],
    },
];

pub struct Table {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
    /// A configuration document instead of a list.
    pub document: Option<String>,
}

#[derive(Template)]
#[template(path = "table.html")]
struct TablePage {
    chrome: Chrome,
    title: &'static str,
    tables: Vec<Table>,
}

/// A cell: lists joined, everything else as text.
fn cell(value: &Value) -> String {
    match value {
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        other => text(other),
    }
}

pub async fn show(req: HttpRequest, infra: web::Data<Infra>) -> HttpResponse {
    let session = signed_in!(req, infra);
    let path = req.path().trim_end_matches('/').to_string();
    let (Some(def), Some((_, title_key, role))) = (
        PAGES.iter().find(|p| p.path == path),
        SECTIONS.iter().find(|(href, _, _)| *href == path),
    ) else {
        return super::html(actix_web::http::StatusCode::NOT_FOUND, "not found".into());
    };
    if !session.has(*role) && !session.has(Role::Admin) {
        let refusal = super::api::Refusal {
            status: 403,
            detail: String::new(),
        };
        return refused(&req, &session, &refusal);
    }
    let api = Api::of(&req, &session);
    let lang = super::Lang::of(&req);
    let mut tables = Vec::new();
    for listing in def.listings {
        let answer = match api.get(listing.api).await {
            Ok(a) => a,
            Err(refusal) => return refused(&req, &session, &refusal),
        };
        if listing.list.is_empty() {
            tables.push(Table {
                headers: Vec::new(),
                rows: Vec::new(),
                document: Some(serde_json::to_string_pretty(&answer).unwrap_or_default()),
            });
            continue;
        }
        let rows = list_of(&answer, listing.list, |item| {
            listing.columns.iter().map(|(_, field)| cell(&item[*field])).collect()
        });
        tables.push(Table {
            headers: listing.columns.iter().map(|(label, _)| lang.t(label)).collect(),
            rows,
            document: None,
        });
    }
    let page = TablePage {
        chrome: chrome(&req, &session, None),
        title: lang.t(title_key),
        tables,
    };
    session.finish(render(&page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_without_its_own_page_has_a_declaration() {
        let own = ["/app/inbox", "/app/pool", "/app/codes"];
        for (href, _, _) in SECTIONS {
            assert!(
                own.contains(href) || PAGES.iter().any(|p| p.path == *href),
                "{href} has no page"
            );
        }
    }

    #[test]
    fn every_column_label_has_text() {
        for page in PAGES {
            for listing in page.listings {
                for (label, _) in listing.columns {
                    assert_ne!(super::super::Lang::En.t(label), "??", "{label}");
                }
            }
        }
    }
}
