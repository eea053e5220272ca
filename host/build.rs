//! Builds the example processors (`guest/processors/`) so that the binary can embed them.

use twinsync_guest_build::{Guest, build};

fn main() {
    let guests = [
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
    ];
    let paths = build(&guests);
    for (guest, path) in guests.iter().zip(paths) {
        let var = guest.package.to_uppercase().replace('-', "_");
        println!("cargo:rustc-env=TWINSYNC_BUILTIN_{var}={}", path.display());
    }
}
