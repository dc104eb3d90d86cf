//! Reading an import file a chunk at a time: the text encoding (UTF-8, else GB18030,
//! which covers GBK), records split across chunk boundaries (CSV quotes may hold
//! newlines), CSV headers in Chinese or English mapped to lead fields, and each record
//! made a capture. Pure; memory is one chunk plus one unfinished record.

use std::collections::VecDeque;

use encoding_rs::{Decoder, Encoding, GB18030, UTF_8};
use huoke_shared::capture::CaptureInput;
use huoke_shared::messages::WechatIds;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "ndjson" => Some(Format::Ndjson),
            _ => None,
        }
    }
}

/// UTF-8 when the first bytes are UTF-8 (an unfinished character at the end of the
/// sample is fine), else GB18030.
pub fn detect(sample: &[u8]) -> &'static Encoding {
    match std::str::from_utf8(sample) {
        Ok(_) => UTF_8,
        Err(e) if e.error_len().is_none() => UTF_8,
        Err(_) => GB18030,
    }
}

/// Turns chunks of bytes into complete records (one text each).
pub struct Records {
    format: Format,
    decoder: Decoder,
    pending: String,
    in_quotes: bool,
    scanned: usize,
    ready: VecDeque<String>,
}

impl Records {
    pub fn new(format: Format, encoding: &'static Encoding) -> Self {
        Records {
            format,
            decoder: encoding.new_decoder_with_bom_removal(),
            pending: String::new(),
            in_quotes: false,
            scanned: 0,
            ready: VecDeque::new(),
        }
    }

    /// Feeds the next chunk (`last` for the final one).
    pub fn feed(&mut self, bytes: &[u8], last: bool) {
        let mut text = String::with_capacity(bytes.len() + 8);
        let mut input = bytes;
        loop {
            let needed = self
                .decoder
                .max_utf8_buffer_length(input.len())
                .unwrap_or(input.len() * 3 + 16);
            text.reserve(needed);
            let (result, read, _) = self.decoder.decode_to_string(input, &mut text, last);
            input = &input[read..];
            if matches!(result, encoding_rs::CoderResult::InputEmpty) {
                break;
            }
        }
        self.pending.push_str(&text);
        self.split();
        if last {
            let rest = std::mem::take(&mut self.pending);
            if !rest.trim().is_empty() {
                self.ready.push_back(rest);
            }
        }
    }

    fn split(&mut self) {
        let mut start = 0;
        let bytes = self.pending.as_bytes();
        let mut i = self.scanned;
        while i < bytes.len() {
            match bytes[i] {
                b'"' if self.format == Format::Csv => self.in_quotes = !self.in_quotes,
                b'\n' if !self.in_quotes => {
                    let record = self.pending[start..i].trim_end_matches('\r');
                    if !record.trim().is_empty() {
                        self.ready.push_back(record.to_string());
                    }
                    start = i + 1;
                }
                _ => {}
            }
            i += 1;
        }
        self.pending.drain(..start);
        self.scanned = self.pending.len();
    }

    pub fn next_record(&mut self) -> Option<String> {
        self.ready.pop_front()
    }
}

