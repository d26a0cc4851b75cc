//! Console pages of unattend profiles and playbooks (fast ring): each page
//! for each role with its key elements (tabs, a control for every section,
//! the preview pane, the validate button), viewers read-only, values of a
//! profile created through the API in the list and the editor, unknown ids
//! rendered as the error page, and every field path the API reports for an
//! invalid configuration or playbook naming a control of the editor (or the
//! list control holding it), so errors land on fields.

use reqwest::header;
use serde_json::{json, Value};

use crate::common::{Backend, TestServer, PASSWORD};
use crate::console::{assert_page, browser, page, sign_in, Page};

backend_tests!(
    profile_pages_for_each_role,
    profile_errors_name_editor_fields,
    playbook_pages_for_each_role,
);

const ADMIN: &str = "admin@localhost";

/// One control (a `name`) of each tab of the profile editor.
const SECTION_FIELDS: &[&str] = &[
    "config.user.nameMode",
    "config.user.password",
    "config.user.autoLogonCount",
    "config.computerName.mode",
    "config.computerName.customName",
    "config.locale.keyboardLayouts",
    "config.locale.timeZone",
    "config.locale.geoLocation",
    "config.softwareRemoval.mode",
    "config.softwareRemoval.fixedPackages",
    "config.softwareRemoval.randomCount.min",
    "config.capabilityRemoval.fixedCapabilities",
    "config.windowsSettings.disableDefender",
    "config.windowsSettings.enableRemoteDesktop",
    "config.visualEffects.mode",
    "config.visualEffects.effects.fontSmoothing",
    "config.desktopIcons.mode",
    "config.desktopIcons.icons.thisPC",
    "config.desktopIcons.startFolders.downloads",
    "config.desktopIcons.deleteEdgeShortcut",
    "config.customScript.executable",
    "config.customScript.delaySeconds",
];

const TABS: &[&str] = &[
    "user",
    "computer",
    "locale",
    "software",
    "capabilities",
    "settings",
    "visual",
    "icons",
    "script",
];

/// Every `<input>`, `<select>` and `<textarea>` of the page's `<main>`.
fn controls(p: &Page) -> Vec<String> {
    let main = &p.html[p.html.find("<main").unwrap()..];
    let mut out = Vec::new();
    for tag in ["<input", "<select", "<textarea"] {
        for (i, _) in main.match_indices(tag) {
            let end = main[i..].find('>').unwrap();
            out.push(main[i..i + end + 1].to_string());
        }
    }
    out
}

