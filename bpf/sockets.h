/*
 * Sockets for probes at sys_exit: the syscall's arguments from the caller's
 * saved user registers, fd -> struct file -> struct sock, and addresses in
 * the record's sockaddr format (struct sdxfer_sockaddr: family, port in
 * network order, 16 address bytes: an IPv4 address in the first 4).
 *
 * x86-64 only (the syscall ABI's registers).
 */
#ifndef SDXFER_BPF_SOCKETS_H
#define SDXFER_BPF_SOCKETS_H

#include "helpers.h"

#define NET_AF_INET 2
#define NET_AF_INET6 10
#define NET_IPPROTO_UDP 17
#define NET_S_IFSOCK 0140000
/* sizeof(struct sockaddr_in) and sizeof(struct sockaddr_in6): a shorter
 * address is refused by the kernel, and its bytes past addrlen are not the
 * caller's address. */
#define NET_SOCKADDR_IN_LEN 16
#define NET_SOCKADDR_IN6_LEN 24

/* The caller's saved user registers: at sys_exit they still hold the
 * syscall's arguments (x86-64: di, si, dx, r10, r8, r9), so no sys_enter
 * probe and no map are needed to know them. */
static __always_inline int is_inet(__u16 family)
{
    return family == NET_AF_INET || family == NET_AF_INET6;
}

/* The current task's struct file for fd, or NULL. At sys_exit the fd may
 * already be closed by another thread: then NULL, or whatever took its place. */
static __always_inline const char *file_of_fd(__s32 fd)
{
    return (const char *)sdxfer_current_file(fd);
}

/* The struct sock behind a file, or NULL when it is not a socket. A file
 * is a socket when its inode says so; only then is private_data a struct socket. */
static __always_inline const char *sock_of_file(const char *file)
{
    if (file_type(file) != NET_S_IFSOCK)
        return NULL;
    const char *socket = (const char *)sdxfer_kernel_u64(file + SDXFER_MEMBER(file, private_data));
    return (const char *)sdxfer_kernel_u64(socket + SDXFER_MEMBER(socket, sk));
}

/* The struct sock behind fd of the current task, or NULL when fd is not an open socket. */
static __always_inline const char *sock_of_fd(__s32 fd)
{
    return sock_of_file(file_of_fd(fd));
}

/* struct sock's embedded struct sock_common (two relocations under CO-RE). */
static __always_inline const char *sk_common(const char *sk)
{
    return sk + SDXFER_MEMBER(sock, __sk_common);
}

static __always_inline __u16 sock_family(const char *sk)
{
    return sk ? read_kernel_u16(sk_common(sk) + SDXFER_MEMBER(sock_common, skc_family)) : 0;
}

/* IPPROTO_* of a socket, 0 for none. */
static __always_inline __u16 sock_protocol(const char *sk)
{
    return sk ? read_kernel_u16(sk + SDXFER_MEMBER(sock, sk_protocol)) : 0;
}

/* A socket's own address now, as getsockname(2) gives it: rcv_saddr, and
 * inet_sport (network order; struct inet_sock starts with its struct sock).
 * Not skc_num: a refused connect gives the port back (skc_num 0) but the
 * SYN went from inet_sport, which getsockname still shows. All zero for no
 * socket, family only for one that is not inet. */
static __always_inline void sock_local(const char *sk, struct sdxfer_sockaddr *addr)
{
    __builtin_memset(addr, 0, sizeof(*addr));
    addr->family = sock_family(sk);
    if (!is_inet(addr->family))
        return;
    addr->port = read_kernel_u16(sk + SDXFER_MEMBER(inet_sock, inet_sport));
    if (addr->family == NET_AF_INET)
        bpf_probe_read_kernel(addr->addr, 4, sk_common(sk) + SDXFER_MEMBER(sock_common, skc_rcv_saddr));
    else
        bpf_probe_read_kernel(addr->addr, 16, sk_common(sk) + SDXFER_MEMBER(sock_common, skc_v6_rcv_saddr));
}

#define NET_TCPF_SYN_SENT (1 << 2)  /* 1 << TCP_SYN_SENT */
#define NET_TCPF_CLOSE (1 << 7)     /* 1 << TCP_CLOSE */

/* Whether getpeername(2) names a peer (inet_getname's test): a peer port,
 * and a state past the connect: not SYN_SENT (under way), not CLOSE
 * (refused, reset, or never connected). */
static __always_inline int sock_connected(const char *sk)
{
    __u8 state = 0;

    if (!read_kernel_u16(sk_common(sk) + SDXFER_MEMBER(sock_common, skc_dport)))
        return 0;
    bpf_probe_read_kernel(&state, sizeof(state), sk_common(sk) + SDXFER_MEMBER(sock_common, skc_state));
    return !((1U << (state & 31)) & (NET_TCPF_SYN_SENT | NET_TCPF_CLOSE));
}

/* A socket's peer (daddr and dport, already in network order). */
static __always_inline void sock_peer(const char *sk, struct sdxfer_sockaddr *addr)
{
    __builtin_memset(addr, 0, sizeof(*addr));
    addr->family = sock_family(sk);
    if (!is_inet(addr->family))
        return;
    addr->port = read_kernel_u16(sk_common(sk) + SDXFER_MEMBER(sock_common, skc_dport));
    if (addr->family == NET_AF_INET)
        bpf_probe_read_kernel(addr->addr, 4, sk_common(sk) + SDXFER_MEMBER(sock_common, skc_daddr));
    else
        bpf_probe_read_kernel(addr->addr, 16, sk_common(sk) + SDXFER_MEMBER(sock_common, skc_v6_daddr));
}

/* A caller's struct sockaddr of addrlen bytes, converted: sockaddr_in keeps
 * its address at 4, sockaddr_in6 at 8 (after sin6_flowinfo). Family and port
 * are kept for any family; the address only for inet ones long enough.
 * Returns the family (0: none, or unreadable). */
static __always_inline __u16 user_sockaddr(__u64 uaddr, __u32 addrlen, struct sdxfer_sockaddr *addr)
{
    __builtin_memset(addr, 0, sizeof(*addr));
    if (!uaddr || addrlen < 4 || bpf_probe_read_user(addr, 4, (void *)uaddr) < 0) {
        addr->family = 0;
        addr->port = 0;
        return 0;
    }
    if (addr->family == NET_AF_INET && addrlen >= NET_SOCKADDR_IN_LEN)
        bpf_probe_read_user(addr->addr, 4, (void *)(uaddr + 4));
    else if (addr->family == NET_AF_INET6 && addrlen >= NET_SOCKADDR_IN6_LEN)
        bpf_probe_read_user(addr->addr, 16, (void *)(uaddr + 8));
    return addr->family;
}

#endif /* SDXFER_BPF_SOCKETS_H */