/// The fields of one CSV record (`""` is a quote inside a quoted field).
pub fn csv_fields(record: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = record.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// The lead field a CSV header names, in Chinese or English; `None` for an
/// attribute.
pub fn header_field(header: &str) -> Option<&'static str> {
    let h = header.trim().trim_start_matches('\u{feff}').to_lowercase();
    let field = match h.as_str() {
        "name" | "full name" | "姓名" | "联系人" | "客户姓名" | "名字" => "name",
        "phone" | "mobile" | "phone number" | "手机" | "手机号" | "手机号码" | "电话" | "联系电话" => {
            "phone"
        }
        "email" | "e-mail" | "邮箱" | "电子邮箱" | "邮件" => "email",
        "company" | "公司" | "公司名称" | "单位" | "企业" => "company",
        "uscc" | "统一社会信用代码" | "信用代码" => "uscc",
        "title" | "job title" | "职位" | "职务" => "title",
        "channel" | "渠道" | "来源渠道" => "channel",
        "campaign_id" => "campaign_id",
        "unionid" => "unionid",
        "external_userid" => "external_userid",
        "consent" | "同意" => "consent",
        _ => return None,
    };
    Some(field)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A capture from named values (CSV columns or an NDJSON object): known fields to
/// lead fields, the rest to attributes. `channel` is the default channel.
pub fn capture(values: &Map<String, Value>, channel: Option<&str>, campaign_id: Option<&str>) -> CaptureInput {
    let mut input = CaptureInput {
        channel: channel.map(str::to_string),
        campaign_id: campaign_id.map(str::to_string),
        ..CaptureInput::default()
    };
    let mut wechat = WechatIds::default();
    let mut attributes = Map::new();
    for (key, value) in values {
        match header_field(key) {
            Some("name") => input.name = text(value),
            Some("phone") => input.phone = text(value),
            Some("email") => input.email = text(value),
            Some("company") => input.company = text(value),
            Some("uscc") => input.uscc = text(value),
            Some("title") => input.title = text(value),
            Some("channel") => input.channel = text(value).or(input.channel.take()),
            Some("campaign_id") => input.campaign_id = text(value).or(input.campaign_id.take()),
            Some("unionid") => wechat.unionid = text(value),
            Some("external_userid") => wechat.external_userid = text(value),
            Some("consent") => {
                input.consent = match value {
                    Value::Bool(b) => Some(*b),
                    v => text(v).map(|t| matches!(t.as_str(), "1" | "yes" | "true" | "是" | "y")),
                }
            }
            _ => {
                if attributes.len() < 50 && !value.is_null() {
                    attributes.insert(key.trim().chars().take(64).collect(), value.clone());
                }
            }
        }
    }
    input.with_extras(wechat, attributes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(format: Format, encoding: &'static Encoding, chunks: &[&[u8]]) -> Vec<String> {
        let mut r = Records::new(format, encoding);
        let mut out = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            r.feed(c, i + 1 == chunks.len());
            while let Some(rec) = r.next_record() {
                out.push(rec);
            }
        }
        out
    }

    #[test]
    fn records_survive_any_chunking_quotes_and_crlf() {
        let text = "姓名,手机,备注\r\n李雷,13800138000,\"说 \"\"你好\"\"\n第二行\"\r\n\r\n韩梅梅,13900139000,x";
        let bytes = text.as_bytes();
        let whole = all(Format::Csv, UTF_8, &[bytes]);
        assert_eq!(whole.len(), 3, "{whole:?}");
        // Split at every byte, including inside multi-byte characters.
        for cut in 1..bytes.len() {
            assert_eq!(
                all(Format::Csv, UTF_8, &[&bytes[..cut], &bytes[cut..]]),
                whole,
                "cut at {cut}"
            );
        }
        assert_eq!(csv_fields(&whole[1]), ["李雷", "13800138000", "说 \"你好\"\n第二行"]);
    }

    #[test]
    fn gbk_files_are_detected_and_decoded() {
        let (gbk, _, _) = GB18030.encode("姓名,手机\n王五,13700137000\n");
        assert_eq!(detect(&gbk), GB18030);
        assert_eq!(detect("姓名".as_bytes()), UTF_8);
        assert_eq!(
            detect(&"姓名".as_bytes()[..4]),
            UTF_8,
            "a cut character is not a reason to doubt"
        );
        let records = all(Format::Csv, GB18030, &[&gbk]);
        assert_eq!(csv_fields(&records[0]), ["姓名", "手机"]);
        assert_eq!(csv_fields(&records[1]), ["王五", "13700137000"]);
    }

    #[test]
    fn headers_and_values_map_to_a_capture() {
        assert_eq!(header_field("\u{feff}手机号"), Some("phone"));
        assert_eq!(header_field("E-mail"), Some("email"));
        assert_eq!(header_field("行业"), None);
        let values: Map<String, Value> = serde_json::from_str(
            r#"{"姓名": "李雷", "手机": "13800138000", "行业": "制造", "渠道": "ads", "同意": "是"}"#,
        )
        .unwrap();
        let input = capture(&values, Some("website"), None);
        assert_eq!(input.name.as_deref(), Some("李雷"));
        assert_eq!(input.channel.as_deref(), Some("ads"), "a row's own channel wins");
        assert_eq!(input.consent, Some(true));
        assert_eq!(input.attributes.unwrap()["行业"], "制造");
    }

    #[test]
    fn ndjson_lines_are_records() {
        let records = all(Format::Ndjson, UTF_8, &[b"{\"a\":1}\n\n{\"a\":", b"2}\n{\"a\":3}"]);
        assert_eq!(records, ["{\"a\":1}", "{\"a\":2}", "{\"a\":3}"]);
    }

    proptest::proptest! {
        #[test]
        fn no_file_makes_the_reader_panic_or_lose_a_line(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            cut in 0usize..400,
        ) {
            for format in [Format::Csv, Format::Ndjson] {
                let cut = cut.min(bytes.len());
                let records = all(format, detect(&bytes), &[&bytes[..cut], &bytes[cut..]]);
                for r in &records {
                    let _ = csv_fields(r);
                }
            }
        }

        #[test]
        fn plain_lines_come_back_whatever_the_chunking(lines in proptest::collection::vec("[a-z0-9 ,]{1,20}", 1..20), cut in 0usize..400) {
            let text = lines.join("\n");
            let cut = cut.min(text.len());
            let records = all(Format::Ndjson, UTF_8, &[&text.as_bytes()[..cut], &text.as_bytes()[cut..]]);
            let expected: Vec<String> = lines.iter().filter(|l| !l.trim().is_empty()).map(|l| l.trim_end_matches('\r').to_string()).collect();
            proptest::prop_assert_eq!(records, expected);
        }
    }
}
