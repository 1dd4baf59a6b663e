/* Helpers shared by the fuzz targets: an input cursor, checks that survive NDEBUG, fd counting. */
#ifndef VFURT_TESTS_FUZZ_INPUT_H
#define VFURT_TESTS_FUZZ_INPUT_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The fuzz input read front to back. Past the end every read returns zeroes,
 * so a target never has to check lengths and a truncated input still means
 * something (the tail of an operation is zero).
 */
struct fz_in {
	const uint8_t *p;
	size_t n;
};

static inline bool fz_more(const struct fz_in *in)
{
	return in->n > 0;
}

/* Copy up to len bytes into dst, zero-filling what the input lacks. */
static inline void fz_bytes(struct fz_in *in, void *dst, size_t len)
{
	size_t k = len < in->n ? len : in->n;

	memcpy(dst, in->p, k);
	memset((uint8_t *)dst + k, 0, len - k);
	in->p += k;
	in->n -= k;
}

static inline uint64_t fz_le(struct fz_in *in, size_t len)
{
	uint8_t b[8];
	uint64_t v = 0;

	fz_bytes(in, b, len);
	for (size_t i = 0; i < len; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static inline uint8_t fz_u8(struct fz_in *in)
{
	return (uint8_t)fz_le(in, 1);
}

static inline uint16_t fz_u16(struct fz_in *in)
{
	return (uint16_t)fz_le(in, 2);
}

static inline uint32_t fz_u32(struct fz_in *in)
{
	return (uint32_t)fz_le(in, 4);
}

static inline uint64_t fz_u64(struct fz_in *in)
{
	return fz_le(in, 8);
}

/* A failed check is a finding: say what and abort, also in builds with NDEBUG. */
#define FZ_CHECK(cond, ...)                                                          \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, \
				#cond);                                              \
			fprintf(stderr, __VA_ARGS__);                                \
			fputc('\n', stderr);                                         \
			abort();                                                     \
		}                                                                    \
	} while (0)

/* Open file descriptors of this process (/proc/self/fd, minus the one
 * reading it), or -1 if /proc is not there. */
static inline int fz_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

#endif /* VFURT_TESTS_FUZZ_INPUT_H */
