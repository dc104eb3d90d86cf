//! The published OpenAPI document and the routes the code registers must agree, both
//! ways: every route a service registers is described, and every described operation
//! is served. Read from the sources (each service's `routes` and the shared ones), so
//! a route added without its description — or a description left behind — fails CI.

use std::collections::BTreeSet;
use std::path::Path;

fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("shared/src/http.rs"), root.join("src/startup.rs")];
    for entry in std::fs::read_dir(root.join("services")).unwrap() {
        files.push(entry.unwrap().path().join("src/lib.rs"));
    }
    files
        .into_iter()
        .map(|f| (f.display().to_string(), std::fs::read_to_string(&f).unwrap()))
        .collect()
}

/// The next string literal at or after `at`, with where it ends.
fn next_literal(text: &str, at: usize) -> Option<(String, usize)> {
    let start = text[at..].find('"')? + at + 1;
    let end = text[start..].find('"')? + start;
    Some((text[start..end].to_string(), end + 1))
}

/// (METHOD, path) for every `.route("path", web::method()…)`, every
/// `web::resource("path")…route(web::method()…)` and the `/s` scan scope.
fn registered() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (_, text) in sources() {
        let squeezed: String = text.split_whitespace().collect::<Vec<_>>().join("");
        let mut at = 0;
        while let Some(found) = squeezed[at..].find(".route(\"") {
            let start = at + found + ".route(".len();
            let (path, end) = next_literal(&squeezed, start).unwrap();
            let rest = &squeezed[end..];
            if let Some(call) = rest.strip_prefix(",web::") {
                // `web::get()`, or `web::method(Method::OPTIONS)`.
                let method = match call.strip_prefix("method(") {
                    Some(m) => m.split(')').next().unwrap().rsplit("::").next().unwrap(),
                    None => call.split("()").next().unwrap(),
                };
                routes.insert((method.to_uppercase(), path));
            }
            at = end;
        }
        let mut at = 0;
        while let Some(found) = squeezed[at..].find("web::resource(\"") {
            let start = at + found + "web::resource(".len();
            let (path, end) = next_literal(&squeezed, start).unwrap();
            let block_end = squeezed[end..]
                .find("web::resource(")
                .map_or(squeezed.len(), |i| end + i);
            let block = &squeezed[end..block_end];
            let mut b = 0;
            while let Some(found) = block[b..].find(".route(web::") {
                let method_at = b + found + ".route(web::".len();
                let method = block[method_at..].split("()").next().unwrap();
                routes.insert((method.to_uppercase(), path.clone()));
                b = method_at;
            }
            at = end;
        }
        if squeezed.contains("web::scope(\"/s\").default_service(web::to(scan::scan))") {
            routes.insert(("GET".into(), "/s/{code}".into()));
        }
    }
    routes
}

fn documented() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete", "options"].contains(&method.as_str()) {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// A registered `…/qr.{format}` is documented once per format.
fn matches(registered: &(String, String), documented: &(String, String)) -> bool {
    if registered.0 != documented.0 {
        return false;
    }
    match registered.1.strip_suffix("{format}") {
        Some(prefix) => documented.1.starts_with(prefix) && !documented.1[prefix.len()..].contains('/'),
        None => registered.1 == documented.1,
    }
}

#[test]
fn every_route_is_documented_and_every_documented_operation_is_served() {
    let registered = registered();
    let documented = documented();
    assert!(registered.len() > 40, "the route scan found too little: {registered:?}");
    let undocumented: Vec<_> = registered
        .iter()
        .filter(|r| !documented.iter().any(|d| matches(r, d)))
        .collect();
    let unserved: Vec<_> = documented
        .iter()
        .filter(|d| !registered.iter().any(|r| matches(r, d)))
        .collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from docs/openapi.json: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "docs/openapi.json describes what no code serves: {unserved:?}"
    );
}
