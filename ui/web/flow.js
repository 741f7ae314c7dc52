// Turning Hubble-shaped flow records ({"flow":{...},"node_name","time"})
// into the strings the table, the detail pane and the service map show.

import { l7Info, l7Title, l7Fields } from './l7.js';

const WORLD = 'reserved:world';

function l4Of(f) {
  const l4 = f.l4 || {};
  for (const proto of ['TCP', 'UDP', 'SCTP', 'ICMPv4', 'ICMPv6']) {
    if (l4[proto]) return [proto, l4[proto]];
  }
  return ['', {}];
}

// endpointName is how Hubble names an endpoint: namespace/pod, else the
// DNS names its address was resolved from, else "world" or the address.
function endpointName(ep, ip, names) {
  if (ep.pod_name) return ep.namespace ? `${ep.namespace}/${ep.pod_name}` : ep.pod_name;
  if (names && names.length) return names.join(', ');
  const labels = ep.labels || [];
  if (labels.includes(WORLD)) return ip ? `world ${ip}` : 'world';
  for (const l of labels) if (l.startsWith('reserved:')) return l.slice(9) + (ip ? ` ${ip}` : '');
  return ip || '—';
}

// groupOrUnspecified is true for a multicast group (ff00::/8,
// 224.0.0.0/4), the IPv4 broadcast address and the unspecified address:
// no workload is there, so the service map draws no node for them (a
// pod's neighbour discovery, MLD, DHCP).
function groupOrUnspecified(ip) {
  if (!ip) return false;
  if (ip === '::' || ip === '0.0.0.0' || ip === '255.255.255.255') return true;
  if (/^ff[0-9a-f]{2}:/i.test(ip)) return true;
  const first = Number(ip.split('.')[0]);
  return ip.includes('.') && !ip.includes(':') && first >= 224 && first <= 239;
}

// workloadKey names an endpoint's node on the service map: a workload, else
// the first DNS name of its address (as Hubble UI draws a world peer by
// its name), else "world" or the address.
export function workloadKey(ep, ip, names) {
  const labels = ep.labels || [];
  const wl = (ep.workloads && ep.workloads[0] && ep.workloads[0].name) ||
    (labels.find((l) => /(^|:)app=/.test(l)) || '').replace(/^(.*:)?app=/, '') || ep.pod_name;
  if (wl) return ep.namespace ? `${ep.namespace}/${wl}` : wl;
  if (names && names.length) return names[0];
  if (labels.includes(WORLD)) return 'world';
  for (const l of labels) if (l.startsWith('reserved:')) return l.slice(9);
  return ip || 'unknown';
}

