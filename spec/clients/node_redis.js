// Drives node-redis (npm "redis", the version locked in spec/clients/package-lock.json)
// against luaraft nodes with the client's default options, for
// spec/clients/node_redis_spec.lua.
//
// Usage: node node_redis.js CHECK PORT [PORT...]   (NODE_PATH: BUILD/npm/node_modules)
//
// Prints "ok CHECK" when every assertion held; a failure prints the client's error and
// exits 1. The failover check also needs SIGNAL_FILE (see common.js).
"use strict";
const { createClient, createCluster } = require("redis");
const { expect, failoverLoop, checkScan, run } = require("./common.js");

async function withClient(port, fn) {
  const c = createClient({ url: `redis://127.0.0.1:${port}` });
  let lastError;
  c.on("error", (e) => (lastError = e));
  try {
    await c.connect();
  } catch (e) {
    throw new Error(`connect: ${e.message} (last error event: ${lastError && lastError.message})`);
  }
  try {
    await fn(c);
  } finally {
    c.destroy();
  }
}

function clusterOf(ports) {
  return createCluster({ rootNodes: ports.map((port) => ({ url: `redis://127.0.0.1:${port}` })) });
}

const checks = {
  async basic(ports, p) {
    await withClient(ports[0], async (c) => {
      expect(await c.ping(), "PONG", "PING");
      expect(await c.set(p + "k", "v"), "OK", "SET");
      expect(await c.get(p + "k"), "v", "GET");
      expect(await c.get(p + "missing"), null, "GET of a missing key");
      expect(await c.incr(p + "n"), 1, "INCR");
      expect(await c.del(p + "k"), 1, "DEL");
    });
  },

  async multi(ports, p) {
    await withClient(ports[0], async (c) => {
      expect(await c.multi().set(p + "a", "1").incr(p + "a").exec(), ["OK", 2], "multi/exec");
      expect(await c.multi().set(p + "b", "1").get(p + "b").execAsPipeline(), ["OK", "1"],
        "execAsPipeline");
      await c.watch(p + "a");
      await withClient(ports[0], (other) => other.set(p + "a", "9"));
      let aborted = false;
      try {
        await c.multi().set(p + "a", "5").exec();
      } catch (e) {
        aborted = e.name === "WatchError" || /watch/i.test(e.message);
        if (!aborted) throw e;
      }
      expect(aborted, true, "EXEC after a watched key changed raises WatchError");
      expect(await c.get(p + "a"), "9", "the aborted EXEC changed nothing");
    });
  },

  async scan(ports, p) {
    await withClient(ports[0], (c) =>
      checkScan((k, v) => c.set(k, v), (MATCH) => c.scanIterator({ MATCH, COUNT: 7 }), p,
        "scanIterator"));
  },

  async cluster(ports, p) {
    const c = clusterOf(ports);
    c.on("error", () => {});
    await c.connect();
    try {
      expect(await c.set(p + "k", "v"), "OK", "cluster SET");
      expect(await c.get(p + "k"), "v", "cluster GET");
      expect(await c.incr(p + "n"), 1, "cluster INCR");
    } finally {
      c.destroy();
    }
  },

  async failover(ports, p) {
    const c = clusterOf(ports);
    c.on("error", () => {}); // node errors are expected while the leader is down
    await c.connect();
    try {
      await failoverLoop((k, v) => c.set(k, v), (k) => c.get(k), p);
    } finally {
      c.destroy();
    }
  },
};

run(checks, "nr");
