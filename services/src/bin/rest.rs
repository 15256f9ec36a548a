/// jemalloc, whose background thread returns freed memory to the system
/// (see [`faultline_services::give_memory_back`]).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::Parser;
use faultline_services::rest::{RestConfig, run};

fn main() -> anyhow::Result<()> {
    let config = RestConfig::parse();
    faultline_services::main(config.listen, config.runtime, |listener, shutdown| {
        run(listener, config, shutdown)
    })
}
