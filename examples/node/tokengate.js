'use strict';
/**
 * A TokenGate client in Node.js: submits registered tasks by name over the gateway's
 * `Session` stream and gets their outcomes pushed back. The contract it follows is
 * docs/protocol.md; the message shapes come from ../../proto/tokengate.proto at run time.
 *
 * One session stream is live at a time. Every call stays in `calls` (token id -> state) until
 * its outcome or a final refusal arrives. When the stream is lost the client opens a new one
 * (on the next gateway address, with backoff) and, on it, watches the calls the gateway had
 * accepted and resubmits (`resubmit: true`) the ones it had not: ids make both harmless.
 * Calls refused with GatewayBusy, or as not stored (RedisUnavailable, Fenced), keep their
 * window slot and are offered again shortly.
 */
const crypto = require('node:crypto');
const path = require('node:path');
const { EventEmitter } = require('node:events');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const msgpack = require('@msgpack/msgpack');

const PROTO_PATH = path.resolve(__dirname, '..', '..', 'proto', 'tokengate.proto');
const MAX_FRAME_ITEMS = 1000;
const FRAME_SOFT_BYTES = 8 * 1024 * 1024; // a frame stops growing past this (gRPC's cap: 64 MiB)
const ITEM_OVERHEAD_BYTES = 128; // ids, task name and the rest of a TaskItem, roughly
const DEFAULT_MAX_PAYLOAD = 4 * 1024 * 1024; // the gateway's default max_payload
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const BUSY_RETRY_MS = 100;
const UNSTORED_RETRY_MS = 250;
const UNSTORED_LIMIT_MS = 60_000;
const RECEIPT_LINGER_MS = 50;
const MAX_BACKOFF_MS = 1000;

const GATEWAY_BUSY = 'GatewayBusy';
const NOT_STORED = new Set(['RedisUnavailable', 'Fenced']); // not stored: offer again
const SESSION_OPEN = 'tokengate-session';
const SHARD = 'tokengate-shard';
const CLIENT_ID = 'tokengate-client';

const CHANNEL_OPTIONS = {
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1_000,
  'grpc.use_local_subchannel_pool': 1,
};

/** An error as TokenGate names it: `type` is the Python class name sent on the wire. */
class TokenGateError extends Error {
  constructor(type, message, { tokenId = '', traceback = '', refused = false } = {}) {
    super(message);
    this.name = type;
    this.type = type;
    this.tokenId = tokenId;
    this.traceback = traceback;
    this.refused = refused; // the gateway never stored the call (it did not run)
  }
}

/** The gateway's status details read "ClassName: message"; map a failed RPC to its error. */
function errorFromStatus(status) {
  const details = (status && status.details) || '';
  const code = status ? status.code : grpc.status.UNKNOWN;
  if (code === grpc.status.UNAUTHENTICATED) {
    return new TokenGateError('Unauthenticated', `the gateway refused the token (${details})`);
  }
  const named = /^([A-Z][A-Za-z]+): (.*)$/s.exec(details);
  if (named && code !== grpc.status.UNAVAILABLE) return new TokenGateError(named[1], named[2]);
  return new TokenGateError('GatewayUnavailable', `gateway unavailable (${code} ${details})`);
}

