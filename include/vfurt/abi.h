/* Structs that carry their own size (options in, statistics out): the check every call makes. */
#ifndef VFURT_ABI_H
#define VFURT_ABI_H

/*
 * Every struct the API passes by pointer and may grow starts with a size_t
 * the caller sets to sizeof the struct it was compiled with: opts_size,
 * ops_size, desc_size (structs the caller fills in), stats_size, caps_size
 * (structs the library fills in). The rules, the same for all of them:
 *
 *   - smaller than the struct's first version: -EINVAL (or NULL with errno
 *     EINVAL from a constructor); 0 is always too small;
 *   - between the first version and what the library knows: the fields the
 *     other side does not know read as zero;
 *   - larger than what the library knows (a newer caller): options whose
 *     unknown tail is not all zero are -EINVAL, since the library cannot do
 *     what it does not know about; statistics have their unknown tail zeroed;
 *   - larger than VFURT_ABI_SIZE_MAX: -EINVAL (a size that was never set).
 *
 * The helpers below implement them; they are inline so that a device model
 * or backend outside the tree can give its own options the same shape.
 */

#include <errno.h>
#include <stddef.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Size of `type` up to and including `field`: how a struct's first version
 * is named (VFURT_ABI_SIZE(struct x_opts, last_field_of_v1)). */
#define VFURT_ABI_SIZE(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/* Largest size field accepted. */
#define VFURT_ABI_SIZE_MAX 4096u

/*
 * Copy a caller's struct src into the library's dst (dst_size = sizeof the
 * library's struct), both starting with their size. first_size is the size
 * of the struct's first version (at least sizeof(size_t)). dst is zeroed
 * first, so the fields the caller does not know are 0; dst's size field then
 * holds the caller's size. Returns 0 or -EINVAL (src NULL, size out of range,
 * or a non-zero byte beyond dst_size). Thread: any.
 */
static inline int vfurt_abi_copy_in(void *dst, size_t dst_size, const void *src,
				    size_t first_size)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t n;

	memset(dst, 0, dst_size);
	if (src == NULL)
		return -EINVAL;
	memcpy(&n, src, sizeof(n));
	if (n < first_size || n < sizeof(n) || n > VFURT_ABI_SIZE_MAX)
		return -EINVAL;
	for (size_t i = dst_size; i < n; i++) {
		if (s[i] != 0)
			return -EINVAL;
	}
	memcpy(dst, src, n < dst_size ? n : dst_size);
	return 0;
}

/*
 * Fill the caller's struct dst from the library's src (src_size = sizeof the
 * library's struct), both starting with their size: dst's size field, set by
 * the caller, says how much dst holds and is left as it is. Bytes of dst
 * beyond src_size are zeroed. Returns 0 or -EINVAL (dst NULL, size smaller
 * than first_size or above VFURT_ABI_SIZE_MAX; dst is then not written).
 * Thread: any.
 */
static inline int vfurt_abi_copy_out(void *dst, const void *src, size_t src_size,
				     size_t first_size)
{
	unsigned char *d = (unsigned char *)dst;
	size_t n;

	if (dst == NULL)
		return -EINVAL;
	memcpy(&n, dst, sizeof(n));
	if (n < first_size || n < sizeof(n) || n > VFURT_ABI_SIZE_MAX)
		return -EINVAL;
	memcpy(d + sizeof(n), (const unsigned char *)src + sizeof(n),
	       (n < src_size ? n : src_size) - sizeof(n));
	if (n > src_size)
		memset(d + src_size, 0, n - src_size);
	return 0;
}

#ifdef __cplusplus
}
#endif

#endif /* VFURT_ABI_H */
