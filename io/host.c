/* What a serving host provides to a device: queues, io fds (ioeventfd, ioregionfd), hooks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vfurt/abi.h>
#include <vfurt/engine.h>

#include "device_internal.h"

static int irq_signal_thunk(void *arg, int fd)
{
	struct vfurt_dev *dev = arg;

	return dev->host->irq_signal(dev->host_arg, dev, fd);
}

static void dma_sync_thunk(void *arg)
{
	struct vfurt_dev *dev = arg;

	dev->host->dma_sync(dev->host_arg, dev);
}

static void dma_retire_thunk(void *arg, void *ptr, void (*free_fn)(void *ptr))
{
	struct vfurt_dev *dev = arg;

	dev->host->dma_retire(dev->host_arg, dev, ptr, free_fn);
}

int vfurt_dev_set_host(struct vfurt_dev *dev, const struct vfurt_dev_host_ops *ops, void *host)
{
	if (!dev)
		return -EINVAL;
	if (ops && dev->host)
		return -EBUSY;
	if (!ops) {
		dev->host = NULL;
		dev->host_arg = NULL;
		memset(&dev->host_ops, 0, sizeof(dev->host_ops));
		vfr_irqs_set_signal(dev->irqs, NULL, NULL);
		vfr_dma_table_set_sync(dev->dma, NULL, NULL);
		vfr_dma_table_set_retire(dev->dma, NULL, NULL);
		vfr_irqs_set_sync(dev->irqs, NULL, NULL);
		return 0;
	}
	/* a host built against an older header has a shorter struct: the
	 * fields it lacks read as NULL */
	if (ops->ops_size < VFURT_DEV_HOST_OPS_SIZE_V1)
		return -EINVAL;
	memset(&dev->host_ops, 0, sizeof(dev->host_ops));
	memcpy(&dev->host_ops, ops,
	       ops->ops_size < sizeof(dev->host_ops) ? ops->ops_size : sizeof(dev->host_ops));
	ops = &dev->host_ops;
	dev->host = ops;
	dev->host_arg = host;
	vfr_irqs_set_signal(dev->irqs, ops->irq_signal ? irq_signal_thunk : NULL, dev);
	vfr_dma_table_set_sync(dev->dma, ops->dma_sync ? dma_sync_thunk : NULL, dev);
	/* old table versions: freed at once without the hook (no reader can
	 * be on another thread), after a grace period with it */
	vfr_dma_table_set_retire(dev->dma, ops->dma_retire ? dma_retire_thunk : NULL, dev);
	vfr_irqs_set_sync(dev->irqs, ops->dma_sync ? dma_sync_thunk : NULL, dev);
	return 0;
}

int vfurt_dev_call(struct vfurt_dev *dev, void (*fn)(void *arg), void *arg)
{
	if (!dev || !fn)
		return -EINVAL;
	if (dev->host && dev->host->call)
		return dev->host->call(dev->host_arg, dev, fn, arg);
	fn(arg);
	return 0;
}

uint32_t vfurt_dev_set_dma_quota(struct vfurt_dev *dev, struct vfurt_dma_quota *q)
{
	/* windows are counted from the table's first one: change it only
	 * while there are none */
	if (vfr_dma_table_count(dev->dma) != 0)
		return dev->quota.reserved;
	vfr_dma_quota_leave(&dev->quota);
	return q ? vfr_dma_quota_join(q, &dev->quota) : 0;
}

/* ---- queues ------------------------------------------------------------ */

struct vfurt_queue *vfurt_dev_queue_add(struct vfurt_dev *dev, vfurt_queue_fn fn, void *arg,
					int worker_hint)
{
	struct vfurt_queue *q;
	int rc;

	if (!dev || !fn) {
		errno = EINVAL;
		return NULL;
	}
	if (dev->nr_queues >= VFURT_MAX_QUEUES) {
		errno = ENOSPC;
		return NULL;
	}
	if (dev->nr_queues == dev->cap_queues) {
		uint32_t ncap = dev->cap_queues ? dev->cap_queues * 2 : 8;
		struct vfurt_queue **n = realloc(dev->queues, ncap * sizeof(*n));

		if (!n) {
			errno = ENOMEM;
			return NULL;
		}
		dev->queues = n;
		dev->cap_queues = ncap;
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		errno = ENOMEM;
		return NULL;
	}
	q->dev = dev;
	q->fn = fn;
	q->arg = arg;
	q->hint = worker_hint;
	q->index = dev->next_queue_index++;
	if (dev->host && dev->host->queue_start) {
		rc = dev->host->queue_start(dev->host_arg, dev, q, worker_hint);
		if (rc) {
			free(q);
			errno = -rc;
			return NULL;
		}
	}
	dev->queues[dev->nr_queues++] = q;
	return q;
}

