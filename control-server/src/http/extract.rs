//! Request extractors that fail with the JSON error envelope.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, Type};

use super::error::ApiError;
use crate::db::list::{ListSpec, DEFAULT_LIMIT, MAX_LIMIT, MAX_SEARCH};
use crate::state::AppState;
use crate::validate::FieldErrors;

/// JSON body whose errors name the offending field.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let mime = ct.split(';').next().unwrap_or("").trim();
                mime.eq_ignore_ascii_case("application/json")
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                super::codes::UNSUPPORTED_MEDIA_TYPE,
                "Expected a JSON body with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    super::codes::PAYLOAD_TOO_LARGE,
                    "Request body is larger than the server accepts",
                )
            } else {
                ApiError::bad_request(super::codes::BAD_REQUEST, rej.body_text())
            }
        })?;
        // Pass 1: the text to a JSON value (syntax, duplicate keys, 5.0 → 5).
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        let malformed = |e: &serde_json::Error| {
            ApiError::bad_request(
                super::codes::MALFORMED_JSON,
                format!("Request body is not valid JSON: {e}"),
            )
        };
        let StrictValue(value) = serde_path_to_error::deserialize::<_, StrictValue>(&mut *de)
            .map_err(|err| {
                let path = err.path().to_string();
                let inner = err.into_inner();
                if inner.is_syntax() || inner.is_eof() {
                    malformed(&inner)
                } else {
                    field_error(path, &inner)
                }
            })?;
        de.end().map_err(|e| malformed(&e))?;
        // Pass 2: the value to the handler's type.
        serde_path_to_error::deserialize::<_, T>(StrictDe(value))
            .map(ApiJson)
            .map_err(|err| {
                let path = err.path().to_string();
                field_error(path, err.inner())
            })
    }
}

fn field_error(path: String, inner: &serde_json::Error) -> ApiError {
    let field = if path == "." {
        "body".to_string()
    } else {
        path
    };
    let mut f = FieldErrors::default();
    f.add(&field, strip_position(&inner.to_string()));
    ApiError::validation(f)
}

/// A JSON value read strictly: a repeated object key is an error (serde
/// would silently keep the last one, another parser the first), and a
/// number without a fractional part is an integer (`5.0` is the integer 5
/// to JSON Schema, so to the OpenAPI document; serde would refuse it for an
/// integer field).
struct StrictValue(serde_json::Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        // Integral and inside i64/u64: the casts are exact.
        Ok(if v.fract() == 0.0 && (-9.0e18..=1.8e19).contains(&v) {
            if v < 0.0 {
                (v as i64).into()
            } else {
                (v as u64).into()
            }
        } else {
            v.into()
        })
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        refuse_nul(v)?;
        Ok(v.into())
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        refuse_nul(&v)?;
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        StrictValue::deserialize(d).map(|v| v.0)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(serde_json::Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut m = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            refuse_nul(&key)?;
            if m.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
            }
            let StrictValue(v) = map.next_value()?;
            m.insert(key, v);
        }
        Ok(serde_json::Value::Object(m))
    }
}

/// No string of a body (value or key) may carry NUL (U+0000), as no query
/// parameter may (`http::refuse_nul`): PostgreSQL cannot store or compare
/// such text, so it would reach the database as a 503 (SQLite would keep
/// it: the backends would disagree), and no field of this API needs one.
fn refuse_nul<E: serde::de::Error>(s: &str) -> Result<(), E> {
    if s.contains('\0') {
        return Err(E::custom("must not contain NUL (U+0000)"));
    }
    Ok(())
}

/// Deserializes a JSON value like `serde_json::Value` does, except that a
/// struct must be a JSON object: serde would also build one from an array
/// of its fields (`[null, null]`), which the OpenAPI document does not allow.
struct StrictDe(serde_json::Value);

