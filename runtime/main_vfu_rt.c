/* vfu-rt: serve emulated PCI devices to VMMs over vfio-user sockets. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <vfurt/server.h>
#include <vfurt/vfio_user.h>

#include "runtime/devspec.h"

#define MAX_DEVICES 64

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vfu-rt --device TYPE,socket=PATH[,key=value...] [--device ...] [options]\n"
		"\n"
		"Serve emulated PCI devices to VMMs (QEMU 10.1+ vfio-user-pci, Cloud Hypervisor,\n"
		"SPDK) over vfio-user, one UNIX socket per device.\n"
		"\n"
		"Options:\n"
		"  -d, --device SPEC     add a device; SPEC is TYPE,socket=PATH[,socket_mode=0600]\n"
		"                        [,name=NAME][,type-specific keys]. Types: %s\n"
		"                        gpio keys: toggle_period=N (input toggles every N reads, 3)\n"
		"  -l, --log-level LVL   error, warn, info (default) or debug\n"
		"  -h, --help            show this help\n"
		"  -V, --version         show the version\n"
		"\n"
		"Example:\n"
		"  vfu-rt --device gpio,socket=/run/vfu/gpio0.sock,socket_mode=0600\n"
		"\n"
		"Exit status: 0 after SIGTERM/SIGINT, 1 on a runtime error, 2 on a usage error.\n",
		devspec_types());
}

static int parse_level(const char *s, int *level)
{
	static const struct {
		const char *name;
		int level;
	} levels[] = {
		{ "error", VFURT_LOG_ERR }, { "warn", VFURT_LOG_WARN },
		{ "info", VFURT_LOG_INFO }, { "debug", VFURT_LOG_DEBUG },
	};

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (!strcmp(s, levels[i].name)) {
			*level = levels[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

/* Build one device from its spec and add it to the server. */
static int add_device(struct vfurt_server *srv, const char *arg, const struct vfurt_log *log)
{
	struct devspec spec;
	struct vfurt_dev *dev;
	const char *path;
	const char *m;
	mode_t mode = 0600;
	char err[256];
	int rc;

	if (devspec_parse(arg, &spec, err, sizeof(err))) {
		fprintf(stderr, "vfu-rt: --device %s: %s\n", arg, err);
		return -EINVAL;
	}
	path = devspec_get(&spec, "socket");
	if (!path || !*path) {
		fprintf(stderr, "vfu-rt: --device %s: missing socket=PATH\n", arg);
		return -EINVAL;
	}
	m = devspec_get(&spec, "socket_mode");
	if (m && devspec_parse_mode(m, &mode)) {
		fprintf(stderr, "vfu-rt: --device %s: socket_mode='%s' is not an octal mode\n", arg, m);
		return -EINVAL;
	}
	dev = devspec_create(&spec, log, err, sizeof(err));
	if (!dev) {
		fprintf(stderr, "vfu-rt: --device %s: %s\n", arg, err);
		return -EINVAL;
	}
	rc = vfurt_server_add_device(srv, dev, path, mode);
	if (rc) {
		fprintf(stderr, "vfu-rt: --device %s: cannot listen on %s: %s\n", arg, path,
			rc == -EADDRINUSE ? "another server is listening there" :
			rc == -EEXIST ? "a file that is not a socket exists there" : strerror(-rc));
		vfurt_dev_destroy(dev);
		return rc;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct vfurt_log log = { .fn = vfurt_log_stderr, .arg = (void *)"vfu-rt",
				 .level = VFURT_LOG_INFO };
	const char *devices[MAX_DEVICES];
	struct vfurt_server_opts so = { .opts_size = sizeof(so) };
	struct vfurt_server *srv;
	size_t ndev = 0;
	sigset_t mask;
	int sfd;
	int opt;
	int rc = 1;

	while ((opt = getopt_long(argc, argv, "d:l:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			if (ndev == MAX_DEVICES) {
				fprintf(stderr, "vfu-rt: at most %d devices\n", MAX_DEVICES);
				return 2;
			}
			devices[ndev++] = optarg;
			break;
		case 'l':
			if (parse_level(optarg, &log.level)) {
				fprintf(stderr, "vfu-rt: --log-level '%s': expected error, warn, info or debug\n",
					optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("vfu-rt %s (vfio-user protocol %d.%d)\n", VFURT_VERSION,
			       VFIO_USER_MAJOR, VFIO_USER_MINOR);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vfu-rt: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (ndev == 0) {
		fprintf(stderr, "vfu-rt: no devices: add at least one --device\n");
		usage(stderr);
		return 2;
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		perror("vfu-rt: signalfd");
		return 1;
	}

	so.log = log;
	srv = vfurt_server_create(&so);
	if (!srv) {
		perror("vfu-rt: cannot create server");
		goto out_sfd;
	}
	for (size_t i = 0; i < ndev; i++) {
		int e = add_device(srv, devices[i], &log);

		if (e) {
			rc = e == -EINVAL ? 2 : 1;
			goto out_srv;
		}
	}
	vfurt_logf(&log, VFURT_LOG_INFO, "serving %zu device(s); SIGTERM or SIGINT stops", ndev);

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = vfurt_server_fd(srv), .events = POLLIN },
			{ .fd = sfd, .events = POLLIN },
		};

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("vfu-rt: poll");
			goto out_srv;
		}
		if (pfd[1].revents) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				vfurt_logf(&log, VFURT_LOG_INFO, "%s: shutting down",
					   strsignal((int)si.ssi_signo));
				rc = 0;
				break;
			}
		}
		if (pfd[0].revents)
			vfurt_server_run_once(srv, 0);
	}
out_srv:
	vfurt_server_destroy(srv);
out_sfd:
	close(sfd);
	return rc;
}
