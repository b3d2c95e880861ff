/*
 * The client script of `experiments report` (src/report/html.ts inlines it, with uPlot, into one
 * self-contained HTML file). Browser code, no network: it reads the report data from the
 * <script id="report-data"> element and draws
 *   - an overlaid chart of the selected metric for every experiment (log scale optional),
 *   - one small chart per experiment, drawn when scrolled into view, with resume markers,
 *   - the sortable results table, the approval audit and the policy.
 * When everything is drawn it sets <body data-ready="1"> (the PNG export and the tests wait for it).
 */
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var state = { metric: data.metricNames[0] || null, log: false };
  var charts = [];

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function color(i, n) { return 'hsl(' + Math.round((360 * i) / Math.max(n, 1)) + ', 65%, 45%)'; }
  function fmt(v) {
    if (v === null || v === undefined) return '';
    if (typeof v === 'number') return Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : String(Math.round(v * 1e4) / 1e4);
    return String(v);
  }
  function duration(ms) {
    var m = Math.round(ms / 60000);
    return m >= 60 ? Math.floor(m / 60) + 'h' + (m % 60 ? (m % 60) + 'm' : '') : m >= 1 ? m + 'm' : Math.round(ms / 1000) + 's';
  }
  function values(series) {
    var col = (state.metric && series.metrics[state.metric]) || [];
    return col.map(function (v) { return v === null || (state.log && !(v > 0)) ? null : v; });
  }

  // Draws a dashed vertical line, with a label, at every resume marker of the given series.
  function markerPlugin(markersOf) {
    return {
      hooks: {
        draw: [function (u) {
          var ctx = u.ctx;
          ctx.save();
          ctx.setLineDash([4, 3]);
          ctx.lineWidth = 1.5;
          ctx.font = '11px sans-serif';
          (data.search ? data.search.rungs : []).forEach(function (r, k) {
            var x = u.valToPos(r, 'x', true);
            if (!isFinite(x)) return;
            ctx.strokeStyle = '#9ca3af';
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            ctx.fillStyle = '#6b7280';
            ctx.fillText('rung ' + k, x + 3, u.bbox.top + u.bbox.height - 4);
          });
          markersOf().forEach(function (m) {
            var x = u.valToPos(m.epoch, 'x', true);
            if (!isFinite(x)) return;
            ctx.strokeStyle = m.cause === 'preemption' ? '#d97706' : '#dc2626';
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            ctx.fillStyle = ctx.strokeStyle;
            ctx.fillText('resumed', x + 3, u.bbox.top + 12);
          });
          ctx.restore();
        }],
      },
    };
  }

  function overlayData() {
    var xs = {};
    data.series.forEach(function (s) { s.epochs.forEach(function (e) { xs[e] = true; }); });
    var x = Object.keys(xs).map(Number).sort(function (a, b) { return a - b; });
    var index = {};
    x.forEach(function (e, i) { index[e] = i; });
    var columns = [x];
    data.series.forEach(function (s) {
      var col = x.map(function () { return null; });
      var v = values(s);
      s.epochs.forEach(function (e, i) { col[index[e]] = v[i]; });
      columns.push(col);
    });
    return columns;
  }

  function chartOptions(title, width, height, series, markersOf) {
    return {
      title: title,
      width: width,
      height: height,
      scales: { x: { time: false }, y: { distr: state.log ? 3 : 1 } },
      axes: [{ label: 'epoch' }, { label: state.metric || '' }],
      series: [{ label: 'epoch' }].concat(series),
      plugins: markersOf ? [markerPlugin(markersOf)] : [],
      legend: { show: data.series.length <= 40 || series.length === 1 },
    };
  }

  function drawOverlay() {
    var target = document.getElementById('overlay');
    target.textContent = '';
    var n = data.series.length;
    var series = data.series.map(function (s, i) { return { label: s.label, stroke: color(i, n), width: 1.5, spanGaps: true }; });
    var width = Math.max(480, Math.min(1100, target.clientWidth || 1000));
    charts.push(new uPlot(chartOptions(state.metric + ' — all experiments', width, 360, series, function () { return []; }), overlayData(), target));
  }

  function drawSmall(section, s, i) {
    var holder = section.querySelector('.chart');
    holder.textContent = '';
    var v = values(s);
    var opts = chartOptions(s.label, 340, 200, [{ label: state.metric, stroke: color(i, data.series.length), width: 1.5, spanGaps: true, points: { show: true, size: 4 } }], function () { return s.markers; });
    charts.push(new uPlot(opts, [s.epochs, v], holder));
    section.setAttribute('data-drawn', '1');
  }

  function buildSections() {
    var grid = document.getElementById('experiments');
    grid.textContent = '';
    var observer = 'IntersectionObserver' in window ? new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (!entry.isIntersecting) return;
        var i = Number(entry.target.getAttribute('data-index'));
        observer.unobserve(entry.target);
        drawSmall(entry.target, data.series[i], i);
      });
    }, { rootMargin: '400px' }) : null;
    data.series.forEach(function (s, i) {
      var section = el('section', { class: 'experiment', 'data-experiment': s.id, 'data-index': String(i), 'data-state': s.state, 'data-epochs': JSON.stringify(s.epochs) });
      section.appendChild(el('h3', null, s.label + ' · ' + s.state));
      section.appendChild(el('div', { class: 'chart' }));
      var list = el('ul', { class: 'markers' });
      s.markers.forEach(function (m) {
        list.appendChild(el('li', { class: 'marker', 'data-kind': m.kind, 'data-cause': m.cause, 'data-epoch': String(m.epoch) },
          (m.cause === 'preemption' ? 'preempted' : 'attempt ended') + ' after epoch ' + m.epoch + ': invocation ' + m.to.invocation + ' attempt ' + m.to.attempt + ' resumed from its checkpoint'));
      });
      var pruned = data.search && data.search.pruned.filter(function (p) { return p.id === s.id; })[0];
      if (pruned) list.appendChild(el('li', { class: 'marker pruned', 'data-kind': 'pruned', 'data-epoch': String(pruned.epoch) }, 'pruned after epoch ' + pruned.epoch + (pruned.rung === null ? '' : ' at rung ' + pruned.rung) + (pruned.reason ? ': ' + pruned.reason : '')));
      if (s.epochs.length === 0) list.appendChild(el('li', { class: 'empty' }, 'no epoch finished yet'));
      section.appendChild(list);
      grid.appendChild(section);
      if (observer && i >= 12) observer.observe(section); else drawSmall(section, s, i);
    });
  }

  function redraw() {
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
    drawOverlay();
    buildSections();
  }

  function buildTable(id, columns, rows) {
    var table = document.getElementById(id);
    var head = el('thead');
    var tr = el('tr');
    var body = el('tbody');
    var sort = { key: null, dir: 1 };
    columns.forEach(function (c) {
      var th = el('th', { 'data-key': c.key, title: 'sort by ' + c.title }, c.title);
      th.addEventListener('click', function () {
        sort.dir = sort.key === c.key ? -sort.dir : 1;
        sort.key = c.key;
        fill();
      });
      tr.appendChild(th);
    });
    head.appendChild(tr);
    table.appendChild(head);
    table.appendChild(body);
    function fill() {
      var sorted = rows.slice();
      if (sort.key) sorted.sort(function (a, b) {
        var x = a[sort.key], y = b[sort.key];
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * sort.dir;
      });
      body.textContent = '';
      sorted.forEach(function (r) {
        var row = el('tr', r.id ? { 'data-experiment': r.id } : null);
        columns.forEach(function (c) { row.appendChild(el('td', null, fmt(r[c.key]))); });
        body.appendChild(row);
      });
    }
    fill();
  }

  function controls() {
    var select = document.getElementById('metric');
    data.metricNames.forEach(function (name) { select.appendChild(el('option', { value: name }, name)); });
    select.addEventListener('change', function () { state.metric = select.value; redraw(); });
    var log = document.getElementById('log');
    log.addEventListener('change', function () { state.log = log.checked; redraw(); });
  }

  controls();
  redraw();
  buildTable('results', [
    { key: 'id', title: 'experiment' }, { key: 'state', title: 'state' }, { key: 'trainer', title: 'trainer' },
    { key: 'params', title: 'params' }, { key: 'epoch', title: 'epoch' }, { key: 'attempts', title: 'attempts' },
    { key: 'preemptions', title: 'preemptions' }, { key: 'finalLoss', title: 'final loss' },
    { key: 'accuracy', title: 'accuracy' }, { key: 'resumedFrom', title: 'resumed from' }, { key: 'reason', title: 'reason' },
  ], data.rows);
  buildTable('audit', [
    { key: 'at', title: 'at' }, { key: 'outcome', title: 'outcome' }, { key: 'by', title: 'by' }, { key: 'note', title: 'note' },
    { key: 'source', title: 'source' }, { key: 'estimates', title: 'estimates' },
  ], data.audit.map(function (a) {
    return {
      at: a.at, outcome: a.outcome || 'approved', by: a.by, note: a.note, source: a.source + (a.signed ? ' (signed)' : ''),
      estimates: (a.estimates || []).map(function (e) { return e.experimentId + (e.estimatedDurationMs === null ? '' : ' ~' + duration(e.estimatedDurationMs)); }).join(', '),
    };
  }));
  if (data.search) {
    var box = document.getElementById('search');
    var b = data.search.best;
    box.appendChild(el('p', null, 'metric ' + data.search.metric + ' (' + data.search.mode + ') · scheduler ' + data.search.scheduler +
      (data.search.rungs.length ? ' · rungs at epochs ' + data.search.rungs.join(', ') : '') + ' · ' + data.search.pruned.length + ' of ' + data.series.length + ' trials pruned'));
    if (b) box.appendChild(el('p', { id: 'best', 'data-experiment': b.experimentId }, 'best: ' + b.experimentId + ' ' + b.metric + '=' + fmt(b.value) +
      (b.checkpoint ? ' · checkpoint ' + b.checkpoint.id + ' (epoch ' + b.checkpoint.epoch + ', sha256 ' + b.checkpoint.sha256.slice(0, 12) + '…)' : '')));
    box.hidden = false;
  }
  document.getElementById('policy').textContent = JSON.stringify(data.policy, null, 2);
  document.body.setAttribute('data-ready', '1');
})();
