// A virtualized flow table: the rows live in an array (oldest first, capped);
// only the rows in view have DOM elements, recycled from a pool and
// absolutely positioned in a spacer as tall as all the rows. Newest on top.

export const ROW_HEIGHT = 28;

const CELLS = ['src', 'dst', 'port', 'l7', 'dir', 'verdict', 'flags', 'bytes', 'packets', 'time'];

export class FlowTable {
  anchor = 0; // pixels to scroll down at the next render

  constructor(viewport, spacer, { cap = 10000, onSelect = () => {}, onRender = () => {} } = {}) {
    this.viewport = viewport;
    this.spacer = spacer;
    this.cap = cap;
    this.rows = [];
    this.pool = [];
    this.selected = null;
    this.onSelect = onSelect;
    this.onRender = onRender;
    this.scheduled = false;
    this.renders = 0;
    viewport.addEventListener('scroll', () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(viewport);
    viewport.addEventListener('click', (e) => {
      const el = e.target.closest('.row[data-index]');
      if (!el) return;
      const row = this.rows[this.rows.length - 1 - Number(el.dataset.index)];
      if (row) this.select(row);
    });
    viewport.addEventListener('keydown', (e) => this.onKey(e));
  }

  // add appends rows (oldest first). Keeps the view steady when the user has
  // scrolled down: rows arriving on top push the scroll position along.
  add(rows) {
    if (!rows.length) return;
    if (rows.length >= this.cap) {
      this.rows = rows.slice(rows.length - this.cap);
    } else {
      for (const r of rows) this.rows.push(r);
      if (this.rows.length > this.cap) this.rows.splice(0, this.rows.length - this.cap);
    }
    if (this.viewport.scrollTop > 0) this.anchor += Math.min(rows.length, this.cap) * ROW_HEIGHT;
    this.schedule();
  }

  // replace swaps in a whole new set (a history result, a new filter).
  replace(rows) {
    this.rows = rows.length > this.cap ? rows.slice(rows.length - this.cap) : rows.slice();
    this.selected = null;
    this.viewport.scrollTop = 0;
    this.schedule();
  }

  clear() { this.replace([]); }

  get length() { return this.rows.length; }

  select(row) {
    this.selected = row;
    this.onSelect(row);
    this.schedule();
  }

  onKey(e) {
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    const n = this.rows.length;
    let i = this.selected ? n - 1 - this.rows.indexOf(this.selected) : -1;
    i = Math.max(0, Math.min(n - 1, i + (e.key === 'ArrowDown' ? 1 : -1)));
    if (n) this.select(this.rows[n - 1 - i]);
    e.preventDefault();
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => { if (this.scheduled) this.render(); });
  }

  render() {
    this.scheduled = false;
    const t0 = performance.now();
    const vp = this.viewport;
    const n = this.rows.length;
    this.spacer.style.height = `${n * ROW_HEIGHT}px`;
    if (this.anchor) {
      vp.scrollTop += this.anchor;
      this.anchor = 0;
    }
    const first = Math.max(0, Math.floor(vp.scrollTop / ROW_HEIGHT) - 2);
    const count = Math.min(n - first, Math.ceil(vp.clientHeight / ROW_HEIGHT) + 5);
    while (this.pool.length < count) this.pool.push(this.makeRow());
    for (let k = 0; k < this.pool.length; k++) {
      const el = this.pool[k];
      if (k >= count) {
        if (!el.hidden) { el.hidden = true; el._row = null; }
        continue;
      }
      const i = first + k;
      const row = this.rows[n - 1 - i];
      el.hidden = false;
      if (el._i !== i) {
        el._i = i;
        el.dataset.index = i;
        el.style.transform = `translateY(${i * ROW_HEIGHT}px)`;
      }
      if (el._row !== row) this.fill(el, row);
      el.classList.toggle('selected', row === this.selected);
    }
    this.renders++;
    this.onRender(performance.now() - t0);
  }

  makeRow() {
    const el = document.createElement('div');
    el.className = 'row';
    el.setAttribute('role', 'row');
    el.dataset.testid = 'flow-row';
    el._cells = CELLS.map((c) => {
      const d = document.createElement('div');
      d.className = `c-${c}`;
      el.appendChild(d);
      return d;
    });
    const v = el._cells[CELLS.indexOf('verdict')];
    v.appendChild(document.createElement('span')).className = 'verdict';
    this.spacer.appendChild(el);
    return el;
  }

  fill(el, row) {
    el._row = row;
    const c = el._cells;
    c[0].textContent = row.src; c[0].title = row.srcTitle;
    c[1].textContent = row.dst; c[1].title = row.dstTitle;
    c[2].textContent = row.port;
    c[3].textContent = row.l7; c[3].title = row.l7Title;
    c[4].textContent = row.dir;
    c[4].title = row.points.length > 1 ? row.points.join('\n') : '';
    const v = c[5].firstChild;
    v.textContent = row.verdict;
    v.className = `verdict v-${row.verdict}`;
    c[6].textContent = row.flags;
    c[7].textContent = row.bytes;
    c[8].textContent = row.packets;
    c[9].textContent = row.time; c[9].title = row.timeTitle;
    el.dataset.verdict = row.verdict;
    el.dataset.src = row.src;
    el.dataset.dst = row.dst;
    el.dataset.points = row.points.length;
  }
}
