/* CPU lists: strict parsing of "0-3,6" and validation against hwloc and the affinity mask. */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hwloc.h>

#include "cpuset.h"

/*
 * Read one decimal CPU number at *p (digits only: strtoul alone would accept
 * spaces, a sign and "0x"). Advances *p past the digits. Returns 0, -EINVAL
 * with a reason in err that needs the list for context, or -ERANGE with a
 * reason that stands alone (it quotes the number).
 */
static int parse_cpu(const char **p, int *cpu, char *err, size_t errlen)
{
	const char *s = *p;
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9') {
		if (*s == '\0' || *s == ',')
			snprintf(err, errlen, "missing CPU number");
		else
			snprintf(err, errlen, "unexpected '%c': expected a CPU number", *s);
		return -EINVAL;
	}
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno == ERANGE || v >= VFURT_MAX_CPUS) {
		snprintf(err, errlen, "CPU %.*s is out of range (at most %d)", (int)(end - s), s,
			 VFURT_MAX_CPUS - 1);
		return -ERANGE;
	}
	*cpu = (int)v;
	*p = end;
	return 0;
}

int vfr_cpulist_parse(const char *s, int *cpus, size_t max, size_t *n, char *err,
			size_t errlen)
{
	uint64_t seen[VFURT_MAX_CPUS / 64] = { 0 };
	const char *p = s;
	size_t count = 0;
	char why[128];

	*n = 0;
	if (!s || !*s) {
		snprintf(err, errlen, "empty CPU list");
		return -EINVAL;
	}
	for (;;) {
		const char *item = p;
		int lo;
		int hi;
		int rc;

		rc = parse_cpu(&p, &lo, why, sizeof(why));
		if (rc)
			goto bad_item;
		hi = lo;
		if (*p == '-') {
			p++;
			rc = parse_cpu(&p, &hi, why, sizeof(why));
			if (rc)
				goto bad_item;
			if (hi < lo) {
				snprintf(err, errlen, "'%.*s': range start is above its end",
					 (int)(p - item), item);
				return -EINVAL;
			}
		}
		if (*p != ',' && *p != '\0') {
			snprintf(why, sizeof(why), "unexpected '%c': expected ',' or '-'", *p);
			rc = -EINVAL;
			goto bad_item;
		}
		for (int c = lo; c <= hi; c++) {
			if (seen[c / 64] & (1ull << (c % 64))) {
				snprintf(err, errlen, "CPU %d is listed twice", c);
				return -EINVAL;
			}
			seen[c / 64] |= 1ull << (c % 64);
			if (count == max) {
				snprintf(err, errlen, "too many CPUs (at most %zu)", max);
				return -EINVAL;
			}
			cpus[count++] = c;
		}
		if (*p == '\0')
			break;
		p++; /* ',' */
		if (*p == '\0') {
			snprintf(err, errlen, "'%s': trailing comma", s);
			return -EINVAL;
		}
		continue;
bad_item:
		if (rc == -ERANGE)
			snprintf(err, errlen, "%s", why);
		else if (*p == ',' && p == item)
			snprintf(err, errlen, "'%s': empty item at offset %zu", s, (size_t)(p - s));
		else
			snprintf(err, errlen, "'%s' at offset %zu: %s", s, (size_t)(p - s), why);
		return -EINVAL;
	}
	*n = count;
	return 0;
}

/*
 * The calling thread's affinity mask as an hwloc bitmap. glibc's cpu_set_t
 * covers 1024 CPUs; grow the mask when the kernel needs more.
 */
static int affinity_bitmap(hwloc_bitmap_t out)
{
	for (int ncpu = CPU_SETSIZE; ncpu <= (1 << 20); ncpu *= 2) {
		cpu_set_t *set = CPU_ALLOC((size_t)ncpu);
		size_t size = CPU_ALLOC_SIZE((size_t)ncpu);

		if (!set)
			return -ENOMEM;
		if (sched_getaffinity(0, size, set) == 0) {
			hwloc_bitmap_zero(out);
			for (int c = 0; c < ncpu; c++)
				if (CPU_ISSET_S((size_t)c, size, set))
					hwloc_bitmap_set(out, (unsigned)c);
			CPU_FREE(set);
			return 0;
		}
		CPU_FREE(set);
		if (errno != EINVAL)
			return -errno;
	}
	return -EINVAL;
}

