/*
 * test_loop.c: unit tests for core/loop.c.
 *
 * Runs the real loop against real pipes, socketpairs, threads and the
 * monotonic clock; nothing is mocked.  A test that waits for something runs
 * the loop until it happens or PATIENCE_MS passes, and never sleeps for a
 * time that is merely hoped to be long enough.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "loop.h"

#define PATIENCE_MS	10000	/* how long to wait for what must happen */

static int
setup(void **state)
{
	*state = sb_loop_new();
	return *state ? 0 : -1;
}

static int
teardown(void **state)
{
	sb_loop_free(*state);
	return 0;
}

/* Run the loop until *count reaches want or PATIENCE_MS passes. */
static int
run_until(struct sb_loop *loop, const int *count, int want)
{
	uint64_t end = sb_now_ms() + PATIENCE_MS;

	while (*count < want) {
		uint64_t now = sb_now_ms();

		if (now >= end)
			break;
		assert_int_equal(sb_loop_once(loop, (long)(end - now)), 0);
	}
	return *count;
}

static void
make_pipe(int p[2])
{
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static void
put_byte(int fd, char c)
{
	assert_int_equal(write(fd, &c, 1), 1);
}

/* ---- fds ---- */

struct fdrec {
	int      calls;
	int      fd;
	unsigned mask;
	bool     drain;		/* read what is readable */
	ssize_t  got;		/* result of the last read */
	char     byte;
};

static void
rec_fd(struct sb_loop *loop, int fd, unsigned mask, void *ud)
{
	struct fdrec *r = ud;

	(void)loop;
	r->calls++;
	r->fd = fd;
	r->mask = mask;
	if (r->drain && (mask & SB_READ))
		r->got = read(fd, &r->byte, 1);
}

static void
test_pipe_read(void **state)
{
	struct sb_loop *loop = *state;
	struct fdrec r = { .drain = true };
	int p[2];

	make_pipe(p);
	assert_int_equal(sb_loop_add_fd(loop, p[0], SB_READ, rec_fd, &r), 0);
	assert_int_equal(sb_loop_once(loop, 0), 0);
	assert_int_equal(r.calls, 0);		/* nothing written yet */

	put_byte(p[1], 'x');
	assert_int_equal(run_until(loop, &r.calls, 1), 1);
	assert_int_equal(r.fd, p[0]);
	assert_int_equal(r.mask, SB_READ);
	assert_int_equal(r.got, 1);
	assert_int_equal(r.byte, 'x');

	/* Drained: level-triggered readiness must not repeat. */
	assert_int_equal(sb_loop_once(loop, 0), 0);
	assert_int_equal(r.calls, 1);

	/* A hang-up (no data, writer gone) is reported as SB_READ. */
	close(p[1]);
	assert_int_equal(run_until(loop, &r.calls, 2), 2);
	assert_int_equal(r.mask, SB_READ);
	assert_int_equal(r.got, 0);

	sb_loop_del_fd(loop, p[0]);
	r.calls = 0;
	assert_int_equal(sb_loop_once(loop, 0), 0);
	assert_int_equal(r.calls, 0);		/* deleted: no more hang-ups */
	close(p[0]);
}

/*
 * A paused fd is not reported, though readable, until its pause is over;
 * then it is watched as before.  sb_loop_mod_fd() ends a pause at once,
 * and a deleted fd's pause is forgotten (its number, added again, is
 * watched at once).
 */
static void
test_pause_fd(void **state)
{
	struct sb_loop *loop = *state;
	struct fdrec r = { 0 }, r2 = { 0 };	/* never drained: stays readable */
	uint64_t t0;
	int p[2];

	make_pipe(p);
	put_byte(p[1], 'x');
	assert_int_equal(sb_loop_add_fd(loop, p[0], SB_READ, rec_fd, &r), 0);
	assert_int_equal(sb_loop_pause_fd(loop, 1000, 10), -ENOENT);
	t0 = sb_now_ms();
	assert_int_equal(sb_loop_pause_fd(loop, p[0], 80), 0);
	assert_int_equal(sb_loop_pause_fd(loop, p[0], 80), 0);	/* paused already */
	assert_int_equal(sb_loop_once(loop, 0), 0);
	assert_int_equal(r.calls, 0);
	assert_int_equal(run_until(loop, &r.calls, 1), 1);
	assert_true(sb_now_ms() - t0 >= 80);	/* a slow machine only adds */
	assert_int_equal(r.mask, SB_READ);

	/* The owner's sb_loop_mod_fd() ends the pause. */
	assert_int_equal(sb_loop_pause_fd(loop, p[0], PATIENCE_MS * 10), 0);
	assert_int_equal(sb_loop_once(loop, 0), 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(sb_loop_mod_fd(loop, p[0], SB_READ), 0);
	assert_int_equal(run_until(loop, &r.calls, 2), 2);

	/* Deleted while paused: added again, it is watched at once. */
	assert_int_equal(sb_loop_pause_fd(loop, p[0], PATIENCE_MS * 10), 0);
	sb_loop_del_fd(loop, p[0]);
	assert_int_equal(sb_loop_add_fd(loop, p[0], SB_READ, rec_fd, &r2), 0);
	assert_int_equal(run_until(loop, &r2.calls, 1), 1);
	sb_loop_del_fd(loop, p[0]);
	close(p[0]);
	close(p[1]);
}

static void
test_write_interest_and_mod(void **state)
{
	struct sb_loop *loop = *state;
	struct fdrec r = { 0 };
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);

	assert_int_equal(sb_loop_add_fd(loop, sv[0], SB_WRITE, rec_fd, &r), 0);
	assert_int_equal(run_until(loop, &r.calls, 1), 1);
	assert_int_equal(r.fd, sv[0]);
	assert_int_equal(r.mask, SB_WRITE);

	/* Read interest only, nothing to read: silence. */
	assert_int_equal(sb_loop_mod_fd(loop, sv[0], SB_READ), 0);
	r.calls = 0;
	assert_int_equal(sb_loop_once(loop, 0), 0);
	assert_int_equal(r.calls, 0);

	assert_int_equal(write(sv[1], "ab", 2), 2);
	assert_int_equal(run_until(loop, &r.calls, 1), 1);
	assert_int_equal(r.mask, SB_READ);

	/* Both ready (the data was not read): one call with both bits. */
	assert_int_equal(sb_loop_mod_fd(loop, sv[0], SB_READ | SB_WRITE), 0);
	r.calls = 0;
	assert_int_equal(run_until(loop, &r.calls, 1), 1);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.mask, SB_READ | SB_WRITE);

	/* No interest: still registered, but silent. */
	assert_int_equal(sb_loop_mod_fd(loop, sv[0], 0), 0);
	r.calls = 0;
	assert_int_equal(sb_loop_once(loop, 0), 0);
	assert_int_equal(r.calls, 0);

	sb_loop_del_fd(loop, sv[0]);
	close(sv[0]);
	close(sv[1]);
}

