/* vfu-ctl: inspect vfio-user servers (`info`: an lspci -vv like dump) and manage vfu-rt daemons. */
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
		"       vfu-ctl [OPTIONS] stats [CONTROL-SOCKET|PID]\n"
		"       vfu-ctl [OPTIONS] [--socket CONTROL-SOCKET|PID] [--json] COMMAND [ARGS]\n"
		"       vfu-ctl --help | --version\n"
		"\n"
		"Commands:\n"
		"  info SOCKET             connect to the vfio-user server at SOCKET and print the\n"
		"                          negotiated protocol, device, PCI config space (decoded\n"
		"                          like lspci -vv), regions and interrupts\n"
		"  stats [CTL|PID]         a vfu-rt daemon's statistics (JSON: workers, devices)\n"
		"A running vfu-rt daemon, on its control socket (docs/managing.md):\n"
		"  add SPEC                serve a new device: TYPE,socket=PATH[,key=value...] as\n"
		"                          vfu-rt --device, or a JSON object of the same keys\n"
		"  remove NAME [--timeout MS]\n"
		"                          remove a device: ask its client to detach (REQ irq),\n"
		"                          disconnect it after MS (default 10000)\n"
		"  list                    the devices served\n"
		"  get NAME                one device: config, client, queues, counters, namespaces\n"
		"  ns-add NAME backend=B [size=S] [nsid=N] [lba=512|4096] [direct=off|on|try]\n"
		"                          attach a namespace to an NVMe controller\n"
		"  ns-remove NAME NSID     detach a namespace\n"
		"  ns-resize NAME NSID SIZE\n"
		"                          grow or shrink a namespace (SIZE like 2G)\n"
		"  log-level LEVEL         error, warn, info or debug, for the daemon and devices\n"
		"  config-save [PATH]      write the running configuration as a --config file\n"
		"  upgrade [--exec PATH] [--timeout-ms MS]\n"
		"                          hand every device to a new daemon binary (live upgrade)\n"
		"                          (default: the daemon's --config file)\n"
		"  call METHOD [JSON]      any JSON-RPC method with a params object\n"
		"\n"
		"The daemon is --socket CONTROL-SOCKET (a path) or PID ($XDG_RUNTIME_DIR/vfu-rt/\n"
		"PID.ctl, then /tmp/vfu-rt-UID/PID.ctl); without it, the only vfu-rt of this user\n"
		"running.\n"
		"\n"
		"Options:\n"
		"  --socket CTL|PID  the daemon to talk to\n"
		"  --json            print the daemon's result as JSON (default: for people)\n"
		"  --timeout MS      per-request timeout in milliseconds (default 5000)\n"
		"  --twin-socket     info: propose twin-socket mode\n"
		"  --no-json         info: send VERSION without capabilities\n"
		"  -h, --help        show this help\n"
		"  -V, --version     show the version\n"
		"\n"
		"Exit status: 0 success, 1 runtime failure (cannot connect, not a control socket,\n"
		"no answer), 2 usage error, 3 the daemon refused the request (its message on\n"
		"stderr; with --json the error object on stdout).\n");
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
		} else if (!strcmp(a, "--socket")) {
			if (i + 1 >= argc || !argv[i + 1][0]) {
				fprintf(stderr, "vfu-ctl: --socket needs a control socket path or a pid\n");
				return EXIT_USAGE;
			}
			co.socket = argv[++i];
		} else if (!strcmp(a, "--json")) {
			co.json = true;
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
	{
		int rc = ctl_cmd_daemon(argc - i, argv + i, &co);

		if (rc >= 0)
			return rc;
	}
	fprintf(stderr, "vfu-ctl: unknown command '%s'\n", argv[i]);
	usage(stderr);
	return EXIT_USAGE;
}
