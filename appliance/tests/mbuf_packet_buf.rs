//! The [`PacketBuf`] contract on real mbufs (the unit tests run it on the
//! `Vec`-backed buffer): prepend into the headroom, trims, and refusals that
//! leave the packet unchanged. Needs the EAL, so it is its own process.

use appliance::buf::{check_contract, BufError, PacketBuf};
use dpdk_bindings::{Eal, Mempool};

#[test]
fn mbufs_keep_the_packet_buf_contract() {
    let prefix = format!("--file-prefix=buftest{}", std::process::id());
    let eal = Eal::init(&[
        "buftest",
        "--no-huge",
        "-m",
        "128",
        "--no-pci",
        &prefix,
        "--log-level=lib.*:error",
        "-l",
        "0",
    ])
    .expect("EAL init");
    let pool = Mempool::new("buftest", 255, 0, 2176, -1).expect("pool");
    let baseline = pool.in_use();
    {
        let mut m = pool.alloc().expect("an mbuf");
        m.append(6)
            .expect("room")
            .copy_from_slice(&[1, 2, 3, 4, 5, 6]);
        check_contract(&mut m);
        let room = PacketBuf::headroom(&m);
        assert_eq!(
            PacketBuf::prepend(&mut m, room + 1),
            Err(BufError::NoHeadroom)
        );
        assert_eq!(
            PacketBuf::prepend(&mut m, 70_000),
            Err(BufError::NoHeadroom),
            "more than an mbuf can ever hold"
        );
        assert_eq!(m.trim_front(70_000), Err(BufError::TooShort));
    }
    assert_eq!(pool.in_use(), baseline);
    drop(pool);
    drop(eal);
}
