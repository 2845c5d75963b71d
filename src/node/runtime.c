/*
 * The real world behind struct node_io: one libuv loop, the LMDB store behind its writer
 * thread, the peer transport, the fsm thread and its snapshot children, the client port,
 * the clock and the signals. It loads the durable state, boots the node, and turns every
 * callback into one of the node's entry points; it decides nothing itself.
 */
#include "node/runtime.h"

/* ------------------------------------------------------------------------------------ */
/* Callbacks of the layers. */

/* Logs why the snapshot child that ended with wait status st failed, if it did: each exit
 * status names one failure (fsm/worker.c, child_exit_*). Returns true if it succeeded. */
static bool child_succeeded(struct runtime *rt, int st)
{
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        return true;
    }
    if (WIFEXITED(st)) {
        node_log(rt->n,
                 "snapshot at index %" PRIu64
                 " failed: the child exited with status %d: %s (see its message above)",
                 rt->snap_index, WEXITSTATUS(st), fsm_worker_child_exit_text(WEXITSTATUS(st)));
    } else if (WIFSIGNALED(st)) {
        node_log(rt->n,
                 "snapshot at index %" PRIu64 " failed: the child was killed by signal %d (%s)",
                 rt->snap_index, WTERMSIG(st), strsignal(WTERMSIG(st)));
    } else {
        node_log(rt->n, "snapshot at index %" PRIu64 " failed: wait status %d", rt->snap_index, st);
    }
    return false;
}

static void try_reap(struct runtime *rt)
{
    if (rt->snap_pid <= 0) {
        return;
    }
    int st;
    if (waitpid(rt->snap_pid, &st, WNOHANG) != rt->snap_pid) {
        return;
    }
    rt->snap_pid = 0;
    char path[node_snap_path_bytes_max];
    int status = child_succeeded(rt, st) ? 0 : -1;
    if (status == 0 &&
        snapfile_path(rt->c->data_dir, rt->snap_index, rt->snap_term, path, sizeof path) != 0) {
        node_log(rt->n, "snapshot at index %" PRIu64 ": its path does not fit %zu bytes",
                 rt->snap_index, sizeof path);
        status = -1;
    }
    node_snapshot_written(rt->n, rt->snap_index, rt->snap_term, status == 0 ? path : NULL, status);
}

static void worker_done_cb(void *arg, struct fsm_job *job)
{
    struct runtime *rt = arg;
    if (job->type == FSM_JOB_SNAPSHOT && job->status == 0) {
        /* The child is writing the file: its exit (SIGCHLD) finishes the snapshot. */
        rt->snap_pid = job->pid;
        rt->snap_index = job->index;
        rt->snap_term = job->term;
        fsm_job_free(job);
        try_reap(rt);
        return;
    }
    node_fsm_done(rt->n, job);
}

static void maybe_stop(struct runtime *rt);

static void prepare_cb(uv_prepare_t *h)
{
    struct runtime *rt = h->data;
    node_turn(rt->n);
    maybe_stop(rt);
}

/* How late this tick runs against its period: the time the loop thread spent on something
 * else (a long callback, the machine taking the CPU away). A stall of half an election
 * timeout is logged, since followers start elections when a leader's heartbeats stop for
 * a whole one; luaraft_loop_stall_seconds counts every stall for /metrics. */
static void note_tick_lateness(struct runtime *rt)
{
    uv_update_time(&rt->loop);
    uint64_t now = uv_now(&rt->loop);
    uint64_t period = rt->c->tick_ms;
    if (rt->tick_last_ms != 0 && now - rt->tick_last_ms > period) {
        uint64_t late = now - rt->tick_last_ms - period;
        histogram_observe(&rt->tick_late_seconds, (double)late / 1000.0);
        if (late >= (uint64_t)rt->c->election_ticks * period / 2) {
            node_log(rt->n,
                     "the loop thread stalled for %" PRIu64 " ms (the election timeout is %" PRIu64
                     " to %" PRIu64 " ms)",
                     late, (uint64_t)rt->c->election_ticks * period,
                     2 * (uint64_t)rt->c->election_ticks * period);
        }
    }
    rt->tick_last_ms = now;
}

