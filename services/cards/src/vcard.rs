//! vCard 4.0 (RFC 6350) for "save contact": text values escaped (§3.4), lines
//! ending in CRLF and folded at 75 octets without splitting a UTF-8 character (§3.2).

/// What goes on the vCard; text values unescaped, URIs as they are.
#[derive(Debug, Clone, Default)]
pub struct VCard<'a> {
    pub name: &'a str,
    pub org: Option<&'a str>,
    pub title: Option<&'a str>,
    /// E.164; only given when the owner chose to show their phone.
    pub tel: Option<&'a str>,
    pub email: Option<&'a str>,
    /// The card page.
    pub url: &'a str,
    pub note: Option<&'a str>,
    /// Avatar URI.
    pub photo: Option<&'a str>,
}

pub const CONTENT_TYPE: &str = "text/vcard; charset=utf-8";
pub const CONTENT_DISPOSITION: &str = "attachment; filename=\"card.vcf\"";

/// Longest physical line, in octets, not counting the CRLF.
const MAX_OCTETS: usize = 75;

/// Escapes a text value: backslash, comma, semicolon and line breaks.
pub fn escape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\\n");
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A URI value: no text escaping applies, but a line break must never get in.
fn uri(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).collect()
}

/// Folds one content line: after at most 75 octets, CRLF and a space, never
/// inside a multi-byte character. The result has no trailing CRLF.
pub fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 24);
    let mut width = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if width + n > MAX_OCTETS {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out
}

/// The whole vCard, CRLF after every line.
pub fn render(card: &VCard<'_>) -> String {
    let mut lines = vec![
        "BEGIN:VCARD".to_string(),
        "VERSION:4.0".to_string(),
        format!("FN:{}", escape_text(card.name)),
        // The display name goes in the family-name slot: Chinese names are not
        // split into given and family names reliably.
        format!("N:{};;;;", escape_text(card.name)),
    ];
    if let Some(org) = card.org {
        lines.push(format!("ORG:{}", escape_text(org)));
    }
    if let Some(title) = card.title {
        lines.push(format!("TITLE:{}", escape_text(title)));
    }
    if let Some(tel) = card.tel {
        lines.push(format!("TEL;TYPE=cell:{}", uri(tel)));
    }
    if let Some(email) = card.email {
        lines.push(format!("EMAIL:{}", escape_text(email)));
    }
    lines.push(format!("URL:{}", uri(card.url)));
    if let Some(note) = card.note {
        lines.push(format!("NOTE:{}", escape_text(note)));
    }
    if let Some(photo) = card.photo {
        lines.push(format!("PHOTO:{}", uri(photo)));
    }
    lines.push("END:VCARD".to_string());
    let mut out = String::new();
    for line in lines {
        out.push_str(&fold(&line));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unfold(text: &str) -> String {
        text.replace("\r\n ", "").replace("\r\n\t", "")
    }

    fn unescape(value: &str) -> String {
        let mut out = String::new();
        let mut chars = value.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') | Some('N') => out.push('\n'),
                    Some(other) => out.push(other),
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn text_values_are_escaped() {
        assert_eq!(escape_text(r"a\b,c;d"), r"a\\b\,c\;d");
        assert_eq!(
            escape_text("line1\nline2\r\nline3\rline4"),
            r"line1\nline2\nline3\nline4"
        );
        assert_eq!(escape_text("王小明"), "王小明");
        for s in ["Smith, John; Jr.", "C:\\path\\", "多行\n文本,;"] {
            assert_eq!(unescape(&escape_text(s)), s);
        }
    }

    #[test]
    fn short_lines_are_not_folded() {
        assert_eq!(fold("FN:Li"), "FN:Li");
        let exact = format!("NOTE:{}", "a".repeat(70));
        assert_eq!(exact.len(), 75);
        assert_eq!(fold(&exact), exact);
    }

    #[test]
    fn long_ascii_lines_fold_at_75_octets() {
        let line = format!("NOTE:{}", "x".repeat(200));
        let folded = fold(&line);
        let physical: Vec<&str> = folded.split("\r\n").collect();
        assert_eq!(physical[0].len(), 75);
        for p in &physical[1..] {
            assert!(p.starts_with(' '));
            assert!(p.len() <= 75);
        }
        assert_eq!(unfold(&folded), line);
    }

    #[test]
    fn long_chinese_names_fold_between_characters() {
        let name = "欧阳".to_string() + &"娜".repeat(60);
        let line = format!("FN:{}", escape_text(&name));
        let folded = fold(&line);
        let physical: Vec<&str> = folded.split("\r\n").collect();
        assert!(physical.len() > 2);
        for (i, p) in physical.iter().enumerate() {
            assert!(p.len() <= 75, "line {i} has {} octets", p.len());
            // Each physical line is whole characters (it is a &str slice), and
            // packed as tightly as three-octet characters allow.
            if i + 1 < physical.len() {
                assert!(p.len() >= 73, "line {i} is only {} octets", p.len());
            }
        }
        assert_eq!(unfold(&folded), line);
    }

    #[test]
    fn a_full_card_renders_and_round_trips() {
        let note = "做外贸十年,擅长;欧洲市场\n第二行".to_string() + &"很长的介绍".repeat(20);
        let card = VCard {
            name: "王, 小明; 测试\\",
            org: Some("Acme, Inc."),
            title: Some("销售总监"),
            tel: Some("+8613800138000"),
            email: Some("wang@example.com"),
            url: "https://huoke.example/c/AbCdEfGhIj",
            note: Some(&note),
            photo: Some("https://cdn.example/a.png"),
        };
        let text = render(&card);
        assert!(text.starts_with("BEGIN:VCARD\r\nVERSION:4.0\r\n"));
        assert!(text.ends_with("END:VCARD\r\n"));
        assert!(!text.replace("\r\n", "").contains('\n'), "bare LF in {text:?}");
        for physical in text.split("\r\n") {
            assert!(physical.len() <= 75);
        }
        let unfolded = unfold(&text);
        let props: Vec<(&str, &str)> = unfolded
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(|l| l.split_once(':').unwrap())
            .collect();
        let get = |name: &str| props.iter().find(|(k, _)| *k == name).map(|(_, v)| *v).unwrap();
        assert_eq!(unescape(get("FN")), "王, 小明; 测试\\");
        assert_eq!(get("N"), r"王\, 小明\; 测试\\;;;;");
        assert_eq!(unescape(get("ORG")), "Acme, Inc.");
        assert_eq!(get("TEL;TYPE=cell"), "+8613800138000");
        assert_eq!(unescape(get("NOTE")), note);
        assert_eq!(get("PHOTO"), "https://cdn.example/a.png");
        assert_eq!(get("URL"), "https://huoke.example/c/AbCdEfGhIj");
    }

    #[test]
    fn optional_properties_are_left_out() {
        let text = render(&VCard {
            name: "Li",
            url: "https://x.example/c/a",
            ..Default::default()
        });
        for absent in ["ORG", "TITLE", "TEL", "EMAIL", "NOTE", "PHOTO"] {
            assert!(!text.contains(&format!("\r\n{absent}")), "{absent} in {text}");
        }
    }
}
