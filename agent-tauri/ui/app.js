// Bot-Mox Agent window. No framework, no network: everything goes through
// the app's IPC commands (window.__TAURI__.core.invoke). Secrets typed here
// are sent once on save and never come back (targets show "saved").
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const VIEWS = ['pair', 'targets', 'status'];
  const STATE_TEXT = {
    not_paired: 'Not paired',
    connecting: 'Connecting…',
    online: 'Online',
    unreachable: 'Server unreachable',
    revoked: 'Revoked',
    paused: 'Paused',
    error: 'Error',
  };

  const tauri = window.__TAURI__;
  if (!tauri || !tauri.core) {
    $('app-error').textContent = 'This page must be opened inside the Bot-Mox Agent app.';
    return;
  }
  const invoke = (cmd, args) => tauri.core.invoke(cmd, args || {});
  const listen = (name, fn) => tauri.event.listen(name, (e) => fn(e.payload));

  let current = null; // current view name
  let agent = null; // last AgentView
  let targets = []; // last TargetView list
  let editing = null; // id of the target being edited

  // ------------------------------------------------------------ helpers
  function errText(e) {
    if (e && typeof e === 'object' && e.message) {
      return e.code ? e.message + ' (' + e.code + ')' : e.message;
    }
    return String(e);
  }

  function fmtTime(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    const secs = Math.round((Date.now() - d.getTime()) / 1000);
    let rel = '';
    if (secs >= 0 && secs < 90) rel = secs + ' s ago';
    else if (secs >= 90 && secs < 5400) rel = Math.round(secs / 60) + ' min ago';
    const t = d.toLocaleString();
    return rel ? t + ' (' + rel + ')' : t;
  }

  function timeEl(iso) {
    const t = document.createElement('time');
    t.dateTime = iso || '';
    t.textContent = fmtTime(iso);
    return t;
  }

  function busy(button, on, label) {
    if (on) {
      button.dataset.label = button.textContent;
      button.disabled = true;
      button.setAttribute('aria-busy', 'true');
      if (label) button.textContent = label;
    } else {
      button.disabled = false;
      button.removeAttribute('aria-busy');
      if (button.dataset.label) button.textContent = button.dataset.label;
    }
  }

  // ------------------------------------------------------------ views
  function showView(name, opts) {
    if (!VIEWS.includes(name)) name = 'status';
    current = name;
    for (const v of VIEWS) {
      const section = $('view-' + v);
      const nav = $('nav-' + v);
      const active = v === name;
      section.hidden = !active;
      if (active) nav.setAttribute('aria-current', 'page');
      else nav.removeAttribute('aria-current');
    }
    if (!(opts && opts.fromBackend)) invoke('set_view', { view: name }).catch(() => {});
    if (name === 'targets') loadTargets();
    if (name === 'status') loadStatus();
    if (opts && opts.focus) {
      const h = $('view-' + name).querySelector('h1');
      if (h) {
        h.tabIndex = -1;
        h.focus();
      }
    }
  }

  for (const v of VIEWS) {
    $('nav-' + v).addEventListener('click', () => showView(v, { focus: true }));
  }

  // ------------------------------------------------------------ status
  function renderAgent(v) {
    agent = v;
    const state = v.state;
    const conn = $('status-connection');
    conn.dataset.state = state;
    $('status-connection-text').textContent = v.state_label || STATE_TEXT[state] || state;
    const chip = $('header-state');
    chip.dataset.state = state;
    chip.textContent = STATE_TEXT[state] || state;

    $('status-server').textContent = v.server_url || 'not paired';
    $('status-agent-name').textContent = v.agent_name
      ? v.agent_name + (v.agent_id ? ' (' + v.agent_id + ')' : '')
      : v.agent_id || '—';
    const hb = $('status-last-heartbeat');
    hb.textContent = '';
    if (v.last_heartbeat_at) hb.appendChild(timeEl(v.last_heartbeat_at));
    else hb.textContent = 'never';

    const cc = $('status-current-command');
    // every running command (the agent runs several at once); an older
    // status has only current_command
    const running = (v.running_commands && v.running_commands.length)
      ? v.running_commands
      : (v.current_command ? [v.current_command] : []);
    if (running.length) {
      cc.textContent = running.map(function (c) {
        return c.command_type + ' (' + c.id + ', started ' + fmtTime(c.started_at) + ')';
      }).join('; ');
    } else {
      cc.textContent = 'none';
    }

    const le = $('status-last-error');
    if (v.last_error) {
      const m = v.last_error.message || '';
      le.textContent = m.startsWith(v.last_error.code + ':') ? m : v.last_error.code + ': ' + m;
    } else {
      le.textContent = '';
    }

    const list = $('status-recent-commands');
    list.textContent = '';
    for (const c of v.recent_commands || []) {
      const li = document.createElement('li');
      li.dataset.commandId = c.id;
      li.dataset.commandType = c.command_type;
      li.dataset.state = c.state;
      const badge = document.createElement('span');
      badge.className = 'badge badge-' + c.state;
      badge.textContent = c.state;
      const type = document.createElement('span');
      type.className = 'cmd-type';
      type.textContent = c.command_type;
      const when = timeEl(c.finished_at);
      when.className = 'cmd-time';
      const id = document.createElement('span');
      id.className = 'cmd-id';
      id.title = c.id;
      id.textContent = c.id.length > 13 ? c.id.slice(0, 8) + '…' + c.id.slice(-4) : c.id;
      li.append(badge, ' ', type, ' ', when, ' ', id);
      if (c.error_code) {
        const code = document.createElement('span');
        code.className = 'cmd-error';
        code.textContent = c.error_code;
        li.append(' ', code);
      }
      list.appendChild(li);
    }
    $('status-recent-empty').hidden = (v.recent_commands || []).length > 0;

    const pause = $('status-pause');
    const paused = state === 'paused' || v.paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    pause.disabled = paused ? !v.can_resume : !v.can_pause;
    let hint = '';
    if (v.managed_by_service) hint = 'The agent service on this computer runs the agent; Pause/Resume is not available here.';
    else if (state === 'revoked') hint = 'This agent was revoked in Bot-Mox. Pair it again to continue.';
    else if (state === 'not_paired') hint = 'Pair this computer first.';
    else if (v.next_retry_at) hint = 'Retrying at ' + fmtTime(v.next_retry_at) + '.';
    $('status-pause-hint').textContent = hint;
    if (v.notice) $('status-notice').textContent = v.notice;
  }

  function loadStatus() {
    invoke('status')
      .then((s) => {
        renderAgent(s.agent);
        $('status-config-dir').textContent = s.report.config_dir;
        $('status-log-dir').textContent = s.report.log_dir;
        $('status-secret-store').textContent = s.report.secret_store;
        const srv = s.report.server;
        const tr = $('status-server-transport');
        if (!srv) tr.textContent = '—';
        else if (srv.cleartext_http) {
          tr.textContent = 'UNENCRYPTED http://' +
            (srv.allow_insecure_http ? ' (allowed explicitly at pairing)' : ' (loopback)');
          tr.className = 'warning';
        } else {
          tr.textContent = 'https, ' + (srv.tls === 'pinned' ? 'certificate pinned' : 'system CA trust');
          tr.className = '';
        }
      })
      .catch((e) => {
        $('status-notice').textContent = errText(e);
      });
  }

  $('status-pause').addEventListener('click', () => {
    const btn = $('status-pause');
    const resume = btn.textContent === 'Resume';
    busy(btn, true, resume ? 'Resuming…' : 'Pausing…');
    invoke(resume ? 'resume' : 'pause')
      .then((v) => {
        busy(btn, false);
        renderAgent(v);
      })
      .catch((e) => {
        busy(btn, false);
        $('status-notice').textContent = errText(e);
        if (agent) renderAgent(agent);
      });
  });

  $('status-open-logs').addEventListener('click', () => {
    invoke('open_logs')
      .then((dir) => {
        $('status-notice').textContent = 'Opened ' + dir;
      })
      .catch((e) => {
        $('status-notice').textContent = errText(e);
      });
  });

  $('status-diagnostics').addEventListener('click', () => {
    const btn = $('status-diagnostics');
    busy(btn, true, 'Creating…');
    invoke('create_diagnostics')
      .then((out) => {
        busy(btn, false);
        $('status-notice').textContent = 'Diagnostic bundle saved to ' + out.path;
      })
      .catch((e) => {
        busy(btn, false);
        $('status-notice').textContent = errText(e);
      });
  });

  function showAbout(about) {
    $('about-app').textContent = about.app;
    $('about-core').textContent = about.agent_core;
    $('about-protocol').textContent = about.protocol;
    const d = $('about-dialog');
    if (typeof d.showModal === 'function') d.showModal();
    else d.setAttribute('open', '');
  }
  $('status-about').addEventListener('click', () => {
    invoke('app_info').then((i) => showAbout(i.about)).catch(() => {});
  });

  // ------------------------------------------------------------ pairing
  function pairArgs() {
    const url = $('pair-server-url').value.trim();
    return {
      input: $('pair-input').value,
      serverUrl: url || null,
      allowInsecureHttp: $('pair-allow-insecure-http').checked,
    };
  }

  function clearPairMessages() {
    $('pair-error').textContent = '';
    $('pair-result').textContent = '';
  }

  function renderPreview(p) {
    $('pair-preview-server').textContent = p.server_url || '(enter the server URL)';
    $('pair-preview-fingerprint').textContent = p.cert_fingerprint
      ? p.cert_fingerprint + ' (pinned)'
      : 'Checked against the system\'s trusted certificate authorities';
    $('pair-preview-code').textContent = p.code_preview;
    const w = $('pair-preview-warning');
    if (p.replaces) {
      w.textContent = 'This computer is already paired as ' + (p.replaces.agent_name || p.replaces.agent_id) +
        ' with ' + p.replaces.server_url + '. Pairing again replaces that identity.';
      w.hidden = false;
    } else {
      w.textContent = '';
      w.hidden = true;
    }
    $('pair-preview-box').hidden = false;
  }

  function preview() {
    clearPairMessages();
    return invoke('preview_pairing', pairArgs())
      .then((p) => {
        renderPreview(p);
        return p;
      })
      .catch((e) => {
        $('pair-preview-box').hidden = true;
        $('pair-error').textContent = errText(e);
        throw e;
      });
  }

  $('pair-preview').addEventListener('click', () => {
    preview().catch(() => {});
  });

  $('pair-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const btn = $('pair-submit');
    preview()
      .then(() => {
        busy(btn, true, 'Pairing…');
        return invoke('pair', pairArgs());
      })
      .then((out) => {
        busy(btn, false);
        $('pair-input').value = '';
        $('pair-result').textContent = 'Paired as ' + out.agent_name + ' with ' + out.server_url + '.';
        $('status-notice').textContent = 'Paired as ' + out.agent_name + ' with ' + out.server_url + '.';
        showView('status', { focus: true });
      })
      .catch((e) => {
        busy(btn, false);
        if (e && e.code) $('pair-error').textContent = errText(e);
      });
  });

  function fillPairInput(input) {
    if (!input) return;
    $('pair-input').value = input;
    preview().catch(() => {});
  }

  // ------------------------------------------------------------ targets
  const secretHint = (flag, what) =>
    flag === 'saved' ? 'A ' + what + ' is saved. Leave empty to keep it.' : '';

  function syncAuth() {
    const token = $('target-auth').value === 'token';
    $('auth-token-fields').hidden = !token;
    $('auth-password-fields').hidden = token;
  }

  function syncTls() {
    const v = $('target-tls').value;
    $('tls-fingerprint-field').hidden = v !== 'fingerprint';
    $('target-tls-hint').textContent = v === 'insecure'
      ? 'Anyone on the network path could read or change the traffic to Proxmox.'
      : v === 'ca' ? 'For certificates from a public or company CA.' : '';
  }

  $('target-auth').addEventListener('change', syncAuth);
  $('target-tls').addEventListener('change', syncTls);

  function resetForm() {
    editing = null;
    $('target-form').reset();
    $('target-id').readOnly = false;
    $('target-form-title').textContent = 'Add a target';
    $('target-token-secret-hint').textContent = '';
    $('target-password-hint').textContent = '';
    $('target-error').textContent = '';
    syncAuth();
    syncTls();
  }

  function editTarget(t) {
    resetForm();
    editing = t.id;
    $('target-form-title').textContent = 'Edit ' + t.id;
    $('target-id').value = t.id;
    $('target-id').readOnly = true;
    $('target-url').value = t.url;
    $('target-node').value = t.node;
    $('target-iso-storage').value = t.iso_storage || '';
    $('target-auth').value = t.auth;
    $('target-token-id').value = t.token_id || '';
    $('target-username').value = t.username || '';
    $('target-tls').value = t.tls_choice;
    $('target-fingerprint').value = t.fingerprint || '';
    $('target-ssh-host').value = (t.ssh && t.ssh.host) || '';
    $('target-ssh-user').value = (t.ssh && t.ssh.user) || '';
    $('target-allow-ssh-override').checked = !!t.allow_ssh_override;
    $('target-allow-host-level-config').checked = !!t.allow_host_level_config;
    $('target-token-secret-hint').textContent = secretHint(t.secrets.token_secret, 'token secret');
    $('target-password-hint').textContent = secretHint(t.secrets.password, 'password');
    $('target-ssh-key').placeholder = t.secrets.ssh_private_key === 'saved'
      ? 'A key is saved. Leave empty to keep it.'
      : '-----BEGIN OPENSSH PRIVATE KEY-----';
    syncAuth();
    syncTls();
    $('target-url').focus();
  }

  function renderTargets(list) {
    targets = list;
    const ul = $('targets-list');
    ul.textContent = '';
    for (const t of list) {
      const li = document.createElement('li');
      li.className = 'target';
      li.dataset.targetId = t.id;
      const info = document.createElement('div');
      info.className = 'target-info';
      const name = document.createElement('strong');
      name.textContent = t.id + (t.active ? ' (active)' : '');
      const meta = document.createElement('span');
      meta.className = 'muted';
      const auth = t.auth === 'token' ? 'token ' + (t.token_id || '') : 'user ' + (t.username || '');
      const secretFlag = t.auth === 'token' ? t.secrets.token_secret : t.secrets.password;
      meta.textContent = t.url + ' · node ' + t.node + ' · ' + auth + ' (secret ' + secretFlag.replace('_', ' ') +
        ') · TLS ' + t.tls + (t.ssh ? ' · SSH ' + (t.ssh.user || '') + '@' + (t.ssh.host || 'proxmox host') +
        (t.secrets.ssh_private_key === 'saved' ? ' (key saved)' : '') : '');
      info.append(name, meta);
      if (t.insecure) {
        const w = document.createElement('span');
        w.className = 'warning';
        w.textContent = 'Certificate not verified';
        info.append(w);
      }
      if (t.allow_host_level_config) {
        const w = document.createElement('span');
        w.className = 'warning';
        w.textContent = 'Host-level VM settings allowed';
        info.append(w);
      }
      if (t.allow_ssh_override) {
        const w = document.createElement('span');
        w.className = 'warning';
        w.textContent = 'Commands may choose the SSH host';
        info.append(w);
      }
      const actions = document.createElement('div');
      actions.className = 'target-actions';
      const mk = (cls, text, fn) => {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = cls;
        b.textContent = text;
        b.setAttribute('aria-label', text + ' ' + t.id);
        b.addEventListener('click', () => fn(b));
        return b;
      };
      actions.append(
        mk('target-edit', 'Edit', () => editTarget(t)),
        mk('target-test', 'Test', (b) => testTarget(t.id, b)),
        mk('target-remove', 'Remove', (b) => removeTarget(t.id, b)),
      );
      li.append(info, actions);
      ul.appendChild(li);
    }
    $('targets-empty').hidden = list.length > 0;
  }

  function loadTargets() {
    return invoke('list_targets')
      .then(renderTargets)
      .catch((e) => {
        $('targets-notice').textContent = errText(e);
      });
  }

  function testTarget(id, button) {
    const out = $('target-test-result');
    out.className = 'test-result';
    out.textContent = 'Testing ' + id + '…';
    busy(button, true, 'Testing…');
    invoke('test_target', { id })
      .then((r) => {
        busy(button, false);
        out.className = 'test-result ' + (r.ok ? 'ok' : 'failed');
        out.textContent = '';
        const p = document.createElement('span');
        p.textContent = id + ': ' + (r.proxmox.ok ? r.proxmox.message : 'Proxmox failed: ' + r.proxmox.message);
        const s = document.createElement('span');
        s.textContent = r.ssh.message;
        out.append(p, document.createElement('br'), s);
      })
      .catch((e) => {
        busy(button, false);
        out.className = 'test-result failed';
        out.textContent = errText(e);
      });
  }

  function removeTarget(id, button) {
    busy(button, true, 'Removing…');
    invoke('remove_target', { id })
      .then(() => {
        if (editing === id) resetForm();
        $('targets-notice').textContent = 'Removed ' + id + ' and its saved secrets.';
        return loadTargets();
      })
      .catch((e) => {
        busy(button, false);
        $('targets-notice').textContent = errText(e);
      });
  }

  function opt(v) {
    const s = v.trim();
    return s ? s : null;
  }

  $('target-cancel').addEventListener('click', resetForm);

  $('target-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    $('target-error').textContent = '';
    const auth = $('target-auth').value;
    const target = {
      id: $('target-id').value.trim(),
      url: $('target-url').value.trim(),
      node: $('target-node').value.trim(),
      auth,
      token_id: auth === 'token' ? opt($('target-token-id').value) : null,
      username: auth === 'password' ? opt($('target-username').value) : null,
      tls: $('target-tls').value,
      fingerprint: opt($('target-fingerprint').value),
      ssh_host: opt($('target-ssh-host').value),
      ssh_user: opt($('target-ssh-user').value),
      allow_ssh_override: $('target-allow-ssh-override').checked,
      allow_host_level_config: $('target-allow-host-level-config').checked,
      iso_storage: $('target-iso-storage').value.trim(),
    };
    const key = $('target-ssh-key').value;
    const secrets = {
      token_secret: auth === 'token' ? opt($('target-token-secret').value) : null,
      password: auth === 'password' ? opt($('target-password').value) : null,
      ssh_private_key: key.trim() ? key : null,
    };
    const btn = $('target-save');
    busy(btn, true, 'Saving…');
    invoke('save_target', { target, secrets })
      .then((out) => {
        busy(btn, false);
        // the secrets leave the page with this call and are not kept here
        $('target-token-secret').value = '';
        $('target-password').value = '';
        $('target-ssh-key').value = '';
        const msgs = [(out.created ? 'Added ' : 'Saved ') + out.target.id + '.'].concat(out.warnings || []);
        if (agent && agent.managed_by_service) msgs.push('The agent service picks up the change when it restarts.');
        resetForm();
        $('targets-notice').textContent = msgs.join(' ');
        return loadTargets();
      })
      .catch((e) => {
        busy(btn, false);
        $('target-error').textContent = errText(e);
      });
  });

  // ------------------------------------------------------------ events
  listen('agent-view', renderAgent);
  listen('navigate', (p) => showView(p.view, { fromBackend: true }));
  listen('pair-input', (p) => fillPairInput(p.input));
  listen('notice', (p) => {
    $('status-notice').textContent = p.message;
  });
  listen('about', showAbout);

  // refresh relative times
  setInterval(() => {
    if (agent && current === 'status') renderAgent(agent);
  }, 15000);

  resetForm();
  invoke('app_info')
    .then((info) => {
      $('status-versions').textContent = 'app ' + info.about.app + ', agent-core ' + info.about.agent_core +
        ', protocol ' + info.about.protocol;
      renderAgent(info.agent);
      if (info.notice) $('status-notice').textContent = info.notice;
      showView(info.view, { fromBackend: true });
      if (info.pending_pair_input) fillPairInput(info.pending_pair_input);
    })
    .catch((e) => {
      $('app-error').textContent = errText(e);
      showView('status', { fromBackend: true });
    });
})();