static void tick_cb(uv_timer_t *h)
{
    struct runtime *rt = h->data;
    note_tick_lateness(rt);
    node_tick(rt->n);
    maybe_stop(rt);
}

static void transport_recv_cb(void *arg, struct raft_message *m)
{
    struct runtime *rt = arg;
    node_receive(rt->n, m);
}

static void transport_snapshot_cb(void *arg, struct raft_message *m, const char *path)
{
    struct runtime *rt = arg;
    if (!runtime_snapshot_ours(rt, m, path)) {
        unlink(path);
        return;
    }
    struct snapfile_info info;
    bool has = snapfile_inspect(path, &info) == 0 && info.has_members;
    node_receive_snapshot(rt->n, m, path, has ? info.members : NULL, has ? info.members_len : 0);
    if (!rt->n->snap.incoming_used) {
        unlink(path);
    }
}

static void transport_frame_cb(void *arg, raft_id from, uint8_t type, const void *body, size_t len)
{
    struct runtime *rt = arg;
    node_frame(rt->n, from, type, body, len);
}

static void transport_peer_cb(void *arg, raft_id id, bool up)
{
    struct runtime *rt = arg;
    node_log(rt->n, "peer %" PRIu64 " %s", id, up ? "up" : "down");
}

static void *server_open_cb(void *arg)
{
    struct runtime *rt = arg;
    return node_session_open(rt->n);
}

static void server_close_cb(void *arg, void *session)
{
    struct runtime *rt = arg;
    node_session_close(rt->n, session);
}

static void server_command_cb(void *arg,
                              struct server_request *req,
                              void *session,
                              int argc,
                              const char *const *argv,
                              const size_t *argvlen)
{
    struct runtime *rt = arg;
    node_command(rt->n, req, session, argc, argv, argvlen);
}

/* ------------------------------------------------------------------------------------ */
/* Shutdown. */

/* Every layer has closed (the store after its queued writes): the process ends here. */
static void closed_cb(void *arg)
{
    struct runtime *rt = arg;
    lr_assert(rt->closing > 0);
    rt->closing--;
    if (rt->closing == 0) {
        node_log(rt->n, "stopped");
        fflush(stderr);
        exit(rt->exit_code);
    }
}

static void kill_snapshot_child(struct runtime *rt)
{
    if (rt->snap_pid > 0) {
        kill(rt->snap_pid, SIGKILL);
        waitpid(rt->snap_pid, NULL, 0);
        rt->snap_pid = 0;
    }
}

static void stop(struct runtime *rt)
{
    if (rt->stopping) {
        return;
    }
    rt->stopping = true;
    node_log(rt->n, "stopping");
    uv_timer_stop(&rt->tick);
    uv_timer_stop(&rt->shutdown_timer);
    uv_prepare_stop(&rt->prepare);
    kill_snapshot_child(rt);
    /* Drain the fsm thread first: its finished jobs answer their clients. Then the node
     * answers everyone still waiting. A snapshot job still queued forks a child during
     * the drain: that one goes too. */
    if (rt->worker_started) {
        fsm_worker_stop(&rt->worker);
        rt->worker_started = false;
    }
    kill_snapshot_child(rt);
    node_stop(rt->n);
    rt->closing = 3 + runtime_http_close(rt, closed_cb);
    server_close(rt->srv, closed_cb, rt);
    transport_close(rt->tr, closed_cb, rt);
    store_close(rt->store, closed_cb, rt);
    uv_close((uv_handle_t *)&rt->tick, NULL);
    uv_close((uv_handle_t *)&rt->shutdown_timer, NULL);
    uv_close((uv_handle_t *)&rt->prepare, NULL);
    uv_close((uv_handle_t *)&rt->sigchld, NULL);
    uv_close((uv_handle_t *)&rt->sigint, NULL);
    uv_close((uv_handle_t *)&rt->sigterm, NULL);
}

