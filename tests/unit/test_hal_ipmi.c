/*
 * test_hal_ipmi.c: unit tests for hal/hal_ipmi.c and hal/hal_ipmi_io.c
 * without a BMC: the configuration checks (secrets in readable files among
 * them), and the asynchronous contract against a "BMC" that never answers
 * (a UDP socket nobody reads): a request is answered later, on the loop,
 * exactly once, with a timeout that names the BMC; close() answers what is
 * pending at once and drops what the workers bring back afterwards.
 *
 * Talking to a simulated BMC is the end-to-end test's job
 * (tests/e2e/test_hal.py, against OpenIPMI's ipmi_sim).
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <libconfig.h>

#include "conf.h"
#include "core.h"
#include "hal.h"
#include "loop.h"

static char dir[256];
static int hole = -1;		/* a UDP socket that never answers */
static int hole_port;

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
setup(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);

	(void)state;
	snprintf(dir, sizeof(dir), "%s/sb-hal-ipmi-XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(dir) == NULL)
		return -1;
	sb_core.state_dir = dir;
	sb_core.loop = sb_loop_new();
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((hole = socket(AF_INET, SOCK_DGRAM, 0)) < 0 ||
	    bind(hole, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(hole, (struct sockaddr *)&sa, &len) < 0)
		return -1;
	hole_port = ntohs(sa.sin_port);
	return sb_core.loop == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	close(hole);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	sb_loop_free(sb_core.loop);
	sb_core.loop = NULL;
	sb_core.state_dir = NULL;
	return 0;
}

struct answer {
	int     calls;
	int     status;
	char    error[256];
	char    message[256];
};

static void
on_done(struct sb_hal *hal, const struct sb_hal_result *res, void *ud)
{
	struct answer *a = ud;

	(void)hal;
	a->calls++;
	a->status = res->status;
	snprintf(a->error, sizeof(a->error), "%s", res->error ? res->error : "");
	snprintf(a->message, sizeof(a->message), "%s", res->message ? res->message : "");
}

/* Open "hal = { ... }" from text, with file as the config's source (so
 * that its mode is checked), or from a string when file is NULL. */
static struct sb_hal *
open_conf(const char *body, const char *file, char *err, size_t errlen)
{
	char text[2048];
	config_t cf;
	struct sb_hal *hal;
	int ok;

	snprintf(text, sizeof(text), "hal = { backend = \"ipmi\"; %s };", body);
	config_init(&cf);
	if (file != NULL) {
		FILE *f = fopen(file, "w");

		assert_non_null(f);
		fputs(text, f);
		fclose(f);
		ok = config_read_file(&cf, file);
	} else {
		ok = config_read_string(&cf, text);
	}
	if (ok != CONFIG_TRUE)
		fail_msg("test config does not parse: line %d: %s",
		         config_error_line(&cf), config_error_text(&cf));
	hal = sb_hal_open(sb_hal_backend_find("ipmi"), "bmc1", config_lookup(&cf, "hal"),
	                  err, errlen);
	config_destroy(&cf);
	return hal;
}

static const char *
open_error(const char *body)
{
	static char err[256];
	struct sb_hal *hal;

	err[0] = '\0';
	if ((hal = open_conf(body, NULL, err, sizeof(err))) != NULL) {
		sb_hal_close(hal);
		fail_msg("opened, but should not: %s", body);
	}
	return err;
}

#define BASE "host = \"127.0.0.1\"; username = \"admin\"; "

/* A node whose BMC is the black hole, with short timeouts. */
static struct sb_hal *
open_hole(void)
{
	char body[512], err[256] = "";
	struct sb_hal *hal;

	snprintf(body, sizeof(body), BASE "port = %d; password = \"pw\"; "
	         "timeout = 0.3; request_timeout = 5.0; workers = 2;", hole_port);
	if ((hal = open_conf(body, NULL, err, sizeof(err))) == NULL)
		fail_msg("open failed: %s", err);
	return hal;
}

static void
run_loop_until(const int *calls, int want, long ms)
{
	uint64_t end = sb_now_ms() + (uint64_t)ms;

	while (*calls < want && sb_now_ms() < end)
		sb_loop_once(sb_core.loop, 20);
}

/* --- tests ------------------------------------------------------------------ */

static void
test_registered(void **state)
{
	const struct sb_hal_backend *be = sb_hal_backend_find("ipmi");

	(void)state;
	assert_non_null(be);
	assert_int_equal(be->abi, SB_HAL_ABI);
	assert_int_equal(be->caps, SB_HAL_SENSORS | SB_HAL_POWER | SB_HAL_EVENTS |
	                 SB_HAL_INVENTORY);
	assert_null(be->control);
}

static void
test_config_errors(void **state)
{
	(void)state;
	assert_non_null(strstr(open_error("username = \"admin\";"), "host"));
	assert_non_null(strstr(open_error("host = \"a b\"; username = \"x\";"), "host"));
	assert_non_null(strstr(open_error("host = \"bmc\"; username = "
	                                  "\"a-user-name-that-is-too-long\";"), "16"));
	assert_non_null(strstr(open_error(BASE "port = 0;"), "port"));
	assert_non_null(strstr(open_error(BASE "port = 70000;"), "port"));
	assert_non_null(strstr(open_error(BASE "privilege = \"root\";"), "privilege"));
	assert_non_null(strstr(open_error(BASE "cipher_suite = 5;"), "cipher_suite"));
	assert_non_null(strstr(open_error(BASE "workarounds = [ \"bogus\" ];"), "bogus"));
	assert_non_null(strstr(open_error(BASE "timeout = 0.0;"), "timeout"));
	assert_non_null(strstr(open_error(BASE "timeout = 5; request_timeout = 2;"),
	                       "request_timeout"));
	assert_non_null(strstr(open_error(BASE "workers = 0;"), "workers"));
	assert_non_null(strstr(open_error(BASE "password = \"a\"; password_file = \"/x\";"),
	                       "not both"));
	assert_non_null(strstr(open_error(BASE "password = \"123456789012345678901\";"),
	                       "20 characters"));
	assert_non_null(strstr(open_error(BASE "k_g = \"0xzz\";"), "k_g"));
	assert_non_null(strstr(open_error(BASE "sdr_cache = \"cache.sdr\";"), "absolute"));
	assert_non_null(strstr(open_error(BASE "password_file = \"/nonexistent/pw\";"),
	                       "/nonexistent/pw"));
}

static void
test_config_ok(void **state)
{
	char err[256] = "";
	struct sb_hal *hal;

	(void)state;
	hal = open_conf(BASE "port = 6230; password = \"pw\"; privilege = \"user\"; "
	                "cipher_suite = 17; k_g = \"0x0102030405\"; workarounds = [ "
	                "\"opensesspriv\", \"intel20\" ]; sel_events = false;",
	                NULL, err, sizeof(err));
	assert_non_null(hal);
	assert_string_equal(err, "");
	sb_hal_close(hal);
	/* An IPv6 address is fine too. */
	hal = open_conf("host = \"::1\"; username = \"u\";", NULL, err, sizeof(err));
	assert_non_null(hal);
	sb_hal_close(hal);
}

/* A password may only sit in a file the world cannot read. */
static void
test_secret_files_checked(void **state)
{
	char conf[512], pwfile[512], body[1024], err[256] = "";
	struct sb_hal *hal;
	FILE *f;

	(void)state;
	snprintf(conf, sizeof(conf), "%s/sb.conf", dir);
	snprintf(pwfile, sizeof(pwfile), "%s/bmc.pw", dir);

	/* An inline password in a world-readable config file. */
	umask(022);
	hal = open_conf(BASE "password = \"hunter2\";", conf, err, sizeof(err));
	assert_null(hal);
	assert_non_null(strstr(err, "readable by everyone"));
	assert_null(strstr(err, "hunter2"));
	chmod(conf, 0640);
	{
		config_t cf;

		config_init(&cf);
		assert_int_equal(config_read_file(&cf, conf), CONFIG_TRUE);
		hal = sb_hal_open(sb_hal_backend_find("ipmi"), "bmc1",
		                  config_lookup(&cf, "hal"), err, sizeof(err));
		config_destroy(&cf);
		assert_non_null(hal);
		sb_hal_close(hal);
	}

	/* A password file: world-readable is refused, 0600 is read. */
	f = fopen(pwfile, "w");
	assert_non_null(f);
	fputs("hunter2\nsecond line ignored\n", f);
	fclose(f);
	chmod(pwfile, 0644);
	snprintf(body, sizeof(body), BASE "password_file = \"%s\";", pwfile);
	assert_non_null(strstr(open_error(body), "readable by everyone"));
	chmod(pwfile, 0600);
	err[0] = '\0';
	hal = open_conf(body, NULL, err, sizeof(err));
	assert_non_null(hal);
	sb_hal_close(hal);
}

static void
test_unknown_power_action_answered_at_once(void **state)
{
	struct answer a = { 0 };
	struct sb_hal_req req = { .op = SB_HAL_POWER_ACT, .arg = "explode" };
	struct sb_hal *hal = open_hole();

	(void)state;
	assert_int_equal(sb_hal_request(hal, &req, on_done, &a), 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.status, -EINVAL);
	assert_non_null(strstr(a.error, "explode"));
	sb_hal_close(hal);
}

static void
test_silent_bmc_times_out_on_the_loop(void **state)
{
	struct answer a = { 0 };
	struct sb_hal_req req = { .op = SB_HAL_READ };
	struct sb_hal *hal = open_hole();
	uint64_t t0 = sb_now_ms(), dt;
	char where[64];

	(void)state;
	assert_int_equal(sb_hal_request(hal, &req, on_done, &a), 0);
	assert_int_equal(a.calls, 0);		/* never before request() returns */
	run_loop_until(&a.calls, 1, 10000);
	dt = sb_now_ms() - t0;
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.status, -ETIMEDOUT);
	snprintf(where, sizeof(where), "BMC 127.0.0.1:%d does not answer", hole_port);
	assert_non_null(strstr(a.error, where));
	assert_null(strstr(a.error, "pw"));
	assert_true(dt >= 250);			/* the 0.3 s timeout was waited for */
	assert_true(dt < 5000);
	/* Nothing more comes. */
	sb_loop_once(sb_core.loop, 100);
	assert_int_equal(a.calls, 1);
	sb_hal_close(hal);
}

