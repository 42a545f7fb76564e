#define _GNU_SOURCE 1
#include "CBallast.h"
#include <pthread.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <numa.h>
#include <sys/prctl.h>

// From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>, whose other contents
// clash with glibc's headers.
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

int cb_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    return accept4(fd, addr, len, flags);
}

int cb_pin_current_thread(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

int cb_sched_getcpu(void) { return sched_getcpu(); }

int cb_allowed_cpu_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
    return CPU_COUNT(&set);
}

int cb_numa_node_of_cpu(int cpu) {
    if (numa_available() < 0) return -1;
    return numa_node_of_cpu(cpu);
}

int cb_numa_node_count(void) {
    if (numa_available() < 0) return 1;
    return numa_max_node() + 1;
}

int cb_gettid(void) { return (int)syscall(SYS_gettid); }

void cb_set_thread_name(const char *name) {
    char buf[16];
    size_t i = 0;
    for (; i < 15 && name[i]; i++) buf[i] = name[i];
    buf[i] = 0;
    pthread_setname_np(pthread_self(), buf);
}

int cb_set_timer_slack(unsigned long nanos) { return prctl(PR_SET_TIMERSLACK, nanos, 0, 0, 0); }

int cb_original_dst(int fd, int family, struct sockaddr_storage *out, socklen_t *len) {
    if (family == AF_INET6) return getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, out, len);
    return getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, out, len);
}
