//! Contact details, parsed once at the edge: a `Phone` is always E.164, an `Email`
//! always trimmed and lower-cased. Masking helpers keep them out of logs.

use std::fmt;

/// A valid phone number in E.164 form (`+8613800138000`), parsed with
/// libphonenumber's metadata (the `phonenumber` crate).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String, Line);

/// Whom a number reaches. Company lines (China's 400 and 800 numbers, toll-free and
/// shared-cost numbers elsewhere) answer for a whole company: two people who give one
/// are not the same person, so such a number never links leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Line {
    Personal,
    Company,
}

/// The region numbers without a country code are read in, unless a tenant says
/// otherwise.
pub const DEFAULT_REGION: &str = "CN";

/// Whether `region` is an ISO 3166 alpha-2 region libphonenumber knows (`CN`, `HK`…).
pub fn is_region(region: &str) -> bool {
    region.len() == 2 && region.parse::<phonenumber::country::Id>().is_ok()
}

impl Phone {
    /// A number as written in China: see [`Phone::parse_in`].
    pub fn parse(raw: &str) -> Result<Phone, &'static str> {
        Self::parse_in(raw, DEFAULT_REGION)
    }

    /// Accepts the ways people write numbers — spaces, dashes, dots, brackets,
    /// full-width digits, a `+86` / `0086` / `86` prefix — and keeps only numbers
    /// valid for their region and of a type a person or company answers (mobile,
    /// fixed line, toll-free, shared cost…; not short codes or emergency numbers).
    /// Numbers without a country code are read as written in `region` (ISO 3166
    /// alpha-2, such as `CN`, `HK`, `US`).
    pub fn parse_in(raw: &str, region: &str) -> Result<Phone, &'static str> {
        use phonenumber::{Type, country};
        use unicode_normalization::UnicodeNormalization;

        let region: country::Id = region.parse().map_err(|_| "unknown region for phone numbers")?;
        // Full-width digits and brackets (１３８…, （+86）) become their ASCII forms.
        let written: String = raw.trim().nfkc().collect();
        if written.is_empty() {
            return Err("a phone number is required");
        }
        if written.len() > 40
            || !written
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')' | '+'))
        {
            return Err("a phone number may contain only digits, spaces, dashes, dots, brackets and a leading +");
        }
        // A number that carries its country code is read without a region: the
        // crate would otherwise apply the region's national prefix to it (with `US`,
        // the 1 of "+86 138…" is taken as a trunk prefix and dropped).
        let context = (!written.starts_with('+')).then_some(region);
        let number = phonenumber::parse(context, &written).map_err(|_| "not a phone number")?;
        if !number.is_valid() {
            return Err("not a valid phone number for its region");
        }
        let line = match number.number_type(&phonenumber::metadata::DATABASE) {
            Type::Mobile | Type::FixedLine | Type::FixedLineOrMobile | Type::PersonalNumber | Type::Voip => {
                Line::Personal
            }
            Type::TollFree | Type::SharedCost | Type::Uan | Type::PremiumRate => Line::Company,
            _ => return Err("not a number a person or company answers"),
        };
        let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
        Ok(Phone(e164, line))
    }

    /// Whether the number reaches one person or a whole company.
    pub fn line(&self) -> Line {
        self.1
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `+86138****8000`: enough to recognise, not enough to call.
    pub fn masked(&self) -> String {
        mask_phone(&self.0)
    }
}

impl fmt::Display for Phone {
    /// Displays masked, so a phone that reaches a log line by accident stays private.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let keep_end = 4;
    let keep_start = chars.len().saturating_sub(8).max(3).min(chars.len() - keep_end);
    let middle = chars.len() - keep_start - keep_end;
    format!(
        "{}{}{}",
        chars[..keep_start].iter().collect::<String>(),
        "*".repeat(middle),
        chars[chars.len() - keep_end..].iter().collect::<String>()
    )
}