static void
test_fd_errors(void **state)
{
	struct sb_loop *loop = *state;
	struct fdrec r = { 0 };
	int p[2];

	make_pipe(p);
	assert_int_equal(sb_loop_add_fd(loop, -1, SB_READ, rec_fd, &r), -EBADF);
	assert_int_equal(sb_loop_add_fd(loop, p[0], 4, rec_fd, &r), -EINVAL);
	assert_int_equal(sb_loop_add_fd(loop, p[0], SB_READ, NULL, &r), -EINVAL);
	assert_int_equal(sb_loop_mod_fd(loop, p[0], SB_READ), -ENOENT);
	assert_int_equal(sb_loop_mod_fd(loop, 100000, SB_READ), -ENOENT);

	assert_int_equal(sb_loop_add_fd(loop, p[0], SB_READ, rec_fd, &r), 0);
	assert_int_equal(sb_loop_add_fd(loop, p[0], SB_READ, rec_fd, &r), -EEXIST);
	assert_int_equal(sb_loop_mod_fd(loop, p[0], 8), -EINVAL);
	sb_loop_del_fd(loop, p[0]);
	sb_loop_del_fd(loop, p[0]);		/* twice: harmless */
	sb_loop_del_fd(loop, 100000);		/* never added: harmless */

	/* A closed fd number is refused by epoll, and the slot stays free. */
	close(p[0]);
	assert_int_equal(sb_loop_add_fd(loop, p[0], SB_READ, rec_fd, &r), -EBADF);
	assert_int_equal(sb_loop_mod_fd(loop, p[0], SB_READ), -ENOENT);
	close(p[1]);
}

/*
 * Two fds are ready in the same epoll batch; whichever callback runs first
 * deletes the other (and itself).  The second one's event is already in the
 * batch and must be dropped.  With READD, the first callback also adds the
 * other fd again with another callback, which must not receive the stale
 * event either, but must see the fd on the next iteration.  With MOD, the
 * first callback instead takes away the other's read interest, which must
 * also hold for the event already collected.
 */
enum batch_mode { DEL, READD, MOD };

struct batch {
	int             fds[2];
	int             calls[2];
	int             readd_calls;
	enum batch_mode mode;
};

static void
readd_cb(struct sb_loop *loop, int fd, unsigned mask, void *ud)
{
	struct batch *b = ud;

	(void)mask;
	b->readd_calls++;
	sb_loop_del_fd(loop, fd);
}

