//! `linux-single`: the sites topology as built, Linux routers with one route to the other
//! site over the first WAN link. The reference the multipath rows are compared with.

use anyhow::Result;

use super::SitesSetup;
use crate::topology::Sites;

pub fn setup(_: &Sites) -> Result<SitesSetup> {
    Ok(SitesSetup {
        wrapper: vec![],
        notes: vec!["all traffic on the first WAN link; the others stay idle".into()],
        processes: vec![],
    })
}
