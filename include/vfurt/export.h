/* Symbol visibility for libvfurt: everything is hidden unless exported here. */
#ifndef VFURT_EXPORT_H
#define VFURT_EXPORT_H

#if defined(VFURT_BUILDING_LIBRARY)
#define VFURT_EXPORT __attribute__((visibility("default")))
#else
#define VFURT_EXPORT
#endif

#endif /* VFURT_EXPORT_H */
