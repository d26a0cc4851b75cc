// Bot-Mox web console: the only script of our own (htmx does the rest).
//
// * <form data-api="/api/v1/..." data-method="POST"> is sent as JSON to the
//   API with the session's CSRF token; the API's error envelope is shown in
//   the form: `details.fields` paths next to their fields (aria-invalid and
//   a message), anything else in the form's alert region.
// * data-type on a field: int, number, json, bool, string (sent even when
//   empty) or date (YYYY-MM-DD sent as midnight UTC, RFC 3339).
// * data-on-success on the form: "reload", "redirect:<url>", "pairing"
//   (fill the pairing result panel) or "goto-login".
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

  function formBody(form) {
    var body = {};
    var fields = form.querySelectorAll("input[name], select[name], textarea[name]");
    fields.forEach(function (el) {
      if (el.disabled) return;
      if ((el.type === "checkbox" || el.type === "radio") && !el.checked) return;
      var v = el.value;
      var kind = el.getAttribute("data-type");
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
      } else if (kind === "json") {
        try { v = JSON.parse(v); } catch (e) { /* sent as text; the server says why */ }
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
  }

  var errorSeq = 0;

  function fieldFor(form, path) {
    // "proxmox.url" or "items[0].name" → the control named that way
    var all = form.querySelectorAll("[name]");
    for (var i = 0; i < all.length; i++) {
      if (all[i].getAttribute("name") === path) return all[i];
    }
    return null;
  }

  function showError(form, envelope, status) {
    var err = (envelope && envelope.error) || {};
    var fields = (err.details && err.details.fields) || {};
    var unplaced = [];
    Object.keys(fields).forEach(function (path) {
      var el = fieldFor(form, path);
      if (!el) { unplaced.push(path + ": " + fields[path]); return; }
      var id = "err-" + (++errorSeq);
      var msg = document.createElement("p");
      msg.className = "field-error";
      msg.id = id;
      msg.textContent = fields[path];
      el.insertAdjacentElement("afterend", msg);
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
    if (first) first.focus();
    else if (alert) alert.focus();
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
    if (how === "pairing") { showPairing(data && data.data); }
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
