// Bot-Mox web console: the only script of our own (htmx does the rest).
//
// * <form data-api="/api/v1/..." data-method="POST"> is sent as JSON to the
//   API with the session's CSRF token; the API's error envelope is shown in
//   the form: `details.fields` paths next to their fields (aria-invalid and
//   a message), anything else in the form's alert region.
// * data-type on a field: int, number, json, bool, string (sent even when
//   empty), date (YYYY-MM-DD sent as midnight UTC, RFC 3339), lines (a
//   textarea sent as an array of its non-empty, trimmed lines; with
//   data-keys="a,b" each line is split on ":" into an object {a, b}) or
//   flag (a checkbox sent as true or false, whichever its state) or
//   epoch-ms (an <input type="date">, YYYY-MM-DD sent as the epoch
//   milliseconds of midnight UTC). An empty field (other than string) is
//   left out: the server defaults it, or keeps the stored value; with
//   data-empty="null" it is sent as null instead (clears the value).
// * An error path with no control of that exact name lands on the control
//   of the nearest named ancestor path (`list[3]` → `list`, `a.b[0].c` →
//   `a.b[0]` → `a.b`; e.g. a textarea of lines), its message prefixed with
//   the rest of the path (for a textarea of lines: "line 3 (language)").
// * data-tabs on a container: its [role=tab] buttons (aria-controls → the
//   [role=tabpanel]) switch on click; Left/Right/Home/End move between the
//   tabs. The server renders the first tab selected (aria-selected, tabindex)
//   and the other panels hidden. When a form's errors are shown, the tab
//   holding the first invalid field is selected and the field focused; tabs
//   holding errors get class "has-error" and a "(has errors)" text until
//   the errors are cleared.
// * <button data-preview="/api/v1/..." data-form="#form" data-send="config"
//   data-target="#pre" data-status="#p">: posts the form's current values
//   (disabled fields included; data-send keeps only these comma-separated
//   top-level keys) as JSON with the CSRF header; the answer's data.xml
//   goes into the target's text, a summary into data-status; errors land
//   next to the form's fields as on submit.
// * <button data-validate="/api/v1/..." (same data-form, data-send,
//   data-target)>: the same post; the answer's data.errors and
//   data.warnings ([{path?, message}]) are listed in the target.
// * data-on-success on the form: "reload", "redirect:<url>", "pairing"
//   (fill the pairing result panel), "goto-login" or "reveal:#field" (a
//   secret shown once: the answer's data[<field's data-reveal>] goes into
//   the read-only #field, its [data-reveal-panel] is shown, the form reset;
//   nothing reloads, so the value exists only in that field).
// * <button data-copy="#id"> copies a field (clipboard API, else selects it).
// * <button data-dialog="#id"> opens a <dialog>; [data-close] closes it
//   (Escape closes it too).
// * One EventSource per tab on /api/v1/vm-ops/events: elements with
//   data-live="agent command vm_job" re-fetch themselves (htmx) when an
//   event of that family arrives; #live shows "live" / "reconnecting".
(function () {
  "use strict";

  function csrfToken() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }

  // ---- forms → JSON API ----

  function setPath(obj, path, value) {
    var keys = path.split(".");
    var o = obj;
    for (var i = 0; i < keys.length - 1; i++) {
      if (typeof o[keys[i]] !== "object" || o[keys[i]] === null) o[keys[i]] = {};
      o = o[keys[i]];
    }
    o[keys[keys.length - 1]] = value;
  }

  // A lines textarea's value: the non-empty trimmed lines; with data-keys
  // each line "x:y" becomes {key1: "x", key2: "y"}.
  function linesValue(el) {
    var keys = (el.getAttribute("data-keys") || "").split(",").filter(function (k) { return k; });
    return el.value.split(/\r?\n/)
      .map(function (x) { return x.trim(); })
      .filter(function (x) { return x !== ""; })
      .map(function (x) {
        if (!keys.length) return x;
        var parts = x.split(":");
        var o = {};
        keys.forEach(function (k, i) { o[k] = (parts[i] || "").trim(); });
        return o;
      });
  }

  // withDisabled: include disabled fields too (previews of read-only pages).
  function formBody(form, withDisabled) {
    var body = {};
    var fields = form.querySelectorAll("input[name], select[name], textarea[name]");
    fields.forEach(function (el) {
      if (el.disabled && !withDisabled) return;
      var kind = el.getAttribute("data-type");
      if (kind === "flag") { setPath(body, el.name, el.checked); return; }
      if ((el.type === "checkbox" || el.type === "radio") && !el.checked) return;
      var v = el.value;
      if (v === "" && el.getAttribute("data-empty") === "null") { setPath(body, el.name, null); return; }
      if (v === "" && kind !== "string") return; // empty: let the server default it
      if (kind === "int") {
        var n = Number(v);
        v = Number.isInteger(n) ? n : v; // a non-number goes as text; the server says why
      } else if (kind === "number") {
        var x = Number(v);
        v = Number.isFinite(x) ? x : v; // a non-number goes as text; the server says why
      } else if (kind === "date") {
        // <input type="date"> gives YYYY-MM-DD: midnight UTC as RFC 3339
        v = /^\d{4}-\d{2}-\d{2}$/.test(v) ? v + "T00:00:00Z" : v;
      } else if (kind === "epoch-ms") {
        var ms = /^\d{4}-\d{2}-\d{2}$/.test(v) ? Date.parse(v + "T00:00:00Z") : NaN;
        v = Number.isFinite(ms) ? ms : v; // not a date: sent as text; the server says why
      } else if (kind === "json") {
        try { v = JSON.parse(v); } catch (e) { /* sent as text; the server says why */ }
      } else if (kind === "lines") {
        // a textarea of one value per line: a JSON array of the non-empty lines
        v = linesValue(el);
        if (!v.length) return;
      } else if (kind === "bool") {
        v = el.type === "checkbox" ? true : v === "true";
      }
      setPath(body, el.name, v);
    });
    return body;
  }

  function clearErrors(form) {
    form.querySelectorAll("[aria-invalid]").forEach(function (el) {
      el.removeAttribute("aria-invalid");
      var d = el.getAttribute("data-error-id");
      if (d) {
        var msg = document.getElementById(d);
        if (msg) msg.remove();
        el.removeAttribute("data-error-id");
        var described = (el.getAttribute("aria-describedby") || "").split(" ")
          .filter(function (x) { return x && x !== d; });
        if (described.length) el.setAttribute("aria-describedby", described.join(" "));
        else el.removeAttribute("aria-describedby");
      }
    });
    var alert = form.querySelector("[data-form-error]");
    if (alert) { alert.textContent = ""; alert.hidden = true; }
    document.querySelectorAll('[role="tab"].has-error').forEach(function (tab) {
      tab.classList.remove("has-error");
      var mark = tab.querySelector(".tab-error");
      if (mark) mark.remove();
    });
  }

  var errorSeq = 0;

  // "proxmox.url" or "items[0].name" → the control named that way, else the
  // control of the nearest named ancestor path ("items[0]", then "items":
  // e.g. a textarea of lines). Returns {el, rest}: rest is the part of the
  // path the control's name does not cover ("" for an exact match).
  function fieldFor(form, path) {
    var all = form.querySelectorAll("[name]");
    var up = /(\[\d+\]|\.[^.\[]*)$/;
    for (var p = path; p; p = p.replace(up, "")) {
      for (var i = 0; i < all.length; i++) {
        if (all[i].getAttribute("name") === p) return { el: all[i], rest: path.slice(p.length) };
      }
      if (p.replace(up, "") === p) break;
    }
    return null;
  }

  // ---- tabs ----

  function selectTab(tab, focus) {
    var list = tab.closest('[role="tablist"]');
    if (!list) return;
    list.querySelectorAll('[role="tab"]').forEach(function (t) {
      var on = t === tab;
      t.setAttribute("aria-selected", on ? "true" : "false");
      t.tabIndex = on ? 0 : -1;
      var panel = document.getElementById(t.getAttribute("aria-controls") || "");
      if (panel) panel.hidden = !on;
    });
    if (focus) tab.focus();
  }

  // The tab whose panel holds el (none: null).
  function tabOf(el) {
    var panel = el.closest('[role="tabpanel"]');
    if (!panel || !panel.id) return null;
    return document.querySelector('[role="tab"][aria-controls="' + panel.id + '"]');
  }

  function markTab(el) {
    var tab = tabOf(el);
    if (!tab || tab.classList.contains("has-error")) return;
    tab.classList.add("has-error");
    var mark = document.createElement("span");
    mark.className = "tab-error";
    mark.textContent = " (has errors)";
    tab.appendChild(mark);
  }

  document.addEventListener("click", function (ev) {
    var tab = ev.target.closest('[data-tabs] [role="tab"]');
    if (tab) selectTab(tab, false);
  });

  document.addEventListener("keydown", function (ev) {
    var tab = ev.target.closest ? ev.target.closest('[data-tabs] [role="tab"]') : null;
    if (!tab) return;
    var tabs = Array.prototype.slice.call(
      tab.closest('[role="tablist"]').querySelectorAll('[role="tab"]'));
    var i = tabs.indexOf(tab);
    var next = null;
    if (ev.key === "ArrowRight") next = tabs[(i + 1) % tabs.length];
    else if (ev.key === "ArrowLeft") next = tabs[(i - 1 + tabs.length) % tabs.length];
    else if (ev.key === "Home") next = tabs[0];
    else if (ev.key === "End") next = tabs[tabs.length - 1];
    if (!next) return;
    ev.preventDefault();
    selectTab(next, true);
  });

  function showError(form, envelope, status) {
    var err = (envelope && envelope.error) || {};
    var fields = (err.details && err.details.fields) || {};
    var unplaced = [];
    Object.keys(fields).forEach(function (path) {
      var found = fieldFor(form, path);
      if (!found) { unplaced.push(path + ": " + fields[path]); return; }
      var el = found.el;
      var id = "err-" + (++errorSeq);
      var msg = document.createElement("p");
      msg.className = "field-error";
      msg.id = id;
      var rest = found.rest.replace(/^\./, "");
      if (el.getAttribute("data-type") === "lines") {
        // "[2].language" of a textarea of lines → "line 3 (language)"
        rest = rest.replace(/^\[(\d+)\]\.?(.*)$/, function (m, i, sub) {
          return "line " + (Number(i) + 1) + (sub ? " (" + sub + ")" : "");
        });
      }
      msg.textContent = (rest ? rest + ": " : "") + fields[path];
      el.insertAdjacentElement("afterend", msg);
      markTab(el);
      el.setAttribute("aria-invalid", "true");
      el.setAttribute("data-error-id", id);
      var described = el.getAttribute("aria-describedby");
      el.setAttribute("aria-describedby", described ? described + " " + id : id);
    });
    var alert = form.querySelector("[data-form-error]");
    var text = err.message || ("Request failed (HTTP " + status + ")");
    if (unplaced.length) text += " — " + unplaced.join("; ");
    if (alert) {
      alert.textContent = text + (err.code ? " [" + err.code + "]" : "");
      alert.hidden = false;
    }
    var first = form.querySelector('[aria-invalid="true"]');
    if (first) {
      var tab = tabOf(first);
      if (tab) selectTab(tab, false);
      first.focus();
    } else if (alert) alert.focus();
  }

  function onSuccess(form, data) {
    var how = form.getAttribute("data-on-success") || "reload";
    if (how === "reload") { window.location.reload(); return; }
    if (how === "goto-login") { window.location.assign("/console/login"); return; }
    if (how.indexOf("redirect:") === 0) {
      var url = how.slice("redirect:".length);
      // {id} in the target is replaced by the answer's id
      if (data && data.data && data.data.id) url = url.replace("{id}", encodeURIComponent(data.data.id));
      window.location.assign(url);
      return;
    }
    if (how === "pairing") { showPairing(data && data.data); return; }
    if (how.indexOf("reveal:") === 0) {
      var target = document.querySelector(how.slice("reveal:".length));
      var d = data && data.data;
      if (!target || !d) return;
      target.value = d[target.getAttribute("data-reveal") || "token"] || "";
      var panel = target.closest("[data-reveal-panel]");
      if (panel) panel.hidden = false;
      form.reset();
      target.focus();
      target.select();
    }
  }

  function submitApi(form) {
    clearErrors(form);
    var method = (form.getAttribute("data-method") || "POST").toUpperCase();
    var button = form.querySelector('[type="submit"]');
    if (button) button.disabled = true;
    var init = {
      method: method,
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrfToken() }
    };
    if (method !== "GET" && method !== "DELETE") {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(formBody(form));
    }
    fetch(form.getAttribute("data-api"), init)
      .then(function (resp) {
        return resp.text().then(function (text) {
          var json = null;
          try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
          if (resp.status === 401) { window.location.assign("/console/login"); return; }
          if (!resp.ok) { showError(form, json, resp.status); return; }
          var dialog = form.closest("dialog");
          if (dialog && form.getAttribute("data-on-success") !== "pairing") dialog.close();
          onSuccess(form, json);
        });
      })
      .catch(function () {
        showError(form, { error: { message: "The server cannot be reached. Check the connection and try again." } }, 0);
      })
      .finally(function () { if (button) button.disabled = false; });
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-api")) return;
    ev.preventDefault();
    submitApi(form);
  });

  // ---- preview and validate: post a form's current values, show the answer ----

  function pickKeys(body, send) {
    if (!send) return body;
    var out = {};
    send.split(",").forEach(function (k) {
      if (k && Object.prototype.hasOwnProperty.call(body, k)) out[k] = body[k];
    });
    return out;
  }

  // show(data) gets the answer's data, or null when the request failed
  // (the errors are then shown in the form as on submit).
  function postFromForm(button, url, show) {
    var sel = button.getAttribute("data-form");
    var form = sel ? document.querySelector(sel) : button.closest("form");
    if (!form) return;
    clearErrors(form);
    button.disabled = true;
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "X-CSRF-Token": csrfToken()
      },
      body: JSON.stringify(pickKeys(formBody(form, true), button.getAttribute("data-send")))
    })
      .then(function (resp) {
        return resp.text().then(function (text) {
          var json = null;
          try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
          if (resp.status === 401) { window.location.assign("/console/login"); return; }
          if (!resp.ok) { show(null); showError(form, json, resp.status); return; }
          show((json && json.data) || {});
        });
      })
      .catch(function () {
        show(null);
        showError(form, { error: { message: "The server cannot be reached. Check the connection and try again." } }, 0);
      })
      .finally(function () { button.disabled = false; });
  }

  function showPreview(button, data) {
    var target = document.querySelector(button.getAttribute("data-target") || "#none");
    var status = document.querySelector(button.getAttribute("data-status") || "#none");
    if (!data) {
      if (status) status.textContent = "The answer file could not be built: see the errors above.";
      return;
    }
    if (target) target.textContent = data.xml || "";
    if (status) {
      var parts = [];
      if (data.computer_name) parts.push("computer " + data.computer_name);
      if (data.user_name) parts.push("user " + data.user_name);
      status.textContent = "Built" + (parts.length ? " for " + parts.join(", ") : "") + ".";
    }
  }

  function issueItem(kind, issue) {
    var li = document.createElement("li");
    li.className = kind;
    var badge = document.createElement("span");
    badge.className = "badge " + kind;
    badge.textContent = kind;
    li.appendChild(badge);
    li.appendChild(document.createTextNode(" "));
    if (issue.path) {
      var code = document.createElement("code");
      code.textContent = issue.path;
      li.appendChild(code);
      li.appendChild(document.createTextNode(": "));
    }
    li.appendChild(document.createTextNode(issue.message || ""));
    return li;
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  function showValidation(button, data) {
    var target = document.querySelector(button.getAttribute("data-target") || "#none");
    if (!target) return;
    target.textContent = "";
    var p = document.createElement("p");
    target.appendChild(p);
    if (!data) { p.textContent = "Could not validate: see the errors above."; return; }
    var errors = data.errors || [];
    var warnings = data.warnings || [];
    p.textContent = (errors.length ? "Not valid: " + plural(errors.length, "error") : "Valid") +
      (warnings.length ? ", " + plural(warnings.length, "warning") : "") + ".";
    if (!errors.length && !warnings.length) return;
    var ul = document.createElement("ul");
    ul.className = "issues";
    errors.forEach(function (i) { ul.appendChild(issueItem("error", i)); });
    warnings.forEach(function (i) { ul.appendChild(issueItem("warning", i)); });
    target.appendChild(ul);
  }

  document.addEventListener("click", function (ev) {
    var preview = ev.target.closest("[data-preview]");
    if (preview) {
      postFromForm(preview, preview.getAttribute("data-preview"), function (data) {
        showPreview(preview, data);
      });
      return;
    }
    var validate = ev.target.closest("[data-validate]");
    if (validate) {
      postFromForm(validate, validate.getAttribute("data-validate"), function (data) {
        showValidation(validate, data);
      });
    }
  });

  // ---- pairing result ----

  function showPairing(p) {
    var panel = document.getElementById("pairing-result");
    if (!panel || !p) return;
    document.getElementById("pairing-bundle").value = p.pairing_bundle;
    var link = document.getElementById("pairing-uri");
    link.href = p.pairing_uri;
    link.textContent = p.pairing_uri.length > 60 ? p.pairing_uri.slice(0, 57) + "…" : p.pairing_uri;
    document.getElementById("pairing-expires").textContent = p.pairing_expires_at;
    var agent = document.getElementById("pairing-agent");
    if (agent && p.agent) agent.href = "/console/agents/" + encodeURIComponent(p.agent.id);
    panel.hidden = false;
    document.getElementById("pairing-bundle").focus();
  }

  // ---- copy, dialogs, sign-out ----

  document.addEventListener("click", function (ev) {
    var copy = ev.target.closest("[data-copy]");
    if (copy) {
      var field = document.querySelector(copy.getAttribute("data-copy"));
      if (!field) return;
      var status = document.getElementById(copy.getAttribute("aria-describedby") || "");
      var done = function (msg) { if (status) status.textContent = msg; };
      field.focus();
      field.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(
          function () { done("Copied to the clipboard."); },
          function () { done("Selected: press Ctrl+C to copy."); });
      } else {
        done("Selected: press Ctrl+C to copy.");
      }
      return;
    }
    var opener = ev.target.closest("[data-dialog]");
    if (opener) {
      var dlg = document.querySelector(opener.getAttribute("data-dialog"));
      if (dlg && typeof dlg.showModal === "function") dlg.showModal();
      return;
    }
    var closer = ev.target.closest("[data-close]");
    if (closer) {
      var d = closer.closest("dialog");
      if (d) d.close();
    }
  });

  // ---- live updates ----

  function familyOf(eventType) {
    return eventType.split(".")[0];
  }

  function startLive() {
    var indicator = document.getElementById("live");
    if (!indicator || typeof EventSource === "undefined") return;
    var source = new EventSource("/api/v1/vm-ops/events", { withCredentials: true });
    var set = function (state, text) {
      indicator.setAttribute("data-state", state);
      indicator.textContent = text;
    };
    set("connecting", "connecting…");
    source.onopen = function () { set("live", "live"); };
    source.onerror = function () { set("reconnecting", "reconnecting…"); };
    var refresh = function (ev) {
      var family = familyOf(ev.type);
      document.querySelectorAll("[data-live]").forEach(function (el) {
        var wanted = el.getAttribute("data-live").split(" ");
        if (wanted.indexOf(family) >= 0 && window.htmx) window.htmx.trigger(el, "bmx:refresh");
      });
    };
    // EventSource hands a named event only to listeners of that name: these
    // are the event types the server records (agents, commands, VM jobs).
    var names = {
      agent: ["pairing_created", "registered", "online", "unreachable", "offline",
              "token_rotated", "public_key_registered", "revoked"],
      command: ["queued", "dispatched", "running", "progress", "succeeded", "failed",
                "cancelled", "cancel_requested", "requeued", "expired"],
      vm_job: ["created", "status", "item_step", "item_retry_requested",
               "artifact_recorded", "artifact_deleted"]
    };
    Object.keys(names).forEach(function (family) {
      names[family].forEach(function (what) {
        source.addEventListener(family + "." + what, refresh);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", startLive);
})();
