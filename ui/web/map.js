// The service map: workloads (namespace/workload; host, world and the
// other reserved identities by name) as nodes on a circle,
// grouped by namespace, and flows as directed edges coloured by verdict
// (dropped beats audit beats forwarded; an edge of TRACED socket records
// only, which carry no verdict, is grey). Plain SVG, redrawn at most every
// REDRAW_MS; elements are kept by key and updated in place.

const SVG = 'http://www.w3.org/2000/svg';
const REDRAW_MS = 500;
const MAX_NODES = 80;

function el(name, attrs = {}) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

export class ServiceMap {
  constructor(svg, summary) {
    this.svg = svg;
    this.summary = summary;
    this.nodes = new Map(); // key -> {key, ns, name, count, el, x, y}
    this.edges = new Map(); // "from\u0000to" -> {from, to, f, d, a, t, el}
    this.dirty = false;
    this.last = 0;
    const defs = el('defs');
    for (const v of ['fwd', 'drop', 'audit', 'trace']) {
      const m = el('marker', { id: `arrow-${v}`, viewBox: '0 0 10 10', refX: '10', refY: '5',
        markerWidth: '9', markerHeight: '9', markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' });
      m.appendChild(el('path', { d: 'M0,0 L10,5 L0,10 z', class: `arrow ${v}` }));
      defs.appendChild(m);
    }
    this.gEdges = el('g', { class: 'edges' });
    this.gNodes = el('g', { class: 'nodes' });
    svg.append(defs, this.gEdges, this.gNodes);
    new ResizeObserver(() => { this.layoutDirty = true; this.schedule(); }).observe(svg);
  }

  clear() {
    this.nodes.clear();
    this.edges.clear();
    this.gEdges.replaceChildren();
    this.gNodes.replaceChildren();
    this.layoutDirty = true;
    this.schedule();
  }

  add(rows) {
    for (const r of rows) {
      if (!r.onMap) continue; // a multicast group is no workload
      const a = this.node(r.srcKey), b = this.node(r.dstKey);
      if (!a || !b) continue;
      a.count++; b.count++;
      const key = `${r.srcKey}\u0000${r.dstKey}`;
      let e = this.edges.get(key);
      if (!e) {
        e = { from: a, to: b, f: 0, d: 0, a: 0, t: 0, el: null };
        this.edges.set(key, e);
      }
      if (r.verdict === 'DROPPED' || r.verdict === 'ERROR') e.d++;
      else if (r.verdict === 'AUDIT') e.a++;
      else if (r.verdict === 'TRACED') e.t++;
      else e.f++;
    }
    this.schedule();
  }

  node(key) {
    let n = this.nodes.get(key);
    if (n) return n;
    if (this.nodes.size >= MAX_NODES) return null;
    const slash = key.indexOf('/');
    n = { key, ns: slash > 0 ? key.slice(0, slash) : '', name: slash > 0 ? key.slice(slash + 1) : key,
      count: 0, el: null, x: 0, y: 0 };
    this.nodes.set(key, n);
    this.layoutDirty = true;
    return n;
  }

  schedule() {
    if (this.dirty) return;
    this.dirty = true;
    const wait = Math.max(0, this.last + REDRAW_MS - performance.now());
    setTimeout(() => requestAnimationFrame(() => this.draw()), wait);
  }

  layout() {
    const w = this.svg.clientWidth || 600, h = this.svg.clientHeight || 300;
    const list = [...this.nodes.values()].sort((p, q) => (p.ns + '/' + p.name).localeCompare(q.ns + '/' + q.name));
    const cx = w / 2, cy = h / 2;
    // An ellipse as wide as the panel allows: the panel is wide and low.
    const ry = Math.max(40, h / 2 - 36);
    const rx = Math.max(60, Math.min(w / 2 - 90, ry * 3.6));
    list.forEach((n, i) => {
      const t = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(1, list.length);
      n.x = list.length === 1 ? cx : cx + rx * Math.cos(t);
      n.y = list.length === 1 ? cy : cy + ry * Math.sin(t);
    });
    this.layoutDirty = false;
  }

  draw() {
    this.dirty = false;
    this.last = performance.now();
    if (this.layoutDirty) this.layout();
    for (const n of this.nodes.values()) {
      if (!n.el) {
        n.el = el('g', { class: 'node', 'data-testid': 'map-node', 'data-key': n.key });
        n.el.append(el('circle', { r: '9' }), el('text', { class: 'name', y: '-14' }), el('text', { class: 'ns', y: '24' }));
        n.el.children[1].textContent = n.name;
        n.el.children[2].textContent = n.ns;
        n.el.appendChild(el('title'));
        this.gNodes.appendChild(n.el);
      }
      n.el.setAttribute('transform', `translate(${n.x.toFixed(1)},${n.y.toFixed(1)})`);
      n.el.lastChild.textContent = `${n.key}\n${n.count} flows`;
    }
    for (const e of this.edges.values()) {
      const verdict = e.d ? 'DROPPED' : e.a ? 'AUDIT' : e.f ? 'FORWARDED' : 'TRACED';
      const cls = e.d ? 'drop' : e.a ? 'audit' : e.f ? 'fwd' : 'trace';
      if (!e.el) {
        e.el = el('path', { 'data-testid': 'map-edge', 'data-from': e.from.key, 'data-to': e.to.key });
        e.el.appendChild(el('title'));
        this.gEdges.appendChild(e.el);
      }
      e.el.setAttribute('d', edgePath(e.from, e.to));
      e.el.setAttribute('class', `edge ${cls}`);
      e.el.setAttribute('data-verdict', verdict);
      e.el.setAttribute('marker-end', `url(#arrow-${cls})`);
      const total = e.f + e.d + e.a + e.t;
      e.el.style.strokeWidth = (1.2 + Math.min(4, Math.log10(1 + total))).toFixed(1);
      e.el.firstChild.textContent = `${e.from.key} → ${e.to.key}\nforwarded ${e.f}, dropped ${e.d}, audit ${e.a}, traced ${e.t}`;
    }
    if (this.summary) this.summary.textContent = `${this.nodes.size} workloads, ${this.edges.size} edges`;
  }
}

// edgePath is a gentle curve that stops short of the target's circle, so
// that a→b and b→a do not overlap.
function edgePath(a, b) {
  if (a === b) {
    return `M${a.x - 6},${a.y - 8} C${a.x - 30},${a.y - 50} ${a.x + 30},${a.y - 50} ${a.x + 6},${a.y - 8}`;
  }
  const dx = b.x - a.x, dy = b.y - a.y;
  const len = Math.hypot(dx, dy) || 1;
  const ux = dx / len, uy = dy / len;
  const sx = a.x + ux * 11, sy = a.y + uy * 11;
  const tx = b.x - ux * 13, ty = b.y - uy * 13;
  const bend = Math.min(40, len * 0.15);
  const mx = (sx + tx) / 2 - uy * bend, my = (sy + ty) / 2 + ux * bend;
  return `M${sx.toFixed(1)},${sy.toFixed(1)} Q${mx.toFixed(1)},${my.toFixed(1)} ${tx.toFixed(1)},${ty.toFixed(1)}`;
}
