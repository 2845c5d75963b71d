// What the Node.js drivers of spec/clients/ share: assertions, the command line, and the
// write loop that runs through a failover.
"use strict";
const fs = require("fs");
const util = require("util");

function expect(got, want, what) {
  if (!util.isDeepStrictEqual(got, want)) {
    throw new Error(`${what}: got ${util.inspect(got)}, want ${util.inspect(want)}`);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Writes key after key, retrying each until it is acknowledged (a SET is idempotent, so
// a write whose fate was unknown may be sent again). Prints "phase1" after 20 writes,
// then waits for the spec to create SIGNAL_FILE (it kills the leader first) and needs 30
// more acknowledged writes; then every acknowledged key must read back. Gives up after
// DEADLINE_MS (default 60 s).
async function failoverLoop(set, get, p) {
  const signal = process.env.SIGNAL_FILE;
  if (!signal) throw new Error("SIGNAL_FILE is not set");
  const deadline = Date.now() + Number(process.env.DEADLINE_MS || 60000);
  let acked = 0, after = -1, errors = 0, lastError = "";
  while (after < 0 || acked < after + 30) {
    if (Date.now() > deadline) {
      throw new Error(`${acked} writes acknowledged (signal after ${after}), ${errors} errors, last: ${lastError}`);
    }
    try {
      expect(await set(p + acked, String(acked)), "OK", "SET " + acked);
      acked++;
    } catch (e) {
      errors++;
      lastError = String(e && e.message);
      await sleep(50);
    }
    if (acked === 20 && after < 0) process.stdout.write("phase1\n");
    if (after < 0 && acked >= 20 && fs.existsSync(signal)) after = acked;
    if (after < 0 && acked >= 20) await sleep(20);
  }
  for (let i = 0; i < acked; i++) {
    let v, tries = 0;
    for (;;) {
      try {
        v = await get(p + i);
        break;
      } catch (e) {
        if (++tries > 100 || Date.now() > deadline) throw e;
        await sleep(50);
      }
    }
    expect(v, String(i), "read back " + p + i);
  }
  console.log(`writes=${acked} after_signal=${acked - after} errors=${errors} last_error=${lastError}`);
}

// Writes 25 keys under p with set(k, v), then collects every key that scan(pattern)
// yields (an async iterable of batches, or of single keys) and compares.
async function checkScan(set, scan, p, what) {
  const want = [];
  for (let i = 0; i < 25; i++) {
    want.push(p + i);
    await set(p + i, "x");
  }
  const got = [];
  for await (const keys of scan(p + "*")) got.push(...[].concat(keys));
  expect([...new Set(got)].sort(), want.sort(), what);
}

// node DRIVER CHECK PORT...: runs checks[CHECK], prints "ok CHECK" or the error.
function run(checks, tag) {
  const [check, ...rest] = process.argv.slice(2);
  const ports = rest.map(Number);
  const fn = checks[check];
  if (!fn) {
    console.error(`unknown check ${check}; checks: ${Object.keys(checks).join(" ")}`);
    process.exit(2);
  }
  const prefix = `${tag}:${check}:${process.pid}:${Date.now()}:`;
  fn(ports, prefix).then(
    () => {
      console.log("ok", check);
      process.exit(0);
    },
    (e) => {
      console.error("FAIL", check, e && e.stack ? e.stack : e);
      process.exit(1);
    },
  );
}

module.exports = { expect, sleep, failoverLoop, checkScan, run };
