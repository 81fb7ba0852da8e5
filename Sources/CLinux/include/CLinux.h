// Linux kernel interfaces that Swift cannot import on its own: rtnetlink and
// ethtool constants and structs, setns, and SIOCETHTOOL.
#ifndef NETKEEP_CLINUX_H
#define NETKEEP_CLINUX_H

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include <linux/if_addr.h>
#include <linux/veth.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdint.h>
#include <sys/vfs.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>

/// setns(2) for a network namespace; returns 0 or -1 with errno set.
int nk_setns_net(int fd);

/// unshare(2) of the network namespace: the calling thread gets a new, empty one.
int nk_unshare_net(void);

/// 1 when `fd` is a handle on a network namespace (NS_GET_NSTYPE), 0 when it
/// is another namespace or no namespace file at all.
int nk_is_net_namespace(int fd);

/// Turns the legacy "tx-checksumming" feature of an interface on or off
/// (what `ethtool -K IF tx off` does) through a socket of the interface's
/// namespace; returns 0 or -1 with errno set.
int nk_ethtool_set_tx_csum(int sock, const char *ifname, uint32_t on);

/// Reads it back; returns 0/1, or -1 with errno set.
int nk_ethtool_get_tx_csum(int sock, const char *ifname);

/// Bytes a socket has sent that have not left yet (SIOCOUTQ: a datagram
/// waiting for the neighbour's address counts until it is transmitted);
/// -1 with errno set.
int nk_unsent_bytes(int fd);

/// The calling thread's kernel thread id.
int nk_gettid(void);

/// An open-file-description lock on one byte at `offset` (F_OFD_SETLK):
/// owned by the descriptor, not the process, so two in one process exclude
/// each other, and the kernel drops it when the descriptor closes or netkeep
/// dies. `unlock` 0 takes it, 1 drops it. Returns 0, or -1 with errno set
/// (EAGAIN: held elsewhere).
int nk_ofd_lock(int fd, int64_t offset, int unlock);

#endif
