// NetSel's registrar UI: the services and the instances of the one
// selected, kept live by the registrar's blocking queries.
//
// Registry data (names, tags, meta, reasons, check output) comes from
// whoever registers: it is only ever written with textContent or as an
// attribute value, never parsed as markup.
'use strict';

(() => {
  const TOKEN_KEY = 'netsel.token';
  const INDEX_HEADER = 'X-Netsel-Index';
  const WAIT = '30s';
  const STATES = new Set(['passing', 'warning', 'critical', 'maintenance', 'draining']);
  // The API, relative to the page (/ui/ -> /v1/), so a proxy may mount
  // the registrar under a path.
  const API = new URL('../v1/', document.baseURI);

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $('status'), forget: $('forget'), error: $('error'),
    auth: $('auth'), authError: $('auth-error'), token: $('token'),
    panes: $('panes'), filter: $('filter'),
    services: $('services').tBodies[0], servicesCaption: $('services-caption'),
    servicesEmpty: $('services-empty'),
    detail: $('detail'), instances: $('instances').tBodies[0],
    instancesCaption: $('instances-caption'), instancesEmpty: $('instances-empty'),
    note: $('detail-note'), vip: $('info-vip'), ports: $('info-ports'), created: $('info-created'),
  };

  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let selected = new URLSearchParams(location.search).get('service') || '';
  let list = null; // the last answer of GET /v1/services
  let runs = []; // AbortControllers of the running loops
  let detailRun = null;

  // --- helpers --------------------------------------------------------

  // setText writes s into node when it differs, so an unchanged cell is
  // not rewritten (and not announced again).
  function setText(node, s) {
    s = String(s);
    if (node.textContent !== s) node.textContent = s;
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  function setStatus(s) {
    setText(ui.status, s);
  }

  function setError(s) {
    setText(ui.error, s);
    show(ui.error, s !== '');
  }

  function pause(ms, signal) {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });
  }

  function backoff(failures) {
    const ms = Math.min(1000 * 2 ** (failures - 1), 15000);
    return ms / 2 + Math.random() * ms / 2;
  }

  function fmtPorts(ports) {
    return (ports || []).map((p) => `${p.name} ${p.port}/${p.protocol}`).join(', ');
  }

  function fmtAddr(addr, port) {
    return String(addr).includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
  }

  function fmtAge(since) {
    const s = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 1000));
    if (!Number.isFinite(s)) return '';
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor(s / 60) % 60}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor(s / 3600) % 24}h`;
  }

  // --- the API --------------------------------------------------------

  // get sends GET path?params to the API with the token, and returns the
  // status, the JSON body (null when there is none) and the index header.
  async function get(path, params, signal) {
    const url = new URL(path, API);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(url, { headers, signal, cache: 'no-store', credentials: 'omit' });
    let body = null;
    try {
      body = await res.json();
    } catch {
      body = null;
    }
    const index = Number.parseInt(res.headers.get(INDEX_HEADER) || '0', 10) || 0;
    const retry = Number.parseInt(res.headers.get('Retry-After') || '0', 10) || 0;
    return { status: res.status, body, index, retry };
  }

  // follow asks path, then asks again with ?index= of the last answer,
  // which the registrar holds until something changed; each answer goes to
  // onAnswer. It retries with backoff on failures and stops on abort or
  // when a token is needed.
  async function follow(signal, path, params, onAnswer) {
    let index = 0;
    let failures = 0;
    while (!signal.aborted) {
      const started = Date.now();
      let r;
      try {
        r = await get(path, index ? { ...params, index, wait: WAIT } : params, signal);
      } catch {
        if (signal.aborted) return;
        failures++;
        setStatus('Connection lost; retrying…');
        await pause(backoff(failures), signal);
        continue;
      }
      if (signal.aborted) return;
      if (r.status === 401 || r.status === 403) {
        needToken(r);
        return;
      }
      if (r.status >= 500 || r.status === 429) {
        failures++;
        setStatus('Registrar unavailable; retrying…');
        setError(`The registrar answered ${r.status}${r.body && r.body.error ? ': ' + r.body.error : ''}`);
        await pause(Math.max(backoff(failures), r.retry * 1000), signal);
        continue;
      }
      failures = 0;
      setStatus('Live');
      if (r.status >= 400 && r.status !== 404) {
        // A request the registrar will refuse again (a bad name in the
        // page's address): onAnswer shows why; stop asking.
        onAnswer(r);
        return;
      }
      setError('');
      onAnswer(r);
      const same = r.index === index;
      index = r.index;
      // An answer at once with nothing new (no index header, or an index
      // ahead of the registrar's): do not spin.
      if (same && Date.now() - started < 200) await pause(1000, signal);
    }
  }

  // --- services ------------------------------------------------------

  // syncRows makes tbody's rows those of items, in order, keyed by key:
  // rows of items gone are removed first, so a kept row is never moved
  // (moving it would drop the keyboard focus inside it).
  function syncRows(tbody, items, key, make, update) {
    const want = new Set(items.map(key));
    for (const tr of [...tbody.rows]) {
      if (!want.has(tr.dataset.key)) tr.remove();
    }
    const have = new Map([...tbody.rows].map((tr) => [tr.dataset.key, tr]));
    items.forEach((it, i) => {
      const k = key(it);
      let tr = have.get(k);
      if (!tr) {
        tr = make();
        tr.dataset.key = k;
        tbody.insertBefore(tr, tbody.rows[i] || null);
      }
      update(tr, it);
    });
  }

  // cell adds a cell labelled label (shown on narrow screens) to tr; the
  // first cell of a row is its header.
  function cell(tr, label, cls) {
    let td;
    if (tr.cells.length === 0) {
      td = document.createElement('th');
      td.scope = 'row';
      tr.append(td);
    } else {
      td = tr.insertCell();
    }
    td.dataset.label = label;
    if (cls) td.className = cls;
    return td;
  }

  function makeServiceRow() {
    const tr = document.createElement('tr');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'svc';
    b.addEventListener('click', () => select(tr.dataset.key));
    cell(tr, 'Name').append(b);
    cell(tr, 'VIP');
    cell(tr, 'Ports');
    cell(tr, 'Instances', 'num');
    return tr;
  }

  function updateServiceRow(tr, s) {
    const [name, vip, ports, count] = tr.cells;
    const b = name.firstChild;
    setText(b, s.name);
    const current = s.name === selected;
    tr.classList.toggle('selected', current);
    if (current) b.setAttribute('aria-current', 'true');
    else b.removeAttribute('aria-current');
    setText(vip, s.vip);
    setText(ports, fmtPorts(s.ports));
    setText(count, s.instances);
  }

  function renderList() {
    const all = (list && list.services) || [];
    const q = ui.filter.value.trim().toLowerCase();
    const shown = q ? all.filter((s) => s.name.toLowerCase().includes(q)) : all;
    syncRows(ui.services, shown, (s) => s.name, makeServiceRow, updateServiceRow);
    setText(ui.servicesCaption, shown.length === all.length
      ? `Services (${all.length})`
      : `Services (${shown.length} of ${all.length})`);
    let empty = '';
    if (list && all.length === 0) empty = 'No services registered.';
    else if (all.length > 0 && shown.length === 0) empty = `No service name contains “${ui.filter.value.trim()}”.`;
    setText(ui.servicesEmpty, empty);
    show(ui.servicesEmpty, empty !== '');
  }

  // --- the selected service ------------------------------------------

  function select(name) {
    if (name === selected && detailRun) return;
    selected = name;
    const url = new URL(location.href);
    url.searchParams.set('service', name);
    history.replaceState(null, '', url);
    renderList();
    syncRows(ui.instances, [], () => '', null, null);
    setText(ui.instancesCaption, `Instances of ${name}`);
    for (const n of [ui.vip, ui.ports, ui.created]) setText(n, '');
    show(ui.note, false);
    show(ui.detail, true);
    if (detailRun) detailRun.abort();
    detailRun = new AbortController();
    runs.push(detailRun);
    follow(detailRun.signal, `services/${encodeURIComponent(name)}`, { state: 'any' }, renderDetail);
    if (window.matchMedia('(max-width: 75em)').matches) ui.detail.scrollIntoView({ block: 'start' });
  }

  function makeInstanceRow() {
    const tr = document.createElement('tr');
    cell(tr, 'ID', 'id');
    cell(tr, 'Address');
    cell(tr, 'Weight', 'num');
    cell(tr, 'Zone');
    cell(tr, 'Tags, meta', 'tags');
    cell(tr, 'State');
    cell(tr, 'Age', 'age');
    return tr;
  }

  function updateInstanceRow(tr, in_) {
    const [id, addr, weight, zone, tags, state, age] = tr.cells;
    setText(id, in_.id);
    setText(addr, fmtAddr(in_.address, in_.port));
    setText(weight, in_.weight);
    setText(zone, in_.zone || '—');
    const labels = [...(in_.tags || []).map((t) => ['tag', t]),
      ...Object.entries(in_.meta || {}).map(([k, v]) => ['meta', `${k}=${v}`])];
    const sig = JSON.stringify(labels);
    if (tags.dataset.sig !== sig) {
      tags.dataset.sig = sig;
      tags.replaceChildren(...labels.map(([cls, text]) => {
        const s = document.createElement('span');
        s.className = cls;
        s.textContent = text;
        return s;
      }));
    }
    const st = STATES.has(in_.state) ? in_.state : 'unknown';
    const detail = in_.reason || in_.output || '';
    const stateSig = JSON.stringify([in_.state, detail]);
    if (state.dataset.sig !== stateSig) {
      state.dataset.sig = stateSig;
      const badge = document.createElement('span');
      badge.className = `state state-${st}`;
      badge.textContent = in_.state;
      const parts = [badge];
      if (detail) {
        const why = document.createElement('span');
        why.className = 'why';
        why.textContent = detail;
        parts.push(why);
      }
      state.replaceChildren(...parts);
    }
    age.dataset.since = in_.registered;
    setText(age, fmtAge(in_.registered));
  }

  function renderDetail(r) {
    if (r.status === 404 || !r.body || !Array.isArray(r.body.instances)) {
      syncRows(ui.instances, [], () => '', null, null);
      for (const n of [ui.vip, ui.ports, ui.created]) setText(n, '');
      setText(ui.note, r.status === 404
        ? `Service ${selected} does not exist; this view updates when it is registered.`
        : `The registrar answered ${r.status}${r.body && r.body.error ? ': ' + r.body.error : ''}`);
      show(ui.note, true);
      show(ui.instancesEmpty, false);
      return;
    }
    const v = r.body;
    setText(ui.vip, v.vip);
    setText(ui.ports, fmtPorts(v.ports) || '—');
    setText(ui.created, v.created ? new Date(v.created).toLocaleString() : '');
    setText(ui.instancesCaption, `Instances of ${v.name} (${v.instances.length}${v.next ? '+' : ''})`);
    setText(ui.note, v.next ? `Showing the first ${v.instances.length} instances.` : '');
    show(ui.note, Boolean(v.next));
    syncRows(ui.instances, v.instances, (x) => x.id, makeInstanceRow, updateInstanceRow);
    show(ui.instancesEmpty, v.instances.length === 0);
  }

  function tickAges() {
    for (const td of ui.instances.querySelectorAll('td.age')) {
      if (td.dataset.since) setText(td, fmtAge(td.dataset.since));
    }
  }

  // --- token ----------------------------------------------------------

  function stop() {
    for (const c of runs) c.abort();
    runs = [];
    detailRun = null;
  }

  // needToken stops the loops, hides the data and asks for a token, with
  // the registrar's answer when the token sent was refused.
  function needToken(r) {
    const refused = token !== '';
    stop();
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    show(ui.panes, false);
    show(ui.forget, false);
    setError('');
    setStatus('Token needed');
    const why = r.body && r.body.error ? r.body.error : `HTTP ${r.status}`;
    setText(ui.authError, refused ? `The registrar refused the token: ${why}` : '');
    show(ui.auth, true);
    ui.token.focus();
  }

  function start() {
    stop();
    show(ui.auth, false);
    show(ui.panes, true);
    show(ui.forget, token !== '');
    setStatus('Connecting…');
    const c = new AbortController();
    runs.push(c);
    follow(c.signal, 'services', {}, (r) => {
      list = r.body;
      renderList();
    });
    if (selected) select(selected);
  }

  ui.auth.addEventListener('submit', (e) => {
    e.preventDefault();
    token = ui.token.value.trim();
    ui.token.value = '';
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    start();
  });

  ui.forget.addEventListener('click', () => {
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    start();
  });

  ui.filter.addEventListener('input', renderList);

  // A hidden tab holds no blocking queries open (browsers allow few
  // connections to one host); it catches up when shown again.
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) stop();
    else if (ui.auth.hidden) start();
  });

  setInterval(tickAges, 1000);
  start();
})();
