//! Companies as people write them. A company name is reduced to a key that survives
//! the usual variations — full-width or half-width characters, brackets, a leading
//! region, the legal form — so "北京字节跳动科技有限公司" and "字节跳动科技（北京）有限公司"
//! are one company. The unified social credit code (USCC), when given, identifies a
//! company exactly.

use unicode_normalization::UnicodeNormalization;

/// Legal forms and organisational suffixes, longest first so the longest one matching
/// is removed (股份有限公司 before 有限公司).
const LEGAL_FORMS: &[&str] = &[
    "股份有限公司",
    "有限责任公司",
    "有限公司",
    "分公司",
    "集团",
    "公司",
    "co.,ltd.",
    "co.,ltd",
    "co.ltd",
    "co.,limited",
    "corporation",
    "limited",
    "company",
    "corp.",
    "corp",
    "inc.",
    "inc",
    "llc",
    "ltd.",
    "ltd",
    "gmbh",
    "co.",
];

/// Province-level regions and large cities that often lead a company's name.
const REGIONS: &[&str] = &[
    "北京",
    "上海",
    "天津",
    "重庆",
    "河北",
    "山西",
    "辽宁",
    "吉林",
    "黑龙江",
    "江苏",
    "浙江",
    "安徽",
    "福建",
    "江西",
    "山东",
    "河南",
    "湖北",
    "湖南",
    "广东",
    "海南",
    "四川",
    "贵州",
    "云南",
    "陕西",
    "甘肃",
    "青海",
    "台湾",
    "内蒙古",
    "广西",
    "西藏",
    "宁夏",
    "新疆",
    "香港",
    "澳门",
    "深圳",
    "广州",
    "杭州",
    "南京",
    "苏州",
    "武汉",
    "成都",
    "西安",
    "厦门",
    "青岛",
    "大连",
    "宁波",
    "无锡",
    "合肥",
    "长沙",
    "郑州",
    "济南",
    "沈阳",
    "东莞",
    "佛山",
    "珠海",
    "中国",
];

/// Region suffixes: 北京市, 广东省, 新疆维吾尔自治区 (the last handled by the region
/// names being prefixes of the full form).
const REGION_SUFFIXES: &[&str] = &["省", "市", "自治区", "特别行政区"];

/// The key two spellings of one company share, or `None` when nothing identifying is
/// left (an empty name, or only a legal form).
pub fn company_key(name: &str) -> Option<String> {
    // NFKC turns full-width letters, digits and brackets into their plain forms;
    // lower case makes "ACME" and "Acme" one.
    let mut text: String = name.nfkc().collect::<String>().to_lowercase();
    // A bracketed part is a region or a branch: "字节跳动(北京)有限公司".
    text = without_bracketed(&text);
    text.retain(|c| !c.is_whitespace() && !matches!(c, '·' | '・' | '-' | '_' | '&' | '\'' | '"' | '“' | '”'));
    // Legal forms at the end, possibly several ("集团股份有限公司").
    loop {
        let trimmed = text.trim_end_matches([',', '.', ' ']).to_string();
        match LEGAL_FORMS
            .iter()
            .find(|form| trimmed.ends_with(*form) && trimmed.len() > form.len())
        {
            Some(form) => text = trimmed[..trimmed.len() - form.len()].to_string(),
            None => {
                text = trimmed;
                break;
            }
        }
    }
    // A leading region, with or without its 省/市 suffix, possibly two (广东省深圳市).
    for _ in 0..2 {
        if let Some(region) = REGIONS.iter().find(|r| text.starts_with(*r)) {
            let mut rest = &text[region.len()..];
            if let Some(suffix) = REGION_SUFFIXES.iter().find(|s| rest.starts_with(*s)) {
                rest = &rest[suffix.len()..];
            }
            if rest.chars().count() >= 2 {
                text = rest.to_string();
            }
        }
    }
    text.retain(char::is_alphanumeric);
    (!text.is_empty()).then_some(text)
}

