/*
 * loop.h: the core event loop.
 *
 * One thread runs the loop: file descriptors with read/write interest,
 * monotonic timers whose callback returns the next delay, before-sleep
 * hooks, and a hand-off queue through which other threads post work back
 * to the loop.  Nothing that may block runs on it.
 */
#ifndef SB_LOOP_H
#define SB_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct sb_loop;
struct sb_timer;

#define SB_READ  1u
#define SB_WRITE 2u

#define SB_TIMER_STOP (-1L)	/* timer callback return: do not re-arm */

/* fd callback: mask says which of SB_READ/SB_WRITE (or both) are ready;
 * an error or hang-up on the fd is reported as SB_READ. */
typedef void sb_fd_fn(struct sb_loop *, int fd, unsigned mask, void *ud);
/* timer callback: return the next delay in ms, or SB_TIMER_STOP (the timer
 * is then freed and its handle is no longer valid). */
typedef long sb_timer_fn(struct sb_loop *, struct sb_timer *, void *ud);
typedef void sb_hook_fn(struct sb_loop *, void *ud);
/* hand-off callback: runs on the loop thread. */
typedef void sb_task_fn(void *ud);

struct sb_loop *sb_loop_new(void);
void sb_loop_free(struct sb_loop *);	/* runs no pending tasks; frees timers */

/* Watch fd (borrowed: the caller still closes it, after sb_loop_del_fd). */
int  sb_loop_add_fd(struct sb_loop *, int fd, unsigned mask, sb_fd_fn *, void *ud);
int  sb_loop_mod_fd(struct sb_loop *, int fd, unsigned mask);
void sb_loop_del_fd(struct sb_loop *, int fd);	/* safe from inside callbacks */
/* Stop watching fd for ms milliseconds, then watch it as before (a
 * listening socket that has no descriptor to accept into stays readable:
 * watched, it would wake the loop again and again).  sb_loop_mod_fd()
 * meanwhile ends the pause; sb_loop_del_fd() forgets it. */
int  sb_loop_pause_fd(struct sb_loop *, int fd, long ms);

/* Fire fn after ms milliseconds (0: on the next iteration). */
struct sb_timer *sb_loop_add_timer(struct sb_loop *, long ms, sb_timer_fn *, void *ud);
/* Cancel a timer; safe from inside any callback, including its own. */
void sb_loop_del_timer(struct sb_loop *, struct sb_timer *);

/* Hooks run, in the order added, before each wait for events. */
int  sb_loop_add_before_sleep(struct sb_loop *, sb_hook_fn *, void *ud);
void sb_loop_del_before_sleep(struct sb_loop *, sb_hook_fn *, void *ud);

/* Thread-safe: queue fn(ud) to run on the loop thread soon.  Returns 0 or
 * -ENOMEM.  Tasks run in the order posted. */
int  sb_loop_post(struct sb_loop *, sb_task_fn *, void *ud);

/* From another thread: run fn(ud) at once, on the calling thread, if the
 * loop thread has been asleep for min_idle_us at least, with no posted
 * task waiting (it then waits for fn to return); 1 if it ran, 0 if not
 * (then post it).  After a 1, call sb_loop_wake() when convenient: the
 * loop has its hooks to run. */
int  sb_loop_try_run(struct sb_loop *, long min_idle_us, sb_task_fn *, void *ud);
void sb_loop_wake(struct sb_loop *);
/* Inside such a task: true.  What must not run on another thread (a
 * thread joining itself) posts itself to the loop instead. */
bool sb_loop_elsewhere(struct sb_loop *);

/* Run the tasks posted so far, now (at shutdown, after the threads that
 * post have been joined, so that nothing they posted is lost or leaked). */
void sb_loop_run_posted(struct sb_loop *);
/* Run the timers due now and nothing else: no hook, no file descriptor,
 * no posted task (the first polls at start-up, see sb_core_start). */
void sb_loop_run_due(struct sb_loop *);

/* Run until sb_loop_stop(); returns 0. */
int  sb_loop_run(struct sb_loop *);
/* One iteration: wait at most timeout_ms (-1: until something happens). */
int  sb_loop_once(struct sb_loop *, long timeout_ms);
void sb_loop_stop(struct sb_loop *);

/* Monotonic clock in milliseconds. */
uint64_t sb_now_ms(void);

#endif