static void
batch_cb(struct sb_loop *loop, int fd, unsigned mask, void *ud)
{
	struct batch *b = ud;
	int me = fd == b->fds[1];
	int other = b->fds[!me];

	(void)mask;
	b->calls[me]++;
	if (b->mode == MOD) {
		assert_int_equal(sb_loop_mod_fd(loop, other, 0), 0);
		return;
	}
	sb_loop_del_fd(loop, other);
	sb_loop_del_fd(loop, fd);
	if (b->mode == READD)
		assert_int_equal(sb_loop_add_fd(loop, other, SB_READ, readd_cb, b), 0);
}

static void
change_in_batch(struct sb_loop *loop, enum batch_mode mode)
{
	struct batch b = { .mode = mode };
	int p[2], q[2];

	make_pipe(p);
	make_pipe(q);
	b.fds[0] = p[0];
	b.fds[1] = q[0];
	put_byte(p[1], 'p');
	put_byte(q[1], 'q');
	assert_int_equal(sb_loop_add_fd(loop, p[0], SB_READ, batch_cb, &b), 0);
	assert_int_equal(sb_loop_add_fd(loop, q[0], SB_READ, batch_cb, &b), 0);

	/* Both pipes are readable already, so one wait reports both. */
	assert_int_equal(sb_loop_once(loop, 0), 0);
	assert_int_equal(b.calls[0] + b.calls[1], 1);
	assert_int_equal(b.readd_calls, 0);

	if (mode == MOD) {
		/* The first still reads, the second is silenced. */
		assert_int_equal(sb_loop_once(loop, 0), 0);
		assert_int_equal(b.calls[0] + b.calls[1], 2);
		assert_true(b.calls[0] == 2 || b.calls[1] == 2);
		sb_loop_del_fd(loop, p[0]);
		sb_loop_del_fd(loop, q[0]);
	} else {
		assert_int_equal(sb_loop_once(loop, 0), 0);
		assert_int_equal(b.calls[0] + b.calls[1], 1);
		assert_int_equal(b.readd_calls, mode == READD ? 1 : 0);
	}

	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
}

static void
test_del_fd_in_same_batch(void **state)
{
	change_in_batch(*state, DEL);
}

static void
test_readd_fd_in_same_batch(void **state)
{
	change_in_batch(*state, READD);
}

static void
test_mod_fd_in_same_batch(void **state)
{
	change_in_batch(*state, MOD);
}

/* ---- timers ---- */

struct tlog {
	int order[64];
	int n;
};

struct targ {
	struct tlog     *log;
	int              id;
	int              fires;
	int              stop_after;	/* re-arm until this many fires */
	long             rearm_ms;
	long             busy_ms;	/* keep the clock moving in the callback */
	uint64_t         at[16];	/* when each fire happened */
	uint64_t         done[16];	/* when each callback returned */
	struct sb_timer *victim;	/* timer to delete from the callback */
	bool             del_self;
	long             ret_after_del;
};

static long
log_timer(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	struct targ *a = ud;
	uint64_t start = sb_now_ms();
	int k = a->fires++;

	while (sb_now_ms() < start + (uint64_t)a->busy_ms)
		;	/* spin: a slow callback */
	if (k < 16) {
		a->at[k] = start;
		a->done[k] = sb_now_ms();
	}
	if (a->log && a->log->n < 64)
		a->log->order[a->log->n++] = a->id;
	if (a->victim)
		sb_loop_del_timer(loop, a->victim);
	if (a->del_self) {
		sb_loop_del_timer(loop, t);
		return a->ret_after_del;
	}
	if (a->stop_after && a->fires < a->stop_after)
		return a->rearm_ms;
	return SB_TIMER_STOP;
}

/* Let ms pass on the loop, so that wrong extra fires have time to show. */
static void
settle(struct sb_loop *loop, long ms)
{
	struct targ s = { 0 };

	assert_non_null(sb_loop_add_timer(loop, ms, log_timer, &s));
	assert_int_equal(run_until(loop, &s.fires, 1), 1);
}

static void
test_timer_order(void **state)
{
	struct sb_loop *loop = *state;
	static const long delay[] = { 30, 10, 20, 0, 25 };
	struct tlog log = { .n = 0 };
	struct targ a[5];
	uint64_t t0 = sb_now_ms();
	int i;

	for (i = 0; i < 5; i++) {
		a[i] = (struct targ){ .log = &log, .id = i };
		assert_non_null(sb_loop_add_timer(loop, delay[i], log_timer, &a[i]));
	}
	assert_int_equal(run_until(loop, &log.n, 5), 5);
	assert_int_equal(log.order[0], 3);
	assert_int_equal(log.order[1], 1);
	assert_int_equal(log.order[2], 2);
	assert_int_equal(log.order[3], 4);
	assert_int_equal(log.order[4], 0);
	for (i = 0; i < 5; i++) {
		assert_int_equal(a[i].fires, 1);
		assert_true(a[i].at[0] >= t0 + (uint64_t)delay[i]);	/* never early */
	}
}