/// A syntactically valid e-mail address, trimmed and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, &'static str> {
        let lowered = raw.trim().to_lowercase();
        if lowered.len() > 254 {
            return Err("an e-mail address is at most 254 characters");
        }
        match email_address::EmailAddress::parse_with_options(
            &lowered,
            email_address::Options::default().without_display_text(),
        ) {
            Ok(_) if lowered.contains('.') => Ok(Email(lowered)),
            _ => Err("not a valid e-mail address"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn masked(&self) -> String {
        mask_email(&self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// `a***@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_mobiles_in_every_spelling_are_one_number() {
        for raw in [
            "13800138000",
            "+86 138-0013-8000",
            "0086 138 0013 8000",
            "8613800138000",
            "(+86) 138.0013.8000",
            "+8613800138000",
        ] {
            assert_eq!(Phone::parse(raw).unwrap().as_str(), "+8613800138000", "{raw}");
        }
    }

    #[test]
    fn landlines_and_foreign_numbers() {
        assert_eq!(Phone::parse("010-8888 6666").unwrap().as_str(), "+861088886666");
        assert_eq!(Phone::parse("0755 8765 4321").unwrap().as_str(), "+8675587654321");
        assert_eq!(Phone::parse("+1 (650) 253-0000").unwrap().as_str(), "+16502530000");
        assert_eq!(Phone::parse("+852 9123 4567").unwrap().as_str(), "+85291234567");
        assert_eq!(
            Phone::parse("＋８６ １３８ ００１３ ８０００").unwrap().as_str(),
            "+8613800138000"
        );
        assert_eq!(Phone::parse("（010）8888-6666").unwrap().as_str(), "+861088886666");
    }

    #[test]
    fn numbers_without_a_country_code_are_read_in_the_region() {
        assert_eq!(Phone::parse_in("9123 4567", "HK").unwrap().as_str(), "+85291234567");
        assert!(Phone::parse_in("9123 4567", "CN").is_err());
        assert_eq!(
            Phone::parse_in("(650) 253-0000", "US").unwrap().as_str(),
            "+16502530000"
        );
        // A number with its country code is the same number wherever it is read.
        assert_eq!(
            Phone::parse_in("+86 138 0013 8000", "US").unwrap().as_str(),
            "+8613800138000"
        );
        assert!(Phone::parse_in("13800138000", "XX").is_err());
    }

    #[test]
    fn company_lines_are_told_apart_from_personal_ones() {
        assert_eq!(Phone::parse("13800138000").unwrap().line(), Line::Personal);
        assert_eq!(Phone::parse("010-8888 6666").unwrap().line(), Line::Personal);
        for company in ["400-810-8888", "800-810-8888", "+1 800 253 0000"] {
            let phone = Phone::parse(company).unwrap_or_else(|e| panic!("{company}: {e}"));
            assert_eq!(phone.line(), Line::Company, "{company}");
        }
    }

    #[test]
    fn junk_is_refused() {
        for raw in [
            "",
            "12345",
            "abc13800138000",
            "1380013800",
            "+0 123",
            "10086",
            "110",
            "138001380001",
            "+86 12000000000",
            "+1 (415) 000-0000",
            "13800138000 ext. 5",
        ] {
            assert!(Phone::parse(raw).is_err(), "{raw} should be refused");
        }
    }

    #[test]
    fn masking_hides_the_middle() {
        assert_eq!(Phone::parse("13800138000").unwrap().masked(), "+86138****8000");
        assert_eq!(Phone::parse("13800138000").unwrap().to_string(), "+86138****8000");
        assert_eq!(mask_email("alice@example.com"), "a***@example.com");
    }

    #[test]
    fn emails_normalise() {
        assert_eq!(
            Email::parse("  Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
        assert!(Email::parse("not-an-email").is_err());
        assert!(Email::parse("a@b").is_err());
        assert!(Email::parse("Alice <alice@example.com>").is_err());
    }
}