impl<'de> serde::Deserializer<'de> for StrictDe {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        use serde::de::value::{MapDeserializer, SeqDeserializer};
        match self.0 {
            serde_json::Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter().map(StrictDe));
                let out = v.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(out)
            }
            serde_json::Value::Object(m) => {
                let mut map = MapDeserializer::new(m.into_iter().map(|(k, v)| (k, StrictDe(v))));
                let out = v.visit_map(&mut map)?;
                map.end()?;
                Ok(out)
            }
            other => other.deserialize_any(v),
        }
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Self::Error> {
        if !self.0.is_object() {
            return Err(serde::de::Error::invalid_type(
                unexpected(&self.0),
                &"a JSON object",
            ));
        }
        self.deserialize_any(v)
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        if self.0.is_null() {
            v.visit_none()
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, v)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

impl<'de> serde::de::IntoDeserializer<'de, serde_json::Error> for StrictDe {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

fn unexpected(v: &serde_json::Value) -> serde::de::Unexpected<'_> {
    use serde::de::Unexpected;
    match v {
        serde_json::Value::Null => Unexpected::Unit,
        serde_json::Value::Bool(b) => Unexpected::Bool(*b),
        serde_json::Value::Number(_) => Unexpected::Other("number"),
        serde_json::Value::String(s) => Unexpected::Str(s),
        serde_json::Value::Array(_) => Unexpected::Seq,
        serde_json::Value::Object(_) => Unexpected::Map,
    }
}

/// serde_json appends " at line L column C"; drop it for field messages.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// The client's IP: the TCP peer or, when `trust_forwarded_for` is on, the
/// `X-Forwarded-For` entry `trusted_proxy_hops` from the right.
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(ClientIp(client_ip(parts, &state.cfg)))
    }
}

/// The client address of a request (see [`ClientIp`]).
pub fn client_ip(parts: &Parts, cfg: &crate::config::Config) -> String {
    let peer = || {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ci| ci.0.ip().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    if !cfg.trust_forwarded_for {
        return peer();
    }
    forwarded_client(
        parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok()),
        cfg.trusted_proxy_hops,
    )
    .map(|ip| ip.to_string())
    .unwrap_or_else(peer)
}

/// The address `hops` entries from the right of all `X-Forwarded-For`
/// values (each proxy appends the address it saw). Entries left of it are
/// whatever the client sent and are never used. With fewer entries than
/// hops, the left-most one (the first proxy's view). `None` when absent or
/// not an IP address.
pub fn forwarded_client<'a>(headers: impl Iterator<Item = &'a str>, hops: u32) -> Option<IpAddr> {
    let entries: Vec<&str> = headers
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let i = entries.len().saturating_sub(hops.max(1) as usize);
    entries.get(i)?.parse::<IpAddr>().ok()
}

/// Query string parsed with errors in the envelope.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize::<_, T>(de)
            .map(ApiQuery)
            .map_err(|err| {
                let path = err.path().to_string();
                let mut f = FieldErrors::default();
                f.add(
                    if path == "." { "query" } else { &path },
                    err.into_inner().to_string(),
                );
                ApiError::validation(f)
            })
    }
}

/// Path parameters parsed with errors in the envelope (axum's own `Path`
/// answers a plain-text 400).
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(rej) => Err(ApiError::validation(FieldErrors::one(
                "path",
                rej.body_text(),
            ))),
        }
    }
}

/// `#[serde(default, deserialize_with = "lenient_int")]` for an optional
/// integer field of a body *not* read by [`ApiJson`] (which already turns
/// `5.0` into `5` for every field): takes `5` and `5.0` alike (JSON Schema, and so the
/// OpenAPI document, counts both as the integer 5); refuses fractions and
/// values outside the field's type.
pub fn lenient_int<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64> + TryFrom<i64>,
{
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let v = if let Some(u) = n.as_u64() {
        T::try_from(u).ok()
    } else if let Some(i) = n.as_i64() {
        T::try_from(i).ok()
    } else {
        // Integral and inside i64/u64: the casts below are exact.
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
            .and_then(|f| {
                if f >= 0.0 {
                    T::try_from(f as u64).ok()
                } else {
                    T::try_from(f as i64).ok()
                }
            })
    };
    v.map(Some).ok_or_else(|| {
        serde::de::Error::invalid_value(
            serde::de::Unexpected::Other(&n.to_string()),
            &"a whole number in range",
        )
    })
}