/* The last line of a shutdown that overran its bound, formatted beforehand: the handler
 * may only write(2) and _exit(2). Its time is when the bound was due. */
static char backstop_line[lr_log_line_bytes_max];
static size_t backstop_len;

static void backstop_cb(int signum)
{
    (void)signum;
    ssize_t w = write(STDERR_FILENO, backstop_line, backstop_len);
    (void)w;
    _exit(1);
}

/* The process ends after ms whatever the loop is doing (an fsync that hangs, a job of the
 * fsm thread that the stop waits for): SIGALRM, whose handler exits. */
static void arm_backstop(uint64_t ms)
{
    unsigned secs = (unsigned)((ms + 999) / 1000);
    char when[lr_log_time_bytes];
    lr_log_time(lr_log_now_ms() + secs * 1000u, when);
    int k = snprintf(backstop_line, sizeof backstop_line,
                     "%s luaraft[%" PRIu64 "]: the shutdown took longer than %u s: exiting now\n",
                     when, lr_log_id(), secs);
    backstop_len = k > 0 ? (size_t)k : 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = backstop_cb;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(secs);
}

static uint64_t transfer_bound_ms(const struct runtime *rt)
{
    return 2 * (uint64_t)rt->c->election_ticks * rt->c->tick_ms;
}

/* The graceful part is over (the leadership handed over, or there was none to hand). */
static void maybe_stop(struct runtime *rt)
{
    if (rt->shutting_down && !rt->stopping && node_shutdown_ready(rt->n)) {
        stop(rt);
    }
}

static void shutdown_timer_cb(uv_timer_t *h)
{
    struct runtime *rt = h->data;
    node_log(rt->n, "the leadership transfer did not end within %" PRIu64 " ms: stopping anyway",
             transfer_bound_ms(rt));
    stop(rt);
}

/* SIGINT or SIGTERM: a leader hands its leadership over first, bounded by two election
 * timeouts; then the node stops as it always did (the fsm thread drained, every waiting
 * client answered, the store's queued writes made durable, the replies flushed). */
static void begin_shutdown(struct runtime *rt, int signum)
{
    if (rt->shutting_down || rt->stopping) {
        return;
    }
    rt->shutting_down = true;
    /* With no watcher left libuv puts back their default action: a second SIGINT or
     * SIGTERM ends the process at once, even while the loop waits for a thread. */
    uv_signal_stop(&rt->sigint);
    uv_signal_stop(&rt->sigterm);
    arm_backstop(transfer_bound_ms(rt) + runtime_stop_flush_ms_max);
    node_log(rt->n, "%s: shutting down (a second SIGINT or SIGTERM exits at once)",
             signum == SIGINT ? "SIGINT" : "SIGTERM");
    node_shutdown(rt->n);
    uv_timer_start(&rt->shutdown_timer, shutdown_timer_cb, transfer_bound_ms(rt), 0);
    maybe_stop(rt);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct runtime *rt = h->data;
    if (signum == SIGCHLD) {
        try_reap(rt);
        return;
    }
    begin_shutdown(rt, signum);
}

/* ------------------------------------------------------------------------------------ */

/* A numeric address (node_config holds them resolved) on the loopback interface. */
static bool is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
}

