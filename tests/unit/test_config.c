/* Unit tests of the vfu-rt JSON config loader, --device specs and device placement. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <json-c/json.h>

#include "runtime/config.h"

struct fixture {
	char dir[64];
	char path[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vfurt-cfg-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/c.json", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void write_file(const struct fixture *f, const char *text)
{
	FILE *fp = fopen(f->path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* Load text; expect rc and, on error, an exact "FILE: " prefix plus substr. */
static void expect_load(const struct fixture *f, const char *text, int want_rc, const char *substr)
{
	struct vfurt_config cfg;
	char err[512] = "";
	int rc;

	write_file(f, text);
	vfr_config_init(&cfg);
	rc = vfr_config_load(&cfg, f->path, err, sizeof(err));
	vfr_config_free(&cfg);
	if (rc != want_rc)
		fail_msg("%s: rc %d, want %d (%s)", text, rc, want_rc, err);
	if (want_rc == 0)
		return;
	if (strncmp(err, f->path, strlen(f->path)) || strncmp(err + strlen(f->path), ": ", 2))
		fail_msg("%s: message '%s' does not start with the file name", text, err);
	if (!strstr(err, substr))
		fail_msg("%s: message '%s' lacks '%s'", text, err, substr);
}

static void load_valid(void **state)
{
	struct fixture *f = *state;
	struct vfurt_config cfg;
	char err[512] = "";

	write_file(f, "{\"cores\": \"0-1\", \"poll\": \"busy\", \"log_level\": \"debug\",\n"
		      " \"stats_interval\": 10, \"control_socket\": \"/run/vfu/ctl.sock\",\n"
		      " \"poll_sleep_us\": 250,\n"
		      " \"devices\": [{\"type\": \"gpio\", \"socket\": \"/run/vfu/gpio0.sock\",\n"
		      "   \"socket_mode\": \"0660\", \"core\": 1, \"name\": \"g0\", \"toggle_period\": 3},\n"
		      "  {\"type\": \"gpio\", \"socket\": \"/run/vfu/gpio1.sock\", \"core\": \"0\",\n"
		      "   \"toggle_period\": \"5\"}]}\n");
	vfr_config_init(&cfg);
	assert_int_equal(vfr_config_load(&cfg, f->path, err, sizeof(err)), 0);
	assert_string_equal(cfg.cores, "0-1");
	assert_true(cfg.has_poll);
	assert_int_equal(cfg.poll_mode, VFURT_POLL_BUSY);
	assert_true(cfg.has_log_level);
	assert_int_equal(cfg.log_level, VFURT_LOG_DEBUG);
	assert_true(cfg.has_stats_interval);
	assert_int_equal(cfg.stats_interval_s, 10);
	assert_true(cfg.has_poll_sleep);
	assert_int_equal(cfg.poll_sleep_us, 250);
	assert_string_equal(cfg.control_socket, "/run/vfu/ctl.sock");
	assert_int_equal(cfg.ndevices, 2);
	assert_string_equal(cfg.devices[0].spec.type, "gpio");
	assert_string_equal(vfr_devspec_get(&cfg.devices[0].spec, "socket"), "/run/vfu/gpio0.sock");
	assert_string_equal(vfr_devspec_get(&cfg.devices[0].spec, "name"), "g0");
	assert_string_equal(vfr_devspec_get(&cfg.devices[0].spec, "toggle_period"), "3");
	assert_string_equal(vfr_devspec_get(&cfg.devices[0].spec, "core"), "1");
	assert_string_equal(vfr_devspec_get(&cfg.devices[1].spec, "toggle_period"), "5");
	assert_true(cfg.devices[0].from_file);
	assert_non_null(strstr(cfg.devices[1].where, "c.json: devices[1]"));
	vfr_config_free(&cfg);
	assert_null(cfg.devices);
	assert_int_equal(cfg.ndevices, 0);
}

