// A small in-process nodb host for unit tests, speaking abi/PROTOCOL.md
// (nodb.v1.json): hello, publish/ack with exactly-once dedupe, ping/pong,
// subscribe/snapshot/patch/progress/subscribed/unsubscribe (patch and progress
// carry no id: they name their view). It has one view,
// "kv": event "set" {key, value} adds/replaces /key, "del" {key} removes it,
// anything else leaves the view unchanged (progress only). Knobs let tests
// lose acks, refuse writes and cut connections.
import http from 'node:http';
import { WebSocketServer } from 'ws';

const esc = (k) => k.replace(/~/g, '~0').replace(/\//g, '~1');

export async function startFakeServer(opts = {}) {
  const srv = {
    log: [], // {seq, producer, pseq, type, payload}
    producers: new Map(), // producer -> {last, seqs: Map<pseq, seq>}
    state: {},
    history: [], // {seq, ops} of the kv view
    historyFrom: 0, // resume works for since >= historyFrom
    conns: new Set(),
    received: [], // every client message, parsed
    requests: [], // the URL (path and query) of every WebSocket handshake
    // knobs
    loseAcks: 0, // store the next N publishes, then cut the connection instead of acking
    refuse: 0, // answer the next N publishes with "unavailable" (not stored)
    views: new Set(['kv']),
    maxFrame: opts.maxFrame ?? 1 << 20,
  };

  const httpServer = http.createServer((req, res) => {
    res.writeHead(404);
    res.end();
  });
  const wss = new WebSocketServer({
    server: httpServer,
    path: '/v1/ws',
    maxPayload: srv.maxFrame,
    handleProtocols: (protocols) => (protocols.has('nodb.v1.json') ? 'nodb.v1.json' : false),
  });
  await new Promise((r) => httpServer.listen(0, '127.0.0.1', r));
  srv.port = httpServer.address().port;
  srv.url = `ws://127.0.0.1:${srv.port}/v1/ws`;

  const send = (c, m) => {
    if (c.ws.readyState === 1) c.ws.send(JSON.stringify(m));
  };
  const head = () => srv.log.length;

  function apply(ev) {
    const ops = [];
    const p = ev.payload ?? {};
    if (ev.type === 'set' && typeof p.key === 'string') {
      ops.push({ op: p.key in srv.state ? 'replace' : 'add', path: '/' + esc(p.key), value: p.value });
      srv.state = { ...srv.state, [p.key]: p.value };
    } else if (ev.type === 'del' && typeof p.key === 'string' && p.key in srv.state) {
      ops.push({ op: 'remove', path: '/' + esc(p.key) });
      const { [p.key]: _, ...rest } = srv.state;
      srv.state = rest;
    }
    if (ops.length) srv.history.push({ seq: ev.seq, ops });
    for (const c of srv.conns) {
      for (const view of c.subs.keys()) {
        // like the real host: no id, the same bytes for every subscriber
        if (ops.length) send(c, { type: 'patch', view, seq: ev.seq, ops });
        else send(c, { type: 'progress', view, seq: ev.seq });
      }
    }
  }

  function publish(c, m) {
    const e = m.event;
    if (!e || typeof e.producer !== 'string' || !e.producer || typeof e.type !== 'string' || !e.type || !Number.isInteger(e.pseq) || e.pseq < 1)
      return send(c, { type: 'error', id: m.id, code: 'bad_request', error: 'event needs producer, pseq >= 1 and type' });
    if (e.type === 'bad') return send(c, { type: 'error', id: m.id, code: 'bad_request', error: 'type "bad" is refused by the fake' });
    if (srv.refuse > 0) {
      srv.refuse--;
      return send(c, { type: 'error', id: m.id, code: 'unavailable', error: 'storage unavailable (fake)' });
    }
    let p = srv.producers.get(e.producer);
    if (!p) srv.producers.set(e.producer, (p = { last: 0, seqs: new Map() }));
    if (e.pseq <= p.last) return send(c, { type: 'ack', id: m.id, seq: p.seqs.get(e.pseq), duplicate: true });
    if (e.pseq > p.last + 1)
      return send(c, {
        type: 'error', id: m.id, code: 'pseq_gap', expected_pseq: p.last + 1,
        error: `pseq ${e.pseq} skips ahead: producer ${JSON.stringify(e.producer)} expects pseq ${p.last + 1} next`,
      });
    const ev = { seq: srv.log.length + 1, producer: e.producer, pseq: e.pseq, type: e.type, payload: e.payload ?? null };
    srv.log.push(ev);
    p.last = e.pseq;
    p.seqs.set(e.pseq, ev.seq);
    if (srv.loseAcks > 0) {
      srv.loseAcks--;
      c.ws.terminate(); // stored, but the ack never arrives
      apply(ev);
      return;
    }
    send(c, { type: 'ack', id: m.id, seq: ev.seq, duplicate: false });
    apply(ev);
  }

  function subscribe(c, m) {
    if (!srv.views.has(m.view))
      return send(c, { type: 'error', id: m.id, code: 'not_found', error: `no view named ${JSON.stringify(m.view)}` });
    c.subs.set(m.view, { id: m.id }); // subscribing again replaces
    if (typeof m.since === 'number' && m.since >= srv.historyFrom && m.since <= head()) {
      send(c, { type: 'subscribed', id: m.id, view: m.view, seq: m.since });
      let last = m.since;
      for (const h of srv.history) if (h.seq > m.since) send(c, { type: 'patch', view: m.view, seq: (last = h.seq), ops: h.ops });
      if (head() > last) send(c, { type: 'progress', view: m.view, seq: head() });
      return;
    }
    send(c, { type: 'snapshot', id: m.id, view: m.view, seq: head(), state: srv.state, ...(m.since !== undefined ? { reset: true } : {}) });
  }

  wss.on('connection', (ws, req) => {
    srv.requests.push(req.url);
    const c = { ws, subs: new Map() };
    srv.conns.add(c);
    ws.on('close', () => srv.conns.delete(c));
    send(c, { type: 'hello', protocol: 1, server: 'nodb', version: 'fake', max_frame: srv.maxFrame, head: head() });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return ws.close(1002, 'text frames only');
      let m;
      try {
        m = JSON.parse(data.toString());
      } catch {
        return send(c, { type: 'error', code: 'bad_request', error: 'not JSON' });
      }
      srv.received.push(m);
      if (srv.onMessage && srv.onMessage(c, m) === false) return;
      switch (m.type) {
        case 'publish': return publish(c, m);
        case 'ping': return send(c, { type: 'pong', id: m.id });
        case 'subscribe': return subscribe(c, m);
        case 'unsubscribe':
          c.subs.delete(m.view);
          return send(c, { type: 'unsubscribed', id: m.id, view: m.view });
        default:
          return send(c, { type: 'error', id: m.id, code: 'unknown_type', error: `unknown message type ${JSON.stringify(m.type)}` });
      }
    });
  });

  srv.kill = () => {
    for (const c of srv.conns) c.ws.terminate();
  };
  srv.stop = async () => {
    srv.kill();
    await new Promise((r) => wss.close(r));
    await new Promise((r) => httpServer.close(r));
  };
  // Like a slow-consumer resync: a reset snapshot without an id.
  srv.resync = () => {
    for (const c of srv.conns) for (const view of c.subs.keys()) send(c, { type: 'snapshot', view, seq: head(), state: srv.state, reset: true });
  };
  // Forget history before seq: resumes from earlier get a reset snapshot.
  srv.compact = () => {
    srv.history = [];
    srv.historyFrom = head();
  };
  return srv;
}