static int start_transport(struct runtime *rt)
{
    const struct node_config *c = rt->c;
    struct node *n = rt->n;
    char msg[node_errmsg_bytes];
    const char *cluster_id = n->mb.cluster_id;
    struct transport_peer peers[RAFT_SERVERS_MAX];
    unsigned n_peers = 0;
    for (int i = 0; i < n->n_members; i++) {
        if (n->members[i].id == c->id || n->members[i].port == 0) {
            continue;
        }
        peers[n_peers].id = n->members[i].id;
        snprintf(peers[n_peers].host, sizeof peers[n_peers].host, "%s", n->members[i].host);
        peers[n_peers].port = n->members[i].port;
        n_peers++;
    }
    struct transport_options to = {
        .self = c->id,
        .listen_host = c->raft_host,
        .listen_port = c->raft_port,
        .cluster_id = cluster_id,
        .client_addr = n->client_addr,
        .dir = c->data_dir,
        .peer_key = c->peer_key,
        .send_queue_bytes_max = runtime_send_queue_bytes_max,
        .reconnect_ms_min = runtime_reconnect_ms_min,
        .reconnect_ms_max = runtime_reconnect_ms_max,
    };
    struct transport_callbacks tcb = {
        .arg = rt,
        .recv = transport_recv_cb,
        .snapshot = transport_snapshot_cb,
        .frame = transport_frame_cb,
        .peer = transport_peer_cb,
    };
    if (transport_start(&rt->tr, &rt->loop, &to, peers, n_peers, &tcb, msg, sizeof msg) != 0) {
        FAIL("cannot start the peer transport on %s:%d: %s", c->raft_host, c->raft_port, msg);
    }
    if (c->peer_key == NULL && !is_loopback(c->raft_host)) {
        lr_log(
            "WARNING: serving peers on %s:%d with no peer secret: anyone who can reach it "
            "can join as a member (append and commit entries, vote, force elections, "
            "forward writes); give every node the same --peer-secret-file",
            c->raft_host, c->raft_port);
    }
    return 0;
}

static int start_server(struct runtime *rt)
{
    const struct node_config *c = rt->c;
    char msg[node_errmsg_bytes];
    struct server_options svo = {
        .host = c->listen_host,
        .port = c->listen_port,
        .clients_max = c->clients_max,
        .out_bytes_max = runtime_client_out_bytes_max,
        .pending_max = runtime_client_pending_max,
        .limits = {.bulk_bytes_max = runtime_client_bulk_bytes_max,
                   .query_bytes_max = runtime_client_query_bytes_max},
        .clients_bytes_max = c->client_memory_bytes,
        .auth_required = c->requirepass != NULL,
    };
    struct server_callbacks scb = {
        .arg = rt, .open = server_open_cb, .close = server_close_cb, .command = server_command_cb};
    if (server_start(&rt->srv, &rt->loop, &svo, &scb, msg, sizeof msg) != 0) {
        FAIL("cannot serve clients on %s: %s", rt->n->client_addr, msg);
    }
    if (c->requirepass == NULL && !is_loopback(c->listen_host)) {
        lr_log(
            "WARNING: serving clients on %s with no password: anyone who reaches it can "
            "read and write; give --requirepass-file",
            rt->n->client_addr);
    }
    return 0;
}

static void start_handles(struct runtime *rt)
{
    histogram_init(&rt->tick_late_seconds, histogram_latency_bounds, histogram_latency_bounds_n);
    uv_timer_init(&rt->loop, &rt->tick);
    rt->tick.data = rt;
    uv_timer_start(&rt->tick, tick_cb, rt->c->tick_ms, rt->c->tick_ms);
    uv_timer_init(&rt->loop, &rt->shutdown_timer);
    rt->shutdown_timer.data = rt;
    uv_prepare_init(&rt->loop, &rt->prepare);
    rt->prepare.data = rt;
    uv_prepare_start(&rt->prepare, prepare_cb);
    uv_signal_t *sigs[] = {&rt->sigchld, &rt->sigint, &rt->sigterm};
    int signums[] = {SIGCHLD, SIGINT, SIGTERM};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&rt->loop, sigs[i]);
        sigs[i]->data = rt;
        uv_signal_start(sigs[i], signal_cb, signums[i]);
    }
    signal(SIGPIPE, SIG_IGN);
}

