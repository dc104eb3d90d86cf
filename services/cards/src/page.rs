//! Server-rendered H5 pages: the card, the form's answers and the error pages.
//! Small and self-contained (inline CSS and one inline script, allowed by hash in
//! the Content-Security-Policy). Every user-supplied string goes through
//! `html::escape`, every user-supplied URL through `safe_url` and then `escape`.

use std::fmt::Write;
use std::sync::LazyLock;

use base64::Engine;
use huoke_shared::contact::mask_phone;
use huoke_shared::html::{escape, safe_url};
use sha2::{Digest, Sha256};

use crate::model::{Card, DEFAULT_THEME, THEMES};

const CSS: &str = include_str!("../assets/card.css");
const SHARE_JS: &str = include_str!("../assets/share.js");

/// Only our own inline style and script run; images may come from anywhere (the
/// avatar); the form and the share call go to this origin.
pub fn content_security_policy() -> &'static str {
    static CSP: LazyLock<String> = LazyLock::new(|| {
        let hash = |s: &str| base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s.as_bytes()));
        format!(
            "default-src 'none'; img-src http: https:; style-src 'sha256-{}'; script-src 'sha256-{}'; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
            hash(CSS),
            hash(SHARE_JS)
        )
    });
    &CSP
}

/// Everything the card page shows besides the card itself.
pub struct CardPage<'a> {
    pub card: &'a Card,
    /// The card's public address (for `og:url`).
    pub page_url: &'a str,
    /// The public short code of the card's live code, for "Add me".
    pub live_code: Option<&'a str>,
    /// The share the visitor arrived through (already checked).
    pub share_token: Option<&'a str>,
    /// The live code the visitor came through, passed on to the form.
    pub via: Option<&'a str>,
}

/// What a visitor typed into the form, echoed back when it needs correcting.
#[derive(Debug, Default, Clone)]
pub struct FormValues<'a> {
    pub name: &'a str,
    pub phone: &'a str,
    pub company: &'a str,
    pub message: &'a str,
    pub consent: bool,
}

fn theme_of(card: &Card) -> &str {
    let t = card.fields.theme.as_str();
    if THEMES.contains(&t) { t } else { DEFAULT_THEME }
}

