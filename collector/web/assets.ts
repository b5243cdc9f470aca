/**
 * The pages' one script and one stylesheet, served as /static/app.js and
 * /static/app.css. They live in strings so the collector is one compiled tree
 * with nothing to copy at build time. The script never inserts data as
 * markup: every value goes in through textContent, setAttribute or the
 * properties of elements it creates (findings carry attacker-chosen strings),
 * and links it builds are same-origin paths with encoded parts. No inline
 * styles either: the pages' Content-Security-Policy allows only these files.
 *
 * The script is plain ES2022 without template literals, so it can sit in a
 * String.raw literal unchanged.
 */

export const APP_JS = String.raw`'use strict';
(() => {
  const SEVERITIES = ['critical', 'warning', 'info'];
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const body = document.body;

  // ------------------------------------------------------------ DOM helpers

  /** An element with attributes (null/undefined/false skipped) and children (strings become text nodes). */
  function h(tag, attrs, ...children) {
    return fill(document.createElement(tag), attrs, children);
  }
  function s(tag, attrs, ...children) {
    return fill(document.createElementNS(SVG_NS, tag), attrs, children);
  }
  function fill(node, attrs, children) {
    if (attrs) {
      for (const k of Object.keys(attrs)) {
        const v = attrs[k];
        if (v === null || v === undefined || v === false) continue;
        node.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(typeof c === 'object' ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  const byId = (id) => document.getElementById(id);
  const enc = encodeURIComponent;

  // ------------------------------------------------------------ formatting

  const finite = (v) => typeof v === 'number' && Number.isFinite(v);
  const NF = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
  const num = (v) => (finite(v) ? NF.format(v) : '—');
  /** "1 window", "3 windows" (as common/wording.ts's plural, with thousands separated). */
  const plural = (n, singular, pluralForm) => num(n) + ' ' + (n === 1 ? singular : (pluralForm || singular + 's'));
  function bytes(v) {
    if (!finite(v)) return '—';
    if (v < 1024) return v + ' B';
    const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let x = v;
    let u = -1;
    do { x /= 1024; u++; } while (x >= 1024 && u < units.length - 1);
    return x.toFixed(1) + ' ' + units[u];
  }
  /** ISO or epoch ms as "YYYY-MM-DD HH:MM:SS" in UTC (milliseconds only when not zero). */
  function utc(value) {
    if (value === null || value === undefined || value === '') return '—';
    const ms = typeof value === 'number' ? value : Date.parse(value);
    if (!Number.isFinite(ms)) return String(value);
    return new Date(ms).toISOString().replace('T', ' ').replace(/(\.000)?Z$/, '');
  }
  function ago(iso) {
    const ms = Date.now() - Date.parse(iso);
    if (!Number.isFinite(ms)) return '';
    const sec = Math.max(0, Math.round(ms / 1000));
    if (sec < 60) return sec + ' s ago';
    if (sec < 3600) return Math.floor(sec / 60) + ' min ago';
    if (sec < 86400) return Math.floor(sec / 3600) + ' h ago';
    return Math.floor(sec / 86400) + ' d ago';
  }
  const endpoint = (a, p) => (String(a).includes(':') ? '[' + a + ']:' + p : a + ':' + p);
  function subject(f) {
    let flow = '';
    if (f.flow && typeof f.flow === 'object') {
      const x = f.flow;
      flow = x.proto === 'tcp' || x.proto === 'udp'
        ? x.proto + ' ' + endpoint(x.client, x.clientPort) + ' → ' + endpoint(x.server, x.serverPort)
        : x.proto + ' ' + x.client + ' → ' + x.server;
      // The service: the server name TLS, HTTP or DNS proved, else the port's name.
      if (typeof x.service === 'string' && x.service) flow += ' ' + x.service;
    }
    if (flow && f.host) return flow + ' (' + f.host + ')';
    return flow || (f.host ? String(f.host) : '');
  }
  function evidenceText(ev) {
    if (!ev || typeof ev !== 'object') return '';
    return Object.keys(ev).map((k) => k + '=' + (typeof ev[k] === 'string' ? ev[k] : JSON.stringify(ev[k]))).join(', ');
  }
  /** Short evidence as is; long evidence folded, its start as the summary. */
  function evidenceCell(text) {
    if (text.length <= 90) return text;
    return h('details', null, h('summary', null, text.slice(0, 40) + '…'), text);
  }
  /** A severity badge; the class only ever comes from the fixed list. */
  function sevBadge(sev) {
    const known = SEVERITIES.includes(sev);
    return h('span', { class: 'sev sev-' + (known ? sev : 'unknown') }, String(sev));
  }
  function healthClass(score) {
    if (!finite(score)) return 'health-unknown';
    return score >= 80 ? 'health-good' : score >= 50 ? 'health-fair' : 'health-poor';
  }

  // ------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, error, detail) {
      super(detail || error || ('HTTP ' + status));
      this.status = status;
      this.error = error;
      this.detail = detail;
    }
  }
  function toLogin() {
    location.assign('/login?next=' + enc(location.pathname + location.search));
  }
  async function api(path, init) {
    const res = await fetch(path, Object.assign({ credentials: 'same-origin', headers: { accept: 'application/json' } }, init || {}));
    if (res.status === 401) { toLogin(); throw new ApiError(401, 'unauthorized', 'the session ended: log in again'); }
    let data = null;
    if (res.status !== 204) {
      try { data = await res.json(); } catch (err) { data = null; }
    }
    if (!res.ok) throw new ApiError(res.status, data && data.error ? String(data.error) : res.statusText, data && data.detail ? String(data.detail) : '');
    return data;
  }
  function errorText(err) {
    if (err instanceof ApiError) return 'Error ' + err.status + (err.error ? ' (' + err.error + ')' : '') + (err.detail ? ': ' + err.detail : '');
    return 'Error: ' + (err && err.message ? err.message : String(err));
  }
  function showError(box, err) {
    if (!box) return;
    box.hidden = false;
    box.textContent = typeof err === 'string' ? err : errorText(err);
  }
  function clearError(box) {
    if (!box) return;
    box.hidden = true;
    box.textContent = '';
  }
  /** Query parameters with a value, as a URLSearchParams (the API refuses unknown keys, so only named ones). */
  function pick(params, names) {
    const out = new URLSearchParams();
    for (const n of names) {
      const v = params.get(n);
      if (v !== null && v.trim() !== '') out.set(n, v.trim());
    }
    return out;
  }
  /** Puts the page's query values into a GET form's fields. */
  function fillForm(form, params) {
    if (!form) return;
    for (const el of form.elements) {
      if (!el.name || el.type === 'submit') continue;
      const v = params.get(el.name);
      if (v !== null) el.value = v;
    }
  }

  // ------------------------------------------------------------ findings tables

  /**
   * A findings table with "More" paging over /api/findings. query: the API's
   * filters; limit: page size; more: whether to offer more pages.
   */
  function findingsList(root, query, options) {
    const showSensor = options.showSensor !== false;
    const head = ['Window start (UTC)'];
    if (showSensor) head.push('Sensor');
    head.push('Severity', 'Type', 'Flow / host', 'Summary', 'Evidence');
    const tbody = h('tbody');
    const table = h('table', { class: 'data findings' },
      h('thead', null, h('tr', null, head.map((t) => h('th', { scope: 'col' }, t)))), tbody);
    const status = h('p', { class: 'muted', 'aria-live': 'polite' });
    const more = h('button', { type: 'button', class: 'more', hidden: true }, 'More');
    const error = h('div', { class: 'error', role: 'alert', hidden: true });
    root.replaceChildren(error, h('div', { class: 'scroll' }, table), h('p', { class: 'pager' }, more, ' ', status));
    let cursor = null;
    let shown = 0;
    let loading = false;

    function row(f) {
      const cells = [h('td', { class: 'nowrap', title: f.window ? f.window.start + ' – ' + f.window.end : null }, utc(f.window && f.window.start))];
      if (showSensor) cells.push(h('td', null, h('a', { href: '/sensors/' + enc(f.sensor) }, String(f.sensor))));
      cells.push(
        h('td', null, sevBadge(f.severity)),
        h('td', { class: 'type' }, String(f.type)),
        h('td', { class: 'subject' }, subject(f)),
        h('td', null, String(f.summary)),
        h('td', { class: 'evidence' }, evidenceCell(evidenceText(f.evidence))),
      );
      return h('tr', { 'data-type': String(f.type), 'data-severity': String(f.severity) }, cells);
    }

    async function load() {
      if (loading) return;
      loading = true;
      more.disabled = true;
      const q = new URLSearchParams(query);
      q.set('limit', String(options.limit || 50));
      if (cursor) q.set('cursor', cursor);
      try {
        const page = await api('/api/findings?' + q.toString());
        clearError(error);
        for (const f of page.findings) tbody.append(row(f));
        shown += page.findings.length;
        cursor = page.nextCursor;
        more.hidden = !(options.more !== false && cursor);
        status.textContent = shown === 0 ? 'No findings.' : shown + ' shown' + (cursor && options.more !== false ? '; more below.' : '.');
      } catch (err) {
        showError(error, err);
      } finally {
        loading = false;
        more.disabled = false;
      }
    }
    more.addEventListener('click', () => { void load(); });
    return { load, reset() { tbody.replaceChildren(); cursor = null; shown = 0; return load(); } };
  }

  // ------------------------------------------------------------ dashboard

  /** The API's liveness: up, down, stopped (an orderly stop) or finished (a replay that read all of its input). */
  const LIVENESS = ['up', 'down', 'stopped', 'finished'];
  function liveness(x) {
    return LIVENESS.includes(x.liveness) ? x.liveness : x.up ? 'up' : 'down';
  }
  function statusBadge(x) {
    const text = liveness(x);
    return h('span', { class: 'badge ' + text }, text);
  }
  /** The agent's own state beside the badge, while it is up and not simply running. */
  function stateNote(x) {
    return liveness(x) === 'up' && x.state && x.state !== 'running' ? ' ' + String(x.state) : '';
  }
  /** When the sensor last reported: its last heartbeat's own time (a collector reading a backlog shows it as it was). */
  function heartbeatTime(x) {
    return x.lastHeartbeat || null;
  }

  function sensorRow(x) {
    const cap = x.capture;
    const current = liveness(x) === 'up';
    const drops = cap && cap.drops ? [cap.drops.kernel, cap.drops.interface, cap.drops.agent].map(num).join(' / ') : '—';
    const dropped = current && cap && cap.drops && (cap.drops.kernel + cap.drops.interface + cap.drops.agent) > 0;
    const sp = x.spool;
    const spool = sp ? num(sp.messages) + ' msgs (' + bytes(sp.bytes) + ')' + (sp.overflow ? ', ' + num(sp.overflow) + ' overflowed' : '') : '—';
    const seen = heartbeatTime(x);
    return h('tr', { 'data-sensor': String(x.id) },
      h('th', { scope: 'row' }, h('a', { href: '/sensors/' + enc(x.id) }, String(x.id))),
      h('td', null, statusBadge(x), stateNote(x)),
      h('td', { class: 'source' }, x.source ? String(x.source.kind) + ': ' + String(x.source.name) : '—'),
      h('td', { class: 'nowrap', title: seen ? String(seen) : null }, utc(seen), seen ? h('br') : '', seen ? h('span', { class: 'muted' }, ago(seen)) : ''),
      h('td', { class: 'num' }, cap ? num(cap.packets) : '—', cap ? h('span', { class: 'muted' }, ' (' + bytes(cap.bytes) + ')') : ''),
      h('td', { class: 'num' + (dropped ? ' warn' : '') + (current ? '' : ' muted'), title: cap && !current ? 'as of the last heartbeat' : null }, drops),
      h('td', { class: 'num' + (sp && !sp.connected ? ' warn' : '') }, spool, sp && !sp.connected ? h('br') : '', sp && !sp.connected ? 'NATS disconnected' : ''),
      h('td', { class: 'num' }, h('span', { class: 'score ' + healthClass(x.healthScore) }, finite(x.healthScore) ? num(x.healthScore) : '—')),
    );
  }

  function dashboard() {
    const error = byId('dashboard-error');
    const sensorsBody = document.querySelector('#sensors tbody');
    const countsBody = document.querySelector('#finding-counts tbody');
    const latest = findingsList(byId('latest-findings'), new URLSearchParams(), { limit: 20, more: false });
    const periods = [['hour', 3600], ['day', 86400], ['all', null]];

    async function refresh() {
      try {
        const now = Date.now();
        const [sensors, ...counts] = await Promise.all([
          api('/api/sensors'),
          ...periods.map(([, sec]) => api('/api/findings/counts?from=' + enc(sec === null ? '0' : new Date(now - sec * 1000).toISOString()))),
        ]);
        clearError(error);
        sensorsBody.replaceChildren(...sensors.sensors.map(sensorRow));
        byId('sensors-empty').hidden = sensors.sensors.length > 0;
        countsBody.replaceChildren(...SEVERITIES.map((sev) => h('tr', { 'data-severity': sev },
          h('th', { scope: 'row' }, sevBadge(sev)),
          counts.map((c) => h('td', { class: 'num' }, num(c.counts[sev] || 0))))));
        await latest.reset();
        byId('updated').textContent = 'Updated ' + new Date().toISOString().slice(11, 19) + ' UTC.';
        body.setAttribute('data-loaded', 'true');
      } catch (err) {
        showError(error, err);
      }
    }
    void refresh();
    setInterval(() => { if (!document.hidden) void refresh(); }, 10000);
  }

  // ------------------------------------------------------------ charts

  const CHARTS = [
    { id: 'packets', title: 'Packets per second', unit: 'pps', series: [['packetsPerSecond', 'packets/s']] },
    { id: 'throughput', title: 'Throughput', unit: 'bps', series: [['bitsPerSecond', 'bits/s']] },
    { id: 'retransmissions', title: 'TCP retransmission rate', unit: 'percent', series: [['retransmissionPercent', 'retransmitted data segments']] },
    { id: 'rtt', title: 'TCP round-trip time', unit: 'ms', series: [['rttP50Ms', 'p50'], ['rttP99Ms', 'p99']] },
    { id: 'dns', title: 'DNS response time', unit: 'ms', series: [['dnsP50Ms', 'p50'], ['dnsP99Ms', 'p99']] },
    { id: 'health', title: 'Health score', unit: 'score', yMax: 100, series: [['healthScore', 'score']] },
    { id: 'drops', title: 'Dropped packets', unit: 'count', series: [['dropsKernel', 'kernel'], ['dropsInterface', 'interface'], ['dropsAgent', 'agent']] },
  ];

  /** Up to 3 significant digits, no trailing zeros. */
  const short = (v) => String(Number(v.toPrecision(3)));
  function si(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return short(v / 1e9) + ' G';
    if (a >= 1e6) return short(v / 1e6) + ' M';
    if (a >= 1e3) return short(v / 1e3) + ' k';
    return short(v) + ' ';
  }
  function unitText(unit, v) {
    if (!finite(v)) return '—';
    switch (unit) {
      case 'ms': return short(v) + ' ms';
      case 'percent': return short(v) + ' %';
      case 'bps': return si(v) + 'bit/s';
      case 'pps': return si(v) + 'pkt/s';
      case 'score': return String(Math.round(v));
      default: return si(v).trim();
    }
  }
  function niceMax(m) {
    if (!(m > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(m)));
    for (const k of [1, 2, 2.5, 5, 10]) if (k * p >= m) return k * p;
    return 10 * p;
  }
  function tickText(ms, span) {
    const iso = new Date(ms).toISOString();
    if (span <= 120000) return iso.slice(11, 19);
    if (span <= 86400000 * 1.01) return iso.slice(11, 16);
    return iso.slice(5, 10) + ' ' + iso.slice(11, 16);
  }

  /** One chart as inline SVG: lines broken at missing values and at gaps between windows; dots where points are few or alone. */
  function chart(spec, data, x0, x1) {
    const W = 640, H = 220, L = 70, R = 14, T = 12, B = 28;
    const span = Math.max(1, x1 - x0);
    let max = 0;
    let points = 0;
    for (const [key] of spec.series) {
      for (const v of data.series[key] || []) if (finite(v)) { points++; if (v > max) max = v; }
    }
    const yMax = spec.yMax || niceMax(max);
    const sx = (ms) => L + ((ms - x0) / span) * (W - L - R);
    const sy = (v) => T + (1 - Math.min(v, yMax) / yMax) * (H - T - B);
    const svg = s('svg', {
      viewBox: '0 0 ' + W + ' ' + H, class: 'chart-svg', role: 'img', 'data-chart': spec.id, 'data-points': points,
      'aria-label': spec.title + ': ' + (points ? plural(points, 'point') + ', highest ' + unitText(spec.unit, max) : 'no data in this range'),
    }, s('title', null, spec.title));
    for (const f of [0, 0.5, 1]) {
      const y = sy(yMax * f);
      svg.append(s('line', { x1: L, x2: W - R, y1: y, y2: y, class: 'grid' }));
      svg.append(s('text', { x: L - 6, y: y + 4, 'text-anchor': 'end', class: 'axis' }, unitText(spec.unit, yMax * f)));
    }
    [[x0, 'start'], [x0 + span / 2, 'middle'], [x1, 'end']].forEach(([ms, anchor]) => {
      svg.append(s('text', { x: sx(ms), y: H - 8, 'text-anchor': anchor, class: 'axis' }, tickText(ms, span)));
    });
    if (!points) svg.append(s('text', { x: (L + W - R) / 2, y: (T + H - B) / 2, 'text-anchor': 'middle', class: 'empty' }, 'No data in this range'));

    spec.series.forEach(([key, name], i) => {
      const vals = data.series[key] || [];
      let d = '';
      let pen = false;
      let prevEnd = null;
      const dots = [];
      let run = [];
      const flush = () => { if (run.length === 1 || (points <= 120 && run.length)) dots.push(...run); run = []; };
      for (let k = 0; k < vals.length; k++) {
        const start = data.start[k];
        const end = data.end[k];
        // A hole of at least half a point's span: no windows there, so no line across it.
        if (prevEnd !== null && start - prevEnd > (end - start) / 2) { pen = false; flush(); }
        prevEnd = end;
        const v = vals[k];
        if (!finite(v)) { pen = false; flush(); continue; }
        const x = sx((start + end) / 2);
        const y = sy(v);
        d += (pen ? 'L' : 'M') + x.toFixed(1) + ' ' + y.toFixed(1);
        pen = true;
        run.push([x, y, start, end, v]);
      }
      flush();
      if (d) svg.append(s('path', { d: d, class: 'line s' + i, 'data-series': key }));
      for (const [x, y, start, end, v] of dots) {
        svg.append(s('circle', { cx: x.toFixed(1), cy: y.toFixed(1), r: 2.5, class: 'dot s' + i },
          s('title', null, name + ' ' + unitText(spec.unit, v) + ' (' + utc(start) + ' – ' + utc(end).slice(11) + ' UTC)')));
      }
    });
    svg.setAttribute('data-drawn', 'true');
    const legend = h('ul', { class: 'legend' }, spec.series.map(([, name], i) => h('li', null, h('span', { class: 'swatch s' + i, 'aria-hidden': 'true' }), name)));
    return h('figure', { class: 'chart' }, h('figcaption', null, spec.title), svg, legend);
  }

  // ------------------------------------------------------------ sensor page

  const RANGES = { '15m': 900, '1h': 3600, '6h': 21600, '24h': 86400, '7d': 604800 };

  /** The page's range: from/to as given (ISO or epoch seconds), else a quick range (default 1 h) ending where the sensor's data ends (now before its first window). */
  function pageRange(params) {
    const from = (params.get('from') || '').trim();
    const to = (params.get('to') || '').trim();
    if (from || to) return { from: from, to: to, quick: null };
    const quick = Object.prototype.hasOwnProperty.call(RANGES, params.get('range')) ? params.get('range') : '1h';
    const dataEnd = Date.parse(body.getAttribute('data-end') || '');
    const end = Number.isFinite(dataEnd) ? dataEnd : Date.now();
    return { from: new Date(end - RANGES[quick] * 1000).toISOString(), to: new Date(end).toISOString(), quick: quick };
  }

  async function sensorPage() {
    const id = body.getAttribute('data-sensor');
    const params = new URLSearchParams(location.search);
    const range = pageRange(params);
    const error = byId('sensor-error');
    for (const a of document.querySelectorAll('[data-range]')) {
      if (a.getAttribute('data-range') === range.quick) a.setAttribute('aria-current', 'true');
    }
    if (!range.quick) fillForm(byId('range-form'), params);
    const filters = byId('finding-filters');
    fillForm(filters, params);

    // Sensor facts (there is no single-sensor endpoint: the list is small).
    api('/api/sensors').then((list) => {
      const x = list.sensors.find((y) => y.id === id);
      const info = byId('sensor-info');
      if (!x) { info.textContent = 'This sensor has not reported a status yet.'; return; }
      info.replaceChildren(h('dl', { class: 'kv' },
        h('dt', null, 'Status'), h('dd', null, statusBadge(x), stateNote(x)),
        h('dt', null, 'Source'), h('dd', null, x.source ? x.source.kind + ': ' + x.source.name : '—'),
        h('dt', null, 'Version'), h('dd', null, String(x.version || '—')),
        h('dt', null, 'Last heartbeat'), h('dd', null, heartbeatTime(x) ? utc(heartbeatTime(x)) + ' UTC (' + ago(heartbeatTime(x)) + ')' : '—'),
        h('dt', null, 'Health'), h('dd', null, h('span', { class: 'score ' + healthClass(x.healthScore) }, finite(x.healthScore) ? num(x.healthScore) : '—'))));
    }, (err) => showError(error, err));

    const q = pick(new URLSearchParams({ from: range.from, to: range.to }), ['from', 'to']);
    const charts = byId('charts');
    let resolved = { from: range.from, to: range.to };
    try {
      const data = await api('/api/sensors/' + enc(id) + '/series?' + q.toString());
      resolved = { from: data.from, to: data.to };
      const x0 = Date.parse(data.from);
      const x1 = Date.parse(data.to);
      charts.replaceChildren(...CHARTS.map((spec) => chart(spec, data, x0, x1)));
      const notes = [];
      notes.push(plural(data.windows, 'window') + ' of ' + num(data.windowSeconds) + ' s from ' + utc(data.from) + ' to ' + utc(data.to) + ' UTC.');
      if (data.pointSeconds > data.windowSeconds) notes.push('Each point covers ' + num(data.pointSeconds) + ' s: rates and p50s averaged, p99s and health the worst window, drops summed.');
      if (data.truncated) notes.push('Only the first ' + plural(data.windows, 'window') + ' of the range are shown: choose a shorter range.');
      if (!data.windows) notes.push('No windows in this range.');
      byId('charts-note').textContent = notes.join(' ');
    } catch (err) {
      charts.replaceChildren();
      showError(error, err);
    } finally {
      charts.setAttribute('aria-busy', 'false');
    }

    const r = new URLSearchParams({ from: resolved.from, to: resolved.to });
    byId('range-text').textContent = utc(resolved.from) + ' – ' + utc(resolved.to) + ' UTC';
    byId('report-html').setAttribute('href', '/api/reports/' + enc(id) + '?' + r.toString() + '&format=html');
    byId('report-json').setAttribute('href', '/api/reports/' + enc(id) + '?' + r.toString() + '&format=json');
    // The filters keep the range: a quick range is kept as such, so reloading moves with the clock.
    if (range.quick) filters.elements.namedItem('range').value = range.quick;
    else { filters.elements.namedItem('from').value = range.from; filters.elements.namedItem('to').value = range.to; }

    const fq = pick(params, ['type', 'severity', 'ip', 'limit']);
    fq.set('sensor', id);
    fq.set('from', resolved.from);
    fq.set('to', resolved.to);
    const limit = clampLimit(fq.get('limit'));
    fq.delete('limit');
    await findingsList(byId('sensor-findings'), fq, { showSensor: false, limit: limit }).load();
    body.setAttribute('data-loaded', 'true');
  }

  function clampLimit(v) {
    const n = Number(v);
    return Number.isInteger(n) && n >= 1 && n <= 1000 ? n : 50;
  }

  // ------------------------------------------------------------ findings page

  async function findingsPage() {
    const params = new URLSearchParams(location.search);
    fillForm(byId('finding-filters'), params);
    const q = pick(params, ['sensor', 'type', 'severity', 'ip', 'from', 'to']);
    await findingsList(byId('findings'), q, { limit: clampLimit(params.get('limit')) }).load();
    body.setAttribute('data-loaded', 'true');
  }

  // ------------------------------------------------------------ uploads

  const UPLOAD_ERRORS = {
    400: 'The upload was refused',
    408: 'The upload stalled',
    413: 'The file is too large for this collector',
    415: 'This is not a capture file the collector reads',
    429: 'Refused for now',
    503: 'The analysis queue is full: try again later',
    507: 'The collector is out of disk space',
  };

  /** Status, analysis progress, report links and delete for one upload, polled until it ends. */
  function capturePanel(root, id) {
    root.hidden = false;
    const badge = h('span', { class: 'badge' });
    const bar = h('progress', { id: 'analysis-progress', max: '100', value: '0' });
    const percent = h('span', { class: 'muted' });
    const facts = h('dl', { class: 'kv' });
    const links = h('p', { class: 'capture-links' });
    const warnings = h('div', { class: 'notice', id: 'capture-warnings', hidden: true });
    const error = h('div', { class: 'error', role: 'alert', hidden: true });
    const del = h('button', { type: 'button', class: 'danger', id: 'delete-capture' }, 'Delete');
    const statusUrl = '/captures/' + enc(id);
    root.replaceChildren(
      h('h2', null, 'Analysis'),
      h('p', null, 'Status: ', badge, ' ', h('label', { for: 'analysis-progress', class: 'visually-hidden' }, 'Analysis progress'), bar, ' ', percent),
      facts, warnings, links, error,
      h('p', null, del, ' ', h('a', { href: statusUrl }, 'Status page of this upload')),
    );
    let timer = null;
    let gone = false;
    let armed = false;

    function render(job) {
      root.setAttribute('data-status', String(job.status));
      badge.textContent = String(job.status);
      badge.className = 'badge status-' + (['queued', 'running', 'done', 'failed'].includes(job.status) ? job.status : 'unknown');
      const p = finite(job.progress) ? Math.max(0, Math.min(100, job.progress)) : 0;
      bar.value = job.status === 'done' ? 100 : p;
      percent.textContent = (job.status === 'done' ? 100 : Math.round(p)) + ' %';
      facts.replaceChildren(
        h('dt', null, 'File'), h('dd', null, job.filename ? String(job.filename)
          : h('span', { class: 'muted' }, 'no name given (name an upload with ?name=FILE, X-Filename or Content-Disposition)')),
        h('dt', null, 'Size'), h('dd', null, bytes(job.sizeBytes)),
        h('dt', null, 'Uploaded'), h('dd', null, utc(job.createdAt) + ' UTC'),
        h('dt', null, 'Started'), h('dd', null, job.startedAt ? utc(job.startedAt) + ' UTC' : '—'),
        h('dt', null, 'Finished'), h('dd', null, job.finishedAt ? utc(job.finishedAt) + ' UTC' : '—'),
        h('dt', null, 'Kept until'), h('dd', null, utc(job.expiresAt) + ' UTC'),
      );
      // What the analysis had to skip or leave out (input cut short, report capped): the report is partial.
      const notes = Array.isArray(job.warnings) ? job.warnings.map(String) : [];
      warnings.hidden = notes.length === 0;
      warnings.replaceChildren(h('strong', null, notes.length === 1 ? 'Warning' : 'Warnings'), h('ul', null, notes.map((w) => h('li', null, w))));
      if (job.status === 'failed') showError(error, 'The analysis failed: ' + (job.error || 'no reason given'));
      if (job.status === 'done') {
        const base = '/api/captures/' + enc(id) + '/report';
        links.replaceChildren('Report: ', h('a', { href: base + '?format=html', 'data-report': 'html' }, 'HTML'), ' · ',
          h('a', { href: base + '?format=json', 'data-report': 'json' }, 'JSON'));
      }
      del.textContent = job.status === 'queued' || job.status === 'running' ? 'Cancel and delete' : 'Delete';
    }

    async function poll() {
      timer = null;
      if (gone) return;
      try {
        const job = await api('/api/captures/' + enc(id));
        if (gone) return;
        render(job);
        if (job.status === 'queued' || job.status === 'running') timer = setTimeout(poll, 1000);
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) {
          gone = true;
          root.setAttribute('data-status', 'gone');
          root.replaceChildren(h('p', null, 'This upload is gone: it expired or was deleted.'));
          return;
        }
        showError(error, err);
        timer = setTimeout(poll, 5000); // the collector may be restarting: keep trying, slower
      }
    }

    // Two clicks: a report is not something to lose to a stray click.
    del.addEventListener('click', async () => {
      if (!armed) { armed = true; del.textContent = 'Click again to delete'; return; }
      del.disabled = true;
      try {
        await api('/api/captures/' + enc(id), { method: 'DELETE' });
        gone = true;
        if (timer) clearTimeout(timer);
        root.setAttribute('data-status', 'deleted');
        root.replaceChildren(h('p', { role: 'status' }, 'Deleted: the upload and its report are removed.'));
      } catch (err) {
        del.disabled = false;
        armed = false;
        del.textContent = 'Delete';
        showError(error, err);
      }
    });
    void poll();
  }

  function uploadPage() {
    const form = byId('upload-form');
    const input = byId('file');
    const button = byId('upload-button');
    const progressBox = byId('upload-status');
    const bar = byId('upload-progress');
    const percent = byId('upload-percent');
    const error = byId('upload-error');
    const panel = byId('capture');
    const maxMB = Number(body.getAttribute('data-max-upload-mb'));

    form.addEventListener('submit', (event) => {
      event.preventDefault();
      clearError(error);
      const file = input.files && input.files[0];
      if (!file) { showError(error, 'Choose a capture file first.'); return; }
      if (maxMB > 0 && file.size > maxMB * 1048576) {
        showError(error, 'The file is too large for this collector: ' + bytes(file.size) + ', the limit is ' + num(maxMB) + ' MiB.');
        return;
      }
      button.disabled = true;
      progressBox.hidden = false;
      bar.value = 0;
      percent.textContent = '0 %';
      panel.hidden = true;
      const xhr = new XMLHttpRequest();
      xhr.open('POST', '/api/captures');
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      xhr.setRequestHeader('Accept', 'application/json');
      // Header values are Latin-1: the collector decodes a percent-encoded name.
      xhr.setRequestHeader('X-Filename', enc(file.name));
      xhr.upload.addEventListener('progress', (e) => {
        if (!e.lengthComputable) return;
        const p = Math.round((e.loaded / e.total) * 100);
        bar.value = p;
        percent.textContent = p + ' % of ' + bytes(e.total);
      });
      xhr.addEventListener('load', () => {
        button.disabled = false;
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (err) { data = null; }
        if (xhr.status === 401) { toLogin(); return; }
        if (xhr.status === 202 && data && typeof data.id === 'string') {
          bar.value = 100;
          percent.textContent = 'uploaded';
          capturePanel(panel, data.id);
          return;
        }
        // Refused: the bar measured bytes sent, not accepted, so it goes away.
        progressBox.hidden = true;
        bar.value = 0;
        percent.textContent = '';
        const what = UPLOAD_ERRORS[xhr.status] || 'The upload failed';
        const retry = xhr.getResponseHeader('Retry-After');
        const detail = data && data.detail ? String(data.detail) : '';
        // The detail names the wait when there is one ("retry in 12 s"); the header is said only when it does not.
        const wait = retry && !/retry in \d+ s/i.test(detail) ? ' Retry in ' + retry + ' s.' : '';
        showError(error, what + ' (HTTP ' + xhr.status + (data && data.error ? ', ' + data.error : '') + ')' +
          (detail ? ': ' + detail + (/[.!?]$/.test(detail) ? '' : '.') : '.') + wait);
      });
      xhr.addEventListener('error', () => {
        button.disabled = false;
        progressBox.hidden = true;
        showError(error, 'The upload was cut off: the network failed or the collector refused the file before reading all of it (too large, not a capture, or too many uploads).');
      });
      xhr.send(file);
    });
  }

  // ------------------------------------------------------------ start

  const pages = {
    dashboard: dashboard,
    sensor: sensorPage,
    findings: findingsPage,
    upload: uploadPage,
    capture: () => capturePanel(byId('capture'), body.getAttribute('data-capture')),
  };
  const start = pages[body.getAttribute('data-page')];
  if (start) {
    Promise.resolve().then(start).catch((err) => {
      const box = document.querySelector('.page-error');
      showError(box, err);
    });
  }
})();
`;

