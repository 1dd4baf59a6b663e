/* Forwarding header: the NVMe host driver is hostsim/nvme_host.h; this keeps "common/nvme_host.h" includes building. */
#ifndef VFURT_TESTS_COMMON_NVME_HOST_H
#define VFURT_TESTS_COMMON_NVME_HOST_H

/*
 * Transitional, for tests/integration/test_it_nvme.c and the files it is being
 * split into on another branch: once that split has merged, include
 * "hostsim/nvme_host.h" there and delete this file.
 */
#include "hostsim/nvme_host.h"

#endif /* VFURT_TESTS_COMMON_NVME_HOST_H */
