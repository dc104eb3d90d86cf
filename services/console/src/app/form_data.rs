//! Console form posts (`application/x-www-form-urlencoded`) read as ordered pairs —
//! names may repeat (checkboxes) — and turned into the JSON bodies the API takes.

use serde_json::{Map, Value};

use super::sections::{Field, Kind};

/// The body as (name, value) pairs, in order, percent- and `+`-decoded.
pub fn pairs(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first value of `name`, trimmed.
pub fn value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim())
}

/// The JSON body for `fields` from the posted pairs; empty optional fields are left
/// out. A problem (a number that is not one, JSON that does not parse) names the field.
pub fn body(fields: &[Field], pairs: &[(String, String)]) -> Result<Value, String> {
    let mut out = Map::new();
    for f in fields {
        let raw = value(pairs, f.name).unwrap_or("");
        if raw.is_empty() {
            continue;
        }
        let v = match f.kind {
            Kind::Text | Kind::Email | Kind::Password | Kind::Choice(_) => Value::String(raw.to_string()),
            Kind::Number => Value::from(
                raw.parse::<i64>()
                    .map_err(|_| format!("{}: not a whole number", f.name))?,
            ),
            Kind::List => Value::Array(
                raw.split([',', '，', '\n'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            ),
            Kind::Json => serde_json::from_str(raw).map_err(|e| format!("{}: {e}", f.name))?,
        };
        out.insert(f.name.to_string(), v);
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::super::sections::Field;
    use super::*;

    #[test]
    fn repeated_fields_and_escapes_are_read() {
        let pairs = pairs(b"name=%E5%B1%95%E4%BC%9A+A&member=s1&member=s2&bad=%zz&end=%4");
        assert_eq!(pairs[0], ("name".into(), "展会 A".into()));
        assert_eq!(pairs[1].1, "s1");
        assert_eq!(pairs[2].1, "s2");
        assert_eq!(pairs[3].1, "%zz");
        assert_eq!(pairs[4].1, "%4");
    }

    #[test]
    fn fields_become_json_of_their_kind() {
        let fields = [
            Field {
                name: "name",
                label: "",
                kind: Kind::Text,
                required: true,
            },
            Field {
                name: "cap",
                label: "",
                kind: Kind::Number,
                required: false,
            },
            Field {
                name: "roles",
                label: "",
                kind: Kind::List,
                required: false,
            },
            Field {
                name: "map",
                label: "",
                kind: Kind::Json,
                required: false,
            },
            Field {
                name: "gone",
                label: "",
                kind: Kind::Text,
                required: false,
            },
        ];
        let posted = pairs(
            "name=A&cap=3&roles=sdr%2C+manager%EF%BC%8Cadmin&map=%7B%22%2Fp%22%3A%22phone%22%7D&gone=".as_bytes(),
        );
        let body = body(&fields, &posted).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"name": "A", "cap": 3, "roles": ["sdr", "manager", "admin"], "map": {"/p": "phone"}})
        );
        let bad = pairs(b"name=A&cap=three");
        assert!(body_err(&fields, &bad).contains("cap"));
    }

    fn body_err(fields: &[Field], pairs: &[(String, String)]) -> String {
        body(fields, pairs).unwrap_err()
    }
}