function endpointTitle(ep, ip, names) {
  const lines = [];
  if (ip) lines.push(`IP ${ip}`);
  if (names && names.length) lines.push(`DNS ${names.join(', ')}`);
  if (ep.identity) lines.push(`identity ${ep.identity}`);
  for (const l of ep.labels || []) lines.push(l);
  return lines.join('\n');
}

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
export function fmtBytes(n) {
  if (!n) return '0';
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

function fmtCount(n) {
  if (!n) return '0';
  if (n < 10000) return String(n);
  if (n < 1e6) return `${(n / 1e3).toFixed(1)}k`;
  return `${(n / 1e6).toFixed(1)}M`;
}

// observationPoints are where the datapath saw the flow: the record's own
// point, then, for a connection it saw at two interfaces of the node (one
// record, docs/FLOWS.md), periscope.other_observation. Hubble's per-point
// view (hubble observe --interface, --hubble-observation-points=each)
// serves each as a flow of its own.
export function observationPoints(f) {
  const p = f.periscope || {};
  const own = {
    interface: f.interface, initiator_hook: p.initiator_hook, traffic_direction: f.traffic_direction,
    verdict: f.verdict, drop_reason_desc: f.drop_reason_desc, forward: p.forward, reply: p.reply,
  };
  return p.other_observation ? [own, p.other_observation] : [own];
}

// pointText says one observation point: its interface, the direction for
// its endpoint, its verdict and its own counts (forward / reply).
function pointText(o) {
  const i = o.interface || {};
  const fw = o.forward || {}, rp = o.reply || {};
  return [
    `${i.name || 'interface'} (${i.index || 0})`,
    (o.traffic_direction || '').toLowerCase(),
    (o.verdict || 'VERDICT_UNKNOWN') + (o.drop_reason_desc ? ` (${o.drop_reason_desc})` : ''),
    `${fmtCount(fw.packets)} / ${fmtCount(rp.packets)} packets`,
    `${fmtBytes(fw.bytes)} / ${fmtBytes(rp.bytes)}`,
  ].filter(Boolean).join(' · ');
}

// toRow extracts everything a table row, the map and the detail pane need,
// once per flow.
export function toRow(msg) {
  const f = msg.flow || {};
  const ip = f.IP || {};
  const src = f.source || {};
  const dst = f.destination || {};
  const [proto, l4] = l4Of(f);
  const p = f.periscope || {};
  const fw = p.forward || {};
  const rp = p.reply || {};
  const time = f.time || msg.time || '';
  // The map draws a connection from its client: an L7 response, which like
  // Hubble's goes from the server, counts for the edge of its request.
  const flip = f.l7 && f.is_reply;
  const srcNames = f.source_names || [], dstNames = f.destination_names || [];
  const srcKey = workloadKey(src, ip.source, srcNames), dstKey = workloadKey(dst, ip.destination, dstNames);
  const points = observationPoints(f);
  return {
    msg,
    src: endpointName(src, ip.source, srcNames),
    srcTitle: endpointTitle(src, ip.source, srcNames),
    dst: endpointName(dst, ip.destination, dstNames),
    dstTitle: endpointTitle(dst, ip.destination, dstNames),
    srcKey: flip ? dstKey : srcKey,
    dstKey: flip ? srcKey : dstKey,
    onMap: !groupOrUnspecified(ip.source) && !groupOrUnspecified(ip.destination),
    port: l4.destination_port != null ? `${l4.destination_port}/${proto}` : (proto ? proto : ''),
    l7: l7Info(f.l7),
    l7Title: l7Title(f.l7),
    dir: (f.traffic_direction || '').toLowerCase() + (points.length > 1 ? ' ⇄' : ''),
    points: points.map(pointText),
    verdict: f.verdict || 'VERDICT_UNKNOWN',
    flags: l4.flags ? Object.keys(l4.flags).join(' ') : '',
    bytes: `${fmtBytes(fw.bytes)} / ${fmtBytes(rp.bytes)}`,
    packets: `${fmtCount(fw.packets)} / ${fmtCount(rp.packets)}`,
    time: time.length >= 23 ? time.slice(11, 23) : time,
    timeTitle: time,
  };
}

// detailFields are the key fields shown above the JSON in the detail pane.
export function detailFields(row) {
  const f = row.msg.flow || {};
  const ip = f.IP || {};
  const [proto, l4] = l4Of(f);
  const p = f.periscope || {};
  // Hubble's policy: name, namespace, kind, revision (a string in protojson).
  const polName = (x) => (x.namespace ? x.namespace + '/' : '') + x.name +
    (x.kind ? ` (${x.kind}${x.revision ? ', revision ' + x.revision : ''})` : '');
  const pol = (k) => (f[k] || []).map(polName).join(', ');
  return [
    ['Time', row.timeTitle],
    ['Verdict', row.verdict + (f.drop_reason_desc ? ` (${f.drop_reason_desc})` : '')],
    ['Source', `${row.src}${ip.source ? `  ${ip.source}${l4.source_port ? ':' + l4.source_port : ''}` : ''}`],
    ['Destination', `${row.dst}${ip.destination ? `  ${ip.destination}${l4.destination_port ? ':' + l4.destination_port : ''}` : ''}`],
    ['Source labels', ((f.source || {}).labels || []).join(', ')],
    ['Destination labels', ((f.destination || {}).labels || []).join(', ')],
    ['Source names', (f.source_names || []).join(', ')],
    ['Destination names', (f.destination_names || []).join(', ')],
    ['Protocol', proto],
    ...l7Fields(f.l7),
    ['Trace ID', ((f.trace_context || {}).parent || {}).trace_id || ''],
    ['Direction', (f.traffic_direction || '').toLowerCase()],
    ['TCP flags', row.flags],
    ['Event', p.event || ''],
    ['Bytes →/←', row.bytes],
    ['Packets →/←', row.packets],
    ['Node', f.node_name || row.msg.node_name || ''],
    ...(row.points.length > 1
      ? [['Observed at', row.points[0]], ['Also observed at', row.points[1]]]
      : [['Interface', f.interface ? `${f.interface.name || ''} (${f.interface.index})` : '']]),
    ['Allowed by', [pol('egress_allowed_by'), pol('ingress_allowed_by')].filter(Boolean).join(', ')],
    ['Denied by', [pol('egress_denied_by'), pol('ingress_denied_by')].filter(Boolean).join(', ')],
    ['Summary', f.Summary || ''],
  ].filter(([, v]) => v !== '' && v != null);
}
