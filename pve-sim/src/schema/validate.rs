//! Validation of request parameters against a method's parameter schema,
//! with PVE's error wording.

use std::collections::BTreeMap;

use super::formats::check_format;
use super::model::{Format, ObjectSchema, PropSchema};
use super::propstring::check_property_string;
use super::regex_compat::anchored;
use crate::params::Params;

/// Parameter name → PVE error message.
pub type ParamErrors = BTreeMap<String, String>;

/// Validates all `params` against `schema`; returns every problem found.
pub fn validate_params(schema: &ObjectSchema, params: &Params) -> Result<(), ParamErrors> {
    let mut errors = ParamErrors::new();
    for (name, values) in params.iter() {
        let Some(prop) = schema.lookup(name) else {
            if !schema.additional_properties {
                errors.insert(
                    name.clone(),
                    "property is not defined in schema and the schema does not allow additional properties"
                        .into(),
                );
            }
            continue;
        };
        if values.len() > 1 && prop.ty.as_deref() != Some("array") {
            errors.insert(name.clone(), "duplicate parameter (not an array)".into());
            continue;
        }
        let result = if prop.ty.as_deref() == Some("array") {
            values.iter().try_for_each(|v| match &prop.items {
                Some(items) => check_value(items, v),
                None => Ok(()),
            })
        } else {
            values.iter().try_for_each(|v| check_value(prop, v))
        };
        if let Err(msg) = result {
            errors.insert(name.clone(), msg);
        }
    }
    for name in schema.required() {
        if !params.contains(name) {
            errors.insert(
                name.to_string(),
                "property is missing and it is not optional".into(),
            );
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// PVE's boolean parser (`1|true|yes|on` / `0|false|no|off`, any case).
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn check_range(prop: &PropSchema, n: f64) -> Result<(), String> {
    if let Some(min) = prop.minimum {
        if n < min {
            return Err(format!("value must have a minimum value of {min}"));
        }
    }
    if let Some(max) = prop.maximum {
        if n > max {
            return Err(format!("value must have a maximum value of {max}"));
        }
    }
    Ok(())
}

/// Checks a single scalar value against a property schema.
pub fn check_value(prop: &PropSchema, value: &str) -> Result<(), String> {
    match prop.ty.as_deref() {
        Some("integer") => {
            let ok = value
                .strip_prefix(['+', '-'])
                .unwrap_or(value)
                .bytes()
                .all(|b| b.is_ascii_digit())
                && !value.trim_start_matches(['+', '-']).is_empty();
            let n = value.parse::<i64>().ok().filter(|_| ok);
            let Some(n) = n else {
                return Err(format!("type check ('integer') failed - got '{value}'"));
            };
            check_range(prop, n as f64)?;
        }
        Some("number") => {
            let Some(n) = value.parse::<f64>().ok().filter(|n| n.is_finite()) else {
                return Err(format!("type check ('number') failed - got '{value}'"));
            };
            check_range(prop, n)?;
        }
        Some("boolean") if parse_bool(value).is_none() => {
            return Err(format!("type check ('boolean') failed - got '{value}'"));
        }
        _ => {}
    }
    if let Some(max) = prop.max_length {
        if value.chars().count() as u64 > max {
            return Err(format!("value may only be {max} characters long"));
        }
    }
    if let Some(min) = prop.min_length {
        if (value.chars().count() as u64) < min {
            return Err(format!("value must be at least {min} characters long"));
        }
    }
    if let Some(values) = &prop.enum_values {
        if !values.iter().any(|v| v == value) {
            return Err(format!(
                "value '{value}' does not have a value in the enumeration '{}'",
                values.join(", ")
            ));
        }
    }
    if let Some(pattern) = &prop.pattern {
        if anchored(pattern).is_some_and(|re| !re.is_match(value)) {
            return Err("value does not match the regex pattern".into());
        }
    }
    match &prop.format {
        Some(Format::Named(f)) => check_format(f, value)?,
        Some(Format::PropertyString(sub)) => check_property_string(sub, value)?,
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(ty: &str) -> PropSchema {
        PropSchema {
            ty: Some(ty.into()),
            ..PropSchema::default()
        }
    }

    #[test]
    fn scalar_types() {
        let mut int = prop("integer");
        int.minimum = Some(100.0);
        assert!(check_value(&int, "101").is_ok());
        assert_eq!(
            check_value(&int, "abc").unwrap_err(),
            "type check ('integer') failed - got 'abc'"
        );
        assert!(check_value(&int, "5")
            .unwrap_err()
            .contains("minimum value of 100"));
        let b = prop("boolean");
        assert!(check_value(&b, "true").is_ok());
        assert!(check_value(&b, "0").is_ok());
        assert!(check_value(&b, "maybe").is_err());
        let mut e = prop("string");
        e.enum_values = Some(vec!["a".into(), "b".into()]);
        assert!(check_value(&e, "c")
            .unwrap_err()
            .contains("enumeration 'a, b'"));
    }
}
