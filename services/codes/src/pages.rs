//! The small HTML pages of the scan path. Every dynamic string is escaped.

use huoke_shared::html::{escape, safe_url};

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"referrer\" content=\"no-referrer\"><title>{}</title>\
<style>body{{font:16px/1.5 -apple-system,system-ui,sans-serif;margin:0;padding:2rem 1.25rem;text-align:center;color:#1d2733;background:#f6f7f9}}\
main{{max-width:26rem;margin:0 auto;background:#fff;border-radius:12px;padding:1.5rem;box-shadow:0 1px 4px rgba(0,0,0,.08)}}\
img.qr{{width:70%;max-width:260px;height:auto}}h1{{font-size:1.25rem}}p.hint{{color:#6b7785;font-size:.9rem}}</style>\
</head><body><main>{}</main></body></html>",
        escape(title),
        body
    )
}

/// Inside WeChat/WeCom: the member's "contact me" QR code, to long-press and add.
pub fn contact_landing(name: &str, qr_url: &str, welcome: Option<&str>) -> String {
    let welcome = welcome.map(|w| format!("<p>{}</p>", escape(w))).unwrap_or_default();
    page(
        name,
        &format!(
            "<h1>{}</h1>{}<img class=\"qr\" src=\"{}\" alt=\"QR code\"><p class=\"hint\">长按识别二维码添加 · Long-press to add</p>",
            escape(name),
            welcome,
            escape(safe_url(qr_url))
        ),
    )
}

/// A group code: the current group's QR image.
pub fn group_landing(group_name: &str, qr_url: &str, welcome: Option<&str>) -> String {
    let welcome = welcome.map(|w| format!("<p>{}</p>", escape(w))).unwrap_or_default();
    page(
        group_name,
        &format!(
            "<h1>{}</h1>{}<img class=\"qr\" src=\"{}\" alt=\"Group QR code\"><p class=\"hint\">长按识别二维码入群 · Long-press to join</p>",
            escape(group_name),
            welcome,
            escape(safe_url(qr_url))
        ),
    )
}

/// A member without a card page yet.
pub fn person(name: &str, welcome: Option<&str>) -> String {
    let welcome = welcome.map(|w| format!("<p>{}</p>", escape(w))).unwrap_or_default();
    page(name, &format!("<h1>{}</h1>{}", escape(name), welcome))
}

pub fn nobody() -> String {
    page(
        "暂无可用顾问",
        "<h1>暂无可用顾问</h1><p>No one is available right now. Please try again later.</p>",
    )
}

pub fn busy() -> String {
    page(
        "请稍后再试",
        "<h1>请稍后再试</h1><p>Too many scans from your network right now. Please try again in a moment.</p>",
    )
}

pub fn not_found() -> String {
    page("未找到", "<h1>二维码无效</h1><p>This code does not exist.</p>")
}

pub fn gone() -> String {
    page("已停用", "<h1>二维码已停用</h1><p>This code is no longer in use.</p>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landing_pages_escape_names_and_urls() {
        let html = contact_landing("<b>x</b>", "javascript:alert(1)", Some("\"><script>"));
        assert!(!html.contains("<b>x</b>") && !html.contains("<script>"));
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(html.contains("src=\"#\""));
    }
}
