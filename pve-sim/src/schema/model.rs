//! Typed view of the parts of the apidoc JSON that request validation needs.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::SimError;

/// One method (GET/POST/PUT/DELETE) of one API path.
#[derive(Debug, Clone)]
pub struct MethodSchema {
    pub path: String,
    pub method: String,
    pub name: String,
    pub parameters: ObjectSchema,
    pub returns: Value,
    /// `allowtoken` (defaults to true in PVE).
    pub allow_token: bool,
    /// `permissions.user == "world"`: reachable without authentication.
    pub world: bool,
}

/// The `parameters` object of a method (or a nested object schema).
#[derive(Debug, Clone, Default)]
pub struct ObjectSchema {
    pub properties: BTreeMap<String, PropSchema>,
    /// `name[n]` properties: (prefix, highest index, schema).
    pub indexed: Vec<(String, u32, PropSchema)>,
    pub additional_properties: bool,
}

/// Description of one parameter.
#[derive(Debug, Clone, Default)]
pub struct PropSchema {
    pub ty: Option<String>,
    pub optional: bool,
    pub enum_values: Option<Vec<String>>,
    pub pattern: Option<String>,
    pub format: Option<Format>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub items: Option<Box<PropSchema>>,
    /// `alias`: this key is another name for the named key (property strings).
    pub alias: Option<String>,
    /// `keyAlias`: `key=value` means `<keyAlias>=key,<alias>=value`.
    pub key_alias: Option<String>,
    /// `default_key`: a bare value in a property string sets this key.
    pub default_key: bool,
    pub description: String,
}

/// A string's `format`: a named PVE format or an inline property-string schema.
#[derive(Debug, Clone)]
pub enum Format {
    Named(String),
    PropertyString(BTreeMap<String, PropSchema>),
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0) != 0,
        Some(Value::String(s)) => s == "1" || s == "true",
        _ => false,
    }
}

fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Highest index of a `name[n]` property, from its description when it says
/// "n is 0 to N" (and "up to N"), else from PVE's constants.
fn indexed_max(prefix: &str, description: &str) -> u32 {
    let from_desc = regex::Regex::new(r"n is 0 to (\d+)|n can be up to (\d+)")
        .ok()
        .and_then(|re| {
            re.captures_iter(description)
                .filter_map(|c| {
                    c.iter()
                        .skip(1)
                        .flatten()
                        .next()
                        .and_then(|m| m.as_str().parse::<u32>().ok())
                })
                .max()
        });
    let fallback = match prefix {
        "ide" => 3,
        "sata" => 5,
        "scsi" => 30,
        "virtio" => 15,
        "parallel" => 2,
        "serial" => 3,
        "usb" => 14,
        "net" | "ipconfig" => 31,
        "numa" => 7,
        "hostpci" => 15,
        "virtiofs" => 9,
        "link" => 7,
        "acmedomain" => 4,
        _ => 255,
    };
    from_desc.unwrap_or(fallback)
}

impl MethodSchema {
    pub(crate) fn from_json(path: &str, method: &str, v: &Value) -> Result<Self, SimError> {
        let parameters = match v.get("parameters") {
            Some(p) => ObjectSchema::from_json(p)?,
            None => ObjectSchema::default(),
        };
        Ok(MethodSchema {
            path: path.to_string(),
            method: method.to_ascii_uppercase(),
            name: v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            parameters,
            returns: v.get("returns").cloned().unwrap_or(Value::Null),
            allow_token: v.get("allowtoken").is_none_or(|a| truthy(Some(a))),
            world: v
                .get("permissions")
                .and_then(|p| p.get("user"))
                .and_then(Value::as_str)
                == Some("world"),
        })
    }
}

impl ObjectSchema {
    pub(crate) fn from_json(v: &Value) -> Result<Self, SimError> {
        let mut out = ObjectSchema {
            additional_properties: match v.get("additionalProperties") {
                Some(Value::Object(_)) => true,
                other => truthy(other),
            },
            ..ObjectSchema::default()
        };
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (name, p) in props {
                let prop = PropSchema::from_json(p)?;
                if let Some(prefix) = name.strip_suffix("[n]") {
                    let max = indexed_max(prefix, &prop.description);
                    out.indexed.push((prefix.to_string(), max, prop));
                } else {
                    out.properties.insert(name.clone(), prop);
                }
            }
        }
        Ok(out)
    }

    /// The schema of a parameter name, including `name[n]` instances (`net0`).
    pub fn lookup(&self, name: &str) -> Option<&PropSchema> {
        if let Some(p) = self.properties.get(name) {
            return Some(p);
        }
        self.indexed.iter().find_map(|(prefix, max, prop)| {
            let digits = name.strip_prefix(prefix.as_str())?;
            let valid = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            let n: u32 = if valid {
                digits.parse().ok()?
            } else {
                return None;
            };
            (n <= *max).then_some(prop)
        })
    }

    /// Names of required (non-optional) parameters.
    pub fn required(&self) -> impl Iterator<Item = &str> {
        self.properties
            .iter()
            .filter(|(_, p)| !p.optional)
            .map(|(k, _)| k.as_str())
    }
}

impl PropSchema {
    pub(crate) fn from_json(v: &Value) -> Result<Self, SimError> {
        let obj = v
            .as_object()
            .ok_or_else(|| SimError::Schema(format!("property schema is not an object: {v}")))?;
        let format = match obj.get("format") {
            Some(Value::String(s)) => Some(Format::Named(s.clone())),
            Some(Value::Object(m)) => {
                let mut sub = BTreeMap::new();
                for (k, p) in m {
                    sub.insert(k.clone(), PropSchema::from_json(p)?);
                }
                Some(Format::PropertyString(sub))
            }
            _ => None,
        };
        let items = match obj.get("items") {
            Some(i @ Value::Object(_)) => Some(Box::new(PropSchema::from_json(i)?)),
            _ => None,
        };
        Ok(PropSchema {
            ty: obj.get("type").and_then(Value::as_str).map(str::to_string),
            optional: truthy(obj.get("optional")),
            enum_values: obj.get("enum").and_then(Value::as_array).map(|a| {
                a.iter()
                    .map(|x| match x {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            }),
            pattern: obj
                .get("pattern")
                .and_then(Value::as_str)
                .map(str::to_string),
            format,
            minimum: number(obj.get("minimum")),
            maximum: number(obj.get("maximum")),
            min_length: number(obj.get("minLength")).map(|n| n as u64),
            max_length: number(obj.get("maxLength")).map(|n| n as u64),
            items,
            alias: obj.get("alias").and_then(Value::as_str).map(str::to_string),
            key_alias: obj
                .get("keyAlias")
                .and_then(Value::as_str)
                .map(str::to_string),
            default_key: truthy(obj.get("default_key")),
            description: obj
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        })
    }
}
