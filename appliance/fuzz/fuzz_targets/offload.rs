//! Any frame with any virtio-net header, as an af_packet port receives them from the
//! kernel: completing its checksum and planning and writing its segments return an error
//! or bytes, never a panic; every segment fits the length it announces.
#![no_main]

use dpdk_bindings::packet_port::vnet::{complete_checksum, Segments, VnetHdr, VNET_HDR_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < VNET_HDR_LEN + 2 {
        return;
    }
    let mut hdr = [0u8; VNET_HDR_LEN];
    hdr.copy_from_slice(&data[..VNET_HDR_LEN]);
    let hdr = VnetHdr::parse(&hdr);
    // Two bytes choose the segment limit, as the tunnel's inner MTU would.
    let max_ip_len = usize::from(u16::from_be_bytes([data[VNET_HDR_LEN], data[VNET_HDR_LEN + 1]]));
    let mut frame = data[VNET_HDR_LEN + 2..].to_vec();
    let _ = complete_checksum(&mut frame, &hdr);
    if let Ok(plan) = Segments::plan(&frame, &hdr, max_ip_len) {
        let mut out = vec![0u8; 70_000];
        for i in 0..plan.count().min(64) {
            let len = plan.segment_len(i);
            assert!(len <= out.len());
            assert_eq!(plan.write(i, &mut out), len);
        }
    }
});
