//! Theme assets (issue #13, inventory §2.16) on both backends and both
//! object stores (local and S3 on moto): presign-upload with its body
//! checks and filename sanitisation, the upload through the URL over real
//! HTTP, complete (object present, declared size and image type), the
//! list with download URLs, soft delete, roles and tenants.

use serde_json::{json, Value};

use crate::common::{base_settings, Backend, Resp, TestServer};
use crate::moto::{Kind, TestStore};
use crate::vms::team;

backend_tests!(
    upload_complete_list_delete_on_local,
    upload_complete_list_delete_on_s3,
    refused_uploads_on_local,
    refused_uploads_on_s3,
    presign_body_is_checked,
    roles_and_tenants_on_every_route
);

fn png(len: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    v.resize(len, 0x42);
    v
}

fn jpeg(len: usize) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F'];
    v.resize(len, 0x24);
    v
}

fn webp(len: usize) -> Vec<u8> {
    let mut v = b"RIFF\0\0\0\0WEBPVP8 ".to_vec();
    v.resize(len, 0x11);
    v
}

async fn server(backend: Backend, kind: Kind) -> Option<(TestServer, TestStore)> {
    let store = TestStore::new(kind).await?;
    let mut settings = base_settings();
    store.apply(&mut settings);
    let s = TestServer::start_with(backend, settings, axum::Router::new()).await;
    Some((s, store))
}

async fn presign(s: &TestServer, token: &str, body: Value) -> Resp {
    s.post("/api/v1/theme-assets/presign-upload", Some(token), body)
        .await
}

async fn complete(s: &TestServer, token: &str, body: Value) -> Resp {
    s.post("/api/v1/theme-assets/complete", Some(token), body)
        .await
}

/// PUT bytes to an upload URL as a browser would (no bearer token).
async fn upload(url: &str, content_type: &str, bytes: Vec<u8>) -> u16 {
    reqwest::Client::new()
        .put(url)
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .expect("upload")
        .status()
        .as_u16()
}