int vfr_cpulist_validate(const int *cpus, size_t n, char *err, size_t errlen)
{
	hwloc_topology_t topo;
	hwloc_bitmap_t affinity;
	hwloc_bitmap_t usable;
	hwloc_const_cpuset_t online;
	hwloc_const_cpuset_t allowed;
	char avail[256];
	int rc;

	if (hwloc_topology_init(&topo)) {
		snprintf(err, errlen, "cannot initialise the hwloc topology");
		return -ENOMEM;
	}
	/* Keep CPUs a cgroup forbids in the topology, to tell them apart from absent ones. */
	if (hwloc_topology_set_flags(topo, HWLOC_TOPOLOGY_FLAG_INCLUDE_DISALLOWED) ||
	    hwloc_topology_load(topo)) {
		snprintf(err, errlen, "cannot load the hwloc topology: %s", strerror(errno));
		rc = -EIO;
		goto err_topo;
	}
	affinity = hwloc_bitmap_alloc();
	usable = hwloc_bitmap_alloc();
	if (!affinity || !usable) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto err_bitmaps;
	}
	rc = affinity_bitmap(affinity);
	if (rc) {
		snprintf(err, errlen, "sched_getaffinity: %s", strerror(-rc));
		goto err_bitmaps;
	}
	/* The topology cpuset lacks offline PUs; the allowed one lacks cgroup-forbidden ones. */
	online = hwloc_topology_get_topology_cpuset(topo);
	allowed = hwloc_topology_get_allowed_cpuset(topo);
	hwloc_bitmap_and(usable, online, allowed);
	hwloc_bitmap_and(usable, usable, affinity);
	if (hwloc_bitmap_iszero(usable))
		snprintf(avail, sizeof(avail), "none");
	else if (hwloc_bitmap_list_snprintf(avail, sizeof(avail), usable) >= (int)sizeof(avail))
		memcpy(avail + sizeof(avail) - 4, "...", 4);

	for (size_t i = 0; i < n; i++) {
		unsigned c = (unsigned)cpus[i];
		const char *why = NULL;

		if (cpus[i] < 0 || !hwloc_bitmap_isset(hwloc_topology_get_complete_cpuset(topo), c))
			why = "does not exist on this machine";
		else if (!hwloc_bitmap_isset(online, c) || !hwloc_get_pu_obj_by_os_index(topo, c))
			why = "is offline";
		else if (!hwloc_bitmap_isset(allowed, c))
			why = "is not allowed by this process's cgroup";
		else if (!hwloc_bitmap_isset(affinity, c))
			why = "is not allowed by this process's CPU affinity";
		if (why) {
			snprintf(err, errlen, "CPU %d %s (available: %s)", cpus[i], why, avail);
			rc = -EINVAL;
			goto err_bitmaps;
		}
	}
	rc = 0;
err_bitmaps:
	hwloc_bitmap_free(usable);
	hwloc_bitmap_free(affinity);
err_topo:
	hwloc_topology_destroy(topo);
	return rc;
}

/* Bind the calling thread to CPU only_cpu (>= 0), or else to its affinity
 * mask without away[0..n). desc gets the resulting list. */
static int bind_thread(int only_cpu, const int *away, size_t n, char *desc, size_t desclen)
{
	hwloc_topology_t topo;
	hwloc_bitmap_t set;
	int rc = 0;

	if (hwloc_topology_init(&topo))
		return -ENOMEM;
	if (hwloc_topology_load(topo)) {
		rc = -EIO;
		goto out_topo;
	}
	set = hwloc_bitmap_alloc();
	if (!set) {
		rc = -ENOMEM;
		goto out_topo;
	}
	if (only_cpu >= 0) {
		hwloc_bitmap_only(set, (unsigned)only_cpu);
	} else {
		rc = affinity_bitmap(set);
		if (rc)
			goto out_set;
		for (size_t i = 0; i < n; i++)
			hwloc_bitmap_clr(set, (unsigned)away[i]);
		if (hwloc_bitmap_iszero(set)) {
			rc = -ENOENT; /* every CPU we may use runs a worker */
			goto out_set;
		}
	}
	if (hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_THREAD) < 0) {
		rc = errno ? -errno : -EINVAL;
		goto out_set;
	}
	if (desc && desclen)
		hwloc_bitmap_list_snprintf(desc, desclen, set);
out_set:
	hwloc_bitmap_free(set);
out_topo:
	hwloc_topology_destroy(topo);
	return rc;
}

int vfr_cpu_pin_self(int cpu)
{
	return cpu < 0 ? -EINVAL : bind_thread(cpu, NULL, 0, NULL, 0);
}

int vfr_cpu_bind_away(const int *cpus, size_t n, char *desc, size_t desclen)
{
	return bind_thread(-1, cpus, n, desc, desclen);
}