/*
 * Equal deadlines fire in the order added.  The clock must not tick while
 * they are added, or their deadlines would differ; retry until it does not.
 */
static void
test_timer_equal_deadlines(void **state)
{
	struct sb_loop *loop = *state;
	struct tlog log = { .n = 0 };
	struct sb_timer *t[10];
	struct targ a[10];
	int attempt, i;

	for (attempt = 0; attempt < 1000; attempt++) {
		uint64_t t0 = sb_now_ms();

		/* Ids 1..8 share one deadline; 0 is later, 9 earlier. */
		for (i = 0; i < 10; i++) {
			long ms = i == 0 ? 20 : i == 9 ? 1 : 10;

			a[i] = (struct targ){ .log = &log, .id = i };
			t[i] = sb_loop_add_timer(loop, ms, log_timer, &a[i]);
			assert_non_null(t[i]);
		}
		if (sb_now_ms() == t0)
			break;
		for (i = 0; i < 10; i++)
			sb_loop_del_timer(loop, t[i]);
	}
	assert_true(attempt < 1000);

	assert_int_equal(run_until(loop, &log.n, 10), 10);
	assert_int_equal(log.order[0], 9);
	for (i = 1; i <= 8; i++)
		assert_int_equal(log.order[i], i);
	assert_int_equal(log.order[9], 0);
}

static void
test_timer_rearm(void **state)
{
	struct sb_loop *loop = *state;
	/* Each callback takes 3 ms; the next delay counts from its end,
	 * not from the deadline it fired for. */
	struct targ a = { .stop_after = 5, .rearm_ms = 2, .busy_ms = 3 };
	int i;

	assert_non_null(sb_loop_add_timer(loop, 0, log_timer, &a));
	assert_int_equal(run_until(loop, &a.fires, 5), 5);
	for (i = 1; i < 5; i++)
		assert_true(a.at[i] >= a.done[i - 1] + 2);
	settle(loop, 20);
	assert_int_equal(a.fires, 5);	/* the 5th returned SB_TIMER_STOP */
}

static void
test_timer_stop(void **state)
{
	struct sb_loop *loop = *state;
	struct targ a = { 0 };		/* log_timer returns SB_TIMER_STOP */

	assert_non_null(sb_loop_add_timer(loop, 1, log_timer, &a));
	assert_int_equal(run_until(loop, &a.fires, 1), 1);
	settle(loop, 20);
	assert_int_equal(a.fires, 1);
}

static void
test_timer_del_self(void **state)
{
	struct sb_loop *loop = *state;
	/* Deleted, then asks to be re-armed: must be neither re-armed nor
	 * touched again (ASan/valgrind see a use-after-free). */
	struct targ a = { .del_self = true, .ret_after_del = 1 };
	/* Deleted, then returns SB_TIMER_STOP: must be freed exactly once. */
	struct targ b = { .del_self = true, .ret_after_del = SB_TIMER_STOP };

	assert_non_null(sb_loop_add_timer(loop, 0, log_timer, &a));
	assert_non_null(sb_loop_add_timer(loop, 0, log_timer, &b));
	assert_int_equal(run_until(loop, &b.fires, 1), 1);
	settle(loop, 20);
	assert_int_equal(a.fires, 1);
	assert_int_equal(b.fires, 1);
}

static void
test_timer_del_other(void **state)
{
	struct sb_loop *loop = *state;
	struct targ killer = { 0 }, due = { 0 }, later = { 0 }, early = { 0 };
	struct targ killer2 = { 0 };
	struct sb_timer *t;

	/* due has the same deadline as killer but fires after it: it is due
	 * in the very pass in which killer deletes it. */
	assert_non_null(sb_loop_add_timer(loop, 0, log_timer, &killer));
	killer.victim = sb_loop_add_timer(loop, 0, log_timer, &due);
	assert_non_null(killer.victim);
	/* later is not due yet when killer2 deletes it. */
	assert_non_null(sb_loop_add_timer(loop, 0, log_timer, &killer2));
	killer2.victim = sb_loop_add_timer(loop, 30, log_timer, &later);
	assert_non_null(killer2.victim);
	/* early is deleted from outside before it is due. */
	t = sb_loop_add_timer(loop, 0, log_timer, &early);
	assert_non_null(t);
	sb_loop_del_timer(loop, t);

	assert_int_equal(run_until(loop, &killer2.fires, 1), 1);
	settle(loop, 50);
	assert_int_equal(killer.fires, 1);
	assert_int_equal(due.fires, 0);
	assert_int_equal(later.fires, 0);
	assert_int_equal(early.fires, 0);
}

/*
 * A timer that keeps asking for 0 ms must fire once per iteration and let
 * the fds be served.  It stops itself after many fires, so that a loop that
 * kept firing it within one pass fails the count instead of hanging.
 */
