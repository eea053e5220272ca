//! Builds the example processors (`guest/processors/`) so that the binary can embed them.

use twinsync_guest_build::{Guest, build};

fn main() {
    build(
        "TWINSYNC_BUILTIN_",
        &[
            Guest {
                package: "mirror",
                binary: false,
            },
            Guest {
                package: "remote-key",
                binary: false,
            },
            Guest {
                package: "status-guard",
                binary: false,
            },
        ],
    );
}
