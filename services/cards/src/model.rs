//! The card as a domain value: what a staff member may put on it, checked in one
//! pass (every problem at once), and the random identifiers a card hands out.

use huoke_shared::clock::rfc3339;
use huoke_shared::contact::{Email, Phone};
use huoke_shared::error::FieldError;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};

pub const THEMES: &[&str] = &["classic", "dark", "ocean", "rose"];
pub const DEFAULT_THEME: &str = "classic";

pub const MAX_NAME: usize = 100;
pub const MAX_SHORT_TEXT: usize = 100;
pub const MAX_BIO: usize = 2000;
pub const MAX_COMPANY_INTRO: usize = 4000;
pub const MAX_LINKS: usize = 20;
pub const MAX_LINK_LABEL: usize = 60;
pub const MAX_LINK_KIND: usize = 32;
pub const MAX_URL: usize = 2048;
pub const MAX_ID: usize = 64;

/// Slugs are public but unguessable: 10 base62 characters (~59.5 bits).
pub const SLUG_LEN: usize = 10;
/// Share tokens: 16 base62 characters (~95 bits).
pub const TOKEN_LEN: usize = 16;

/// The body of `PUT /v1/cards/{staff_id}`. Everything is optional here so that a
/// missing required field is reported with the others rather than as a parse error.
#[derive(Debug, Default, Deserialize)]
pub struct CardInput {
    pub display_name: Option<String>,
    pub title: Option<String>,
    pub company: Option<String>,
    pub avatar_url: Option<String>,
    pub phone: Option<String>,
    pub show_phone: Option<bool>,
    pub email: Option<String>,
    pub live_code_id: Option<String>,
    pub bio: Option<String>,
    pub company_intro: Option<String>,
    pub links: Option<Vec<LinkInput>>,
    pub theme: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct LinkInput {
    pub label: Option<String>,
    pub url: Option<String>,
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub label: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A checked card, ready to store. `phone` is E.164, `email` lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardFields {
    pub display_name: String,
    pub title: Option<String>,
    pub company: Option<String>,
    pub avatar_url: Option<String>,
    pub phone: Option<String>,
    pub show_phone: bool,
    pub email: Option<String>,
    pub live_code_id: Option<String>,
    pub bio: Option<String>,
    pub company_intro: Option<String>,
    pub links: Vec<Link>,
    pub theme: String,
}

/// Trimmed, `None` when blank.
fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// One line of text: at most `max` characters, no control characters.
fn line(field: &str, value: &Option<String>, max: usize, errors: &mut Vec<FieldError>) -> Option<String> {
    let v = present(value)?;
    if v.chars().count() > max {
        errors.push(FieldError::new(field, format!("at most {max} characters")));
        None
    } else if v.chars().any(char::is_control) {
        errors.push(FieldError::new(field, "must not contain control characters"));
        None
    } else {
        Some(v.to_string())
    }
}

/// Running text: line breaks (normalised to `\n`) and tabs are allowed.
fn paragraph(field: &str, value: &Option<String>, max: usize, errors: &mut Vec<FieldError>) -> Option<String> {
    let v = present(value)?.replace("\r\n", "\n").replace('\r', "\n");
    if v.chars().count() > max {
        errors.push(FieldError::new(field, format!("at most {max} characters")));
        None
    } else if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        errors.push(FieldError::new(field, "must not contain control characters"));
        None
    } else {
        Some(v)
    }
}

/// An absolute http(s) URL with a host and nothing that could break out of an
/// attribute or a vCard line.
pub fn check_web_url(raw: &str) -> Result<String, &'static str> {
    let url = raw.trim();
    if url.len() > MAX_URL {
        return Err("at most 2048 characters");
    }
    let lower = url.to_ascii_lowercase();
    let rest = if let Some(rest) = lower.strip_prefix("https://") {
        rest
    } else if let Some(rest) = lower.strip_prefix("http://") {
        rest
    } else {
        return Err("must be an http:// or https:// URL");
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err("must name a host");
    }
    Ok(url.to_string())
}

