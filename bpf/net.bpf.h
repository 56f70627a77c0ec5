/*
 * The network family: connect, bind, listen, accept (and accept4), and dns
 * (UDP queries to port 53 sent with sendto, send, sendmsg or sendmmsg).
 *
 * Every event is reported at sys_exit, successful or not, with ret: the
 * syscall's arguments come from the caller's saved user registers (see
 * sockets.h), addresses the caller passed from its memory, and what the
 * kernel did (the address bound, the protocol, a new socket's peer) from the
 * struct sock behind the fd. Only IPv4 and IPv6 are reported: unix sockets
 * (syslog, D-Bus, nscd) would drown everything else.
 *
 * Each event's programs are compiled unless HIDS_SELECTED is defined without
 * HIDS_WANT_<EVENT>.
 */
#ifndef SDXFER_BPF_NET_H
#define SDXFER_BPF_NET_H

#include "helpers.h"
#include "sockets.h"

#if defined(HIDS_WANT_CONNECT) || !defined(HIDS_SELECTED)
/* connect(fd, addr, addrlen): remote as asked, local as bound after the call
 * (a refused TCP connect leaves the socket unbound again: 0.0.0.0:0). */
TRACEPOINT_PROBE(syscalls, sys_exit_connect)
{
    const char *regs = syscall_regs();
    struct sdxfer_sockaddr remote, local;
    if (!is_inet(user_sockaddr(syscall_reg(regs, SDXFER_MEMBER(pt_regs, si)), syscall_reg(regs, SDXFER_MEMBER(pt_regs, dx)), &remote)))
        return 0;
    __s32 fd = syscall_reg(regs, SDXFER_MEMBER(pt_regs, di));
    const char *sk = sock_of_fd(fd);
    sock_local(sk, &local);
    connect_print(args, fd, sock_protocol(sk), &remote, &local, args->ret);
    return 0;
}
#endif

#if defined(HIDS_WANT_BIND) || !defined(HIDS_SELECTED)
/* bind(fd, addr, addrlen): local is the socket's address once bound (so a
 * port 0 shows the port the kernel chose), and the address asked for when
 * the bind failed. */
TRACEPOINT_PROBE(syscalls, sys_exit_bind)
{
    const char *regs = syscall_regs();
    struct sdxfer_sockaddr local;
    if (!is_inet(user_sockaddr(syscall_reg(regs, SDXFER_MEMBER(pt_regs, si)), syscall_reg(regs, SDXFER_MEMBER(pt_regs, dx)), &local)))
        return 0;
    __s32 fd = syscall_reg(regs, SDXFER_MEMBER(pt_regs, di));
    const char *sk = sock_of_fd(fd);
    if (args->ret == 0)
        sock_local(sk, &local);
    bind_print(args, fd, sock_protocol(sk), &local, args->ret);
    return 0;
}
#endif

#if defined(HIDS_WANT_LISTEN) || !defined(HIDS_SELECTED)
/* listen(fd, backlog), on inet sockets (a non-socket fd is not reported). */
TRACEPOINT_PROBE(syscalls, sys_exit_listen)
{
    const char *regs = syscall_regs();
    __s32 fd = syscall_reg(regs, SDXFER_MEMBER(pt_regs, di));
    const char *sk = sock_of_fd(fd);
    if (!is_inet(sock_family(sk)))
        return 0;
    struct sdxfer_sockaddr local;
    sock_local(sk, &local);
    listen_print(args, fd, &local, (__s32)syscall_reg(regs, SDXFER_MEMBER(pt_regs, si)), args->ret);
    return 0;
}
#endif

#if defined(HIDS_WANT_ACCEPT) || !defined(HIDS_SELECTED)
/* accept(fd, addr, addrlen) and accept4(fd, addr, addrlen, flags) on inet
 * listeners: remote and local from the new socket; on failure no peer, and
 * the listening socket's own address. */