static void
test_timer_zero_no_starvation(void **state)
{
	struct sb_loop *loop = *state;
	struct targ a = { .stop_after = 10000, .rearm_ms = 0 };
	struct fdrec r = { 0 };		/* not drained: stays readable */
	int p[2], i;

	make_pipe(p);
	put_byte(p[1], 'x');
	assert_int_equal(sb_loop_add_fd(loop, p[0], SB_READ, rec_fd, &r), 0);
	assert_non_null(sb_loop_add_timer(loop, 0, log_timer, &a));
	for (i = 1; i <= 5; i++) {
		assert_int_equal(sb_loop_once(loop, -1), 0);
		assert_int_equal(a.fires, i);
		assert_int_equal(r.calls, i);
	}
	sb_loop_del_fd(loop, p[0]);
	close(p[0]);
	close(p[1]);
}

/*
 * 10,000 timers over 200 distinct delays (so 50 share each delay), added in
 * a scrambled order, every tenth deleted before it fires.  The rest must
 * each fire once, never early, in (deadline, order added) order.  The test
 * cannot see the loop's deadlines, only bound each by the clock read just
 * before and just after adding it.
 */
#define NTIMERS 10000

struct many {
	int      n;
	int      order[NTIMERS];
	int      fires[NTIMERS];
	long     delay[NTIMERS];
	uint64_t lo[NTIMERS], hi[NTIMERS], at[NTIMERS];
};

struct many_arg {
	struct many *m;
	int          i;
};

static long
many_timer(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	struct many_arg *a = ud;
	struct many *m = a->m;

	(void)loop;
	(void)t;
	m->fires[a->i]++;
	m->at[a->i] = sb_now_ms();
	if (m->n < NTIMERS)
		m->order[m->n++] = a->i;
	return SB_TIMER_STOP;
}

static void
test_many_timers(void **state)
{
	struct sb_loop *loop = *state;
	struct many *m = calloc(1, sizeof(*m));
	struct many_arg *arg = calloc(NTIMERS, sizeof(*arg));
	struct sb_timer **t = calloc(NTIMERS, sizeof(*t));
	int i, k, want = 0;

	assert_non_null(m);
	assert_non_null(arg);
	assert_non_null(t);
	for (i = 0; i < NTIMERS; i++) {
		arg[i] = (struct many_arg){ .m = m, .i = i };
		m->delay[i] = (long)(((unsigned long)i * 7919) % 200);
		m->lo[i] = sb_now_ms();
		t[i] = sb_loop_add_timer(loop, m->delay[i], many_timer, &arg[i]);
		m->hi[i] = sb_now_ms();
		assert_non_null(t[i]);
	}
	for (i = 0; i < NTIMERS; i += 10)
		sb_loop_del_timer(loop, t[i]);
	for (i = 0; i < NTIMERS; i++)
		want += i % 10 != 0;

	assert_int_equal(run_until(loop, &m->n, want), want);
	settle(loop, 20);
	assert_int_equal(m->n, want);

	for (i = 0; i < NTIMERS; i++) {
		assert_int_equal(m->fires[i], i % 10 != 0);
		if (m->fires[i])	/* never early */
			assert_true(m->at[i] >= m->lo[i] + (uint64_t)m->delay[i]);
	}
	for (k = 1; k < want; k++) {
		int a = m->order[k - 1], b = m->order[k];
		uint64_t a_lo = m->lo[a] + (uint64_t)m->delay[a];
		uint64_t a_hi = m->hi[a] + (uint64_t)m->delay[a];
		uint64_t b_lo = m->lo[b] + (uint64_t)m->delay[b];
		uint64_t b_hi = m->hi[b] + (uint64_t)m->delay[b];

		/* b was certainly due before a: wrong order. */
		assert_true(b_hi >= a_lo);
		/* Known equal deadlines: order added. */
		if (a_lo == a_hi && b_lo == b_hi && a_lo == b_lo)
			assert_true(a < b);
	}
	free(t);
	free(arg);
	free(m);
}

/* ---- before-sleep hooks ---- */

struct hookrec {
	int  log[32];
	int  n;
	bool a_deletes_b;
};

static void hook_b(struct sb_loop *, void *);

static void
hook_a(struct sb_loop *loop, void *ud)
{
	struct hookrec *r = ud;

	r->log[r->n++] = 1;
	if (r->a_deletes_b)
		sb_loop_del_before_sleep(loop, hook_b, ud);
}

static void
hook_b(struct sb_loop *loop, void *ud)
{
	struct hookrec *r = ud;

	(void)loop;
	r->log[r->n++] = 2;
}

static void
hook_c(struct sb_loop *loop, void *ud)	/* runs once: deletes itself */
{
	struct hookrec *r = ud;

	r->log[r->n++] = 3;
	sb_loop_del_before_sleep(loop, hook_c, ud);
}