void vfurt_dev_queue_remove(struct vfurt_dev *dev, struct vfurt_queue **qp)
{
	struct vfurt_queue *q;

	if (!dev || !qp || !*qp)
		return;
	q = *qp;
	*qp = NULL;
	if (dev->host && dev->host->queue_stop)
		dev->host->queue_stop(dev->host_arg, dev, q);
	for (uint32_t i = 0; i < dev->nr_queues; i++) {
		if (dev->queues[i] == q) {
			memmove(&dev->queues[i], &dev->queues[i + 1],
				(dev->nr_queues - i - 1) * sizeof(dev->queues[0]));
			dev->nr_queues--;
			break;
		}
	}
	free(q);
}

void vfurt_dev_queue_set_arm(struct vfurt_queue *q, vfurt_queue_arm_fn fn)
{
	if (!q)
		return;
	__atomic_store_n(&q->arm, fn, __ATOMIC_RELEASE);
	/* the queue's worker may already sleep on an answer given without fn
	 * (VFURT_ARM_POLL): let it ask again */
	vfurt_dev_queue_kick(q);
}

void vfurt_dev_queue_kick(struct vfurt_queue *q)
{
	struct vfurt_dev *dev;

	if (!q)
		return;
	dev = q->dev;
	if (dev->host && dev->host->queue_kick)
		dev->host->queue_kick(dev->host_arg, dev, q);
}

int vfurt_queue_arm(struct vfurt_queue *q, bool arm)
{
	vfurt_queue_arm_fn fn = __atomic_load_n(&q->arm, __ATOMIC_ACQUIRE);

	return fn ? fn(q->dev, q->arg, arm) : VFURT_ARM_POLL;
}

int vfurt_queue_poll(struct vfurt_queue *q)
{
	int rc = q->fn(q->dev, q->arg);

	/* single writer (the polling worker); readers take relaxed snapshots */
	__atomic_store_n(&q->polls, q->polls + 1, __ATOMIC_RELAXED);
	if (rc)
		__atomic_store_n(&q->busy, q->busy + 1, __ATOMIC_RELAXED);
	return rc;
}

int vfurt_queue_hint(const struct vfurt_queue *q)
{
	return q->hint;
}

bool vfurt_dev_dma_lost(const struct vfurt_dev *dev, uint64_t *iova)
{
	return dev && vfr_fault_domain_lost(&dev->fault, iova);
}

bool vfurt_dev_dma_loss_claim(struct vfurt_dev *dev)
{
	return dev && vfr_fault_domain_claim(&dev->fault);
}

struct vfurt_dev *vfurt_queue_dev(const struct vfurt_queue *q)
{
	return q->dev;
}

uint32_t vfurt_queue_index(const struct vfurt_queue *q)
{
	return q->index;
}

void vfurt_queue_set_host_data(struct vfurt_queue *q, void *data)
{
	q->host_data = data;
}

void *vfurt_queue_host_data(const struct vfurt_queue *q)
{
	return q->host_data;
}

int vfurt_queue_get_stats(const struct vfurt_queue *q, struct vfurt_queue_stats *st)
{
	struct vfurt_queue_stats s = { .stats_size = sizeof(s) };

	if (!q)
		return -EINVAL;
	s.polls = __atomic_load_n(&q->polls, __ATOMIC_RELAXED);
	s.busy = __atomic_load_n(&q->busy, __ATOMIC_RELAXED);
	return vfurt_abi_copy_out(st, &s, sizeof(s), VFURT_ABI_SIZE(struct vfurt_queue_stats, busy));
}

uint32_t vfurt_dev_queue_count(const struct vfurt_dev *dev)
{
	return dev->nr_queues;
}

