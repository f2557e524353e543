/*
 * Out-of-line wrappers for the DPDK 22.11 functions that are static inline,
 * thread-local or macros, so bindgen has a symbol to link against.
 * Names carry the `shim_` prefix (not `_rte_`, which is reserved in C).
 */
#ifndef APPLIANCE_DPDK_SHIM_H
#define APPLIANCE_DPDK_SHIM_H

#include <stdint.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

/* ethdev fast path */
uint16_t shim_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t shim_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

/* mbuf */
struct rte_mbuf *shim_pktmbuf_alloc(struct rte_mempool *mp);
int shim_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n);
void shim_pktmbuf_free(struct rte_mbuf *m);
char *shim_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
uint16_t shim_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t shim_pktmbuf_tailroom(const struct rte_mbuf *m);
int shim_pktmbuf_is_contiguous(const struct rte_mbuf *m);
uint16_t shim_mbuf_refcnt_read(const struct rte_mbuf *m);
uint16_t shim_mbuf_refcnt_update(struct rte_mbuf *m, int16_t delta);
void shim_pktmbuf_attach(struct rte_mbuf *mi, struct rte_mbuf *m);
void shim_pktmbuf_detach(struct rte_mbuf *m);
int shim_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail);
void shim_pktmbuf_chain_shared(struct rte_mbuf *head, struct rte_mbuf *tail);
void shim_mbuf_set_tx_offload(struct rte_mbuf *m, uint64_t ol_flags, uint16_t l2_len, uint16_t l3_len);

/* rings of mbuf pointers */
unsigned shim_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n);
unsigned shim_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n);
unsigned shim_ring_count(const struct rte_ring *r);

/* lcore, errno, time */
unsigned shim_lcore_id(void);
int shim_errno(void);
uint64_t shim_get_timer_cycles(void);
uint64_t shim_get_timer_hz(void);
void shim_pause(void);

/* RTE_BIT64-built constants that bindgen's macro evaluator cannot see */
uint64_t shim_eth_rss_ip(void);
uint64_t shim_eth_rss_udp(void);
uint64_t shim_eth_rss_tcp(void);
uint64_t shim_eth_tx_offload_ipv4_cksum(void);
uint64_t shim_eth_tx_offload_udp_cksum(void);
uint64_t shim_eth_tx_offload_mbuf_fast_free(void);
uint64_t shim_eth_tx_offload_multi_segs(void);
uint32_t shim_eth_link_speed_fixed(void);

#endif
