//! Contact details, parsed once at the edge: a `Phone` is always E.164, an `Email`
//! always trimmed and lower-cased. Masking helpers keep them out of logs.

use std::fmt;

/// A phone number in E.164 form (`+8613800138000`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Accepts the ways people write numbers: spaces, dashes, dots, brackets, a
    /// `+86` / `0086` / `86` country prefix. Numbers without a country code are
    /// taken as Chinese: mobiles (11 digits, `1[3-9]…`) and landlines with a
    /// leading trunk `0`. Numbers with another country code keep it.
    pub fn parse(raw: &str) -> Result<Phone, &'static str> {
        let trimmed = raw.trim();
        let mut plus = false;
        let mut digits = String::with_capacity(trimmed.len());
        for c in trimmed.chars() {
            match c {
                '0'..='9' => digits.push(c),
                // A leading plus, possibly inside a bracket: "(+86) 138…".
                '+' if digits.is_empty() && !plus => plus = true,
                ' ' | '-' | '.' | '(' | ')' | '\u{3000}' => {}
                _ => {
                    return Err(
                        "a phone number may contain only digits, spaces, dashes, dots, brackets and a leading +",
                    );
                }
            }
        }
        let international = if plus {
            Some(digits.as_str())
        } else if let Some(rest) = digits.strip_prefix("00") {
            Some(rest)
        } else if digits.len() == 13 && digits.starts_with("861") {
            Some(digits.as_str())
        } else {
            None
        };
        let national_cn = match international {
            Some(number) => match number.strip_prefix("86") {
                Some(cn) => cn.to_string(),
                None => {
                    if (8..=15).contains(&number.len()) && !number.starts_with('0') {
                        return Ok(Phone(format!("+{number}")));
                    }
                    return Err("not a valid international number");
                }
            },
            None => digits,
        };
        let cn = national_cn.strip_prefix('0').map(str::to_string);
        match cn {
            // Landline: area code (2–3 digits after the trunk 0) and a 7–8 digit number.
            Some(landline) if (9..=11).contains(&landline.len()) && !landline.starts_with('0') => {
                Ok(Phone(format!("+86{landline}")))
            }
            Some(_) => Err("not a valid Chinese landline number"),
            None => {
                let b = national_cn.as_bytes();
                if b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) {
                    Ok(Phone(format!("+86{national_cn}")))
                } else {
                    Err("not a valid mobile number (expected 11 digits starting 13–19, or +country code)")
                }
            }
        }
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
        assert_eq!(Phone::parse("+1 (415) 555-0100").unwrap().as_str(), "+14155550100");
        assert_eq!(Phone::parse("+852 9123 4567").unwrap().as_str(), "+85291234567");
    }

    #[test]
    fn junk_is_refused() {
        for raw in [
            "",
            "12345",
            "abc13800138000",
            "23800138000",
            "1380013800",
            "+0 123",
            "10086",
            "138001380001",
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
