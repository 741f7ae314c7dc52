// The L7 record of a flow ("l7", Hubble's Layer7) as the table's L7 INFO
// column and the detail pane show it, like Hubble UI: a request with "→",
// a response with "←", a DNS query with "?".

const HTTP_STATUS = {
  100: 'Continue', 101: 'Switching Protocols',
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 206: 'Partial Content',
  301: 'Moved Permanently', 302: 'Found', 303: 'See Other', 304: 'Not Modified',
  307: 'Temporary Redirect', 308: 'Permanent Redirect',
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 408: 'Request Timeout', 409: 'Conflict', 410: 'Gone',
  413: 'Payload Too Large', 415: 'Unsupported Media Type', 422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error', 501: 'Not Implemented', 502: 'Bad Gateway',
  503: 'Service Unavailable', 504: 'Gateway Timeout',
};

const DNS_RCODE = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED',
  'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NOTAUTH', 'NOTZONE'];

export function httpStatusText(code) {
  return HTTP_STATUS[code] || '';
}

export function dnsRcodeName(rcode) {
  return DNS_RCODE[rcode] || `RCODE ${rcode}`;
}

// latencyMs is latency_ns (protojson writes it as a string) in whole
// milliseconds, as Hubble's summary counts them.
function latencyMs(l7) {
  return Math.floor(Number(l7.latency_ns || 0) / 1e6);
}

// urlPath is a URL's path and query ("/a?b"); a URL that is already a path
// stays as it is.
function urlPath(url) {
  if (!url) return '';
  try {
    const u = new URL(url);
    return u.pathname + u.search;
  } catch {
    return url;
  }
}

function dnsAnswer(dns) {
  if (dns.rcode) return dnsRcodeName(dns.rcode);
  if (dns.ips && dns.ips.length) return dns.ips.join(', ');
  if (dns.cnames && dns.cnames.length) return `CNAME ${dns.cnames.join(', ')}`;
  return 'no answer';
}

// l7Info is the L7 INFO cell: "→ PUT /applicants/_create/103294",
// "← 200 OK 12ms", "? example.com. A", "← 198.18.0.10, 198.18.0.11"; '' for
// a flow without an L7 record.
export function l7Info(l7) {
  if (!l7) return '';
  const response = l7.type === 'RESPONSE';
  if (l7.http) {
    const h = l7.http;
    if (response) return `← ${h.code || ''} ${httpStatusText(h.code)} ${latencyMs(l7)}ms`.replace(/ +/g, ' ');
    return `→ ${h.method || ''} ${urlPath(h.url)}`;
  }
  if (l7.dns) {
    const d = l7.dns;
    if (response) return `← ${dnsAnswer(d)}`;
    return `? ${d.query || ''} ${(d.qtypes || []).join(',')}`.trim();
  }
  if (l7.kafka) {
    const k = l7.kafka;
    const what = `${k.api_key || ''} ${k.topic || ''}`.trim();
    if (response) return `← ${what}${k.error_code ? ` error ${k.error_code}` : ''}`;
    return `→ ${what}`;
  }
  return (l7.type || '').toLowerCase();
}

// l7Title is the L7 INFO cell's tooltip: the whole record in one line.
export function l7Title(l7) {
  if (!l7) return '';
  if (l7.http) return `${l7.http.method || ''} ${l7.http.url || ''} ${l7.http.protocol || ''}`.trim();
  if (l7.dns) return `${l7.dns.query || ''} ${(l7.dns.qtypes || []).join(',')}`.trim();
  return '';
}

// l7Fields are the detail pane's rows for the L7 record.
export function l7Fields(l7) {
  if (!l7) return [];
  const proto = l7.http ? 'HTTP' : l7.dns ? 'DNS' : l7.kafka ? 'Kafka' : 'L7';
  const out = [['L7', `${proto} ${l7.type || ''}`.trim()]];
  if (l7.latency_ns) out.push(['Latency', `${(Number(l7.latency_ns) / 1e6).toFixed(3).replace(/\.?0+$/, '')} ms`]);
  if (l7.http) {
    const h = l7.http;
    out.push(['Request', `${h.method || ''} ${h.url || ''}`.trim()], ['HTTP protocol', h.protocol || '']);
    if (h.code) out.push(['Status', `${h.code} ${httpStatusText(h.code)}`.trim()]);
    if (h.headers && h.headers.length) out.push(['Headers', h.headers.map((x) => `${x.key}: ${x.value || ''}`).join(', ')]);
  }
  if (l7.dns) {
    const d = l7.dns;
    out.push(['DNS query', `${d.query || ''} ${(d.qtypes || []).join(',')}`.trim()]);
    if (l7.type === 'RESPONSE') {
      out.push(['DNS answer', dnsAnswer(d)], ['DNS rcode', dnsRcodeName(d.rcode || 0)]);
      if (d.cnames && d.cnames.length) out.push(['CNAMEs', d.cnames.join(', ')]);
      if (d.ttl) out.push(['TTL', `${d.ttl} s`]);
      if (d.rrtypes && d.rrtypes.length) out.push(['Record types', d.rrtypes.join(', ')]);
    }
    if (d.observation_source) out.push(['Observed by', d.observation_source]);
  }
  if (l7.kafka) {
    const k = l7.kafka;
    out.push(['Kafka', `${k.api_key || ''} v${k.api_version || 0} topic ${k.topic || ''}`],
      ['Correlation id', String(k.correlation_id || 0)]);
    if (l7.type === 'RESPONSE') out.push(['Error code', String(k.error_code || 0)]);
  }
  return out.filter(([, v]) => v !== '');
}