static void
test_hooks(void **state)
{
	struct sb_loop *loop = *state;
	struct hookrec r = { .n = 0 }, other = { .n = 0 };
	static const int want[] = { 3, 1, 2, 1, 2, 1, 1 };
	int i;

	assert_int_equal(sb_loop_add_before_sleep(loop, hook_c, &r), 0);
	assert_int_equal(sb_loop_add_before_sleep(loop, hook_a, &r), 0);
	assert_int_equal(sb_loop_add_before_sleep(loop, hook_b, &r), 0);
	assert_int_equal(sb_loop_add_before_sleep(loop, hook_b, &other), 0);
	assert_int_equal(sb_loop_add_before_sleep(loop, NULL, &r), -EINVAL);

	assert_int_equal(sb_loop_once(loop, 0), 0);	/* c a b */
	assert_int_equal(sb_loop_once(loop, 0), 0);	/* a b */
	/* Same function, other ud: a different hook. */
	sb_loop_del_before_sleep(loop, hook_b, &other);
	r.a_deletes_b = true;
	assert_int_equal(sb_loop_once(loop, 0), 0);	/* a (b deleted by a) */
	assert_int_equal(sb_loop_once(loop, 0), 0);	/* a */
	sb_loop_del_before_sleep(loop, hook_a, &r);
	sb_loop_del_before_sleep(loop, hook_a, &r);	/* gone: harmless */
	assert_int_equal(sb_loop_once(loop, 0), 0);	/* none */

	assert_int_equal(r.n, (int)(sizeof(want) / sizeof(want[0])));
	for (i = 0; i < r.n; i++)
		assert_int_equal(r.log[i], want[i]);
	assert_int_equal(other.n, 2);
}

/* ---- hand-off queue ---- */

#define NTHREADS 4
#define NTASKS   1000

struct job {
	struct postctx *ctx;
	int             thread, seq;
};

struct postctx {
	struct sb_loop    *loop;
	pthread_t          loop_thread;
	pthread_barrier_t  go;
	int                next[NTHREADS];
	int                total, wrong_thread, out_of_order, post_failed;
	struct job         jobs[NTHREADS][NTASKS];
};

struct poster {
	struct postctx *ctx;
	int             id;
};

static void
job_task(void *ud)
{
	struct job *j = ud;
	struct postctx *c = j->ctx;

	if (!pthread_equal(pthread_self(), c->loop_thread))
		c->wrong_thread++;
	if (j->seq != c->next[j->thread])
		c->out_of_order++;
	c->next[j->thread] = j->seq + 1;
	c->total++;
}

static void *
poster_main(void *arg)
{
	struct poster *p = arg;
	struct postctx *c = p->ctx;
	int i, failed = 0;

	pthread_barrier_wait(&c->go);
	for (i = 0; i < NTASKS; i++)
		if (sb_loop_post(c->loop, job_task, &c->jobs[p->id][i]))
			failed++;
	return (void *)(intptr_t)failed;
}

static void
test_post_threads(void **state)
{
	struct postctx *c = calloc(1, sizeof(*c));
	struct poster p[NTHREADS];
	pthread_t th[NTHREADS];
	int i, k;

	assert_non_null(c);
	c->loop = *state;
	c->loop_thread = pthread_self();
	for (i = 0; i < NTHREADS; i++)
		for (k = 0; k < NTASKS; k++)
			c->jobs[i][k] = (struct job){ .ctx = c, .thread = i, .seq = k };
	assert_int_equal(pthread_barrier_init(&c->go, NULL, NTHREADS), 0);
	for (i = 0; i < NTHREADS; i++) {
		p[i] = (struct poster){ .ctx = c, .id = i };
		assert_int_equal(pthread_create(&th[i], NULL, poster_main, &p[i]), 0);
	}

	assert_int_equal(run_until(c->loop, &c->total, NTHREADS * NTASKS), NTHREADS * NTASKS);
	for (i = 0; i < NTHREADS; i++) {
		void *ret;

		assert_int_equal(pthread_join(th[i], &ret), 0);
		assert_int_equal((intptr_t)ret, 0);
	}
	assert_int_equal(sb_loop_once(c->loop, 0), 0);
	assert_int_equal(c->total, NTHREADS * NTASKS);	/* none ran twice */
	assert_int_equal(c->wrong_thread, 0);
	assert_int_equal(c->out_of_order, 0);
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(c->next[i], NTASKS);
	pthread_barrier_destroy(&c->go);
	free(c);
}

/* A task that posts a task: the new one runs on the next iteration. */
struct chain {
	struct sb_loop *loop;
	int             runs;
};

static void
chain_task(void *ud)
{
	struct chain *c = ud;

	if (++c->runs < 3)
		assert_int_equal(sb_loop_post(c->loop, chain_task, c), 0);
}

