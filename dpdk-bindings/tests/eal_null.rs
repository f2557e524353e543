//! The safe layer end to end on a `net_null` vdev: EAL, pool, port setup,
//! bursts, rings, stats, and the pool's in-use count back to its baseline.
//! One EAL per process, so everything runs in one test.

use dpdk_bindings::{eal, port, ring, Burst, Eal, Mempool};

#[test]
fn null_port_round_trip() {
    eal::check_version().expect("runtime DPDK matches the headers");
    let prefix = format!("--file-prefix=bindtest{}", std::process::id());
    let eal = Eal::init(&[
        "bindtest",
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        &prefix,
        "--log-level=lib.*:error",
        "-l",
        "0",
        "--vdev=net_null0",
    ])
    .expect("EAL init");
    assert!(
        Eal::init(&["again"]).is_err(),
        "second init must be refused"
    );

    let pool = Mempool::new("bindtest", 2047, 32, 2176, -1).expect("pool");
    let baseline = pool.in_use();
    assert_eq!(port::count(), 1);
    let id = port::by_name("net_null0").expect("port by name");
    let info = port::info(id).expect("info");
    assert_eq!(info.driver, "net_null");
    let setup = port::Setup {
        rx_queues: 1,
        tx_queues: 2,
        rx_desc: 256,
        tx_desc: 256,
        mtu: None,
        rss: true,
        promiscuous: true,
        allmulticast: true,
        checksum_offload: true,
        segment_ip_len: None,
    };
    port::configure(id, &setup, &pool).expect("configure");
    port::start(id).expect("start");
    let (mut rxq, mut txq) = port::queues(id, &setup);

    let mut burst = Burst::new();
    let n = rxq[0].rx_burst(&mut burst);
    assert!(n > 0, "net_null always delivers");
    assert_eq!(burst.len(), n);
    assert!(pool.in_use() >= baseline + n as u32);
    let sent = txq[1].tx_burst(&mut burst);
    assert_eq!(sent, n, "net_null takes everything");
    assert!(burst.is_empty());

    let (mut prod, mut cons) = ring::spsc("bindtest_ring", 64, -1).expect("ring");
    let m = pool.alloc().expect("alloc");
    prod.enqueue(m).expect("room in ring");
    assert_eq!(cons.len(), 1);
    let mut out = Burst::new();
    assert_eq!(cons.dequeue_burst(&mut out), 1);
    drop(out);
    // Mbufs left in a dropped ring are freed with it.
    prod.enqueue(pool.alloc().expect("alloc")).expect("room");
    drop((prod, cons));

    // Fan-out: one shared payload behind three private headers.
    let hdrs = Mempool::new("bindtest_hdr", 63, 0, 256, -1).expect("header pool");
    let mut payload = pool.alloc().expect("alloc");
    payload.append(100).expect("room").fill(0xab);
    let shared = payload.into_shared().expect("one segment, refcnt 1");
    let mut fanned = Burst::new();
    for i in 0..3u8 {
        let mut h = hdrs.alloc().expect("header");
        h.append(42).expect("room").fill(i);
        h.chain_shared(shared.share()).expect("one-segment head");
        assert_eq!(
            (h.pkt_len(), h.data_len(), h.is_contiguous()),
            (142, 42, false)
        );
        assert!(
            h.append(1).is_none() && !h.trim(1),
            "a shared tail is never written"
        );
        fanned.push(h);
    }
    assert_eq!(shared.refcnt(), 4);
    assert_eq!(shared.data(), &[0xab; 100][..]);
    drop(shared);
    assert_eq!(txq[1].tx_burst(&mut fanned), 3);
    assert_eq!(hdrs.in_use(), 0, "headers freed by the PMD");
    assert_eq!(
        pool.in_use(),
        baseline,
        "payload freed with its last packet"
    );
    drop(hdrs);

    let stats = port::stats(id).expect("stats");
    assert!(stats.ipackets >= n as u64);
    assert!(port::link(id).is_ok());
    port::stop(id);
    port::close(id);
    assert_eq!(pool.in_use(), baseline, "every mbuf is back in the pool");
    drop(pool);
    let runtime_dir = eal.runtime_dir().map(|d| d.to_path_buf());
    let dir = runtime_dir.expect("the EAL reports its runtime directory");
    assert!(
        dir.ends_with(format!("bindtest{}", std::process::id())),
        "{}",
        dir.display()
    );
    assert!(dir.is_dir(), "{} exists while the EAL runs", dir.display());
    drop(eal);
    assert!(!dir.exists(), "{} is removed at cleanup", dir.display());
}
