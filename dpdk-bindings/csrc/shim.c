/* See shim.h: every function here is a one-line forward to a DPDK inline. */
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_pause.h>
#include "shim.h"

uint16_t shim_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_rx_burst(port, queue, pkts, n); }
uint16_t shim_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_tx_burst(port, queue, pkts, n); }

struct rte_mbuf *shim_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }
int shim_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n)
{ return rte_pktmbuf_alloc_bulk(mp, mbufs, n); }
void shim_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
char *shim_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }
uint16_t shim_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }
uint16_t shim_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }
int shim_pktmbuf_is_contiguous(const struct rte_mbuf *m) { return rte_pktmbuf_is_contiguous(m); }
uint16_t shim_mbuf_refcnt_read(const struct rte_mbuf *m) { return rte_mbuf_refcnt_read(m); }
uint16_t shim_mbuf_refcnt_update(struct rte_mbuf *m, int16_t delta) { return rte_mbuf_refcnt_update(m, delta); }
void shim_pktmbuf_attach(struct rte_mbuf *mi, struct rte_mbuf *m) { rte_pktmbuf_attach(mi, m); }
void shim_pktmbuf_detach(struct rte_mbuf *m) { rte_pktmbuf_detach(m); }
int shim_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail) { return rte_pktmbuf_chain(head, tail); }

/*
 * Like rte_pktmbuf_chain for a one-segment head and a one-segment tail that
 * other packets share (refcnt > 1): rte_pktmbuf_chain also stores
 * tail->pkt_len, a write to memory the other holders may be reading.
 */
void shim_pktmbuf_chain_shared(struct rte_mbuf *head, struct rte_mbuf *tail)
{
	head->next = tail;
	head->nb_segs = 2;
	head->pkt_len = (uint32_t)head->data_len + tail->data_len;
}
void shim_mbuf_set_tx_offload(struct rte_mbuf *m, uint64_t ol_flags, uint16_t l2_len, uint16_t l3_len)
{
	m->ol_flags |= ol_flags;
	m->l2_len = l2_len;
	m->l3_len = l3_len;
}

unsigned shim_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n)
{ return rte_ring_enqueue_burst(r, objs, n, NULL); }
unsigned shim_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n)
{ return rte_ring_dequeue_burst(r, objs, n, NULL); }
unsigned shim_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }

unsigned shim_lcore_id(void) { return rte_lcore_id(); }
int shim_errno(void) { return rte_errno; }
uint64_t shim_get_timer_cycles(void) { return rte_get_timer_cycles(); }
uint64_t shim_get_timer_hz(void) { return rte_get_timer_hz(); }
void shim_pause(void) { rte_pause(); }

uint64_t shim_eth_rss_ip(void) { return RTE_ETH_RSS_IP; }
uint64_t shim_eth_rss_udp(void) { return RTE_ETH_RSS_UDP; }
uint64_t shim_eth_rss_tcp(void) { return RTE_ETH_RSS_TCP; }
uint64_t shim_eth_tx_offload_ipv4_cksum(void) { return RTE_ETH_TX_OFFLOAD_IPV4_CKSUM; }
uint64_t shim_eth_tx_offload_udp_cksum(void) { return RTE_ETH_TX_OFFLOAD_UDP_CKSUM; }
uint64_t shim_eth_tx_offload_mbuf_fast_free(void) { return RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE; }
uint64_t shim_eth_tx_offload_multi_segs(void) { return RTE_ETH_TX_OFFLOAD_MULTI_SEGS; }
uint32_t shim_eth_link_speed_fixed(void) { return RTE_ETH_LINK_SPEED_FIXED; }
