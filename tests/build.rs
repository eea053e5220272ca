//! Builds the test processors (`guest/test-processors/`) once per build.

use twinsync_guest_build::{Guest, build};

fn main() {
    build(
        "TWINSYNC_TEST_",
        &[
            Guest {
                package: "scripted",
                binary: false,
            },
            Guest {
                package: "wrong-world",
                binary: true,
            },
            Guest {
                package: "http-importer",
                binary: false,
            },
            Guest {
                package: "contract-probe",
                binary: false,
            },
        ],
    );
}
