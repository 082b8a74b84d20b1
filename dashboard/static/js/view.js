// The page's copy of the view, kept by the same rules as tokengate/dashboard/diff.py:
// a "full" message replaces it, a "patch" changes only what it names.

// stream name -> [key field, order field, most items kept] (dashboard/memory.py)
export const STREAMS = {
  series: ["t", "t", 600],
  pool_series: ["t", "t", 600],
  feed: ["key", "at", 200],
  audit: ["key", "at", 200],
};

const UNSAFE_KEYS = new Set(["__proto__", "constructor", "prototype"]);

export function emptyView() {
  return { now: 0, panels: {}, keyed: {}, streams: {} };
}

export function mergeStream(name, items, added) {
  const [key, order, limit] = STREAMS[name];
  const byKey = new Map(items.map((item) => [item[key], item]));
  for (const item of added) byKey.set(item[key], item);
  const merged = [...byKey.values()];
  merged.sort((a, b) => a[order] - b[order]);
  return merged.slice(-limit);
}

function applyKeyed(records, part) {
  for (const key of part.del || []) delete records[key];
  for (const [key, fields] of Object.entries(part.set || {})) {
    if (UNSAFE_KEYS.has(key)) continue;
    const record = Object.hasOwn(records, key) ? records[key] : (records[key] = {});
    for (const name of fields.__del__ || []) delete record[name];
    for (const [name, value] of Object.entries(fields)) {
      if (name !== "__del__" && !UNSAFE_KEYS.has(name)) record[name] = value;
    }
  }
}

// Apply a patch in place; returns what it touched: {panels, keyed, streams} name sets.
export function applyPatch(view, patch) {
  view.now = patch.now;
  const touched = { panels: new Set(), keyed: new Set(), streams: new Set() };
  for (const [name, value] of Object.entries(patch.panels || {})) {
    view.panels[name] = value;
    touched.panels.add(name);
  }
  for (const [name, part] of Object.entries(patch.keyed || {})) {
    if (!Object.hasOwn(view.keyed, name)) view.keyed[name] = {};
    applyKeyed(view.keyed[name], part);
    touched.keyed.add(name);
  }
  for (const [name, added] of Object.entries(patch.streams || {})) {
    if (!STREAMS[name]) continue;
    view.streams[name] = mergeStream(name, view.streams[name] || [], added);
    touched.streams.add(name);
  }
  return touched;
}

export function everything(view) {
  return {
    panels: new Set(Object.keys(view.panels)),
    keyed: new Set(Object.keys(view.keyed)),
    streams: new Set(Object.keys(view.streams)),
  };
}