static void
test_close_answers_pending_once(void **state)
{
	struct answer a[4] = { { 0 } };
	struct sb_hal_req read = { .op = SB_HAL_READ };
	struct sb_hal_req power = { .op = SB_HAL_POWER_ACT, .arg = "status" };
	struct sb_hal *hal = open_hole();
	uint64_t end;

	(void)state;
	/* With two workers, two run and two wait in the queue. */
	for (int i = 0; i < 4; i++)
		assert_int_equal(sb_hal_request(hal, i % 2 ? &power : &read, on_done,
		                                &a[i]), 0);
	sb_hal_close(hal);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(a[i].calls, 1);
		assert_int_equal(a[i].status, -ECANCELED);
	}
	/* The running ones come back from their workers and are dropped. */
	end = sb_now_ms() + 2000;
	while (sb_now_ms() < end)
		sb_loop_once(sb_core.loop, 50);
	for (int i = 0; i < 4; i++)
		assert_int_equal(a[i].calls, 1);
}

/* A callback that closes the instance it is answering for. */
struct closer {
	struct sb_hal *hal;
	int     calls;
};

static void
close_in_done(struct sb_hal *hal, const struct sb_hal_result *res, void *ud)
{
	struct closer *c = ud;

	(void)res;
	assert_ptr_equal(hal, c->hal);
	c->calls++;
	sb_hal_close(hal);
}

static void
test_close_from_callback(void **state)
{
	struct closer c = { 0 };
	struct sb_hal_req read = { .op = SB_HAL_READ };

	(void)state;
	c.hal = open_hole();
	assert_int_equal(sb_hal_request(c.hal, &read, close_in_done, &c), 0);
	run_loop_until(&c.calls, 1, 10000);
	assert_int_equal(c.calls, 1);
	sb_loop_once(sb_core.loop, 50);
	assert_int_equal(c.calls, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_registered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secret_files_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_power_action_answered_at_once,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_silent_bmc_times_out_on_the_loop,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_answers_pending_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_from_callback, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