/* All top-level keys are optional; a file's settings replace earlier ones. */
static void load_minimal_and_merge(void **state)
{
	struct fixture *f = *state;
	struct vfurt_config cfg;
	char err[512] = "";

	vfr_config_init(&cfg);
	assert_false(cfg.has_poll);
	assert_int_equal(cfg.poll_mode, VFURT_POLL_ADAPTIVE);
	write_file(f, "{}");
	assert_int_equal(vfr_config_load(&cfg, f->path, err, sizeof(err)), 0);
	assert_null(cfg.cores);
	assert_int_equal(cfg.ndevices, 0);
	assert_false(cfg.has_stats_interval);

	assert_int_equal(vfr_config_add_device_arg(&cfg, "gpio,socket=/tmp/a.sock", err,
						     sizeof(err)), 0);
	write_file(f, "{\"cores\": \"1\", \"stats_interval\": \"7\", \"devices\": []}");
	assert_int_equal(vfr_config_load(&cfg, f->path, err, sizeof(err)), 0);
	write_file(f, "{\"cores\": \"0\", \"devices\": [{\"type\": \"gpio\", \"socket\": \"b\"}]}");
	assert_int_equal(vfr_config_load(&cfg, f->path, err, sizeof(err)), 0);
	assert_string_equal(cfg.cores, "0");
	assert_int_equal(cfg.stats_interval_s, 7);
	assert_int_equal(cfg.ndevices, 2);
	assert_false(cfg.devices[0].from_file);
	assert_true(cfg.devices[1].from_file);
	vfr_config_free(&cfg);
}

static void load_example(void **state)
{
	const char *path = VFURT_SOURCE_DIR "/examples/vfu-rt.json";
	struct vfurt_config_place place;
	struct vfurt_config cfg;
	const int cpus[] = { 0 };
	char err[512] = "";

	vfr_config_init(&cfg);
	if (vfr_config_load(&cfg, path, err, sizeof(err)))
		fail_msg("%s", err);
	assert_string_equal(cfg.cores, "0");
	assert_int_equal(cfg.ndevices, 1);
	assert_string_equal(cfg.devices[0].spec.type, "gpio");
	assert_int_equal(vfr_config_place_device(&cfg.devices[0], cpus, 1, &place, err,
						   sizeof(err)), 0);
	assert_string_equal(place.socket, "./run/gpio0.sock");
	assert_int_equal(place.worker, 0);
	assert_int_equal(place.mode, 0600);
	vfr_config_free(&cfg);
}