fn without_bracketed(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0u32;
    for c in text.chars() {
        match c {
            '(' | '[' | '【' | '〔' => depth += 1,
            ')' | ']' | '】' | '〕' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

const USCC_CHARS: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [usize; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// A unified social credit code (统一社会信用代码, GB 32100-2015): 18 characters from
/// a 31-character alphabet, the last a check character over the first 17.
pub fn parse_uscc(raw: &str) -> Result<String, &'static str> {
    let code: String = raw
        .nfkc()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase();
    if code.chars().count() != 18 {
        return Err("a unified social credit code has 18 characters");
    }
    let values: Option<Vec<usize>> = code.chars().map(|c| USCC_CHARS.find(c)).collect();
    let Some(values) = values else {
        return Err("a unified social credit code uses digits and the letters A–Y except I, O, S, V and Z");
    };
    let sum: usize = values[..17].iter().zip(USCC_WEIGHTS).map(|(v, w)| v * w).sum();
    let check = (31 - sum % 31) % 31;
    if values[17] != check {
        return Err("the check character of this unified social credit code does not match");
    }
    Ok(code)
}

/// How alike two personal names are, 0–1 (Jaro–Winkler over characters, after the
/// same width and case folding as company names).
pub fn name_similarity(a: &str, b: &str) -> f64 {
    let fold = |s: &str| -> String {
        s.nfkc()
            .collect::<String>()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect()
    };
    let (a, b) = (fold(a), fold(b));
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    strsim::jaro_winkler(&a, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_company_share_a_key() {
        let key = company_key("北京字节跳动科技有限公司");
        assert_eq!(key.as_deref(), Some("字节跳动科技"));
        for variant in [
            "字节跳动科技（北京）有限公司",
            "字节跳动科技(北京)有限公司",
            "北京市字节跳动科技有限责任公司",
            "字节跳动科技集团股份有限公司",
            " 字节跳动 科技 有限公司 ",
            "字节跳动科技分公司",
        ] {
            assert_eq!(company_key(variant), key, "{variant}");
        }
        assert_eq!(company_key("ACME Co., Ltd."), company_key("Acme Inc"));
        assert_eq!(company_key("ＡＣＭＥ　Ｌｔｄ"), Some("acme".to_string()));
        assert_eq!(
            company_key("广东省深圳市腾讯计算机系统有限公司"),
            Some("腾讯计算机系统".to_string())
        );
    }

    #[test]
    fn different_companies_and_empty_names_stay_apart() {
        assert_ne!(company_key("华为技术有限公司"), company_key("华为终端有限公司"));
        assert_eq!(company_key(""), None);
        assert_eq!(company_key("（北京）"), None);
        // A region that is the whole name is kept: "北京" alone is not emptied.
        assert_eq!(company_key("北京"), Some("北京".to_string()));
    }

    #[test]
    fn uscc_check_characters_are_verified() {
        assert_eq!(parse_uscc("91350100M000100Y43"), Ok("91350100M000100Y43".to_string()));
        assert_eq!(parse_uscc(" 91110000600037341l "), Ok("91110000600037341L".to_string()));
        assert!(parse_uscc("911100001011003237").is_err(), "wrong check character");
        assert!(parse_uscc("91350100M000100Y4").is_err(), "too short");
        assert!(parse_uscc("91350100M000100I43").is_err(), "I is not in the alphabet");
    }

    #[test]
    fn similar_names_score_high_and_different_ones_low() {
        assert!(name_similarity("王小明", "王小明") > 0.99);
        assert!(name_similarity("Zhang Wei", "zhang wei") > 0.99);
        assert!(name_similarity("王小明", "王晓明") >= 0.7);
        assert!(name_similarity("王小明", "李大为") < 0.5);
        assert_eq!(name_similarity("", "王小明"), 0.0);
    }
}
