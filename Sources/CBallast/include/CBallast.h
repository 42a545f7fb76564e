// C shims for what Swift cannot import directly. No logic lives here.
#ifndef CBALLAST_H
#define CBALLAST_H

// liburing.h defines _GNU_SOURCE/_XOPEN_SOURCE when they are unset, which renames glibc struct
// members; pull the libc headers in first so this module agrees with SwiftGlibc.
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <inttypes.h>
#include <time.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <liburing.h>

/// accept4(2): hidden from SwiftGlibc because it is GNU-only.
int cb_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
/// Pins the calling thread to one CPU. Returns 0 or an errno value.
int cb_pin_current_thread(int cpu);
/// The CPU the calling thread runs on now, or -1.
int cb_sched_getcpu(void);
/// How many CPUs this process may run on (sched_getaffinity + CPU_COUNT).
int cb_allowed_cpu_count(void);
/// NUMA node of a CPU through libnuma, or -1 when NUMA is unavailable.
int cb_numa_node_of_cpu(int cpu);
/// Number of NUMA nodes (numa_max_node()+1), or 1 when NUMA is unavailable.
int cb_numa_node_count(void);
/// Names the calling thread (pthread_setname_np; at most 15 bytes are kept).
void cb_set_thread_name(const char *name);
/// Sets the calling thread's timer slack (prctl PR_SET_TIMERSLACK) in nanoseconds; 0 on success.
int cb_set_timer_slack(unsigned long nanos);
/// Thread id (gettid) of the caller.
int cb_gettid(void);
/// The destination a connection had before an iptables REDIRECT/DNAT rewrote it: getsockopt
/// SO_ORIGINAL_DST (IPv4, SOL_IP) or IP6T_SO_ORIGINAL_DST (IPv6, SOL_IPV6) by `family`.
/// Returns 0 and fills `out`/`len`, or -1 with errno (ENOENT: the connection was not NATed).
int cb_original_dst(int fd, int family, struct sockaddr_storage *out, socklen_t *len);

/// IOSQE_* flag macros do not import (they are `1U << bit` of an enum).
static inline unsigned char cb_iosqe_buffer_select(void) { return IOSQE_BUFFER_SELECT; }
static inline unsigned char cb_iosqe_io_link(void) { return IOSQE_IO_LINK; }
static inline unsigned char cb_iosqe_cqe_skip_success(void) { return IOSQE_CQE_SKIP_SUCCESS; }

#endif