/// Checks a card body. `live_code_known` says whether `live_code_id` names a live
/// code of the caller's tenant (the one fact that needs the database).
pub fn validate(input: &CardInput, live_code_known: bool) -> Result<CardFields, Vec<FieldError>> {
    let mut errors = Vec::new();
    let display_name = line("display_name", &input.display_name, MAX_NAME, &mut errors);
    if present(&input.display_name).is_none() {
        errors.push(FieldError::new("display_name", "required"));
    }
    let title = line("title", &input.title, MAX_SHORT_TEXT, &mut errors);
    let company = line("company", &input.company, MAX_SHORT_TEXT, &mut errors);
    let avatar_url = present(&input.avatar_url).and_then(|u| {
        check_web_url(u)
            .map_err(|m| errors.push(FieldError::new("avatar_url", m)))
            .ok()
    });
    let phone = present(&input.phone).and_then(|p| match Phone::parse(p) {
        Ok(p) => Some(p.as_str().to_string()),
        Err(m) => {
            errors.push(FieldError::new("phone", m));
            None
        }
    });
    let email = present(&input.email).and_then(|e| match Email::parse(e) {
        Ok(e) => Some(e.as_str().to_string()),
        Err(m) => {
            errors.push(FieldError::new("email", m));
            None
        }
    });
    let live_code_id = present(&input.live_code_id).and_then(|id| {
        if id.len() > MAX_ID || !live_code_known {
            errors.push(FieldError::new("live_code_id", "no such live code"));
            None
        } else {
            Some(id.to_string())
        }
    });
    let bio = paragraph("bio", &input.bio, MAX_BIO, &mut errors);
    let company_intro = paragraph("company_intro", &input.company_intro, MAX_COMPANY_INTRO, &mut errors);
    let links = check_links(input.links.as_deref().unwrap_or_default(), &mut errors);
    let theme = match present(&input.theme) {
        None => DEFAULT_THEME.to_string(),
        Some(t) if THEMES.contains(&t) => t.to_string(),
        Some(_) => {
            errors.push(FieldError::new("theme", format!("one of: {}", THEMES.join(", "))));
            String::new()
        }
    };
    match display_name {
        Some(display_name) if errors.is_empty() => Ok(CardFields {
            display_name,
            title,
            company,
            avatar_url,
            phone,
            show_phone: input.show_phone.unwrap_or(false),
            email,
            live_code_id,
            bio,
            company_intro,
            links,
            theme,
        }),
        _ => Err(errors),
    }
}

fn check_links(links: &[LinkInput], errors: &mut Vec<FieldError>) -> Vec<Link> {
    if links.len() > MAX_LINKS {
        errors.push(FieldError::new("links", format!("at most {MAX_LINKS} links")));
        return Vec::new();
    }
    let mut out = Vec::with_capacity(links.len());
    for (i, link) in links.iter().enumerate() {
        let field = |name: &str| format!("links[{i}].{name}");
        let label = line(&field("label"), &link.label, MAX_LINK_LABEL, errors);
        if present(&link.label).is_none() {
            errors.push(FieldError::new(field("label"), "required"));
        }
        let url = match present(&link.url) {
            None => {
                errors.push(FieldError::new(field("url"), "required"));
                None
            }
            Some(u) => check_web_url(u)
                .map_err(|m| errors.push(FieldError::new(field("url"), m)))
                .ok(),
        };
        let kind = present(&link.kind).and_then(|k| {
            let ok = k.len() <= MAX_LINK_KIND && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if ok {
                Some(k.to_ascii_lowercase())
            } else {
                errors.push(FieldError::new(
                    field("kind"),
                    format!("at most {MAX_LINK_KIND} letters, digits, `_` or `-`"),
                ));
                None
            }
        });
        if let (Some(label), Some(url)) = (label, url) {
            out.push(Link { label, url, kind });
        }
    }
    out
}

