//! Request parameters collected from path, query string and body, kept as
//! strings the way PVE's REST layer sees them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

/// Parameter name → values (more than one only for array parameters).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    map: BTreeMap<String, Vec<String>>,
}

/// Why a request body could not be read as parameters.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error("request body is not valid JSON: {0}")]
    Json(String),
    #[error("JSON body must be an object")]
    JsonNotObject,
    #[error("unsupported content type '{0}'")]
    ContentType(String),
    #[error("malformed multipart body: {0}")]
    Multipart(String),
    #[error("could not store upload: {0}")]
    Io(#[from] std::io::Error),
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.map.entry(name.into()).or_default().push(value.into());
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Vec<String>)> {
        self.map.iter()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.map
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    pub fn u32(&self, name: &str) -> Option<u32> {
        self.get(name)
            .and_then(|v| v.trim_start_matches('+').parse().ok())
    }

    pub fn u64(&self, name: &str) -> Option<u64> {
        self.get(name)
            .and_then(|v| v.trim_start_matches('+').parse().ok())
    }

    /// A boolean parameter parsed like PVE (`1/0/true/false/yes/no/on/off`).
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(crate::schema::parse_bool_value)
    }

    /// Parameters other than `excluded`, as single strings.
    pub fn without(&self, excluded: &[&str]) -> BTreeMap<String, String> {
        self.map
            .iter()
            .filter(|(k, _)| !excluded.contains(&k.as_str()))
            .filter_map(|(k, v)| v.first().map(|x| (k.clone(), x.clone())))
            .collect()
    }

    /// Adds pairs from an `application/x-www-form-urlencoded` string.
    pub fn extend_urlencoded(&mut self, raw: &[u8]) {
        for (k, v) in form_urlencoded::parse(raw) {
            self.push(k.into_owned(), v.into_owned());
        }
    }

    /// Adds the members of a JSON object body. Scalars become strings as PVE
    /// sees them (booleans as 1/0), arrays become repeated values.
    pub fn extend_json(&mut self, raw: &[u8]) -> Result<(), ParamsError> {
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let value: Value =
            serde_json::from_slice(raw).map_err(|e| ParamsError::Json(e.to_string()))?;
        let Value::Object(obj) = value else {
            return Err(ParamsError::JsonNotObject);
        };
        for (k, v) in obj {
            match v {
                Value::Null => {}
                Value::Array(items) => {
                    for item in items {
                        self.push(k.clone(), json_scalar(&item));
                    }
                }
                other => self.push(k, json_scalar(&other)),
            }
        }
        Ok(())
    }
}

fn json_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        other => other.to_string(),
    }
}

/// The file part of a multipart upload, already stored in a temporary file
/// (like pveproxy's `/var/tmp/pveupload-*`).
#[derive(Debug, Clone)]
pub struct UploadedFile {
    pub original_name: String,
    pub tmp_path: PathBuf,
    pub size: u64,
}

/// Reads a multipart body: text fields become parameters; the part carrying
/// a file name (PVE's `filename` field) is streamed into `tmp_dir`. The
/// file's name becomes the `filename` parameter, as in pveproxy.
pub async fn read_multipart(
    body: axum::body::Body,
    boundary: &str,
    tmp_dir: &std::path::Path,
    params: &mut Params,
) -> Result<Option<UploadedFile>, ParamsError> {
    use tokio::io::AsyncWriteExt;

    let mut multipart = multer::Multipart::new(body.into_data_stream(), boundary);
    let mut upload = None;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| ParamsError::Multipart(e.to_string()))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if let Some(file_name) = field.file_name().map(str::to_string) {
            if upload.is_some() {
                return Err(ParamsError::Multipart("more than one file part".into()));
            }
            tokio::fs::create_dir_all(tmp_dir).await?;
            let tmp_path = tmp_dir.join(format!("pveupload-{}", uuid::Uuid::new_v4().simple()));
            let mut file = tokio::fs::File::create(&tmp_path).await?;
            let mut size = 0u64;
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| ParamsError::Multipart(e.to_string()))?
            {
                size += chunk.len() as u64;
                file.write_all(&chunk).await?;
            }
            file.flush().await?;
            params.push(name, file_name.clone());
            upload = Some(UploadedFile {
                original_name: file_name,
                tmp_path,
                size,
            });
        } else {
            let text = field
                .text()
                .await
                .map_err(|e| ParamsError::Multipart(e.to_string()))?;
            params.push(name, text);
        }
    }
    Ok(upload)
}