/// A read-only editor: no mutating form, every control disabled.
#[track_caller]
fn assert_read_only(p: &Page, path: &str) {
    assert!(
        p.mutating_forms().is_empty(),
        "{path}: {:?}",
        p.mutating_forms()
    );
    let enabled: Vec<String> = controls(p)
        .into_iter()
        .filter(|c| !c.contains(" disabled"))
        .collect();
    assert!(enabled.is_empty(), "{path}: enabled controls {enabled:?}");
    p.has(r#"data-testid="read-only""#);
    let main = &p.html[p.html.find("<main").unwrap()..];
    assert!(
        !main.contains(r#"type="submit""#),
        "{path}: a submit button"
    );
}

/// The profile editor's key elements: the tablist, each tab and panel, a
/// control for every section, the preview pane.
#[track_caller]
fn assert_profile_editor(p: &Page) {
    p.has(r#"data-tabs"#)
        .has(r#"role="tablist""#)
        .has(r#"id="tab-user" aria-controls="panel-user" aria-selected="true""#)
        .has(r#"data-preview="/api/v1/unattend-profiles/preview""#)
        .has(r#"data-send="config""#)
        .has(r#"id="preview-xml""#)
        .has(r#"name="name""#)
        .has(r#"name="is_default""#);
    for t in TABS {
        p.has(&format!(
            r#"role="tab" id="tab-{t}" aria-controls="panel-{t}""#
        ))
        .has(&format!(
            r#"role="tabpanel" id="panel-{t}" aria-labelledby="tab-{t}""#
        ));
    }
    for f in SECTION_FIELDS {
        p.has(&format!(r#"name="{f}""#));
    }
    // Every control has its label.
    for c in controls(p) {
        let id = c.split(" id=\"").nth(1).map(|r| &r[..r.find('"').unwrap()]);
        let id = id.unwrap_or_else(|| panic!("control without id: {c}"));
        p.has(&format!(r#"<label for="{id}">"#));
    }
}

fn lab_config() -> Value {
    json!({
        "user": {"nameMode": "custom", "customName": "labuser", "password": "pw-1"},
        "computerName": {"mode": "custom", "customName": "LAB-PC01"},
        "locale": {"timeZone": "UTC", "geoLocation": 244,
                   "keyboardLayouts": [{"language": "0407", "layout": "00000407"}]},
        "softwareRemoval": {"mode": "fixed", "fixedPackages": ["Xbox", "Zune"]},
        "windowsSettings": {"disableDefender": false},
        "visualEffects": {"mode": "custom", "effects": {"fontSmoothing": true}},
        "customScript": {"executable": "RUN.cmd", "delaySeconds": 45}
    })
}

async fn profile_pages_for_each_role(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let (_, operator) = s.user(&admin, "op@pf.test", "operator").await;
    let (_, viewer) = s.user(&admin, "viewer@pf.test", "viewer").await;

    let r = s
        .post(
            "/api/v1/unattend-profiles",
            Some(&admin),
            json!({"name": "Lab profile", "is_default": true, "config": lab_config()}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let lab = r.body["data"]["id"].as_str().unwrap().to_string();
    let r = s
        .post(
            "/api/v1/unattend-profiles",
            Some(&operator),
            json!({"name": "Op profile", "config": {"user": {"nameMode": "random", "autoLogonCount": 0},
                                                    "computerName": {"mode": "random"}}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let op = r.body["data"]["id"].as_str().unwrap().to_string();

    // The preview endpoint the editor's button posts to answers every role.
    for token in [&admin, &viewer] {
        let r = s
            .post(
                "/api/v1/unattend-profiles/preview",
                Some(token),
                json!({"config": lab_config()}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body["data"]["xml"].as_str().unwrap().contains("LAB-PC01"));
    }

    for (email, password, role) in [
        (ADMIN, s.admin_password.as_str(), "admin"),
        ("op@pf.test", PASSWORD, "operator"),
        ("viewer@pf.test", PASSWORD, "viewer"),
    ] {
        let acts = role != "viewer";
        let cookie = sign_in(&s, email, password).await;

        // ---- the list: own profiles (admins: the tenant's), the list kit in the URL
        let p = page(&s, "/console/unattend-profiles", Some(&cookie)).await;
        assert_page(&p, "/console/unattend-profiles");
        p.has("<h1>Unattend profiles</h1>")
            .has(r#"aria-current="page">Unattend profiles"#);
        assert!(
            p.mutating_forms().is_empty(),
            "{role}: {:?}",
            p.mutating_forms()
        );
        assert_eq!(
            p.html.contains(r#"href="/console/unattend-profiles/new""#),
            acts,
            "{role}"
        );
        match role {
            "admin" => {
                p.has(&format!(
                    r#"href="/console/unattend-profiles/{lab}">Lab profile"#
                ))
                .has(&format!(
                    r#"href="/console/unattend-profiles/{op}">Op profile"#
                ))
                .has(r#"<span class="badge default">default</span>"#)
                .has("<td>LAB-PC01</td>")
                .has("<td>you</td>");
                let p = page(
                    &s,
                    "/console/unattend-profiles?q=Lab&sort=name&order=asc",
                    Some(&cookie),
                )
                .await;
                assert_page(&p, "?q=Lab");
                p.has("Lab profile")
                    .lacks("Op profile")
                    .has(r#"<option value="name" selected>"#)
                    .has(r#"value="Lab""#);
                let p = page(&s, "/console/unattend-profiles?is_default=0", Some(&cookie)).await;
                p.has("Op profile").lacks(">Lab profile<");
                let p = page(
                    &s,
                    "/console/unattend-profiles?q=nothing-like-it",
                    Some(&cookie),
                )
                .await;
                p.has("No profile matches these filters.");
                let p = page(&s, "/console/unattend-profiles?limit=1", Some(&cookie)).await;
                p.has("Page 1 of 2").has("rel=\"next\"");
            }
            "operator" => {
                p.has("Op profile").lacks("Lab profile");
            }
            _ => {
                p.has("No unattend profiles yet.")
                    .lacks("Op profile")
                    .lacks("Lab profile");
            }
        }

        // ---- the editor of a new profile
        let p = page(&s, "/console/unattend-profiles/new", Some(&cookie)).await;
        assert_page(&p, "/console/unattend-profiles/new");
        p.has("<h1>New unattend profile</h1>");
        assert_profile_editor(&p);
        if acts {
            assert_eq!(p.mutating_forms(), ["/api/v1/unattend-profiles"], "{role}");
            p.has(
                r#"data-method="POST" data-on-success="redirect:/console/unattend-profiles/{id}""#,
            )
            .has("Create profile");
        } else {
            assert_read_only(&p, "/console/unattend-profiles/new");
        }

        // ---- a stored profile: its values in the editor
        let (mine, others) = match role {
            "admin" => (Some(&lab), None),
            "operator" => (Some(&op), Some(&lab)),
            _ => (None, Some(&lab)),
        };
        if let Some(id) = mine {
            let path = format!("/console/unattend-profiles/{id}");
            let p = page(&s, &path, Some(&cookie)).await;
            assert_page(&p, &path);
            assert_profile_editor(&p);
            assert_eq!(
                p.mutating_forms(),
                [
                    format!("/api/v1/unattend-profiles/{id}"),
                    format!("/api/v1/unattend-profiles/{id}")
                ],
                "{role}: save and delete"
            );
            p.has(r#"data-method="PUT""#)
                .has(r#"data-method="DELETE""#)
                .has(r##"data-dialog="#delete-profile""##)
                .has(r#"aria-labelledby="delete-title""#);
            if role == "admin" {
                p.has("<h1>Lab profile</h1>")
                    .has(r#"value="Lab profile""#)
                    .has(r#"id="f-default" name="is_default" type="checkbox" data-type="flag" checked"#)
                    .has(r#"name="config.computerName.customName" type="text" value="LAB-PC01""#)
                    .has(r#"name="config.user.customName" type="text" value="labuser""#)
                    .has(r#"<option value="custom" selected>custom</option>"#)
                    .has(r#"<option value="UTC" selected>UTC</option>"#)
                    .has(r#"<option value="244" selected>"#)
                    .has(">0407:00000407</textarea>")
                    .has(">Xbox\nZune</textarea>")
                    .has(r#"name="config.customScript.executable" type="text" value="RUN.cmd""#)
                    .has(r#"value="45""#)
                    .has(r#"name="config.windowsSettings.disableUac" data-type="flag" checked"#)
                    .lacks(r#"name="config.windowsSettings.disableDefender" data-type="flag" checked"#)
                    .has(r#"<option value="true" selected>On</option>"#);
            } else {
                p.has("<h1>Op profile</h1>").has(r#"value="0""#);
            }
        }
        // Another's profile is not visible: the error page.
        if let Some(id) = others {
            let p = page(
                &s,
                &format!("/console/unattend-profiles/{id}"),
                Some(&cookie),
            )
            .await;
            assert_eq!(p.status, 404, "{role}: {}", p.html);
            p.has("No such unattend profile")
                .has("UNATTEND_PROFILE_NOT_FOUND");
        }
        let p = page(&s, "/console/unattend-profiles/uprof_nope", Some(&cookie)).await;
        assert_eq!(p.status, 404, "{}", p.html);
        assert!(p.header("content-type").starts_with("text/html"));
        p.has("This page cannot be shown")
            .has("No such unattend profile");

        // The editor's preview, as console.js sends it: the session cookie
        // and the page's CSRF token.
        let p = page(&s, "/console/unattend-profiles/new", Some(&cookie)).await;
        let r = browser()
            .post(s.url("/api/v1/unattend-profiles/preview"))
            .header(header::COOKIE, format!("bmx_session={cookie}"))
            .header("X-CSRF-Token", p.csrf())
            .json(
                &json!({"config": {"user": {"nameMode": "fixed", "autoLogonCount": 0},
                                     "computerName": {"mode": "fixed"}}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{role}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["data"]["xml"].as_str().unwrap().contains("WIN-PC"),
            "{body}"
        );
    }
}

/// The control an error path lands on, as `console.js` finds it: the exact
/// name, else the nearest named ancestor path.
#[track_caller]
fn landing<'a>(html: &str, path: &'a str) -> &'a str {
    let mut p = path;
    loop {
        if html.contains(&format!(r#"name="{p}""#)) {
            return p;
        }
        let cut = p
            .rfind(['.', '['])
            .unwrap_or_else(|| panic!("no control for {path}"));
        p = &p[..cut];
    }
}

async fn profile_errors_name_editor_fields(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let cookie = sign_in(&s, ADMIN, &s.admin_password).await;
    let editor = page(&s, "/console/unattend-profiles/new", Some(&cookie)).await;
    assert_page(&editor, "/console/unattend-profiles/new");

    let bad = json!({
        "user": {"nameMode": "custom", "customName": "a@b", "displayName": "x\u{1}", "autoLogonCount": 5},
        "computerName": {"mode": "custom", "customName": "ABCDEFGHIJKLMNOPQ"},
        "locale": {"uiLanguage": "english!", "timeZone": "Mars Standard Time", "geoLocation": 1,
                   "keyboardLayouts": [{"language": "409", "layout": "00000409"}]},
        "softwareRemoval": {"mode": "random", "fixedPackages": ["ok", "not ok!"],
                            "randomCount": {"min": 9, "max": 3}},
        "capabilityRemoval": {"mode": "fixed", "fixedCapabilities": ["bad/cap"]},
        "customScript": {"executable": "setup.sh", "delaySeconds": 601}
    });
    let r = s
        .post(
            "/api/v1/unattend-profiles",
            Some(&admin),
            json!({"name": " ", "config": bad.clone()}),
        )
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    let fields = r.body["error"]["details"]["fields"]
        .as_object()
        .unwrap()
        .clone();
    for want in [
        "name",
        "config.computerName.customName",
        "config.user.customName",
        "config.user.password",
        "config.locale.timeZone",
        "config.softwareRemoval.randomCount.min",
        "config.customScript.delaySeconds",
    ] {
        assert!(fields.contains_key(want), "{want} not in {fields:?}");
        editor.has(&format!(r#"name="{want}""#));
    }
    for path in fields.keys() {
        let at = landing(&editor.html, path);
        assert!(at != "config" && !at.is_empty(), "{path} lands on {at}");
    }
    assert_eq!(
        landing(&editor.html, "config.locale.keyboardLayouts[0].language"),
        "config.locale.keyboardLayouts"
    );
    assert!(
        fields.contains_key("config.softwareRemoval.fixedPackages[1]"),
        "{fields:?}"
    );
    assert_eq!(
        landing(&editor.html, "config.softwareRemoval.fixedPackages[1]"),
        "config.softwareRemoval.fixedPackages"
    );

    // The preview reports the same paths.
    let r = s
        .post(
            "/api/v1/unattend-profiles/preview",
            Some(&admin),
            json!({"config": bad}),
        )
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    let preview_fields = r.body["error"]["details"]["fields"].as_object().unwrap();
    assert!(preview_fields.contains_key("config.computerName.customName"));
    for path in preview_fields.keys() {
        landing(&editor.html, path);
    }

    // A wrong type is named by its path too, and lands on its control.
    let r = s
        .post(
            "/api/v1/unattend-profiles",
            Some(&admin),
            json!({"name": "x", "config": {"user": {"nameMode": "fixed", "autoLogonCount": "many"},
                                          "computerName": {"mode": "fixed"}}}),
        )
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    let fields = r.body["error"]["details"]["fields"].as_object().unwrap();
    let path = fields.keys().next().unwrap();
    assert_eq!(
        landing(&editor.html, path),
        "config.user.autoLogonCount",
        "{fields:?}"
    );
}

async fn playbook_pages_for_each_role(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let (_, operator) = s.user(&admin, "op@pb.test", "operator").await;
    let (_, viewer) = s.user(&admin, "viewer@pb.test", "viewer").await;

    let r = s
        .post(
            "/api/v1/playbooks",
            Some(&admin),
            json!({"name": "Farm setup", "is_default": true,
                   "content": "name: farm\nroles:\n  - role: base-system\n  - role: homebrew-role\n"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let farm = r.body["data"]["id"].as_str().unwrap().to_string();
    let r = s
        .post(
            "/api/v1/playbooks",
            Some(&operator),
            json!({"name": "Op book", "content": "name: op\nroles:\n  - role: syncthing\n"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let op = r.body["data"]["id"].as_str().unwrap().to_string();

    // Validation (the editor's Validate button) for every role; errors name
    // paths under `content`, which land on the content textarea.
    for token in [&admin, &viewer] {
        let r = s
            .post(
                "/api/v1/playbooks/validate",
                Some(token),
                json!({"content": "name: x\nroles:\n  - when: y\n  - role: odd-one\n"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["data"]["valid"], json!(false));
        assert_eq!(r.body["data"]["errors"][0]["path"], json!("roles[0].role"));
        assert_eq!(
            r.body["data"]["warnings"][0]["path"],
            json!("roles[1].role")
        );
    }
    let r = s
        .post(
            "/api/v1/playbooks",
            Some(&admin),
            json!({"name": "", "content": "name: x\nroles:\n  - when: y\n"}),
        )
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    let fields = r.body["error"]["details"]["fields"]
        .as_object()
        .unwrap()
        .clone();
    assert!(fields.contains_key("content.roles[0].role"), "{fields:?}");

    for (email, password, role) in [
        (ADMIN, s.admin_password.as_str(), "admin"),
        ("op@pb.test", PASSWORD, "operator"),
        ("viewer@pb.test", PASSWORD, "viewer"),
    ] {
        let acts = role != "viewer";
        let cookie = sign_in(&s, email, password).await;

        let p = page(&s, "/console/playbooks", Some(&cookie)).await;
        assert_page(&p, "/console/playbooks");
        p.has("<h1>Playbooks</h1>")
            .has(r#"aria-current="page">Playbooks"#);
        assert!(
            p.mutating_forms().is_empty(),
            "{role}: {:?}",
            p.mutating_forms()
        );
        assert_eq!(
            p.html.contains(r#"href="/console/playbooks/new""#),
            acts,
            "{role}"
        );
        match role {
            "admin" => {
                p.has(&format!(r#"href="/console/playbooks/{farm}">Farm setup"#))
                    .has(&format!(r#"href="/console/playbooks/{op}">Op book"#))
                    .has(r#"<span class="badge warning">1 warning</span>"#)
                    .has(r#"<span class="badge default">default</span>"#);
                let p = page(&s, "/console/playbooks?q=Farm&sort=name", Some(&cookie)).await;
                assert_page(&p, "?q=Farm");
                p.has("Farm setup").lacks("Op book");
                let p = page(&s, "/console/playbooks?q=zzz", Some(&cookie)).await;
                p.has("No playbook matches these filters.");
            }
            "operator" => {
                p.has("Op book").lacks("Farm setup");
            }
            _ => {
                p.has("No playbooks yet.");
            }
        }

        // ---- new
        let p = page(&s, "/console/playbooks/new", Some(&cookie)).await;
        assert_page(&p, "/console/playbooks/new");
        p.has("<h1>New playbook</h1>")
            .has(r#"name="content""#)
            .has(r#"name="name""#)
            .has(r#"data-validate="/api/v1/playbooks/validate""#)
            .has(r#"data-send="content""#)
            .has(r#"id="validate-result""#)
            .has("role: base-system");
        for f in fields.keys() {
            let at = landing(&p.html, f);
            assert!(at == "name" || at == "content", "{f} → {at}");
        }
        if acts {
            assert_eq!(p.mutating_forms(), ["/api/v1/playbooks"]);
        } else {
            assert_read_only(&p, "/console/playbooks/new");
        }

        // ---- a stored one
        let mine = match role {
            "admin" => Some(&farm),
            "operator" => Some(&op),
            _ => None,
        };
        if let Some(id) = mine {
            let path = format!("/console/playbooks/{id}");
            let p = page(&s, &path, Some(&cookie)).await;
            assert_page(&p, &path);
            assert_eq!(
                p.mutating_forms(),
                [
                    format!("/api/v1/playbooks/{id}"),
                    format!("/api/v1/playbooks/{id}")
                ]
            );
            p.has(r#"data-method="PUT""#).has(r#"data-method="DELETE""#);
            if role == "admin" {
                p.has("<h1>Farm setup</h1>")
                    .has("role: homebrew-role")
                    .has("unknown role")
                    .has("<code>roles[1].role</code>");
            } else {
                p.has("<h1>Op book</h1>").has("role: syncthing");
            }
        }
        if role != "admin" {
            let p = page(&s, &format!("/console/playbooks/{farm}"), Some(&cookie)).await;
            assert_eq!(p.status, 404, "{role}: {}", p.html);
            p.has("No such playbook");
        }
        let p = page(&s, "/console/playbooks/pb_nope", Some(&cookie)).await;
        assert_eq!(p.status, 404, "{}", p.html);
        p.has("This page cannot be shown").has("No such playbook");
    }
}
