//! Conformance of response data to a method's `returns` schema, so the
//! simulator's own answers can be checked against the real API shape.

use serde_json::Value;

fn truthy(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Number(n)) if n.as_i64() == Some(1))
        || matches!(v, Some(Value::Bool(true)))
}

fn is_numeric_string(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.parse::<f64>().is_ok())
}

/// Checks `data` against `returns`: value types (numbers may be numeric
/// strings, as Perl emits them), required object properties and array
/// items. Returns the problems found as `path: message`.
pub fn check_returns(returns: &Value, data: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if data.is_null() && (truthy(returns.get("optional")) || returns.get("type").is_none()) {
        return out;
    }
    check(returns, data, "data", &mut out);
    out
}

fn check(schema: &Value, data: &Value, at: &str, out: &mut Vec<String>) {
    let ty = schema.get("type").and_then(Value::as_str);
    let ok = match ty {
        Some("integer") => data.is_i64() || data.is_u64() || is_numeric_string(data),
        Some("number") => data.is_number() || is_numeric_string(data),
        Some("boolean") => {
            data.is_boolean()
                || data.as_u64().is_some_and(|n| n <= 1)
                || data.as_str().is_some_and(|s| s == "0" || s == "1")
        }
        Some("string") => data.is_string() || data.is_number(),
        Some("object") => data.is_object(),
        Some("array") => data.is_array(),
        Some("null") => data.is_null(),
        _ => true,
    };
    if !ok {
        out.push(format!("{at}: expected {}, got {data}", ty.unwrap_or("?")));
        return;
    }
    if let (Some(enum_values), Some(s)) =
        (schema.get("enum").and_then(Value::as_array), data.as_str())
    {
        if !enum_values.iter().any(|e| e.as_str() == Some(s)) {
            out.push(format!("{at}: '{s}' not in enum"));
        }
    }
    if let (Some(props), Some(obj)) = (
        schema.get("properties").and_then(Value::as_object),
        data.as_object(),
    ) {
        for (name, prop) in props {
            if name.ends_with("[n]") {
                continue;
            }
            match obj.get(name) {
                Some(v) if v.is_null() && truthy(prop.get("optional")) => {}
                Some(v) => check(prop, v, &format!("{at}.{name}"), out),
                None if !truthy(prop.get("optional")) => {
                    out.push(format!("{at}.{name}: required property missing"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), data.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            check(items, item, &format!("{at}[{i}]"), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_missing_and_mistyped() {
        let schema = json!({"type": "array", "items": {"type": "object", "properties": {
            "vmid": {"type": "integer"},
            "status": {"type": "string", "enum": ["running", "stopped"]},
            "name": {"type": "string", "optional": 1}
        }}});
        assert!(check_returns(&schema, &json!([{"vmid": 100, "status": "running"}])).is_empty());
        let problems = check_returns(&schema, &json!([{"status": "gone", "name": 3}]));
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
