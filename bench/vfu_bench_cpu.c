/* vfu-bench: CPU time of the client's job threads (getrusage) and of the server's workers (/proc tasks). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "vfu_bench.h"

uint64_t vb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void *vb_calloc_lines(size_t n, size_t size)
{
	size_t bytes;
	void *p;

	if (size && n > (SIZE_MAX - VB_LINE) / size)
		return NULL;
	bytes = (n * size + VB_LINE - 1) / VB_LINE * VB_LINE;
	p = aligned_alloc(VB_LINE, bytes ? bytes : VB_LINE);
	if (p)
		memset(p, 0, bytes ? bytes : VB_LINE);
	return p;
}

static uint64_t tv_ns(const struct timeval *tv)
{
	return (uint64_t)tv->tv_sec * 1000000000ull + (uint64_t)tv->tv_usec * 1000u;
}

void vb_cpu_self(struct vb_cpu_sample *s)
{
	struct rusage ru;

	memset(s, 0, sizeof(*s));
	s->wall_ns = vb_now_ns();
	if (getrusage(RUSAGE_THREAD, &ru))
		return;
	s->usr_ns = tv_ns(&ru.ru_utime);
	s->sys_ns = tv_ns(&ru.ru_stime);
	s->ctx = (uint64_t)ru.ru_nvcsw + (uint64_t)ru.ru_nivcsw;
	s->threads = 1;
	s->ok = true;
}

/*
 * One /proc/PID/task/TID/stat line: "tid (comm) state ppid ..."; comm may
 * hold spaces and parentheses, so the fields start after the last ')'.
 * utime and stime are fields 14 and 15 (clock ticks). 0 when it matched.
 */
static int task_ticks(const char *line, const char *comm_prefix, uint64_t *ut, uint64_t *st)
{
	const char *open = strchr(line, '(');
	const char *close = strrchr(line, ')');
	const char *p;
	unsigned long long u, s;

	if (!open || !close || close < open)
		return -EINVAL;
	if (comm_prefix && ((size_t)(close - open - 1) < strlen(comm_prefix) ||
			    strncmp(open + 1, comm_prefix, strlen(comm_prefix))))
		return -ENOENT;
	p = close + 1;
	/* skip state (3) .. cmajflt (13): 11 fields */
	for (int f = 0; f < 11; f++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -EINVAL;
	}
	if (sscanf(p, " %llu %llu", &u, &s) != 2)
		return -EINVAL;
	*ut = u;
	*st = s;
	return 0;
}

void vb_cpu_threads(pid_t pid, const char *comm_prefix, struct vb_cpu_sample *s)
{
	char path[64];
	long hz = sysconf(_SC_CLK_TCK);
	uint64_t ut = 0, st = 0;
	struct dirent *de;
	DIR *d;

	memset(s, 0, sizeof(*s));
	if (hz <= 0)
		hz = 100;
	snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
	s->wall_ns = vb_now_ns();
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d))) {
		char line[512];
		uint64_t u, t;
		FILE *f;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/task/%.16s/stat", (long)pid, de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue; /* the thread has just exited */
		if (fgets(line, sizeof(line), f) && !task_ticks(line, comm_prefix, &u, &t)) {
			ut += u;
			st += t;
			s->threads++;
		}
		fclose(f);
	}
	closedir(d);
	s->usr_ns = ut * 1000000000ull / (uint64_t)hz;
	s->sys_ns = st * 1000000000ull / (uint64_t)hz;
	s->ok = true;
}

void vb_cpu_use(const struct vb_cpu_sample *a, const struct vb_cpu_sample *b,
		struct vb_cpu_use *u)
{
	double wall;

	memset(u, 0, sizeof(*u));
	if (!a->ok || !b->ok || b->wall_ns <= a->wall_ns)
		return;
	wall = (double)(b->wall_ns - a->wall_ns);
	/* a thread may have exited in between: never below zero */
	u->usr_pct = b->usr_ns > a->usr_ns ? (double)(b->usr_ns - a->usr_ns) / wall * 100.0 : 0.0;
	u->sys_pct = b->sys_ns > a->sys_ns ? (double)(b->sys_ns - a->sys_ns) / wall * 100.0 : 0.0;
	u->ctx = b->ctx > a->ctx ? b->ctx - a->ctx : 0;
	u->ok = true;
}