static void
test_post_from_loop(void **state)
{
	struct chain c = { .loop = *state };
	int i;

	assert_int_equal(sb_loop_post(c.loop, chain_task, &c), 0);
	for (i = 1; i <= 3; i++) {
		assert_int_equal(sb_loop_once(c.loop, 0), 0);
		assert_int_equal(c.runs, i);
	}
	assert_int_equal(sb_loop_once(c.loop, 0), 0);
	assert_int_equal(c.runs, 3);
}

/* ---- running a task on another thread while the loop sleeps ---- */

#define NINLINE	2000

struct inl {
	struct sb_loop *loop;
	pthread_t       loop_thread;
	atomic_int      done;
	int             next, out_of_order, on_loop, elsewhere;
	struct inljob { struct inl *c; int seq; } jobs[NINLINE];
};

static void
inl_task(void *ud)
{
	struct inljob *j = ud;
	struct inl *c = j->c;

	/* Both threads run these, never at once (the loop's lock): plain
	 * counters are enough, and the order must be the order issued. */
	if (j->seq != c->next)
		c->out_of_order++;
	c->next = j->seq + 1;
	if (pthread_equal(pthread_self(), c->loop_thread))
		c->on_loop++;
	else
		c->elsewhere++;
	atomic_fetch_add(&c->done, 1);
}

static void *
inl_main(void *arg)
{
	struct inl *c = arg;

	for (int i = 0; i < NINLINE; i++) {
		if (i % 4 == 3) {
			/* Let the loop catch up and fall asleep, so that some
			 * tasks can run here; others come while a posted one
			 * waits or the loop is busy, and must be refused. */
			uint64_t end = sb_now_ms() + PATIENCE_MS;

			while (atomic_load(&c->done) < i && sb_now_ms() < end)
				usleep(50);
			usleep(200);
		}
		/* One in four is posted: the next try finds it waiting. */
		if (i % 4 != 1 && sb_loop_try_run(c->loop, 0, inl_task, &c->jobs[i]))
			sb_loop_wake(c->loop);
		else if (sb_loop_post(c->loop, inl_task, &c->jobs[i]) != 0)
			break;
	}
	return NULL;
}

static void
test_try_run(void **state)
{
	struct inl *c = calloc(1, sizeof(*c));
	uint64_t end = sb_now_ms() + PATIENCE_MS;
	pthread_t th;

	assert_non_null(c);
	c->loop = *state;
	c->loop_thread = pthread_self();
	for (int i = 0; i < NINLINE; i++)
		c->jobs[i] = (struct inljob){ .c = c, .seq = i };
	/* Not inside sb_loop_once (as during start-up and shutdown): refused. */
	assert_int_equal(sb_loop_try_run(c->loop, 0, inl_task, &c->jobs[0]), 0);
	assert_int_equal(atomic_load(&c->done), 0);

	assert_int_equal(pthread_create(&th, NULL, inl_main, c), 0);
	while (atomic_load(&c->done) < NINLINE && sb_now_ms() < end)
		assert_int_equal(sb_loop_once(c->loop, 100), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(atomic_load(&c->done), NINLINE);
	assert_int_equal(c->out_of_order, 0);
	assert_int_equal(c->next, NINLINE);
	/* Both ways were taken. */
	assert_true(c->elsewhere > 0);
	assert_true(c->on_loop > 0);
	free(c);
}

/* ---- stopping, re-entry, freeing ---- */

static long
watchdog(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	(void)loop;
	(void)t;
	(void)ud;
	fail_msg("sb_loop_run did not stop within %d ms", PATIENCE_MS);
	return SB_TIMER_STOP;
}

static long
stop_timer(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	(void)t;
	++*(int *)ud;
	sb_loop_stop(loop);
	return 10;	/* would fire again if the loop kept running */
}

static void
stop_fd(struct sb_loop *loop, int fd, unsigned mask, void *ud)
{
	(void)mask;
	++*(int *)ud;
	sb_loop_del_fd(loop, fd);
	sb_loop_stop(loop);
}

static void *
stop_thread(void *arg)
{
	sb_loop_stop(arg);
	return NULL;
}

static void
test_stop(void **state)
{
	struct sb_loop *loop = *state;
	struct sb_timer *dog = sb_loop_add_timer(loop, PATIENCE_MS, watchdog, NULL);
	struct sb_timer *st;
	pthread_t th;
	int fired = 0, p[2];

	assert_non_null(dog);

	/* From a timer. */
	st = sb_loop_add_timer(loop, 5, stop_timer, &fired);
	assert_non_null(st);
	assert_int_equal(sb_loop_run(loop), 0);
	assert_int_equal(fired, 1);
	sb_loop_del_timer(loop, st);

	/* From an fd callback. */
	fired = 0;
	make_pipe(p);
	put_byte(p[1], 'x');
	assert_int_equal(sb_loop_add_fd(loop, p[0], SB_READ, stop_fd, &fired), 0);
	assert_int_equal(sb_loop_run(loop), 0);
	assert_int_equal(fired, 1);
	close(p[0]);
	close(p[1]);

	/* From another thread, while the loop sleeps with nothing due but the
	 * watchdog (or before it even runs: the stop must not be lost). */
	assert_int_equal(pthread_create(&th, NULL, stop_thread, loop), 0);
	assert_int_equal(sb_loop_run(loop), 0);
	assert_int_equal(pthread_join(th, NULL), 0);

	sb_loop_del_timer(loop, dog);
}

/* A loop asleep for less than min_idle_us is left alone. */
struct idle_probe {
	struct sb_loop *loop;
	int             long_idle, no_idle, ran;
};

static void
probe_task(void *ud)
{
	++*(int *)ud;
}

static void *
idle_main(void *arg)
{
	struct idle_probe *c = arg;

	usleep(50 * 1000);	/* the loop is asleep by now, for ~50 ms */
	c->long_idle = sb_loop_try_run(c->loop, 10 * 1000 * 1000, probe_task, &c->ran);
	c->no_idle = sb_loop_try_run(c->loop, 0, probe_task, &c->ran);
	sb_loop_stop(c->loop);
	return NULL;
}

static void
test_try_run_min_idle(void **state)
{
	struct idle_probe c = { .loop = *state };
	struct sb_timer *dog = sb_loop_add_timer(c.loop, PATIENCE_MS, watchdog, NULL);
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, idle_main, &c), 0);
	assert_int_equal(sb_loop_run(c.loop), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	sb_loop_del_timer(c.loop, dog);
	assert_int_equal(c.long_idle, 0);
	assert_int_equal(c.no_idle, 1);
	assert_int_equal(c.ran, 1);
}

