//! What the declarative pages show and do: for each, the lists it reads (with their
//! columns, a create form and per-row actions) or the configuration document it
//! edits. Everything goes to the public API as the signed-in person.

/// How a form field becomes JSON.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Text,
    Email,
    Password,
    /// An integer.
    Number,
    /// Comma- or line-separated values → an array of strings.
    List,
    /// One of these.
    Choice(&'static [&'static str]),
    /// A JSON value typed by hand (a field mapping).
    Json,
}

pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: Kind,
    pub required: bool,
}

const fn field(name: &'static str, label: &'static str, kind: Kind, required: bool) -> Field {
    Field {
        name,
        label,
        kind,
        required,
    }
}

/// A form that `POST`s one new object; `show_once` names the answer's fields to show
/// the person right away (a secret they will not see again).
pub struct Create {
    pub api: &'static str,
    pub fields: &'static [Field],
    pub show_once: &'static [&'static str],
}

/// A button on each row: `method` to `api` with `{id}` replaced by the row's `id`;
/// `input` adds a field next to the button whose value joins the body.
pub struct Action {
    pub label: &'static str,
    pub method: &'static str,
    pub api: &'static str,
    pub body: &'static str,
    pub input: Option<Field>,
}

/// A link on each row: `href` with `{id}` replaced by the row's `id`.
pub struct Link {
    pub label: &'static str,
    pub href: &'static str,
}

/// One list on a page: the API to read, the array in its answer, the columns
/// (label key, field).
pub struct Listing {
    pub api: &'static str,
    pub list: &'static str,
    pub columns: &'static [(&'static str, &'static str)],
    pub create: Option<Create>,
    pub actions: &'static [Action],
    pub links: &'static [Link],
}

/// A configuration document: read with `GET api`, saved with `PUT api`.
/// `simulate` is an API that takes a trial input next to it (routing).
pub struct Document {
    pub api: &'static str,
    pub simulate: Option<&'static str>,
    /// Fields the API answers but does not take back.
    pub strip: &'static [&'static str],
    /// Fields the API takes but never shows (secrets): offered blank.
    pub blank: &'static [&'static str],
}

pub struct PageDef {
    pub path: &'static str,
    pub listings: &'static [Listing],
    pub document: Option<Document>,
}

const PEOPLE: &[(&str, &str)] = &[
    ("col.name", "name"),
    ("col.email", "email"),
    ("col.roles", "roles"),
    ("col.capacity", "capacity"),
    ("col.daily_cap", "daily_cap"),
    ("col.active", "active"),
];

const fn list(api: &'static str, columns: &'static [(&'static str, &'static str)]) -> Listing {
    Listing {
        api,
        list: "items",
        columns,
        create: None,
        actions: &[],
        links: &[],
    }
}

const fn page(path: &'static str, listings: &'static [Listing]) -> PageDef {
    PageDef {
        path,
        listings,
        document: None,
    }
}

const VERSIONED: &[&str] = &["version", "created_by", "created_at"];

const fn document(
    path: &'static str,
    api: &'static str,
    simulate: Option<&'static str>,
    strip: &'static [&'static str],
    blank: &'static [&'static str],
) -> PageDef {
    PageDef {
        path,
        listings: &[],
        document: Some(Document {
            api,
            simulate,
            strip,
            blank,
        }),
    }
}

