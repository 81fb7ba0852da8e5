#define _GNU_SOURCE
#include "CLinux.h"
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <fcntl.h>

int nk_setns_net(int fd) { return setns(fd, CLONE_NEWNET); }

int nk_unshare_net(void) { return unshare(CLONE_NEWNET); }

#include <linux/nsfs.h>
int nk_is_net_namespace(int fd) { return ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET ? 1 : 0; }

static int ethtool_value_ioctl(int sock, const char *ifname, struct ethtool_value *value) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    ifr.ifr_data = (void *)value;
    return ioctl(sock, SIOCETHTOOL, &ifr);
}

int nk_ethtool_set_tx_csum(int sock, const char *ifname, uint32_t on) {
    struct ethtool_value value = { .cmd = ETHTOOL_STXCSUM, .data = on };
    return ethtool_value_ioctl(sock, ifname, &value);
}

int nk_ethtool_get_tx_csum(int sock, const char *ifname) {
    struct ethtool_value value = { .cmd = ETHTOOL_GTXCSUM, .data = 0 };
    if (ethtool_value_ioctl(sock, ifname, &value) < 0) return -1;
    return value.data ? 1 : 0;
}

int nk_unsent_bytes(int fd) {
    int n = 0;
    return ioctl(fd, TIOCOUTQ, &n) < 0 ? -1 : n;
}

int nk_gettid(void) { return (int)syscall(SYS_gettid); }

int nk_ofd_lock(int fd, int64_t offset, int unlock) {
    struct flock lock;
    memset(&lock, 0, sizeof lock);
    lock.l_type = unlock ? F_UNLCK : F_WRLCK;
    lock.l_whence = SEEK_SET;
    lock.l_start = offset;
    lock.l_len = 1;
    return fcntl(fd, F_OFD_SETLK, &lock);
}
