// The detail pane: the key fields of the selected flow, then the whole
// record as pretty JSON.

import { detailFields } from './flow.js';

export class Detail {
  constructor(pane, fields, json, closeBtn, onClose) {
    this.pane = pane;
    this.fields = fields;
    this.json = json;
    closeBtn.addEventListener('click', () => { this.hide(); onClose(); });
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && !this.pane.hidden) { this.hide(); onClose(); }
    });
  }

  show(row) {
    const items = [];
    for (const [k, v] of detailFields(row)) {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      if (k === 'Verdict') dd.className = `verdict v-${row.verdict}`;
      items.push(dt, dd);
    }
    this.fields.replaceChildren(...items);
    this.json.textContent = JSON.stringify(row.msg, null, 2);
    this.pane.hidden = false;
  }

  hide() { this.pane.hidden = true; }
}
