//! The internal API's OpenAPI 3.1 document (`docs/openapi.json`), served at
//! `GET /v1/openapi.json`.
//!
//! Written by hand and checked against the router rather than generated:
//! the handlers read raw JSON on purpose (every malformed body must get its
//! contract code, not an extractor's rejection), so types derived for a
//! generator would be a second description beside the validation code, as
//! free to drift as a written file. The test below holds the document
//! against [`super::routes`], the list the router is built from.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, as committed.
pub const DOCUMENT: &str = include_str!("../../docs/openapi.json");

pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::super::{Access, routes};
    use super::DOCUMENT;

    fn document() -> Value {
        serde_json::from_str(DOCUMENT).expect("docs/openapi.json is JSON")
    }

    /// (method, path, access) of every operation the document describes.
    fn documented(doc: &Value) -> BTreeSet<(String, String, Access)> {
        let global_security = &doc["security"];
        let mut ops = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if matches!(method.as_str(), "parameters" | "summary" | "description") {
                    continue;
                }
                let security = op.get("security").unwrap_or(global_security);
                let open = security.as_array().is_some_and(Vec::is_empty);
                let access = if open { Access::Open } else { Access::Token };
                ops.insert((method.to_uppercase(), path.clone(), access));
            }
        }
        ops
    }

    #[test]
    fn documents_every_route_and_nothing_else() {
        let served: BTreeSet<_> = routes()
            .into_iter()
            .map(|(r, _)| (r.method.to_string(), r.path.to_string(), r.access))
            .collect();
        let documented = documented(&document());
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty() && unserved.is_empty(),
            "routes served but not in docs/openapi.json (or with another access): {undocumented:?}; \
             documented but not served: {unserved:?}"
        );
    }

    #[test]
    fn declares_each_path_parameter_it_uses() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            let in_path: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .collect();
            let declared: BTreeSet<&str> = item["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| resolve(&doc, p))
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(in_path, declared, "{path}");
        }
    }

    #[test]
    fn every_reference_resolves() {
        fn walk(doc: &Value, v: &Value) {
            match v {
                Value::Object(o) => {
                    if let Some(Value::String(r)) = o.get("$ref") {
                        assert!(!pointer(doc, r).is_null(), "dangling $ref {r}");
                    }
                    o.values().for_each(|v| walk(doc, v));
                }
                Value::Array(a) => a.iter().for_each(|v| walk(doc, v)),
                _ => {}
            }
        }
        let doc = document();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        walk(&doc, &doc);
    }

    #[test]
    fn routes_that_read_a_body_document_its_errors() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                let responses: BTreeSet<&str> = op["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                if op.get("requestBody").is_some() {
                    for status in ["400", "408", "413"] {
                        assert!(responses.contains(status), "{method} {path} lacks {status}");
                    }
                }
                let open = op
                    .get("security")
                    .is_some_and(|s| s.as_array().is_some_and(Vec::is_empty));
                assert_eq!(
                    !open,
                    responses.contains("401"),
                    "{method} {path}: 401 iff it needs the token"
                );
            }
        }
    }

    fn pointer<'a>(doc: &'a Value, reference: &str) -> &'a Value {
        let p = reference.strip_prefix('#').expect("local $ref");
        doc.pointer(p).unwrap_or(&Value::Null)
    }

    fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => pointer(doc, r),
            None => v,
        }
    }
}