export const APP_CSS = `:root {
  --fg: #1f2933; --muted: #616e7c; --bg: #f5f7fa; --card: #fff; --line: #d9e2ec; --accent: #1d4ed8;
  --good: #15803d; --fair: #b45309; --poor: #b91c1c;
  --s0: #2563eb; --s1: #dc2626; --s2: #16a34a;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--fg); background: var(--bg);
}
* { box-sizing: border-box; }
body { margin: 0; line-height: 1.45; font-size: 15px; }
a { color: var(--accent); }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.92em; }
header.top { background: #102a43; color: #fff; }
header.top nav { display: flex; gap: 1.2rem; align-items: center; max-width: 1400px; margin: 0 auto; padding: 0.6rem 1.2rem; flex-wrap: wrap; }
header.top a { color: #d9e2ec; text-decoration: none; }
header.top a:hover, header.top a:focus { color: #fff; text-decoration: underline; }
header.top a[aria-current="page"] { color: #fff; font-weight: 600; border-bottom: 2px solid #9fb3c8; }
header.top .brand { font-weight: 700; color: #fff; margin-right: 1rem; }
header.top form.logout { margin-left: auto; }
header.top form.logout button { background: transparent; color: #d9e2ec; border: 1px solid #627d98; }
main { max-width: 1400px; margin: 0 auto; padding: 1rem 1.2rem 2rem; }
h1 { font-size: 1.5rem; margin: 0.4rem 0 0.8rem; }
h2 { font-size: 1.15rem; margin: 1.6rem 0 0.6rem; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 0.2rem 1rem 1rem; margin: 1rem 0; }
footer { max-width: 1400px; margin: 0 auto; padding: 0 1.2rem 2rem; color: var(--muted); font-size: 0.85rem; }
.muted { color: var(--muted); }
.nowrap { white-space: nowrap; }
.scroll { overflow-x: auto; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
table.data { border-collapse: collapse; width: 100%; font-size: 0.92rem; }
table.data th, table.data td { text-align: left; padding: 0.35rem 0.6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
table.data thead th { background: #f0f4f8; font-weight: 600; white-space: nowrap; }
table.data td.num, table.data th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.findings td.evidence { color: var(--muted); font-size: 0.85rem; max-width: 26rem; overflow-wrap: anywhere; }
table.findings td.evidence summary { cursor: pointer; }
table.findings td.evidence details[open] summary { margin-bottom: 0.2rem; }
table.findings td.subject, td.source { overflow-wrap: anywhere; }
table.findings td.type { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.85rem; }
.warn { color: var(--fair); font-weight: 600; }
.badge { display: inline-block; padding: 0.05rem 0.5rem; border-radius: 999px; font-size: 0.8rem; font-weight: 600; background: #e4e7eb; color: var(--fg); }
.badge.up, .badge.status-done { background: #dcfce7; color: var(--good); }
.badge.finished, .badge.stopped { background: #e0e7ff; color: #3730a3; }
.badge.down, .badge.status-failed { background: #fee2e2; color: var(--poor); }
.badge.status-running, .badge.status-queued { background: #dbeafe; color: var(--accent); }
.sev { display: inline-block; padding: 0.05rem 0.45rem; border-radius: 4px; font-size: 0.8rem; font-weight: 600; }
.sev-critical { background: #fee2e2; color: var(--poor); }
.sev-warning { background: #fef3c7; color: var(--fair); }
.sev-info { background: #e0f2fe; color: #0369a1; }
.sev-unknown { background: #e4e7eb; }
.score { font-weight: 700; }
.health-good { color: var(--good); }
.health-fair { color: var(--fair); }
.health-poor { color: var(--poor); }
.error { background: #fef2f2; border: 1px solid #fecaca; color: var(--poor); padding: 0.6rem 0.8rem; border-radius: 4px; margin: 0.6rem 0; white-space: pre-wrap; }
.notice { background: #eff6ff; border: 1px solid #bfdbfe; padding: 0.6rem 0.8rem; border-radius: 4px; }
form.filters, form.range { display: flex; flex-wrap: wrap; gap: 0.6rem 1rem; align-items: flex-end; margin: 0.6rem 0; }
form.filters label, form.range label { display: flex; flex-direction: column; font-size: 0.85rem; color: var(--muted); gap: 0.15rem; }
input, select, button { font: inherit; }
input[type="text"], input[type="password"], input[type="search"], select { padding: 0.3rem 0.45rem; border: 1px solid #9aa5b1; border-radius: 4px; background: #fff; min-width: 10rem; }
button { padding: 0.35rem 0.9rem; border: 1px solid var(--accent); background: var(--accent); color: #fff; border-radius: 4px; cursor: pointer; }
button:disabled { opacity: 0.6; cursor: default; }
button.more { background: #fff; color: var(--accent); }
button.danger { background: #fff; color: var(--poor); border-color: var(--poor); }
:focus-visible { outline: 2px solid #f59e0b; outline-offset: 2px; }
nav.quick { display: flex; gap: 0.4rem; flex-wrap: wrap; margin: 0.4rem 0; }
nav.quick a { padding: 0.2rem 0.7rem; border: 1px solid var(--line); border-radius: 999px; text-decoration: none; }
nav.quick a[aria-current="true"] { background: var(--accent); color: #fff; border-color: var(--accent); }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; margin: 0.6rem 0; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(440px, 1fr)); gap: 1rem; }
figure.chart { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 0.5rem 0.6rem; background: #fff; }
figure.chart figcaption { font-weight: 600; font-size: 0.95rem; margin-bottom: 0.2rem; }
svg.chart-svg { width: 100%; height: auto; display: block; }
svg .grid { stroke: #e4e7eb; stroke-width: 1; }
svg .axis { fill: var(--muted); font-size: 11px; }
svg .empty { fill: var(--muted); font-size: 14px; }
svg .line { fill: none; stroke-width: 1.8; stroke-linejoin: round; stroke-linecap: round; }
svg .line.s0, svg .dot.s0 { stroke: var(--s0); }
svg .line.s1, svg .dot.s1 { stroke: var(--s1); }
svg .line.s2, svg .dot.s2 { stroke: var(--s2); }
svg .dot { stroke-width: 1; }
svg .dot.s0 { fill: var(--s0); }
svg .dot.s1 { fill: var(--s1); }
svg .dot.s2 { fill: var(--s2); }
ul.legend { list-style: none; display: flex; gap: 1rem; padding: 0; margin: 0.2rem 0 0; font-size: 0.82rem; color: var(--muted); }
.swatch { display: inline-block; width: 0.8rem; height: 0.8rem; border-radius: 2px; margin-right: 0.3rem; vertical-align: -0.1rem; }
.swatch.s0 { background: var(--s0); }
.swatch.s1 { background: var(--s1); }
.swatch.s2 { background: var(--s2); }
progress { width: 18rem; max-width: 100%; height: 1rem; vertical-align: middle; }
form.upload { display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; margin: 0.8rem 0; }
form.login { display: flex; flex-direction: column; gap: 0.6rem; max-width: 22rem; }
form.login label { font-weight: 600; }
`;

/** A small icon, so browsers do not ask for /favicon.ico (a 404, or a login redirect when auth is on). */
export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#102a43"/><path d="M4 22 L10 14 L15 19 L21 8 L28 16" fill="none" stroke="#7dd3fc" stroke-width="3" stroke-linecap="round" stroke-linejoin="round"/></svg>`;
