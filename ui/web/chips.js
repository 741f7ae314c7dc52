// Filter chips in the syntax [!][from:|to:]kind=value. The chips live in the
// page's URL (?filter=...&filter=...) so that a view can be shared by link.

// KINDS are filter.Kinds' names (ui/kinds_test.go fails when one is missing).
export const KINDS = ['label', 'ip', 'dns', 'identity', 'pod', 'workload', 'namespace', 'verdict',
  'port', 'protocol', 'tcp-flag', 'node', 'type', 'traffic-direction', 'reply', 'ip-version', 'drop-reason',
  'event-type', 'uuid', 'interface', 'http-status', 'http-method', 'http-path', 'http-url', 'http-header',
  'trace-id', 'dns-query'];

const CHIP = /^(!)?(from:|to:)?([a-z-]+)=(.+)$/;

// check returns a problem with a chip's shape, or '' (the server has the
// last word on values).
export function check(chip) {
  const m = CHIP.exec(chip);
  if (!m) return `filter "${chip}": want [!][from:|to:]kind=value`;
  if (!KINDS.includes(m[3])) return `filter "${chip}": unknown kind "${m[3]}" (want ${KINDS.join(', ')})`;
  return '';
}

export function chipsFromURL(loc = window.location) {
  return new URLSearchParams(loc.search).getAll('filter').filter((c) => c.trim() !== '');
}

// writeURL replaces the filters in the URL, keeping other parameters.
export function writeURL(chips) {
  const u = new URL(window.location.href);
  u.searchParams.delete('filter');
  for (const c of chips) u.searchParams.append('filter', c);
  if (u.href !== window.location.href) history.pushState({ chips }, '', u);
}

export class Chips {
  constructor(box, input, onChange) {
    this.box = box;
    this.input = input;
    this.onChange = onChange;
    this.chips = [];
    this.bad = new Set();
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        this.addFromInput();
      } else if (e.key === 'Backspace' && input.value === '' && this.chips.length) {
        this.remove(this.chips.length - 1);
      }
    });
    box.addEventListener('click', (e) => {
      const x = e.target.closest('[data-remove]');
      if (x) this.remove(Number(x.dataset.remove));
    });
  }

  addFromInput() {
    const text = this.input.value.trim();
    if (!text) return;
    const problem = check(text);
    if (problem) {
      this.onChange(null, problem);
      return;
    }
    this.input.value = '';
    if (!this.chips.includes(text)) this.set([...this.chips, text], true);
  }

  remove(i) {
    const next = this.chips.slice();
    next.splice(i, 1);
    this.set(next, true);
  }

  // set shows chips; notify tells the app to resubscribe and update the URL.
  set(chips, notify) {
    this.chips = chips;
    this.bad.clear();
    this.render();
    if (notify) this.onChange(chips, '');
  }

  markBad(chip) {
    this.bad.add(chip);
    this.render();
  }

  render() {
    this.box.replaceChildren(...this.chips.map((c, i) => {
      const el = document.createElement('span');
      el.className = 'chip' + (c.startsWith('!') ? ' neg' : '') + (this.bad.has(c) ? ' bad' : '');
      el.dataset.testid = 'filter-chip';
      el.dataset.chip = c;
      const m = CHIP.exec(c);
      if (m) {
        if (m[1]) el.appendChild(span('not', 'not'));
        if (m[2]) el.appendChild(span('side', m[2].slice(0, -1)));
        el.appendChild(span('kind', m[3]));
        el.appendChild(span('value', m[4]));
      } else {
        el.appendChild(span('value', c));
      }
      const x = document.createElement('button');
      x.className = 'x';
      x.textContent = '×';
      x.title = 'Remove filter';
      x.dataset.remove = i;
      x.dataset.testid = 'chip-remove';
      el.appendChild(x);
      return el;
    }));
  }
}

function span(cls, text) {
  const s = document.createElement('span');
  s.className = cls;
  s.textContent = text;
  return s;
}
