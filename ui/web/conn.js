// The WebSocket to /api/v1/ws: subscribe, receive batches, reconnect with
// backoff. Messages of an older subscription ("sub" below ours) are dropped.

export class Conn {
  constructor({ token, onFlows, onStatus, onError, onState }) {
    this.token = token;
    this.handlers = { onFlows, onStatus, onError, onState };
    this.subOnConn = 0; // the server numbers a connection's subscribes from 1
    this.want = null; // the last subscribe request, re-sent on reconnect
    this.backoff = 500;
    this.closed = true;
  }

  url() {
    const u = new URL('api/v1/ws', window.location.href);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    u.search = '';
    if (this.token) u.searchParams.set('token', this.token);
    return u.href;
  }

  open() {
    this.closed = false;
    this.handlers.onState('connecting');
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 500;
      this.subOnConn = 0;
      this.handlers.onState('live');
      if (this.want) this.send(this.want);
    };
    ws.onmessage = (e) => this.onMessage(e.data);
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closed) { this.handlers.onState('closed'); return; }
      this.handlers.onState('reconnecting');
      setTimeout(() => { if (!this.closed) this.open(); }, this.backoff);
      this.backoff = Math.min(this.backoff * 2, 10000);
    };
  }

  close() {
    this.closed = true;
    if (this.ws) this.ws.close();
    this.ws = null;
    this.handlers.onState('closed');
  }

  // subscribe replaces the subscription; it takes effect on (re)connect.
  subscribe(filters, { last = 0, since = '' } = {}) {
    this.want = { type: 'subscribe', filters, last, since };
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.send(this.want);
  }

  send(req) {
    this.subOnConn++;
    this.ws.send(JSON.stringify(req));
  }

  onMessage(data) {
    const t0 = performance.now();
    let m;
    try { m = JSON.parse(data); } catch { return; }
    switch (m.type) {
      case 'flows':
        if (m.sub !== this.subOnConn) return; // an older subscription's
        this.handlers.onFlows(m, t0);
        break;
      case 'status': this.handlers.onStatus(m); break;
      case 'error': this.handlers.onError(m.message); break;
    }
  }
}
