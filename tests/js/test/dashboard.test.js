'use strict';

// The Grafana dashboard (ops/grafana/switchboard.json) queries only metrics
// the server exports: every metric name in its PromQL expressions must be in
// the real /metrics output of a running server, a single instance for most,
// one with Redis for the cluster gauges (which exist only in that mode).

const { describe, it, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('../helpers');
const { startRedis } = require('../redis');

const SKIP = h.isPeer ? 'the dashboard is for the Rust server' : false;
const DASHBOARD = path.resolve(__dirname, '../../../ops/grafana/switchboard.json');
// Exported only with redis_url set (the dashboard shows "no data" otherwise).
const CLUSTER_ONLY = new Set(['switchboard_redis_up', 'switchboard_cluster_nodes', 'switchboard_cluster_messages_total']);

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'offset', 'bool', 'inf', 'nan']);

/**
 * The metric names a PromQL expression reads: identifiers that are not
 * functions, keywords, label names (in `{}` or `by (...)`) or durations.
 */
function metricNames(expr) {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // label values
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // range durations ($__rate_interval)
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // grouping labels
  const names = new Set();
  const token = /([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?|[0-9][0-9.eE+-]*|\$\w+/g;
  for (const m of stripped.matchAll(token)) {
    const [, name, call] = m;
    if (!name || call || PROMQL_WORDS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return names;
}

function expressions(dashboard) {
  const exprs = [];
  const walk = (panels) => {
    for (const panel of panels || []) {
      for (const target of panel.targets || []) exprs.push({ panel: panel.title, expr: target.expr });
      walk(panel.panels);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query.query;
    // label_values(metric, label): the metric is its first argument.
    const m = /label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)/.exec(q);
    exprs.push({ panel: `variable ${v.name}`, expr: m ? m[1] : q });
  }
  return exprs;
}

/** The metric names of a Prometheus text exposition. */
function exported(text) {
  const names = new Set();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    names.add(line.split(/[{ ]/)[0]);
  }
  return names;
}

/** Makes the counters that appear on first use appear: a client event, a publish, an API request. */
async function exercise(server) {
  const socket = await h.connect(server.url, { transports: ['websocket'] });
  const ack = await h.emitAck(socket, 'ticket:view', { ticketId: 'dash-1', agentId: 'a1', agentName: 'Ada' });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  const res = await h.http('POST', `${server.internalUrl}/v1/timeline/deal/1/items`, { body: { id: 1 } });
  assert.equal(res.status, 202, res.text);
}

async function scrape(server) {
  const res = await h.http('GET', `${server.internalUrl}/metrics`);
  assert.equal(res.status, 200);
  return exported(res.text);
}

describe('Grafana dashboard', { skip: SKIP }, () => {
  const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'));
  const exprs = expressions(dashboard);
  const used = new Set(exprs.flatMap(({ expr }) => [...metricNames(expr)]));

  it('reads the PromQL the way Prometheus does', () => {
    assert.deepEqual(
      [...metricNames('histogram_quantile(0.99, sum by (le) (rate(switchboard_publish_duration_seconds_bucket{instance=~"$instance", kind!="x"}[$__rate_interval])))')],
      ['switchboard_publish_duration_seconds_bucket'],
    );
    assert.deepEqual([...metricNames('sum(rate(a_total[5m])) / sum(rate(b_count{x="y"}[1m])) * 100')], ['a_total', 'b_count']);
  });

  it('takes its Prometheus datasource from a variable, in every panel and query', () => {
    const ds = dashboard.templating.list.find((v) => v.type === 'datasource');
    assert.equal(ds.query, 'prometheus');
    const walk = (panels) => {
      for (const p of panels || []) {
        if (p.type !== 'row') {
          assert.equal(p.datasource.uid, `\${${ds.name}}`, p.title);
          assert.ok(p.targets.length > 0, `${p.title} has no query`);
          for (const t of p.targets) assert.equal(t.datasource.uid, `\${${ds.name}}`, p.title);
        }
        walk(p.panels);
      }
    };
    walk(dashboard.panels);
  });

  it('shows what operations needs', () => {
    for (const name of [
      'switchboard_connections', 'switchboard_viewers', 'switchboard_tickets_watched', 'switchboard_timeline_rooms',
      'switchboard_timeline_subscriptions', 'switchboard_client_events_total', 'switchboard_published_total',
      'switchboard_publish_duration_seconds_bucket', 'switchboard_internal_http_requests_total', 'switchboard_redis_up',
      'switchboard_cluster_nodes', 'switchboard_slow_client_disconnects_total', 'switchboard_connections_refused_total',
      'process_resident_memory_bytes', 'process_cpu_seconds_total',
    ]) {
      assert.ok(used.has(name), `the dashboard does not query ${name}`);
    }
  });

  it('queries only metrics a single instance exports (the cluster gauges aside)', async () => {
    const server = await h.startServer({ events_per_second: 0 });
    try {
      await exercise(server);
      const names = await scrape(server);
      const missing = [...used].filter((n) => !CLUSTER_ONLY.has(n) && !names.has(n));
      assert.deepEqual(missing, [], `queried by the dashboard, absent from /metrics: ${missing}`);
      for (const n of CLUSTER_ONLY) assert.ok(!names.has(n), `${n} without Redis`);
    } finally {
      h.closeAllSockets();
      await server.stop();
    }
  });

  describe('with Redis', () => {
    let redis;
    let server;
    after(async () => {
      h.closeAllSockets();
      if (server) await server.stop();
      if (redis) await redis.stop();
    });

    it('queries only metrics an instance with Redis exports, the cluster gauges included', async () => {
      redis = await startRedis();
      server = await h.startServer({ redis_url: redis.url, events_per_second: 0 });
      await exercise(server);
      let names;
      await h.eventually(async () => {
        names = await scrape(server);
        return names.has('switchboard_cluster_messages_total');
      }, { message: 'cluster messages counted' });
      const missing = [...used].filter((n) => !names.has(n));
      assert.deepEqual(missing, [], `queried by the dashboard, absent from /metrics: ${missing}`);
    });
  });
});
