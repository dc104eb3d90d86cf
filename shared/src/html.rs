//! Escaping for server-rendered pages. Everything a user or tenant supplied goes
//! through `escape` (text and quoted attributes alike).

use std::fmt::Write;

pub fn escape(input: &str) -> String {
    let mut out = String::with_capacity(input.len() + 8);
    for c in input.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '`' => out.push_str("&#96;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "&#{};", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A URL fit for `href`/`src`: only http(s) (or a same-site path) passes; anything
/// else (`javascript:`, `data:`) becomes `#`. The result still needs `escape`.
pub fn safe_url(url: &str) -> &str {
    let trimmed = url.trim();
    let lower = trimmed.to_ascii_lowercase();
    if lower.starts_with("https://")
        || lower.starts_with("http://")
        || (trimmed.starts_with('/') && !trimmed.starts_with("//"))
    {
        trimmed
    } else {
        "#"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
        assert_eq!(escape("王小明"), "王小明");
    }

    #[test]
    fn only_web_urls_pass() {
        assert_eq!(safe_url("https://example.com/a"), "https://example.com/a");
        assert_eq!(safe_url("/c/abc"), "/c/abc");
        assert_eq!(safe_url("javascript:alert(1)"), "#");
        assert_eq!(safe_url("//evil.example"), "#");
        assert_eq!(safe_url(" JaVaScRiPt:alert(1)"), "#");
    }
}