static void load_file_errors(void **state)
{
	struct fixture *f = *state;
	struct vfurt_config cfg;
	char missing[160];
	char err[512] = "";

	vfr_config_init(&cfg);
	snprintf(missing, sizeof(missing), "%s/none.json", f->dir);
	assert_int_equal(vfr_config_load(&cfg, missing, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "none.json: cannot open: No such file or directory"));
	assert_int_equal(vfr_config_load(&cfg, f->dir, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	vfr_config_free(&cfg);
}

static void load_syntax_errors(void **state)
{
	struct fixture *f = *state;

	expect_load(f, "", -EINVAL, "empty file (expected a JSON object)");
	expect_load(f, " \n", -EINVAL, "empty file");
	expect_load(f, "hello", -EINVAL, "not valid JSON");
	expect_load(f, "{\n  \"cores\": \"0\",\n  \"poll\" \"busy\"\n}\n", -EINVAL,
		    "at line 3, column 10");
	expect_load(f, "{\"cores\": \"0\",\n", -EINVAL, "unexpected end of file at line 2");
	expect_load(f, "{\"cores\": \"0\",}", -EINVAL, "not valid JSON");
	expect_load(f, "{} {}", -EINVAL, "not valid JSON");
	expect_load(f, "/* comment */ {}", -EINVAL, "not valid JSON");
	expect_load(f, "{}\n\n", 0, NULL);
	expect_load(f, "[]", -EINVAL, "expected a JSON object at the top level, got an array");
}

static void load_top_errors(void **state)
{
	struct fixture *f = *state;

	expect_load(f, "{\"core\": \"0\"}", -EINVAL, ": core: unknown key (known: cores, poll,");
	expect_load(f, "{\"cores\": 0}", -EINVAL, ": cores: expected a string, got a number");
	expect_load(f, "{\"cores\": \"3-1\"}", -EINVAL, ": cores: '3-1': range start is above");
	expect_load(f, "{\"cores\": \"0,0\"}", -EINVAL, ": cores: CPU 0 is listed twice");
	expect_load(f, "{\"poll\": \"fast\"}", -EINVAL,
		    ": poll: 'fast': expected \"busy\" or \"adaptive\"");
	expect_load(f, "{\"poll\": true}", -EINVAL, ": poll: expected a string, got a boolean");
	expect_load(f, "{\"log_level\": \"loud\"}", -EINVAL, ": log_level: 'loud': expected");
	expect_load(f, "{\"stats_interval\": -1}", -EINVAL, ": stats_interval: '-1': expected seconds");
	expect_load(f, "{\"poll_sleep_us\": 0}", -EINVAL,
		    ": poll_sleep_us: '0': expected microseconds, 1..1000000");
	expect_load(f, "{\"poll_sleep_us\": \"2000000\"}", -EINVAL,
		    ": poll_sleep_us: '2000000': expected microseconds");
	expect_load(f, "{\"stats_interval\": 1.5}", -EINVAL,
		    ": stats_interval: expected a string or an integer, got a fractional number");
	expect_load(f, "{\"stats_interval\": 86401}", -EINVAL, ": stats_interval: '86401'");
	expect_load(f, "{\"stats_interval\": \"ten\"}", -EINVAL, ": stats_interval: 'ten'");
	expect_load(f, "{\"stats_interval\": null}", -EINVAL, "got null");
	expect_load(f, "{\"control_socket\": \"\"}", -EINVAL, ": control_socket: must not be empty");
	expect_load(f, "{\"control_socket\": [\"x\"]}", -EINVAL, ": control_socket: expected a string");
	expect_load(f, "{\"devices\": {}}", -EINVAL,
		    ": devices: expected an array of device objects, got an object");
	expect_load(f, "{\"devices\": [\"gpio\"]}", -EINVAL,
		    ": devices[0]: expected an object, got a string");
}

static void load_device_errors(void **state)
{
	struct fixture *f = *state;

	expect_load(f, "{\"devices\": [{\"type\": \"gpio\", \"socket\": \"a\"},"
		       " {\"type\": \"gpio\", \"socket\": \"b\", \"socket_mode\": 600}]}", -EINVAL,
		    ": devices[1].socket_mode: must be a string like \"0600\": a JSON number is "
		    "decimal");
	expect_load(f, "{\"devices\": [{\"type\": \"gpio\", \"socket\": \"a\", \"socket_mode\": "
		       "\"0900\"}]}", -EINVAL,
		    ": devices[0].socket_mode: '0900' is not an octal mode like \"0600\"");
	expect_load(f, "{\"devices\": [{\"type\": \"gpio\", \"socket\": \"a\", \"socket_mode\": "
		       "\"4755\"}]}", -EINVAL,
		    ": devices[0].socket_mode: '4755' is beyond 0777 (only permission bits apply to "
		    "a socket)");
	expect_load(f, "{\"devices\": [{\"socket\": \"a\"}]}", -EINVAL,
		    ": devices[0]: missing \"type\" (known types: gpio, nvme)");
	expect_load(f, "{\"devices\": [{\"type\": \"gpio\"}]}", -EINVAL,
		    ": devices[0]: missing \"socket\"");
	expect_load(f, "{\"devices\": [{\"type\": \"gpio\", \"socket\": \"\"}]}", -EINVAL,
		    ": devices[0].socket: must not be empty");
	expect_load(f, "{\"devices\": [{\"type\": \"gpio\", \"socket\": 5}]}", -EINVAL,
		    ": devices[0].socket: expected a string, got a number");
	expect_load(f, "{\"devices\": [{\"type\": 1, \"socket\": \"a\"}]}", -EINVAL,
		    ": devices[0].type: expected a string, got a number");
	expect_load(f, "{\"devices\": [{\"type\": \"gpio\", \"socket\": \"a\", \"core\": -1}]}",
		    -EINVAL, ": devices[0].core: '-1' is not a CPU number (0..1023)");
	expect_load(f, "{\"devices\": [{\"type\": \"gpio\", \"socket\": \"a\", \"core\": \"x\"}]}",
		    -EINVAL, ": devices[0].core: 'x' is not a CPU number");
	expect_load(f, "{\"devices\": [{\"type\": \"gpio\", \"socket\": \"a\", \"name\": true}]}",
		    -EINVAL, ": devices[0].name: expected a string or an integer, got a boolean");
	expect_load(f, "{\"devices\": [{\"type\": \"gpio\", \"socket\": \"a\", \"name\": {}}]}",
		    -EINVAL, ": devices[0].name: expected a string or an integer, got an object");
	expect_load(f, "{\"devices\": [{\"type\": \"gpio\", \"socket\": \"a\", "
		       "\"a_key_that_is_far_too_long_to_fit\": 1}]}", -EINVAL,
		    ": devices[0]: key 'a_key_that_is_far_too_long_to_fit");
	expect_load(f, "{\"devices\": [{\"type\": \"gpio\", \"socket\": \"/tmp/aaaaaaaaaaaaaaaaaaaaaaa"
		       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		       "aaaaaaaaaaa.sock\"}]}", -EINVAL, ": devices[0].socket: path too long");
}

/* Device-type keys are checked by vfr_devspec_create, exactly as for --device. */
static void file_device_through_devspec(void **state)
{
	struct fixture *f = *state;
	struct vfurt_log log = { 0 };
	struct vfurt_config_place place;
	struct vfurt_config cfg;
	const int cpus[] = { 0, 1 };
	struct vfurt_dev *dev;
	char err[512] = "";

	write_file(f, "{\"devices\": [{\"type\": \"gpio\", \"socket\": \"a\", \"core\": 1,"
		      " \"toggle_period\": 2},"
		      " {\"type\": \"gpio\", \"socket\": \"b\", \"color\": \"red\"},"
		      " {\"type\": \"gpio\", \"socket\": \"c\", \"toggle_period\": 0},"
		      " {\"type\": \"nosuch\", \"socket\": \"d\"}]}");
	vfr_config_init(&cfg);
	assert_int_equal(vfr_config_load(&cfg, f->path, err, sizeof(err)), 0);
	assert_int_equal(cfg.ndevices, 4);

	assert_int_equal(vfr_config_place_device(&cfg.devices[0], cpus, 2, &place, err,
						   sizeof(err)), 0);
	assert_int_equal(place.worker, 1);
	dev = vfr_devspec_create(&cfg.devices[0].spec, &log, err, sizeof(err));
	assert_non_null(dev);
	vfurt_dev_destroy(dev);

	assert_int_equal(vfr_config_place_device(&cfg.devices[1], cpus, 2, &place, err,
						   sizeof(err)), 0);
	assert_int_equal(place.worker, -1);
	assert_null(vfr_devspec_create(&cfg.devices[1].spec, &log, err, sizeof(err)));
	assert_non_null(strstr(err, "unknown key 'color'"));

	assert_int_equal(vfr_config_place_device(&cfg.devices[2], cpus, 2, &place, err,
						   sizeof(err)), 0);
	assert_null(vfr_devspec_create(&cfg.devices[2].spec, &log, err, sizeof(err)));
	assert_non_null(strstr(err, "toggle_period='0'"));

	assert_int_equal(vfr_config_place_device(&cfg.devices[3], cpus, 2, &place, err,
						   sizeof(err)), 0);
	assert_null(vfr_devspec_create(&cfg.devices[3].spec, &log, err, sizeof(err)));
	assert_non_null(strstr(err, "unknown device type 'nosuch'"));
	vfr_config_free(&cfg);
}

static void placement(void **state)
{
	struct fixture *f = *state;
	struct vfurt_config_place place;
	struct vfurt_config cfg;
	const int cpus[] = { 0, 1, 2, 3, 6 };
	char want[512];
	char err[512] = "";

	write_file(f, "{\"devices\": [{\"type\": \"gpio\", \"socket\": \"a\", \"core\": 6},"
		      " {\"type\": \"gpio\", \"socket\": \"b\", \"core\": 5}]}");
	vfr_config_init(&cfg);
	assert_int_equal(vfr_config_load(&cfg, f->path, err, sizeof(err)), 0);
	assert_int_equal(vfr_config_add_device_arg(&cfg, "gpio,socket=c,core=4,socket_mode=0640",
						     err, sizeof(err)), 0);
	assert_int_equal(vfr_config_place_device(&cfg.devices[0], cpus, 5, &place, err,
						   sizeof(err)), 0);
	assert_int_equal(place.worker, 4);
	assert_int_equal(vfr_config_place_device(&cfg.devices[1], cpus, 5, &place, err,
						   sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want),
		 "%s: devices[1].core: CPU 5 is not in the cores list (0-3,6)", f->path);
	assert_string_equal(err, want);
	assert_int_equal(vfr_config_place_device(&cfg.devices[2], cpus, 5, &place, err,
						   sizeof(err)), -EINVAL);
	assert_string_equal(err, "--device gpio,socket=c,core=4,socket_mode=0640: core: CPU 4 is "
				 "not in the cores list (0-3,6)");
	assert_int_equal(vfr_config_place_device(&cfg.devices[2], cpus, 1, &place, err,
						   sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "(0)"));
	vfr_config_free(&cfg);
}

static void device_args(void **state)
{
	struct vfurt_config_place place;
	struct vfurt_config cfg;
	const int cpus[] = { 0 };
	char err[512] = "";

	vfr_config_init(&cfg);
	assert_int_equal(vfr_config_add_device_arg(&cfg, "gpio,socket=/tmp/x.sock,name=a", err,
						     sizeof(err)), 0);
	assert_int_equal(vfr_config_place_device(&cfg.devices[0], cpus, 1, &place, err,
						   sizeof(err)), 0);
	assert_string_equal(place.socket, "/tmp/x.sock");
	assert_int_equal(place.mode, 0600);
	assert_int_equal(place.worker, -1);
	assert_string_equal(cfg.devices[0].where, "--device gpio,socket=/tmp/x.sock,name=a");

	assert_int_equal(vfr_config_add_device_arg(&cfg, "gpio", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--device gpio: missing socket=PATH");
	assert_int_equal(vfr_config_add_device_arg(&cfg, "gpio,socket=a,socket_mode=9", err,
						     sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "socket_mode='9': '9' is not an octal mode"));
	assert_int_equal(vfr_config_add_device_arg(&cfg, "gpio,socket=a,socket_mode=01777", err,
						     sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "socket_mode='01777': '01777' is beyond 0777"));
	assert_int_equal(vfr_config_add_device_arg(&cfg, "gpio,socket=a,core=abc", err,
						     sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "core='abc': 'abc' is not a CPU number"));
	assert_int_equal(vfr_config_add_device_arg(&cfg, "gpio,socket=a,oops", err,
						     sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "--device gpio,socket=a,oops: 'oops': expected key=value"));
	assert_int_equal(cfg.ndevices, 1);
	vfr_config_free(&cfg);
}

static void value_parsers(void **state)
{
	enum vfurt_poll_mode m;
	uint32_t s;
	int level;

	assert_int_equal(vfr_config_parse_poll("busy", &m), 0);
	assert_int_equal(m, VFURT_POLL_BUSY);
	assert_int_equal(vfr_config_parse_poll("adaptive", &m), 0);
	assert_int_equal(m, VFURT_POLL_ADAPTIVE);
	assert_int_equal(vfr_config_parse_poll("Busy", &m), -EINVAL);
	assert_int_equal(vfr_config_parse_log_level("warn", &level), 0);
	assert_int_equal(level, VFURT_LOG_WARN);
	assert_int_equal(vfr_config_parse_log_level("", &level), -EINVAL);
	assert_int_equal(vfr_config_parse_stats_interval("0", &s), 0);
	assert_int_equal(s, 0);
	assert_int_equal(vfr_config_parse_stats_interval("86400", &s), 0);
	assert_int_equal(vfr_config_parse_stats_interval("86401", &s), -EINVAL);
	assert_int_equal(vfr_config_parse_stats_interval(" 1", &s), -EINVAL);
	assert_int_equal(vfr_config_parse_stats_interval("1s", &s), -EINVAL);
	assert_int_equal(vfr_config_parse_stats_interval("-1", &s), -EINVAL);
}

static void duplicate_sockets(void **state)
{
	struct fixture *f = *state;
	struct vfurt_config cfg;
	char err[1024];
	char arg[256];

	vfr_config_init(&cfg);
	write_file(f, "{\"devices\": [{\"type\": \"gpio\", \"socket\": \"/tmp/vfurt-dup-a.sock\"},"
		      " {\"type\": \"gpio\", \"socket\": \"/tmp/vfurt-dup-b.sock\"}]}");
	assert_int_equal(vfr_config_load(&cfg, f->path, err, sizeof(err)), 0);
	assert_int_equal(vfr_config_check_sockets(&cfg, err, sizeof(err)), 0);
	/* the same file by another name: a dot segment in the directory */
	assert_int_equal(vfr_config_add_device_arg(&cfg, "gpio,socket=/tmp/./vfurt-dup-b.sock",
						     err, sizeof(err)), 0);
	assert_int_equal(vfr_config_check_sockets(&cfg, err, sizeof(err)), -EINVAL);
	snprintf(arg, sizeof(arg), "--device gpio,socket=/tmp/./vfurt-dup-b.sock: socket path "
		 "/tmp/./vfurt-dup-b.sock is already used by %s: devices[1]", f->path);
	assert_string_equal(err, arg);
	vfr_config_free(&cfg);

	/* relative and absolute names of one file, and the control socket */
	vfr_config_init(&cfg);
	assert_int_equal(chdir(f->dir), 0);
	assert_int_equal(vfr_config_add_device_arg(&cfg, "gpio,socket=x.sock", err, sizeof(err)),
			 0);
	snprintf(arg, sizeof(arg), "nvme,socket=%s/x.sock", f->dir);
	assert_int_equal(vfr_config_add_device_arg(&cfg, arg, err, sizeof(err)), 0);
	assert_int_equal(vfr_config_check_sockets(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "is already used by --device gpio,socket=x.sock"));
	vfr_config_free(&cfg);
	vfr_config_init(&cfg);
	cfg.control_socket = strdup("./c.ctl");
	assert_int_equal(vfr_config_add_device_arg(&cfg, "gpio,socket=c.ctl", err, sizeof(err)),
			 0);
	assert_int_equal(vfr_config_check_sockets(&cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--device gpio,socket=c.ctl: socket path c.ctl is already the "
			    "control socket");
	assert_int_equal(chdir("/"), 0);
	vfr_config_free(&cfg);
}

static void ctl_path(void **state)
{
	char buf[128];
	char big[300];
	char tmp[64];

	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/vfu-rt-%lu", (unsigned long)geteuid());
	assert_int_equal(setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1), 0);
	assert_int_equal(vfr_config_default_ctl_path(42, false, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/run/user/1000/vfu-rt/42.ctl");
	assert_int_equal(vfr_config_default_ctl_dir(false, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/run/user/1000/vfu-rt");
	assert_int_equal(vfr_config_default_ctl_path(42, true, buf, sizeof(buf)), 0);
	assert_string_equal(strstr(buf, tmp), buf);
	assert_string_equal(buf + strlen(tmp), "/42.ctl");
	assert_int_equal(setenv("XDG_RUNTIME_DIR", "relative", 1), 0);
	assert_int_equal(vfr_config_default_ctl_dir(false, buf, sizeof(buf)), 0);
	assert_string_equal(buf, tmp);
	memset(big, 'a', sizeof(big));
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(setenv("XDG_RUNTIME_DIR", big, 1), 0);
	assert_int_equal(vfr_config_default_ctl_path(7, false, buf, sizeof(buf)), -ENAMETOOLONG);
	assert_int_equal(unsetenv("XDG_RUNTIME_DIR"), 0);
	assert_int_equal(vfr_config_default_ctl_dir(false, buf, sizeof(buf)), 0);
	assert_string_equal(buf, tmp);
}

static void ctl_dir_private(void **state)
{
	struct fixture *f = *state;
	char dir[128], link[128], err[512];

	snprintf(dir, sizeof(dir), "%s/d", f->dir);
	snprintf(link, sizeof(link), "%s/l", f->dir);
	assert_int_equal(vfr_config_ctl_dir_check(dir, false, err, sizeof(err)), -ENOENT);
	assert_int_equal(vfr_config_ctl_dir_check(dir, true, err, sizeof(err)), 0);
	assert_int_equal(vfr_config_ctl_dir_check(dir, true, err, sizeof(err)), 0);
	assert_int_equal(vfr_config_ctl_dir_check(dir, false, err, sizeof(err)), 0);
	/* group or other permissions: somebody else could swap the sockets */
	assert_int_equal(chmod(dir, 0750), 0);
	assert_int_equal(vfr_config_ctl_dir_check(dir, true, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "is not private"));
	assert_non_null(strstr(err, "mode 0750"));
	assert_int_equal(chmod(dir, 0700), 0);
	/* a symlink to our own private directory is still refused */
	assert_int_equal(symlink(dir, link), 0);
	assert_int_equal(vfr_config_ctl_dir_check(link, true, err, sizeof(err)), -ENOTDIR);
	assert_non_null(strstr(err, "(a symlink)"));
	assert_int_equal(unlink(link), 0);
	/* owned by someone else: /, unless we are root */
	if (geteuid() != 0) {
		assert_int_equal(vfr_config_ctl_dir_check("/", false, err, sizeof(err)), -EPERM);
		assert_non_null(strstr(err, "owner uid 0"));
	}
	assert_int_equal(rmdir(dir), 0);
}

/* One namespace object: defaults, every key, and each error naming its key. */
static void ns_objects(void **state)
{
	static const struct {
		const char *json;
		const char *err; /* NULL: accepted */
	} cases[] = {
		{ "{\"backend\":\"ram\",\"size\":\"1M\"}", NULL },
		{ "{\"backend\":\"file:/x\"}", NULL },
		{ "{\"nsid\":3,\"backend\":\"null\",\"size\":8192,\"lba\":4096,\"direct\":\"try\"}", NULL },
		{ "{\"size\":\"1M\"}", "missing \"backend\"" },
		{ "{\"backend\":\"ram\"}", "missing \"size\"" },
		{ "{\"backend\":\"tape\",\"size\":\"1M\"}", "backend: 'tape'" },
		{ "{\"backend\":\"file:\",\"size\":\"1M\"}", "backend: 'file:'" },
		{ "{\"backend\":\"ram\",\"size\":\"0\"}", "size: '0'" },
		{ "{\"backend\":\"ram\",\"size\":\"99999999999T\"}", "size: '99999999999T'" },
		{ "{\"backend\":\"ram\",\"size\":\"1000\"}", "not a multiple of the block size 512" },
		{ "{\"backend\":\"ram\",\"size\":\"1M\",\"lba\":\"8\"}", "lba: '8'" },
		{ "{\"backend\":\"ram\",\"size\":\"1M\",\"nsid\":-1}", "nsid: -1 is out of range" },
		{ "{\"backend\":\"ram\",\"size\":\"1M\",\"nsid\":\"2\"}", "nsid: expected an integer" },
		{ "{\"backend\":\"ram\",\"size\":\"1M\",\"direct\":\"yes\"}", "direct: 'yes'" },
		{ "{\"backend\":\"ram\",\"size\":\"1M\",\"colour\":1}", "colour: unknown key" },
		{ "[]", "expected an object" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json_object *o = json_tokener_parse(cases[i].json);
		struct vfurt_config_ns ns;
		char err[256] = "";
		int rc;

		assert_non_null(o);
		rc = vfr_config_ns_from_json(o, NULL, NULL, &ns, err, sizeof(err));
		if (!cases[i].err) {
			if (rc)
				fail_msg("%s: %s", cases[i].json, err);
		} else {
			assert_int_equal(rc, -EINVAL);
			if (!strstr(err, cases[i].err))
				fail_msg("%s: '%s' lacks '%s'", cases[i].json, err, cases[i].err);
		}
		json_object_put(o);
	}
	{
		struct json_object *o = json_tokener_parse("{\"name\":\"n0\",\"nsid\":3,"
			"\"backend\":\"null\",\"size\":8192,\"lba\":4096,\"direct\":\"on\"}");
		struct vfurt_config_ns ns;
		char err[256];

		assert_int_equal(vfr_config_ns_from_json(o, NULL, "name", &ns, err, sizeof(err)), 0);
		assert_int_equal(ns.nsid, 3);
		assert_string_equal(ns.backend, "null");
		assert_int_equal(ns.size_bytes, 8192);
		assert_int_equal(ns.block_size, 4096);
		assert_int_equal(ns.direct, 1);
		json_object_put(o);
	}
}

/* A device object without a file (device_add) and the file's "ns" array. */
static void device_objects(void **state)
{
	struct fixture *f = *state;
	struct vfurt_config_device d;
	struct vfurt_config_device copy;
	struct vfurt_config cfg;
	struct json_object *o;
	char err[512] = "";

	o = json_tokener_parse("{\"type\":\"nvme\",\"socket\":\"/tmp/n.sock\",\"size\":\"1G\","
			       "\"ns\":[{\"nsid\":2,\"backend\":\"ram\",\"size\":\"4M\"}]}");
	assert_int_equal(vfr_config_device_from_json(o, NULL, "here", &d, err, sizeof(err)), 0);
	assert_string_equal(d.spec.type, "nvme");
	assert_int_equal(d.spec.nkeys, 2);
	assert_string_equal(d.where, "here");
	assert_int_equal(d.nns, 1);
	assert_int_equal(d.ns[0].nsid, 2);
	assert_int_equal(vfr_config_device_copy(&copy, &d), 0);
	assert_ptr_not_equal(copy.ns, d.ns);
	assert_int_equal(copy.ns[0].size_bytes, 4u << 20);
	vfr_config_device_fini(&copy);
	vfr_config_device_fini(&d);
	json_object_put(o);

	o = json_tokener_parse("{\"type\":\"gpio\",\"socket\":\"/tmp/g.sock\",\"socket_mode\":600}");
	assert_int_equal(vfr_config_device_from_json(o, NULL, "", &d, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "socket_mode: must be a string"));
	assert_null(strchr(err, '[')); /* no file, no devices[i] */
	json_object_put(o);
	o = json_tokener_parse("{\"type\":\"nvme\",\"socket\":\"/tmp/n.sock\",\"ns\":[{\"backend\":\"x\"}]}");
	assert_int_equal(vfr_config_device_from_json(o, NULL, "", &d, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "ns[0].backend: 'x'"));
	json_object_put(o);

	write_file(f, "{\"devices\": [{\"type\": \"nvme\", \"socket\": \"a.sock\", \"ns\": "
		   "[{\"backend\": \"ram\", \"size\": \"1M\"}, {\"backend\": \"null\", \"size\": 4096, "
		   "\"nsid\": 9}]}]}");
	vfr_config_init(&cfg);
	assert_int_equal(vfr_config_load(&cfg, f->path, err, sizeof(err)), 0);
	assert_int_equal(cfg.ndevices, 1);
	assert_int_equal(cfg.devices[0].nns, 2);
	assert_int_equal(cfg.devices[0].ns[1].nsid, 9);
	vfr_config_free(&cfg);
	write_file(f, "{\"devices\": [{\"type\": \"nvme\", \"socket\": \"a.sock\", \"ns_remove\": [2, 5], "
		   "\"ns_resize\": [{\"nsid\": 1, \"size\": \"2G\"}]}]}");
	vfr_config_init(&cfg);
	assert_int_equal(vfr_config_load(&cfg, f->path, err, sizeof(err)), 0);
	assert_int_equal(cfg.devices[0].ns_removed, (1u << 1) | (1u << 4));
	assert_int_equal(cfg.devices[0].ns_resized[0], 2ull << 30);
	vfr_config_free(&cfg);
	write_file(f, "{\"devices\": [{\"type\": \"nvme\", \"socket\": \"a.sock\", \"ns_remove\": [33]}]}");
	vfr_config_init(&cfg);
	assert_int_equal(vfr_config_load(&cfg, f->path, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "devices[0].ns_remove[0]: nsid 33 is out of range"));
	vfr_config_free(&cfg);
	write_file(f, "{\"devices\": [{\"type\": \"nvme\", \"socket\": \"a.sock\", \"ns_resize\": [{\"nsid\": 1}]}]}");
	vfr_config_init(&cfg);
	assert_int_equal(vfr_config_load(&cfg, f->path, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "devices[0].ns_resize[0]: expected {\"nsid\": N, \"size\": SIZE}"));
	vfr_config_free(&cfg);
	write_file(f, "{\"devices\": [{\"type\": \"nvme\", \"socket\": \"a.sock\", \"ns\": 5}]}");
	vfr_config_init(&cfg);
	assert_int_equal(vfr_config_load(&cfg, f->path, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "devices[0].ns: expected an array"));
	vfr_config_free(&cfg);
}

/* vfr_config_check_spec: what --device and device_add's "spec" share. */
static void spec_checks(void **state)
{
	struct devspec spec;
	char err[256];

	(void)state;
	assert_int_equal(vfr_devspec_parse("gpio,socket=/tmp/a.sock,core=1", &spec, err, sizeof(err)), 0);
	assert_int_equal(vfr_config_check_spec(&spec, err, sizeof(err)), 0);
	assert_int_equal(vfr_devspec_parse("gpio,core=1", &spec, err, sizeof(err)), 0);
	assert_int_equal(vfr_config_check_spec(&spec, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "missing socket=PATH");
	assert_int_equal(vfr_devspec_parse("gpio,socket=/a,socket_mode=9", &spec, err, sizeof(err)), 0);
	assert_int_equal(vfr_config_check_spec(&spec, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "socket_mode='9'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(load_valid, setup, teardown),
		cmocka_unit_test_setup_teardown(load_minimal_and_merge, setup, teardown),
		cmocka_unit_test(load_example),
		cmocka_unit_test_setup_teardown(load_file_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(load_syntax_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(load_top_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(load_device_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(file_device_through_devspec, setup, teardown),
		cmocka_unit_test_setup_teardown(placement, setup, teardown),
		cmocka_unit_test(device_args),
		cmocka_unit_test(value_parsers),
		cmocka_unit_test_setup_teardown(duplicate_sockets, setup, teardown),
		cmocka_unit_test(ctl_path),
		cmocka_unit_test_setup_teardown(ctl_dir_private, setup, teardown),
		cmocka_unit_test(ns_objects),
		cmocka_unit_test_setup_teardown(device_objects, setup, teardown),
		cmocka_unit_test(spec_checks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