/// The page shell. `head` and `content` are trusted markup; `body_attrs` too
/// (callers escape what they put in it).
fn layout(title: &str, head: &str, theme: &str, body_attrs: &str, content: &str, script: bool) -> String {
    let mut out = String::with_capacity(CSS.len() + content.len() + 1024);
    out.push_str("<!doctype html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1, viewport-fit=cover\">\n");
    out.push_str("<meta name=\"robots\" content=\"noindex\">\n");
    let _ = writeln!(out, "<title>{}</title>", escape(title));
    out.push_str(head);
    let _ = writeln!(out, "<style>{CSS}</style>\n</head>");
    let _ = writeln!(out, "<body class=\"theme-{}\"{body_attrs}>", escape(theme));
    out.push_str(content);
    if script {
        let _ = writeln!(out, "<script>{SHARE_JS}</script>");
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn meta(out: &mut String, property: &str, content: &str) {
    let _ = writeln!(out, "<meta property=\"{property}\" content=\"{}\">", escape(content));
}

/// `name · title · company`, skipping what is missing.
fn headline(card: &Card) -> String {
    let f = &card.fields;
    std::iter::once(f.display_name.as_str())
        .chain(f.title.as_deref())
        .chain(f.company.as_deref())
        .collect::<Vec<_>>()
        .join(" · ")
}

fn description(card: &Card) -> String {
    let f = &card.fields;
    let text = f.bio.as_deref().or(f.company_intro.as_deref()).unwrap_or("");
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        format!("{} 的名片", f.display_name)
    } else if text.chars().count() > 120 {
        text.chars().take(119).chain(std::iter::once('…')).collect()
    } else {
        text
    }
}

pub fn card_page(page: &CardPage<'_>) -> String {
    let card = page.card;
    let f = &card.fields;
    let title = headline(card);

    let mut head = String::new();
    let _ = writeln!(
        head,
        "<meta name=\"description\" content=\"{}\">",
        escape(&description(card))
    );
    meta(&mut head, "og:type", "profile");
    meta(&mut head, "og:title", &title);
    meta(&mut head, "og:description", &description(card));
    meta(&mut head, "og:url", page.page_url);
    if let Some(avatar) = f.avatar_url.as_deref() {
        meta(&mut head, "og:image", safe_url(avatar));
    }

    let slug = escape(&card.slug);
    let mut c = String::new();
    c.push_str("<main>\n<section class=\"panel head\">\n");
    match f.avatar_url.as_deref() {
        Some(avatar) => {
            let _ = writeln!(
                c,
                "<img class=\"avatar\" src=\"{}\" alt=\"\" width=\"88\" height=\"88\" referrerpolicy=\"no-referrer\">",
                escape(safe_url(avatar))
            );
        }
        None => {
            let initial: String = f.display_name.chars().take(1).collect();
            let _ = writeln!(
                c,
                "<div class=\"initial\" aria-hidden=\"true\">{}</div>",
                escape(&initial)
            );
        }
    }
    let _ = writeln!(c, "<h1>{}</h1>", escape(&f.display_name));
    if let Some(t) = &f.title {
        let _ = writeln!(c, "<p class=\"role\">{}</p>", escape(t));
    }
    if let Some(co) = &f.company {
        let _ = writeln!(c, "<p class=\"role\">{}</p>", escape(co));
    }

    let mut contact = String::new();
    if let Some(phone) = &f.phone {
        if f.show_phone {
            let _ = writeln!(
                contact,
                "<li><span>电话</span><b><a href=\"tel:{0}\">{0}</a></b></li>",
                escape(phone)
            );
        } else {
            let _ = writeln!(
                contact,
                "<li><span>电话</span><b>{}</b></li>",
                escape(&mask_phone(phone))
            );
        }
    }
    if let Some(email) = &f.email {
        let _ = writeln!(
            contact,
            "<li><span>邮箱</span><b><a href=\"mailto:{0}\">{0}</a></b></li>",
            escape(email)
        );
    }
    if !contact.is_empty() {
        let _ = write!(c, "<ul class=\"contact\">\n{contact}</ul>\n");
    }

    c.push_str("<div class=\"actions\">\n");
    // The save is attributed to the share the visitor came through, like the view.
    let vcard_query = page
        .share_token
        .map(|t| format!("?s={}", escape(t)))
        .unwrap_or_default();
    let _ = writeln!(
        c,
        "<a class=\"btn primary\" href=\"/c/{slug}/vcard{vcard_query}\">保存到通讯录</a>"
    );
    if let Some(code) = page.live_code {
        let _ = writeln!(c, "<a class=\"btn\" href=\"/s/{}\">加我</a>", escape(code));
    }
    c.push_str("<button class=\"btn\" id=\"share\" type=\"button\">分享名片</button>\n</div>\n");
    c.push_str("<input class=\"share-out\" id=\"share-out\" readonly hidden aria-label=\"分享链接\">\n");
    c.push_str("</section>\n");

    if let Some(bio) = &f.bio {
        let _ = write!(
            c,
            "<section class=\"panel\">\n<h2>个人简介</h2>\n<p class=\"text\">{}</p>\n</section>\n",
            escape(bio)
        );
    }
    if let Some(intro) = &f.company_intro {
        let _ = write!(
            c,
            "<section class=\"panel\">\n<h2>公司介绍</h2>\n<p class=\"text\">{}</p>\n</section>\n",
            escape(intro)
        );
    }
    if !f.links.is_empty() {
        c.push_str("<section class=\"panel\">\n<h2>链接</h2>\n<ul class=\"links\">\n");
        for link in &f.links {
            let _ = writeln!(
                c,
                "<li><a href=\"{}\" target=\"_blank\" rel=\"noopener noreferrer nofollow ugc\">{}</a></li>",
                escape(safe_url(&link.url)),
                escape(&link.label)
            );
        }
        c.push_str("</ul>\n</section>\n");
    }

    c.push_str("<section class=\"panel\" id=\"contact\">\n");
    let _ = writeln!(c, "<h2>联系 {}</h2>", escape(&f.display_name));
    c.push_str(&lead_form(card, &FormValues::default(), page.share_token, page.via));
    c.push_str("</section>\n</main>\n");

    let mut attrs = format!(" data-share-endpoint=\"/c/{slug}/share\"");
    if let Some(token) = page.share_token {
        let _ = write!(attrs, " data-share=\"{}\"", escape(token));
    }
    layout(&title, &head, theme_of(card), &attrs, &c, true)
}

/// The lead form, optionally filled in with what the visitor sent before.
pub fn lead_form(card: &Card, values: &FormValues<'_>, share: Option<&str>, via: Option<&str>) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "<form method=\"post\" action=\"/c/{}/leads\">", escape(&card.slug));
    let _ = writeln!(
        c,
        "<label>姓名<input name=\"name\" maxlength=\"100\" autocomplete=\"name\" value=\"{}\"></label>",
        escape(values.name)
    );
    let _ = writeln!(
        c,
        "<label>手机号 *<input name=\"phone\" type=\"tel\" inputmode=\"tel\" required maxlength=\"32\" autocomplete=\"tel\" value=\"{}\"></label>",
        escape(values.phone)
    );
    let _ = writeln!(
        c,
        "<label>公司<input name=\"company\" maxlength=\"100\" autocomplete=\"organization\" value=\"{}\"></label>",
        escape(values.company)
    );
    let _ = writeln!(
        c,
        "<label>留言<textarea name=\"message\" rows=\"3\" maxlength=\"1000\">{}</textarea></label>",
        escape(values.message)
    );
    let _ = writeln!(
        c,
        "<label class=\"consent\"><input type=\"checkbox\" name=\"consent\" value=\"on\"{}> 我同意 {} 通过以上方式与我联系，并据此处理我提交的信息</label>",
        if values.consent { " checked" } else { "" },
        escape(&card.fields.display_name)
    );
    // A field humans never see nor fill in; bots that fill every field do.
    c.push_str("<div class=\"hp\" aria-hidden=\"true\"><label>Website<input name=\"website\" tabindex=\"-1\" autocomplete=\"off\"></label></div>\n");
    if let Some(token) = share {
        let _ = writeln!(c, "<input type=\"hidden\" name=\"s\" value=\"{}\">", escape(token));
    }
    if let Some(code) = via {
        let _ = writeln!(c, "<input type=\"hidden\" name=\"via\" value=\"{}\">", escape(code));
    }
    c.push_str("<button class=\"btn primary\" type=\"submit\">提交</button>\n</form>\n");
    c
}

/// After a successful (or silently dropped) submission. The capture id is on the
/// body element for scripts and tests.
pub fn thanks_page(card: &Card, capture_id: &str) -> String {
    let content = format!(
        "<main>\n<section class=\"panel center\">\n<h1>谢谢！</h1>\n<p>{} 会尽快与您联系。</p>\n<p><a href=\"/c/{}\">返回名片</a></p>\n</section>\n</main>\n",
        escape(&card.fields.display_name),
        escape(&card.slug)
    );
    let attrs = format!(" data-capture-id=\"{}\"", escape(capture_id));
    layout("提交成功", "", theme_of(card), &attrs, &content, false)
}

/// A human-readable name for a form field.
fn field_label(field: &str) -> &str {
    match field {
        "name" => "姓名",
        "phone" => "手机号",
        "company" => "公司",
        "message" => "留言",
        other => other,
    }
}

/// The form again, with what is wrong on top.
pub fn form_errors_page(
    card: &Card,
    errors: &[(String, String)],
    values: &FormValues<'_>,
    share: Option<&str>,
    via: Option<&str>,
) -> String {
    let mut c = String::from("<main>\n<section class=\"panel\">\n<h1>请检查填写的内容</h1>\n<ul class=\"errors\">\n");
    for (field, message) in errors {
        let _ = writeln!(c, "<li>{}：{}</li>", escape(field_label(field)), escape(message));
    }
    c.push_str("</ul>\n");
    c.push_str(&lead_form(card, values, share, via));
    let _ = write!(
        c,
        "<p><a href=\"/c/{}\">返回名片</a></p>\n</section>\n</main>\n",
        escape(&card.slug)
    );
    layout("请检查填写的内容", "", theme_of(card), "", &c, false)
}

fn message_page(title: &str, message: &str) -> String {
    let content = format!(
        "<main>\n<section class=\"panel center\">\n<h1>{}</h1>\n<p>{}</p>\n</section>\n</main>\n",
        escape(title),
        escape(message)
    );
    layout(title, "", DEFAULT_THEME, "", &content, false)
}

pub fn not_found_page() -> String {
    message_page("名片不存在", "这张名片不存在或已被删除。")
}

pub fn rate_limited_page() -> String {
    message_page("提交太频繁", "请稍等一分钟后再试。")
}

pub fn bad_form_page(detail: &str) -> String {
    message_page("无法处理提交的内容", detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CardFields, Link};

    const HOSTILE: &str = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";

    fn card(fields: CardFields) -> Card {
        Card {
            id: "id1".into(),
            tenant_id: "t1".into(),
            staff_id: "s1".into(),
            slug: "AbCdEfGhIj".into(),
            fields,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn fields() -> CardFields {
        CardFields {
            display_name: "王小明".into(),
            title: Some("销售总监".into()),
            company: Some("Acme".into()),
            avatar_url: None,
            phone: Some("+8613800138000".into()),
            show_phone: false,
            email: Some("wang@example.com".into()),
            live_code_id: None,
            bio: Some("第一行\n第二行".into()),
            company_intro: None,
            links: vec![],
            theme: "classic".into(),
        }
    }

    fn render(card: &Card, live_code: Option<&str>, share: Option<&str>) -> String {
        card_page(&CardPage {
            card,
            page_url: "https://h.example/c/AbCdEfGhIj",
            live_code,
            share_token: share,
            via: None,
        })
    }

    #[test]
    fn hostile_text_is_escaped_everywhere() {
        let c = card(CardFields {
            display_name: HOSTILE.into(),
            title: Some(HOSTILE.into()),
            company: Some(HOSTILE.into()),
            bio: Some(HOSTILE.into()),
            company_intro: Some(HOSTILE.into()),
            avatar_url: Some("https://img.example/a.png?\"><script>alert(3)</script>".into()),
            links: vec![
                Link {
                    label: HOSTILE.into(),
                    url: "javascript:alert(4)".into(),
                    kind: None,
                },
                Link {
                    label: "ok".into(),
                    url: "https://example.com/?q=\"><b>".into(),
                    kind: None,
                },
            ],
            ..fields()
        });
        let html = render(&c, None, None);
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img src=x"));
        assert!(!html.contains("javascript:"));
        assert!(!html.contains("\"><b>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"));
        assert!(html.contains("href=\"#\""));
        assert!(html.contains("https://example.com/?q=&quot;&gt;&lt;b&gt;"));
        // The only <script> is our own.
        assert_eq!(html.matches("<script>").count(), 1);
        let thanks = thanks_page(&c, "\"><x>");
        assert!(!thanks.contains("<x>"));
        let errs = form_errors_page(
            &c,
            &[("phone".into(), HOSTILE.into())],
            &FormValues {
                name: HOSTILE,
                phone: HOSTILE,
                company: HOSTILE,
                message: "</textarea><script>alert(5)</script>",
                consent: true,
            },
            Some("tok\"en"),
            Some("<via>"),
        );
        assert!(!errs.contains("<script>"));
        assert!(!errs.contains("<via>"));
        assert!(!errs.contains("tok\"en"));
    }

    #[test]
    fn the_phone_is_masked_unless_shown() {
        let hidden = render(&card(fields()), None, None);
        assert!(hidden.contains("+86138****8000"));
        assert!(!hidden.contains("+8613800138000"));
        let shown = render(
            &card(CardFields {
                show_phone: true,
                ..fields()
            }),
            None,
            None,
        );
        assert!(shown.contains("href=\"tel:+8613800138000\""));
    }

    #[test]
    fn open_graph_and_viewport_are_present() {
        let html = render(
            &card(CardFields {
                avatar_url: Some("https://img.example/a.png".into()),
                ..fields()
            }),
            None,
            None,
        );
        for needle in [
            "<meta name=\"viewport\"",
            "<meta property=\"og:title\" content=\"王小明 · 销售总监 · Acme\">",
            "<meta property=\"og:description\" content=\"第一行 第二行\">",
            "<meta property=\"og:type\" content=\"profile\">",
            "<meta property=\"og:url\" content=\"https://h.example/c/AbCdEfGhIj\">",
            "<meta property=\"og:image\" content=\"https://img.example/a.png\">",
        ] {
            assert!(html.contains(needle), "{needle} missing");
        }
        let without = render(&card(fields()), None, None);
        assert!(!without.contains("og:image"));
        assert!(!without.contains("<img"));
    }

    #[test]
    fn actions_and_form_are_rendered() {
        let html = render(&card(fields()), Some("Code42"), Some("Tok123456789abcd"));
        assert!(html.contains("href=\"/c/AbCdEfGhIj/vcard?s=Tok123456789abcd\""));
        assert!(html.contains("href=\"/s/Code42\""));
        assert!(html.contains("action=\"/c/AbCdEfGhIj/leads\""));
        assert!(html.contains("name=\"website\""));
        assert!(html.contains("name=\"consent\""));
        assert!(html.contains("<input type=\"hidden\" name=\"s\" value=\"Tok123456789abcd\">"));
        assert!(html.contains("data-share=\"Tok123456789abcd\""));
        assert!(html.contains("data-share-endpoint=\"/c/AbCdEfGhIj/share\""));
        let plain = render(&card(fields()), None, None);
        assert!(plain.contains("href=\"/c/AbCdEfGhIj/vcard\""));
        assert!(!plain.contains("/s/"));
        assert!(!plain.contains("data-share="));
    }

    #[test]
    fn the_policy_allows_exactly_our_inline_code() {
        let csp = content_security_policy();
        assert!(csp.contains("script-src 'sha256-"));
        assert!(csp.contains("style-src 'sha256-"));
        assert!(!csp.contains("unsafe-inline"));
    }

    #[test]
    fn unknown_themes_fall_back() {
        let html = render(
            &card(CardFields {
                theme: "\"><x".into(),
                ..fields()
            }),
            None,
            None,
        );
        assert!(html.contains("<body class=\"theme-classic\""));
    }
}