// ---- OpenAPI parameter helpers ----

/// A string parameter restricted to `values`.
pub fn enum_param(
    name: &str,
    parameter_in: ParameterIn,
    description: &str,
    values: &[&str],
) -> Parameter {
    let required = if parameter_in == ParameterIn::Path {
        Required::True
    } else {
        Required::False
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(parameter_in)
        .required(required)
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(values.iter().copied())),
        ))
        .build()
}

fn int_param(name: &str, description: &str, min: u32, max: u32) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(min))
                .maximum(Some(max)),
        ))
        .build()
}

/// The query parameters of a list endpoint, read off its [`ListSpec`]
/// (what `ListSpec::parse` accepts): `page`/`limit` or `cursor`, `sort`
/// (the sortable columns), `order`, and `q` when the list searches. The
/// typed filters (`<col>=v`, `<col>_in=a,b`, `_gt|_gte|_lt|_lte` on numbers
/// and dates) are named in each operation's description.
pub fn list_query_params(spec: &ListSpec) -> Vec<Parameter> {
    let sortable: Vec<&str> = spec
        .columns
        .iter()
        .filter(|c| c.sort)
        .map(|c| c.name)
        .collect();
    let mut params = vec![
        int_param(
            "page",
            "Page number (default 1). Not with `cursor`.",
            1,
            1_000_000,
        ),
        int_param(
            "limit",
            &format!("Page size (default {DEFAULT_LIMIT})."),
            1,
            MAX_LIMIT,
        ),
        ParameterBuilder::new()
            .name("cursor")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(
                "`meta.next_cursor` of the previous page, with the same `sort` and `order` \
                 (keyset pagination; opaque). Not with `page`.",
            ))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build(),
        enum_param(
            "sort",
            ParameterIn::Query,
            &format!("Sort column (default `{}`).", spec.default_sort),
            &sortable,
        ),
        enum_param("order", ParameterIn::Query, "Sort order.", &["asc", "desc"]),
    ];
    if spec.columns.iter().any(|c| c.search) {
        params.push(
            ParameterBuilder::new()
                .name("q")
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(
                    "Case-insensitive substring search over the list's searchable columns \
                     (no control characters).",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .max_length(Some(MAX_SEARCH))
                        .pattern(Some(format!("^[^{CONTROL}]{{0,{MAX_SEARCH}}}$"))),
                ))
                .build(),
        );
    }
    params
}

/// The generic list query (page, limit, cursor, sort, order, q) for a list
/// without a [`ListSpec`]-derived doc. Prefer [`list_query_doc!`], which
/// names the sortable columns and leaves out `q` where nothing is searchable.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListQueryDoc {
    /// Page number, 1.. (default 1). Not with `cursor`.
    #[param(minimum = 1, maximum = 1000000)]
    page: Option<u32>,
    /// Page size, 1..200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `meta.next_cursor` of the previous page (keyset pagination).
    cursor: Option<String>,
    /// Sort column (one of the list's sortable columns).
    sort: Option<String>,
    /// `asc` or `desc`.
    #[param(pattern = "^(asc|desc)$")]
    order: Option<String>,
    /// Case-insensitive substring search over the list's searchable columns.
    #[param(max_length = 200)]
    q: Option<String>,
}

/// Declare `$name`, an `IntoParams` type documenting the list query of
/// `$spec` (use it as `params($name)` in `#[utoipa::path]`).
macro_rules! list_query_doc {
    ($name:ident, $spec:expr) => {
        #[doc = concat!("The list query of `", stringify!($spec), "` (OpenAPI only).")]
        pub struct $name;

        impl utoipa::IntoParams for $name {
            fn into_params(
                _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
            ) -> Vec<utoipa::openapi::path::Parameter> {
                $crate::http::extract::list_query_params(&$spec)
            }
        }
    };
}
pub(crate) use list_query_doc;

