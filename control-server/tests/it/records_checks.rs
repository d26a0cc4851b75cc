//! Checks the records-kit domains share (resources and workspace): extras
//! round trips and `q` over exactly the listed columns.

use serde_json::{json, Value};

use crate::common::{Resp, TestServer};

/// The record of a 201 answer.
#[track_caller]
pub(crate) fn created(r: &Resp) -> Value {
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["success"], json!(true));
    r.body["data"].clone()
}

/// One kind's extras round trip (see `extras_round_trip_every_kind`).
pub(crate) async fn extras_round_trip(
    s: &TestServer,
    token: &str,
    url: &str,
    typed: Value,
    code: &str,
) {
    let extras = json!({
        "note": "kept", "n": 7, "f": 1.5, "flag": false, "nothing": null,
        "deep": {"a": [1, {"b": "ü"}]}, "list": ["x"],
    });
    let mut body = typed.clone();
    for (k, v) in extras.as_object().unwrap() {
        body[k] = v.clone();
    }
    let c = created(&s.post(url, Some(token), body).await);
    for (k, v) in extras
        .as_object()
        .unwrap()
        .iter()
        .chain(typed.as_object().unwrap())
    {
        assert_eq!(&c[k], v, "{url}: {k} on create");
    }
    let path = format!("{url}/{}", c["id"].as_str().unwrap());
    assert_eq!(
        s.get(&path, Some(token)).await.body["data"],
        c,
        "{url}: read"
    );
    let list = s.get(&format!("{url}?limit=200"), Some(token)).await;
    let listed = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == c["id"])
        .cloned();
    assert_eq!(listed, Some(c.clone()), "{url}: list");
    // Shallow merge: replaced, added, nulled; the rest and the typed
    // fields stay.
    let r = s
        .call(
            "PATCH",
            &path,
            Some(token),
            Some(json!({"deep": {"z": 1}, "added": [true], "note": null})),
        )
        .await;
    assert_eq!(r.status, 200, "{url}: {}", r.body);
    let d = r.body["data"].clone();
    assert_eq!(d["deep"], json!({"z": 1}), "{url}");
    assert_eq!(d["added"], json!([true]), "{url}");
    assert_eq!(d["note"], Value::Null, "{url}");
    assert!(
        d.as_object().unwrap().contains_key("note"),
        "{url}: null kept"
    );
    for k in ["n", "f", "flag", "list"] {
        assert_eq!(d[k], c[k], "{url}: {k} stays");
    }
    for (k, v) in typed.as_object().unwrap() {
        assert_eq!(&d[k], v, "{url}: typed {k} stays");
    }
    assert_eq!(
        s.get(&path, Some(token)).await.body["data"],
        d,
        "{url}: read after patch"
    );
    // At most 64 KiB of extras, on create and after a merge.
    let big = "x".repeat(40 * 1024);
    let r = s.post(url, Some(token), json!({"a": big, "b": big})).await;
    r.assert_error(400, code);
    assert!(
        r.body["error"]["details"]["fields"]["body"].is_string(),
        "{}",
        r.body
    );
    let r = s
        .call("PATCH", &path, Some(token), Some(json!({"a": big})))
        .await;
    assert_eq!(r.status, 200, "{url}: one half fits: {}", r.body);
    let r = s
        .call("PATCH", &path, Some(token), Some(json!({"b": big})))
        .await;
    r.assert_error(400, code);
    assert!(
        r.body["error"]["details"]["fields"]["body"].is_string(),
        "{}",
        r.body
    );
    assert_eq!(
        s.get(&path, Some(token)).await.body["data"]["b"],
        Value::Null
    );
}

/// `q` on `{base}/{kind}` matches exactly `want` (ids), checked with the
/// needle as given, lower-cased and upper-cased.
pub(crate) async fn q_finds(s: &TestServer, token: &str, url: &str, needle: &str, want: &[&str]) {
    for q in [
        needle.to_string(),
        needle.to_lowercase(),
        needle.to_uppercase(),
    ] {
        let r = s
            .get(&format!("{url}?q={}&limit=200", enc_q(&q)), Some(token))
            .await;
        assert_eq!(r.status, 200, "{url} q={q}: {}", r.body);
        let mut got: Vec<&str> = r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap())
            .collect();
        got.sort_unstable();
        let mut want = want.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "{url} q={q}");
    }
}

pub(crate) fn enc_q(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `q` searches each of `searched` (case-insensitive substring) and none of
/// `unsearched` (typed columns the issue does not list, and extras): each
/// row carries its marker `Mk<i>Qz` in one column only; the needle is the
/// marker's middle in another case.
pub(crate) async fn q_searches_exactly(
    s: &TestServer,
    token: &str,
    url: &str,
    base: Value,
    searched: &[&str],
    unsearched: &[&str],
) {
    let columns = searched.iter().chain(unsearched).enumerate();
    let mut rows = Vec::new();
    for (i, col) in columns {
        let marker = format!("Mk{i}Qz");
        let mut body = base.clone();
        body[*col] = json!(marker);
        let c = created(&s.post(url, Some(token), body.clone()).await);
        assert_eq!(c[*col], json!(marker), "{url} {body}");
        rows.push((
            *col,
            format!("k{i}q"),
            c["id"].as_str().unwrap().to_string(),
        ));
    }
    for (col, needle, id) in &rows {
        let want: Vec<&str> = if searched.contains(col) {
            vec![id.as_str()]
        } else {
            vec![]
        };
        q_finds(s, token, url, needle, &want).await;
    }
}
