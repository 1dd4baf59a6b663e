/* ThreadSanitizer annotations for synchronisation TSan cannot see (ck's inline-asm atomics). */
#ifndef VFURT_RUNTIME_TSAN_H
#define VFURT_RUNTIME_TSAN_H

#if defined(__SANITIZE_THREAD__)
#define VFURT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VFURT_TSAN 1
#endif
#endif

#ifdef VFURT_TSAN
#include <sanitizer/tsan_interface.h>
/* Everything this thread did so far happens before a later vfurt_tsan_acquire(a). */
#define vfurt_tsan_release(a) __tsan_release((void *)(a))
#define vfurt_tsan_acquire(a) __tsan_acquire((void *)(a))
#else
#define vfurt_tsan_release(a) ((void)(a))
#define vfurt_tsan_acquire(a) ((void)(a))
#endif

#endif /* VFURT_RUNTIME_TSAN_H */