// ---- Schemas of request text fields: what the services check ----
//
// For `#[schema(schema_with = …)]` on DTO fields, so the OpenAPI document
// states the rule exactly (schemathesis holds the server to it both ways).
// Regular expressions are ECMA-262 as JSON Schema wants; the classes spell
// out what Rust's `char::is_whitespace` / `char::is_control` and
// `validate::is_forbidden_in_display` mean.

/// `char::is_whitespace` (what `str::trim` removes).
const WS: &str = r"\t\n\x0B\x0C\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// Whitespace that is not a control character.
const WS_PRINTABLE: &str = r" \xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// `char::is_control`.
const CONTROL: &str = r"\x00-\x1F\x7F-\x9F";
/// Bidirectional overrides and isolates.
const BIDI: &str = r"\u202A-\u202E\u2066-\u2069";

fn string_schema(nullable: bool, pattern: String, description: &str) -> utoipa::openapi::Object {
    let ty = if nullable {
        utoipa::openapi::schema::SchemaType::Array(vec![Type::String, Type::Null])
    } else {
        utoipa::openapi::schema::SchemaType::Type(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(ty)
        .pattern(Some(pattern))
        .description(Some(description))
        .build()
}

/// A display string the service trims, then requires to be 1..=`MAX`
/// characters without control characters or bidi overrides.
pub fn trimmed_name<const MAX: usize>() -> utoipa::openapi::Object {
    let inner = format!("{CONTROL}{BIDI}");
    let edge = format!("{CONTROL}{BIDI}{WS_PRINTABLE}");
    string_schema(
        false,
        format!(
            "^[{WS}]*[^{edge}](?:[^{inner}]{{0,{}}}[^{edge}])?[{WS}]*$",
            MAX - 2
        ),
        &format!(
            "1-{MAX} characters once leading and trailing whitespace is trimmed; \
             no control characters or bidirectional overrides."
        ),
    )
}

/// Like [`trimmed_name`], but optional and may be empty or blank.
pub fn opt_trimmed_name<const MAX: usize>() -> utoipa::openapi::Object {
    string_schema(
        true,
        format!("^[{WS}]*[^{CONTROL}{BIDI}]{{0,{MAX}}}[{WS}]*$"),
        &format!(
            "At most {MAX} characters once leading and trailing whitespace is trimmed; \
             no control characters or bidirectional overrides."
        ),
    )
}

/// An optional display string checked as sent: `MIN..=MAX` characters
/// without control characters or bidi overrides.
pub fn opt_text<const MIN: usize, const MAX: usize>() -> utoipa::openapi::Object {
    string_schema(
        true,
        format!("^[^{CONTROL}{BIDI}]{{{MIN},{MAX}}}$"),
        &format!("{MIN}-{MAX} characters; no control characters or bidirectional overrides."),
    )
}

/// An e-mail address as `normalize_email` takes it: trimmed, one `@`,
/// something on both sides, the domain not starting with `.`, no
/// whitespace or control characters, at most 254 bytes.
pub fn email() -> utoipa::openapi::Object {
    let x = format!("@{CONTROL}{WS_PRINTABLE}");
    let mut o = string_schema(
        false,
        format!("^[{WS}]*[^{x}]+@[^.{x}][^{x}]*[{WS}]*$"),
        "An e-mail address such as name@example.com (at most 254 bytes; compared case-insensitively).",
    );
    o.max_length = Some(254);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        n: Option<u32>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body {
        count: u32,
        inner: Option<Inner>,
        #[serde(default)]
        free: Option<serde_json::Value>,
    }

    async fn parse(body: &str) -> Result<Body, ApiError> {
        let req = Request::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        ApiJson::<Body>::from_request(req, &()).await.map(|j| j.0)
    }

    fn field(e: &ApiError) -> String {
        let fields = e.details.as_ref().unwrap()["fields"].as_object().unwrap();
        fields.keys().next().unwrap().clone()
    }

    #[tokio::test]
    async fn integral_numbers_are_integers() {
        let b = parse(r#"{"count": 5.0, "inner": {"n": 7e0}, "free": {"x": 2.0}}"#)
            .await
            .unwrap();
        assert_eq!(b.count, 5);
        assert_eq!(b.inner, Some(Inner { n: Some(7) }));
        assert_eq!(b.free, Some(serde_json::json!({"x": 2})));
        let e = parse(r#"{"count": 5.5}"#).await.unwrap_err();
        assert_eq!((e.code, field(&e).as_str()), ("VALIDATION_ERROR", "count"));
        let e = parse(r#"{"count": -1.0}"#).await.unwrap_err();
        assert_eq!(e.code, "VALIDATION_ERROR");
        let e = parse(r#"{"count": 1e30}"#).await.unwrap_err();
        assert_eq!(e.code, "VALIDATION_ERROR");
    }

    #[tokio::test]
    async fn structs_must_be_objects() {
        for body in [r#"[5, null, null]"#, r#"{"count": 1, "inner": [3]}"#] {
            let e = parse(body).await.unwrap_err();
            assert_eq!(e.code, "VALIDATION_ERROR", "{body}: {e}");
        }
        let e = parse(r#"{"count": 1, "inner": []}"#).await.unwrap_err();
        assert_eq!(field(&e), "inner");
        // A free-form value may still be an array.
        let b = parse(r#"{"count": 1, "free": [1, 2.0]}"#).await.unwrap();
        assert_eq!(b.free, Some(serde_json::json!([1, 2])));
    }

    #[tokio::test]
    async fn duplicate_keys_and_trailing_text_are_refused() {
        let e = parse(r#"{"count": 1, "count": 2}"#).await.unwrap_err();
        assert_eq!(e.code, "VALIDATION_ERROR");
        assert!(e.message.contains("duplicate key `count`"), "{e}");
        let e = parse(r#"{"count": 1, "inner": {"n": 1, "n": 2}}"#)
            .await
            .unwrap_err();
        assert_eq!(field(&e), "inner");
        let e = parse(r#"{"count": 1} {}"#).await.unwrap_err();
        assert_eq!(e.code, "MALFORMED_JSON");
        let e = parse(r#"{"count": "#).await.unwrap_err();
        assert_eq!(e.code, "MALFORMED_JSON");
    }

    #[tokio::test]
    async fn unknown_fields_and_wrong_types_name_the_field() {
        let e = parse(r#"{"count": 1, "inner": {"m": 1}}"#)
            .await
            .unwrap_err();
        assert_eq!(field(&e), "inner.m");
        let e = parse(r#"{"count": "1"}"#).await.unwrap_err();
        assert_eq!(field(&e), "count");
    }

    #[tokio::test]
    async fn nul_is_refused_in_values_and_keys_with_the_path() {
        let e = parse(r#"{"count": 1, "free": {"a": ["ok", "x\u0000y"]}}"#)
            .await
            .unwrap_err();
        assert_eq!(e.code, "VALIDATION_ERROR");
        assert_eq!(field(&e), "free.a[1]");
        let details = e.details.as_ref().unwrap().to_string();
        assert!(details.contains("NUL (U+0000)"), "{details}");
        let e = parse(r#"{"count": 1, "free": {"k\u0000": 1}}"#)
            .await
            .unwrap_err();
        assert_eq!(field(&e), "free");
        // Other control characters are the fields' own business.
        let b = parse(r#"{"count": 1, "free": "tab\there"}"#).await.unwrap();
        assert_eq!(b.free, Some(serde_json::json!("tab\there")));
    }
}
