//! `twinsync plugin new`: a plugin project that builds into a package with one command
//! (`./build.sh`: compile, then `twinsync plugin pack` with the project's `plugin.toml`)
//! and passes `plugin check` as written.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::manifest::Manifest;

/// The languages a project can be made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

/// The contract and the helpers a Python or JavaScript project carries (a copy: the project
/// builds on its own).
const WIT: &str = include_str!("../../../wit/processor.wit");
const PYTHON_HELPERS: &str = include_str!("../../../guest/python/twinsync_helpers.py");
const JS_HELPERS: &str = include_str!("../../../guest/js/lib/twinsync-helpers.js");
const JS_HELPER_TYPES: &str = include_str!("../../../guest/js/lib/twinsync-helpers.d.ts");
/// The contract's TypeScript declarations (`scripts/build-polyglot --types`), as
/// `types/...` in a JavaScript project.
const JS_CONTRACT_TYPES: [(&str, &str); 5] = [
    (
        "types/processor.d.ts",
        include_str!("../../../guest/js/types/processor.d.ts"),
    ),
    (
        "types/interfaces/twinsync-processor-incoming.d.ts",
        include_str!("../../../guest/js/types/interfaces/twinsync-processor-incoming.d.ts"),
    ),
    (
        "types/interfaces/twinsync-processor-outgoing.d.ts",
        include_str!("../../../guest/js/types/interfaces/twinsync-processor-outgoing.d.ts"),
    ),
    (
        "types/interfaces/twinsync-processor-sync-helper.d.ts",
        include_str!("../../../guest/js/types/interfaces/twinsync-processor-sync-helper.d.ts"),
    ),
    (
        "types/interfaces/twinsync-processor-types.d.ts",
        include_str!("../../../guest/js/types/interfaces/twinsync-processor-types.d.ts"),
    ),
];

/// The SDK the Rust project depends on: this source tree's, unless `TWINSYNC_SDK` names
/// another checkout's `guest/sdk`.
fn sdk_path() -> PathBuf {
    std::env::var_os("TWINSYNC_SDK").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest/sdk"),
        PathBuf::from,
    )
}

/// The one command that builds a project.
pub fn build_command(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "./build.sh (set TWINSYNC=/path/to/twinsync if it is not on PATH)",
        Lang::Python => {
            "./build.sh (needs componentize-py: COMPONENTIZE_PY=/path/to/it, and TWINSYNC=/path/to/twinsync, if they are not on PATH)"
        }
        Lang::Js => {
            "./build.sh (needs Node.js 20+ and componentize-js: COMPONENTIZE_JS=/path/to/its/src/cli.js, and TWINSYNC=/path/to/twinsync)"
        }
    }
}

/// Write project `name` into `dir/name`; refuses to overwrite anything.
pub fn write(dir: &Path, name: &str, lang: Lang) -> Result<PathBuf> {
    let manifest = Manifest {
        name: name.into(),
        vendor: "Your Company".into(),
        version: "0.1.0".into(),
        description: format!("{name}: the default mirror, ready to customise"),
        contract: crate::runtime::CONTRACT_VERSION.into(),
        worlds: vec!["incoming-processor".into(), "outgoing-processor".into()],
        limits: Default::default(),
        homepage: None,
        settings: Default::default(),
    };
    manifest
        .validate()
        .map_err(|e| anyhow::anyhow!("cannot make a plugin called `{name}`: {e}"))?;
    let root = dir.join(name);
    if root.exists() {
        bail!("{} exists already", root.display());
    }
    let files = match lang {
        Lang::Rust => rust(name, &manifest)?,
        Lang::Python => python(name, &manifest),
        Lang::Js => js(name, &manifest),
    };
    for (path, content, executable) in files {
        let path = root.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, content)
            .with_context(|| format!("cannot write {}", path.display()))?;
        #[cfg(unix)]
        if executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
        #[cfg(not(unix))]
        let _ = executable;
    }
    Ok(root)
}