static __always_inline int report_accept(void *ctx, long ret, int is_accept4)
{
    const char *regs = syscall_regs();
    __s32 fd = syscall_reg(regs, SDXFER_MEMBER(pt_regs, di));
    const char *listener = sock_of_fd(fd);
    if (!is_inet(sock_family(listener)))
        return 0;
    __s32 flags = is_accept4 ? (__s32)syscall_reg(regs, SDXFER_MEMBER(pt_regs, r10)) : 0;
    struct sdxfer_sockaddr remote, local;
    if (ret >= 0) {
        const char *sk = sock_of_fd(ret);
        sock_peer(sk, &remote);
        sock_local(sk, &local);
    } else {
        __builtin_memset(&remote, 0, sizeof(remote));
        sock_local(listener, &local);
    }
    accept_print(ctx, fd, flags, &remote, &local, ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_accept)
{
    return report_accept(args, args->ret, 0);
}

TRACEPOINT_PROBE(syscalls, sys_exit_accept4)
{
    return report_accept(args, args->ret, 1);
}
#endif

#if defined(HIDS_WANT_DNS) || !defined(HIDS_SELECTED)
#define DNS_PORT_BE 0x3500          /* htons(53) */
#define DNS_HEADER_LEN 12
#define DNS_NAME_MAX 255            /* a name's wire form, length bytes and root included (RFC 1035) */
#define DNS_WIRE_READ (DNS_HEADER_LEN + DNS_NAME_MAX + 4)   /* header, QNAME, QTYPE, QCLASS */
#define DNS_WIRE_SIZE 512           /* a power of two above DNS_WIRE_READ: reads are masked to it */
#define DNS_LABELS_MAX 128          /* a 255-byte name has at most 127 labels and the root */
#ifndef DNS_MMSG_MAX
#define DNS_MMSG_MAX 8
#endif

#define DNS_MMSGHDR_LEN 64          /* struct mmsghdr: struct msghdr (56 bytes), msg_len, padding */
#define DNS_MMSG_LEN_AT 56          /* offsetof(struct mmsghdr, msg_len) */
_Static_assert(SDXFER_MAX_DNS_QUERY >= DNS_NAME_MAX - 1, "the dotted name must fit the query field");

struct dns_area {
    __u8 wire[DNS_WIRE_SIZE + 8];  /* + 8: QTYPE's second byte after a masked offset */
    struct sdxfer_sockaddr remote;
    /* dns_question's walk, label by label */
    __u64 wire_len;
    __u64 at;       /* the current length byte */
    __u64 done;     /* the name ended, or cannot be parsed */
    __u64 failed;
    __u64 end;      /* where the root label is */
    /* a sendmmsg call's socket, messages and result */
    __u64 mmsg_sk;
    __u64 mmsg_vec;
    __s64 mmsg_ret;
};
_Static_assert(sizeof(struct dns_area) <= SDXFER_SLOT_SIZE, "dns locals must fit a scratch slot");

/* The caller's struct msghdr, as far as a datagram's destination and its
 * first buffer go. */
struct user_msghdr_head {
    __u64 name;
    __u32 namelen;
    __u32 pad;
    __u64 iov;
    __u64 iovlen;
};

struct user_iovec {
    __u64 base;
    __u64 len;
};

/* The UDP socket behind fd, or NULL. */
static __always_inline const char *udp_sock(__s32 fd)
{
    const char *sk = sock_of_fd(fd);
    return sock_protocol(sk) == NET_IPPROTO_UDP ? sk : NULL;
}

/* Whether a datagram of sk goes to port 53: to dest (a user sockaddr) when
 * the caller passed one, else to the socket's peer. Fills area->remote. */
static __always_inline int to_dns_port(struct dns_area *area, const char *sk, __u64 dest, __u32 destlen)
{
    if (dest)
        user_sockaddr(dest, destlen, &area->remote);
    else
        sock_peer(sk, &area->remote);
    return is_inet(area->remote.family) && area->remote.port == DNS_PORT_BE;
}

/* One label of dns_question's walk, branch-free (helpers.h's choose and
 * nonzero): where the verifier walks the loop label by label (the BCC
 * build), a branch per label would have it follow every way through up to
 * 128 labels. Ends the walk once the name ended or cannot be parsed. */
static long dns_label(__u32 i, void *state)
{
    struct dns_area *area = *(struct dns_area **)state;
    __u64 at = area->at;
    __u64 done = area->done;
    __u32 here = bounded(at, DNS_WIRE_SIZE - 1);
    __u64 c = area->wire[here];
    __u64 live = done ^ 1;
    __u64 past = (area->wire_len - at - 1) >> 63;           /* at >= wire_len */
    __u64 too_long = (DNS_HEADER_LEN + DNS_NAME_MAX - 1 - at) >> 63;   /* the root label would lie past 255 bytes */
    __u64 is_end = (nonzero(c) ^ 1) & ((past | too_long) ^ 1);
    __u64 is_bad = past | too_long | nonzero(c >> 6);
    __u64 first = nonzero(at ^ DNS_HEADER_LEN) ^ 1;
    __u64 dot = live & ((is_end | is_bad | first) ^ 1);    /* a length byte inside the text */
    area->wire[here] = choose(dot, '.', c);
    area->end = choose(live & is_end, at, area->end);
    area->failed |= live & is_bad;
    done |= is_end | is_bad;
    area->done = done;
    area->at = at + choose(done, 0, c + 1);
    return done & 1;  /* 0 or 1, as bpf_loop wants: done is a flag */
}

/* The first question of a DNS message (len bytes at user address buf): its
 * QNAME as dotted text, and its QTYPE. Returns the text (inside
 * area->wire), or NULL when it does not parse: a name that runs past the
 * message or 255 bytes, a compression pointer or reserved label type.
 *
 * The wire form is turned into text in place: "\3www\7example\3com\0"
 * read from its second byte is "www.example.com" once every length byte
 * after the first is a '.', and the root label is the NUL. (A label holding
 * a NUL or a '.' therefore reads ambiguously; resolvers send neither.) */
static __always_inline const char *dns_question(struct dns_area *area, __u64 buf, __u64 len, __u16 *qtype)
{
    __u64 wire_len = choose(((__u64)len - DNS_WIRE_READ) >> 63, len, DNS_WIRE_READ);
    if (!buf || bpf_probe_read_user(area->wire, bounded(wire_len, DNS_WIRE_SIZE - 1), (void *)buf) < 0)
        return NULL;
    area->wire_len = wire_len;
    area->at = DNS_HEADER_LEN;
    area->done = area->failed = area->end = 0;
    HIDS_LOOP(DNS_LABELS_MAX, DNS_LABELS_MAX, dns_label, &area);
    __u64 end = area->end;
    if (!area->done || area->failed || end + 2 >= wire_len)
        return NULL;
    __u32 qtype_at = bounded(end + 1, DNS_WIRE_SIZE - 1);
    *qtype = (__u16)area->wire[qtype_at] << 8 | area->wire[qtype_at + 1];
    /* the text starts after the first length byte; a root name is empty */
    return (const char *)area->wire + DNS_HEADER_LEN + nonzero(end ^ DNS_HEADER_LEN);
}

static __always_inline void report_dns(void *ctx, struct dns_area *area, __u64 buf, __u64 len,
                                       const char *syscall, __s64 ret)
{
    __u16 qtype = 0;
    const char *query = dns_question(area, buf, len, &qtype);
    if (!query)
        query = SDXFER_UNKNOWN;
    dns_print(ctx, query, qtype, &area->remote, syscall, ret);
}

/* sendto(fd, buf, len, flags, dest, destlen); send() is sendto with no
 * destination. A destination port other than 53 is refused before the fd
 * is looked up. */
TRACEPOINT_PROBE(syscalls, sys_exit_sendto)
{
    const char *regs = syscall_regs();
    __u64 dest = syscall_reg(regs, SDXFER_MEMBER(pt_regs, r8));
    __u16 head[2] = {};
    if (dest && (bpf_probe_read_user(head, sizeof(head), (void *)dest) < 0 || head[1] != DNS_PORT_BE))
        return 0;
    const char *sk = udp_sock(syscall_reg(regs, SDXFER_MEMBER(pt_regs, di)));
    if (!sk)
        return 0;
    SDXFER_LOCAL(struct dns_area, area);
    if (!area)
        return 0;
    if (!to_dns_port(area, sk, dest, syscall_reg(regs, SDXFER_MEMBER(pt_regs, r9))))
        return 0;
    char syscall[] = "sendto";
    report_dns(args, area, syscall_reg(regs, SDXFER_MEMBER(pt_regs, si)), syscall_reg(regs, SDXFER_MEMBER(pt_regs, dx)), syscall,
               args->ret);
    return 0;
}

/* One message (struct msghdr at msg) of a UDP socket; only the first iovec
 * is parsed (resolvers put a query in one buffer). */
static __always_inline void report_dns_msg(void *ctx, struct dns_area *area, const char *sk, __u64 msg,
                                           const char *syscall, __s64 ret)
{
    struct user_msghdr_head head;
    if (bpf_probe_read_user(&head, sizeof(head), (void *)msg) < 0)
        return;
    if (!to_dns_port(area, sk, head.name, head.namelen))
        return;
    struct user_iovec iov = {};
    if (head.iovlen)
        bpf_probe_read_user(&iov, sizeof(iov), (void *)head.iov);
    report_dns(ctx, area, iov.base, iov.len, syscall, ret);
}

/* sendmsg(fd, msg, flags) */
TRACEPOINT_PROBE(syscalls, sys_exit_sendmsg)
{
    const char *regs = syscall_regs();
    const char *sk = udp_sock(syscall_reg(regs, SDXFER_MEMBER(pt_regs, di)));
    if (!sk)
        return 0;
    SDXFER_LOCAL(struct dns_area, area);
    if (!area)
        return 0;
    char syscall[] = "sendmsg";
    report_dns_msg(args, area, sk, syscall_reg(regs, SDXFER_MEMBER(pt_regs, si)), syscall, args->ret);
    return 0;
}

/* Message i of a sendmmsg call (the call's values in the dns_area), with
 * its own msg_len as ret when the call succeeded; 0 past the last message. */
static __always_inline int report_dns_mmsg(void *ctx, struct dns_area *area, const char *syscall, __u32 i)
{
    __s64 sent = area->mmsg_ret;
    if (i >= (sent < 0 ? 1 : sent))
        return 0;
    __u64 msg = area->mmsg_vec + DNS_MMSGHDR_LEN * (__u64)i;
    if (sent >= 0) {
        __u32 msg_len = 0;
        bpf_probe_read_user(&msg_len, sizeof(msg_len), (void *)(msg + DNS_MMSG_LEN_AT));
        sent = msg_len;
    }
    report_dns_msg(ctx, area, (const char *)area->mmsg_sk, msg, syscall, sent);
    return 1;
}

/* sendmmsg(fd, vec, vlen, flags): one event per message sent, each with its
 * own msg_len as ret, up to DNS_MMSG_MAX messages; when the call failed
 * (nothing was sent) one event for the first message, with -errno. The
 * messages are unrolled, not a HIDS_LOOP: the verifier takes the eight
 * copies faster than a bpf_loop step around the packer, which it walks
 * again for every state it prunes inside the loop. The call's values go
 * through the dns_area (map memory), so no copy is checked once per range
 * of ret. */
TRACEPOINT_PROBE(syscalls, sys_exit_sendmmsg)
{
    const char *regs = syscall_regs();
    const char *sk = udp_sock(syscall_reg(regs, SDXFER_MEMBER(pt_regs, di)));
    if (!sk)
        return 0;
    SDXFER_LOCAL(struct dns_area, area);
    if (!area)
        return 0;
    char syscall[] = "sendmmsg";
    area->mmsg_sk = (__u64)sk;
    area->mmsg_vec = syscall_reg(regs, SDXFER_MEMBER(pt_regs, si));
    area->mmsg_ret = args->ret;
#pragma unroll
    for (__u32 i = 0; i < DNS_MMSG_MAX; i++)
        if (!report_dns_mmsg(args, area, syscall, i))
            break;
    return 0;
}
#endif /* HIDS_WANT_DNS */

#endif /* SDXFER_BPF_NET_H */
