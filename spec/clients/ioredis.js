// Drives ioredis (the version locked in spec/clients/package-lock.json) against luaraft
// nodes with the client's default options, for spec/clients/ioredis_spec.lua.
//
// Usage: node ioredis.js CHECK PORT [PORT...]   (NODE_PATH: BUILD/npm/node_modules)
//
// Prints "ok CHECK" when every assertion held; a failure prints the client's error and
// exits 1. The failover check also needs SIGNAL_FILE: see failover.js.
"use strict";
const Redis = require("ioredis");
const { expect, failoverLoop, checkScan, run } = require("./common.js");

async function withClient(port, fn) {
  const r = new Redis(port, "127.0.0.1");
  try {
    await fn(r);
  } finally {
    r.disconnect();
  }
}

const checks = {
  // new Redis() must become ready (HELLO 3, INFO's loading:0), then serve commands.
  async basic(ports, p) {
    await withClient(ports[0], async (r) => {
      await new Promise((resolve, reject) => {
        r.once("ready", resolve);
        r.once("end", () => reject(new Error("connection ended before ready")));
      });
      expect(await r.ping(), "PONG", "PING");
      expect(await r.set(p + "k", "v"), "OK", "SET");
      expect(await r.get(p + "k"), "v", "GET");
      expect(await r.get(p + "missing"), null, "GET of a missing key");
      expect(await r.incr(p + "n"), 1, "INCR");
      expect(await r.del(p + "k"), 1, "DEL");
    });
  },

  async pipeline(ports, p) {
    await withClient(ports[0], async (r) => {
      const res = await r.pipeline().set(p + "a", "1").incr(p + "a").get(p + "a").exec();
      expect(res, [[null, "OK"], [null, 2], [null, "2"]], "pipeline");
    });
  },

  async multi(ports, p) {
    await withClient(ports[0], async (r) => {
      const res = await r.multi().set(p + "a", "1").incr(p + "a").exec();
      expect(res, [[null, "OK"], [null, 2]], "multi/exec");
      await r.watch(p + "a");
      await withClient(ports[0], async (other) => other.set(p + "a", "9"));
      expect(await r.multi().set(p + "a", "5").exec(), null, "EXEC after a watched key changed");
      expect(await r.get(p + "a"), "9", "the aborted EXEC changed nothing");
    });
  },

  async scan(ports, p) {
    await withClient(ports[0], (r) =>
      checkScan((k, v) => r.set(k, v), (match) => r.scanStream({ match, count: 7 }), p, "scanStream"));
  },

  async cluster(ports, p) {
    const c = new Redis.Cluster(ports.map((port) => ({ host: "127.0.0.1", port })));
    try {
      expect(await c.set(p + "k", "v"), "OK", "Cluster SET");
      expect(await c.get(p + "k"), "v", "Cluster GET");
      expect(await c.incr(p + "n"), 1, "Cluster INCR");
    } finally {
      c.disconnect();
    }
  },

  async failover(ports, p) {
    const c = new Redis.Cluster(ports.map((port) => ({ host: "127.0.0.1", port })));
    c.on("error", () => {}); // node errors are expected while the leader is down
    try {
      await failoverLoop(
        (k, v) => c.set(k, v),
        (k) => c.get(k),
        p,
      );
    } finally {
      c.disconnect();
    }
  },
};

run(checks, "io");