fn base62(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A new card slug (random; the caller retries on the rare collision).
pub fn mint_slug() -> String {
    base62(SLUG_LEN)
}

/// A new share token.
pub fn mint_token() -> String {
    base62(TOKEN_LEN)
}

/// Whether a string could be a slug or token we minted: looked-up values that
/// cannot be are refused before they reach the database.
pub fn looks_like_id(s: &str) -> bool {
    (1..=MAX_ID).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether a string could be a live code's public short code.
pub fn looks_like_code(s: &str) -> bool {
    (1..=MAX_ID).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A stored card.
#[derive(Debug, Clone)]
pub struct Card {
    pub id: String,
    pub tenant_id: String,
    pub staff_id: String,
    pub slug: String,
    pub fields: CardFields,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The public address of a card page.
pub fn card_url(public_base: &str, slug: &str) -> String {
    format!("{}/c/{}", public_base.trim_end_matches('/'), slug)
}

/// The public address of a card page reached through a share.
pub fn share_url(public_base: &str, slug: &str, token: &str) -> String {
    format!("{}?s={}", card_url(public_base, slug), token)
}

impl Card {
    /// The card as the API shows it.
    pub fn view(&self, public_base: &str) -> serde_json::Value {
        let f = &self.fields;
        serde_json::json!({
            "staff_id": self.staff_id,
            "slug": self.slug,
            "url": card_url(public_base, &self.slug),
            "display_name": f.display_name,
            "title": f.title,
            "company": f.company,
            "avatar_url": f.avatar_url,
            "phone": f.phone,
            "show_phone": f.show_phone,
            "email": f.email,
            "live_code_id": f.live_code_id,
            "bio": f.bio,
            "company_intro": f.company_intro,
            "links": f.links,
            "theme": f.theme,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> CardInput {
        CardInput {
            display_name: Some(name.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_minimal_card_takes_defaults() {
        let card = validate(&named("  王小明 "), false).unwrap();
        assert_eq!(card.display_name, "王小明");
        assert_eq!(card.theme, "classic");
        assert!(!card.show_phone);
        assert!(card.links.is_empty());
    }

    #[test]
    fn contacts_are_normalised() {
        let input = CardInput {
            phone: Some("138 0013 8000".into()),
            email: Some(" Wang@Example.COM".into()),
            show_phone: Some(true),
            ..named("Wang")
        };
        let card = validate(&input, false).unwrap();
        assert_eq!(card.phone.as_deref(), Some("+8613800138000"));
        assert_eq!(card.email.as_deref(), Some("wang@example.com"));
        assert!(card.show_phone);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let input = CardInput {
            display_name: Some("x".repeat(101)),
            title: Some("t".repeat(101)),
            avatar_url: Some("javascript:alert(1)".into()),
            phone: Some("12".into()),
            email: Some("nope".into()),
            live_code_id: Some("lc1".into()),
            bio: Some("b".repeat(2001)),
            company_intro: Some("c".repeat(4001)),
            links: Some(vec![LinkInput {
                label: None,
                url: Some("ftp://example.com".into()),
                kind: Some("no spaces".into()),
            }]),
            theme: Some("neon".into()),
            ..Default::default()
        };
        let fields: Vec<_> = validate(&input, false)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        for f in [
            "display_name",
            "title",
            "avatar_url",
            "phone",
            "email",
            "live_code_id",
            "bio",
            "company_intro",
            "links[0].label",
            "links[0].url",
            "links[0].kind",
            "theme",
        ] {
            assert!(fields.iter().any(|x| x == f), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn display_name_is_required() {
        let errs = validate(&CardInput::default(), false).unwrap_err();
        assert_eq!(errs, vec![FieldError::new("display_name", "required")]);
        assert!(validate(&named("   "), false).is_err());
    }

    #[test]
    fn known_live_codes_pass() {
        let input = CardInput {
            live_code_id: Some("lc1".into()),
            ..named("Li")
        };
        assert_eq!(validate(&input, true).unwrap().live_code_id.as_deref(), Some("lc1"));
    }

    #[test]
    fn links_are_bounded_and_checked() {
        let many: Vec<_> = (0..21)
            .map(|i| LinkInput {
                label: Some(format!("l{i}")),
                url: Some("https://example.com".into()),
                kind: None,
            })
            .collect();
        let input = CardInput {
            links: Some(many),
            ..named("Li")
        };
        assert_eq!(validate(&input, false).unwrap_err()[0].field, "links");
        let ok = CardInput {
            links: Some(vec![LinkInput {
                label: Some("官网".into()),
                url: Some(" https://example.com/a?b=c ".into()),
                kind: Some("Website".into()),
            }]),
            ..named("Li")
        };
        assert_eq!(
            validate(&ok, false).unwrap().links,
            vec![Link {
                label: "官网".into(),
                url: "https://example.com/a?b=c".into(),
                kind: Some("website".into())
            }]
        );
    }

    #[test]
    fn only_web_urls_with_a_host_pass() {
        assert!(check_web_url("https://example.com").is_ok());
        assert!(check_web_url("HTTP://Example.com/x").is_ok());
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "//example.com",
            "https://",
            "https:///path",
            "https://exa mple.com",
            "https://example.com/a\nb",
            "/relative",
        ] {
            assert!(check_web_url(bad).is_err(), "{bad} should be refused");
        }
        assert!(check_web_url(&format!("https://example.com/{}", "a".repeat(2048))).is_err());
    }

    #[test]
    fn paragraphs_keep_line_breaks() {
        let input = CardInput {
            bio: Some("第一行\r\n第二行".into()),
            ..named("Li")
        };
        assert_eq!(validate(&input, false).unwrap().bio.as_deref(), Some("第一行\n第二行"));
        let bad = CardInput {
            bio: Some("bell\u{7}".into()),
            ..named("Li")
        };
        assert_eq!(validate(&bad, false).unwrap_err()[0].field, "bio");
    }

    #[test]
    fn identifiers_are_random_base62() {
        let a = mint_slug();
        assert_eq!(a.len(), SLUG_LEN);
        assert!(looks_like_id(&a));
        assert_ne!(a, mint_slug());
        let t = mint_token();
        assert!(t.len() >= 12 && looks_like_id(&t));
        assert!(!looks_like_id("a/b"));
        assert!(!looks_like_id(""));
        assert!(looks_like_code("abc-DEF_1"));
    }
}
