/* Embedding vfu-rt: serve a PCI-IDIO-16 GPIO card on a UNIX socket until SIGINT or SIGTERM. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <vfurt/gpio.h>
#include <vfurt/runtime.h>

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "gpio0.sock";
	/* stderr; the runtime tags each line with its worker */
	struct vfurt_log log = { .fn = vfurt_log_stderr, .level = VFURT_LOG_INFO };
	struct vfurt_runtime_opts ro = { .opts_size = sizeof(ro), .cores = "0",
					 .poll_mode = VFURT_POLL_ADAPTIVE, .log = log };
	struct vfurt_gpio_opts go = { .opts_size = sizeof(go), .name = "gpio0", .log = log };
	char err[256];
	sigset_t sigs;
	int sig, rc;

	/* Block before the workers exist: they inherit the mask, so only sigwait() sees these. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	struct vfurt_runtime *rt = vfurt_runtime_create(&ro, err, sizeof(err)); /* 1 worker, CPU 0 */
	if (!rt) {
		fprintf(stderr, "embed_gpio: %s\n", err);
		return 1;
	}
	struct vfurt_dev *dev = vfurt_gpio_create(&go);
	rc = dev ? vfurt_runtime_add_device(rt, dev, path, 0600, -1) : -errno;
	if (rc)
		vfurt_dev_destroy(dev); /* still ours: only a successful add hands it over */
	else
		rc = vfurt_runtime_start(rt);
	if (rc == 0) {
		printf("embed_gpio: serving %s (try: vfu-ctl info %s)\n", path, path);
		fflush(stdout);
		sigwait(&sigs, &sig);
	} else {
		fprintf(stderr, "embed_gpio: cannot serve %s: %s\n", path, strerror(-rc));
	}
	vfurt_runtime_destroy(rt); /* stops: closes the client, removes the socket file */
	return rc == 0 ? 0 : 1;
}