async fn list(s: &TestServer, token: &str) -> Value {
    let r = s.get("/api/v1/theme-assets", Some(token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"].clone()
}

async fn upload_complete_list_delete_on_local(b: Backend) {
    upload_complete_list_delete(b, Kind::Local).await
}
async fn upload_complete_list_delete_on_s3(b: Backend) {
    upload_complete_list_delete(b, Kind::S3).await
}

async fn upload_complete_list_delete(backend: Backend, kind: Kind) {
    let Some((s, store)) = server(backend, kind).await else {
        return;
    };
    let t = team(&s, "theme-a").await;
    let image = png(3000);
    let before = chrono::Utc::now().timestamp_millis();
    let r = presign(
        &s,
        &t.operator,
        json!({"filename": "My Summer Background!.PNG", "mime_type": "image/png", "size_bytes": image.len()}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let d = r.body["data"].clone();
    let id = d["asset_id"].as_str().unwrap().to_string();
    let key = d["object_key"].as_str().unwrap().to_string();
    assert_eq!(
        key,
        format!("theme-assets/theme-a/{id}-my-summer-background-.png"),
        "sanitised as documented"
    );
    assert_eq!(d["upload_method"], "PUT");
    assert_eq!(d["upload_headers"], json!({"content-type": "image/png"}));
    assert_eq!(d["expires_in_seconds"], 300);
    let exp = d["expires_at_ms"].as_i64().unwrap();
    assert!(exp >= before + 299_000 && exp <= before + 301_000, "{exp}");
    let url = d["upload_url"].as_str().unwrap().to_string();
    match kind {
        Kind::Local => assert!(url.starts_with(&s.url("/api/v1/objects/")), "{url}"),
        Kind::S3 => {
            assert!(
                url.contains("/botmox-objects/theme-assets/theme-a/"),
                "{url}"
            );
            assert!(url.contains("X-Amz-SignedHeaders=content-type"), "{url}");
        }
    }
    // Listed as pending (no URL) until completed.
    let l = list(&s, &t.viewer).await;
    assert!(l["generated_at_ms"].as_i64().unwrap() >= before);
    assert_eq!(l["items"][0]["status"], "pending");
    assert!(l["items"][0]["image_url"].is_null());
    // Complete before the upload: nothing there yet, still pending.
    complete(&s, &t.operator, json!({"asset_id": id}))
        .await
        .assert_error(409, "THEME_ASSET_UPLOAD_MISSING");
    assert_eq!(list(&s, &t.viewer).await["items"][0]["status"], "pending");
    // Upload over real HTTP, then complete.
    assert_eq!(upload(&url, "image/png", image.clone()).await, 200);
    assert_eq!(store.get(&s, &key).await.as_deref(), Some(&image[..]));
    let r = complete(
        &s,
        &t.operator,
        json!({"asset_id": id, "width": 1920, "height": 1080}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let a = r.body["data"].clone();
    assert_eq!(a["status"], "ready");
    assert_eq!(
        (a["width"].clone(), a["height"].clone()),
        (json!(1920), json!(1080))
    );
    assert_eq!(a["mime_type"], "image/png");
    assert_eq!(a["size_bytes"], image.len());
    assert_eq!(a["filename"], "My Summer Background!.PNG");
    let image_url = a["image_url"].as_str().unwrap().to_string();
    assert!(a["image_url_expires_at_ms"].as_i64().unwrap() > before);
    let r = reqwest::get(&image_url).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "image/png",
        "served as the image type"
    );
    assert_eq!(r.bytes().await.unwrap().to_vec(), image);
    // Completing again keeps it ready, updates dimensions given.
    let r = complete(&s, &t.operator, json!({"asset_id": id, "width": 800})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["width"], 800);
    assert_eq!(r.body["data"]["height"], 1080);
    // A second asset (webp); the list is newest first with URLs for ready ones.
    let pic = webp(500);
    let r = presign(
        &s,
        &t.admin,
        json!({"filename": "", "mime_type": "image/webp", "size_bytes": pic.len()}),
    )
    .await;
    r.assert_error(400, "THEME_ASSET_INVALID_PRESIGN_BODY");
    let r = presign(
        &s,
        &t.admin,
        json!({"filename": "***", "mime_type": "image/webp", "size_bytes": pic.len()}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id2 = r.body["data"]["asset_id"].as_str().unwrap().to_string();
    assert!(r.body["data"]["object_key"]
        .as_str()
        .unwrap()
        .ends_with(&format!("{id2}-background")));
    let url2 = r.body["data"]["upload_url"].as_str().unwrap().to_string();
    assert_eq!(upload(&url2, "image/webp", pic.clone()).await, 200);
    assert_eq!(
        complete(&s, &t.admin, json!({"asset_id": id2}))
            .await
            .status,
        200
    );
    let l = list(&s, &t.viewer).await;
    let items = l["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], id2.as_str());
    assert!(items.iter().all(|i| i["image_url"].is_string()));
    // Soft delete: gone from the list, the object kept; again: same answer.
    let r = s
        .call(
            "DELETE",
            &format!("/api/v1/theme-assets/{id}"),
            Some(&t.operator),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"], json!({"id": id, "status": "deleted"}));
    let again = s
        .call(
            "DELETE",
            &format!("/api/v1/theme-assets/{id}"),
            Some(&t.operator),
            None,
        )
        .await;
    assert_eq!(again.body["data"], json!({"id": id, "status": "deleted"}));
    let l = list(&s, &t.viewer).await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    assert_eq!(store.get(&s, &key).await.as_deref(), Some(&image[..]));
    complete(&s, &t.operator, json!({"asset_id": id}))
        .await
        .assert_error(409, "ASSET_DELETED");
    s.call(
        "DELETE",
        "/api/v1/theme-assets/nope",
        Some(&t.operator),
        None,
    )
    .await
    .assert_error(404, "THEME_ASSET_NOT_FOUND");
    complete(&s, &t.operator, json!({"asset_id": "nope"}))
        .await
        .assert_error(404, "THEME_ASSET_NOT_FOUND");
    s.stop().await;
}

async fn refused_uploads_on_local(b: Backend) {
    refused_uploads(b, Kind::Local).await
}
async fn refused_uploads_on_s3(b: Backend) {
    refused_uploads(b, Kind::S3).await
}

/// An upload of another type or size marks the asset failed; uploading
/// the right image again and completing makes it ready.
async fn refused_uploads(backend: Backend, kind: Kind) {
    let Some((s, store)) = server(backend, kind).await else {
        return;
    };
    let t = team(&s, "theme-r").await;
    let want = png(2048);
    let r = presign(
        &s,
        &t.operator,
        json!({"filename": "bg.png", "mime_type": "image/png", "size_bytes": want.len()}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["data"]["asset_id"].as_str().unwrap().to_string();
    let key = r.body["data"]["object_key"].as_str().unwrap().to_string();
    let url = r.body["data"]["upload_url"].as_str().unwrap().to_string();
    // A JPEG of the declared size, sent as PNG.
    assert_eq!(upload(&url, "image/png", jpeg(want.len())).await, 200);
    let r = complete(&s, &t.operator, json!({"asset_id": id})).await;
    r.assert_error(409, "THEME_ASSET_UPLOAD_INVALID");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("image/jpeg"));
    let l = list(&s, &t.viewer).await;
    assert_eq!(l["items"][0]["status"], "failed");
    assert!(l["items"][0]["image_url"].is_null());
    // Not an image at all; then the wrong size.
    store.put(&s, &key, &vec![0u8; want.len()]).await;
    complete(&s, &t.operator, json!({"asset_id": id}))
        .await
        .assert_error(409, "THEME_ASSET_UPLOAD_INVALID");
    assert_eq!(upload(&url, "image/png", png(100)).await, 200);
    let r = complete(&s, &t.operator, json!({"asset_id": id})).await;
    r.assert_error(409, "THEME_ASSET_UPLOAD_INVALID");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("100 bytes"));
    // The right image: ready.
    assert_eq!(upload(&url, "image/png", want.clone()).await, 200);
    let r = complete(&s, &t.operator, json!({"asset_id": id})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["status"], "ready");
    // Dimensions out of range.
    for body in [
        json!({"asset_id": id, "width": 0}),
        json!({"asset_id": id, "height": 8193}),
        json!({"asset_id": id, "width": "wide"}),
        json!({"asset_id": id, "extra": 1}),
    ] {
        complete(&s, &t.operator, body)
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }
    if kind == Kind::Local {
        // The server's own upload URL: the declared content type and at
        // most the declared size; uploading replaces until it expires.
        assert_eq!(upload(&url, "image/jpeg", want.clone()).await, 403);
        assert_eq!(upload(&url, "image/png", png(want.len() + 1)).await, 413);
        assert_eq!(upload(&url, "image/png", vec![]).await, 400);
        assert_eq!(store.get(&s, &key).await.as_deref(), Some(&want[..]));
        let get_instead = reqwest::get(&url).await.unwrap().status().as_u16();
        assert_eq!(get_instead, 403, "an upload URL does not download");
    }
    s.stop().await;
}

async fn presign_body_is_checked(backend: Backend) {
    let s = TestServer::start(backend).await;
    let t = team(&s, "theme-v").await;
    for (body, field) in [
        (
            json!({"filename": "a.gif", "mime_type": "image/gif", "size_bytes": 10}),
            "mime_type",
        ),
        (
            json!({"filename": "a.png", "mime_type": "image/png", "size_bytes": 0}),
            "size_bytes",
        ),
        (
            json!({"filename": "a.png", "mime_type": "image/png", "size_bytes": 20 * 1024 * 1024 + 1}),
            "size_bytes",
        ),
        (
            json!({"filename": "x".repeat(256), "mime_type": "image/png", "size_bytes": 1}),
            "filename",
        ),
        (
            json!({"filename": "a\u{1}b", "mime_type": "image/png", "size_bytes": 1}),
            "filename",
        ),
    ] {
        let r = presign(&s, &t.operator, body).await;
        r.assert_error(400, "THEME_ASSET_INVALID_PRESIGN_BODY");
        assert!(
            r.body["error"]["details"]["fields"][field].is_string(),
            "{field}: {}",
            r.body
        );
    }
    // JSON of the wrong shape is the generic validation error.
    for body in [
        json!({"filename": "a.png", "mime_type": "image/png"}),
        json!({"filename": 1, "mime_type": "image/png", "size_bytes": 1}),
        json!({"filename": "a.png", "mime_type": "image/png", "size_bytes": 1, "x": 1}),
    ] {
        presign(&s, &t.operator, body)
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }
    // The largest allowed size is accepted; nothing is listed as ready.
    let r = presign(
        &s,
        &t.operator,
        json!({"filename": "big.jpg", "mime_type": "image/jpeg", "size_bytes": 20 * 1024 * 1024}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    s.stop().await;
}

async fn roles_and_tenants_on_every_route(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = team(&s, "theme-ra").await;
    let b = team(&s, "theme-rb").await;
    let image = png(64);
    let r = presign(
        &s,
        &a.admin,
        json!({"filename": "a.png", "mime_type": "image/png", "size_bytes": image.len()}),
    )
    .await;
    let id = r.body["data"]["asset_id"].as_str().unwrap().to_string();
    let url = r.body["data"]["upload_url"].as_str().unwrap().to_string();
    assert_eq!(upload(&url, "image/png", image).await, 200);
    let presign_body = json!({"filename": "b.png", "mime_type": "image/png", "size_bytes": 10});
    // Anonymous: 401 everywhere.
    for (m, p, body) in [
        ("GET", "/api/v1/theme-assets".to_string(), None),
        (
            "POST",
            "/api/v1/theme-assets/presign-upload".into(),
            Some(presign_body.clone()),
        ),
        (
            "POST",
            "/api/v1/theme-assets/complete".into(),
            Some(json!({"asset_id": id})),
        ),
        ("DELETE", format!("/api/v1/theme-assets/{id}"), None),
    ] {
        s.call(m, &p, None, body)
            .await
            .assert_error(401, "UNAUTHORIZED");
    }
    // Viewers list, never write.
    assert_eq!(
        list(&s, &a.viewer).await["items"].as_array().unwrap().len(),
        1
    );
    presign(&s, &a.viewer, presign_body.clone())
        .await
        .assert_error(403, "FORBIDDEN");
    complete(&s, &a.viewer, json!({"asset_id": id}))
        .await
        .assert_error(403, "FORBIDDEN");
    s.call(
        "DELETE",
        &format!("/api/v1/theme-assets/{id}"),
        Some(&a.viewer),
        None,
    )
    .await
    .assert_error(403, "FORBIDDEN");
    // Tenant B: A's asset does not exist; B's list is its own.
    assert!(list(&s, &b.admin).await["items"]
        .as_array()
        .unwrap()
        .is_empty());
    complete(&s, &b.admin, json!({"asset_id": id}))
        .await
        .assert_error(404, "THEME_ASSET_NOT_FOUND");
    s.call(
        "DELETE",
        &format!("/api/v1/theme-assets/{id}"),
        Some(&b.admin),
        None,
    )
    .await
    .assert_error(404, "THEME_ASSET_NOT_FOUND");
    let r = presign(&s, &b.operator, presign_body.clone()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body["data"]["object_key"]
        .as_str()
        .unwrap()
        .starts_with("theme-assets/theme-rb/"));
    // A's operator completes and deletes A's (tenant-shared) asset.
    let r = complete(&s, &a.operator, json!({"asset_id": id})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!serde_json::to_string(&list(&s, &b.admin).await)
        .unwrap()
        .contains(&id));
    let r = s
        .call(
            "DELETE",
            &format!("/api/v1/theme-assets/{id}"),
            Some(&a.operator),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.stop().await;
}
