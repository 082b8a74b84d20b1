#!/usr/bin/env node
'use strict';
/**
 * Submit calls of a registered task through a TokenGate gateway and print one JSON line per
 * outcome, then a summary line.
 *
 *   node submit.js --gateway 127.0.0.1:50051 --token T --task mytasks:add --args '[1,2]' -n 100
 *   node submit.js --gateway ... --calls '[{"task":"mytasks:add","args":[1,2]}, ...]'
 *
 * In --args/--kwargs, "{i}" inside a string becomes the call's index (0..n-1). The token may
 * also come from TOKENGATE_TOKEN and the gateway from TOKENGATE_GATEWAY. Exit status: 0 when
 * every call completed, 1 when any failed or was refused, 2 on bad usage, 3 past --timeout.
 */
const { parseArgs } = require('node:util');
const { TokenGateClient } = require('./tokengate');

const USAGE = 'usage: node submit.js --gateway HOST:PORT[,HOST:PORT] --token T ' +
  '(--task module:fn [--args JSON] [--kwargs JSON] [-n N] | --calls JSON) ' +
  '[--weight W] [--window N] [--client-id ID] [--timeout S]';

function options() {
  const { values } = parseArgs({
    options: {
      gateway: { type: 'string', default: process.env.TOKENGATE_GATEWAY || '' },
      token: { type: 'string', default: process.env.TOKENGATE_TOKEN || '' },
      task: { type: 'string' },
      args: { type: 'string', default: '[]' },
      kwargs: { type: 'string', default: '{}' },
      calls: { type: 'string' },
      n: { type: 'string', short: 'n', default: '1' },
      weight: { type: 'string', default: '' },
      window: { type: 'string', default: '1000' },
      'client-id': { type: 'string' },
      timeout: { type: 'string', default: '60' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  return values;
}

/** Replace "{i}" in every string of a JSON value with the call's index. */
function withIndex(value, i) {
  if (typeof value === 'string') return value.replaceAll('{i}', String(i));
  if (Array.isArray(value)) return value.map((v) => withIndex(v, i));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withIndex(v, i)]));
  }
  return value;
}

function plannedCalls(opts) {
  if (opts.calls) {
    return JSON.parse(opts.calls).map((c, i) => ({
      task: c.task, args: withIndex(c.args || [], i), kwargs: withIndex(c.kwargs || {}, i),
    }));
  }
  if (!opts.task) throw new Error('--task or --calls is required');
  const args = JSON.parse(opts.args);
  const kwargs = JSON.parse(opts.kwargs);
  const n = Number.parseInt(opts.n, 10);
  if (!Array.isArray(args) || typeof kwargs !== 'object' || !(n >= 0)) {
    throw new Error('--args must be a JSON array, --kwargs a JSON object, -n a count');
  }
  return Array.from({ length: n }, (_, i) => ({
    task: opts.task, args: withIndex(args, i), kwargs: withIndex(kwargs, i),
  }));
}

function jsonSafe(_key, value) {
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString('base64') };
  if (typeof value === 'bigint') return value.toString();
  return value;
}

function emit(record) {
  process.stdout.write(`${JSON.stringify(record, jsonSafe)}\n`);
}

async function main() {
  let opts;
  let calls;
  try {
    opts = options();
    if (opts.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    calls = plannedCalls(opts);
  } catch (err) {
    process.stderr.write(`${err.message}\n${USAGE}\n`);
    return 2;
  }
  const client = new TokenGateClient({
    gateway: opts.gateway, token: opts.token, clientId: opts['client-id'],
    window: Number.parseInt(opts.window, 10),
  });
  client.on('session', (info) => emit({ event: 'session', ...info }));
  client.on('lost', (err) => emit({ event: 'lost', error_type: err.type, error_message: err.message }));
  const timeoutMs = Number(opts.timeout) * 1000;
  const timer = setTimeout(() => {
    emit({ event: 'timeout', seconds: Number(opts.timeout), outstanding: client.calls.size });
    client.close(0).finally(() => process.exit(3));
  }, timeoutMs);
  const tally = { completed: 0, failed: 0, refused: 0 };
  try {
    await client.connect(Math.min(timeoutMs, 20_000));
    await Promise.all(calls.map(async (c, i) => {
      const tokenId = `${client.clientId.slice(0, 8)}-${i}-${Date.now().toString(36)}`;
      try {
        const value = await client.submit(c.task, c.args, c.kwargs,
                                          { tokenId, weight: opts.weight });
        tally.completed += 1;
        emit({ event: 'outcome', i, id: tokenId, ok: true, value });
      } catch (err) {
        tally[err.refused ? 'refused' : 'failed'] += 1;
        emit({ event: 'outcome', i, id: tokenId, ok: false, refused: Boolean(err.refused),
               error_type: err.type || err.name, error_message: err.message });
      }
    }));
  } catch (err) {
    emit({ event: 'error', error_type: err.type || err.name, error_message: err.message });
    clearTimeout(timer);
    await client.close(0);
    return 1;
  }
  clearTimeout(timer);
  emit({ event: 'summary', n: calls.length, ...tally, stats: client.stats });
  await client.close();
  return tally.completed === calls.length ? 0 : 1;
}

main().then((code) => { process.exitCode = code; });
