/* vfu-ctl internals: the options every command takes and the commands main dispatches to. */
#ifndef VFURT_TOOLS_VFU_CTL_INTERNAL_H
#define VFURT_TOOLS_VFU_CTL_INTERNAL_H

#include <stdbool.h>

/* Exit status: 0 success, 1 runtime failure, EXIT_USAGE a usage error. */
#define EXIT_USAGE 2

/* Global options (before the command). */
struct ctl_opts {
	int timeout_ms; /* per request (--timeout) */
	bool twin;      /* --twin-socket */
	bool no_json;   /* --no-json */
};

/* Parse a decimal int in [min, max] into *out; no atoi: junk and overflow are
 * rejected. 0 or -EINVAL. */
int ctl_parse_int(const char *s, long min, long max, int *out);

/* `info SOCKET` (lspci.c): connect to the vfio-user server at path and print
 * the protocol, the device, its PCI config space decoded like lspci -vv, its
 * regions and interrupts. Returns the exit status. */
int ctl_cmd_info(const char *path, const struct ctl_opts *co);

/* `stats CONTROL-SOCKET|PID` (stats.c): print a vfu-rt daemon's statistics
 * read from its control socket. Returns the exit status. */
int ctl_cmd_stats(const char *arg, const struct ctl_opts *co);

#endif /* VFURT_TOOLS_VFU_CTL_INTERNAL_H */