let cachedPackage = null;
function loadPackage(protoPath = PROTO_PATH) {
  if (cachedPackage === null || protoPath !== PROTO_PATH) {
    const definition = protoLoader.loadSync(protoPath, {
      keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(definition).tokengate.v1;
    if (protoPath !== PROTO_PATH) return pkg;
    cachedPackage = pkg;
  }
  return cachedPackage;
}

function newTokenId() {
  return crypto.randomUUID().replaceAll('-', '');
}

function decodeValue(result) {
  if (result.codec !== 'MSGPACK') {
    throw new TokenGateError('BadArguments', `result in codec ${result.codec}; this client reads msgpack only`);
  }
  return result.payload.length ? msgpack.decode(result.payload) : null;
}

class TokenGateClient extends EventEmitter {
  /**
   * @param {object} options
   * @param {string} options.gateway "host:port", or several separated by commas
   * @param {string} options.token the cluster's shared token
   * @param {string} [options.clientId] names this client: only it may watch its tokens
   * @param {number} [options.window] calls the gateway has not acknowledged, at most
   */
  constructor({ gateway, token, clientId = newTokenId(), window = 1000, shard = '',
                maxPayload = DEFAULT_MAX_PAYLOAD, credentials = null, protoPath = PROTO_PATH }) {
    super();
    this.addresses = String(gateway || '').split(',').map((a) => a.trim()).filter(Boolean);
    if (!this.addresses.length) throw new TokenGateError('ConfigurationError', 'no gateway address');
    if (!token) throw new TokenGateError('ConfigurationError', 'no token (TOKENGATE_TOKEN)');
    this.token = token;
    this.clientId = clientId;
    this.shard = shard;
    this.window = window;
    this.maxPayload = maxPayload;
    this.credentials = credentials || grpc.credentials.createInsecure();
    this.Gateway = loadPackage(protoPath).Gateway;
    this.at = 0;
    this.stubs = new Map();
    this.calls = new Map(); // token id -> {item, resolve, reject, sent, acked, unstoredSince}
    this.inflight = 0; // window slots taken: calls not acknowledged yet
    this.slotWaiters = [];
    this.fresh = []; // new calls for the next frame
    this.again = []; // calls to offer again (resubmit: true)
    this.receipts = [];
    this.flushing = false;
    this.receiptTimer = null;
    this.call = null;
    this.live = false;
    this.closed = false;
    this.backoff = 50;
    this.stats = { sessions: 0, lost: 0, busy: 0, unstored: 0, watched: 0, resubmitted: 0,
                   duplicates: 0, receipts: 0 };
  }

  get address() {
    return this.addresses[this.at];
  }

  stub() {
    let stub = this.stubs.get(this.address);
    if (!stub) {
      stub = new this.Gateway(this.address, this.credentials, CHANNEL_OPTIONS);
      this.stubs.set(this.address, stub);
    }
    return stub;
  }

  metadata() {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${this.token}`);
    md.set(CLIENT_ID, this.clientId);
    if (this.shard) md.set(SHARD, this.shard);
    return md;
  }

  /** Authenticated liveness check: resolves the gateway's PingReply. */
  ping(timeoutMs = 5000) {
    return this.unary('Ping', {}, timeoutMs);
  }

  /** One unary call (Ping, Status, Token, Kill, ...), waiting for the channel to be ready. */
  unary(method, request, timeoutMs = 10_000) {
    return new Promise((resolve, reject) => {
      const deadline = new Date(Date.now() + timeoutMs);
      this.stub()[method](request, this.metadata(), { deadline, waitForReady: true },
        (err, reply) => (err ? reject(errorFromStatus(err)) : resolve(reply)));
    });
  }

  /** Check the gateway and the token, then open the session; resolves once it is open. */
  async connect(timeoutMs = 10_000) {
    await this.ping(timeoutMs);
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new TokenGateError('GatewayUnavailable', `no session within ${timeoutMs} ms`));
      }, timeoutMs);
      const opened = () => { cleanup(); resolve(); };
      const refused = (err) => { cleanup(); reject(err); };
      const cleanup = () => {
        clearTimeout(timer);
        this.off('session', opened);
        this.off('refused', refused);
      };
      this.once('session', opened);
      this.once('refused', refused);
      this.open();
    });
    return this;
  }

  /**
   * Submit one call of a registered task; resolves with its return value (msgpack-decoded),
   * rejects with a TokenGateError (the task's own exception type in `type`, or the refusal).
   */
  async submit(task, args = [], kwargs = {}, options = {}) {
    if (this.closed) throw new TokenGateError('GatewayUnavailable', 'the client is closed');
    const tokenId = options.tokenId || newTokenId();
    const payload = Buffer.from(msgpack.encode([args, kwargs]));
    if (payload.length > this.maxPayload) {
      throw new TokenGateError('PayloadTooLarge', `the call's arguments are ${payload.length} ` +
        `bytes encoded; the limit is ${this.maxPayload}`, { tokenId, refused: true });
    }
    const item = {
      token_id: tokenId, task, payload, codec: 'MSGPACK', weight: options.weight || '',
      not_idempotent: Boolean(options.notIdempotent), requires: options.requires || [],
      operation_type: options.operationType || task.slice(task.indexOf(':') + 1),
    };
    await this.takeSlot();
    return new Promise((resolve, reject) => {
      this.calls.set(tokenId, { item, resolve, reject, sent: false, acked: false,
                                unstoredSince: 0 });
      this.fresh.push(item);
      this.scheduleFlush();
    });
  }

  /**
   * Close the session: send the last receipts, half-close, and wait up to `graceMs` for the
   * gateway to end the stream (cancelling at once could drop those receipts). Calls still
   * unfinished are rejected with GatewayUnavailable (their outcomes stay in Redis).
   */
  async close(graceMs = 1000) {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.receiptTimer);
    const call = this.call;
    this.call = null;
    this.live = false;
    if (call) {
      this.sendReceipts(call);
      let timer = null;
      const ended = new Promise((resolve) => {
        call.on('status', resolve);
        timer = setTimeout(resolve, graceMs);
      });
      call.end();
      await ended;
      clearTimeout(timer);
      call.cancel();
    }
    for (const stub of this.stubs.values()) stub.close();
    for (const [tokenId, entry] of this.calls) {
      this.calls.delete(tokenId);
      entry.reject(new TokenGateError('GatewayUnavailable',
                                      'the client was closed before the result', { tokenId }));
    }
  }

  // -- window -----------------------------------------------------------------------------

  takeSlot() {
    if (this.inflight < this.window) {
      this.inflight += 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.slotWaiters.push(resolve));
  }

  releaseSlot(entry) {
    if (entry.acked) return;
    entry.acked = true;
    const next = this.slotWaiters.shift();
    if (next) next(); else this.inflight -= 1;
  }

  // -- the stream -------------------------------------------------------------------------

  open() {
    if (this.closed) return;
    const call = this.stub().Session(this.metadata());
    this.call = call;
    let over = false;
    const lost = (status) => {
      if (!over) {
        over = true;
        this.onLost(call, status);
      }
    };
    call.on('metadata', (md) => {
      if (String(md.get(SESSION_OPEN)[0] || '') === '1' && call === this.call) {
        const shard = md.get(SHARD)[0];
        if (shard) this.shard = String(shard);
        this.onOpen();
      }
    });
    call.on('data', (reply) => this.onReply(reply));
    call.on('error', (err) => lost(err));
    call.on('status', (status) => lost(status));
  }

  onOpen() {
    this.live = true;
    this.backoff = 50;
    this.stats.sessions += 1;
    const watch = [];
    const again = [];
    const fresh = [];
    for (const [tokenId, entry] of this.calls) {
      if (entry.acked) watch.push(tokenId);
      else (entry.sent ? again : fresh).push(entry.item);
    }
    this.fresh = fresh;
    this.again = again;
    this.stats.watched += watch.length;
    this.stats.resubmitted += again.length;
    for (let i = 0; i < watch.length; i += MAX_FRAME_ITEMS) {
      this.call.write({ watch: watch.slice(i, i + MAX_FRAME_ITEMS) });
    }
    this.emit('session', { gateway: this.address, shard: this.shard, watched: watch.length,
                           resubmitted: again.length });
    this.flush();
    this.sendReceipts(); // results taken while no stream was live
  }

  onLost(call, status) {
    if (call !== this.call) return;
    const wasLive = this.live;
    this.call = null;
    this.live = false;
    if (this.closed) return;
    const error = errorFromStatus(status);
    if (error.type === 'Unauthenticated' || (!wasLive && this.stats.sessions === 0 &&
                                             error.type === GATEWAY_BUSY)) {
      this.emit('refused', error); // connect() rejects; nothing more is tried
      this.close(0);
      return;
    }
    this.stats.lost += 1;
    this.emit('lost', error);
    if (this.addresses.length > 1) this.at = (this.at + 1) % this.addresses.length;
    setTimeout(() => this.open(), this.backoff);
    this.backoff = Math.min(MAX_BACKOFF_MS, this.backoff * 2);
  }

  scheduleFlush() {
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => this.flush());
    }
  }

  /** Send what is queued: frames of at most 1,000 calls and about 8 MiB, receipts riding along. */
  flush() {
    this.flushing = false;
    if (!this.live) return; // a new session sends everything unfinished when it opens
    for (const [items, resubmit] of [[this.again, true], [this.fresh, false]]) {
      while (items.length) {
        let count = 0;
        let bytes = 0;
        while (count < items.length && count < MAX_FRAME_ITEMS && bytes < FRAME_SOFT_BYTES) {
          bytes += items[count].payload.length + ITEM_OVERHEAD_BYTES;
          count += 1;
        }
        const submit = items.splice(0, count);
        for (const item of submit) {
          const entry = this.calls.get(item.token_id);
          if (entry) entry.sent = true;
        }
        this.call.write({ submit, resubmit, received: this.takeReceipts() });
      }
    }
  }

  takeReceipts() {
    const receipts = this.receipts;
    this.receipts = [];
    this.stats.receipts += receipts.length;
    return receipts;
  }

  sendReceipts(call = this.call) {
    this.receiptTimer = null;
    if (call && this.receipts.length) call.write({ received: this.takeReceipts() });
  }

  // -- replies ----------------------------------------------------------------------------

  onReply(reply) {
    for (const tokenId of reply.accepted) {
      const entry = this.calls.get(tokenId);
      if (entry) this.releaseSlot(entry);
    }
    for (const rejected of reply.rejected) this.onRejected(rejected);
    for (const result of reply.results) this.onResult(result);
    if (this.receipts.length && this.receiptTimer === null && this.live) {
      this.receiptTimer = setTimeout(() => this.sendReceipts(), RECEIPT_LINGER_MS);
    }
  }

  onRejected(rejected) {
    const tokenId = rejected.token_id;
    const entry = this.calls.get(tokenId);
    if (!entry) return;
    const type = rejected.error_type;
    if (!entry.acked && type === GATEWAY_BUSY) {
      this.stats.busy += 1;
      this.offerAgain(entry, BUSY_RETRY_MS, true);
      return;
    }
    if (!entry.acked && NOT_STORED.has(type)) {
      const now = Date.now();
      entry.unstoredSince = entry.unstoredSince || now;
      if (now - entry.unstoredSince < UNSTORED_LIMIT_MS) {
        this.stats.unstored += 1;
        this.offerAgain(entry, UNSTORED_RETRY_MS, false);
        return;
      }
    }
    this.calls.delete(tokenId);
    this.releaseSlot(entry);
    entry.reject(new TokenGateError(type, rejected.error_message, { tokenId, refused: true }));
  }

  /**
   * Offer a call again later, on this session only (a new one resends it anyway); it keeps
   * its window slot (backpressure). A GatewayBusy refusal goes back as a new call: it was
   * certainly not stored (the gateway lets `resubmit` frames past its waiting room, so
   * sending it as a resend would end the backpressure). A not-stored refusal may have been
   * stored after all (a write in doubt), so it goes back with `resubmit` set.
   */
  offerAgain(entry, delayMs, asNew) {
    const session = this.stats.sessions;
    setTimeout(() => {
      if (this.live && session === this.stats.sessions && !entry.acked &&
          this.calls.get(entry.item.token_id) === entry) {
        (asNew ? this.fresh : this.again).push(entry.item);
        this.scheduleFlush();
      }
    }, delayMs);
  }

  onResult(result) {
    const tokenId = result.token_id;
    const entry = this.calls.get(tokenId);
    if (!entry) {
      this.stats.duplicates += 1; // pushed again after a gateway restart: told once already
      return;
    }
    this.calls.delete(tokenId);
    this.releaseSlot(entry); // a result may come before its ack
    this.receipts.push(tokenId);
    if (result.state === 'COMPLETED') {
      let value;
      try {
        value = decodeValue(result);
      } catch (err) {
        entry.reject(err instanceof TokenGateError ? err
          : new TokenGateError('BadArguments', `result cannot be decoded: ${err.message}`, { tokenId }));
        return;
      }
      entry.resolve(value);
      return;
    }
    const type = result.error_type || (result.state === 'KILLED' ? 'TokenKilled' : 'TaskFailed');
    entry.reject(new TokenGateError(type, result.error_message,
                                    { tokenId, traceback: result.traceback }));
  }
}

module.exports = { TokenGateClient, TokenGateError, errorFromStatus, loadPackage, newTokenId,
                   PROTO_PATH };
