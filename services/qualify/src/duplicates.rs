//! Possible duplicates: leads of the same company (one normalised name or one
//! USCC) whose people have alike names, but who share no identity. They are flagged
//! for a person to merge or leave — never merged automatically, since colleagues
//! with similar names are common.

use huoke_shared::clock::now_ms;
use huoke_shared::company::name_similarity;
use huoke_shared::store::Tx;
use serde_json::json;

/// Short names (Chinese names are two to four characters) at least this alike
/// (Jaro–Winkler) are worth a look: one character apart in a three-character name
/// scores 0.8 (just under, in floating point).
const SIMILAR_SHORT: f64 = 0.79;
/// Longer names need more: Jaro–Winkler is lenient with long shared prefixes
/// ("Zhang Wei" and "Zhang Min" score 0.9).
const SIMILAR_LONG: f64 = 0.93;
/// Pairs flagged per capture at most: a company with hundreds of alike names
/// should not turn one capture into hundreds of rows.
const MAX_FLAGGED: usize = 20;
/// Leads of one company compared per capture; a company with more is compared with
/// its most recent ones.
const MAX_COMPARED: i64 = 200;

/// A lead as the comparison needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Person {
    pub id: String,
    pub name: Option<String>,
    pub company_key: Option<String>,
    pub uscc: Option<String>,
}

/// Why `a` and `b` may be one person, or `None`.
pub fn reasons(a: &Person, b: &Person) -> Option<Vec<String>> {
    let mut reasons = Vec::new();
    match (&a.uscc, &b.uscc) {
        (Some(x), Some(y)) if x == y => reasons.push(format!("same company (USCC {x})")),
        _ => {}
    }
    match (&a.company_key, &b.company_key) {
        (Some(x), Some(y)) if x == y && reasons.is_empty() => reasons.push(format!("same company ({x})")),
        _ => {}
    }
    if reasons.is_empty() {
        return None;
    }
    let (Some(x), Some(y)) = (&a.name, &b.name) else {
        return None;
    };
    let similarity = name_similarity(x, y);
    let short = x.chars().count().max(y.chars().count()) <= 4;
    if similarity < if short { SIMILAR_SHORT } else { SIMILAR_LONG } || digits(x) != digits(y) {
        return None;
    }
    reasons.push(if similarity > 0.999 {
        "same name".to_string()
    } else {
        format!("similar names ({similarity:.2})")
    });
    Some(reasons)
}

/// The digits in a name: "Lead 1" and "Lead 2" are not alike however similar the
/// letters (numbered test entries, "Team 3").
fn digits(name: &str) -> String {
    name.chars().filter(char::is_ascii_digit).collect()
}

/// Flags `lead` against the other live leads of its company, both ways. Returns how
/// many pairs were flagged now.
pub async fn flag(tx: &mut Tx, tenant_id: &str, lead: &Person) -> sqlx::Result<usize> {
    if lead.name.is_none() || (lead.company_key.is_none() && lead.uscc.is_none()) {
        return Ok(0);
    }
    let others: Vec<Person> = sqlx::query_as(
        "SELECT id, name, company_key, uscc FROM leads
         WHERE tenant_id = $1 AND id <> $2 AND merged_into IS NULL AND (company_key = $3 OR uscc = $4)
         ORDER BY created_at DESC LIMIT $5",
    )
    .bind(tenant_id)
    .bind(&lead.id)
    .bind(&lead.company_key)
    .bind(&lead.uscc)
    .bind(MAX_COMPARED)
    .fetch_all(&mut **tx)
    .await?;
    let now = now_ms();
    let mut flagged = 0;
    for other in &others {
        let Some(why) = reasons(lead, other) else {
            continue;
        };
        // Already one person (an identity links them) is not a possible duplicate;
        // that cannot be here, since such leads are merged.
        let why = json!(why).to_string();
        for (a, b) in [(&lead.id, &other.id), (&other.id, &lead.id)] {
            sqlx::query(
                "INSERT INTO lead_possible_duplicates (tenant_id, lead_id, other_id, reasons, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, lead_id, other_id) DO UPDATE SET reasons = excluded.reasons",
            )
            .bind(tenant_id)
            .bind(a)
            .bind(b)
            .bind(&why)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        flagged += 1;
        if flagged >= MAX_FLAGGED {
            break;
        }
    }
    Ok(flagged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use huoke_shared::company::company_key;

    fn person(id: &str, name: &str, company: &str) -> Person {
        Person {
            id: id.into(),
            name: Some(name.into()),
            company_key: company_key(company),
            uscc: None,
        }
    }

    #[test]
    fn alike_names_in_one_company_are_flagged_with_reasons() {
        let a = person("a", "王小明", "北京字节跳动科技有限公司");
        let b = person("b", "王晓明", "字节跳动科技（北京）有限公司");
        let why = reasons(&a, &b).unwrap();
        assert_eq!(why[0], "same company (字节跳动科技)");
        assert!(why[1].starts_with("similar names"), "{why:?}");
        let same = person("c", "王小明", "字节跳动科技集团");
        assert_eq!(reasons(&a, &same).unwrap()[1], "same name");
    }

    #[test]
    fn long_names_need_to_be_closer_and_numbers_must_agree() {
        let a = person("a", "Zhang Wei", "Acme");
        assert!(reasons(&a, &person("b", "Zhang Min", "Acme Inc")).is_none());
        assert!(reasons(&a, &person("c", "zhang  wei", "Acme Inc")).is_some());
        assert!(reasons(&person("d", "Lead 1", "Acme"), &person("e", "Lead 2", "Acme")).is_none());
    }

    #[test]
    fn other_companies_and_other_names_are_not() {
        let a = person("a", "王小明", "字节跳动科技有限公司");
        assert!(reasons(&a, &person("b", "王小明", "腾讯科技有限公司")).is_none());
        assert!(reasons(&a, &person("c", "李大为", "字节跳动科技有限公司")).is_none());
        let mut nameless = person("d", "x", "字节跳动科技有限公司");
        nameless.name = None;
        assert!(reasons(&a, &nameless).is_none());
    }

    #[test]
    fn one_uscc_is_one_company_whatever_the_names() {
        let mut a = person("a", "Li Lei", "Acme");
        let mut b = person("b", "Li  Lei", "Totally Different Trading");
        a.uscc = Some("91350100M000100Y43".into());
        b.uscc = a.uscc.clone();
        assert_eq!(reasons(&a, &b).unwrap()[0], "same company (USCC 91350100M000100Y43)");
    }
}
