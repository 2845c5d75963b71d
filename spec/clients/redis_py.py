"""Drives redis-py (Debian's python3-redis, run with /usr/bin/python3) against a luaraft
node with the client's default options, for spec/clients/redis_py_spec.lua.

Usage: redis_py.py CHECK PORT [OTHER_PORT...]

Runs one check and prints "ok CHECK" when every assertion held; any failure raises (the
traceback and the client's exception name what broke) and the exit code is not 0.
Keys are prefixed with the check's name so that checks do not see each other's data.
"""
import sys
import uuid

import redis


def expect(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def check_basic(r, p, _others):
    expect(r.ping(), True, "PING")
    expect(r.set(p + "k", "v"), True, "SET")
    expect(r.get(p + "k"), b"v", "GET")
    expect(r.get(p + "missing"), None, "GET of a missing key")
    expect(r.incr(p + "n"), 1, "INCR (redis-py sends INCRBY k 1)")
    expect(r.incrby(p + "n", 41), 42, "INCRBY")
    expect(r.exists(p + "k", p + "missing"), 1, "EXISTS")
    expect(r.delete(p + "k"), 1, "DEL")
    expect(r.get(p + "k"), None, "GET after DEL")
    # Replies whose RESP2 shape is not their RESP3 one: flat member/score pairs, and the
    # null array of LPOP with a count.
    expect(r.zadd(p + "z", {"a": 1, "b": 2.5}), 2, "ZADD")
    expect(r.zrange(p + "z", 0, -1, withscores=True), [(b"a", 1.0), (b"b", 2.5)],
           "ZRANGE WITHSCORES")
    expect(r.zpopmin(p + "z", 1), [(b"a", 1.0)], "ZPOPMIN with a count")
    expect(r.lpop(p + "nolist", 2), None, "LPOP of a missing key with a count")


def check_pipeline(r, p, _others):
    pipe = r.pipeline()  # default: transaction=True, MULTI/EXEC
    pipe.set(p + "a", "1").incr(p + "a").get(p + "a")
    expect(pipe.execute(), [True, 2, b"2"], "pipeline() as MULTI/EXEC")
    pipe = r.pipeline(transaction=False)
    pipe.set(p + "b", "x").get(p + "b").incrby(p + "c", 5)
    expect(pipe.execute(), [True, b"x", 5], "pipeline(transaction=False)")


def check_execabort(r, p, _others):
    pipe = r.pipeline()
    pipe.set(p + "k", "1")
    pipe.execute_command("SET", p + "k")  # wrong number of arguments: refused when queued
    try:
        pipe.execute()
    except redis.ResponseError as e:
        text = str(e)
        if "wrong number of arguments" not in text:
            raise AssertionError(f"EXECABORT pipeline raised {text!r}")
    else:
        raise AssertionError("a MULTI with a refused command executed")
    expect(r.get(p + "k"), None, "nothing of an aborted MULTI ran")


def check_watch(r, p, others):
    r.set(p + "n", "0")
    other = redis.Redis(port=others[0])
    tries = []

    def bump(pipe):
        v = int(pipe.get(p + "n"))
        if not tries:
            other.set(p + "n", "100")  # touches the watched key: EXEC must fail once
        tries.append(v)
        pipe.multi()
        pipe.set(p + "n", v + 1)

    r.transaction(bump, p + "n")
    expect(len(tries), 2, "WATCH retries after a concurrent write")
    expect(r.get(p + "n"), b"101", "the retried transaction's result")


def check_scan(r, p, _others):
    want = {f"{p}{i}".encode() for i in range(25)}
    for k in want:
        r.set(k, "x")
    got = set(r.scan_iter(match=p + "*", count=7))
    expect(got, want, "scan_iter")


def check_options(_r, p, others):
    port = others[0]
    named = redis.Redis(port=port, client_name="luaraft-spec", db=0)
    expect(named.ping(), True, "PING with client_name and db=0")
    expect(named.client_getname(), "luaraft-spec", "CLIENT GETNAME")
    expect(named.set(p + "k", "v"), True, "SET on a named connection")


def check_info(r, _p, _others):
    info = r.info()
    for field in ("redis_version", "loading", "connected_clients", "used_memory", "role"):
        if field not in info:
            raise AssertionError(f"INFO lacks {field}: {sorted(info)}")
    expect(info["loading"], 0, "INFO loading")
    if info["role"] not in ("master", "slave"):
        raise AssertionError(f"INFO role {info['role']!r}")
    expect("redis_version" in r.info("server"), True, "INFO server")


def check_follower_reads(r, p, _others):
    # r is connected to a follower: a GET pipelined right behind a SET on the same
    # connection must see that SET.
    for i in range(200):
        pipe = r.pipeline(transaction=False)
        pipe.set(p + "k", str(i)).get(p + "k")
        expect(pipe.execute(), [True, str(i).encode()], f"try {i}: SET then GET")


def check_cluster(_r, p, others):
    from redis.cluster import RedisCluster

    rc = RedisCluster(host="127.0.0.1", port=others[0])
    expect(rc.set(p + "k", "v"), True, "RedisCluster SET")
    expect(rc.get(p + "k"), b"v", "RedisCluster GET")


def patch_redis_py_failover():
    """Mends the two faults that keep redis-py before 4.4 (Debian 12 has 4.3.4) from
    following any primary change, of a Redis Cluster as much as of luaraft; both are gone
    upstream. When it rediscovers the cluster through a node it holds no connection to
    (always the case once its primary died) it deep-copies its connection options, which
    hold a bound method of the client, and the copy fails on the client's lock
    (redis/redis-py#2480). And a node it knew as a replica keeps that role when the slots
    now name it primary, so it finds no primary (IndexError). A newer redis-py runs
    unpatched, so this spec then checks the real thing."""
    if tuple(int(x) for x in redis.__version__.split(".")[:2]) >= (4, 4):
        return
    from redis.cluster import NodesManager, RedisCluster

    RedisCluster.__deepcopy__ = lambda self, memo: self
    lookup = NodesManager._get_or_create_cluster_node

    def get_or_create(self, host, port, role, tmp_nodes_cache):
        node = lookup(self, host, port, role, tmp_nodes_cache)
        if node.name not in tmp_nodes_cache:  # not yet seen in this discovery
            node.server_type = role
        return node

    NodesManager._get_or_create_cluster_node = get_or_create


def check_failover(_r, p, others):
    # others holds every node's port. Writes key after key through RedisCluster, each
    # retried until acknowledged (SET is idempotent, so a write of unknown fate may be
    # sent again); prints "phase1" after 20, then waits for the spec to kill the leader
    # and create SIGNAL_FILE, needs 30 more acknowledged writes, and reads every one back.
    import os
    import time

    from redis.cluster import ClusterNode, RedisCluster

    signal = os.environ["SIGNAL_FILE"]
    deadline = time.monotonic() + float(os.environ.get("DEADLINE_S", "60"))
    patch_redis_py_failover()
    rc = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", port) for port in others])
    acked, after, errors, last_error = 0, -1, 0, ""

    def retried(what, fn):
        nonlocal errors, last_error
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: {acked} writes acknowledged (signal after "
                                     f"{after}), {errors} errors, last: {last_error}")
            try:
                return fn()
            # RedisClusterException is what 4.3.4 raises while no node it asks knows a
            # leader; it is not a RedisError.
            except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException,
                    OSError) as e:
                errors += 1
                last_error = f"{type(e).__name__}: {e}"
                time.sleep(0.05)

    while after < 0 or acked < after + 30:
        expect(retried(f"SET {acked}", lambda: rc.set(p + str(acked), str(acked))), True,
               f"SET {acked}")
        acked += 1
        if acked == 20 and after < 0:
            print("phase1", flush=True)
        if after < 0 and acked >= 20:
            if os.path.exists(signal):
                after = acked
            else:
                time.sleep(0.02)
    for i in range(acked):
        expect(retried(f"GET {i}", lambda: rc.get(p + str(i))), str(i).encode(),
               f"read back {p}{i}")
    print(f"writes={acked} after_signal={acked - after} errors={errors} last_error={last_error}")


CHECKS = {name[len("check_"):]: fn for name, fn in globals().items() if name.startswith("check_")}


def main():
    check, port = sys.argv[1], int(sys.argv[2])
    others = [int(a) for a in sys.argv[3:]]
    prefix = f"py:{check}:{uuid.uuid4().hex[:8]}:"
    # The failover check is started with every node's port and needs them all.
    CHECKS[check](redis.Redis(port=port), prefix,
                  [port] + others if check == "failover" else others or [port])
    print("ok", check)


if __name__ == "__main__":
    main()
