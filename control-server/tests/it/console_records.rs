//! Console pages of resources (licenses, proxies, subscriptions) and
//! workspace (notes, calendar, kanban), fast ring: every kind's list per
//! role with records seeded through the API, detail pages with typed fields
//! and extras, a proxy's password never in any page, the kanban board's
//! columns, the calendar month filtered to its days, unknown kinds as the
//! API's error, list filters from the URL.

use chrono::Datelike;
use reqwest::header;
use serde_json::{json, Value};

use crate::common::{Backend, TestServer, PASSWORD};
use crate::console::{assert_page, browser, page, sign_in, Page};

backend_tests!(
    resources_pages_for_each_role,
    workspace_pages_for_each_role,
    kanban_board_and_calendar_month,
    unknown_kinds_and_list_filters,
);

const SECRET: &str = "Sup3r-S3cret-PW-7731";

async fn seed(s: &TestServer, token: &str, path: &str, body: Value) {
    let r = s.post(path, Some(token), body).await;
    assert_eq!(r.status, 201, "{path}: {}", r.body);
}

/// Three signed-in cookies: admin, operator, viewer.
async fn cookies(s: &TestServer, admin: &str, tag: &str) -> [(String, &'static str); 3] {
    let op = format!("op@{tag}.test");
    let viewer = format!("viewer@{tag}.test");
    s.user(admin, &op, "operator").await;
    s.user(admin, &viewer, "viewer").await;
    [
        (
            sign_in(s, "admin@localhost", &s.admin_password).await,
            "admin",
        ),
        (sign_in(s, &op, PASSWORD).await, "operator"),
        (sign_in(s, &viewer, PASSWORD).await, "viewer"),
    ]
}

/// The HTML from `start` to the next `end` (a cell, a column).
#[track_caller]
fn part<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let i = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in:\n{html}"));
    let rest = &html[i..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

/// Role-specific checks every records page shares.
#[track_caller]
fn role_checks(p: &Page, path: &str, role: &str, create_api: Option<&str>) {
    assert_page(p, path);
    p.has(&format!(r#"<strong data-testid="role">{role}</strong>"#));
    if role == "viewer" {
        assert!(
            p.mutating_forms().is_empty(),
            "{path}: {:?}",
            p.mutating_forms()
        );
        p.lacks("<dialog").lacks("data-dialog=").lacks("Move to");
    } else if let Some(api) = create_api {
        p.has(&format!(r#"data-api="{api}" data-method="POST""#))
            .has(r##"data-dialog="#create""##)
            .has(r#"<dialog id="create" aria-labelledby="create-title">"#);
    }
}

async fn resources_pages_for_each_role(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let users = cookies(&s, &admin, "res").await;

    // empty states first
    let p = page(&s, "/console/resources/licenses", Some(&users[0].0)).await;
    assert_page(&p, "empty licenses");
    p.has("No licenses yet.").has("Add a license");
    let p = page(&s, "/console/resources/proxies", Some(&users[2].0)).await;
    p.has("No proxies yet.")
        .has("An operator or admin can add them.");

    let base = "/api/v1/resources";
    seed(
        &s,
        &admin,
        &format!("{base}/licenses"),
        json!({"id": "lic-1", "key": "KEY-ALPHA", "type": "yearly", "status": "active",
               "expires_at": "2027-01-31T00:00:00Z", "bot_ids": ["bot-a", "bot-b"],
               "seat_note": "extra-lic-value"}),
    )
    .await;
    seed(
        &s,
        &admin,
        &format!("{base}/licenses"),
        json!({"id": "lic-2", "key": "KEY-BRAVO", "status": "revoked"}),
    )
    .await;
    seed(
        &s,
        &admin,
        &format!("{base}/proxies"),
        json!({"id": "px-1", "ip": "10.1.2.3", "port": 8080, "login": "user1", "password": SECRET,
               "type": "socks5", "status": "active", "country": "Germany",
               "vendor_ref": "extra-px-value"}),
    )
    .await;
    seed(
        &s,
        &admin,
        &format!("{base}/proxies"),
        json!({"id": "px-2", "ip": "10.9.9.9", "port": 3128, "type": "http", "status": "banned"}),
    )
    .await;
    seed(
        &s,
        &admin,
        &format!("{base}/subscriptions"),
        json!({"id": "sub-1", "type": "vpn", "account_email": "alpha@sub.test",
               "expires_at": "2099-01-01T00:00:00Z", "auto_renew": true, "project_id": "wow_tbc",
               "plan": "extra-sub-value"}),
    )
    .await;
    seed(
        &s,
        &admin,
        &format!("{base}/subscriptions"),
        json!({"id": "sub-2", "type": "wow", "account_email": "bravo@sub.test", "status": "cancelled"}),
    )
    .await;

    for (cookie, role) in &users {
        let c = Some(cookie.as_str());
        // ---- lists ----
        let path = "/console/resources/licenses";
        let p = page(&s, path, c).await;
        role_checks(&p, path, role, Some("/api/v1/resources/licenses"));
        p.has("<h1>Licenses</h1>")
            .has(r#"aria-current="page">Resources</a>"#)
            .has(r#"<a href="/console/resources/licenses" aria-current="page">Licenses</a>"#)
            .has(r#"<a href="/console/resources/proxies">Proxies</a>"#)
            .has(r#"<th scope="col">License key</th>"#)
            .has(r#"<caption class="skip">Licenses</caption>"#)
            .has(r#"<a href="/console/resources/licenses/lic-1">KEY-ALPHA</a>"#)
            .has("KEY-BRAVO")
            .has(r#"<span class="badge revoked">revoked</span>"#)
            .has("2027-01-31 00:00:00 UTC")
            .has(r#"<label for="f-status">Status</label>"#)
            .has(r#"<label for="f-q">Search license key, type</label>"#);

        let path = "/console/resources/proxies";
        let p = page(&s, path, c).await;
        role_checks(&p, path, role, Some("/api/v1/resources/proxies"));
        p.has("<h1>Proxies</h1>")
            .has(r#"<a href="/console/resources/proxies" aria-current="page">Proxies</a>"#)
            .has(r#"<a href="/console/resources/proxies/px-1">10.1.2.3</a>"#)
            .has(r#"<td class="num">8080</td>"#)
            .has(r#"<th scope="col">Has password</th>"#)
            .has(r#"<span class="badge socks5">socks5</span>"#)
            .has(r#"<span class="badge banned">banned</span>"#)
            .has(r#"<label for="f-type">Type</label>"#)
            .lacks(SECRET);

        let path = "/console/resources/subscriptions";
        let p = page(&s, path, c).await;
        role_checks(&p, path, role, Some("/api/v1/resources/subscriptions"));
        p.has("<h1>Subscriptions</h1>")
            .has(r#"<a href="/console/resources/subscriptions/sub-1">alpha@sub.test</a>"#)
            .has("bravo@sub.test")
            .has(r#"<span class="badge cancelled">cancelled</span>"#)
            .has(r#"<span class="badge vpn">vpn</span>"#)
            .has(r#"<label for="f-project_id">Project id</label>"#);

        // ---- details ----
        let path = "/console/resources/licenses/lic-1";
        let p = page(&s, path, c).await;
        role_checks(&p, path, role, None);
        p.has("<h1>KEY-ALPHA</h1>")
            .has(r#"data-testid="record-status">active</span>"#)
            .has("<dt>License key</dt><dd>KEY-ALPHA</dd>")
            .has("<dt>Type</dt><dd>yearly</dd>")
            .has("<dt>Bot ids</dt><dd>bot-a, bot-b</dd>")
            .has("<dt>Expires at</dt><dd>2027-01-31 00:00:00 UTC</dd>")
            .has(r#"data-testid="extras""#)
            .has("seat_note")
            .has("extra-lic-value")
            .has(r#"<a href="/console/resources/licenses">← All licenses</a>"#);
        if *role == "viewer" {
            p.lacks("<h2 id=\"h-edit\">").lacks("Delete");
        } else {
            p.has(r#"data-api="/api/v1/resources/licenses/lic-1" data-method="PATCH""#)
                .has(r#"data-api="/api/v1/resources/licenses/lic-1" data-method="DELETE" data-on-success="redirect:/console/resources/licenses""#)
                .has(r#"<dialog id="delete" aria-labelledby="delete-title">"#)
                .has(r#"<select id="e-status" name="status"><option value="active" selected>active</option>"#)
                .has(r#"<label for="e-key">License key</label>"#)
                .has(r#"id="e-expires_at" name="expires_at" type="text" value="2027-01-31T00:00:00"#)
                .has(r#"id="e-bot_ids" name="bot_ids" type="text""#);
        }

        let path = "/console/resources/proxies/px-1";
        let p = page(&s, path, c).await;
        role_checks(&p, path, role, None);
        p.has("<h1>10.1.2.3</h1>")
            .has("<dt>Has password</dt><dd>yes</dd>")
            .has(r#"<p data-testid="has-secret">Has password: <strong>yes</strong></p>"#)
            .has("<dt>Port</dt><dd>8080</dd>")
            .has("<dt>Login</dt><dd>user1</dd>")
            .has("vendor_ref")
            .has("extra-px-value")
            .lacks(SECRET);
        match *role {
            "admin" => {
                p.has(r#"href="/api/v1/resources/proxies/px-1/password""#)
                    .has("Reveal password")
                    .has(r#"id="e-password" name="password" type="password" autocomplete="new-password""#)
                    .has(r#"id="e-port" name="port" type="number" value="8080" data-type="int""#);
            }
            "operator" => {
                p.lacks("Reveal password")
                    .lacks(r#"href="/api/v1/resources/proxies/px-1/password""#)
                    .has("admins read it with <code>GET /api/v1/resources/proxies/px-1/password</code>")
                    .has(r#"<label for="e-password">New password</label>"#);
            }
            _ => {
                p.lacks("Reveal password").lacks("e-password");
            }
        }
        let p = page(&s, "/console/resources/proxies/px-2", c).await;
        assert_page(&p, "px-2");
        p.has("<dt>Has password</dt><dd>no</dd>")
            .has("No additional fields.");

        let path = "/console/resources/subscriptions/sub-1";
        let p = page(&s, path, c).await;
        role_checks(&p, path, role, None);
        p.has("<h1>alpha@sub.test</h1>")
            .has("<dt>Auto renew</dt><dd>yes</dd>")
            .has("<dt>Project id</dt><dd>wow tbc</dd>")
            .has("extra-sub-value");
    }

    // the admin's reveal link is the API's read, with the console cookie
    let r = browser()
        .get(s.url("/api/v1/resources/proxies/px-1/password"))
        .header(header::COOKIE, format!("bmx_session={}", users[0].0))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["password"], SECRET);
    // an operator's cookie may not
    let r = browser()
        .get(s.url("/api/v1/resources/proxies/px-1/password"))
        .header(header::COOKIE, format!("bmx_session={}", users[1].0))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    s.stop().await;
}

async fn workspace_pages_for_each_role(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let users = cookies(&s, &admin, "ws").await;

    let p = page(&s, "/console/workspace/notes", Some(&users[1].0)).await;
    assert_page(&p, "empty notes");
    p.has("No notes yet.").has("Add a note");
    let p = page(
        &s,
        "/console/workspace/calendar?view=list",
        Some(&users[0].0),
    )
    .await;
    p.has("No events yet.").has("Add an event");

    let base = "/api/v1/workspace";
    seed(
        &s,
        &admin,
        &format!("{base}/notes"),
        json!({"id": "note-1", "title": "Farm plan", "content": "Route through Nagrand",
               "tags": ["farm", "tbc"], "is_pinned": true, "project_id": "wow_tbc",
               "mood": "extra-note-value"}),
    )
    .await;
    seed(
        &s,
        &admin,
        &format!("{base}/notes"),
        json!({"id": "note-2", "title": "Shopping list", "is_pinned": false}),
    )
    .await;
    seed(
        &s,
        &admin,
        &format!("{base}/calendar"),
        json!({"id": "ev-1", "title": "Raid night", "date": "2026-12-04",
               "description": "Bring flasks", "room": "extra-ev-value"}),
    )
    .await;
    seed(
        &s,
        &admin,
        &format!("{base}/kanban"),
        json!({"id": "k-1", "title": "Write docs", "status": "todo", "due_date": "2026-12-24",
               "order": 3, "owner": "extra-task-value"}),
    )
    .await;

    for (cookie, role) in &users {
        let c = Some(cookie.as_str());
        let path = "/console/workspace/notes";
        let p = page(&s, path, c).await;
        role_checks(&p, path, role, Some("/api/v1/workspace/notes"));
        p.has("<h1>Notes</h1>")
            .has(r#"aria-current="page">Workspace</a>"#)
            .has(r#"<a href="/console/workspace/notes" aria-current="page">Notes</a>"#)
            .has(r#"<a href="/console/workspace/kanban">Kanban</a>"#)
            .has(r#"<a href="/console/workspace/notes/note-1">Farm plan</a>"#)
            .has("Shopping list")
            .has(r#"<th scope="col">Is pinned</th>"#)
            .has(r#"<label for="f-is_pinned">Is pinned</label>"#);

        let path = "/console/workspace/calendar?view=list";
        let p = page(&s, path, c).await;
        role_checks(&p, path, role, Some("/api/v1/workspace/calendar"));
        p.has("<h1>Calendar</h1>")
            .has(r#"<a href="/console/workspace/calendar" aria-current="page">Calendar</a>"#)
            .has(r#"<a href="/console/workspace/calendar?view=list" aria-current="page">List</a>"#)
            .has(r#"<a href="/console/workspace/calendar">Month</a>"#)
            .has(r#"<input type="hidden" name="view" value="list">"#)
            .has(r#"<a href="/console/workspace/calendar/ev-1">Raid night</a>"#)
            .has("<td>2026-12-04</td>");

        let path = "/console/workspace/kanban?view=list";
        let p = page(&s, path, c).await;
        role_checks(&p, path, role, Some("/api/v1/workspace/kanban"));
        p.has("<h1>Kanban</h1>")
            .has(r#"<a href="/console/workspace/kanban">Board</a>"#)
            .has(r#"<a href="/console/workspace/kanban/k-1">Write docs</a>"#)
            .has(r#"<span class="badge todo">todo</span>"#)
            .has(r#"<td class="num">3</td>"#);

        let path = "/console/workspace/notes/note-1";
        let p = page(&s, path, c).await;
        role_checks(&p, path, role, None);
        p.has("<h1>Farm plan</h1>")
            .has("<dt>Content</dt><dd>Route through Nagrand</dd>")
            .has("<dt>Tags</dt><dd>farm, tbc</dd>")
            .has("<dt>Is pinned</dt><dd>yes</dd>")
            .has("mood")
            .has("extra-note-value");

        let path = "/console/workspace/calendar/ev-1";
        let p = page(&s, path, c).await;
        role_checks(&p, path, role, None);
        p.has("<h1>Raid night</h1>")
            .has("<dt>Date</dt><dd>2026-12-04</dd>")
            .has("<dt>Description</dt><dd>Bring flasks</dd>")
            .has("extra-ev-value");
        if *role != "viewer" {
            // a YYYY-MM-DD date is sent as the string the API stores
            p.has(r#"<input id="e-date" name="date" type="date" value="2026-12-04">"#)
                .has(r#"<textarea id="e-description" name="description" maxlength="10000">Bring flasks</textarea>"#);
        }

        let path = "/console/workspace/kanban/k-1";
        let p = page(&s, path, c).await;
        role_checks(&p, path, role, None);
        p.has("<h1>Write docs</h1>")
            .has("<dt>Due date</dt><dd>2026-12-24</dd>")
            .has("<dt>Order (position)</dt><dd>3</dd>")
            .has("extra-task-value");
        if *role != "viewer" {
            p.has(r#"<select id="e-status" name="status"><option value="todo" selected>todo</option><option value="in_progress">in progress</option>"#)
                .has(r#"id="e-order" name="order" type="number" value="3" data-type="int""#);
        }
    }
    s.stop().await;
}

async fn kanban_board_and_calendar_month(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let users = cookies(&s, &admin, "board").await;
    let base = "/api/v1/workspace";
    for (id, title, status, order) in [
        ("k-1", "Write docs", "todo", 2),
        ("k-2", "Fix the bug", "in_progress", 1),
        ("k-3", "Ship it", "done", 1),
        ("k-4", "Plan sprint", "todo", 1),
    ] {
        seed(
            &s,
            &admin,
            &format!("{base}/kanban"),
            json!({"id": id, "title": title, "status": status, "order": order}),
        )
        .await;
    }
    let today = chrono::Utc::now().date_naive();
    let today_s = today.format("%Y-%m-%d").to_string();
    let this_month = today.format("%Y-%m").to_string();
    seed(
        &s,
        &admin,
        &format!("{base}/calendar"),
        json!({"id": "ev-now", "title": "Standup today", "date": today_s}),
    )
    .await;
    seed(
        &s,
        &admin,
        &format!("{base}/calendar"),
        json!({"id": "ev-old", "title": "Old retro", "date": "2025-03-10"}),
    )
    .await;

    for (cookie, role) in &users {
        let c = Some(cookie.as_str());
        // ---- board ----
        let path = "/console/workspace/kanban";
        let p = page(&s, path, c).await;
        role_checks(&p, path, role, Some("/api/v1/workspace/kanban"));
        p.has(r#"<a href="/console/workspace/kanban" aria-current="page">Board</a>"#)
            .has(r#"<a href="/console/workspace/kanban?view=list">List</a>"#);
        let todo = part(&p.html, r#"data-column="todo""#, "</section>");
        assert!(
            todo.contains(r#"<a href="/console/workspace/kanban/k-1">Write docs</a>"#),
            "{todo}"
        );
        assert!(todo.contains("Plan sprint"), "{todo}");
        assert!(
            !todo.contains("Fix the bug") && !todo.contains("Ship it"),
            "{todo}"
        );
        // sorted by the tasks' order
        assert!(todo.find("Plan sprint") < todo.find("Write docs"), "{todo}");
        let doing = part(&p.html, r#"data-column="in_progress""#, "</section>");
        assert!(
            doing.contains("Fix the bug") && !doing.contains("Write docs"),
            "{doing}"
        );
        let done = part(&p.html, r#"data-column="done""#, "</section>");
        assert!(
            done.contains("Ship it") && !done.contains("Write docs"),
            "{done}"
        );
        if *role == "viewer" {
            assert!(!p.html.contains("rec-move"));
        } else {
            p.has(r#"<form class="rec-move" data-api="/api/v1/workspace/kanban/k-1" data-method="PATCH" data-on-success="reload">"#)
                .has(r#"<label for="mv-k-1">Move to</label>"#);
            // a card's move lists the other columns only
            let card = part(&p.html, r#"<select id="mv-k-1""#, "</select>");
            assert!(card.contains(r#"value="in_progress""#) && card.contains(r#"value="done""#));
            assert!(!card.contains(r#"value="todo""#), "{card}");
        }

        // ---- calendar month ----
        let path = format!("/console/workspace/calendar?month={this_month}");
        let p = page(&s, &path, c).await;
        role_checks(&p, &path, role, Some("/api/v1/workspace/calendar"));
        p.has(r#"<table class="rec-cal">"#)
            .has("<caption class=\"skip\">Events of ")
            .has(r#"<th scope="col"><abbr title="Monday">Mon</abbr></th>"#)
            .has(r#"<a href="/console/workspace/calendar?view=list">List</a>"#)
            .has(r#"rel="prev""#)
            .has(r#"rel="next""#)
            .lacks("Old retro");
        let cell = part(&p.html, &format!(r#"<td data-date="{today_s}""#), "</td>");
        assert!(cell.contains(r#"aria-current="date""#), "{cell}");
        assert!(cell.contains("Today"), "{cell}");
        assert!(
            cell.contains(r#"<a href="/console/workspace/calendar/ev-now">Standup today</a>"#),
            "{cell}"
        );
        // the first weekday column is Monday: the 1st sits after its weekday's blanks
        let first = today.with_day0(0).unwrap();
        let lead = first.weekday().num_days_from_monday() as usize;
        let week1 = part(&p.html, "<tbody>", "</tr>");
        assert_eq!(
            week1.matches(r#"<td class="rec-out"></td>"#).count(),
            lead,
            "{week1}"
        );
        // the default month is today's
        let p = page(&s, "/console/workspace/calendar", c).await;
        assert_page(&p, "calendar");
        p.has("Standup today").lacks("Old retro");
        // another month: its event, not this one's
        let p = page(&s, "/console/workspace/calendar?month=2025-03", c).await;
        assert_page(&p, "march 2025");
        p.has("<h2 id=\"h-month\">March 2025</h2>")
            .has(r#"href="/console/workspace/calendar?month=2025-02" rel="prev""#)
            .has(r#"href="/console/workspace/calendar?month=2025-04" rel="next""#)
            .lacks("Standup today")
            .lacks(r#"aria-current="date""#);
        let cell = part(&p.html, r#"<td data-date="2025-03-10""#, "</td>");
        assert!(cell.contains("Old retro"), "{cell}");
    }

    // the move form's PATCH (what console.js sends) moves the card
    let r = s
        .call(
            "PATCH",
            "/api/v1/workspace/kanban/k-1",
            Some(&admin),
            Some(json!({"status": "done"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let p = page(&s, "/console/workspace/kanban", Some(&users[2].0)).await;
    let done = part(&p.html, r#"data-column="done""#, "</section>");
    assert!(done.contains("Write docs"), "{done}");
    let todo = part(&p.html, r#"data-column="todo""#, "</section>");
    assert!(!todo.contains("Write docs"), "{todo}");

    // a month that is not YYYY-MM is the API's list-query error
    let p = page(
        &s,
        "/console/workspace/calendar?month=2025-13",
        Some(&users[0].0),
    )
    .await;
    assert_eq!(p.status, 400, "{}", p.html);
    p.has("WORKSPACE_INVALID_LIST_QUERY");
    s.stop().await;
}

async fn unknown_kinds_and_list_filters(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let users = cookies(&s, &admin, "filters").await;
    let cookie = Some(users[1].0.as_str());

    for (path, code) in [
        ("/console/resources/bogus", "RESOURCES_INVALID_KIND"),
        ("/console/resources/bogus/x1", "RESOURCES_INVALID_KIND"),
        ("/console/workspace/bogus", "WORKSPACE_INVALID_KIND"),
        ("/console/workspace/tasks/x1", "WORKSPACE_INVALID_KIND"),
    ] {
        let p = page(&s, path, cookie).await;
        assert_eq!(p.status, 400, "{path}: {}", p.html);
        p.has("This page cannot be shown").has(code).has("Unknown");
    }
    let p = page(&s, "/console/resources/licenses/missing", cookie).await;
    assert_eq!(p.status, 404);
    p.has("RESOURCE_NOT_FOUND");
    let p = page(&s, "/console/workspace/notes/missing", cookie).await;
    assert_eq!(p.status, 404);
    p.has("WORKSPACE_ENTITY_NOT_FOUND");
    let p = page(&s, "/console/resources/licenses?sort=bogus", cookie).await;
    assert_eq!(p.status, 400);
    p.has("RESOURCES_INVALID_LIST_QUERY").has("sort");

    let base = "/api/v1/resources";
    for body in [
        json!({"id": "lic-a", "key": "KEY-ALPHA", "status": "active"}),
        json!({"id": "lic-b", "key": "KEY-BRAVO", "status": "revoked"}),
        json!({"id": "lic-c", "key": "OTHER-CHARLIE", "status": "active"}),
    ] {
        seed(&s, &admin, &format!("{base}/licenses"), body).await;
    }
    let list = "/console/resources/licenses";
    // q search
    let p = page(&s, &format!("{list}?q=ALPHA"), cookie).await;
    assert_page(&p, "q");
    p.has("KEY-ALPHA")
        .lacks("KEY-BRAVO")
        .lacks("OTHER-CHARLIE")
        .has(r#"name="q" type="search" value="ALPHA""#);
    // a status filter (empty values mean "any")
    let p = page(&s, &format!("{list}?q=&status=revoked&sort="), cookie).await;
    assert_page(&p, "status");
    p.has("KEY-BRAVO")
        .lacks("KEY-ALPHA")
        .has(r#"<option value="revoked" selected>revoked</option>"#);
    // both, sorted
    let p = page(
        &s,
        &format!("{list}?q=KEY&status=active&sort=created_at&order=asc"),
        cookie,
    )
    .await;
    p.has("KEY-ALPHA").lacks("KEY-BRAVO").lacks("OTHER-CHARLIE");
    // filtered to nothing: the designed empty state with a way back
    let p = page(&s, &format!("{list}?status=expired"), cookie).await;
    assert_page(&p, "nothing");
    p.has("No license matches these filters.")
        .has(r#"<a href="/console/resources/licenses">Show all licenses</a>"#);
    // paging keeps the filters in the links
    let p = page(&s, &format!("{list}?status=active&limit=1"), cookie).await;
    p.has("Page 1 of 2");
    let next = part(
        &p.html,
        r#"<a href="/console/resources/licenses?"#,
        r#"" rel="next""#,
    )
    .replace("&#38;", "&")
    .replace("&amp;", "&");
    assert!(next.ends_with("?status=active&limit=1&page=2"), "{next}");

    // workspace list view keeps `view=list` through its filters
    for (id, title, status) in [("t-1", "Alpha task", "todo"), ("t-2", "Beta task", "done")] {
        seed(
            &s,
            &admin,
            "/api/v1/workspace/kanban",
            json!({"id": id, "title": title, "status": status}),
        )
        .await;
    }
    let p = page(
        &s,
        "/console/workspace/kanban?view=list&status=done",
        cookie,
    )
    .await;
    assert_page(&p, "kanban list filter");
    p.has("Beta task").lacks("Alpha task");
    let p = page(&s, "/console/workspace/kanban?view=list&q=alpha", cookie).await;
    p.has("Alpha task").lacks("Beta task");
    let p = page(
        &s,
        "/console/workspace/kanban?view=list&status=in_progress",
        cookie,
    )
    .await;
    p.has("No task matches these filters.")
        .has(r#"<a href="/console/workspace/kanban?view=list">Show all tasks</a>"#);
    s.stop().await;
}