struct vfurt_queue *vfurt_dev_queue(const struct vfurt_dev *dev, uint32_t i)
{
	return i < dev->nr_queues ? dev->queues[i] : NULL;
}

/* ---- io fds ------------------------------------------------------------ */

static int check_subregion(struct vfurt_dev *dev, uint32_t index, uint64_t offset, uint64_t size)
{
	const struct vfurt_region *r;

	if (!dev || index >= VFURT_MAX_REGIONS)
		return -EINVAL;
	if (dev->conn)
		return -EBUSY;
	r = &dev->regions[index];
	if (!r->d.size || offset >= r->d.size || size > r->d.size - offset)
		return -EINVAL;
	if (dev->nr_ioev >= VFURT_MAX_IOEVENTFDS)
		return -ENOSPC;
	return 0;
}

int vfurt_dev_add_ioeventfd(struct vfurt_dev *dev, uint32_t index, uint64_t offset,
			    uint64_t size, uint32_t flags, uint64_t datamatch, int fd,
			    vfurt_ioeventfd_fn fn, void *arg)
{
	struct vfurt_ioeventfd *e;
	int rc;

	if (fd < 0 || (size != 0 && size != 1 && size != 2 && size != 4 && size != 8))
		return -EINVAL;
	if (flags & ~(VFIO_USER_IOEVENTFD_FLAG_DATAMATCH | VFIO_USER_IOEVENTFD_FLAG_PIO))
		return -EINVAL;
	rc = check_subregion(dev, index, offset, size);
	if (rc)
		return rc;
	e = &dev->ioev[dev->nr_ioev++];
	memset(e, 0, sizeof(*e));
	e->type = VFIO_USER_IO_FD_TYPE_IOEVENTFD;
	e->region = index;
	e->offset = offset;
	e->size = size;
	e->flags = flags;
	e->datamatch = datamatch;
	e->fd = fd;
	e->srv_fd = -1;
	e->fn = fn;
	e->arg = arg;
	e->dev = dev;
	return 0;
}

int vfurt_dev_add_ioregionfd(struct vfurt_dev *dev, uint32_t index, uint64_t offset,
			     uint64_t size, uint32_t flags, uint64_t user_data)
{
	struct vfurt_ioeventfd *e;
	int sv[2];
	int rc;

	if (size == 0 && !(flags & VFIO_USER_IOREGIONFD_FLAG_POSTED_WRITES))
		return -EINVAL; /* the spec requires posted writes for size 0 */
	if (flags & ~(VFIO_USER_IOREGIONFD_FLAG_PIO | VFIO_USER_IOREGIONFD_FLAG_POSTED_WRITES))
		return -EINVAL;
	rc = check_subregion(dev, index, offset, size);
	if (rc)
		return rc;
	if (!dev->regions[index].d.access)
		return -EINVAL;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		return -errno;
	e = &dev->ioev[dev->nr_ioev++];
	memset(e, 0, sizeof(*e));
	e->type = VFIO_USER_IO_FD_TYPE_IOREGIONFD;
	e->region = index;
	e->offset = offset;
	e->size = size;
	e->flags = flags;
	e->datamatch = user_data;
	e->fd = sv[1];
	e->srv_fd = sv[0];
	e->own_fd = true;
	e->dev = dev;
	return 0;
}