pub const PAGES: &[PageDef] = &[
    page(
        "/app/campaigns",
        &[
            Listing {
                create: Some(Create {
                    api: "/v1/campaigns",
                    fields: &[field("name", "col.name", Kind::Text, true)],
                    show_once: &[],
                }),
                links: &[Link {
                    label: "campaigns.zip",
                    href: "/v1/campaigns/{id}/qr.zip",
                }],
                ..list(
                    "/v1/campaigns",
                    &[("col.name", "name"), ("col.created_at", "created_at")],
                )
            },
            Listing {
                create: Some(Create {
                    api: "/v1/channels",
                    fields: &[
                        field("name", "col.name", Kind::Text, true),
                        field("kind", "col.kind", Kind::Choice(huoke_shared::channels::CHANNELS), true),
                        field("campaign_id", "col.campaign", Kind::Text, false),
                    ],
                    show_once: &[],
                }),
                ..list(
                    "/v1/channels",
                    &[
                        ("col.name", "name"),
                        ("col.kind", "kind"),
                        ("col.created_at", "created_at"),
                    ],
                )
            },
        ],
    ),
    page(
        "/app/forms",
        &[Listing {
            create: Some(Create {
                api: "/v1/forms",
                fields: &[
                    field("name", "col.name", Kind::Text, true),
                    field("fields", "col.fields", Kind::List, true),
                    field("required", "col.required", Kind::List, false),
                    field(
                        "channel",
                        "col.channel",
                        Kind::Choice(huoke_shared::channels::CHANNELS),
                        false,
                    ),
                    field("thank_you", "col.thank_you", Kind::Text, false),
                    field("allowed_origins", "col.allowed_origins", Kind::List, false),
                ],
                show_once: &[],
            }),
            links: &[Link {
                label: "forms.open",
                href: "/f/{id}",
            }],
            ..list(
                "/v1/forms",
                &[
                    ("col.name", "name"),
                    ("col.channel", "channel"),
                    ("col.fields", "fields"),
                    ("col.created_at", "created_at"),
                ],
            )
        }],
    ),
    page(
        "/app/webhook-sources",
        &[Listing {
            create: Some(Create {
                api: "/v1/webhook-sources",
                fields: &[
                    field("name", "col.name", Kind::Text, true),
                    field(
                        "channel",
                        "col.channel",
                        Kind::Choice(huoke_shared::channels::CHANNELS),
                        true,
                    ),
                    field("mapping", "col.mapping", Kind::Json, true),
                    field("event_id_pointer", "col.event_id_pointer", Kind::Text, false),
                ],
                show_once: &["secret", "url"],
            }),
            actions: &[Action {
                label: "action.disable",
                method: "DELETE",
                api: "/v1/webhook-sources/{id}",
                body: "",
                input: None,
            }],
            ..list(
                "/v1/webhook-sources",
                &[
                    ("col.name", "name"),
                    ("col.channel", "channel"),
                    ("col.url", "url"),
                    ("col.created_at", "created_at"),
                ],
            )
        }],
    ),
    page(
        "/app/teams",
        &[
            Listing {
                create: Some(Create {
                    api: "/v1/teams",
                    fields: &[
                        field("name", "col.name", Kind::Text, true),
                        field("manager_id", "col.manager", Kind::Text, false),
                        field("members", "col.members", Kind::List, false),
                    ],
                    show_once: &[],
                }),
                ..list(
                    "/v1/teams",
                    &[
                        ("col.name", "name"),
                        ("col.manager", "manager_id"),
                        ("col.members", "members"),
                    ],
                )
            },
            Listing {
                actions: &[Action {
                    label: "action.capacity",
                    method: "PATCH",
                    api: "/v1/staff/{id}",
                    body: "{}",
                    input: Some(field("capacity", "col.capacity", Kind::Number, true)),
                }],
                ..list("/v1/staff", PEOPLE)
            },
        ],
    ),
    // `{me}`: the signed-in person.
    document(
        "/app/cards",
        "/v1/cards/{me}",
        None,
        &["staff_id", "slug", "url", "created_at", "updated_at"],
        &["display_name"],
    ),
    document(
        "/app/routing",
        "/v1/routing/rules",
        Some("/v1/routing/simulate"),
        VERSIONED,
        &[],
    ),
    document("/app/sla", "/v1/sla/policies", None, VERSIONED, &[]),
    page(
        "/app/reports/sla",
        &[Listing {
            list: "sdrs",
            ..list(
                "/v1/reports/sla",
                &[
                    ("col.name", "name"),
                    ("col.team", "team"),
                    ("col.offers", "offers"),
                    ("col.accepted", "accepted"),
                    ("col.rejected", "rejected"),
                    ("col.breached", "breached"),
                    ("col.accept_median_s", "accept_median_s"),
                    ("col.first_contact_median_s", "first_contact_median_s"),
                ],
            )
        }],
    ),
    page(
        "/app/dead-letters",
        &[Listing {
            actions: &[Action {
                label: "action.replay",
                method: "POST",
                api: "/v1/admin/dead-letters/{id}/replay",
                body: "{}",
                input: None,
            }],
            ..list(
                "/v1/admin/dead-letters",
                &[
                    ("col.queue", "queue"),
                    ("col.type", "type"),
                    ("col.reason", "reason"),
                    ("col.attempts", "attempts"),
                    ("col.dead_at", "dead_at"),
                ],
            )
        }],
    ),
    page(
        "/app/staff",
        &[Listing {
            create: Some(Create {
                api: "/v1/staff",
                fields: &[
                    field("name", "col.name", Kind::Text, true),
                    field("email", "col.email", Kind::Email, true),
                    field("roles", "col.roles", Kind::List, true),
                    field("capacity", "col.capacity", Kind::Number, false),
                    field("daily_cap", "col.daily_cap", Kind::Number, false),
                    field("password", "col.password", Kind::Password, false),
                ],
                show_once: &[],
            }),
            // Switching someone off hands their open leads over (the router).
            actions: &[
                Action {
                    label: "action.capacity",
                    method: "PATCH",
                    api: "/v1/staff/{id}",
                    body: "{}",
                    input: Some(field("capacity", "col.capacity", Kind::Number, true)),
                },
                Action {
                    label: "action.wecom_userid",
                    method: "PATCH",
                    api: "/v1/staff/{id}",
                    body: "{}",
                    input: Some(field("wecom_userid", "col.wecom_userid", Kind::Text, true)),
                },
                Action {
                    label: "action.deactivate",
                    method: "PATCH",
                    api: "/v1/staff/{id}",
                    body: r#"{"active": false}"#,
                    input: None,
                },
                Action {
                    label: "action.activate",
                    method: "PATCH",
                    api: "/v1/staff/{id}",
                    body: r#"{"active": true}"#,
                    input: None,
                },
            ],
            ..list("/v1/staff", PEOPLE)
        }],
    ),
    page(
        "/app/api-keys",
        &[Listing {
            create: Some(Create {
                api: "/v1/api-keys",
                fields: &[
                    field("name", "col.name", Kind::Text, true),
                    field("scopes", "col.scopes", Kind::List, false),
                    field("roles", "col.roles", Kind::List, false),
                ],
                show_once: &["key"],
            }),
            actions: &[Action {
                label: "action.revoke",
                method: "DELETE",
                api: "/v1/api-keys/{id}",
                body: "",
                input: None,
            }],
            ..list(
                "/v1/api-keys",
                &[
                    ("col.name", "name"),
                    ("col.prefix", "prefix"),
                    ("col.scopes", "scopes"),
                    ("col.last_used_at", "last_used_at"),
                    ("col.revoked_at", "revoked_at"),
                ],
            )
        }],
    ),
    document(
        "/app/wecom",
        "/v1/integrations/wecom",
        None,
        &["secret_set", "callback_token_set", "encoding_aes_key_set", "updated_at"],
        &["corp_id", "secret", "callback_token", "encoding_aes_key"],
    ),
];