type File = (&'static str, String, bool);

fn plugin_toml(manifest: &Manifest) -> String {
    format!(
        "# The package's manifest: `twinsync plugin pack` puts it inside the component.\n\
         # Give each build you ship a new version: an installed version never changes.\n\
         name = \"{}\"\nvendor = \"{}\"\nversion = \"{}\"\ndescription = \"{}\"\n\
         # The version of the twinsync:processor contract the code is built against.\n\
         contract = \"{}\"\nworlds = [\"incoming-processor\", \"outgoing-processor\"]\n\
         # homepage = \"https://example.com/{}\"\n\n\
         # Limits the plugin asks for: it runs with the lower of these and the connection's.\n\
         [limits]\n# fuel = 50000000\n# timeout-ms = 1000\n# memory-bytes = 33554432\n",
        manifest.name,
        manifest.vendor,
        manifest.version,
        manifest.description,
        manifest.contract,
        manifest.name
    )
}

fn rust(name: &str, manifest: &Manifest) -> Result<Vec<File>> {
    let sdk = sdk_path();
    let sdk = sdk.canonicalize().unwrap_or(sdk);
    let sdk = sdk.to_str().context("the SDK's path is not UTF-8")?;
    let crate_name = name.replace('-', "_");
    let cargo = format!(
        r#"[package]
name = "{name}"
version = "{version}"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
twinsync-sdk = {{ path = "{sdk}" }}

# A project of its own, not part of any workspace around it.
[workspace]

# Processors are small: optimise for size.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"
"#,
        version = manifest.version,
        sdk = sdk.replace('\\', "/"),
    );
    let lib = format!(
        r#"//! {name}: a twinsync processor. Each side starts as the SDK's default mirror
//! (`mirror_incoming`: a three-way merge with the connection's conflict policies;
//! `mirror_outgoing`: everything but internal comments); change what you need.

use twinsync_sdk::prelude::*;

struct Plugin;

impl Processor for Plugin {{
    fn incoming(
        ctx: &SyncContext,
        replica: Replica,
        previous: Option<Replica>,
        issue: Issue,
    ) -> Result<Issue, ProcessorError> {{
        if replica.summary.trim().is_empty() {{
            // A refusal: the event becomes a sync error with this message.
            return Err(ProcessorError::new("refusing an issue without a summary"));
        }}
        Ok(mirror_incoming(ctx, &replica, previous.as_ref(), issue))
    }}

    fn outgoing(ctx: &SyncContext, issue: Issue) -> Result<Option<Replica>, ProcessorError> {{
        Ok(Some(mirror_outgoing(ctx, issue)))
    }}
}}

twinsync_sdk::export_processor!(Plugin);
"#
    );
    let build = format!(
        r#"#!/bin/sh
# Build the package {name}.wasm: compile for wasm32-wasip2, then put plugin.toml inside.
# Needs `rustup target add wasm32-wasip2`, and twinsync on PATH (or TWINSYNC=/path/to/it).
set -eu
cd "$(dirname "$0")"
cargo build --release --target wasm32-wasip2
"${{TWINSYNC:-twinsync}}" plugin pack "${{CARGO_TARGET_DIR:-target}}/wasm32-wasip2/release/{crate_name}.wasm" \
    --manifest plugin.toml -o "{name}.wasm"
echo "next: twinsync plugin check {name}.wasm && twinsync plugin install {name}.wasm"
"#
    );
    let readme = format!(
        "# {name}\n\nA twinsync processor.\n\n```sh\n./build.sh                      # -> {name}.wasm, the package\n\
         twinsync plugin check {name}.wasm\ntwinsync plugin install {name}.wasm --config node.toml\n\
         twinsync plugin try {name}.wasm --connection CONNECTION --config node.toml\n```\n\n\
         Edit `src/lib.rs`; raise `version` in `plugin.toml` (and `Cargo.toml`) for each build you ship.\n"
    );
    Ok(vec![
        ("Cargo.toml", cargo, false),
        ("src/lib.rs", lib, false),
        ("plugin.toml", plugin_toml(manifest), false),
        ("build.sh", build, true),
        ("README.md", readme, false),
        (".gitignore", "/target\n/*.wasm\nCargo.lock\n".into(), false),
    ])
}

fn python(name: &str, manifest: &Manifest) -> Vec<File> {
    let app = format!(
        r#""""{name}: a twinsync processor. Each side starts as the helpers' default mirror; change
what you need. A refusal: `raise fail("...")` (or `raise Err(ProcessorError(...))`), the
event becomes a sync error with your message. Any other exception is a crash: kind `panic`,
the traceback in the event's log."""

from typing import Optional

from twinsync_helpers import Issue, SyncContext, fail, mirror_incoming, mirror_outgoing
from wit_world import exports


class Incoming(exports.Incoming):
    def process(
        self, ctx: SyncContext, replica: Issue, previous: Optional[Issue], issue: Issue
    ) -> Issue:
        if not replica.summary.strip():
            raise fail("refusing an issue without a summary")
        return mirror_incoming(ctx, replica, previous, issue)


class Outgoing(exports.Outgoing):
    def process(self, ctx: SyncContext, issue: Issue) -> Optional[Issue]:
        return mirror_outgoing(ctx, issue)
"#
    );
    let build = format!(
        r#"#!/bin/sh
# Build the package {name}.wasm: componentize-py makes the component (with CPython and the
# standard library; the bindings, module `wit_world`, are generated as it builds), then
# twinsync puts plugin.toml inside. VIRTUAL_ENV points at an empty site: componentize-py
# would otherwise bundle every package of the active virtual environment.
set -eu
cd "$(dirname "$0")"
mkdir -p .build/empty-site/lib/python3/site-packages
env -u PYTHONPATH -u PYTHONHOME VIRTUAL_ENV="$PWD/.build/empty-site" \
    "${{COMPONENTIZE_PY:-componentize-py}}" --quiet --wit-path wit --world processor \
    componentize --python-path . --output .build/{name}.wasm app
"${{TWINSYNC:-twinsync}}" plugin pack .build/{name}.wasm --manifest plugin.toml -o "{name}.wasm"
echo "next: twinsync plugin check {name}.wasm && twinsync plugin install {name}.wasm"
"#
    );
    vec![
        ("app.py", app, false),
        ("twinsync_helpers.py", PYTHON_HELPERS.to_string(), false),
        ("wit/processor.wit", WIT.to_string(), false),
        ("plugin.toml", plugin_toml(manifest), false),
        ("build.sh", build, true),
        (
            ".gitignore",
            "/.build\n/*.wasm\n__pycache__\n".into(),
            false,
        ),
    ]
}

fn js(name: &str, manifest: &Manifest) -> Vec<File> {
    let app = format!(
        r#"// @ts-check
// {name}: a twinsync processor. Each side starts as the helpers' default mirror;
// change what you need. A refusal: `throw fail('...')` (a `ProcessorError`), the event
// becomes a sync error with your message. Any other throw is a crash: kind `panic`, the
// stack in the event's log. Types: `tsc -p .` checks this file against types/ (the
// contract) and lib/twinsync-helpers.d.ts.

import {{ defineProcessor, fail, mirrorIncoming, mirrorOutgoing }} from './lib/twinsync-helpers.js';

export const {{ incoming, outgoing }} = defineProcessor({{
  incoming(ctx, replica, previous, issue) {{
    if (!replica.summary.trim()) throw fail('refusing an issue without a summary');
    return mirrorIncoming(ctx, replica, previous, issue);
  }},
  outgoing: mirrorOutgoing,
}});
"#
    );
    let build = format!(
        r#"#!/bin/sh
# Build the package {name}.wasm: componentize-js makes the component (the StarlingMonkey
# engine with app.js pre-initialised; `--disable http fetch-event` leaves out wasi:http,
# which processors do not get), then twinsync puts plugin.toml inside.
set -eu
cd "$(dirname "$0")"
mkdir -p .build
node --check app.js
# The component's entry: app.js's exports with a refusal (a thrown value with an own
# `payload`, as `fail` makes) told apart from a crash (any other throw). componentize-js
# alone would report a thrown Error as a refusal and lose its stack.
cat >.build/entry.js <<'EOF'
import * as processor from '../app.js';
import {{ guardExports }} from '../lib/twinsync-helpers.js';
export const {{ incoming, outgoing }} = guardExports(processor);
EOF
"${{NODE:-node}}" "${{COMPONENTIZE_JS:?set COMPONENTIZE_JS to componentize-js/src/cli.js}}" \
    .build/entry.js --wit wit --world-name processor --out .build/{name}.wasm --disable http fetch-event
"${{TWINSYNC:-twinsync}}" plugin pack .build/{name}.wasm --manifest plugin.toml -o "{name}.wasm"
echo "next: twinsync plugin check {name}.wasm && twinsync plugin install {name}.wasm"
"#
    );
    let tsconfig = r#"{
  "compilerOptions": {
    "allowJs": true,
    "checkJs": true,
    "noEmit": true,
    "strict": true,
    "target": "es2022",
    "module": "esnext",
    "moduleResolution": "bundler",
    "types": []
  },
  "include": ["app.js", "types/**/*.d.ts"]
}
"#;
    let mut files = vec![
        ("app.js", app, false),
        ("lib/twinsync-helpers.js", JS_HELPERS.to_string(), false),
        (
            "lib/twinsync-helpers.d.ts",
            JS_HELPER_TYPES.to_string(),
            false,
        ),
        ("tsconfig.json", tsconfig.to_string(), false),
        ("wit/processor.wit", WIT.to_string(), false),
        ("plugin.toml", plugin_toml(manifest), false),
        ("build.sh", build, true),
        (".gitignore", "/.build\n/*.wasm\n".into(), false),
    ];
    files.extend(
        JS_CONTRACT_TYPES
            .iter()
            .map(|(path, text)| (*path, text.to_string(), false)),
    );
    files
}
