//! The scenario runner: reads a scenario file (`spec`), runs it for every system it lists
//! (`runner`, with the systems in `systems/`), and writes `result.json`, `README.md` and PNG
//! plots (`output`). See tests/README.md for the file format and `scenarios/` for examples.
//!
//! | file | job |
//! |---|---|
//! | `spec.rs` | the scenario file format and its validation |
//! | `schedule.rs` | events in time order, their control commands, fault spans |
//! | `systems/` | one file per compared system (Linux baselines, the appliance) |
//! | `runner.rs` | rows × variants: topology, system, traffic, teardown |
//! | `emulator.rs` | the WAN emulator during a run: config, event thread, counter sampler |
//! | `iperf.rs` | iperf3 server/client and its JSON |
//! | `mcast.rs`, `mcast_plan.rs` | one multicast trial; the group/port plan |
//! | `zero_loss.rs` | the zero-loss rate search |
//! | `analysis.rs` | figures derived from raw data (means, fault timings) |
//! | `machine.rs` | what the run was measured on |
//! | `result.rs` | the `result.json` schema |
//! | `report.rs`, `figures.rs`, `plot.rs`, `output.rs` | README tables, which plots, drawing, writing the folder |
//! | `tools.rs` | where the binaries are |

pub mod analysis;
pub mod emulator;
pub mod figures;
pub mod iperf;
pub mod machine;
pub mod mcast;
pub mod mcast_plan;
pub mod output;
pub mod plot;
pub mod probe_stream;
pub mod report;
pub mod result;
pub mod runner;
pub mod schedule;
pub mod spec;
pub mod systems;
pub mod tools;
pub mod zero_loss;

pub use result::ScenarioResult;
pub use runner::{run, RunOptions};
pub use spec::{Scenario, SpecError};
pub use systems::System;