/* Serve the commands queued on an ioregionfd socket. */
static void ioregionfd_ready(struct vfurt_dev *dev, void *ctx)
{
	struct vfurt_ioeventfd *e = ctx;
	const struct vfurt_region *r = &dev->regions[e->region];

	for (int budget = 64; budget > 0; budget--) {
		struct vfio_user_ioregionfd_cmd cmd;
		struct vfio_user_ioregionfd_resp resp = { 0 };
		ssize_t n = recv(e->srv_fd, &cmd, sizeof(cmd), MSG_DONTWAIT);
		uint32_t op;
		uint32_t size;
		bool respond;
		int rc = 0;

		if (n <= 0)
			return;
		if (n != (ssize_t)sizeof(cmd)) {
			vfurt_logf(&dev->log, VFURT_LOG_WARN, "%s: ioregionfd: short command (%zd bytes)",
				   dev->name, n);
			continue;
		}
		op = VFIO_USER_IOREGIONFD_INFO_CMD(cmd.info);
		size = VFIO_USER_IOREGIONFD_INFO_SIZE(cmd.info);
		respond = op == VFIO_USER_IOREGIONFD_CMD_READ ||
			  VFIO_USER_IOREGIONFD_INFO_RESP(cmd.info);
		if (op > VFIO_USER_IOREGIONFD_CMD_WRITE ||
		    (e->size && (cmd.offset >= e->size || size > e->size - cmd.offset)) ||
		    e->offset + cmd.offset > r->d.size || size > r->d.size - e->offset - cmd.offset) {
			vfurt_logf(&dev->log, VFURT_LOG_WARN,
				   "%s: ioregionfd: bad command (op %u, offset 0x%llx, size %u)",
				   dev->name, op, (unsigned long long)cmd.offset, size);
			rc = -EINVAL;
		} else if (op == VFIO_USER_IOREGIONFD_CMD_READ) {
			ssize_t k = r->d.access(dev, r->d.arg, &resp.data, size,
						e->offset + cmd.offset, false);

			rc = k == (ssize_t)size ? 0 : -EIO;
		} else {
			ssize_t k = r->d.access(dev, r->d.arg, &cmd.data, size,
						e->offset + cmd.offset, true);

			rc = k == (ssize_t)size ? 0 : -EIO;
		}
		if (rc)
			resp.data = ~0ull; /* like a master abort: all ones */
		if (respond && send(e->srv_fd, &resp, sizeof(resp), MSG_DONTWAIT | MSG_NOSIGNAL) !=
				       (ssize_t)sizeof(resp))
			vfurt_logf(&dev->log, VFURT_LOG_WARN, "%s: ioregionfd: cannot respond",
				   dev->name);
	}
}

static void ioeventfd_ready(struct vfurt_dev *dev, void *ctx)
{
	struct vfurt_ioeventfd *e = ctx;
	uint64_t count;

	if (read(e->fd, &count, sizeof(count)) == (ssize_t)sizeof(count) && e->fn)
		e->fn(dev, e->arg, count);
}

/* The client's replies to DMA requests on the twin socket. A failure marks
 * the connection broken: the host's next tick closes it. */
static void twin_ready(struct vfurt_dev *dev, void *ctx)
{
	(void)ctx;
	if (dev->conn)
		vfr_conn_twin_readable(dev->conn);
}

size_t vfurt_dev_watches(struct vfurt_dev *dev, struct vfurt_dev_watch *out, size_t max)
{
	size_t n = 0;
	int fd;

	for (uint32_t i = 0; i < dev->nr_ioev && n < max; i++) {
		struct vfurt_ioeventfd *e = &dev->ioev[i];

		if (e->type == VFIO_USER_IO_FD_TYPE_IOREGIONFD)
			out[n++] = (struct vfurt_dev_watch){ e->srv_fd, ioregionfd_ready, e };
		else if (e->fn)
			out[n++] = (struct vfurt_dev_watch){ e->fd, ioeventfd_ready, e };
	}
	fd = vfr_irqs_intx_unmask_fd(dev->irqs, NULL);
	if (fd >= 0 && n < max)
		out[n++] = (struct vfurt_dev_watch){ fd, vfr_dev_intx_unmask_ready, NULL };
	fd = dev->conn ? vfr_conn_twin_fd(dev->conn) : -1;
	if (fd >= 0 && n < max)
		out[n++] = (struct vfurt_dev_watch){ fd, twin_ready, NULL };
	return n;
}

uint32_t vfurt_dev_watch_gen(const struct vfurt_dev *dev)
{
	uint32_t gen;

	(void)vfr_irqs_intx_unmask_fd(dev->irqs, &gen);
	return gen + atomic_load(&dev->watch_gen);
}

void vfr_dev_free_host_state(struct vfurt_dev *dev)
{
	for (uint32_t i = 0; i < dev->nr_ioev; i++) {
		if (dev->ioev[i].own_fd)
			close(dev->ioev[i].fd);
		if (dev->ioev[i].srv_fd >= 0)
			close(dev->ioev[i].srv_fd);
	}
	dev->nr_ioev = 0;
	for (uint32_t i = 0; i < dev->nr_queues; i++)
		free(dev->queues[i]);
	free(dev->queues);
	dev->queues = NULL;
	dev->nr_queues = 0;
}
