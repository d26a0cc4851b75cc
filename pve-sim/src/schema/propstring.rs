//! PVE property strings (`virtio=BC:24:11:00:00:01,bridge=vmbr0`).

use std::collections::{BTreeMap, BTreeSet};

use super::model::PropSchema;
use super::validate::check_value;

/// Splits a property string into key/value pairs, resolving `default_key`,
/// `alias` and `keyAlias` as PVE's `parse_property_string` does.
pub fn parse_property_string(
    schema: &BTreeMap<String, PropSchema>,
    value: &str,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for part in value.split(',').filter(|p| !p.is_empty()) {
        let (key, val) = match part.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => {
                let default = schema
                    .iter()
                    .find(|(_, p)| p.default_key)
                    .map(|(k, _)| k.clone())
                    .ok_or_else(|| {
                        "value without key, but schema does not define a default key".to_string()
                    })?;
                if out.contains_key(&default) {
                    return Err(format!(
                        "duplicate key in comma-separated list property: {default}"
                    ));
                }
                (default, part.to_string())
            }
        };
        let Some(prop) = schema.get(&key) else {
            return Err(format!("invalid format - unexpected property '{key}'"));
        };
        let (key, val) = match (&prop.alias, &prop.key_alias) {
            (Some(alias), Some(key_alias)) => {
                insert_unique(&mut out, key_alias.clone(), key.clone())?;
                (alias.clone(), val)
            }
            (Some(alias), None) => (alias.clone(), val),
            _ => (key, val),
        };
        insert_unique(&mut out, key, val)?;
    }
    Ok(out)
}

fn insert_unique(
    out: &mut BTreeMap<String, String>,
    key: String,
    val: String,
) -> Result<(), String> {
    if out.contains_key(&key) {
        return Err(format!(
            "duplicate key in comma-separated list property: {key}"
        ));
    }
    out.insert(key, val);
    Ok(())
}

/// Validates a property string against its inline format schema.
pub fn check_property_string(
    schema: &BTreeMap<String, PropSchema>,
    value: &str,
) -> Result<(), String> {
    let parsed = parse_property_string(schema, value)?;
    let mut errors = Vec::new();
    for (k, v) in &parsed {
        if let Some(prop) = schema.get(k) {
            if let Err(e) = check_value(prop, v) {
                errors.push(format!("{k}: {e}"));
            }
        }
    }
    let present: BTreeSet<&String> = parsed.keys().collect();
    for (k, p) in schema {
        if !p.optional && p.alias.is_none() && p.ty.is_some() && !present.contains(k) {
            errors.push(format!("{k}: property is missing and it is not optional"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("invalid format - {}", errors.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net_schema() -> BTreeMap<String, PropSchema> {
        let mut s = BTreeMap::new();
        s.insert(
            "model".into(),
            PropSchema {
                ty: Some("string".into()),
                default_key: true,
                enum_values: Some(vec!["virtio".into(), "e1000".into()]),
                ..PropSchema::default()
            },
        );
        s.insert(
            "macaddr".into(),
            PropSchema {
                ty: Some("string".into()),
                optional: true,
                ..PropSchema::default()
            },
        );
        s.insert(
            "bridge".into(),
            PropSchema {
                ty: Some("string".into()),
                optional: true,
                ..PropSchema::default()
            },
        );
        s.insert(
            "virtio".into(),
            PropSchema {
                alias: Some("macaddr".into()),
                key_alias: Some("model".into()),
                ..PropSchema::default()
            },
        );
        s
    }

    #[test]
    fn key_alias_and_default_key() {
        let s = net_schema();
        let p = parse_property_string(&s, "virtio=BC:24:11:00:00:01,bridge=vmbr0").unwrap();
        assert_eq!(p["model"], "virtio");
        assert_eq!(p["macaddr"], "BC:24:11:00:00:01");
        assert!(check_property_string(&s, "e1000,bridge=vmbr0").is_ok());
        assert!(check_property_string(&s, "rtl,bridge=vmbr0").is_err());
        assert!(check_property_string(&s, "virtio,colour=red").is_err());
        assert!(check_property_string(&s, "bridge=vmbr0").is_err());
    }
}
