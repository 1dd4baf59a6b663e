/* vfu-ctl: inspect vfio-user servers (`info`: an lspci -vv like dump) and vfu-rt daemons (`stats`). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vfurt/client.h>

#include "ctl_internal.h"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: vfu-ctl [OPTIONS] info SOCKET\n"
		"       vfu-ctl [OPTIONS] stats CONTROL-SOCKET|PID\n"
		"       vfu-ctl --help | --version\n"
		"\n"
		"Commands:\n"
		"  info SOCKET      connect to the vfio-user server at SOCKET and print the\n"
		"                   negotiated protocol, device, PCI config space (decoded like\n"
		"                   lspci -vv), regions and interrupts\n"
		"  stats CTL|PID    print a vfu-rt daemon's statistics (JSON: workers, devices)\n"
		"                   read from its control socket, given as a path or as the\n"
		"                   daemon's PID ($XDG_RUNTIME_DIR/vfu-rt/PID.ctl, then\n"
		"                   /tmp/vfu-rt-UID/PID.ctl)\n"
		"\n"
		"Options:\n"
		"  --timeout MS     per-request timeout in milliseconds (default 5000)\n"
		"  --twin-socket    propose twin-socket mode\n"
		"  --no-json        send VERSION without capabilities\n"
		"  -h, --help       show this help\n"
		"  -V, --version    show the version\n"
		"\n"
		"Exit status: 0 success, 1 runtime failure, 2 usage error.\n");
}

int ctl_parse_int(const char *s, long min, long max, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

int main(int argc, char **argv)
{
	struct ctl_opts co = { .timeout_ms = VFURT_CLIENT_DEFAULT_TIMEOUT_MS };
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			printf("vfu-ctl %s\n", VFURT_VERSION);
			return 0;
		} else if (!strcmp(a, "--timeout")) {
			if (i + 1 >= argc || ctl_parse_int(argv[++i], 1, 3600000, &co.timeout_ms)) {
				fprintf(stderr, "vfu-ctl: --timeout needs milliseconds (1..3600000)\n");
				return EXIT_USAGE;
			}
		} else if (!strcmp(a, "--twin-socket")) {
			co.twin = true;
		} else if (!strcmp(a, "--no-json")) {
			co.no_json = true;
		} else if (!strcmp(a, "--")) {
			i++;
			break;
		} else {
			fprintf(stderr, "vfu-ctl: unknown option '%s'\n", a);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (i >= argc) {
		fprintf(stderr, "vfu-ctl: missing command\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[i], "info")) {
		if (argc - i != 2) {
			fprintf(stderr, "vfu-ctl: usage: vfu-ctl info SOCKET\n");
			return EXIT_USAGE;
		}
		return ctl_cmd_info(argv[i + 1], &co);
	}
	if (!strcmp(argv[i], "stats")) {
		if (argc - i != 2) {
			fprintf(stderr, "vfu-ctl: usage: vfu-ctl stats CONTROL-SOCKET|PID\n");
			return EXIT_USAGE;
		}
		return ctl_cmd_stats(argv[i + 1], &co);
	}
	fprintf(stderr, "vfu-ctl: unknown command '%s'\n", argv[i]);
	usage(stderr);
	return EXIT_USAGE;
}