/* Everything before the loop runs: load the script (a script that fails stops start-up),
 * the store, the newest snapshot and the log; then start the core and the IO layers. */
/* Big payloads (a value of megabytes, copied into the log cache, the store's request,
 * the fsm job, a reply) come and go all the time. glibc hands blocks above its mmap
 * threshold out as fresh mappings, so every such copy on the loop thread also pays a
 * page fault per 4 KiB (a 16 MiB copy took 100-300 ms on a loaded machine, longer than
 * an election timeout): keep them in the heap, and keep freed memory for reuse. */
static void tune_allocator(void)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, runtime_mmap_threshold_bytes);
    mallopt(M_TRIM_THRESHOLD, runtime_trim_threshold_bytes);
#endif
}

static int start(struct runtime *rt)
{
    tune_allocator();
    const struct node_config *c = rt->c;
    char msg[node_errmsg_bytes];
    struct fsm_limits limits = {.instructions_max = runtime_instructions_max,
                                .memory_bytes_max = (size_t)c->lua_memory,
                                .command_memory_bytes_max = (size_t)c->lua_command_memory};
    if (fsm_open(&rt->fsm, c->script, &limits, msg, sizeof msg) != 0) {
        FAIL("cannot load %s: %s", c->script, msg);
    }
    /* Test only (the specs of RAFT.CHECK): a replica made to drift. */
    const char *diverge = getenv("LUARAFT_TEST_DIVERGE_KEY");
    if (diverge != NULL && diverge[0] != '\0') {
        fsm_test_diverge(rt->fsm, diverge);
        lr_log(
            "TEST ONLY: LUARAFT_TEST_DIVERGE_KEY is set: this node does not apply writes "
            "to key '%s', so its state will differ from the others'",
            diverge);
    }
    if (runtime_identity_of(c->script, &rt->script, msg, sizeof msg) != 0) {
        FAIL("%s", msg);
    }
    int rv = uv_loop_init(&rt->loop);
    lr_assert(rv == 0);
    rt->io = runtime_io;
    rt->io.arg = rt;
    rt->n = node_new(c, &rt->io, rt->fsm);
    snprintf(rt->n->script_name, sizeof rt->n->script_name, "%s", rt->script.name);
    script_identity_hex(&rt->script, rt->n->script_hash);
    snprintf(rt->n->client_addr, sizeof rt->n->client_addr,
             strchr(c->listen_host, ':') ? "[%s]:%d" : "%s:%d", c->listen_host, c->listen_port);
    /* Forward and read ids must not repeat across this node's restarts, or a late answer
     * to a request made before a crash would match a new one: start them at a random
     * point of the 64-bit space. */
    rt->n->wr.fwd_seq = config_random_u64();
    rt->n->rd.seq = config_random_u64();
    if (runtime_load_and_boot(rt) != 0) {
        return 1;
    }
    rv = fsm_worker_start(&rt->worker, &rt->loop, rt->fsm, &rt->script, rt->n->snap.index,
                          rt->n->snap.term, worker_done_cb, rt);
    if (rv != 0) {
        FAIL("cannot start the fsm thread: %s", strerror(-rv));
    }
    rt->worker_started = true;
    if (start_transport(rt) != 0 || start_server(rt) != 0 || runtime_http_start(rt) != 0) {
        return 1;
    }
    start_handles(rt);
    node_log(rt->n, "serving clients on %s, peers on %s:%d", rt->n->client_addr, c->raft_host,
             c->raft_port);
    return 0;
}

int node_run(const struct node_config *c)
{
    struct runtime *rt = calloc(1, sizeof *rt);
    lr_assert(rt != NULL);
    rt->c = c;
    if (start(rt) != 0) {
        /* Start-up failed: the process exits, which releases everything. */
        return 1;
    }
    uv_run(&rt->loop, UV_RUN_DEFAULT);
    uv_loop_close(&rt->loop);
    return rt->exit_code;
}