static void
reenter_fd(struct sb_loop *loop, int fd, unsigned mask, void *ud)
{
	(void)mask;
	*(int *)ud = sb_loop_once(loop, 0);
	sb_loop_del_fd(loop, fd);
}

static void
test_once_not_reentrant(void **state)
{
	struct sb_loop *loop = *state;
	int ret = 1, p[2];

	make_pipe(p);
	put_byte(p[1], 'x');
	assert_int_equal(sb_loop_add_fd(loop, p[0], SB_READ, reenter_fd, &ret), 0);
	assert_int_equal(sb_loop_once(loop, 0), 0);
	assert_int_equal(ret, -EBUSY);
	close(p[0]);
	close(p[1]);
}

static void
never_task(void *ud)
{
	++*(int *)ud;
}

static void
noop_hook(struct sb_loop *loop, void *ud)
{
	(void)loop;
	(void)ud;
}

/* Free with everything still pending: nothing runs, nothing leaks (the
 * sanitizer and valgrind builds check the latter). */
static void
test_free_pending(void **state)
{
	struct sb_loop *loop = sb_loop_new();
	struct targ a = { 0 };
	struct fdrec r = { 0 };
	int ran = 0, i, p[2];

	(void)state;
	assert_non_null(loop);
	make_pipe(p);
	assert_int_equal(sb_loop_add_fd(loop, p[0], SB_READ, rec_fd, &r), 0);
	for (i = 0; i < 100; i++)
		assert_non_null(sb_loop_add_timer(loop, 0, log_timer, &a));
	for (i = 0; i < 10; i++) {
		assert_int_equal(sb_loop_add_before_sleep(loop, noop_hook, NULL), 0);
		assert_int_equal(sb_loop_post(loop, never_task, &ran), 0);
	}
	sb_loop_free(loop);
	sb_loop_free(NULL);
	assert_int_equal(ran, 0);
	assert_int_equal(a.fires, 0);
	assert_int_equal(r.calls, 0);
	close(p[0]);
	close(p[1]);
}

static void
test_now_monotonic(void **state)
{
	uint64_t a = sb_now_ms(), b = sb_now_ms();

	(void)state;
	assert_true(a > 0);
	assert_true(b >= a);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_pipe_read),
		T(test_pause_fd),
		T(test_write_interest_and_mod),
		T(test_fd_errors),
		T(test_del_fd_in_same_batch),
		T(test_readd_fd_in_same_batch),
		T(test_mod_fd_in_same_batch),
		T(test_timer_order),
		T(test_timer_equal_deadlines),
		T(test_timer_rearm),
		T(test_timer_stop),
		T(test_timer_del_self),
		T(test_timer_del_other),
		T(test_timer_zero_no_starvation),
		T(test_many_timers),
		T(test_hooks),
		T(test_post_threads),
		T(test_post_from_loop),
		T(test_try_run),
		T(test_try_run_min_idle),
		T(test_stop),
		T(test_once_not_reentrant),
		T(test_free_pending),
		T(test_now_monotonic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
